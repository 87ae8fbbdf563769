"""Copies of the audit trail outside this host, sent as records are checked: syslog (journald
reads /dev/log) and an OpenTelemetry collector (OTLP/HTTP, JSON encoding, logs signal).

A forwarder delivers one batch or raises ForwardError; its sender (_sender) retries from its
durable cursor on a thread of its own, and the signing goes on meanwhile: the local log and its
checkpoints stay the record; the copy is what a host compromise cannot take back.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import socket
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from sandbox.audit._record import AuditEvent, AuditRecord
from sandbox.audit._sign import Checkpoint
from sandbox.errors import UsageError

__all__ = ["ForwardError", "Forwarder", "OtlpForwarder", "SyslogForwarder", "otlp_log_record",
           "parse_forward", "shown"]


class ForwardError(Exception):
    """A batch did not reach its target (the sender keeps it and tries again)."""


class Forwarder(Protocol):
    @property
    def where(self) -> str: ...

    def forward(self, records: Sequence[AuditRecord], checkpoint: Checkpoint | None) -> None:
        """Deliver `records` (in order) then `checkpoint` if given, or raise ForwardError."""
        ...


def shown(target: str) -> str:
    """`target` fit for a log line: credentials in a collector URL stay out of logs."""
    from urllib.parse import urlunsplit

    parts = urlsplit(target)
    if parts.username or parts.password:
        netloc = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    return target


type _Socket = socket.socket  # the class below has an attribute named socket
type _SocketKind = socket.SocketKind


class _RaisingSysLogHandler(logging.handlers.SysLogHandler):
    """logging's handler reports a failed send on stderr and carries on; a sender must know, to
    keep the batch. A broken stream socket is dropped so the next try connects afresh."""

    socket: _Socket | None  # typeshed leaves it undeclared; emit() creates it when None
    unreachable: OSError | None = None  # why a TCP collector could not be reached at start
    _starting = False

    def __init__(self, address: tuple[str, int] | str, facility: int,
                 socktype: _SocketKind) -> None:
        self._starting = True
        try:
            super().__init__(address=address, facility=facility, socktype=socktype)
        finally:
            self._starting = False

    def createSocket(self) -> None:
        """A TCP collector that is down when serve starts is not a reason not to start: the
        sender connects when it first has something to send, and retries until it can."""
        try:
            super().createSocket()
        except OSError as exc:
            if not self._starting or self.socktype != socket.SOCK_STREAM:
                raise  # later, emit() reports it to the sender (handleError)
            self.unreachable = exc
            self.socket = None

    def handleError(self, record: logging.LogRecord) -> None:
        exc = sys.exception()
        if self.socktype == socket.SOCK_STREAM and not self.unixsocket and self.socket:
            self.socket.close()
            self.socket = None
        raise ForwardError(str(exc)) from exc


@dataclass
class SyslogForwarder:
    """One syslog message per record (its JSON line, as written) and per checkpoint."""

    handler: logging.handlers.SysLogHandler
    where: str

    @classmethod
    def open(cls, target: str) -> SyslogForwarder:
        u = urlsplit(target)
        address: str | tuple[str, int]
        kind = socket.SOCK_DGRAM
        match u.scheme:
            case "syslog":  # syslog:/dev/log (the default: journald's syslog socket)
                address = u.path or "/dev/log"
            case "syslog+udp" | "syslog+tcp":
                if u.hostname is None:
                    raise UsageError(f"--forward {target}: expected {u.scheme}://HOST:PORT")
                address = (u.hostname, u.port or 514)
                kind = socket.SOCK_STREAM if u.scheme == "syslog+tcp" else socket.SOCK_DGRAM
            case _:
                raise UsageError(f"--forward {target}: not a syslog address")
        try:
            handler = _RaisingSysLogHandler(
                address=address, facility=logging.handlers.SysLogHandler.LOG_AUTHPRIV,
                socktype=kind)
        except OSError as exc:
            raise UsageError(f"--forward {target}: {exc}") from exc
        handler.ident = "sandbox-audit: "
        if handler.unreachable is not None:
            print(f"sandbox serve: {shown(target)} is not reachable yet "
                  f"({handler.unreachable.strerror or handler.unreachable}); audit records will "
                  "be sent once it is", file=sys.stderr, flush=True)
        return cls(handler, target)

    def _emit(self, line: bytes) -> None:
        rec = logging.LogRecord("sandbox.audit", logging.INFO, __file__, 0,
                                line.decode("ascii").rstrip("\n"), None, None)
        self.handler.emit(rec)

    def forward(self, records: Sequence[AuditRecord], checkpoint: Checkpoint | None) -> None:
        for r in records:
            self._emit(r.encode_line())
        if checkpoint is not None:
            self._emit(b"checkpoint " + checkpoint.encode_line())


def _attr(key: str, value: object) -> dict[str, object]:
    match value:
        case bool():
            return {"key": key, "value": {"boolValue": value}}
        case int():
            return {"key": key, "value": {"intValue": str(value)}}  # int64 as a string in JSON
        case float():
            return {"key": key, "value": {"doubleValue": value}}
        case _:
            return {"key": key, "value": {"stringValue": str(value)}}


# OpenTelemetry GenAI semantic conventions for the gateway's model calls.
_GENAI = {"model": "gen_ai.request.model", "input_tokens": "gen_ai.usage.input_tokens",
          "output_tokens": "gen_ai.usage.output_tokens", "provider": "gen_ai.system"}


def otlp_log_record(rec: AuditRecord) -> dict[str, object]:
    attrs = [_attr("event.name", f"sandbox.audit.{rec.event}"), _attr("sandbox.audit.seq", rec.seq),
             _attr("sandbox.audit.hash", rec.hash), _attr("sandbox.actor", rec.actor)]
    if rec.session:
        attrs.append(_attr("sandbox.session.id", rec.session))
    if rec.run:
        attrs.append(_attr("sandbox.run.id", rec.run))
    if rec.event in (AuditEvent.LLM_CALL, AuditEvent.LLM_BLOCKED):
        attrs.append(_attr("gen_ai.operation.name", "chat"))
        for name, conv in _GENAI.items():
            if isinstance(rec.data.get(name), (str, int, float)):
                attrs.append(_attr(conv, rec.data[name]))
    nanos = int(rec.time.timestamp()) * 1_000_000_000 + rec.time.microsecond * 1000
    return {"timeUnixNano": str(nanos), "severityNumber": 9, "severityText": "INFO",
            "body": {"stringValue": rec.encode_line().decode("ascii").rstrip("\n")},
            "attributes": attrs}


@dataclass(frozen=True)
class OtlpForwarder:
    """POSTs each batch as one OTLP/HTTP JSON logs export (e.g. http://collector:4318/v1/logs)."""

    url: str
    timeout: float = 10.0  # per socket operation; only the sender's thread waits on it

    @property
    def where(self) -> str:
        return self.url

    def forward(self, records: Sequence[AuditRecord], checkpoint: Checkpoint | None) -> None:
        logs = [otlp_log_record(r) for r in records]
        if checkpoint is not None:
            logs.append({
                "severityNumber": 9, "severityText": "INFO",
                "body": {"stringValue": checkpoint.encode_line().decode("ascii").strip()},
                "attributes": [_attr("event.name", "sandbox.audit.checkpoint"),
                               _attr("sandbox.audit.seq", checkpoint.seq)]})
        body = {"resourceLogs": [{
            "resource": {"attributes": [_attr("service.name", "sandbox")]},
            "scopeLogs": [{"scope": {"name": "sandbox.audit"}, "logRecords": logs}],
        }]}
        req = urllib.request.Request(self.url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                resp.read()
        except (OSError, urllib.error.URLError) as exc:  # HTTPError (4xx/5xx) is one of them
            raise ForwardError(str(exc)) from exc


def parse_forward(target: str) -> Forwarder:
    """syslog:[PATH] | syslog+udp://HOST:PORT | syslog+tcp://HOST:PORT | otlp+http(s)://HOST:PORT/PATH"""
    scheme = urlsplit(target).scheme
    if scheme.startswith("syslog"):
        return SyslogForwarder.open(target)
    if scheme in ("otlp+http", "otlp+https"):
        url = target.removeprefix("otlp+")
        if not urlsplit(url).path.strip("/"):
            url = url.rstrip("/") + "/v1/logs"
        return OtlpForwarder(url)
    raise UsageError(f"--forward {target!r}: expected syslog:[PATH], syslog+udp://HOST:PORT, "
                     "syslog+tcp://HOST:PORT or otlp+http://HOST:PORT[/v1/logs]")
