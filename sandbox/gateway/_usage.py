"""Token usage as the providers bill it, from JSON bodies and from SSE streams.

Anthropic streams report usage in `message_start` and again in `message_delta`; the figures are
cumulative, so each report overwrites (never adds). OpenAI Chat Completions report usage only in
a final chunk when `stream_options.include_usage` is set (the gateway sets it, and hides that
chunk from a client that did not ask). Responses report it in `response.completed` /
`response.incomplete` (and `response.failed`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sandbox.gateway._config import Price

__all__ = ["Api", "SseEvent", "SseSplitter", "StreamTracker", "Usage", "usage_from_json"]


class Api(StrEnum):
    """The endpoint a call came in on: it decides the usage format."""

    MESSAGES = "anthropic.messages"
    CHAT = "openai.chat"
    RESPONSES = "openai.responses"


@dataclass(frozen=True)
class Usage:
    input: int = 0  # uncached input tokens
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0

    def cost(self, price: Price) -> float:
        return (
            self.input * price.input
            + self.output * price.output
            + self.cache_read * price.read_rate
            + self.cache_write * price.write_rate
        ) / 1e6

    @property
    def total(self) -> int:
        return self.input + self.output + self.cache_read + self.cache_write


def _int(obj: Mapping[str, object], key: str) -> int | None:
    v = obj.get(key)
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _anthropic(usage: Mapping[str, object], base: Usage) -> Usage:
    # Cumulative figures: a field present overwrites, a field absent keeps the last value.
    fields = {
        "input": "input_tokens",
        "output": "output_tokens",
        "cache_read": "cache_read_input_tokens",
        "cache_write": "cache_creation_input_tokens",
    }
    updates = {name: v for name, key in fields.items() if (v := _int(usage, key)) is not None}
    return replace(base, **updates)


def _openai(usage: Mapping[str, object], api: Api) -> Usage:
    if api is Api.CHAT:
        prompt, completion = _int(usage, "prompt_tokens") or 0, _int(usage, "completion_tokens") or 0
        details = usage.get("prompt_tokens_details")
    else:
        prompt, completion = _int(usage, "input_tokens") or 0, _int(usage, "output_tokens") or 0
        details = usage.get("input_tokens_details")
    cached = _int(details, "cached_tokens") or 0 if isinstance(details, dict) else 0
    return Usage(input=max(prompt - cached, 0), output=completion, cache_read=cached)


def usage_from_json(api: Api, body: Mapping[str, object]) -> Usage | None:
    usage = body.get("usage")
    if not isinstance(usage, dict):
        return None
    match api:
        case Api.MESSAGES:
            return _anthropic(usage, Usage())
        case Api.CHAT | Api.RESPONSES:
            return _openai(usage, api)


@dataclass(frozen=True)
class SseEvent:
    raw: bytes  # the event as received, with its terminating blank line
    name: str | None
    data: str


class SseSplitter:
    """Splits a byte stream into whole SSE events as they complete (nothing held back longer)."""

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, chunk: bytes) -> list[SseEvent]:
        self._buf += chunk
        out: list[SseEvent] = []
        while True:
            cut, sep = -1, 0
            for s in (b"\n\n", b"\r\n\r\n"):
                i = self._buf.find(s)
                if i >= 0 and (cut < 0 or i < cut):
                    cut, sep = i, len(s)
            if cut < 0:
                return out
            raw, self._buf = self._buf[: cut + sep], self._buf[cut + sep :]
            out.append(_parse_event(raw))

    def rest(self) -> bytes:
        rest, self._buf = self._buf, b""
        return rest


def _parse_event(raw: bytes) -> SseEvent:
    name: str | None = None
    data: list[str] = []
    for line in raw.decode("utf-8", "replace").splitlines():
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            name = value
        elif field == "data":
            data.append(value)
    return SseEvent(raw, name, "\n".join(data))


# What an event that reports usage or ends a stream holds, per API: other events (the text
# deltas, nearly all of a stream) are relayed without parsing their JSON. A provider spelling
# these with JSON escapes would only lose its usage report: the call is then charged its
# reservation, never less.
_MARKERS: dict[Api, tuple[str, ...]] = {
    Api.MESSAGES: ('"usage"',),
    Api.CHAT: ('"usage"',),
    Api.RESPONSES: ('"response.completed"', '"response.incomplete"', '"response.failed"'),
}


class StreamTracker:
    """Follows one streamed response: usage so far, whether it finished, which events to hide."""

    def __init__(self, api: Api, *, hide_usage_chunk: bool = False) -> None:
        self.api = api
        self.hide_usage_chunk = hide_usage_chunk
        self.usage: Usage | None = None
        self.complete = False  # the provider's final usage report arrived

    def feed(self, event: SseEvent) -> bool:
        """Account for `event`; True when it is to be relayed to the client."""
        if not any(m in event.data for m in _MARKERS[self.api]):
            return True  # [DONE], text deltas, pings: nothing to account for
        try:
            obj = json.loads(event.data) if event.data else None
        except json.JSONDecodeError:
            return True
        if not isinstance(obj, dict):
            return True
        match self.api:
            case Api.MESSAGES:
                kind = obj.get("type")
                usage = obj.get("usage")
                if kind == "message_start" and isinstance(obj.get("message"), dict):
                    usage = obj["message"].get("usage")
                if isinstance(usage, dict):
                    self.usage = _anthropic(usage, self.usage or Usage())
                if kind == "message_delta" and isinstance(usage, dict):
                    self.complete = True
            case Api.CHAT:
                usage = obj.get("usage")
                if isinstance(usage, dict):
                    self.usage = _openai(usage, self.api)
                    self.complete = True
                    if self.hide_usage_chunk and not obj.get("choices"):
                        return False
            case Api.RESPONSES:
                kind = obj.get("type")
                if kind in ("response.completed", "response.incomplete", "response.failed"):
                    resp = obj.get("response")
                    usage = resp.get("usage") if isinstance(resp, dict) else None
                    if isinstance(usage, dict):
                        self.usage = _openai(usage, self.api)
                    self.complete = True
        return True
