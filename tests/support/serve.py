"""A real `sandbox serve` process for tests, and a small HTTP client for it (TCP or unix)."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import SANDBOX_BIN, Cli


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self._path)
        self.sock = s


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> dict[str, object]:
        data: dict[str, object] = json.loads(self.body)
        return data


@dataclass(frozen=True)
class Client:
    listen: str  # unix:PATH or HOST:PORT
    token: str | None = None

    def connection(self, timeout: float = 30) -> http.client.HTTPConnection:
        if self.listen.startswith("unix:"):
            return _UnixConnection(self.listen[5:], timeout)
        host, _, port = self.listen.rpartition(":")
        return http.client.HTTPConnection(host, int(port), timeout=timeout)

    def with_token(self, token: str | None) -> Client:
        return Client(self.listen, token)

    def request(self, method: str, path: str, body: object = None,
                headers: Mapping[str, str] | None = None) -> Reply:
        h = dict(headers or {})
        if self.token is not None:
            h.setdefault("Authorization", f"Bearer {self.token}")
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        conn = self.connection()
        try:
            conn.request(method, path, body=data, headers=h)
            resp = conn.getresponse()
            return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
        finally:
            conn.close()

    def get(self, path: str, **kw: object) -> Reply:
        return self.request("GET", path, **kw)  # type: ignore[arg-type]

    def post(self, path: str, body: object = None, **kw: object) -> Reply:
        return self.request("POST", path, body, **kw)  # type: ignore[arg-type]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _ready(listen: str) -> bool:
    try:
        conn = Client(listen).connection(timeout=1)
        conn.connect()
        conn.close()
        return True
    except OSError:
        return False


@contextmanager
def serving(cli: Cli, listen: str, *extra: str,
            env: Mapping[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen([str(SANDBOX_BIN), "serve", "--listen", listen,
                             "--checkpoint-interval", "0.1", *extra],
                            env=cli.env(env), stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while not _ready(listen):
            if proc.poll() is not None or time.monotonic() > deadline:
                err = proc.stderr.read() if proc.stderr else b""
                raise AssertionError(f"sandbox serve did not start: {err.decode()}")
            time.sleep(0.05)
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def make_token(cli: Cli, name: str, role: str) -> str:
    p = cli("serve", "token", "create", "--name", name, "--role", role, check=True)
    return p.stdout.decode().strip()


def state_home(base: Path) -> Path:
    from sandbox._home import HomeLayout

    home = base / "home" / "state"
    home.parent.mkdir(exist_ok=True)
    (home.parent / "org.toml").write_text("# org policy for tests: empty\n")
    HomeLayout(home).ensure()
    return home


Opened = tuple[http.client.HTTPConnection, http.client.HTTPResponse]


def check_stream_bound(open_stream: Callable[[], Opened], limit: int, greeting: bytes) -> None:
    """`limit` streams open and live (each greets with `greeting`), the next is refused with
    429, and once one is closed a new one is let in (waiting until the server saw it end)."""
    conns: list[http.client.HTTPConnection] = []
    try:
        for _ in range(limit):
            conn, resp = open_stream()
            conns.append(conn)
            assert resp.status == 200 and resp.readline() == greeting  # it is live
        conn, resp = open_stream()
        conn.close()
        assert resp.status == 429, resp.status
        conns.pop().close()
        deadline = time.monotonic() + 30
        while True:  # until the server has seen that stream end
            conn, resp = open_stream()
            if resp.status == 200:
                conns.append(conn)
                assert resp.readline() == greeting
                return
            conn.close()
            assert resp.status == 429 and time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        for c in conns:
            c.close()
