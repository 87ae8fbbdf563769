"""verify() against real manipulations of the log file: each must be caught and located."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox.audit import AuditEvent, AuditLog, ProblemKind, compute_hash
from sandbox.errors import AuditError

N = 6


@pytest.fixture
def log(tmp_path: Path) -> AuditLog:
    log = AuditLog(tmp_path / "audit.log")
    for i in range(N):
        log.append(AuditEvent.EGRESS, run=f"r-{i}", data={"host": "example.org", "i": i})
    return log


def lines(log: AuditLog) -> list[bytes]:
    return log.path.read_bytes().splitlines(keepends=True)


def write(log: AuditLog, new: list[bytes]) -> None:
    log.path.write_bytes(b"".join(new))


def rehash(line: bytes, **changes: object) -> bytes:
    """Forge a record the way an attacker would: change fields and recompute its own hash."""
    obj = json.loads(line)
    obj.update(changes)
    body = {k: v for k, v in obj.items() if k != "hash"}
    obj["hash"] = compute_hash(body)
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


def first(log: AuditLog) -> tuple[ProblemKind, int | None]:
    report = log.verify()
    assert not report.ok
    p = report.first_problem
    assert p is not None
    return p.kind, p.line


def test_intact_log_verifies(log: AuditLog) -> None:
    report = log.verify()
    assert report.ok, report.summary()
    assert report.records == N and report.last_seq == N
    assert "OK" in report.summary()
    report.raise_if_broken()
    assert report.to_json()["ok"] is True


def test_edited_content(log: AuditLog) -> None:
    ls = lines(log)
    ls[2] = ls[2].replace(b"example.org", b"evil.example")
    write(log, ls)
    assert first(log) == (ProblemKind.HASH, 3)
    assert log.verify().first_problem is not None
    assert log.verify().first_problem.seq == 3  # type: ignore[union-attr]


def test_edited_content_with_recomputed_hash_breaks_the_link(log: AuditLog) -> None:
    ls = lines(log)
    ls[2] = rehash(ls[2], data={"host": "evil.example", "i": 2})
    write(log, ls)
    assert first(log) == (ProblemKind.CHAIN, 4)


def test_whitespace_only_edit(log: AuditLog) -> None:
    ls = lines(log)
    ls[1] = ls[1].replace(b'"seq":2,', b'"seq": 2,')
    write(log, ls)
    assert first(log) == (ProblemKind.MALFORMED, 2)


def test_duplicate_key_smuggling(log: AuditLog) -> None:
    # A parser that keeps the first key would see "evil"; ours must not accept the line.
    ls = lines(log)
    ls[1] = ls[1].replace(b'"data":{', b'"data":{"host":"evil","host":"example.org",', 1)
    ls[1] = ls[1].replace(b',"host":"example.org","i"', b',"i"', 1)
    write(log, ls)
    assert first(log) == (ProblemKind.MALFORMED, 2)


def test_removed_record(log: AuditLog) -> None:
    ls = lines(log)
    del ls[2]
    write(log, ls)
    kind, line = first(log)
    assert (kind, line) == (ProblemKind.SEQ, 3)
    assert "removed" in str(log.verify().first_problem)


def test_removed_first_record(log: AuditLog) -> None:
    write(log, lines(log)[1:])
    assert first(log) == (ProblemKind.SEQ, 1)


def test_inserted_copy(log: AuditLog) -> None:
    ls = lines(log)
    ls.insert(2, ls[1])
    write(log, ls)
    assert first(log) == (ProblemKind.SEQ, 3)


def test_inserted_forged_record(log: AuditLog) -> None:
    # A well-formed record with the right seq and prev, slotted in after record 2.
    ls = lines(log)
    prev = json.loads(ls[1])["hash"]
    forged = rehash(ls[2], prev=prev, data={"host": "forged"})
    ls.insert(2, forged)
    write(log, ls)
    # The forgery itself is consistent; the genuine record 3 after it no longer fits.
    assert first(log) == (ProblemKind.SEQ, 4)


def test_reordered_records(log: AuditLog) -> None:
    ls = lines(log)
    ls[1], ls[2] = ls[2], ls[1]
    write(log, ls)
    assert first(log) == (ProblemKind.SEQ, 2)


def test_truncated_tail_records(log: AuditLog) -> None:
    write(log, lines(log)[:-2])
    report = log.verify()
    kind, line = first(log)
    assert (kind, line) == (ProblemKind.HEAD, None)
    assert "truncated" in report.summary()
    assert f"seq {N}" in report.summary()


def test_truncated_mid_line(log: AuditLog) -> None:
    data = log.path.read_bytes()
    log.path.write_bytes(data[: len(data) - 40])
    report = log.verify()
    kinds = [(p.kind, p.line) for p in report.problems]
    assert (ProblemKind.MALFORMED, N) in kinds
    assert any(k == ProblemKind.HEAD for k, _ in kinds)


def test_log_deleted_but_head_remains(log: AuditLog) -> None:
    log.path.unlink()
    assert first(log) == (ProblemKind.HEAD, None)


def test_log_emptied(log: AuditLog) -> None:
    log.path.write_bytes(b"")
    assert first(log) == (ProblemKind.HEAD, None)


def test_head_deleted(log: AuditLog) -> None:
    log.head_path.unlink()
    assert first(log) == (ProblemKind.HEAD, None)


def test_head_garbled(log: AuditLog) -> None:
    log.head_path.write_bytes(b"nonsense\n")
    assert first(log) == (ProblemKind.HEAD, None)
    with pytest.raises(AuditError):
        log.append(AuditEvent.EGRESS, data={})


def test_blank_line_inserted(log: AuditLog) -> None:
    ls = lines(log)
    ls.insert(3, b"\n")
    write(log, ls)
    assert first(log) == (ProblemKind.MALFORMED, 4)


def test_raise_if_broken_names_the_line(log: AuditLog) -> None:
    ls = lines(log)
    del ls[4]
    write(log, ls)
    with pytest.raises(AuditError, match=r"line 5 \(seq 6\)"):
        log.verify().raise_if_broken()


def test_problems_do_not_cascade(log: AuditLog) -> None:
    # One broken line in the middle must not make every later line look broken.
    ls = lines(log)
    ls[2] = b"garbage\n"
    write(log, ls)
    report = log.verify()
    assert [(p.kind, p.line) for p in report.problems] == [(ProblemKind.MALFORMED, 3)]


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(pos=st.integers(min_value=0), byte=st.integers(min_value=0, max_value=255))
def test_any_single_byte_change_is_detected(log: AuditLog, pos: int, byte: int) -> None:
    original = log.path.read_bytes()
    pos %= len(original)
    if original[pos] == byte:
        byte ^= 1
    try:
        log.path.write_bytes(original[:pos] + bytes([byte]) + original[pos + 1 :])
        assert not log.verify().ok
    finally:
        log.path.write_bytes(original)
