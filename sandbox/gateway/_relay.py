"""Relaying one upstream response to the client, and settling the call when it ends.

Streams are relayed event by event as they arrive. If the client goes away mid-stream, the
gateway keeps reading upstream until the provider's final usage report, so the call is billed
as the provider bills it; if that report never comes, the call is charged its reservation —
never zero.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import aiohttp
from starlette.responses import Response

from sandbox.gateway._upstream import reply_headers
from sandbox.gateway._usage import SseSplitter, StreamTracker, Usage, usage_from_json

if TYPE_CHECKING:
    from starlette.types import Receive, Scope, Send

    from sandbox.gateway._budget import Reservation
    from sandbox.gateway._config import Price, Provider
    from sandbox.gateway._keys import VirtualKey
    from sandbox.gateway._usage import Api

__all__ = ["Call", "Outcome", "RawResponse", "StreamRelay", "read_whole"]


@dataclass
class Outcome:
    status: int
    usage: Usage | None
    complete: bool  # the provider's final usage report was seen
    response: bytes
    disconnected: bool = False
    broken: bool = False  # the upstream failed mid-stream (after the client got the status)


@dataclass
class Call:
    """One admitted call, from reservation to settlement."""

    key: VirtualKey
    api: Api
    model: str
    stream: bool
    request: dict[str, object]
    price: Price
    reservation: Reservation
    started: float
    finish: Callable[[Call, Outcome], None]
    provider: Provider | None = None
    attempts: int = 0
    ttfb: float | None = None
    done: bool = field(default=False)
    scanned: bool = False  # the request was scanned for secrets before it left (and is clean)

    def settle(self, outcome: Outcome) -> None:
        if not self.done:
            self.done = True
            self.finish(self, outcome)


class RawResponse(Response):
    """A complete response with headers exactly as given (no charset or length guessing)."""

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        self.status_code, self.body = status, body
        self.raw_headers = [*headers, (b"content-length", str(len(body)).encode())]
        self.background = None


async def read_whole(call: Call, resp: aiohttp.ClientResponse) -> RawResponse:
    try:
        data = await resp.read()
    except (TimeoutError, aiohttp.ClientError):
        call.settle(Outcome(502, None, False, b""))
        raise
    finally:
        resp.release()
    call.ttfb = time.monotonic() - call.started
    usage = None
    if resp.status < 400:
        with contextlib.suppress(ValueError):
            obj = json.loads(data)
            if isinstance(obj, dict):
                usage = usage_from_json(call.api, obj)
    call.settle(Outcome(resp.status, usage, usage is not None, data))
    return RawResponse(resp.status, reply_headers(resp.headers), data)


class StreamRelay(Response):
    def __init__(self, call: Call, resp: aiohttp.ClientResponse, tracker: StreamTracker,
                 decode: Callable[[bytes], bytes] | None = None) -> None:
        """`decode` turns the upstream's bytes into SSE (Bedrock's event stream)."""
        self.call, self.resp, self.tracker, self.decode = call, resp, tracker, decode
        self.status_code = resp.status
        self.raw_headers = reply_headers(resp.headers)
        if decode is not None:
            self.raw_headers = [(k, v) for k, v in self.raw_headers if k != b"content-type"]
            self.raw_headers.append((b"content-type", b"text/event-stream"))
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        call, resp, tracker = self.call, self.resp, self.tracker
        gone = asyncio.Event()

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()

        watcher = asyncio.create_task(watch())
        splitter = SseSplitter()
        kept = bytearray()
        status, broken = resp.status, False
        try:
            await send({"type": "http.response.start", "status": status, "headers": self.raw_headers})
            async for raw in resp.content.iter_any():
                chunk = self.decode(raw) if self.decode else raw
                if call.ttfb is None:
                    call.ttfb = time.monotonic() - call.started
                kept += chunk
                out = b"".join(e.raw for e in splitter.feed(chunk) if tracker.feed(e))
                if gone.is_set():
                    if tracker.complete:
                        break  # the final usage is in: nothing more to bill
                    continue
                if out:
                    await send({"type": "http.response.body", "body": out, "more_body": True})
            if not gone.is_set():
                await send({"type": "http.response.body", "body": splitter.rest(), "more_body": False})
        except (TimeoutError, aiohttp.ClientError):
            broken = True  # too late to fall back (the client has bytes): end the stream
        finally:
            watcher.cancel()
            resp.release()
            call.settle(Outcome(status, tracker.usage, tracker.complete, bytes(kept), gone.is_set(),
                                broken))
