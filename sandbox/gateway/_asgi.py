"""The model endpoints' requests as raw ASGI, without Starlette's Request and routing.

Every LLM call pays for what the server does around it, and Starlette's middleware stack, router
and Request object were a measurable part of the gateway's per-call CPU. The three model
endpoints are matched by exact path here and read straight from the ASGI messages; everything
else (health, metrics, models, count_tokens, a wrong method or path) still goes to Starlette.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.applications import Starlette

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping, Sequence

    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import BaseRoute
    from starlette.types import Lifespan, Receive, Scope, Send

    from sandbox.gateway._usage import Api

__all__ = ["GatewayApp", "Incoming"]


@dataclass(frozen=True)
class Incoming:
    """What a model endpoint reads of a request."""

    headers: Mapping[str, str]  # lower-case names; the first of a repeated header
    query: str
    body: bytes
    over: bool = False  # the body passed the size limit (what passed it was not kept)

    @classmethod
    async def read(cls, scope: Scope, receive: Receive, limit: int) -> Incoming | None:
        """The request; None when the client went away before sending all of it. A body
        over `limit` is read to its end (the connection stays usable) but not kept."""
        headers: dict[str, str] = {}
        for name, value in scope["headers"]:
            headers.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
        parts: list[bytes] = []
        size, more = 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return None  # http.disconnect
            chunk = message.get("body", b"")
            size += len(chunk)
            if size <= limit:
                parts.append(chunk)
            more = message.get("more_body", False)
        query = scope.get("query_string", b"").decode("latin-1")
        return cls(headers, query, b"".join(parts) if size <= limit else b"", size > limit)

    @classmethod
    async def of(cls, request: Request, limit: int) -> Incoming:
        """The same from a Starlette request (the endpoints still routed by Starlette)."""
        body = await request.body()
        headers: dict[str, str] = {}
        for name, value in request.headers.items():
            headers.setdefault(name, value)
        over = len(body) > limit
        return cls(headers, request.url.query, b"" if over else body, over)


class GatewayApp(Starlette):
    """Starlette (health, metrics, models, count_tokens, lifespan, 404/405), with POSTs to the
    model endpoints (`models`: route path -> Api) answered by `call` before Starlette's stack.
    Still a Starlette app, so `sandbox serve` mounts it and runs its lifespan as before."""

    def __init__(self, models: Mapping[str, Api], call: Callable[[Incoming, Api], Awaitable[Response]],
                 limit: int, routes: Sequence[BaseRoute], lifespan: Lifespan[Starlette]) -> None:
        super().__init__(routes=routes, lifespan=lifespan)
        self.models, self.call, self.limit = models, call, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            path, root = scope["path"], scope.get("root_path", "")
            if root and path.startswith(root):  # mounted (sandbox serve's /llm): path includes it
                path = path[len(root):]
            api = self.models.get(path)
            if api is not None:
                incoming = await Incoming.read(scope, receive, self.limit)
                if incoming is None:
                    return  # nobody to answer
                response = await self.call(incoming, api)
                await response(scope, receive, send)
                return
        await super().__call__(scope, receive, send)
