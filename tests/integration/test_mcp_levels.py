"""Levels apply to an agent's MCP session: during the work every change is held; when the client
leaves, level 2 keeps them pending for `sandbox approve`, level 3's `[review.auto]` rules
decide, level 4 commits (protected and forbidden refused as everywhere). Level 1 confirms every
command and write with a person, and refuses them without one. Both protocol revisions."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import anyio
from mcp import Client

from sandbox.mcp import McpConfig, McpSession
from sandbox.mcp._errors import ToolRefused
from sandbox.policy import Layer, load_policy
from tests.conftest import SANDBOX_BIN, Cli, require_nsjail
from tests.support.mcp_client import Tools, connect, server_params, tool_records


async def _work(cli: Cli, ws: Path, *extra: str, mode: str = "legacy",
                protected: bool = False) -> None:
    async with connect(cli, ws, *extra, mode=mode) as t:
        await t.ok("write_file", {"path": "notes.txt", "content": "from the agent\n"})
        if protected:
            await t.ok("write_file", {"path": ".github/workflows/ci.yml", "content": "on: push\n"})
            # build output ([changes] ignore) is never proposed, so never auto-committed
            await t.ok("bash", {"command": "mkdir -p __pycache__ && echo junk > __pycache__/x.pyc"})
        await t.ok("edit_file", {"path": "src/app.py", "old_string": "'hi'",
                                 "new_string": "'hello'"})
        text = await t.ok("bash", {"command": "rm old.txt && echo made > made.txt && ls"})
        assert "exit status: 0" in text and "made.txt" in text
        # nothing reached the workspace while the agent works, whatever the level
        assert not (ws / "notes.txt").exists() and (ws / "old.txt").exists()
        assert "print('hi')" in (ws / "src/app.py").read_text()


def test_level2_holds_until_approved(cli: Cli, workspace: Path) -> None:
    anyio.run(_work, cli, workspace, "--session", "l2", "--level", "2")
    assert not (workspace / "notes.txt").exists() and (workspace / "old.txt").exists()
    cli("approve", "l2", check=True)
    assert (workspace / "notes.txt").read_text() == "from the agent\n"
    assert (workspace / "made.txt").exists() and not (workspace / "old.txt").exists()
    assert (workspace / "src/app.py").read_text() == "print('hello')\n"
    tools = [r["data"]["tool"] for r in tool_records(cli, "l2")]
    assert tools == ["write_file", "edit_file", "bash"]


def test_level4_commits_when_the_agent_finishes_protected_still_refused(
        cli: Cli, workspace: Path) -> None:
    async def work() -> None:
        await _work(cli, workspace, "--session", "l4", "--level", "4",
                    protected=True, mode="2026-07-28")

    anyio.run(work)
    assert (workspace / "notes.txt").read_text() == "from the agent\n"
    assert not (workspace / "old.txt").exists()
    assert (workspace / "src/app.py").read_text() == "print('hello')\n"
    assert not (workspace / ".github/workflows/ci.yml").exists()
    assert not (workspace / "__pycache__").exists()
    shown = json.loads(cli("diff", "l4", "--json", check=True).stdout)
    assert [c["path"] for c in shown["changes"]] == [".github/workflows/ci.yml"]


def test_level3_rules_decide_at_the_end(cli: Cli, workspace: Path) -> None:
    (workspace / "sandbox.toml").write_text("[review.auto]\nmax_files = 1\n")

    async def small() -> None:
        async with connect(cli, workspace, "--session", "l3a", "--level", "3") as t:
            await t.ok("write_file", {"path": "one.txt", "content": "1\n"})

    async def big() -> None:
        async with connect(cli, workspace, "--session", "l3b", "--level", "3") as t:
            await t.ok("write_file", {"path": "a.txt", "content": "a\n"})
            await t.ok("write_file", {"path": "b.txt", "content": "b\n"})

    anyio.run(small)
    assert (workspace / "one.txt").exists()
    anyio.run(big)
    assert not (workspace / "a.txt").exists() and not (workspace / "b.txt").exists()


def test_level1_without_a_terminal_refuses_commands_and_writes(cli: Cli, workspace: Path) -> None:
    async def work() -> None:
        async with connect(cli, workspace, "--session", "l1", "--level", "1") as t:
            assert "hello" in await t.ok("read_file", {"path": "README.md"})
            for tool, args in (("bash", {"command": "echo x > x.txt"}),
                               ("write_file", {"path": "y.txt", "content": "y"})):
                assert "needs a person" in await t.refused(tool, args)

    anyio.run(work)
    assert json.loads(cli("diff", "l1", "--json", check=True).stdout)["changes"] == []


class _Person:
    def __init__(self, answers: list[bool]) -> None:
        self.answers, self.asked = answers, []  # type: list[bool], list[str]

    def confirm(self, what: str) -> bool:
        self.asked.append(what)
        return self.answers.pop(0)


def test_level1_asks_the_person_for_each_command_and_write(cli: Cli, workspace: Path) -> None:
    require_nsjail()
    effective = load_policy(workspace, flags=Layer("flags", "--level", {"level": 1}))
    person = _Person([True, False, True])
    s = McpSession(McpConfig(workspace=workspace, policy=effective, session="l1p",
                             home=cli.home), confirm=person)
    try:
        assert "exit status: 0" in s.bash("echo ran > ran.txt", None)
        try:
            s.write_file("no.txt", "declined")
            raise AssertionError("a declined write was written")
        except ToolRefused as exc:
            assert "declined" in str(exc)
        s.edit_file("src/app.py", "'hi'", "'yes'", False)
        assert person.asked == ["run: echo ran > ran.txt", "write no.txt (8 bytes)",
                                "edit src/app.py"]
        paths = [c.path for c in s.changeset()]
        assert paths == ["ran.txt", "src/app.py"]
    finally:
        s.close()


def test_initialize_handshake_of_2025_06_18(cli: Cli, workspace: Path) -> None:
    """Codex's revision: an `initialize` handshake at 2025-06-18, then tools/list."""
    msgs = [{"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18", "capabilities": {},
                "clientInfo": {"name": "codex-like", "version": "0"}}},
            {"jsonrpc": "2.0", "method": "notifications/initialized"},
            {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}]
    proc = subprocess.Popen([str(SANDBOX_BIN), "mcp", "-C", str(workspace)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, env=cli.env())
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("".join(json.dumps(m) + "\n" for m in msgs).encode())
    proc.stdin.flush()
    replies: dict[int, dict[str, Any]] = {}
    while 2 not in replies:  # EOF on stdin ends the server: close it only once answered
        line = proc.stdout.readline()
        assert line, "the server closed without answering"
        reply = json.loads(line)
        replies[reply["id"]] = reply
    proc.stdin.close()
    assert proc.wait(timeout=60) == 0
    assert replies[1]["result"]["protocolVersion"] == "2025-06-18"
    assert replies[1]["result"]["serverInfo"]["name"] == "sandbox"
    tools = {t["name"]: t for t in replies[2]["result"]["tools"]}
    assert set(tools) == {"bash", "read_file", "write_file", "edit_file", "list_files", "grep",
                          "changes", "diff"}
    assert tools["read_file"]["annotations"]["readOnlyHint"] is True
    assert tools["bash"]["annotations"]["destructiveHint"] is True
    assert tools["edit_file"]["inputSchema"]["required"] == ["path", "old_string", "new_string"]


def test_without_dash_c_the_workspace_is_the_git_top_level(cli: Cli, workspace: Path) -> None:
    """Started in a subdirectory of a git work tree (as an agent's config usually does), the
    server is bound to the top level, as `sandbox run` is: not to the subdirectory."""
    require_nsjail()
    subprocess.run(["git", "init", "-q", str(workspace)], check=True)
    sub = workspace / "src"

    async def go() -> None:
        params = server_params(cli, workspace, "--session", "top", "--level", "2")
        at = params.args.index("-C")
        params = params.model_copy(update={"args": params.args[:at] + params.args[at + 2:],
                                           "cwd": str(sub)})
        async with Client(params, mode="legacy") as client:
            tools = Tools(client)
            assert "print('hi')" in await tools.ok("read_file", {"path": "src/app.py"})
            await tools.ok("write_file", {"path": "top.txt", "content": "at the top\n"})

    anyio.run(go)
    cli("approve", "top", check=True)
    assert (workspace / "top.txt").read_text() == "at the top\n"
    assert not (sub / "top.txt").exists()
