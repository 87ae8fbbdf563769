"""The ASGI app of `sandbox serve` (Starlette) and what it holds while it runs."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from starlette.applications import Starlette

from sandbox.audit import AuditLog
from sandbox.server._caps import MAX_WATCHES, StreamCap
from sandbox.server._events import MAX_SUBSCRIBERS, EventHub
from sandbox.server._logins import Logins
from sandbox.server._tokens import TokenStore

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

    from sandbox._home import HomeLayout
    from sandbox.gateway._app import Gateway
    from sandbox.server._checkpoint import Checkpointer
    from sandbox.server._sender import Sender

__all__ = ["Server"]


class _Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.checkpoints = Counter("sandbox_audit_checkpoints", "Signed checkpoints written",
                                   registry=r)
        self.signed_seq = Gauge("sandbox_audit_signed_seq", "Last audit seq signed", registry=r)
        self.broken = Gauge("sandbox_audit_signing_stopped",
                            "1 once the log stopped extending the signed chain", registry=r)
        self.decisions = Counter("sandbox_serve_decisions", "Decisions taken through serve",
                                 ["decision"], registry=r)
        self.forward_behind = Gauge(
            "sandbox_audit_forward_behind",
            "Checked audit records a --forward target has not taken yet (0: caught up)",
            ["target"], registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)


@dataclass
class Server:
    layout: HomeLayout
    checkpointer: Checkpointer
    tokens: TokenStore
    socket_owner: bool  # listening on the owner-only unix socket: no token means the owner
    interval: float = 1.0
    gateway: Gateway | None = None  # hosted at /llm when a gateway config was found
    hosts: tuple[str, ...] = ("localhost",)  # Host header values this server answers to
    csrf_key: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    senders: Sequence[Sender] = ()  # one per --forward target, each on its own thread

    def __post_init__(self) -> None:
        self.metrics = _Metrics()
        self.audit = AuditLog(self.layout.audit)
        self.events = EventHub()
        self.logins = Logins(self.tokens)  # console sessions: the browser never holds a token
        # Long-lived streams, each bounded (a viewer opening them in a loop took the host's
        # memory, threads and inotify): event streams and live watches.
        self.event_streams = StreamCap(MAX_SUBSCRIBERS, "event streams")
        self.watches = StreamCap(MAX_WATCHES, "live watches")
        self.checkpointer.listeners.append(self.events.publish)
        self.checkpointer.signed.extend(s.notify for s in self.senders)
        from sandbox.server._mcp import McpHost

        self.mcp = McpHost(self.layout.root, self.hosts)

    def metrics_text(self) -> bytes:
        """The Prometheus exposition, with each forwarding target's backlog as of now."""
        head = self.checkpointer.head.seq
        for sender in self.senders:
            self.metrics.forward_behind.labels(sender.shown).set(sender.behind(head))
        return self.metrics.render()

    def sign_now(self) -> None:
        """Check, forward and sign what is new (blocking: call it off the event loop)."""
        cp = self.checkpointer.poll()
        if cp is not None:
            self.metrics.checkpoints.inc()
            self.metrics.signed_seq.set(cp.seq)
        self.metrics.broken.set(1 if self.checkpointer.broken else 0)

    async def _signer(self) -> None:
        while True:
            await asyncio.to_thread(self.sign_now)
            await asyncio.sleep(self.interval)

    @asynccontextmanager
    async def _lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        self.events.loop = asyncio.get_running_loop()
        cp = self.checkpointer
        for sender in self.senders:  # catch up from each cursor, then follow the signing
            sender.start(cp.head, cp.offset, cp.last)
        task = asyncio.create_task(self._signer())
        try:
            if self.gateway is None:
                yield
            else:  # a mounted app's lifespan does not run by itself: its HTTP client pool
                app = self._gateway_app
                assert app is not None  # app() mounted it
                async with app.router.lifespan_context(app):
                    yield
        finally:
            await self.mcp.close_all()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await asyncio.to_thread(self.sign_now)  # sign what arrived since the last poll
            for sender in self.senders:  # a moment to deliver; the rest waits at the cursor
                await asyncio.to_thread(sender.stop, 2.0)

    _gateway_app: Starlette | None = None

    def app(self) -> Starlette:
        from starlette.routing import BaseRoute, Mount

        from sandbox.server._admin import admin_routes
        from sandbox.server._api import api_routes
        from sandbox.server._console import console_routes
        from sandbox.server._mcp import mcp_routes

        routes: list[BaseRoute] = [*api_routes(self), *admin_routes(self), *mcp_routes(self),
                                   *console_routes(self)]
        if self.gateway is not None:
            # The gateway authenticates its own callers (virtual keys), as `gateway serve` does.
            self._gateway_app = self.gateway.app()
            routes.append(Mount("/llm", app=self._gateway_app))
        return Starlette(routes=routes, lifespan=self._lifespan)
