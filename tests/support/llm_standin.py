"""A local stand-in for the Anthropic Messages API, for end-to-end tests of real agents.

It speaks enough of `POST /v1/messages` (JSON and streaming SSE) and
`POST /v1/messages/count_tokens` for Claude Code and the Anthropic SDKs, and plays a script:
the agent's main loop (a request that offers the scripted tools) gets scripted turn N, where N
is the number of assistant messages already in the conversation; any other request (titles,
summaries, classifiers) gets a short neutral text. Everything received is recorded, so a test
can assert what the agent sent back (tool results, headers, the API key).

Reusable beyond egress (the LLM gateway will use it): no sandbox imports.

    script = [
        Turn(ToolUse("Bash", {"command": "echo hi > out.txt"})),
        Turn(Text("done")),
    ]
    with MessagesStandIn(script, api_key="sk-ant-dummy") as llm:
        env = {"ANTHROPIC_BASE_URL": llm.url, "ANTHROPIC_API_KEY": "sk-ant-dummy"}
"""

from __future__ import annotations

import http.server
import itertools
import json
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class ToolUse:
    name: str
    input: Mapping[str, Any]


@dataclass(frozen=True)
class Turn:
    """One assistant message: its content blocks, in order."""

    blocks: tuple[Text | ToolUse, ...]

    def __init__(self, *blocks: Text | ToolUse) -> None:
        object.__setattr__(self, "blocks", blocks)

    @property
    def stop_reason(self) -> str:
        return "tool_use" if any(isinstance(b, ToolUse) for b in self.blocks) else "end_turn"


@dataclass(frozen=True)
class Received:
    path: str
    headers: Mapping[str, str]
    body: Mapping[str, Any]

    @property
    def is_main_loop(self) -> bool:
        return bool(self.body.get("tools"))

    def offered_tools(self) -> list[str]:
        """Names of the tools the agent offered the model in this request."""
        return [str(t.get("name")) for t in self.body.get("tools") or [] if isinstance(t, dict)]

    def tool_results(self) -> list[str]:
        """Text of every tool_result block in the conversation."""
        out: list[str] = []
        for message in self.body.get("messages", []):
            content = message.get("content")
            if not isinstance(content, list):
                continue
            for block in content:
                if isinstance(block, dict) and block.get("type") == "tool_result":
                    out.append(_flatten(block.get("content")))
        return out


def _flatten(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text")
    return ""


@dataclass
class _State:
    script: tuple[Turn, ...]
    api_key: str | None
    model: str
    side_text: str
    received: list[Received] = field(default_factory=list)
    ids: Iterator[int] = field(default_factory=itertools.count)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        del format, args

    def _json(self, status: int, payload: Mapping[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("request-id", "req_standin")
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, kind: str, message: str) -> None:
        self._json(status, {"type": "error", "error": {"type": kind, "message": message}})

    def do_GET(self) -> None:
        self._error(404, "not_found_error", f"stand-in has no {self.path}")

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self) -> None:
        state = self.server.state
        length = int(self.headers.get("Content-Length", "0"))
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except json.JSONDecodeError:
            self._error(400, "invalid_request_error", "body is not JSON")
            return
        path = self.path.split("?", 1)[0]
        received = Received(path, {k.lower(): v for k, v in self.headers.items()}, body)
        with state.lock:
            state.received.append(received)
        key = self.headers.get("x-api-key") or self.headers.get("authorization") or ""
        if state.api_key is not None and state.api_key not in key:
            self._error(401, "authentication_error", "invalid x-api-key")
            return
        if path == "/v1/messages/count_tokens":
            self._json(200, {"input_tokens": 42})
            return
        if path != "/v1/messages":
            self._error(404, "not_found_error", f"stand-in has no {path}")
            return
        turn = self._turn(received)
        with state.lock:
            message_id = f"msg_standin_{next(state.ids)}"
        if body.get("stream"):
            self._stream(message_id, turn)
        else:
            self._json(200, self._message(message_id, turn))

    def _turn(self, received: Received) -> Turn:
        state = self.server.state
        if not received.is_main_loop:
            return Turn(Text(state.side_text))
        step = sum(1 for m in received.body.get("messages", []) if m.get("role") == "assistant")
        return state.script[step] if step < len(state.script) else Turn(Text("Done."))

    def _blocks(self, message_id: str, turn: Turn) -> list[dict[str, Any]]:
        blocks: list[dict[str, Any]] = []
        for i, block in enumerate(turn.blocks):
            if isinstance(block, Text):
                blocks.append({"type": "text", "text": block.text})
            else:
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": f"toolu_{message_id[-6:]}_{i}",
                        "name": block.name,
                        "input": dict(block.input),
                    }
                )
        return blocks

    def _message(self, message_id: str, turn: Turn, *, empty: bool = False) -> dict[str, Any]:
        return {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": self.server.state.model,
            "content": [] if empty else self._blocks(message_id, turn),
            "stop_reason": None if empty else turn.stop_reason,
            "stop_sequence": None,
            "usage": {"input_tokens": 10, "output_tokens": 0 if empty else 5},
        }

    def _stream(self, message_id: str, turn: Turn) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

        def event(kind: str, data: Mapping[str, Any]) -> None:
            payload = json.dumps({"type": kind, **data})
            self.wfile.write(f"event: {kind}\ndata: {payload}\n\n".encode())
            self.wfile.flush()

        event("message_start", {"message": self._message(message_id, turn, empty=True)})
        for index, block in enumerate(self._blocks(message_id, turn)):
            if block["type"] == "text":
                event(
                    "content_block_start",
                    {"index": index, "content_block": {"type": "text", "text": ""}},
                )
                text = block["text"]
                for start in range(0, max(len(text), 1), 16):  # several deltas, like the API
                    delta = {"type": "text_delta", "text": text[start : start + 16]}
                    event("content_block_delta", {"index": index, "delta": delta})
            else:
                start_block = {**block, "input": {}}
                event("content_block_start", {"index": index, "content_block": start_block})
                raw = json.dumps(block["input"])
                for start in range(0, len(raw), 16):
                    delta = {"type": "input_json_delta", "partial_json": raw[start : start + 16]}
                    event("content_block_delta", {"index": index, "delta": delta})
            event("content_block_stop", {"index": index})
        event(
            "message_delta",
            {"delta": {"stop_reason": turn.stop_reason, "stop_sequence": None},
             "usage": {"output_tokens": 5}},
        )  # fmt: skip
        event("message_stop", {})


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    state: _State


class MessagesStandIn:
    """The stand-in, serving on 127.0.0.1 (or `host`) for the life of the `with` block."""

    def __init__(
        self,
        script: Sequence[Turn],
        *,
        api_key: str | None = None,
        model: str = "claude-standin-1",
        side_text: str = "OK",
        host: str = "127.0.0.1",
    ) -> None:
        self._server = _Server((host, 0), _Handler)
        self._server.state = _State(tuple(script), api_key, model, side_text)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def received(self) -> list[Received]:
        with self._server.state.lock:
            return list(self._server.state.received)

    def main_loop(self) -> list[Received]:
        return [r for r in self.received if r.path == "/v1/messages" and r.is_main_loop]

    def __enter__(self) -> MessagesStandIn:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


__all__ = ["MessagesStandIn", "Received", "Text", "ToolUse", "Turn"]
