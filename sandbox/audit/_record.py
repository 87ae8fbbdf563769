"""One audit record: its fields, its on-disk line and its hash.

A record is stored as one compact JSON line with the fields in a fixed order. Its hash is the
sha256 of the *canonical* JSON (sorted keys, no spaces, ASCII) of the record without "hash",
so anyone can re-verify the chain with a few lines of code in any language. On read, the line
must also be byte-identical to our own encoding of what it parsed to, so edits that keep the
parsed value (whitespace, duplicate keys, escapes) are still caught.
"""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from types import MappingProxyType

__all__ = [
    "GENESIS",
    "AuditEvent",
    "AuditRecord",
    "RecordFormatError",
    "canonical_bytes",
    "compute_hash",
    "decode_line",
    "default_actor",
    "make_record",
    "normalize_data",
    "utc_timestamp",
]

# `prev` of the first record: there is nothing before it.
GENESIS = "0" * 64

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
_FIELDS = ("seq", "ts", "event", "run", "session", "actor", "data", "prev", "hash")


class AuditEvent(StrEnum):
    RUN_STARTED = "run.started"
    RUN_FINISHED = "run.finished"
    CHANGESET = "changeset"
    DECISION = "decision"
    COMMIT = "commit"
    COMMIT_RECOVERED = "commit.recovered"
    EGRESS = "egress"
    PROFILE_DENIED = "profile.denied"
    SESSION_REJECTED = "session.rejected"
    LLM_CALL = "llm.call"
    LLM_BLOCKED = "llm.blocked"
    TOOL_CALL = "tool.call"  # one MCP tool call of an agent (sandbox mcp / sandbox agent)


class RecordFormatError(ValueError):
    """A line is not a well-formed audit record (the message says why)."""


@dataclass(frozen=True)
class AuditRecord:
    seq: int
    ts: str  # RFC 3339, UTC, microseconds: 2026-11-24T05:30:01.123456Z
    event: AuditEvent
    run: str | None
    session: str | None
    actor: str
    data: Mapping[str, object]
    prev: str
    hash: str

    @property
    def time(self) -> datetime:
        return datetime.strptime(self.ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)

    def body(self) -> dict[str, object]:
        """The record without "hash": what the hash covers."""
        return {
            "seq": self.seq,
            "ts": self.ts,
            "event": str(self.event),
            "run": self.run,
            "session": self.session,
            "actor": self.actor,
            "data": _thaw(self.data),
            "prev": self.prev,
        }

    def to_json(self) -> dict[str, object]:
        return {**self.body(), "hash": self.hash}

    def encode_line(self) -> bytes:
        text = json.dumps(self.to_json(), separators=(",", ":"), ensure_ascii=True, allow_nan=False)
        return text.encode("ascii") + b"\n"


def _thaw(data: Mapping[str, object]) -> dict[str, object]:
    return dict(data)


def canonical_bytes(obj: object) -> bytes:
    # ensure_ascii: paths decoded with surrogateescape contain lone surrogates, which UTF-8
    # cannot encode; \u escapes can.
    text = json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    )
    return text.encode("ascii")


def compute_hash(body: Mapping[str, object]) -> str:
    return hashlib.sha256(canonical_bytes(body)).hexdigest()


def utc_timestamp(now: datetime | None = None) -> str:
    moment = datetime.now(UTC) if now is None else now.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def default_actor() -> str:
    """The invoking user's name, or "uid:N" when the uid has no name (e.g. in a container).

    Looked up from the real uid, not $USER/$LOGNAME, which the caller could set to anything.
    """
    uid = os.getuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid:{uid}"


def normalize_data(data: Mapping[str, object] | None) -> Mapping[str, object]:
    """Round-trip through JSON so the record holds exactly what will be read back.

    Raises TypeError/ValueError for values JSON cannot represent (objects, NaN...).
    """
    if data is None:
        return MappingProxyType({})
    text = json.dumps(dict(data), ensure_ascii=True, allow_nan=False)
    loaded = json.loads(text)
    if not isinstance(loaded, dict):  # pragma: no cover - dict(data) always dumps an object
        raise TypeError("audit data must be a JSON object")
    return MappingProxyType(loaded)


def make_record(
    *,
    seq: int,
    prev: str,
    event: AuditEvent,
    run: str | None,
    session: str | None,
    actor: str,
    data: Mapping[str, object],
    ts: str,
) -> AuditRecord:
    draft = AuditRecord(seq, ts, event, run, session, actor, data, prev, hash="")
    return AuditRecord(seq, ts, event, run, session, actor, data, prev, compute_hash(draft.body()))


def _reject_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in pairs:
        if key in out:
            raise RecordFormatError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _opt_str(obj: Mapping[str, object], key: str) -> str | None:
    value = obj[key]
    if value is None or isinstance(value, str):
        return value
    raise RecordFormatError(f"{key!r} must be a string or null")


def _str(obj: Mapping[str, object], key: str) -> str:
    value = obj[key]
    if isinstance(value, str):
        return value
    raise RecordFormatError(f"{key!r} must be a string")


def decode_line(line: bytes) -> AuditRecord:
    """Parse one line (with or without its newline) into a record; check shape, not hash."""
    raw = line[:-1] if line.endswith(b"\n") else line
    try:
        obj = json.loads(raw.decode("ascii"), object_pairs_hook=_reject_duplicates)
    except UnicodeDecodeError as exc:
        raise RecordFormatError("non-ASCII bytes in record") from exc
    except json.JSONDecodeError as exc:
        raise RecordFormatError(f"not JSON: {exc.msg} at column {exc.colno}") from exc
    if not isinstance(obj, dict):
        raise RecordFormatError("not a JSON object")
    if tuple(obj) != _FIELDS:
        raise RecordFormatError(f"fields are {list(obj)}, expected {list(_FIELDS)}")
    seq = obj["seq"]
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        raise RecordFormatError("'seq' must be a positive integer")
    ts = _str(obj, "ts")
    if not _TS.fullmatch(ts):
        raise RecordFormatError(f"'ts' is not an RFC 3339 UTC timestamp: {ts!r}")
    try:
        event = AuditEvent(_str(obj, "event"))
    except ValueError as exc:
        raise RecordFormatError(f"unknown event {obj['event']!r}") from exc
    data = obj["data"]
    if not isinstance(data, dict):
        raise RecordFormatError("'data' must be an object")
    prev, digest = _str(obj, "prev"), _str(obj, "hash")
    if not _HEX64.fullmatch(prev) or not _HEX64.fullmatch(digest):
        raise RecordFormatError("'prev' and 'hash' must be 64 lowercase hex digits")
    record = AuditRecord(
        seq=seq,
        ts=ts,
        event=event,
        run=_opt_str(obj, "run"),
        session=_opt_str(obj, "session"),
        actor=_str(obj, "actor"),
        data=MappingProxyType(data),
        prev=prev,
        hash=digest,
    )
    if record.encode_line() != raw + b"\n":
        raise RecordFormatError("line is not in canonical form (edited by hand?)")
    return record
