"""A bound on the long-lived streams a server holds at once (event streams, live watches).

Each stream costs the host something for as long as it lasts (a queue, an inotify observer and
its thread): a viewer opening them in a loop took the host's memory, threads and inotify. Past
the bound a request gets 429; a closed stream frees its place.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.responses import JSONResponse

__all__ = ["MAX_WATCHES", "StreamCap"]

MAX_WATCHES = 16  # live watches a server holds at once (each: a thread and inotify watches)


class StreamCap:
    """Counts the streams of one kind from their start to their end (a response never started
    holds nothing). Used on the event loop only, so a plain counter is enough."""

    def __init__(self, limit: int, what: str) -> None:
        self.limit, self.what, self.live = limit, what, 0

    def refusal(self) -> JSONResponse | None:
        """429 when no place is left, else None (checked before the stream is set up)."""
        if self.live < self.limit:
            return None
        return JSONResponse({"error": f"{self.limit} {self.what} are open; close one first"},
                            429, headers={"Retry-After": "5"})

    async def hold(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """The stream, counted while it lasts; those that passed `refusal` together are held
        to the bound here, with an error event instead."""
        if self.live >= self.limit:
            yield f'event: error\ndata: {{"error": "too many {self.what}"}}\n\n'.encode()
            return
        self.live += 1
        try:
            async for chunk in chunks:
                yield chunk
        finally:
            self.live -= 1
