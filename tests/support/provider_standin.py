"""A local stand-in for LLM providers (Anthropic Messages, OpenAI Chat Completions and Responses),
for the gateway's tests and benchmark: real HTTP on loopback, served by aiohttp from a thread.

It checks the credential the way the provider does (x-api-key / Authorization: Bearer /
api-key), bills every answered call (its own count of spend, independent of the gateway's),
and can be told to fail (`fail_next`), to wait (`think`), or to stream slowly (`gap`).

    with ProviderStandIn(api_key="sk-up-secret") as up:
        up.url            # http://127.0.0.1:PORT  (OpenAI-style bases add /v1)
        up.billed         # list of Bill, one per answered call
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

from aiohttp import web


@dataclass(frozen=True)
class Bill:
    path: str
    model: str
    input: int
    output: int
    cache_read: int
    cache_write: int

    def cost(self, price: Mapping[str, float]) -> float:
        return (
            self.input * price["input"]
            + self.output * price["output"]
            + self.cache_read * price.get("cache_read", price["input"])
            + self.cache_write * price.get("cache_write", price["input"])
        ) / 1e6


@dataclass(frozen=True)
class Received:
    path: str
    headers: Mapping[str, str]
    body: Mapping[str, Any]
    raw: bytes = b""  # as it came: the body above keeps only the last of a repeated key
    query: str = ""


@dataclass
class ProviderStandIn:
    api_key: str | None = None
    input_tokens: int = 100
    output_tokens: int = 50
    cache_read: int = 0
    cache_write: int = 0
    think: float = 0.0  # seconds before the first byte
    gap: float = 0.0  # seconds between streamed events
    abort_after: int | None = None  # drop the connection after this many streamed events
    text: str = "Hello from the stand-in."
    received: list[Received] = field(default_factory=list)
    billed: list[Bill] = field(default_factory=list)
    fail_next: deque[tuple[int, str]] = field(default_factory=deque)  # (status, body) to answer
    _port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    # -- lifecycle ------------------------------------------------------------------------

    def __enter__(self) -> Self:
        started = threading.Event()
        self._loop = asyncio.new_event_loop()

        async def boot() -> None:
            app = web.Application(client_max_size=64 * 1024 * 1024)
            app.router.add_post("/v1/messages", self._messages)
            app.router.add_post("/v1/messages/count_tokens", self._count)
            app.router.add_post("/v1/chat/completions", self._chat)
            app.router.add_post("/v1/responses", self._responses)
            self._routes(app)
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0, backlog=1024)
            await site.start()
            server = site._server
            assert server is not None and server.sockets  # type: ignore[attr-defined]
            self._port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
            started.set()

        def main() -> None:
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(boot())
            self._loop.run_forever()

        self._thread = threading.Thread(target=main, daemon=True)
        self._thread.start()
        assert started.wait(10)
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        async def stop() -> None:
            await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    # -- helpers --------------------------------------------------------------------------

    def _routes(self, app: web.Application) -> None:
        """More routes (subclasses: cloud providers)."""

    def _authorized(self, request: web.Request, raw: bytes) -> bool:
        """The credential check, as the provider does it (subclasses: SigV4, OAuth)."""
        presented = (
            request.headers.get("x-api-key")
            or request.headers.get("api-key")
            or request.headers.get("authorization", "").removeprefix("Bearer ")
        )
        return self.api_key is None or presented == self.api_key

    async def _admit(
        self, request: web.Request, anthropic: bool
    ) -> tuple[dict[str, Any], web.Response | None]:
        raw = await request.read()
        body = json.loads(raw)
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.received.append(Received(request.path, headers, body, raw, request.query_string))
        if not self._authorized(request, raw):
            err = (
                {"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}}
                if anthropic
                else {"error": {"message": "Incorrect API key", "type": "invalid_request_error"}}
            )
            return body, web.json_response(err, status=401)
        if self.fail_next:
            status, text = self.fail_next.popleft()
            return body, web.Response(status=status, text=text, content_type="application/json")
        if self.think:
            await asyncio.sleep(self.think)
        return body, None

    def _bill(self, path: str, body: Mapping[str, Any], cap_names: tuple[str, ...]) -> Bill:
        cap = next((body[n] for n in cap_names if isinstance(body.get(n), int)), self.output_tokens)
        bill = Bill(
            path,
            str(body.get("model")),
            self.input_tokens,
            min(self.output_tokens, cap),
            self.cache_read,
            self.cache_write,
        )
        self.billed.append(bill)
        return bill

    async def _sse(self, request: web.Request, events: list[tuple[str | None, Any]]) -> web.StreamResponse:
        resp = web.StreamResponse(
            headers={"content-type": "text/event-stream", "x-request-id": "req_standin"}
        )
        await resp.prepare(request)
        for i, (name, data) in enumerate(events):
            if i == self.abort_after:
                assert request.transport is not None
                request.transport.abort()  # the provider dies mid-stream
                return resp
            head = f"event: {name}\n" if name else ""
            payload = data if isinstance(data, str) else json.dumps(data)
            await resp.write(f"{head}data: {payload}\n\n".encode())
            if self.gap:
                await asyncio.sleep(self.gap)
        await resp.write_eof()
        return resp

    # -- Anthropic ------------------------------------------------------------------------

    async def _count(self, request: web.Request) -> web.StreamResponse:
        _, refused = await self._admit(request, True)
        return refused or web.json_response({"input_tokens": self.input_tokens})

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        body, refused = await self._admit(request, True)
        if refused:
            return refused
        message, events = self._anthropic(request.path, body)
        if not body.get("stream"):
            return web.json_response(message, headers={"request-id": "req_standin"})
        return await self._sse(request, events)

    def _anthropic(
        self, path: str, body: Mapping[str, Any]
    ) -> tuple[dict[str, Any], list[tuple[str | None, Any]]]:
        """An answer to a Messages call: (the message, the events that stream it)."""
        b = self._bill(path, body, ("max_tokens",))
        usage = {
            "input_tokens": b.input,
            "output_tokens": b.output,
            "cache_read_input_tokens": b.cache_read,
            "cache_creation_input_tokens": b.cache_write,
        }
        message = {
            "id": "msg_standin",
            "type": "message",
            "role": "assistant",
            "model": b.model,
            "content": [{"type": "text", "text": self.text}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": usage,
        }
        start = {**message, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 1}}
        events: list[tuple[str | None, Any]] = [
            ("message_start", {"type": "message_start", "message": start}),
            (
                "content_block_start",
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            ),
        ]
        for word in self.text.split(" "):
            events.append(
                (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "text_delta", "text": word + " "},
                    },
                )
            )
        events += [
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn"},
                    "usage": {"output_tokens": b.output},
                },
            ),
            ("message_stop", {"type": "message_stop"}),
        ]
        return message, events

    # -- OpenAI ---------------------------------------------------------------------------

    def _openai_usage(self, b: Bill, chat: bool) -> dict[str, Any]:
        if chat:
            return {
                "prompt_tokens": b.input + b.cache_read,
                "completion_tokens": b.output,
                "total_tokens": b.input + b.cache_read + b.output,
                "prompt_tokens_details": {"cached_tokens": b.cache_read},
            }
        return {
            "input_tokens": b.input + b.cache_read,
            "output_tokens": b.output,
            "total_tokens": b.input + b.cache_read + b.output,
            "input_tokens_details": {"cached_tokens": b.cache_read},
            "output_tokens_details": {"reasoning_tokens": 0},
        }

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body, refused = await self._admit(request, False)
        if refused:
            return refused
        b = self._bill(request.path, body, ("max_completion_tokens", "max_tokens"))
        base = {"id": "chatcmpl-standin", "created": 0, "model": b.model}
        if not body.get("stream"):
            return web.json_response(
                {
                    **base,
                    "object": "chat.completion",
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": self.text},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": self._openai_usage(b, True),
                }
            )
        chunk = {**base, "object": "chat.completion.chunk"}
        events: list[tuple[str | None, Any]] = [
            (None, {**chunk, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})
        ]
        for word in self.text.split(" "):
            events.append((None, {**chunk, "choices": [{"index": 0, "delta": {"content": word + " "}}]}))
        events.append((None, {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}))
        if (body.get("stream_options") or {}).get("include_usage"):
            events.append((None, {**chunk, "choices": [], "usage": self._openai_usage(b, True)}))
        events.append((None, "[DONE]"))
        return await self._sse(request, events)

    async def _responses(self, request: web.Request) -> web.StreamResponse:
        body, refused = await self._admit(request, False)
        if refused:
            return refused
        b = self._bill(request.path, body, ("max_output_tokens",))
        item: dict[str, Any] = {
            "type": "message",
            "id": "msg_1",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": self.text, "annotations": []}],
        }
        response = {
            "id": "resp_standin",
            "object": "response",
            "created_at": 0,
            "model": b.model,
            "status": "completed",
            "output": [item],
            "usage": self._openai_usage(b, False),
        }
        if not body.get("stream"):
            return web.json_response(response)
        pending = {**item, "status": "in_progress", "content": []}
        part = {"type": "output_text", "text": "", "annotations": []}
        seq = iter(range(1000))

        def ev(kind: str, **data: Any) -> tuple[str, dict[str, Any]]:
            return kind, {"type": kind, "sequence_number": next(seq), **data}

        events: list[tuple[str | None, Any]] = [
            ev(
                "response.created",
                response={**response, "status": "in_progress", "output": [], "usage": None},
            ),
            ev("response.output_item.added", output_index=0, item=pending),
            ev("response.content_part.added", item_id="msg_1", output_index=0, content_index=0, part=part),
        ]
        for word in self.text.split(" "):
            events.append(
                ev(
                    "response.output_text.delta",
                    item_id="msg_1",
                    output_index=0,
                    content_index=0,
                    delta=word + " ",
                )
            )
        events += [
            ev("response.output_text.done", item_id="msg_1", output_index=0, content_index=0, text=self.text),
            ev(
                "response.content_part.done",
                item_id="msg_1",
                output_index=0,
                content_index=0,
                part={**part, "text": self.text},
            ),
            ev("response.output_item.done", output_index=0, item=item),
            ev("response.completed", response=response),
        ]
        return await self._sse(request, events)
