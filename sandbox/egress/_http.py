"""The small part of HTTP/1.x the proxy needs: request heads, authorities, framing, replies.

Strict on purpose: anything ambiguous (folded headers, duplicate Host, Content-Length with
Transfer-Encoding, bare CR/LF) is a 400, because an ambiguity between the proxy and the origin
is how requests get smuggled past a decision.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_HEAD = 64 * 1024
MAX_HEADERS = 100

_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authorization",
        "proxy-authenticate",
        "te",
        "trailer",
        "upgrade",
    }
)


class HttpError(Exception):
    """A request the proxy refuses to interpret: answered with `status`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class RequestHead:
    method: str
    target: str
    version: str
    headers: tuple[tuple[str, str], ...]

    def get(self, name: str) -> str | None:
        """The single value of a header; HttpError if it is repeated."""
        values = [v for k, v in self.headers if k.lower() == name]
        if len(values) > 1:
            raise HttpError(400, f"repeated {name} header")
        return values[0] if values else None


def parse_head(raw: bytes) -> RequestHead:
    """Parse the request line and headers (without the final CRLF CRLF)."""
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise HttpError(400, "request head is not ASCII") from None
    lines = text.split("\r\n")
    if any("\r" in line or "\n" in line for line in lines):
        raise HttpError(400, "bare CR or LF in request head")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not _TOKEN.match(parts[0]) or parts[2] not in ("HTTP/1.1", "HTTP/1.0"):
        raise HttpError(400, f"bad request line {lines[0][:100]!r}")
    if len(lines) - 1 > MAX_HEADERS:
        raise HttpError(431, "too many headers")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not _TOKEN.match(name):
            raise HttpError(400, f"bad header line {line[:100]!r}")
        headers.append((name, value.strip(" \t")))
    return RequestHead(parts[0].upper(), parts[1], parts[2], tuple(headers))


def parse_authority(text: str, default_port: int | None) -> tuple[str, int]:
    """Split "host:port" / "[v6]:port" / "host" (with default_port) into (host, port)."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise HttpError(400, f"bad authority {text!r}")
        host, rest = text[1:end], text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise HttpError(400, f"bad authority {text!r}")
        port_text = rest[1:] if rest else ""
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep:
            host, port_text = text, ""
    if not port_text:
        if default_port is None:
            raise HttpError(400, f"authority {text!r} has no port")
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise HttpError(400, f"bad port in {text!r}")
    if not host or "@" in host:
        raise HttpError(400, f"bad authority {text!r}")
    return host, int(port_text)


@dataclass(frozen=True)
class AbsoluteTarget:
    host: str
    port: int
    path: str  # origin-form: path and query


def parse_absolute(target: str) -> AbsoluteTarget:
    """`http://host[:port]/path?q` → parts. Userinfo and other schemes are refused."""
    if not target.lower().startswith("http://"):
        if target.lower().startswith("https://"):
            raise HttpError(400, "https:// through a plain proxy request: use CONNECT")
        raise HttpError(400, "not a proxy request: the target must be an absolute http:// URI")
    parts = urlsplit(target)
    if "@" in parts.netloc or not parts.netloc:
        raise HttpError(400, "absolute URI with userinfo or without host")
    host, port = parse_authority(parts.netloc, 80)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return AbsoluteTarget(host, port, path)


def same_authority(header: str, host: str, port: int, default_port: int) -> bool:
    """Does a Host header name the same host and port as the request target?"""
    try:
        h_host, h_port = parse_authority(header.strip(), default_port)
    except HttpError:
        return False
    return h_host.lower().rstrip(".").strip("[]") == host.lower().rstrip(".").strip("[]") and (h_port == port)


def origin_request(head: RequestHead, target: AbsoluteTarget) -> bytes:
    """Rewrite an absolute-form request for the origin: origin-form target, Host set to the
    decided authority, hop-by-hop headers dropped, and `Connection: close` so that one client
    connection carries exactly one decided request."""
    host = f"[{target.host}]" if ":" in target.host else target.host
    authority = host if target.port == 80 else f"{host}:{target.port}"
    lines = [f"{head.method} {target.path} {head.version}", f"Host: {authority}"]
    lines += [f"{k}: {v}" for k, v in head.headers if k.lower() not in _HOP_BY_HOP | {"host"}]
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


def reply(status: int, reason: str, body: str, headers: tuple[tuple[str, str], ...] = ()) -> bytes:
    data = body.encode("utf-8")
    lines = [f"HTTP/1.1 {status} {reason}", *(f"{k}: {v}" for k, v in headers)]
    lines += [
        "Content-Type: text/plain; charset=utf-8",
        f"Content-Length: {len(data)}",
        "Connection: close",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + data


class Reader:
    """Buffered reads over a socket, keeping what was read past the head for the relay."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise HttpError(400, "connection closed mid-request")
        self.buf += chunk

    def peek(self) -> bool:
        """Read the first bytes; False if the peer closed without sending any."""
        if not self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                return False
            self.buf += chunk
        return True

    def exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def read_head(self) -> bytes:
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end >= 0:
                head = bytes(self.buf[:end])
                del self.buf[: end + 4]
                return head
            if len(self.buf) > MAX_HEAD:
                raise HttpError(431, "request head too large")
            self._fill()

    def read_line(self, limit: int = 4096) -> bytes:
        while (end := self.buf.find(b"\r\n")) < 0:
            if len(self.buf) > limit:
                raise HttpError(400, "line too long in chunked body")
            self._fill()
        line = bytes(self.buf[: end + 2])
        del self.buf[: end + 2]
        return line

    def take(self, limit: int) -> bytes:
        """Up to `limit` bytes: buffered ones first, else one recv."""
        if not self.buf:
            self._fill()
        data = bytes(self.buf[:limit])
        del self.buf[:limit]
        return data

    def drain(self) -> bytes:
        data = bytes(self.buf)
        self.buf.clear()
        return data


def forward_body(head: RequestHead, reader: Reader, dst: socket.socket) -> int:
    """Send exactly the request body (Content-Length or chunked) to dst; return its size.
    Anything the client sends after it is never forwarded."""
    length = head.get("content-length")
    chunked = head.get("transfer-encoding")
    if length is not None and chunked is not None:
        raise HttpError(400, "both Content-Length and Transfer-Encoding")
    sent = 0
    if chunked is not None:
        if chunked.lower() != "chunked":
            raise HttpError(501, f"unsupported Transfer-Encoding {chunked!r}")
        while True:
            line = reader.read_line()
            size_text = line.split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise HttpError(400, "bad chunk size") from None
            dst.sendall(line)
            sent += len(line)
            if size == 0:
                while (trailer := reader.read_line()) != b"\r\n":
                    dst.sendall(trailer)
                    sent += len(trailer)
                dst.sendall(b"\r\n")
                return sent + 2
            remaining = size + 2  # the chunk and its CRLF
            while remaining:
                data = reader.take(remaining)
                dst.sendall(data)
                remaining -= len(data)
                sent += len(data)
    if length is not None:
        if not length.isdigit():
            raise HttpError(400, "bad Content-Length")
        remaining = int(length)
        while remaining:
            data = reader.take(min(remaining, 1 << 20))
            dst.sendall(data)
            remaining -= len(data)
            sent += len(data)
    return sent


__all__ = [
    "AbsoluteTarget",
    "HttpError",
    "Reader",
    "RequestHead",
    "forward_body",
    "origin_request",
    "parse_absolute",
    "parse_authority",
    "parse_head",
    "reply",
    "same_authority",
]
