"""MCP over streamable HTTP for agent sessions, hosted by `sandbox serve`.

An admin (or the agent host acting for one) opens a session with
`POST /api/v1/mcp/sessions {"workspace": ..., "level": N, "session": NAME}` and gets its URL
(`/mcp/ID`) and a bearer token for that session alone. Each session is the same MCP server as
`sandbox mcp` (sandbox/mcp: tool calls as runs of the session), served with the SDK's
streamable-HTTP transport. Every request to `/mcp/ID` must carry that session's token (another
session's token is refused: 403), and a browser Origin other than this server's is refused (the
SDK's DNS-rebinding protection checks Host and Origin too). `DELETE /api/v1/mcp/sessions/ID`
ends it: the level then decides on what the agent changed, as when a stdio client leaves.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from starlette.responses import JSONResponse
from starlette.routing import Route

from sandbox.errors import NotFoundError, UsageError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.types import Receive, Scope, Send

    from sandbox.mcp._server import Worker
    from sandbox.mcp._session import McpSession
    from sandbox.server._app import Server
    from sandbox.server._auth import Principal

__all__ = ["McpHost", "mcp_routes"]


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass
class _Hosted:
    id: str
    token_sha256: str
    app: Starlette
    worker: Worker
    session: McpSession
    stop: asyncio.Event
    task: asyncio.Task[None]


@dataclass
class McpHost:
    home: Path
    hosts: tuple[str, ...] = ()  # Host header values this server answers to
    sessions: dict[str, _Hosted] = field(default_factory=dict)

    async def open(self, body: Mapping[str, object]) -> dict[str, object]:
        from mcp.server.transport_security import TransportSecuritySettings

        from sandbox._runner import check_workspace
        from sandbox.mcp import McpConfig
        from sandbox.mcp._server import Worker, build_server
        from sandbox.mcp._session import McpSession
        from sandbox.policy import Layer, load_policy

        unknown = set(body) - {"workspace", "level", "session"}
        if unknown:
            raise UsageError(f"unknown field(s): {', '.join(sorted(unknown))}")
        ws, level, name = body.get("workspace"), body.get("level"), body.get("session")
        if not isinstance(ws, str) or not ws.startswith("/"):
            raise UsageError("workspace must be an absolute path")
        if level is not None and level not in (1, 2, 3, 4):
            raise UsageError("level must be 1, 2, 3 or 4")
        if name is not None and not isinstance(name, str):
            raise UsageError("session must be a string")
        workspace = check_workspace(Path(ws))
        flags = Layer("api", "level=", {"level": level}) if level is not None else None
        effective = await asyncio.to_thread(load_policy, workspace, flags=flags)
        worker = Worker()
        try:
            session = await asyncio.to_thread(worker.sync, lambda: McpSession(McpConfig(
                workspace=workspace, policy=effective, session=name, home=self.home)))
        except BaseException:
            worker.close()
            raise
        sid = session.id
        if sid in self.sessions:
            await asyncio.to_thread(worker.sync, session.close)
            worker.close()
            raise UsageError(f"session {sid} is already served over MCP")
        hosts = list(self.hosts)
        security = TransportSecuritySettings(
            enable_dns_rebinding_protection=True, allowed_hosts=hosts,
            allowed_origins=[f"{scheme}://{h}" for h in hosts for scheme in ("http", "https")])
        app = build_server(worker, session).streamable_http_app(
            streamable_http_path=f"/mcp/{sid}", transport_security=security)
        started, stop = asyncio.Event(), asyncio.Event()

        async def lifespan() -> None:
            # The transport's task group must be entered and left by one task: this one.
            async with app.router.lifespan_context(app):
                started.set()
                await stop.wait()

        task = asyncio.create_task(lifespan())
        waiter = asyncio.create_task(started.wait())
        await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if task.done():
            await asyncio.to_thread(worker.sync, session.close)
            worker.close()
            task.result()  # raises what stopped it
        secret = "sbx_mcp_" + secrets.token_urlsafe(32)
        self.sessions[sid] = _Hosted(sid, _digest(secret), app, worker, session, stop, task)
        return {"session": sid, "url": f"/mcp/{sid}", "token": secret}

    async def close(self, sid: str) -> dict[str, object]:
        hosted = self.sessions.pop(sid, None)
        if hosted is None:
            raise NotFoundError(f"no MCP session {sid!r} is served here")
        try:
            hosted.stop.set()
            await hosted.task
            finished = await asyncio.to_thread(hosted.worker.sync, hosted.session.finish)
            return {"session": sid, "state": str(finished.session.state),
                    "changes": len(finished.changeset.changes)}
        finally:
            await asyncio.to_thread(hosted.worker.sync, hosted.session.close)
            hosted.worker.close()

    async def close_all(self) -> None:
        for sid in list(self.sessions):
            with contextlib.suppress(Exception):
                await self.close(sid)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """/mcp/ID: the session's own token, then the session's streamable-HTTP app."""
        parts = str(scope.get("path", "")).split("/")
        hosted = self.sessions.get(parts[2]) if len(parts) > 2 else None
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers", [])}
        status, message = 0, ""
        auth = headers.get("authorization", "")
        presented = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        if hosted is None:
            status, message = 404, "no such MCP session"
        elif not presented:
            status, message = 401, "this MCP session needs its bearer token"
        elif not hmac.compare_digest(_digest(presented), hosted.token_sha256):
            other = any(hmac.compare_digest(_digest(presented), h.token_sha256)
                        for h in self.sessions.values())
            status, message = ((403, "that token belongs to another session") if other
                               else (401, "unknown token"))
        if status:
            extra = {"WWW-Authenticate": "Bearer"} if status == 401 else None
            await JSONResponse({"error": message}, status, headers=extra)(scope, receive, send)
            return
        assert hosted is not None
        await hosted.app(scope, receive, send)


def mcp_routes(server: Server) -> list[Route]:
    """Opening and closing MCP sessions (admin), and the sessions themselves at /mcp/ID."""
    from sandbox.server._api import guarded, read_json
    from sandbox.server._tokens import Role

    async def open_session(request: Request, _who: Principal) -> Response:
        return JSONResponse(await server.mcp.open(await read_json(request)), status_code=201)

    async def close_session(request: Request, _who: Principal) -> Response:
        return JSONResponse(await server.mcp.close(request.path_params["sid"]))

    return [
        Route("/api/v1/mcp/sessions", guarded(server, Role.ADMIN, open_session),
              methods=["POST"]),
        Route("/api/v1/mcp/sessions/{sid}", guarded(server, Role.ADMIN, close_session),
              methods=["DELETE"]),
        Route("/mcp/{sid}", server.mcp),
    ]
