"""Drive `sandbox mcp` through the official SDK's client over stdio, as an agent does: the real
CLI as a subprocess (as root, or as the unprivileged test user through runuser)."""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcp import Client
from mcp.client.stdio import StdioServerParameters

from tests.conftest import SANDBOX_BIN, Cli


def server_params(cli: Cli, ws: Path, *extra: str) -> StdioServerParameters:
    argv = [str(SANDBOX_BIN), "mcp", "-C", str(ws), *extra]
    env = cli.env()
    if cli.user is None:
        return StdioServerParameters(command=argv[0], args=argv[1:], env=env)
    runuser = shutil.which("runuser") or "/usr/sbin/runuser"
    return StdioServerParameters(command=runuser, args=[
        "-u", cli.user, "--", "env", "-i", *[f"{k}={v}" for k, v in env.items()], *argv])


@dataclass
class Tools:
    """A connected client with a terse call(): (is_error, text)."""

    client: Client

    async def call(self, name: str, args: dict[str, Any] | None = None) -> tuple[bool, str]:
        r = await self.client.call_tool(name, args or {})
        text = "\n".join(getattr(c, "text", "") for c in r.content)
        return bool(r.is_error), text

    async def ok(self, name: str, args: dict[str, Any] | None = None) -> str:
        err, text = await self.call(name, args)
        assert not err, f"{name} {args} failed: {text}"
        return text

    async def refused(self, name: str, args: dict[str, Any] | None = None) -> str:
        err, text = await self.call(name, args)
        assert err, f"{name} {args} was not refused: {text}"
        return text


@contextlib.asynccontextmanager
async def connect(cli: Cli, ws: Path, *extra: str, mode: str = "legacy") -> AsyncIterator[Tools]:
    async with Client(server_params(cli, ws, *extra), mode=mode) as client:
        yield Tools(client)


def tool_records(cli: Cli, session: str) -> list[dict[str, Any]]:
    """The session's `tool.call` audit records."""
    records: Sequence[dict[str, Any]] = json.loads(
        cli("audit", session, "--json", check=True).stdout)
    return [r for r in records if r.get("event") == "tool.call"]
