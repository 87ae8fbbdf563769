"""The allowlisting proxy: HTTP CONNECT, absolute-URI HTTP and SOCKS5 on one listening socket.

Threads and blocking sockets: one pooled worker per connection (plus one per tunnel
direction), because the work is syscall-bound and the GIL is released in every syscall.
Every decision is made before a byte reaches the origin, and produces exactly one
`EgressEvent` when the connection ends (with the byte counts of both directions).
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import queue
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import assert_never

from sandbox.egress import _http
from sandbox.egress._events import EgressEvent, Verdict, address_refusal
from sandbox.egress._resolve import Resolver
from sandbox.egress._rules import (
    Allow,
    Decision,
    Deny,
    DenyReason,
    EgressPolicy,
    IPAddress,
    normalize_host,
)

type AskHook = Callable[[str, int], Decision]
type _Task = tuple[Callable[..., None], tuple[object, ...]]

_MIN_BUF = 64 << 10
_MAX_BUF = 4 << 20
_MAX_CONNECTIONS = 256  # a sandbox must not be able to exhaust the host's threads
_HINT = (
    "Only the hosts the run's policy allows are reachable. Allow one with "
    "`sandbox run --allow HOST[:PORT]` or in the policy's [egress] allow list."
)


@dataclass(frozen=True)
class ProxyConfig:
    run_id: str
    policy: EgressPolicy
    resolver: Resolver
    host_addresses: frozenset[IPAddress] = frozenset()
    ask: AskHook | None = None
    connect_timeout: float = 10.0
    head_timeout: float = 30.0


@dataclass
class _Conn:
    """Mutable per-connection record, owned by its handler thread."""

    method: str = ""
    host: str = ""
    port: int = 0
    verdict: Verdict | None = None
    reason: str = ""
    detail: str = ""
    address: str = ""
    error: str = ""
    counts: list[int] = field(default_factory=lambda: [0, 0])  # up, down


class _Refused(Exception):
    def __init__(self, deny: Deny) -> None:
        super().__init__(deny.detail)
        self.deny = deny


class _Unreachable(Exception):
    pass


def _pump(src: socket.socket, dst: socket.socket, counts: list[int], index: int) -> None:
    """Move bytes src → dst until EOF or error, then half-close dst.

    recv_into/sendall with a buffer that grows while reads keep filling it: measured on
    loopback this beats splice(2) through a pipe (fewer, larger wake-ups), and small
    streams (an SSE response) never pay for a large buffer."""
    size = _MIN_BUF
    buf = memoryview(bytearray(size))
    try:
        while n := src.recv_into(buf):
            dst.sendall(buf[:n])
            counts[index] += n
            if n == size and size < _MAX_BUF:  # a bulk transfer: read more per wake-up
                size *= 4
                buf = memoryview(bytearray(size))
    except OSError:
        pass  # reset, stop() shut the socket down, or the peer went away: the tunnel ends
    finally:
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


class EgressProxy:
    """Serves one listening socket for one run; `stop()` ends every connection."""

    def __init__(self, config: ProxyConfig, on_event: Callable[[EgressEvent], None]) -> None:
        self._cfg = config
        self._on_event = on_event
        self._lock = threading.Lock()
        self._ask_lock = threading.Lock()
        self._emit_lock = threading.Lock()
        self._live: set[socket.socket] = set()
        self._threads: set[threading.Thread] = set()
        self._tasks: queue.SimpleQueue[_Task | None] = queue.SimpleQueue()
        self._idle = 0
        self._events: list[EgressEvent] = []
        self._errors: list[BaseException] = []
        self._answers: dict[tuple[str, int], Decision] = {}
        self._stopping = False
        self._listeners: list[socket.socket] = []

    # -- lifecycle ---------------------------------------------------------------------

    def serve(self, listener: socket.socket) -> None:
        """Accept connections on `listener` (already listening) in a background thread."""
        listener.settimeout(None)
        with self._lock:
            if self._stopping:
                listener.close()
                return
            self._listeners.append(listener)
        self._spawn(self._accept_loop, listener)

    def stop(self, timeout: float = 2.0) -> None:
        with self._lock:
            self._stopping = True
            listeners, self._listeners = self._listeners, []
            live = list(self._live)
        for lst in listeners:
            with contextlib.suppress(OSError):
                lst.shutdown(socket.SHUT_RDWR)  # wakes accept()
        for sock in live:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes recv/send; the owner closes it
        with self._lock:  # _spawn adds and starts a thread under it: none here unstarted
            threads = list(self._threads)
        for _ in range(len(threads)):
            self._tasks.put(None)  # releases idle workers
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        for lst in listeners:
            lst.close()

    def events(self) -> tuple[EgressEvent, ...]:
        with self._lock:
            return tuple(self._events)

    def callback_errors(self) -> tuple[BaseException, ...]:
        with self._lock:
            return tuple(self._errors)

    def live_connections(self) -> int:
        with self._lock:
            return len(self._live)

    # -- plumbing ----------------------------------------------------------------------

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        """Run target on an idle worker, or a new one: starting a thread costs ~100 us, a
        noticeable part of the per-connection latency, so workers are reused within the run."""
        with self._lock:
            if self._idle:
                self._idle -= 1
                self._tasks.put((target, args))
                return
            thread = threading.Thread(
                target=self._worker, args=((target, args),), name="sandbox-egress", daemon=True
            )
            self._threads.add(thread)
            thread.start()  # under the lock, so stop() never joins a thread not yet started

    def _worker(self, task: _Task | None) -> None:
        try:
            while task is not None:
                target, args = task
                target(*args)
                with self._lock:
                    if self._stopping:
                        break
                    self._idle += 1
                task = self._tasks.get()
        finally:
            with self._lock:
                self._threads.discard(threading.current_thread())

    def _track(self, sock: socket.socket) -> bool:
        with self._lock:
            if self._stopping:
                return False
            self._live.add(sock)
            return True

    def _untrack_close(self, sock: socket.socket) -> None:
        with self._lock:
            self._live.discard(sock)
        sock.close()

    def _accept_loop(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    time.sleep(0.05)
                    continue
                return  # shut down by stop()
            with self._lock:
                busy = len(self._live) >= _MAX_CONNECTIONS
            if busy or not self._track(client):
                with contextlib.suppress(OSError):
                    client.sendall(_http.reply(503, "Service Unavailable", "proxy busy\n"))
                client.close()
                continue
            self._spawn(self._handle, client)

    def _emit(self, conn: _Conn, started: float, t0: float) -> None:
        if conn.verdict is None:
            return
        event = EgressEvent(
            run_id=self._cfg.run_id,
            verdict=conn.verdict,
            host=conn.host,
            port=conn.port,
            method=conn.method,
            reason=conn.reason,
            detail=conn.detail,
            address=conn.address,
            bytes_up=conn.counts[0],
            bytes_down=conn.counts[1],
            duration_ms=round((time.monotonic() - t0) * 1000, 3),
            started=started,
            error=conn.error,
        )
        with self._lock:
            self._events.append(event)
        # a lock of its own: the audit writer fsyncs, and must not stall accept() meanwhile
        with self._emit_lock:
            try:
                self._on_event(event)
            except Exception as exc:  # the audit writer failed: keep it for the caller
                with self._lock:
                    self._errors.append(exc)

    # -- decisions ---------------------------------------------------------------------

    def _decide(self, host: str, port: int) -> Decision:
        decision = self._cfg.policy.decide(host, port)
        ask = self._cfg.ask
        if (
            ask is None
            or not isinstance(decision, Deny)
            or decision.reason is not DenyReason.NOT_IN_ALLOWLIST
        ):
            return decision
        key = (host.lower(), port)
        with self._ask_lock:  # one prompt at a time; later requests reuse the answer
            answer = self._answers.get(key)
            if answer is None:
                answer = ask(host, port)
                if isinstance(answer, Deny) or answer.remember:
                    self._answers[key] = answer
        return answer

    def _open(self, conn: _Conn, host: str, port: int) -> socket.socket:
        """Decide, resolve, check every address, connect. Raises _Refused/_Unreachable."""
        conn.host, conn.port = host, port
        decision = self._decide(host, port)
        match decision:
            case Deny():
                raise _Refused(decision)
            case Allow(rule=rule):
                conn.reason = rule
            case _:
                assert_never(decision)
        target = normalize_host(host)  # decide() refused anything unparsable
        if isinstance(target, str):
            try:
                raw = list(self._cfg.resolver(target))
            except (OSError, UnicodeError) as exc:
                raise _Unreachable(f"cannot resolve {target}: {exc}") from None
        else:
            raw = [str(target)]
        usable: list[IPAddress] = []
        refused: tuple[IPAddress, DenyReason] | None = None
        for text in raw:
            try:
                addr = ipaddress.ip_address(text.split("%", 1)[0])
            except ValueError:
                continue
            why = self._cfg.policy.check_address(addr, self._cfg.host_addresses)
            if why is None:
                usable.append(addr)
            elif refused is None:
                refused = (addr, why)
        if not usable:
            if refused is None:
                raise _Unreachable(f"{host} has no address")
            addr, why = refused
            raise _Refused(Deny(why, address_refusal(host, addr, why)))
        last: OSError | None = None
        for addr in usable:
            family = socket.AF_INET6 if addr.version == 6 else socket.AF_INET
            upstream = socket.socket(family, socket.SOCK_STREAM)
            if not self._track(upstream):
                upstream.close()
                raise _Unreachable("proxy stopping")
            try:
                upstream.settimeout(self._cfg.connect_timeout)
                upstream.connect((str(addr), port))
            except OSError as exc:
                self._untrack_close(upstream)
                last = exc
                continue
            upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            upstream.settimeout(None)
            conn.address = str(addr)
            return upstream
        raise _Unreachable(f"cannot connect to {host}:{port}: {last}")

    # -- protocols ---------------------------------------------------------------------

    def _handle(self, client: socket.socket) -> None:
        conn = _Conn()
        started, t0 = time.time(), time.monotonic()
        upstream: socket.socket | None = None
        try:
            client.settimeout(self._cfg.head_timeout)
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            reader = _http.Reader(client)
            if not reader.peek():
                return
            protocol = self._serve_socks if reader.buf[0] == 5 else self._serve_http
            upstream = protocol(reader, conn)
        except _http.HttpError as exc:
            conn.verdict, conn.reason, conn.detail = (
                Verdict.DENIED,
                DenyReason.MALFORMED,
                exc.message,
            )
            with contextlib.suppress(OSError):
                client.sendall(
                    _http.reply(exc.status, "Bad Request", f"sandbox egress proxy: {exc.message}\n")
                )
        except OSError as exc:
            conn.error = conn.error or str(exc)
        finally:
            if upstream is not None:
                self._untrack_close(upstream)
            self._untrack_close(client)
            self._emit(conn, started, t0)

    def _refuse_http(self, client: socket.socket, conn: _Conn, deny: Deny) -> None:
        conn.verdict, conn.reason, conn.detail = Verdict.DENIED, str(deny.reason), deny.detail
        # an allowed name that resolved to a special address: the detail names the fix
        hint = "" if "allow_addresses" in deny.detail else f"{_HINT}\n"
        body = f"sandbox egress proxy refused this {conn.method} request: {deny.detail}.\n{hint}"
        headers = (("X-Sandbox-Deny", str(deny.reason)),)
        with contextlib.suppress(OSError):
            client.sendall(_http.reply(403, "Forbidden", body, headers))

    def _serve_http(self, reader: _http.Reader, conn: _Conn) -> socket.socket | None:
        client = reader.sock
        head = _http.parse_head(reader.read_head())
        conn.method = head.method
        if head.method == "CONNECT":
            host, port = _http.parse_authority(head.target, None)
            path = ""
        else:
            target = _http.parse_absolute(head.target)
            host, port, path = target.host, target.port, target.path
        header = head.get("host")
        conn.host, conn.port = host, port
        if header is not None and not _http.same_authority(header, host, port, port):
            self._refuse_http(
                client,
                conn,
                Deny(DenyReason.HOST_MISMATCH, f"Host {header!r} differs from {host}:{port}"),
            )
            return None
        try:
            upstream = self._open(conn, host, port)
        except _Refused as exc:
            self._refuse_http(client, conn, exc.deny)
            return None
        except _Unreachable as exc:
            conn.verdict, conn.error = Verdict.ALLOWED, str(exc)
            body = f"sandbox egress proxy: {exc}\n"
            reply = _http.reply(502, "Bad Gateway", body, (("X-Sandbox-Error", "unreachable"),))
            client.sendall(reply)
            return None
        conn.verdict = Verdict.ALLOWED
        client.settimeout(None)
        if head.method == "CONNECT":
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            early = reader.drain()  # e.g. a TLS ClientHello sent without waiting
            if early:
                upstream.sendall(early)
                conn.counts[0] += len(early)
            self._relay(client, upstream, conn)
            return upstream
        if head.get("expect") is not None:
            client.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        plain = _http.RequestHead(
            head.method,
            path,
            head.version,
            tuple((k, v) for k, v in head.headers if k.lower() != "expect"),
        )
        request = _http.origin_request(plain, _http.AbsoluteTarget(host, port, path))
        upstream.sendall(request)
        conn.counts[0] += len(request) + _http.forward_body(head, reader, upstream)
        _pump(upstream, client, conn.counts, 1)  # one request per connection: then close
        return upstream

    def _relay(self, client: socket.socket, upstream: socket.socket, conn: _Conn) -> None:
        done = threading.Event()

        def down() -> None:
            try:
                _pump(upstream, client, conn.counts, 1)
            finally:
                done.set()

        self._spawn(down)
        _pump(client, upstream, conn.counts, 0)
        done.wait()

    def _serve_socks(self, reader: _http.Reader, conn: _Conn) -> socket.socket | None:
        """SOCKS5 (RFC 1928), CONNECT only, no authentication; names resolved here."""
        conn.method = "SOCKS5"
        client, _recv_exact = reader.sock, reader.exact
        _ver, count = _recv_exact(2)
        methods = _recv_exact(count)
        if 0 not in methods:
            client.sendall(b"\x05\xff")
            raise _http.HttpError(400, "SOCKS5 client offers no acceptable method")
        client.sendall(b"\x05\x00")
        ver, cmd, _rsv, atyp = _recv_exact(4)
        if atyp == 1:
            host = str(ipaddress.IPv4Address(_recv_exact(4)))
        elif atyp == 4:
            host = str(ipaddress.IPv6Address(_recv_exact(16)))
        elif atyp == 3:
            host = _recv_exact(_recv_exact(1)[0]).decode("ascii", "replace")
        else:
            client.sendall(b"\x05\x08\x00\x01" + bytes(6))
            raise _http.HttpError(400, "SOCKS5 address type not supported")
        (port,) = struct.unpack("!H", _recv_exact(2))
        conn.host, conn.port = host, port
        if ver != 5 or cmd != 1:
            client.sendall(b"\x05\x07\x00\x01" + bytes(6))
            conn.verdict, conn.reason = Verdict.DENIED, DenyReason.UNSUPPORTED
            conn.detail = "only SOCKS5 CONNECT is supported"
            return None
        try:
            upstream = self._open(conn, host, port)
        except _Refused as exc:
            conn.verdict, conn.reason, conn.detail = (
                Verdict.DENIED,
                str(exc.deny.reason),
                exc.deny.detail,
            )
            client.sendall(b"\x05\x02\x00\x01" + bytes(6))  # not allowed by ruleset
            return None
        except _Unreachable as exc:
            conn.verdict, conn.error = Verdict.ALLOWED, str(exc)
            client.sendall(b"\x05\x04\x00\x01" + bytes(6))  # host unreachable
            return None
        conn.verdict = Verdict.ALLOWED
        client.settimeout(None)
        client.sendall(b"\x05\x00\x00\x01" + bytes(6))
        early = reader.drain()
        if early:
            upstream.sendall(early)
            conn.counts[0] += len(early)
        self._relay(client, upstream, conn)
        return upstream


__all__ = ["AskHook", "EgressProxy", "ProxyConfig"]
