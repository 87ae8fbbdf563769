"""doctor, audit, limits and failure modes of the CLI, against the real backend."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import Cli


def test_doctor_reports_each_prerequisite(cli: Cli) -> None:
    r = cli("doctor", "--json")
    checks = {c["name"]: c for c in json.loads(r.stdout)}
    assert {"python", "nsjail", "user namespaces", "overlayfs", "seccomp", "limits", "images"} <= set(checks)
    assert r.returncode == 0, checks
    broken = cli("doctor", env={"SANDBOX_NSJAIL": "/nonexistent/nsjail"})
    assert broken.returncode == 1 and b"fix:" in broken.stdout


def test_missing_nsjail_fails_closed_with_125(cli: Cli, workspace: Path) -> None:
    r = cli("run", "-C", str(workspace), "--", "touch", "x",
            env={"SANDBOX_NSJAIL": "/nonexistent/nsjail"})
    assert r.returncode == 125 and b"nsjail" in r.stderr
    assert not (workspace / "x").exists()


def test_audit_shows_and_verify_detects_tampering(cli: Cli, workspace: Path) -> None:
    cli("run", "-C", str(workspace), "--", "sh", "-c", "echo x > a", check=True)
    cli("approve", "last", "-m", "looks good", check=True)
    text = cli("audit", check=True).stdout.decode()
    for event in ("run.started", "run.finished", "changeset", "commit"):
        assert event in text
    assert cli("audit", "--verify").returncode == 0
    log = cli.home / "audit.log"
    lines = log.read_bytes().splitlines(keepends=True)
    lines[1] = lines[1].replace(b'"exit_code":0', b'"exit_code":1')
    log.write_bytes(b"".join(lines))
    r = cli("audit", "--verify")
    assert r.returncode == 1 and b"BROKEN" in r.stdout


def test_write_cap_stops_a_runaway_writer(cli: Cli, workspace: Path) -> None:
    # The cap is enforced by watching the upper dir (polled), so a run may overshoot by what
    # it writes between two looks; a writer that keeps going is always stopped.
    (workspace / "sandbox.toml").write_text("[limits]\nwrite = '8m'\n")
    r = cli("run", "-C", str(workspace), "--json", "--", "sh", "-c",
            "for i in $(seq 1000); do head -c 1048576 /dev/zero > f$i || exit 9; done; "
            "echo finished")
    out = json.loads(r.stdout)
    assert "finished" not in out["stdout"]
    assert r.returncode != 0
    assert any("write limit" in n for n in out["notes"]), out["notes"]
    written = sum(p.stat().st_size for p in cli.home.glob("sessions/*/upper/f*"))
    assert written < 400 << 20, written


def test_output_cap_in_json(cli: Cli, workspace: Path) -> None:
    (workspace / "sandbox.toml").write_text("[limits]\noutput = '64k'\n")
    r = cli("run", "-C", str(workspace), "--json", "--", "sh", "-c",
            "head -c 1000000 /dev/zero | tr '\\0' a")
    out = json.loads(r.stdout)
    assert len(out["stdout"]) <= 64 * 1024 and out["output_truncated"] is True


def test_profile_kill_is_named_in_the_summary(cli: Cli, workspace: Path, base_dir: Path) -> None:
    profile = base_dir / "kill-mkdir.json"
    profile.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_KILL_PROCESS"}]}))
    r = cli("run", "-C", str(workspace), "--profile", str(profile), "--", "mkdir", "zz")
    assert r.returncode == 128 + 31
    assert b"killed by the seccomp profile" in r.stderr
    started = [x for x in json.loads(cli("audit", "--json", check=True).stdout)
               if x["event"] == "run.started"][-1]
    assert started["data"]["profile_digest"].startswith("sha256:")
