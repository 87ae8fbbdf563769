"""MCP over streamable HTTP from `sandbox serve`: a session's tools through the official SDK's
client, with that session's bearer token only; other tokens and foreign Origins refused."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.conftest import Cli
from tests.support.serve import Client, free_port, make_token, serving

INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {},
    "clientInfo": {"name": "probe", "version": "1"}}}
MCP_HEADERS = {"Accept": "application/json, text/event-stream"}


async def _bash(url: str, token: str, command: str) -> str:
    from mcp import Client as McpClient
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    async with create_mcp_http_client(headers={"Authorization": f"Bearer {token}"}) as http, \
            McpClient(streamable_http_client(url, http_client=http)) as client:
        r = await client.call_tool("bash", {"command": command})
        assert not r.is_error, r.content
        return "\n".join(getattr(c, "text", "") for c in r.content)


def test_mcp_sessions_over_http(cli: Cli, workspace: Path) -> None:
    admin, rita = make_token(cli, "ada", "admin"), make_token(cli, "rita", "reviewer")
    listen = f"127.0.0.1:{free_port()}"
    with serving(cli, listen):
        api = Client(listen)
        body = {"workspace": str(workspace), "level": 2, "session": "agent-1"}
        assert api.post("/api/v1/mcp/sessions", body).status == 401
        assert api.with_token(rita).post("/api/v1/mcp/sessions", body).status == 403
        r = api.with_token(admin).post("/api/v1/mcp/sessions", body)
        assert r.status == 201, r.body
        one = r.json()
        two = api.with_token(admin).post(
            "/api/v1/mcp/sessions", {"workspace": str(workspace), "session": "agent-2"}).json()
        assert one["session"] == "agent-1" and one["token"] != two["token"]

        out = asyncio.run(_bash(f"http://{listen}{one['url']}", str(one["token"]),
                                "echo from-agent > made.txt; echo done"))
        assert "done" in out
        assert not (workspace / "made.txt").exists()  # held in the session, not committed

        # Refused: no token, another session's token, a foreign Origin.
        url2 = str(two["url"])
        assert api.post(url2, INIT, headers=MCP_HEADERS).status == 401
        r = api.with_token(str(one["token"])).post(url2, INIT, headers=MCP_HEADERS)
        assert r.status == 403 and b"another session" in r.body
        r = api.with_token(str(one["token"])).post(
            str(one["url"]), INIT, headers={**MCP_HEADERS, "Origin": "http://evil.example"})
        assert r.status == 403, r.body

        r = api.with_token(admin).request("DELETE", "/api/v1/mcp/sessions/agent-1")
        assert r.status == 200 and r.json()["state"] == "pending", r.body
        assert api.with_token(str(one["token"])).post(
            str(one["url"]), INIT, headers=MCP_HEADERS).status == 404
    p = cli("diff", "agent-1")
    assert p.returncode == 0 and b"from-agent" in p.stdout
