"""render_text: readable one-liners that cannot inject terminal escapes."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.audit import AuditEvent, AuditLog, render_text, safe_text


@pytest.fixture
def log(tmp_path: Path) -> AuditLog:
    return AuditLog(tmp_path / "audit.log")


def test_example_format(log: AuditLog) -> None:
    rec = log.append(
        AuditEvent.RUN_STARTED,
        run="run-ab12",
        data={"level": 2, "backend": "nsjail", "cmd": ["touch", "x"]},
    )
    date, time = rec.ts[:10], rec.ts[11:19]
    assert render_text([rec]) == (
        f"{date} {time}  run-ab12  run.started  level=2 backend=nsjail cmd='touch x'"
    )


def test_columns_align_and_fallbacks(log: AuditLog) -> None:
    a = log.append(AuditEvent.CHANGESET, run="r-1", data={"files": 3, "ok": True, "x": None})
    b = log.append(AuditEvent.SESSION_REJECTED, session="s-long-id", actor="alice", data={})
    c = log.append(AuditEvent.COMMIT_RECOVERED, data={"journal": {"id": "j1"}})
    out = render_text([a, b, c]).splitlines()
    assert len(out) == 3
    assert "r-1        changeset         files=3 ok=true x=null" in out[0]
    assert out[1].endswith("s-long-id  session.rejected  by=alice")
    assert '-          commit.recovered  journal=\'{"id":"j1"}\'' in out[2]


def test_decisions_show_who(log: AuditLog) -> None:
    rec = log.append(AuditEvent.DECISION, run="r-1", actor="bob", data={"decision": "committed"})
    assert render_text([rec]).endswith("decision=committed by=bob")


def test_hostile_values_are_escaped(log: AuditLog) -> None:
    rec = log.append(
        AuditEvent.CHANGESET,
        run="r-1",
        data={"path": "a\x1b]0;pwned\x07\u202eb\nc", "cmd": ["sh", "-c", "echo 'hi'\r"]},
    )
    text = render_text([rec])
    assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text
    assert "\n" not in text and "\r" not in text
    assert "\\x1b]0;pwned\\x07\\u202eb\\x0ac" in text


def test_safe_text_is_unambiguous() -> None:
    # A literal backslash-x in a name must not look like an escaped control character.
    assert safe_text("\\x1b") != safe_text("\x1b")
    assert safe_text("plain é") == "plain é"


def test_empty() -> None:
    assert render_text([]) == ""
