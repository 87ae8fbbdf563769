"""A lean MCP client: newline-delimited JSON-RPC over a server's stdio pipes, one request at a
time, nothing else. The benchmarks use it as the fair client (an agent such as Claude Code or
Codex is the real one, not the Python SDK, whose own client costs more per call than our server
does); tests use it to look at the wire and the server process while it serves."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping, Sequence
from typing import Any


class LeanClient:
    def __init__(self, argv: Sequence[str], env: Mapping[str, str] | None = None,
                 protocol: str = "2025-06-18") -> None:
        self.proc = subprocess.Popen(list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, env=dict(env or os.environ))
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._in, self._out = self.proc.stdin, self.proc.stdout
        self._id = 0
        self.request("initialize", {"protocolVersion": protocol, "capabilities": {},
                                    "clientInfo": {"name": "bench", "version": "1"}})
        self._send({"jsonrpc": "2.0", "method": "notifications/initialized", "params": {}})

    def _send(self, msg: dict[str, Any]) -> None:
        self._in.write(json.dumps(msg).encode() + b"\n")
        self._in.flush()

    def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self._id += 1
        self._send({"jsonrpc": "2.0", "id": self._id, "method": method, "params": params})
        while True:
            line = self._out.readline()
            if not line:
                raise RuntimeError(f"the server closed its stdout (exit {self.proc.wait()})")
            msg: dict[str, Any] = json.loads(line)
            if msg.get("id") == self._id:  # notifications (progress, logs) are skipped
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg["result"]  # type: ignore[no-any-return]

    def call_tool(self, name: str, arguments: dict[str, Any]) -> str:
        """The tool's text answer; RuntimeError when the tool reports an error."""
        result = self.request("tools/call", {"name": name, "arguments": arguments})
        text = "".join(c.get("text", "") for c in result.get("content", []))
        if result.get("isError"):
            raise RuntimeError(f"{name}: {text}")
        return text

    def close(self) -> None:
        self._in.close()
        self.proc.wait(timeout=30)

    def __enter__(self) -> LeanClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
