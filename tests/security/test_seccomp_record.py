"""`sandbox profile record` -> `profile test` -> `profile lint` round trips for real programs,
`profile test` reporting denials by name and count (as root and unprivileged), and record never
granting what its base profile denies."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import Cli, require

PY = "/usr/bin/python3"
PY_PROG = ("import json, os, subprocess, tempfile, threading\n"
           "t = threading.Thread(target=lambda: None); t.start(); t.join()\n"
           "print(json.dumps(sorted(os.listdir('.'))))\n"
           "print(subprocess.run(['true']).returncode)\n")


@pytest.fixture
def repo(workspace: Path) -> Path:
    require(shutil.which("git") is not None, "git")
    subprocess.run(["git", "init", "-q", str(workspace)], check=True)
    subprocess.run(["git", "-C", str(workspace), "config", "--global", "--add",
                    "safe.directory", str(workspace)], check=False, capture_output=True)
    return workspace


def round_trip(cli: Cli, ws: Path, base_dir: Path, *cmd: str) -> dict[str, object]:
    rec = cli("profile", "record", "--", *cmd, cwd=ws)
    assert rec.returncode == 0, rec.stderr.decode(errors="replace")
    prof = json.loads(rec.stdout)  # stdout is the profile only; CMD's output went to stderr
    path = base_dir / "recorded.json"
    path.write_text(json.dumps(prof))
    test = cli("profile", "test", "--json", str(path), "--", *cmd, cwd=ws)
    report = json.loads(test.stdout)
    assert report["denied"] == [], report
    assert {d["name"] for d in report["fallbacks"]} <= {"clone3"}
    assert test.returncode == 0
    lint = cli("profile", "lint", "--json", str(path))
    assert lint.returncode == 0, lint.stdout
    assert json.loads(lint.stdout)["warnings"] == 0
    result: dict[str, object] = prof
    return result


def names(prof: dict[str, object]) -> set[str]:
    rules = prof["syscalls"]
    assert isinstance(rules, list)
    return {n for r in rules if r["action"] == "SCMP_ACT_ALLOW" for n in r["names"]}


def test_record_git_status(cli: Cli, repo: Path, base_dir: Path) -> None:
    prof = round_trip(cli, repo, base_dir, "git", "status", "--short")
    got = names(prof)
    assert {"execve", "openat", "read", "exit_group"} <= got
    assert not got & {"ptrace", "mount", "unshare", "bpf", "socket"}
    assert len(got) < 80  # minimal, not a copy of default


def test_record_python(cli: Cli, workspace: Path, base_dir: Path) -> None:
    prof = round_trip(cli, workspace, base_dir, PY, "-c", PY_PROG)
    got = names(prof)
    assert "clone" in got  # threads and subprocess: clone, with the namespace mask kept
    rules = prof["syscalls"]
    assert isinstance(rules, list)
    clone = [r for r in rules if r["names"] == ["clone"]]
    assert clone and clone[0]["args"][0]["op"] == "SCMP_CMP_MASKED_EQ"
    clone3 = [r for r in rules if r["names"] == ["clone3"]]
    assert clone3 and clone3[0]["errnoRet"] == 38


def test_recorded_profile_is_tight(cli: Cli, workspace: Path, base_dir: Path) -> None:
    prof = round_trip(cli, workspace, base_dir, "true")
    # the profile recorded for `true` does not let `ls -la` run (libc may then spin: bounded)
    t = cli("profile", "test", "--json", "--timeout", "5", str(base_dir / "recorded.json"),
            "--", "ls", "-la", ".", cwd=workspace)
    assert t.returncode == 1
    denied = {d["name"] for d in json.loads(t.stdout)["denied"]}
    assert denied and not denied & names(prof), denied


def test_record_never_grants_what_the_base_denies(cli: Cli, workspace: Path) -> None:
    require(shutil.which("unshare") is not None, "util-linux unshare")
    rec = cli("profile", "record", "--", "unshare", "-U", "true", cwd=workspace)
    prof = json.loads(rec.stdout)
    assert "unshare" not in names(prof)
    assert b"unshare denied 1x by the base profile default" in rec.stderr
    assert rec.returncode != 0  # unshare(1) failed, as under the real profile


def test_profile_test_reports_denials_by_name_with_counts(cli: Cli, workspace: Path) -> None:
    prog = ("import os\n"
            "for _ in range(3):\n"
            "    try: os.setxattr('.', 'user.probe', b'1')\n"
            "    except OSError: pass\n"
            "os.listxattr('.')\n")
    r = cli("profile", "test", "strict", "--", PY, "-c", prog, cwd=workspace)
    assert r.returncode == 1
    err = r.stderr.decode()
    assert "setxattr" in err and "3x" in err and "ERRNO(EPERM)" in err
    js = cli("profile", "test", "--json", "strict", "--", PY, "-c", prog, cwd=workspace)
    denied = {d["name"]: d for d in json.loads(js.stdout)["denied"]}
    assert denied["setxattr"]["count"] == 3 and denied["setxattr"]["action"] == "ERRNO(EPERM)"
    ok = cli("profile", "test", "default", "--", PY, "-c", prog, cwd=workspace)
    assert ok.returncode == 0, ok.stderr  # default allows it (the read-only mount refuses it)


def test_profile_test_emulates_kill(cli: Cli, workspace: Path, base_dir: Path) -> None:
    prof = json.loads((Path(__file__).parents[2] / "profiles" / "default.json").read_text())
    # chroot: not allowed by default's unconditional list (which would win over a later rule)
    prof["syscalls"].append({"names": ["chroot"], "action": "SCMP_ACT_KILL_PROCESS"})
    p = base_dir / "kill.json"
    p.write_text(json.dumps(prof))
    r = cli("profile", "test", "--json", str(p), "--", PY, "-c",
            "import os; os.chroot('/'); print('survived')", cwd=workspace)
    report = json.loads(r.stdout)
    assert report["denied"][0]["name"] == "chroot"
    assert report["denied"][0]["action"] == "KILL_PROCESS"
    assert report["exit_code"] == 137
    assert b"survived" not in r.stderr


def test_profile_test_works_unprivileged(user_cli: tuple[Cli, Path]) -> None:
    cli, ws = user_cli
    r = cli("profile", "test", "--json", "strict", "--", PY, "-c",
            "import os\ntry: os.setgroups([])\nexcept OSError: pass", cwd=ws)
    report = json.loads(r.stdout)
    assert [d["name"] for d in report["denied"]] == ["setgroups"], r.stderr
