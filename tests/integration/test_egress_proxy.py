"""The egress proxy on the host, driven by raw clients: decisions, refusals, events, stop().

No sandbox here (tests/integration/test_egress_nsjail.py and tests/security/ run it behind
real nsjail); this pins down the protocol behaviour with exact bytes.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass

import pytest

from sandbox.egress import (
    Allow,
    Decision,
    Deny,
    DenyReason,
    EgressEvent,
    EgressPolicy,
    EgressProxy,
    ProxyConfig,
    Verdict,
    mapped_resolver,
    summarize_denials,
)
from tests.support.egress_env import origin

NAMES = {
    "allowed.test": ["127.0.0.1"],
    "denied.test": ["127.0.0.1"],
    "rebind.test": ["127.0.0.2"],
    "metadata.test": ["169.254.169.254"],
    "mixed.test": ["127.0.0.2", "127.0.0.1"],
}


@dataclass
class Env:
    proxy: EgressProxy
    addr: tuple[str, int]
    port: int  # the origin's
    events: list[EgressEvent]

    def connect(self) -> socket.socket:
        return socket.create_connection(self.addr, timeout=5)


def _policy(port: int) -> EgressPolicy:
    rules = [f"{n}:{port}" for n in ("allowed.test", "rebind.test", "metadata.test", "mixed.test")]
    rules += ["metadata.test:80", "nowhere.test:*"]
    return EgressPolicy.from_strings(rules, allow_addresses=["127.0.0.1"])


def _start(port: int, ask: object = None) -> tuple[EgressProxy, tuple[str, int], list[EgressEvent]]:
    events: list[EgressEvent] = []
    config = ProxyConfig("r-test", _policy(port), mapped_resolver(NAMES, None), ask=ask)  # type: ignore[arg-type]
    proxy = EgressProxy(config, on_event=events.append)
    listener = socket.create_server(("127.0.0.1", 0))
    addr = listener.getsockname()
    proxy.serve(listener)
    return proxy, addr, events


@pytest.fixture
def env() -> Iterator[Env]:
    with origin("origin") as port:
        proxy, addr, events = _start(port)
        try:
            yield Env(proxy, addr, port, events)
        finally:
            proxy.stop()


def _read_all(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def _request(env: Env, raw: bytes) -> bytes:
    with closing(env.connect()) as sock:
        sock.sendall(raw)
        return _read_all(sock)


def _deny_header(response: bytes) -> str | None:
    for line in response.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        name, _, value = line.decode().partition(":")
        if name.lower() == "x-sandbox-deny":
            return value.strip()
    return None


def _wait_events(env: Env, n: int) -> list[EgressEvent]:
    deadline = time.monotonic() + 5
    while len(env.events) < n and time.monotonic() < deadline:
        time.sleep(0.01)
    return env.events


def test_connect_to_allowed_host_tunnels(env: Env) -> None:
    with closing(env.connect()) as sock:
        head = f"CONNECT allowed.test:{env.port} HTTP/1.1\r\nHost: allowed.test:{env.port}\r\n"
        sock.sendall(head.encode() + b"\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        sock.sendall(b"GET /in HTTP/1.1\r\nHost: allowed.test\r\nConnection: close\r\n\r\n")
        body = _read_all(sock)
    assert body.startswith(b"HTTP/1.") and body.endswith(b"origin /in host=allowed.test\n")
    (event,) = _wait_events(env, 1)
    assert (event.verdict, event.host, event.port, event.method) == (
        Verdict.ALLOWED,
        "allowed.test",
        env.port,
        "CONNECT",
    )
    assert event.address == "127.0.0.1" and event.reason == f"allowed.test:{env.port}"
    assert event.bytes_down == len(body) and event.bytes_up > 40 and event.duration_ms > 0


def test_absolute_uri_is_rewritten_for_the_origin(env: Env) -> None:
    raw = (
        f"GET http://allowed.test:{env.port}/abs?q=1 HTTP/1.1\r\n"
        f"Host: allowed.test:{env.port}\r\nProxy-Connection: keep-alive\r\n\r\n"
    )
    response = _request(env, raw.encode())
    assert response.startswith(b"HTTP/1.") and response.endswith(
        f"origin /abs?q=1 host=allowed.test:{env.port}\n".encode()
    )


def test_one_decided_request_per_connection(env: Env) -> None:
    # a second request pipelined on the connection must not ride on the first decision
    first = f"GET http://allowed.test:{env.port}/one HTTP/1.1\r\nHost: allowed.test:{env.port}\r\n\r\n"
    second = f"GET http://denied.test:{env.port}/two HTTP/1.1\r\nHost: denied.test:{env.port}\r\n\r\n"
    response = _request(env, (first + second).encode())
    assert b"origin /one" in response and b"/two" not in response
    assert [e.host for e in _wait_events(env, 1)] == ["allowed.test"]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("CONNECT denied.test:{port} HTTP/1.1\r\n\r\n", "not-in-allowlist"),
        ("GET http://denied.test:{port}/ HTTP/1.1\r\n\r\n", "not-in-allowlist"),
        ("CONNECT allowed.test:22 HTTP/1.1\r\n\r\n", "not-in-allowlist"),
        ("CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n", "not-in-allowlist"),  # named for names only
        ("CONNECT 127.0.0.2:{port} HTTP/1.1\r\n\r\n", "loopback"),
        ("CONNECT [::1]:{port} HTTP/1.1\r\n\r\n", "loopback"),
        ("CONNECT 169.254.169.254:80 HTTP/1.1\r\n\r\n", "link-local"),
        ("CONNECT 2130706433:80 HTTP/1.1\r\n\r\n", "malformed"),
        (
            "CONNECT allowed.test:{port} HTTP/1.1\r\nHost: denied.test:{port}\r\n\r\n",
            "host-mismatch",
        ),
        (
            "GET http://denied.test:{port}/ HTTP/1.1\r\nHost: allowed.test:{port}\r\n\r\n",
            "host-mismatch",
        ),
        (
            "GET http://allowed.test:{port}/ HTTP/1.1\r\nHost: denied.test:{port}\r\n\r\n",
            "host-mismatch",
        ),
        ("CONNECT rebind.test:{port} HTTP/1.1\r\n\r\n", "loopback"),
        ("CONNECT metadata.test:80 HTTP/1.1\r\n\r\n", "link-local"),
    ],
)
def test_refusals_are_403_with_a_reason(env: Env, raw: str, reason: str) -> None:
    response = _request(env, raw.format(port=env.port).encode())
    assert response.startswith(b"HTTP/1.1 403 Forbidden\r\n"), response[:200]
    assert _deny_header(response) == reason
    assert b"sandbox egress proxy refused" in response and b"--allow" in response
    (event,) = _wait_events(env, 1)
    assert event.verdict is Verdict.DENIED and event.reason == reason
    assert event.bytes_up == 0 and event.address == ""


def test_mixed_resolution_uses_only_permitted_addresses(env: Env) -> None:
    response = _request(env, f"GET http://mixed.test:{env.port}/m HTTP/1.1\r\n\r\n".encode())
    assert response.endswith(b"origin /m host=mixed.test:%d\n" % env.port)
    assert _wait_events(env, 1)[0].address == "127.0.0.1"


def test_unparsable_requests_are_400_and_audited(env: Env) -> None:
    response = _request(env, b"GET / HTTP/1.1\r\nHost: allowed.test\r\n\r\n")
    assert response.startswith(b"HTTP/1.1 400")
    assert _wait_events(env, 1)[0].reason == "malformed"


def test_unresolvable_allowed_name_is_502(env: Env) -> None:
    response = _request(env, b"CONNECT nowhere.test:443 HTTP/1.1\r\n\r\n")
    assert response.startswith(b"HTTP/1.1 502")
    (event,) = _wait_events(env, 1)
    assert event.verdict is Verdict.ALLOWED and "cannot resolve" in event.error


def _socks(env: Env, host: str, port: int) -> tuple[socket.socket, int]:
    sock = env.connect()
    sock.sendall(b"\x05\x01\x00")
    assert sock.recv(2) == b"\x05\x00"
    name = host.encode()
    sock.sendall(b"\x05\x01\x00\x03" + bytes([len(name)]) + name + struct.pack("!H", port))
    reply = sock.recv(10)
    return sock, reply[1]


def test_socks5_connect(env: Env) -> None:
    sock, status = _socks(env, "allowed.test", env.port)
    with closing(sock):
        assert status == 0
        sock.sendall(b"GET /s HTTP/1.1\r\nHost: allowed.test\r\nConnection: close\r\n\r\n")
        assert _read_all(sock).endswith(b"origin /s host=allowed.test\n")
    sock, status = _socks(env, "denied.test", env.port)
    sock.close()
    assert status == 2  # connection not allowed by ruleset
    assert [(e.method, e.verdict) for e in _wait_events(env, 2)] == [
        ("SOCKS5", Verdict.ALLOWED),
        ("SOCKS5", Verdict.DENIED),
    ]


def test_stop_kills_open_tunnels() -> None:
    with origin("origin") as port:
        proxy, addr, events = _start(port)
        sock = socket.create_connection(addr, timeout=5)
        sock.sendall(f"CONNECT allowed.test:{port} HTTP/1.1\r\n\r\n".encode())
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        assert proxy.live_connections() == 2  # client and upstream
        before = {t for t in threading.enumerate() if t.name == "sandbox-egress"}
        assert before
        t0 = time.monotonic()
        proxy.stop()
        assert time.monotonic() - t0 < 2
        assert sock.recv(1) == b""  # the tunnel is gone
        sock.close()
        assert proxy.live_connections() == 0
        assert not [t for t in threading.enumerate() if t.name == "sandbox-egress" and t.is_alive()]
        assert len(events) == 1 and events[0].verdict is Verdict.ALLOWED
        with pytest.raises(OSError):
            socket.create_connection(addr, timeout=1).recv(1)


def test_ask_hook_decides_unknown_hosts_and_is_remembered() -> None:
    asked: list[tuple[str, int]] = []

    def ask(host: str, port: int) -> Decision:
        asked.append((host, port))
        if host == "denied.test":
            return Allow("asked", remember=True)
        return Deny(DenyReason.USER, "the user said no")

    with origin("origin") as port:
        proxy, addr, events = _start(port, ask=ask)
        env = Env(proxy, addr, port, events)
        try:
            for _ in range(2):
                ok = _request(env, f"GET http://denied.test:{port}/a HTTP/1.1\r\n\r\n".encode())
                assert ok.endswith(b"origin /a host=denied.test:%d\n" % port)
            no = _request(env, b"CONNECT other.test:443 HTTP/1.1\r\n\r\n")
            assert _deny_header(no) == "denied-by-user"
            # the prompt never overrides address checks or the allowlist's explicit denials
            meta = _request(env, b"CONNECT 169.254.169.254:80 HTTP/1.1\r\n\r\n")
            assert _deny_header(meta) == "link-local"
        finally:
            proxy.stop()
    assert asked == [("denied.test", port), ("other.test", 443)]


def test_summary_lists_denied_hosts_with_reasons(env: Env) -> None:
    _request(env, b"CONNECT evil.example:443 HTTP/1.1\r\n\r\n")
    _request(env, b"CONNECT 169.254.169.254:80 HTTP/1.1\r\n\r\n")
    _request(env, b"CONNECT evil.example:443 HTTP/1.1\r\n\r\n")
    events = _wait_events(env, 3)
    assert summarize_denials(events) == (
        "3 egress requests denied: evil.example (not in allowlist), 169.254.169.254 (link-local)"
    )
    assert summarize_denials([]) is None
    data = events[0].to_audit()
    assert data["verdict"] == "denied" and data["host"] == "evil.example" and data["port"] == 443
    assert {"bytes_up", "bytes_down", "duration_ms", "method", "reason"} <= set(data)
    assert EgressEvent.from_audit(data) == events[0]  # `sandbox show` reads them back
    assert events[1].describe() == "denied   CONNECT 169.254.169.254:80  link-local"


def test_concurrent_tunnels_each_get_one_event(env: Env) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def one(i: int) -> bytes:
        host = "allowed.test" if i % 3 else "denied.test"
        return _request(env, f"GET http://{host}:{env.port}/c{i} HTTP/1.1\r\n\r\n".encode())

    with ThreadPoolExecutor(32) as pool:
        responses = list(pool.map(one, range(90)))
    for i, response in enumerate(responses):
        if i % 3:
            assert response.endswith(f"origin /c{i} host=allowed.test:{env.port}\n".encode())
        else:
            assert _deny_header(response) == "not-in-allowlist"
    events = _wait_events(env, 90)
    assert len(events) == 90
    assert sum(e.verdict is Verdict.DENIED for e in events) == 30
    assert env.proxy.live_connections() == 0
