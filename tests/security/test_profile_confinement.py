"""`profile test` and `profile record` confine a command exactly like `sandbox run`.

The attack a new user found: `sandbox profile test default -- sh -c 'cat /proc/self/uid_map;
cat .env; curl --unix-socket /var/run/docker.sock http://d/version'` printed `0 0 1` (host
root), the workspace's hidden .env and the Docker API's answer. The rest of the escape suite
runs under both tools too (tests/security/test_escape.py, `entry`).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import Cli, give, require
from tests.support.egress_env import origin

ATTACK = ("cat /proc/self/uid_map; cat .env; "
          "curl -s -m 5 --unix-socket /var/run/docker.sock http://d/version; echo; "
          "echo pwned > README.md; echo new > planted.txt; echo ATTACK-RAN")


def tool(cli: Cli, ws: Path, which: str, script: str) -> tuple[int, bytes, bytes]:
    """(exit, the command's output, the tool's messages) of `profile test|record`, run from
    inside the workspace as the report did (the workspace is the current directory)."""
    if which == "test":
        r = cli("profile", "test", "default", "--", "sh", "-c", script, cwd=ws)
        return r.returncode, r.stdout, r.stderr
    r = cli("profile", "record", "--", "sh", "-c", script, cwd=ws)
    assert r.returncode != 0 or r.stdout.startswith(b"{"), r.stdout  # stdout: the profile only
    return r.returncode, r.stderr, r.stderr


@pytest.mark.parametrize("which", ["test", "record"])
def test_the_reported_attack_fails(sbx: tuple[Cli, Path], which: str) -> None:
    require(shutil.which("curl") is not None, "curl")
    require(os.path.exists("/var/run/docker.sock"), "a Docker socket on the host (the target)")
    cli, ws = sbx
    (ws / ".env").write_text("DB_PASSWORD=hunter2\n")
    give(cli, ws)
    code, out, msgs = tool(cli, ws, which, ATTACK)
    assert code != 125 and b"ATTACK-RAN" in out, msgs  # the attack really ran
    inside, outside, _ = out.decode().splitlines()[0].split()
    assert inside == "0" and outside != "0", out  # root inside is not host root
    assert b"hunter2" not in out  # the hidden file stays hidden
    assert b"ApiVersion" not in out  # no Docker API
    assert (ws / "README.md").read_text() == "hello\n"  # nothing reaches the workspace
    assert not (ws / "planted.txt").exists()
    assert b"2 change(s) to the workspace were discarded" in msgs, msgs


def test_the_workspace_policy_applies(sbx: tuple[Cli, Path]) -> None:
    """The workspace's own hide list and limits hold under `profile test` as under `run`."""
    cli, ws = sbx
    (ws / "sandbox.toml").write_text('[hide]\npaths = ["secrets/"]\n[limits]\ntimeout = "2s"\n')
    (ws / "secrets").mkdir()
    (ws / "secrets" / "db.txt").write_text("S3CRET\n")
    give(cli, ws)
    code, out, msgs = tool(cli, ws, "test", "cat secrets/db.txt; echo RAN; sleep 30")
    assert b"RAN" in out and b"S3CRET" not in out
    assert code == 124 and b"timed out after 2s" in msgs, (code, msgs)


def test_options_after_the_profile_are_refused(cli: Cli, workspace: Path) -> None:
    r = cli("profile", "test", "default", "-C", str(workspace), "--", "true")
    assert r.returncode == 2 and b"options go before FILE" in r.stderr


def test_the_network_rules_are_the_runs(cli: Cli, workspace: Path, base_dir: Path) -> None:
    """Egress through the run's proxy only, as the policy says; nothing else gets out."""
    require(shutil.which("curl") is not None, "curl")
    with origin("ALLOWED-ORIGIN") as port:
        pol = base_dir / "egress.toml"  # the person's own file (outside the workspace)
        pol.write_text(f'[egress]\nallow = ["localhost:{port}"]\nallow_addresses = ["127.0.0.1"]\n')
        r = cli("profile", "test", "-C", str(workspace), "--policy", str(pol), "default", "--",
                "sh", "-c", f"curl -s -m 5 http://localhost:{port}/; echo; "
                f"curl -s -m 5 --noproxy '*' http://127.0.0.1:{port}/ || echo DIRECT-FAILED; "
                "curl -s -m 5 http://other.example/; echo; echo RAN")
    out = r.stdout.decode()
    assert "RAN" in out and "ALLOWED-ORIGIN" in out, (out, r.stderr)
    assert "DIRECT-FAILED" in out and out.count("ALLOWED-ORIGIN") == 1
    assert b"egress request denied: other.example (not in allowlist)" in r.stderr
