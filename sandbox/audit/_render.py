"""Human-readable rendering of audit records, one line each.

Everything in a record may come from the sandboxed command (file names, argv, hosts), so every
value is escaped before it reaches a terminal: control characters, bidi overrides and other
non-printables become visible \\x / \\u escapes and cannot move the cursor or recolour output.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterable, Mapping
from typing import assert_never

from sandbox.audit._record import AuditEvent, AuditRecord

__all__ = ["render_text", "safe_text"]


def safe_text(text: str) -> str:
    """`text` with every non-printable character (and the backslash) escaped."""
    out: list[str] = []
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x100:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    return "".join(out)


_PLAIN = re.compile(r"^[\w@%+=:,./-]+$", re.ASCII)


def _token(text: str) -> str:
    """Bare if plain, else '...' , else "..." (when the text itself holds a single quote)."""
    escaped = safe_text(text)
    if _PLAIN.fullmatch(escaped):
        return escaped
    if "'" not in escaped:
        return f"'{escaped}'"
    return '"' + escaped.replace('"', '\\"') + '"'


def _value(value: object) -> str:
    match value:
        case bool():
            return "true" if value else "false"
        case None:
            return "null"
        case int() | float():
            return str(value)
        case str():
            return _token(value)
        case list() if all(isinstance(v, str) for v in value):
            # An argv: show it the way a shell user would type it.
            return _token(shlex.join(safe_text(str(v)) for v in value))
        case _:
            return _token(json.dumps(value, separators=(",", ":"), ensure_ascii=True))


def _shows_actor(event: AuditEvent) -> bool:
    """Who did it matters for human decisions; for machine steps it is always the runner."""
    match event:
        case AuditEvent.DECISION | AuditEvent.COMMIT | AuditEvent.SESSION_REJECTED:
            return True
        case (
            AuditEvent.RUN_STARTED
            | AuditEvent.RUN_FINISHED
            | AuditEvent.CHANGESET
            | AuditEvent.COMMIT_RECOVERED
            | AuditEvent.EGRESS
            | AuditEvent.PROFILE_DENIED
            | AuditEvent.LLM_CALL
            | AuditEvent.LLM_BLOCKED
            | AuditEvent.TOOL_CALL
        ):
            return False
        case _:
            assert_never(event)


def _fields(rec: AuditRecord) -> str:
    data: Mapping[str, object] = rec.data
    parts = [f"{safe_text(k)}={_value(v)}" for k, v in data.items()]
    if _shows_actor(rec.event):
        parts.append(f"by={_token(rec.actor)}")
    return " ".join(parts)


def render_text(records: Iterable[AuditRecord]) -> str:
    """One line per record, columns aligned: time (UTC)  run-or-session  event  key=value...

    Returns "" for no records; no trailing newline.
    """
    rows = [
        (
            rec.time.strftime("%Y-%m-%d %H:%M:%S"),
            safe_text(rec.run or rec.session or "-"),
            str(rec.event),
            _fields(rec),
        )
        for rec in records
    ]
    if not rows:
        return ""
    who_w = max(len(r[1]) for r in rows)
    event_w = max(len(r[2]) for r in rows)
    return "\n".join(
        f"{ts}  {who.ljust(who_w)}  {event.ljust(event_w)}  {fields}".rstrip()
        for ts, who, event, fields in rows
    )
