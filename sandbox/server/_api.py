"""The JSON API under /api/v1/: thin handlers over the library (no governance rule here).

Every handler authenticates first (401 without a valid token, 403 for a role that may not),
runs the library call off the event loop, and maps the SandboxError tree to 4xx/5xx with a
one-line message. Request bodies are validated before anything is touched.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from sandbox.errors import (
    CommitError,
    ConflictError,
    ForbiddenChangeError,
    NotFoundError,
    SandboxError,
    SessionBusyError,
    UsageError,
)
from sandbox.server._auth import Denied, Principal, authenticate
from sandbox.server._tokens import Role

if TYPE_CHECKING:
    from starlette.requests import Request

    from sandbox.server._app import Server

__all__ = ["api_routes", "guarded", "read_json"]

MAX_BODY = 1 << 20
Handler = Callable[["Request", Principal], Awaitable[Response]]


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def status_of(exc: SandboxError) -> int:
    """HTTP status for a library error: the request was wrong (4xx) or we failed (5xx)."""
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, ConflictError | ForbiddenChangeError):
        return 409
    if isinstance(exc, UsageError | CommitError):
        return 400 if isinstance(exc, UsageError) else 409
    return 409 if isinstance(exc, SessionBusyError) else 500  # a run of it is going


def guarded(server: Server, needed: Role, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            who = authenticate(request, server.tokens, server.logins, socket_owner=server.socket_owner,
                               csrf_key=server.csrf_key, needed=needed)
        except Denied as exc:
            headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
            return JSONResponse({"error": exc.message}, status_code=exc.status, headers=headers)
        try:
            return await handler(request, who)
        except SandboxError as exc:
            return _error(status_of(exc), str(exc))

    return endpoint


def query_limit(request: Request, default: int, most: int) -> int:
    try:
        limit = int(request.query_params.get("limit", str(default)))
    except ValueError as exc:
        raise UsageError("limit must be a number") from exc
    if not 1 <= limit <= most:
        raise UsageError(f"limit must be between 1 and {most}")
    return limit


async def read_json(request: Request) -> dict[str, object]:
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        raise UsageError("the body must be JSON (Content-Type: application/json)")
    body = await request.body()
    if len(body) > MAX_BODY:
        raise UsageError(f"the body is over {MAX_BODY} bytes")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise UsageError("the body is not valid JSON") from exc
    if not isinstance(data, dict):
        raise UsageError("the body must be a JSON object")
    return data


def api_routes(server: Server) -> list[Route]:
    async def whoami(_request: Request, who: Principal) -> Response:
        return JSONResponse({"name": who.name, "role": str(who.role), "via": who.via})

    async def audit(request: Request, _who: Principal) -> Response:
        session = request.query_params.get("session") or None
        limit = query_limit(request, 1000, 100_000)

        def read() -> list[dict[str, object]]:
            records = [r.to_json() for r in server.audit.records(session=session)]
            return records[-limit:]

        return JSONResponse({"records": await asyncio.to_thread(read)})

    async def report(request: Request, _who: Principal) -> Response:
        from sandbox.report import build_report, parse_when

        q = request.query_params
        since = parse_when(q["since"]) if q.get("since") else None
        until = parse_when(q["until"], end_of_day=True) if q.get("until") else None
        data = await asyncio.to_thread(build_report, server.audit, since=since, until=until,
                                       workspace=q.get("workspace") or None)
        return JSONResponse(data)

    async def events(request: Request, _who: Principal) -> Response:
        if (refused := server.event_streams.refusal()) is not None:
            return refused
        stream = server.events.stream(request.query_params.get("session"))
        return StreamingResponse(server.event_streams.hold(stream),
                                 media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store"})

    async def signing(_request: Request, _who: Principal) -> Response:
        cp = server.checkpointer
        return JSONResponse({"key": cp.key.id, "signed_seq": cp.head.seq,
                             "signed_hash": cp.head.hash, "stopped": cp.broken})

    async def metrics(_request: Request, _who: Principal) -> Response:
        return Response(server.metrics_text(), media_type="text/plain; version=0.0.4")

    v = "/api/v1"
    routes = [
        Route(f"{v}/whoami", guarded(server, Role.VIEWER, whoami)),
        Route(f"{v}/audit", guarded(server, Role.VIEWER, audit)),
        Route(f"{v}/audit/signing", guarded(server, Role.VIEWER, signing)),
        Route(f"{v}/report", guarded(server, Role.VIEWER, report)),
        Route(f"{v}/events", guarded(server, Role.VIEWER, events)),
        Route("/metrics", guarded(server, Role.VIEWER, metrics)),
    ]
    return routes + _session_routes(server)


def _session_routes(server: Server) -> list[Route]:
    from sandbox.server import _sessions

    async def sessions(request: Request, _who: Principal) -> Response:
        limit = query_limit(request, 200, 10_000)
        rows = await asyncio.to_thread(_sessions.list_sessions, server,
                                       request.query_params.get("state"), limit)
        return JSONResponse({"sessions": rows})

    async def one(request: Request, _who: Principal) -> Response:
        sid = request.path_params["sid"]
        return JSONResponse(await asyncio.to_thread(_sessions.session_json, server, sid))

    async def diff(request: Request, _who: Principal) -> Response:
        sid = request.path_params["sid"]
        return JSONResponse(await asyncio.to_thread(_sessions.diff_json, server, sid))

    def deciding(accept: bool) -> Handler:
        async def handler(request: Request, who: Principal) -> Response:
            req = _sessions.parse_decision(await read_json(request))
            sid = request.path_params["sid"]
            out = await asyncio.to_thread(_sessions.decide, server, sid, req, accept=accept,
                                          actor=who.actor)
            server.metrics.decisions.labels("approve" if accept else "reject").inc()
            await asyncio.to_thread(server.sign_now)  # the decision is signed at once
            return JSONResponse(out)

        return handler

    async def watch(request: Request, _who: Principal) -> Response:
        from sandbox.server._watch import watch_session

        # Each live watch is an inotify observer (a thread, a watch per directory).
        if (refused := server.watches.refusal()) is not None:
            return refused
        sid = request.path_params["sid"]
        where = await asyncio.to_thread(_sessions.watch_target, server, sid)
        return StreamingResponse(server.watches.hold(watch_session(*where)), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store"})

    v = "/api/v1/sessions"
    return [
        Route(v, guarded(server, Role.VIEWER, sessions)),
        Route(v + "/{sid}", guarded(server, Role.VIEWER, one)),
        Route(v + "/{sid}/diff", guarded(server, Role.VIEWER, diff)),
        Route(v + "/{sid}/watch", guarded(server, Role.VIEWER, watch)),
        Route(v + "/{sid}/approve", guarded(server, Role.REVIEWER, deciding(True)),
              methods=["POST"]),
        Route(v + "/{sid}/reject", guarded(server, Role.REVIEWER, deciding(False)),
              methods=["POST"]),
    ]
