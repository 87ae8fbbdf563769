"""Live events for the console and API clients (server-sent events): every audit record as it
is checked (runs, tool calls, LLM calls, changesets, decisions, commits, egress, denials).

The audit log is the one source: what the events say is exactly what the log says."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from sandbox.audit._record import AuditRecord

__all__ = ["MAX_SUBSCRIBERS", "EventHub"]

_QUEUE = 1000  # a subscriber this far behind is dropped (it reconnects and re-reads the log)
_KEEPALIVE_S = 15.0
MAX_SUBSCRIBERS = 16  # streams a server holds at once (each: a queue of up to _QUEUE records)


@dataclass
class EventHub:
    loop: asyncio.AbstractEventLoop | None = None
    _subscribers: set[asyncio.Queue[AuditRecord | None]] = field(default_factory=set)

    def publish(self, records: Sequence[AuditRecord]) -> None:
        """From any thread."""
        loop = self.loop
        if loop is not None and records:
            loop.call_soon_threadsafe(self._fan_out, list(records))

    def _fan_out(self, records: list[AuditRecord]) -> None:
        for q in list(self._subscribers):
            for r in records:
                try:
                    q.put_nowait(r)
                except asyncio.QueueFull:
                    self._subscribers.discard(q)
                    with contextlib.suppress(asyncio.QueueFull):
                        q.put_nowait(None)
                    break

    async def stream(self, session: str | None = None) -> AsyncIterator[bytes]:
        # Bounded by the server's StreamCap (each subscriber holds a queue of up to _QUEUE
        # records, and the fan-out visits each).
        q: asyncio.Queue[AuditRecord | None] = asyncio.Queue(_QUEUE)
        self._subscribers.add(q)
        try:
            yield b": connected\n\n"
            while True:
                try:
                    rec = await asyncio.wait_for(q.get(), _KEEPALIVE_S)
                except TimeoutError:
                    yield b": keepalive\n\n"
                    continue
                if rec is None:
                    return
                if session is not None and rec.session != session:
                    continue
                data = json.dumps(rec.to_json(), separators=(",", ":"))
                yield f"id: {rec.seq}\nevent: {rec.event}\ndata: {data}\n\n".encode()
        finally:
            self._subscribers.discard(q)
