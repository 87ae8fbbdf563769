"""`sandbox mcp`'s per-call path: stdio served from the event loop (no thread hop per line read
or written), and a call's audit record made durable beside the next call, never in its way, and
never after what a later call writes."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

import anyio

from sandbox.audit import AuditLog
from sandbox.mcp import McpConfig, McpSession
from sandbox.mcp._server import Worker, build_server
from sandbox.mcp._transport import PipeStream, serve_stream
from sandbox.policy import Layer, load_policy
from tests.conftest import SANDBOX_BIN, Cli, require_nsjail
from tests.support.jsonrpc_client import LeanClient
from tests.support.mcp_client import tool_records

_DEADLINE_S = 30.0


# Loaded by the server's python (PYTHONPATH): notes the name of every thread it starts.
_THREAD_SPY = """
import os, threading
_start = threading.Thread.start
def start(self, *a, **kw):
    with open(os.environ["THREAD_LOG"], "a") as f:
        f.write(self.name + "\\n")
    return _start(self, *a, **kw)
threading.Thread.start = start
"""


def test_stdio_is_served_without_a_thread_per_line(cli: Cli, workspace: Path,
                                                   base_dir: Path) -> None:
    """The SDK's stdio transport reads each line and writes each answer through anyio's worker
    threads (a thread hop apiece, more than a read_file costs); ours reads and writes the pipes
    from the event loop, large messages included (a write bigger than the pipe's buffer)."""
    spy = base_dir / "spy"
    spy.mkdir()
    (spy / "sitecustomize.py").write_text(_THREAD_SPY)
    log = base_dir / "threads.txt"
    env = dict(cli.env(), PYTHONPATH=str(spy), THREAD_LOG=str(log))
    big = "".join(f"{i:07d} {'x' * 72}\n" for i in range(40_000))  # 3.2 MB, one JSON line
    with LeanClient([str(SANDBOX_BIN), "mcp", "-C", str(workspace), "--session", "wire"],
                    env) as c:
        assert "created big.txt" in c.call_tool("write_file", {"path": "big.txt",
                                                               "content": big})
        for _ in range(5):
            text = c.call_tool("read_file", {"path": "big.txt", "offset": 39_990})
            assert "0039999 xxx" in text
        whole = c.call_tool("read_file", {"path": "big.txt"})  # ~190 KB back: 3 pipe buffers
        assert "0001999 xxx" in whole and len(whole) > 150_000
    started = log.read_text().splitlines()
    assert any(n.startswith("sandbox-mcp") for n in started), started  # the spy saw the server
    assert not [n for n in started if n.startswith("AnyIO worker")], started
    assert not (workspace / "big.txt").exists()  # pending, not in the workspace
    records = tool_records(cli, "wire")
    assert [r["data"]["tool"] for r in records] == ["write_file"] + ["read_file"] * 6


class _GatedLog(AuditLog):
    """The real log, whose tool-call appends wait for a gate (a disk that is slow right now)."""

    gate: threading.Event

    def append_many(self, entries: Any) -> Any:
        if any(e.event == "tool.call" for e in entries):
            assert self.gate.wait(_DEADLINE_S), "the gate was never opened"
        return super().append_many(entries)


def test_the_next_call_does_not_wait_for_the_last_ones_audit_record(cli: Cli,
                                                                    workspace: Path) -> None:
    """A read answers while the previous call's record is still being made durable; a `bash`
    call waits for it, so the log keeps the calls' order: each record before the next run's."""
    require_nsjail()
    effective = load_policy(workspace, flags=Layer("flags", "--level", {"level": 2}))
    worker = Worker()
    session = worker.sync(lambda: McpSession(McpConfig(workspace=workspace, policy=effective,
                                                       session="gated", home=cli.home)))
    log = _GatedLog(session.audit.path)
    object.__setattr__(log, "gate", threading.Event())
    session.audit = log
    worker.flush = session.flush_audit

    async def calls() -> None:
        with anyio.fail_after(_DEADLINE_S / 3):
            first = await worker.run(session.read_file, "src/app.py", None, None)
            # The first call's record is held at the gate; the next read still answers.
            second = await worker.run(session.read_file, "src/app.py", None, None)
        assert first == second and "print" in first
        log.gate.set()
        out = await worker.run(session.bash, "echo ran > ran.txt", None)
        assert "exit status: 0" in out

    try:
        anyio.run(calls)
    finally:
        log.gate.set()
        worker.sync(session.close)
        worker.close()
    events = [(r.event, (r.data or {}).get("tool")) for r in log.records(session="gated")]
    tools = [e for e in events if e[0] == "tool.call"]
    assert tools == [("tool.call", "read_file")] * 2 + [("tool.call", "bash")]
    first_run_record = next(i for i, e in enumerate(events) if e[0] == "run.started")
    assert [e for e in events[:first_run_record] if e[0] == "tool.call"] == tools[:2]


class _SpyStream(PipeStream):
    def __init__(self, rfd: int, wfd: int, events: list[str]) -> None:
        super().__init__(rfd, wfd)
        self.events = events

    async def send(self, item: bytes) -> None:
        await super().send(item)
        self.events.append("send")


def test_the_audit_flush_starts_once_the_answer_is_written(cli: Cli, workspace: Path) -> None:
    """The record's disk flush (its own thread) starts after the answer reached the pipe: it
    would otherwise compete with the answer being serialized and written."""
    effective = load_policy(workspace, flags=Layer("flags", "--level", {"level": 2}))
    worker = Worker()
    session = worker.sync(lambda: McpSession(McpConfig(workspace=workspace, policy=effective,
                                                       session="order", home=cli.home)))
    events: list[str] = []
    server = build_server(worker, session)

    def flush() -> None:
        events.append("flush")
        session.flush_audit()

    worker.flush = flush
    worker.flush_after_send = True
    c2s_r, c2s_w = os.pipe()
    s2c_r, s2c_w = os.pipe()
    for fd in (c2s_r, s2c_w):
        os.set_blocking(fd, False)
    stream = _SpyStream(c2s_r, s2c_w, events)
    serving = threading.Thread(target=anyio.run, args=(serve_stream, server, stream, None,
                                                       worker.sent))
    serving.start()
    msgs: list[dict[str, Any]] = [{"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18", "capabilities": {},
                "clientInfo": {"name": "t", "version": "0"}}},
            {"jsonrpc": "2.0", "method": "notifications/initialized"}]
    msgs += [{"jsonrpc": "2.0", "id": i, "method": "tools/call",
              "params": {"name": "read_file", "arguments": {"path": "README.md"}}}
             for i in range(1, 4)]
    try:
        with os.fdopen(c2s_w, "wb") as to_server, os.fdopen(s2c_r, "rb") as from_server:
            answers = {}
            for m in msgs:
                to_server.write(json.dumps(m).encode() + b"\n")
                to_server.flush()
                if "id" in m:
                    reply = json.loads(from_server.readline())
                    answers[reply["id"]] = reply
            to_server.close()
            serving.join(_DEADLINE_S)
        assert not serving.is_alive()
    finally:
        worker.sync(session.close)
        worker.close()
        os.close(c2s_r)
        os.close(s2c_w)
    assert all("hello" in answers[i]["result"]["content"][0]["text"] for i in range(1, 4))
    assert events.count("send") == 4 and events.count("flush") == 4, events
    for n in range(len(events)):  # never a flush ahead of the answer it follows
        assert events[:n + 1].count("flush") <= events[:n + 1].count("send"), events
    records = [r for r in session.audit.records(session="order") if r.event == "tool.call"]
    assert len(records) == 3
