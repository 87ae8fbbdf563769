"""The proxy's HTTP parsing: strict heads, authorities, absolute URIs, body framing."""

from __future__ import annotations

import socket

import pytest

from sandbox.egress._http import (
    HttpError,
    Reader,
    RequestHead,
    forward_body,
    origin_request,
    parse_absolute,
    parse_authority,
    parse_head,
    same_authority,
)


def test_parse_head_reads_request_line_and_headers() -> None:
    head = parse_head(b"CONNECT a.test:443 HTTP/1.1\r\nHost: a.test:443\r\nX: 1")
    assert (head.method, head.target, head.version) == ("CONNECT", "a.test:443", "HTTP/1.1")
    assert head.get("host") == "a.test:443"
    assert head.get("missing") is None


@pytest.mark.parametrize(
    "raw",
    [
        b"GET http://a.test/ HTTP/1.1\r\n folded: continuation",
        b"GET http://a.test/ HTTP/2.0",
        b"GET  http://a.test/ HTTP/1.1",
        b"GET http://a.test/ HTTP/1.1\r\nBad Header: x",
        b"GET http://a.test/ HTTP/1.1\r\nX: a\nInjected: b",
        b"GET http://a.test/ HTTP/1.1\r\nX: \xff",
    ],
)
def test_parse_head_rejects_ambiguity(raw: bytes) -> None:
    with pytest.raises(HttpError):
        parse_head(raw)


def test_repeated_host_is_an_error() -> None:
    head = parse_head(b"GET http://a.test/ HTTP/1.1\r\nHost: a.test\r\nHost: b.test")
    with pytest.raises(HttpError):
        head.get("host")


def test_authorities() -> None:
    assert parse_authority("a.test:8443", None) == ("a.test", 8443)
    assert parse_authority("[::1]:443", None) == ("::1", 443)
    assert parse_authority("a.test", 80) == ("a.test", 80)
    for bad in ("a.test", "a.test:0", "a.test:99999", "a.test:x", "user@a.test:80", "[::1"):
        with pytest.raises(HttpError):
            parse_authority(bad, None)


def test_absolute_uri() -> None:
    target = parse_absolute("http://A.test:8080/p/q?x=1")
    assert (target.host, target.port, target.path) == ("A.test", 8080, "/p/q?x=1")
    assert parse_absolute("http://a.test").path == "/"
    for bad in ("/relative", "https://a.test/", "http://user@b.test@a.test/", "ftp://a.test/"):
        with pytest.raises(HttpError):
            parse_absolute(bad)


def test_same_authority() -> None:
    assert same_authority("A.test:443", "a.test", 443, 443)
    assert same_authority("a.test", "a.test", 80, 80)
    assert not same_authority("b.test:443", "a.test", 443, 443)
    assert not same_authority("a.test:444", "a.test", 443, 443)


def test_origin_request_rewrites_host_and_drops_hop_by_hop() -> None:
    head = RequestHead(
        "GET",
        "http://a.test:81/x",
        "HTTP/1.1",
        (("Host", "a.test:81"), ("Proxy-Authorization", "secret"), ("Connection", "keep-alive"),
         ("Accept", "*/*")),
    )  # fmt: skip
    out = origin_request(head, parse_absolute(head.target)).decode()
    assert out.startswith("GET /x HTTP/1.1\r\nHost: a.test:81\r\n")
    assert "Proxy-Authorization" not in out and "keep-alive" not in out
    assert "Accept: */*\r\n" in out and out.endswith("Connection: close\r\n\r\n")


def _framed(body: bytes, headers: bytes) -> tuple[bytes, int]:
    a, b = socket.socketpair()
    c, d = socket.socketpair()
    with a, b, c, d:
        a.sendall(headers + b"\r\n\r\n" + body + b"GET http://evil.test/ HTTP/1.1\r\n\r\n")
        a.shutdown(socket.SHUT_WR)
        reader = Reader(b)
        head = parse_head(reader.read_head())
        sent = forward_body(head, reader, c)
        c.close()
        return d.recv(65536), sent


def test_body_framing_forwards_exactly_the_body() -> None:
    data, sent = _framed(b"hello", b"POST http://a.test/ HTTP/1.1\r\nContent-Length: 5")
    assert data == b"hello" and sent == 5
    chunked = b"5\r\nhello\r\n0\r\nTrailer: x\r\n\r\n"
    data, sent = _framed(chunked, b"POST http://a.test/ HTTP/1.1\r\nTransfer-Encoding: chunked")
    assert data == chunked and sent == len(chunked)  # the pipelined request is not forwarded


def test_smuggling_shapes_refused() -> None:
    with pytest.raises(HttpError):
        _framed(b"x", b"POST http://a.test/ HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked")
    with pytest.raises(HttpError):
        _framed(b"x", b"POST http://a.test/ HTTP/1.1\r\nContent-Length: -1")
