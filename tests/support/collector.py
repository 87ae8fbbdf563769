"""A local stand-in of an OpenTelemetry collector (OTLP/HTTP JSON logs) on loopback, which can
be healthy, refuse (503), or be slow: answer one byte at a time until released."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import Enum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_OK = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}'


class Mode(Enum):
    OK = "ok"
    FAIL = "fail"  # 503, nothing kept
    SLOW = "slow"  # the answer trickles out until released, then the batch is kept


@dataclass
class Collector:
    url: str = ""
    mode: Mode = Mode.OK
    bodies: list[dict[str, object]] = field(default_factory=list)
    attempts: int = 0
    held: threading.Event = field(default_factory=threading.Event)  # a request is being held
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def seqs(self) -> list[int]:
        """The audit seq of every record delivered, in arrival order (checkpoints left out)."""
        out = []
        with self.lock:
            bodies = list(self.bodies)
        for body in bodies:
            logs = body["resourceLogs"][0]["scopeLogs"][0]["logRecords"]  # type: ignore[index]
            for rec in logs:
                attrs = {a["key"]: a["value"] for a in rec["attributes"]}
                if attrs["event.name"] != {"stringValue": "sandbox.audit.checkpoint"}:
                    out.append(int(attrs["sandbox.audit.seq"]["intValue"]))
        return out

    def wait_for(self, cond: Callable[[], bool], what: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > deadline:
                raise AssertionError(f"the collector never saw {what}: {self.seqs()}")
            time.sleep(0.02)


def _handler(c: Collector) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with c.lock:
                c.attempts += 1
            match c.mode:
                case Mode.FAIL:
                    self.send_error(503)
                    return
                case Mode.SLOW:
                    c.held.set()
                    sent = 0
                    while not c.release.is_set() and sent < len(_OK) - 1:
                        self.wfile.write(_OK[sent:sent + 1])
                        self.wfile.flush()
                        sent += 1
                        c.release.wait(0.5)  # the pace of a struggling collector
                    if not c.release.wait(60):
                        return
                    self.wfile.write(_OK[sent:])
                case Mode.OK:
                    self.wfile.write(_OK)
            with c.lock:
                c.bodies.append(body)

        def log_message(self, *_args: object) -> None:
            pass

    return Handler


@contextmanager
def collector(mode: Mode = Mode.OK) -> Iterator[Collector]:
    c = Collector(mode=mode)
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _handler(c))
    srv.daemon_threads = True
    c.url = f"otlp+http://127.0.0.1:{srv.server_address[1]}"
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield c
    finally:
        c.release.set()
        srv.shutdown()
        srv.server_close()
