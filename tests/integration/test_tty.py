"""Levels 1-2 with a terminal: a person is asked, through a real pseudo-terminal."""

from __future__ import annotations

from pathlib import Path

import pexpect

from tests.conftest import SANDBOX_BIN, Cli


def _spawn(cli: Cli, *args: str) -> pexpect.spawn[bytes]:
    env = cli.env({"PAGER": "cat", "TERM": "xterm", "NO_COLOR": "1"})
    return pexpect.spawn(str(SANDBOX_BIN), list(args), env=env, timeout=60,
                         dimensions=(24, 80))


def test_level2_asks_after_run_and_pages_the_diff(cli: Cli, workspace: Path) -> None:
    child = _spawn(cli, "run", "-C", str(workspace), "--level", "2", "--",
                   "sh", "-c", "echo changed > README.md")
    child.expect(r"Commit to the workspace\? \[y\]es")
    child.sendline("d")
    child.expect(r"\+changed")
    child.expect(r"Commit to the workspace\?")
    child.sendline("y")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert (workspace / "README.md").read_text() == "changed\n"


def test_level2_no_keeps_pending(cli: Cli, workspace: Path) -> None:
    child = _spawn(cli, "run", "-C", str(workspace), "--", "sh", "-c", "echo x > new.txt")
    child.expect(r"Commit to the workspace\?")
    child.sendline("n")
    child.expect(pexpect.EOF)
    assert not (workspace / "new.txt").exists()
    assert b"new.txt" in cli("diff", "last", cwd=workspace, check=True).stdout


def test_level1_confirms_command_first(cli: Cli, workspace: Path) -> None:
    child = _spawn(cli, "run", "-C", str(workspace), "--level", "1", "--", "touch", "made")
    child.expect("touch made")
    child.expect(r"level = 1")
    child.expect(r"Run it\? \[y/N\]")
    child.sendline("n")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 2
    assert not (workspace / "made").exists()
    assert cli("ls", check=True).stdout.startswith(b"no runs")
    child = _spawn(cli, "run", "-C", str(workspace), "--level", "1", "--", "touch", "made")
    child.expect(r"Run it\?")
    child.sendline("y")
    child.expect(r"Commit to the workspace\?")
    child.sendline("y")
    child.expect(pexpect.EOF)
    assert (workspace / "made").exists()


def test_level1_without_terminal_refuses(cli: Cli, workspace: Path) -> None:
    r = cli("run", "-C", str(workspace), "--level", "1", "--", "touch", "made")
    assert r.returncode == 2 and b"terminal" in r.stderr
    assert not (workspace / "made").exists()


def test_ctrl_c_at_the_prompt_keeps_pending_and_records_the_run(cli: Cli,
                                                                workspace: Path) -> None:
    import json

    child = _spawn(cli, "run", "-C", str(workspace), "--", "sh", "-c", "echo x > new.txt")
    child.expect(r"Commit to the workspace\?")
    child.sendintr()  # Ctrl-C at the prompt
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 130
    assert not (workspace / "new.txt").exists()
    [run] = json.loads(cli("ls", "--json", cwd=workspace, check=True).stdout)
    assert run["status"] == "finished" and run["decision"] == "pending"  # not `running`
    assert b"new.txt" in cli("diff", "last", cwd=workspace, check=True).stdout
