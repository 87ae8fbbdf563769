"""Lint over a corpus of broken profiles (tests/data/seccomp, expectations in expect.json),
the shipped and Docker profiles, and the `sandbox profile` CLI (lint, show, compile)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox.errors import ProfileError
from sandbox.seccomp import _lint, _model, _resolve
from sandbox.seccomp._lint import Severity

DATA = Path(__file__).resolve().parents[1] / "data" / "seccomp"
REPO = Path(__file__).resolve().parents[2]
EXPECT: dict[str, list[list[str]]] = json.loads((DATA / "expect.json").read_text())


def _matches(f: _lint.Finding, exp: list[str]) -> bool:
    sev, code, path = exp[:3]
    text = exp[3] if len(exp) > 3 else None
    return (f.severity == sev and f.code == code and f.path.startswith(path)
            and (text is None or text in f.message or text in f.suggestions))


@pytest.mark.parametrize("name", sorted(EXPECT))
def test_broken_corpus(name: str) -> None:
    report = _lint.lint_file(DATA / name)
    for exp in EXPECT[name]:
        assert any(_matches(f, exp) for f in report.findings), (exp, report.render())
    has_error = any(e[0] == "error" for e in EXPECT[name])
    assert report.ok is not has_error


@pytest.mark.parametrize("name", sorted(n for n, e in EXPECT.items() if e[0][1] == "schema"))
def test_runtime_parser_rejects_what_the_schema_rejects(name: str) -> None:
    with pytest.raises(ProfileError) as ei:
        _model.loads((DATA / name).read_bytes(), source=name)
    assert ei.value.exit_code == 2


@pytest.mark.parametrize("name", ["default", "strict"])
def test_shipped_profiles_lint_clean(name: str) -> None:
    report = _lint.lint_file(REPO / "profiles" / f"{name}.json")
    bad = [f for f in report.findings if f.severity is not Severity.INFO]
    assert bad == [], report.render()
    assert report.schema_checked


def test_docker_default_loads_and_lints_without_errors() -> None:
    report = _lint.lint_file(DATA / "docker-default.json")
    assert report.ok, report.render()
    warned = {f.message.split(" is allowed")[0] for f in report.findings
              if f.code == "dangerous-allow"}
    # Docker's default allows ptrace on kernels >= 4.8; ours must not.
    assert {"ptrace", "process_vm_readv"} <= warned
    _resolve.resolve_or_raise(_model.loads((DATA / "docker-default.json").read_bytes()))


def test_json_report_is_machine_readable() -> None:
    report = _lint.lint_file(DATA / "dangerous.json")
    data = json.loads(report.to_json())
    assert data["ok"] is True and data["errors"] == 0 and data["warnings"] >= 9
    tiers = {f["tier"] for f in data["findings"] if f["code"] == "dangerous-allow"}
    assert {"critical", "high"} <= tiers


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sandbox.cli.main", "profile", *args],
                          capture_output=True, text=True, check=False, cwd=REPO)


def test_cli_lint_exit_codes() -> None:
    assert _cli("lint", "default").returncode == 0
    bad = _cli("lint", str(DATA / "misspelled-names.json"))
    assert bad.returncode == 1
    assert "$.syscalls[0].names[1]: error: unknown syscall 'opnat' (did you mean openat" in bad.stdout
    js = _cli("lint", "--json", str(DATA / "masked-eq-never.json"))
    assert js.returncode == 1
    assert json.loads(js.stdout)["findings"][0]["code"] == "masked-eq-never-matches"
    missing = _cli("lint", "/no/such.json")
    assert missing.returncode == 2


def test_cli_show_and_compile(tmp_path: Path) -> None:
    shown = _cli("show", "default")
    assert shown.returncode == 0
    assert "default action: ERRNO(EPERM)" in shown.stdout
    assert "clone3" in shown.stdout and "ERRNO(ENOSYS)" in shown.stdout
    assert "clone            ALLOW          when (arg0 & 0x7e020000) == 0x0" in shown.stdout
    assert "unshare(CLONE_NEWUSER)=ERRNO(EPERM)" in shown.stdout
    assert "DANGEROUS" not in shown.stdout
    k = _cli("compile", "strict", "--format", "kafel")
    assert k.returncode == 0 and "USE sandbox_profile DEFAULT ERRNO(1)" in k.stdout
    out = tmp_path / "f.bpf"
    b = _cli("compile", "strict", "-f", "bpf", "-o", str(out))
    assert b.returncode == 0 and out.stat().st_size % 8 == 0 and out.stat().st_size > 100
    pfc = _cli("compile", "strict", "-f", "pfc")
    assert pfc.returncode == 0 and "action ERRNO(1);" in pfc.stdout
    bad = _cli("compile", str(DATA / "misspelled-names.json"))
    assert bad.returncode == 2 and "opnat" in bad.stderr
