"""`sandbox agent --bin PATH` mounts the binary's directory into the agent's sandbox (so a wrapper
can run the real agent beside it). A binary kept in the workspace (or in a directory holding it,
the state dir or the home) showed the agent that directory whole, hidden files included: the
agent read .env although its sandbox has no workspace. Such a directory is refused (exit 2)
before anything starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.errors import UsageError
from sandbox.mcp._agent import check_binary_dir
from tests.conftest import Cli, make_tree

SECRET = "AGENT-SEES-ME-7f3a"


def test_an_agent_binary_in_the_workspace_is_refused(cli: Cli, workspace: Path) -> None:
    make_tree(workspace, {".env": f"KEY={SECRET}\n"})
    agent = workspace / "claude"  # prints what its directory mount shows, as an attacker would
    agent.write_text("#!/bin/sh\ncat /run/agent/.env\nexit 0\n")
    agent.chmod(0o755)
    r = cli("agent", "claude", "-C", str(workspace), "--bin", str(agent), "--", "-p", "x",
            timeout=120)
    assert SECRET.encode() not in r.stdout + r.stderr
    assert r.returncode == 2, r.stderr.decode()
    assert b"would show it the workspace" in r.stderr


def test_which_binary_directories_are_refused(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    home, ws, state = tmp_path / "home", tmp_path / "home" / "ws", tmp_path / "state"
    for d in (home / ".local" / "share" / "claude", ws / "bin", state / "x", tmp_path / "opt"):
        d.mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    refused = [ws / "claude", ws / "bin" / "claude", home / "claude", tmp_path / "claude",
               state / "claude", state / "x" / "claude", Path("/claude")]
    for binary in refused:
        with pytest.raises(UsageError, match="is mounted into the agent's sandbox"):
            check_binary_dir(binary, ws, state)
    for binary in (home / ".local" / "share" / "claude" / "2.1", tmp_path / "opt" / "claude",
                   Path("/usr/local/bin/claude")):
        check_binary_dir(binary, ws, state)  # a directory of its own: fine
