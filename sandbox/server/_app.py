"""The ASGI app of `sandbox serve` (Starlette) and what it holds while it runs."""

from __future__ import annotations

import asyncio
import contextlib
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from sandbox._home import HomeLayout
    from sandbox.server._checkpoint import Checkpointer

__all__ = ["Server"]


class _Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.checkpoints = Counter("sandbox_audit_checkpoints", "Signed checkpoints written",
                                   registry=r)
        self.signed_seq = Gauge("sandbox_audit_signed_seq", "Last audit seq signed", registry=r)
        self.broken = Gauge("sandbox_audit_signing_stopped",
                            "1 once the log stopped extending the signed chain", registry=r)


@dataclass
class Server:
    layout: HomeLayout
    checkpointer: Checkpointer
    interval: float = 1.0

    def __post_init__(self) -> None:
        self.metrics = _Metrics()

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
        task = asyncio.create_task(self._signer())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await asyncio.to_thread(self.sign_now)  # sign what arrived since the last poll

    async def _metrics(self, _request: Request) -> Response:
        return Response(generate_latest(self.metrics.registry),
                        media_type="text/plain; version=0.0.4")

    async def _signing(self, _request: Request) -> Response:
        cp = self.checkpointer
        return JSONResponse({"key": cp.key.id, "signed_seq": cp.head.seq,
                             "signed_hash": cp.head.hash, "stopped": cp.broken})

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/metrics", self._metrics),
                Route("/api/v1/audit/signing", self._signing),
            ],
            lifespan=self._lifespan,
        )
