"""A local stand-in for the model APIs real agents speak, for their end-to-end tests: one
server, two dialects.

- Anthropic Messages (Claude Code, the Anthropic SDKs): `POST /v1/messages` (JSON and streaming
  SSE) and `POST /v1/messages/count_tokens`.
- OpenAI Responses (Codex CLI): `POST /v1/responses`, streamed as Codex consumes it:
  response.created, response.output_item.added/done per item (`message` or `function_call`
  with call_id, name, namespace, arguments), response.completed with usage.

It plays a script: the agent's main loop (a request that offers tools) gets scripted turn N,
where N is the number of model turns already in the conversation; any other request (titles,
summaries, classifiers) gets a short neutral text. Everything received is recorded, so a test
can assert what the agent offered (tool names, a Responses `namespace` as `ns__tool`) and sent
back (tool results, headers, the API key).

Reusable beyond egress (the LLM gateway will use it): no sandbox imports.

    script = [
        Turn(ToolUse("Bash", {"command": "echo hi > out.txt"})),
        Turn(Text("done")),
    ]
    with LlmStandIn(script, api_key="sk-ant-dummy") as llm:
        env = {"ANTHROPIC_BASE_URL": llm.url, "ANTHROPIC_API_KEY": "sk-ant-dummy"}
        # or, for Codex: a provider with base_url = llm.url + "/v1", wire_api = "responses"

A scripted ToolUse named `NS__TOOL` is sent to a Responses client as `name` TOOL in `namespace`
NS when the request offered that namespace (Codex groups an MCP server's tools so).
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

MESSAGES, RESPONSES = "/v1/messages", "/v1/responses"


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

    @property
    def responses(self) -> bool:
        return self.path == RESPONSES

    def offered_tools(self) -> list[str]:
        """Names of the tools the agent offered the model in this request (a Responses
        namespace's tools as `ns__tool`, a hosted tool without a name by its type)."""
        names: list[str] = []
        for t in self.body.get("tools") or []:
            if not isinstance(t, dict):
                continue
            name = str(t.get("name") or t.get("type"))
            if t.get("type") == "namespace":
                names += [f"{name}__{i.get('name')}" for i in t.get("tools") or []]
            else:
                names.append(name)
        return names

    def namespaces(self) -> dict[str, str]:
        """Responses: `ns__tool` -> ns for every tool offered inside a namespace."""
        return {f"{t['name']}__{i.get('name')}": str(t["name"])
                for t in self.body.get("tools") or []
                if isinstance(t, dict) and t.get("type") == "namespace"
                for i in t.get("tools") or [] if isinstance(i, dict)}

    def turns_so_far(self) -> int:
        """How many model turns the conversation already holds."""
        if not self.responses:
            return sum(1 for m in self.body.get("messages", []) if m.get("role") == "assistant")
        # Every turn but the last holds a call; its call ids say which turn made it.
        return len({str(i.get("call_id", "")).split("_")[1] for i in self._items()
                    if i.get("type") == "function_call"
                    and str(i.get("call_id", "")).startswith("call_t")})

    def _items(self) -> list[dict[str, Any]]:
        items = self.body.get("input")
        return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []

    def tool_results(self) -> list[str]:
        """Text of every tool result in the conversation (tool_result blocks; Responses:
        function_call_output items)."""
        if self.responses:
            return [_flatten(i.get("output")) for i in self._items()
                    if i.get("type") == "function_call_output"]
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
        return "".join(b.get("text", "") for b in content
                       if isinstance(b, dict) and b.get("type") in ("text", "input_text", "output_text"))
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
        if path not in (MESSAGES, RESPONSES):
            self._error(404, "not_found_error", f"stand-in has no {path}")
            return
        turn = self._turn(received)
        with state.lock:
            message_id = f"msg_standin_{next(state.ids)}"
        if path == RESPONSES:
            self._responses(received, turn)
        elif body.get("stream"):
            self._stream(message_id, turn)
        else:
            self._json(200, self._message(message_id, turn))

    def _turn(self, received: Received) -> Turn:
        state = self.server.state
        if not received.is_main_loop:
            return Turn(Text(state.side_text))
        step = received.turns_so_far()
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

    # -- OpenAI Responses (Codex) --------------------------------------------------------

    def _responses(self, received: Received, turn: Turn) -> None:
        """One turn as Responses output items, streamed (Codex always streams)."""
        step = received.turns_so_far()
        spaces = received.namespaces()
        items: list[dict[str, Any]] = []
        for i, block in enumerate(turn.blocks):
            if isinstance(block, Text):
                items.append({"type": "message", "id": f"msg_t{step}_{i}", "status": "completed",
                              "role": "assistant", "content": [
                                  {"type": "output_text", "text": block.text, "annotations": []}]})
                continue
            call: dict[str, Any] = {"type": "function_call", "id": f"fc_t{step}_{i}",
                                    "status": "completed", "call_id": f"call_t{step}_{i}",
                                    "name": block.name, "arguments": json.dumps(block.input)}
            if block.name in spaces:  # a namespaced tool: its own name inside the namespace
                ns = spaces[block.name]
                call |= {"namespace": ns, "name": block.name.removeprefix(f"{ns}__")}
            items.append(call)
        usage = {"input_tokens": 10, "input_tokens_details": {"cached_tokens": 0},
                 "output_tokens": 5, "output_tokens_details": {"reasoning_tokens": 0},
                 "total_tokens": 15}
        response = {"id": f"resp_t{step}", "object": "response", "created_at": 0,
                    "model": str(received.body.get("model") or self.server.state.model),
                    "status": "completed", "output": items, "usage": usage}
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        seq = itertools.count()

        def event(kind: str, **data: Any) -> None:
            payload = json.dumps({"type": kind, "sequence_number": next(seq), **data})
            self.wfile.write(f"event: {kind}\ndata: {payload}\n\n".encode())
            self.wfile.flush()

        event("response.created", response={**response, "status": "in_progress", "output": [],
                                            "usage": None})
        for index, item in enumerate(items):
            event("response.output_item.added", output_index=index,
                  item={**item, "status": "in_progress"})
            event("response.output_item.done", output_index=index, item=item)
        event("response.completed", response=response)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    state: _State


class LlmStandIn:
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
        return [r for r in self.received if r.path in (MESSAGES, RESPONSES) and r.is_main_loop]

    def __enter__(self) -> LlmStandIn:
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


MessagesStandIn = LlmStandIn  # the name its first (Anthropic-only) callers know

__all__ = ["LlmStandIn", "MessagesStandIn", "Received", "Text", "ToolUse", "Turn"]
