"""Attacks through the MCP tools of `sandbox mcp` (driven by the SDK's client over stdio, as root
and as an unprivileged user): the file tools never reach outside the workspace, never show a
hidden file, never write through a symlink; outputs stay bounded; a cancelled command leaves
nothing running. Each attack is checked to have reached the server (a readable refusal)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import anyio
import psutil
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from tests.conftest import Cli, give, make_tree
from tests.integration.test_docker_backend import require_docker
from tests.support.mcp_client import Tools, connect, server_params, tool_records

SECRET = "TOPSECRET-4d1f"
FINDS_SECRET = "SECRET-4d1[f]"  # a regex matching it that does not contain it


def _plant(ws: Path, outside: Path) -> None:
    make_tree(ws, {".env": f"KEY={SECRET}\n", "secrets/deploy.pem": f"{SECRET}\n",
                   "blob.bin": b"\x00\x01\x02binary\x00" * 100,
                   "big.txt": "".join(f"line {i}\n" for i in range(1, 5001))})
    outside.mkdir(exist_ok=True)
    (outside / "outside.txt").write_text(f"OUTSIDE {SECRET}\n")
    os.symlink("/etc", ws / "link_out")
    os.symlink(str(outside / "outside.txt"), ws / "abs_link")
    os.symlink("../outside", ws / "rel_out")
    os.symlink("src", ws / "inner")  # inside the workspace: allowed


def test_file_tools_stay_inside_the_workspace(sbx: tuple[Cli, Path], base_dir: Path) -> None:
    cli, ws = sbx
    outside = base_dir / "outside"
    _plant(ws, outside)
    give(cli, ws)

    async def attack() -> None:
        async with connect(cli, ws, "--session", "attacks") as t:
            # the tools work at all: a read through an inside symlink succeeds
            assert "print('hi')" in await t.ok("read_file", {"path": "inner/app.py"})
            assert "print('hi')" in await t.ok("read_file", {"path": "/workspace/src/app.py"})
            for path in ("../outside/outside.txt", str(outside / "outside.txt"),
                         "src/../../outside/outside.txt", "link_out/passwd", "abs_link",
                         "rel_out/outside.txt", "/etc/passwd", ".env", "secrets/deploy.pem",
                         "src/../.env"):
                text = await t.refused("read_file", {"path": path})
                assert SECRET not in text and "root:x:0" not in text, (path, text)
            for args in ({"pattern": FINDS_SECRET}, {"pattern": FINDS_SECRET, "path": "secrets"},
                         {"pattern": "KEY", "glob": ".env"}, {"pattern": "root", "path": "link_out"}):
                _err, text = await t.call("grep", args)
                assert SECRET not in text and "root:x:0" not in text, (args, text)
            assert "no matches" in (await t.call("grep", {"pattern": FINDS_SECRET}))[1]
            listing = await t.ok("list_files", {})
            assert "README.md" in listing and ".env" not in listing
            assert "deploy.pem" not in await t.ok("list_files", {"path": "secrets"})
            assert "no paths" in await t.ok("list_files", {"pattern": "**/*.pem"})
            # writes: never outside, never through a symlink, never onto a hidden path
            for path in ("../escape.txt", str(outside / "w.txt"), "link_out/evil", "abs_link",
                         "rel_out/w.txt", ".env", "secrets/new.pem", "bad\nname"):
                await t.refused("write_file", {"path": path, "content": "pwned"})
            # a symlink the session itself made (in a run) is no way out either
            await t.ok("bash", {"command": f"ln -s {outside} made_link && ln -s /etc made_etc"})
            await t.refused("write_file", {"path": "made_link/w.txt", "content": "pwned"})
            await t.refused("write_file", {"path": "made_etc/evil", "content": "pwned"})
            await t.refused("read_file", {"path": "made_link/outside.txt"})
            await t.refused("edit_file", {"path": "made_link/outside.txt",
                                          "old_string": "OUTSIDE", "new_string": "x"})
            assert "pending" in await t.ok("write_file", {"path": "ok/new.txt", "content": "fine\n"})

    anyio.run(attack)
    assert not (base_dir / "escape.txt").exists() and not (outside / "w.txt").exists()
    assert not Path("/etc/evil").exists() and not (ws / "ok").exists()
    assert (ws / ".env").read_text() == f"KEY={SECRET}\n"
    assert (outside / "outside.txt").read_text() == f"OUTSIDE {SECRET}\n"
    # every call is one audit record; refusals say so
    statuses = [r["data"]["status"] for r in tool_records(cli, "attacks")]
    assert statuses.count("refused") >= 20 and "ok" in statuses


def test_outputs_stay_bounded(cli: Cli, workspace: Path) -> None:
    _plant(workspace, workspace.parent / "outside")

    async def go() -> None:
        async with connect(cli, workspace) as t:
            text = await t.ok("bash", {"command": "head -c 3000000 /dev/zero | tr '\\0' a; "
                                                  "head -c 100000 /dev/urandom >&2; echo done"})
            assert "exit status: 0" in text and "stdout cut" in text and "stderr cut" in text
            assert len(text) < 100_000
            assert "binary file" in await t.ok("read_file", {"path": "blob.bin"})
            first = await t.ok("read_file", {"path": "big.txt"})
            assert "line 2000" in first and "line 2001\n" not in first and "offset=2001" in first
            rest = await t.ok("read_file", {"path": "big.txt", "offset": 4999})
            assert "line 4999" in rest and "line 5000" in rest and "offset=" not in rest
            err, text = await t.call("read_file", {"path": "big.txt", "offset": "x"})
            assert err and "offset" in text  # a wrong type is a tool error the model can read
            # a long command reports progress while it runs: it runs until two reports came
            seen: list[tuple[float, str | None]] = []
            marker = _marker()

            async def progress(progress: float, total: float | None,
                               message: str | None) -> None:
                seen.append((progress, message))
                if len(seen) == 2:  # enough: let the command finish
                    for pid in _sleepers(marker):
                        os.kill(pid, 15)

            with anyio.fail_after(60):
                r = await t.client.call_tool("bash", {"command": f"sleep {marker}; echo slept"},
                                             progress_callback=progress)
            assert not r.is_error and len(seen) >= 2, seen
            assert seen[0][1] == "running for 1s" and seen[1][0] > seen[0][0]

    anyio.run(go)


@pytest.mark.parametrize("backend", ["nsjail", "docker"])
def test_cancelled_bash_leaves_nothing_running(cli: Cli, workspace: Path, backend: str) -> None:
    if backend == "docker":
        require_docker()
    marker = _marker()

    async def go() -> None:
        async with connect(cli, workspace, "--session", "cancel", "--backend", backend) as t:
            async with anyio.create_task_group() as tg:
                async def call() -> None:
                    await t.call("bash", {"command": f"echo started > s.txt; sleep {marker}"})

                tg.start_soon(call)
                deadline = time.monotonic() + 60
                while not _sleepers(marker):  # cancel once the command is going, not at a guess
                    assert time.monotonic() < deadline, "the command never started"
                    await anyio.sleep(0.05)
                tg.cancel_scope.cancel()
            deadline = time.monotonic() + 5
            while _sleepers(marker) and time.monotonic() < deadline:
                await anyio.sleep(0.1)
            assert not _sleepers(marker), "the sandboxed command survived its cancellation"
            # the server is still there, and what the command wrote stays pending
            assert "s.txt" in await t.ok("changes")

    anyio.run(go)
    records = tool_records(cli, "cancel")
    assert records[0]["data"]["tool"] == "bash"
    assert records[0]["data"]["status"] == "cancelled", records[0]["data"].get("error")


def _marker() -> str:
    """A `sleep` duration no other process on the machine uses, to find this test's command."""
    return f"{int(time.time() * 1000) % 100000 + 300000}"


