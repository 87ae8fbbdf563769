"""The session lifecycle end to end through the CLI on nsjail (as root and as the unprivileged
test user): signals and kills at each point leave nothing behind, states and exit codes are
true, RUN and PATH mean what a person means, the workspace is what git says."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.conftest import Cli, give, require_root
from tests.support.procs import Running, mounts_under


def _json(r: subprocess.CompletedProcess[bytes]) -> dict[str, object]:
    data: dict[str, object] = json.loads(r.stdout)
    return data


def _ls(cli: Cli) -> list[dict[str, object]]:
    runs: list[dict[str, object]] = json.loads(cli("ls", "--json", check=True).stdout)
    return runs


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_signal_stops_everything_and_keeps_the_changes(sbx: tuple[Cli, Path],
                                                         sig: int) -> None:
    cli, ws = sbx
    run = Running(cli, "run", "-C", str(ws), "--", "sh", "-c",
                  "echo so-far > made.txt; exec sleep 60", ready="sleep 60")
    assert run.tree, "the command was running"
    run.signal(sig)
    assert run.survivors(within=1.0) == []  # the sandbox and everything in it, within 1 s
    code, _, err = run.finish()
    assert code == 128 + sig, err
    assert b"cancelled" in err
    [rec] = _ls(cli)
    assert rec["status"] == "cancelled" and rec["exit_code"] == 128 + sig
    assert not (ws / "made.txt").exists()
    assert b"made.txt" in cli("diff", "last", check=True).stdout  # kept pending
    assert mounts_under(ws) == [] and mounts_under(cli.home) == []


def test_sigkill_takes_the_jail_along_and_the_run_is_lost(sbx: tuple[Cli, Path]) -> None:
    cli, ws = sbx
    run = Running(cli, "run", "-C", str(ws), "--", "sh", "-c",
                  "echo so-far > made.txt; exec sleep 60", ready="sleep 60")
    run.signal(signal.SIGKILL)
    assert run.survivors(within=1.0) == []  # parent-death signal: the jail died with it
    run.finish()
    r = cli("ls", "--json", check=True)
    assert b"was lost" in r.stderr
    [rec] = json.loads(r.stdout)
    assert rec["status"] == "lost" and rec["decision"] == "pending"
    assert b"made.txt" in cli("diff", "last", check=True).stdout  # nothing lost
    assert mounts_under(ws) == [] and mounts_under(cli.home) == []


def test_kill_from_another_terminal_and_approve_refused_meanwhile(cli: Cli,
                                                                  workspace: Path) -> None:
    run = Running(cli, "run", "-C", str(workspace), "--session", "busy", "--", "sh", "-c",
                  "echo a > a.txt; exec sleep 60", ready="sleep 60")
    r = cli("approve", "busy")
    assert r.returncode == 6 and b"has a run going" in r.stderr, r.stderr
    assert not (workspace / "a.txt").exists()  # never part of a run still going
    r = cli("kill", "busy", "--json", check=True)
    assert _json(r)["status"] == "cancelled"
    assert run.survivors(within=1.0) == []
    code, _, _ = run.finish()
    assert code == 143
    cli("approve", "busy", check=True)
    assert (workspace / "a.txt").read_text() == "a\n"
    assert cli("kill", "busy").returncode == 2  # nothing running any more


def test_level4_session_chains_through_the_cli(sbx: tuple[Cli, Path]) -> None:
    cli, ws = sbx
    for n in ("1", "2"):
        r = cli("run", "-C", str(ws), "--session", "s", "--level", "4", "--json", "--",
                "sh", "-c", f"echo {n} > a.txt")
        assert r.returncode == 0, r.stderr
        assert _json(r)["state"] == "open"
    assert (ws / "a.txt").read_text() == "2\n"


def test_reject_after_approve_and_settle_after_export_merge(cli: Cli, workspace: Path) -> None:
    cli("run", "-C", str(workspace), "--", "sh", "-c", "echo b > b.txt", check=True)
    cli("approve", "last", check=True)
    r = cli("reject", "last")
    assert r.returncode == 2 and b"already committed" in r.stderr
    assert _json(cli("show", "last", "--json", check=True))["state"] == "committed"
    assert (workspace / "b.txt").exists()
    # export, then the person merges: the session settles as committed
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=workspace, check=True)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "add", "-A"], cwd=workspace, check=True)
    subprocess.run([*git, "commit", "-qm", "base"], cwd=workspace, check=True)
    cli("run", "-C", str(workspace), "--session", "pr", "--", "sh", "-c", "echo c > c.txt",
        check=True)
    cli("export", "pr", "--branch", "agent/pr", check=True)
    subprocess.run([*git, "merge", "-q", "agent/pr"], cwd=workspace, check=True)
    assert _json(cli("show", "pr", "--json", check=True))["state"] == "committed"
    assert b"nothing pending" in cli("approve", "pr", check=True).stdout


def test_conflict_in_a_level4_run_keeps_the_commands_status(cli: Cli, workspace: Path) -> None:
    # The command ends when told (SIGUSR1), once the person's edit is made: not after a pause.
    run = Running(cli, "run", "-C", str(workspace), "--level", "4", "--json", "--", "sh", "-c",
                  "echo agent > README.md; trap 'exit 7' USR1; sleep 600 & wait",
                  ready="sleep 600")
    (workspace / "README.md").write_text("a person's edit\n")
    [shell] = [p for p in run.tree if p.cmdline()[:2] == ["sh", "-c"]]
    shell.send_signal(signal.SIGUSR1)
    code, out, err = run.finish()
    assert code == 7, err  # the command's own status, not the commit's refusal
    data = json.loads(out)
    assert data["exit_code"] == 7 and "README.md" in json.dumps(data["decision"])
    assert data["state"] == "pending" and data["committed"] == []
    assert (workspace / "README.md").read_text() == "a person's edit\n"
    [rec] = _ls(cli)
    assert rec["status"] == "finished" and rec["decision"] == "pending"


def test_json_is_one_object_for_errors_too(cli: Cli, workspace: Path) -> None:
    for args, code in ((("run", "--json", "--bogus"), 2), (("approve", "nope", "--json"), 2),
                       (("run", "--json", "-C", "/nonexistent", "--", "true"), 2)):
        r = cli(*args)
        assert r.returncode == code, r.stderr
        data = json.loads(r.stdout)  # exactly one JSON object
        assert data["exit_code"] == code and data["error"]


def test_state_dir_inside_the_workspace_is_refused(cli: Cli, workspace: Path) -> None:
    r = cli("run", "-C", str(workspace), "--", "true",
            env={"SANDBOX_HOME": str(workspace / ".sandbox-state")})
    assert r.returncode == 2 and b"may not live in the workspace" in r.stderr, r.stderr
    assert b"preexec_fn" not in r.stderr


def test_broken_audit_log_is_125(cli: Cli, workspace: Path) -> None:
    cli("run", "-C", str(workspace), "--", "true", check=True)
    log = cli.home / "audit.log"
    log.write_bytes(log.read_bytes()[:-20])  # torn
    r = cli("run", "-C", str(workspace), "--", "true")
    assert r.returncode == 125, r.stderr


def test_last_is_the_current_workspace(cli: Cli, workspace: Path, base_dir: Path) -> None:
    other = base_dir / "other"
    other.mkdir()
    cli("run", "-C", str(workspace), "--", "sh", "-c", "echo a > a.txt", check=True)
    r = cli("approve", "last", cwd=other)
    assert r.returncode == 2 and b"no runs yet" in r.stderr
    assert not (workspace / "a.txt").exists()  # workspace A untouched from workspace B
    cli("approve", "last", "--all-workspaces", cwd=other, check=True)
    assert (workspace / "a.txt").exists()
    assert b"--all-workspaces" in cli("approve", "--help", check=True).stdout


def test_paths_relative_absolute_and_directories(sbx: tuple[Cli, Path]) -> None:
    cli, ws = sbx
    cli("run", "-C", str(ws), "--", "sh", "-c",
        "echo x >> src/app.py; mkdir -p src/pkg; echo y > src/pkg/y.py; echo z > z.txt; "
        "echo r >> README.md", check=True)
    cli("approve", "last", "./app.py", cwd=ws / "src", check=True)  # relative to the cwd
    assert (ws / "src/app.py").read_text().endswith("x\n")
    cli("approve", "last", "pkg", cwd=ws / "src", check=True)  # a directory: all below
    assert (ws / "src/pkg/y.py").exists()
    cli("approve", "last", str(ws / "z.txt"), check=True)  # absolute inside the workspace
    assert (ws / "z.txt").exists()
    r = cli("approve", "last", "/etc/passwd")
    assert r.returncode == 2 and b"outside the workspace" in r.stderr
    assert (ws / "README.md").read_text() == "hello\n"  # not approved: still pending


def test_workspace_is_the_git_top_level(sbx: tuple[Cli, Path]) -> None:
    cli, ws = sbx
    subprocess.run(["git", "init", "-q", str(ws)], check=True)
    give(cli, ws)
    r = cli("run", "--json", "--", "sh", "-c", "pwd; git rev-parse --show-toplevel",
            cwd=ws / "src")
    assert r.returncode == 0, r.stderr
    data = _json(r)
    assert data["stdout"] == "/workspace/src\n/workspace\n", data
    assert b"workspace " in r.stderr and b"starting in src" in r.stderr


def test_unexpected_error_is_125_with_a_log(cli: Cli, workspace: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    require_root()  # (the CLI in-process; nothing of the sandbox runs)
    from sandbox.cli import _commands, main

    def boom(*a: object) -> int:
        raise RuntimeError("a bug")

    monkeypatch.setattr(_commands, "dispatch", boom)
    monkeypatch.setenv("SANDBOX_HOME", str(cli.home))
    monkeypatch.delenv("SANDBOX_DEBUG", raising=False)
    assert main.main(["ls"]) == 125
    logs = list((cli.home / "logs").glob("crash-*.log"))
    assert len(logs) == 1 and "RuntimeError: a bug" in logs[0].read_text()
    assert os.stat(logs[0]).st_mode & 0o077 == 0


def test_an_out_of_memory_kill_is_named(sbx: tuple[Cli, Path]) -> None:
    cli, ws = sbx
    r = cli("run", "-C", str(ws), "--json", "--memory", "64m", "--", "python3", "-c",
            "a = bytearray(512 << 20); print('allocated')")
    data = _json(r)
    assert r.returncode == 137 and "allocated" not in str(data["stdout"])  # it really ran out
    notes = " ".join(str(n) for n in data["notes"])  # type: ignore[attr-defined]
    if cli.user is None:  # the cgroup's OOM kill, named like a timeout is
        assert "killed: out of memory (limit 64m)" in notes, notes
    else:  # no memory cgroup for the user here: the polling fallback says it stopped the run
        assert "memory limit" in notes, notes


def test_user_runs_the_command_as_an_unprivileged_user_inside(sbx: tuple[Cli, Path]) -> None:
    cli, ws = sbx
    r = cli("run", "-C", str(ws), "--session", "u", "--user", "dev", "--json", "--", "sh", "-c",
            "id -u; id -un; echo $HOME; touch $HOME/ok && echo home-writable; "
            "echo more >> README.md && echo x > made.txt && echo ws-writable")
    assert r.returncode == 0, r.stderr
    assert _json(r)["stdout"] == "1000\ndev\n/home/dev\nhome-writable\nws-writable\n"
    r = cli("run", "-C", str(ws), "--json", "--", "id", "-u")  # root is the default
    assert _json(r)["stdout"] == "0\n"
    cli("approve", "u", check=True)
    owner = ws.stat().st_uid
    assert (ws / "made.txt").stat().st_uid == owner  # the workspace's owner's, once committed
    assert (ws / "README.md").read_text() == "hello\nmore\n"
    bad = cli("run", "-C", str(ws), "--user", "../x", "--", "true")
    assert bad.returncode == 2 and b"--user" in bad.stderr