def _sleepers(marker: str) -> list[int]:
    found = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = p.info.get("cmdline") or []
        if cmd[:1] == ["sleep"] and marker in cmd:
            found.append(p.pid)
    return found


def test_git_credentials_stay_out_of_the_file_tools(cli: Cli, workspace: Path) -> None:
    """A run sees .git/config without credentials; so does read_file/grep (the same bytes)."""
    token = "ghp_mcpTOKEN9f8e7d6c5b4a"
    subprocess.run(["git", "init", "-q", str(workspace)], check=True)
    subprocess.run(["git", "-C", str(workspace), "config", "remote.origin.url",
                    f"https://bot:{token}@git.example.com/org/repo.git"], check=True)

    async def go() -> None:
        async with connect(cli, workspace) as t:
            shown = await t.ok("read_file", {"path": ".git/config"})
            assert "[remote \"origin\"]" in shown and "git.example.com" in shown
            assert token not in shown
            _err, found = await t.call("grep", {"pattern": "mcpTOKEN", "path": ".git"})
            assert token not in found and "no matches" in found
            inside = await t.ok("bash", {"command": "cat .git/config"})
            assert token not in inside and "git.example.com" in inside
            await t.refused("write_file", {"path": ".git/config", "content": "[core]\n"})
            await t.refused("edit_file", {"path": ".git/config", "old_string": "origin",
                                          "new_string": "evil"})

    anyio.run(go)
    assert token in (workspace / ".git/config").read_text()


def test_a_grep_pattern_cannot_exhaust_the_servers_memory(cli: Cli, workspace: Path) -> None:
    """grep runs in the MCP server, on the host, outside any sandbox: a pattern whose compiled
    form explodes (`regex` expanded nested counted repeats: ~0.7 GB a second, without end) took
    the host's memory. The server here may use 2 GB of address space; the pattern is refused at
    once with a message the model can read, and the server answers the next call."""
    base = server_params(cli, workspace, "--session", "redos")
    capped = StdioServerParameters(command=shutil.which("prlimit") or "/usr/bin/prlimit",
                                   args=[f"--as={2 << 30}", "--", base.command, *base.args],
                                   env=base.env)

    async def attack() -> None:
        async with Client(capped, mode="legacy") as client:
            t = Tools(client)
            with anyio.fail_after(60):
                text = await t.refused("grep", {"pattern": "(?:(?:a{1000}){1000}){1000}"})
            assert "not a valid regular expression" in text and "repetition" in text, text
            assert "README.md:1:hello" in await t.ok("grep", {"pattern": "hel+o"})

    anyio.run(attack)
    records = [r["data"] for r in tool_records(cli, "redos")]
    assert [r["status"] for r in records] == ["refused", "ok"], records
