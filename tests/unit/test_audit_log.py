"""AuditLog.append / records: format, chaining, durability guards, fail-loud behaviour."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import pwd
import re
from pathlib import Path

import pytest

from sandbox.audit import GENESIS, AuditEvent, AuditLog, compute_hash
from sandbox.errors import AuditError


@pytest.fixture
def log(tmp_path: Path) -> AuditLog:
    return AuditLog(tmp_path / "audit.log")


def _lines(log: AuditLog) -> list[bytes]:
    return log.path.read_bytes().splitlines(keepends=True)


def test_first_record_shape_and_hash(log: AuditLog) -> None:
    rec = log.append(AuditEvent.RUN_STARTED, run="r-1", session="s-1", data={"level": 2})
    assert rec.seq == 1
    assert rec.prev == GENESIS
    assert rec.actor == pwd.getpwuid(os.getuid()).pw_name
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", rec.ts)
    (line,) = _lines(log)
    obj = json.loads(line)
    assert list(obj) == ["seq", "ts", "event", "run", "session", "actor", "data", "prev", "hash"]
    assert obj["event"] == "run.started" and obj["data"] == {"level": 2}
    body = {k: v for k, v in obj.items() if k != "hash"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    assert obj["hash"] == hashlib.sha256(canonical).hexdigest() == rec.hash
    assert compute_hash(rec.body()) == rec.hash


def test_records_chain_and_filter(log: AuditLog) -> None:
    a = log.append(AuditEvent.RUN_STARTED, run="r-a", session="s-1", data={})
    b = log.append(AuditEvent.RUN_STARTED, run="r-b", session="s-2", data={})
    c = log.append(AuditEvent.RUN_FINISHED, run="r-a", session="s-1", data={"exit": 0})
    assert [r.seq for r in (a, b, c)] == [1, 2, 3]
    assert b.prev == a.hash and c.prev == b.hash
    assert list(log.records()) == [a, b, c]
    assert [r.seq for r in log.records("r-a")] == [1, 3]
    assert [r.seq for r in log.records(session="s-2")] == [2]
    assert list(log.records("r-a", session="s-2")) == []


def test_actor_override_and_data_normalised(log: AuditLog) -> None:
    rec = log.append(AuditEvent.DECISION, actor="policy", data={"paths": ("a", "b")})
    assert rec.actor == "policy"
    # What append returns is exactly what reading gives back (tuples become lists).
    assert rec.data == {"paths": ["a", "b"]}
    assert next(log.records()) == rec


def test_surrogate_paths_are_recorded(log: AuditLog) -> None:
    name = os.fsdecode(b"bad-\xff-name")
    rec = log.append(AuditEvent.CHANGESET, data={"path": name})
    assert next(log.records()).data["path"] == name == rec.data["path"]
    assert log.verify().ok


@pytest.mark.parametrize("bad", [{"x": object()}, {"x": float("nan")}])
def test_unserialisable_data_raises(log: AuditLog, bad: dict[str, object]) -> None:
    with pytest.raises(AuditError):
        log.append(AuditEvent.EGRESS, data=bad)
    assert not log.path.exists() or log.path.read_bytes() == b""


def test_unwritable_location_raises(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a dir")
    with pytest.raises(AuditError):
        AuditLog(blocker / "audit.log").append(AuditEvent.RUN_STARTED, data={})


def test_symlink_at_log_path_is_refused(tmp_path: Path) -> None:
    # A planted symlink must not redirect audit writes somewhere else.
    target = tmp_path / "elsewhere"
    target.write_bytes(b"")
    (tmp_path / "audit.log").symlink_to(target)
    with pytest.raises(AuditError):
        AuditLog(tmp_path / "audit.log").append(AuditEvent.RUN_STARTED, data={})
    assert target.read_bytes() == b""


def test_failed_write_leaves_no_torn_record(log: AuditLog, monkeypatch: pytest.MonkeyPatch) -> None:
    log.append(AuditEvent.RUN_STARTED, data={})
    before = log.path.read_bytes()
    real_write = os.write

    def half_then_enospc(fd: int, data: bytes | memoryview) -> int:
        real_write(fd, bytes(data)[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", half_then_enospc)
    with pytest.raises(AuditError, match="No space"):
        log.append(AuditEvent.RUN_FINISHED, data={"exit": 0})
    monkeypatch.undo()
    assert log.path.read_bytes() == before
    assert log.verify().ok
    assert log.append(AuditEvent.RUN_FINISHED, data={}).seq == 2


def test_append_reads_only_the_tail(log: AuditLog, monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(300):
        log.append(AuditEvent.EGRESS, data={"i": i, "pad": "x" * 200})
    size = log.path.stat().st_size
    assert size > 80_000
    read_bytes = 0
    real_pread, real_read = os.pread, os.read

    def pread(fd: int, n: int, off: int) -> bytes:
        nonlocal read_bytes
        out = real_pread(fd, n, off)
        read_bytes += len(out)
        return out

    def read(fd: int, n: int) -> bytes:
        nonlocal read_bytes
        out = real_read(fd, n)
        read_bytes += len(out)
        return out

    monkeypatch.setattr(os, "pread", pread)
    monkeypatch.setattr(os, "read", read)
    rec = log.append(AuditEvent.EGRESS, data={"i": 300})
    assert rec.seq == 301
    assert read_bytes < 10_000


def test_head_sidecar_tracks_last_record(log: AuditLog) -> None:
    log.append(AuditEvent.RUN_STARTED, data={})
    rec = log.append(AuditEvent.RUN_FINISHED, data={})
    head = log.read_head()
    assert head is not None and (head.seq, head.hash) == (rec.seq, rec.hash)


def test_lost_head_update_is_tolerated_once_and_repaired(log: AuditLog) -> None:
    # Simulates a crash between the log fsync and the head update.
    log.append(AuditEvent.RUN_STARTED, data={})
    head1 = log.head_path.read_bytes()
    log.append(AuditEvent.RUN_FINISHED, data={})
    log.head_path.write_bytes(head1)
    report = log.verify()
    assert report.ok and report.notes
    rec = log.append(AuditEvent.DECISION, data={})
    head = log.read_head()
    assert head is not None and head.seq == rec.seq == 3
    assert log.verify().ok and not log.verify().notes


def test_an_append_flushes_the_log_alone_before_it_returns(
        log: AuditLog, monkeypatch: pytest.MonkeyPatch) -> None:
    """One fsync per append (each cost 1-7 ms on a loaded disk; a run makes two appends): the
    log's, before append returns, so a record is durable before its action's result is
    reported. The sidecar is not flushed: one lost at a power loss only lags (below)."""
    log.append(AuditEvent.RUN_STARTED, data={})
    flushed: list[str] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        flushed.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    log.append(AuditEvent.RUN_FINISHED, data={})
    assert flushed == [str(log.path)]


def test_a_head_lost_at_a_power_loss_lags_and_is_repaired(log: AuditLog) -> None:
    """The sidecar's writes since its last flush may all be lost: it then names an earlier
    record of the log (several behind), which is no sign of tampering and must not stop the
    audit; the next append brings it up to date."""
    log.append(AuditEvent.RUN_STARTED, data={})
    on_disk = log.head_path.read_bytes()
    for _ in range(3):
        log.append(AuditEvent.EGRESS, data={})
    log.head_path.write_bytes(on_disk)  # what the disk kept
    report = log.verify()
    assert report.ok, report.summary()
    assert any("3 record(s) behind" in n for n in report.notes)
    rec = log.append(AuditEvent.DECISION, data={})
    head = log.read_head()
    assert head is not None and (head.seq, head.hash) == (rec.seq, rec.hash) == (5, rec.hash)
    assert log.verify().ok and not log.verify().notes


def test_a_head_naming_a_record_the_log_does_not_hold_is_tampering(log: AuditLog) -> None:
    """Lagging is accepted only when the sidecar names a record of this very chain: a rewritten
    log (or sidecar) is still refused and reported."""
    for _ in range(4):
        log.append(AuditEvent.EGRESS, data={})
    log.head_path.write_bytes(log.head_path.read_bytes().replace(b"4 ", b"2 ", 1))
    head = log.read_head()
    assert head is not None and head.seq == 2  # seq 2 with record 4's hash
    report = log.verify()
    assert not report.ok and "rewritten" in report.summary()
    with pytest.raises(AuditError, match="does not match its head"):
        log.append(AuditEvent.EGRESS, data={})


def test_append_refuses_truncated_log(log: AuditLog) -> None:
    for _ in range(3):
        log.append(AuditEvent.EGRESS, data={})
    lines = _lines(log)
    log.path.write_bytes(b"".join(lines[:1]))
    with pytest.raises(AuditError, match="truncated"):
        log.append(AuditEvent.EGRESS, data={})
    assert _lines(log) == lines[:1]


def test_append_refuses_torn_tail(log: AuditLog) -> None:
    log.append(AuditEvent.EGRESS, data={})
    with log.path.open("ab") as f:
        f.write(b'{"seq":2,"ts"')
    with pytest.raises(AuditError, match="incomplete"):
        log.append(AuditEvent.EGRESS, data={})


def test_append_refuses_edited_last_record(log: AuditLog) -> None:
    log.append(AuditEvent.DECISION, data={"decision": "rejected"})
    log.path.write_bytes(log.path.read_bytes().replace(b"rejected", b"approved"))
    with pytest.raises(AuditError, match="edited"):
        log.append(AuditEvent.COMMIT, data={})


def test_records_raises_on_malformed_line(log: AuditLog) -> None:
    log.append(AuditEvent.EGRESS, data={})
    with log.path.open("ab") as f:
        f.write(b"garbage\n")
    with pytest.raises(AuditError, match="line 2"):
        list(log.records())


def test_missing_log_reads_empty(log: AuditLog) -> None:
    assert list(log.records()) == []
    report = log.verify()
    assert report.ok and report.records == 0


def test_missing_final_newline_is_a_torn_write(log: AuditLog) -> None:
    log.append(AuditEvent.EGRESS, data={})
    log.append(AuditEvent.EGRESS, data={})
    log.path.write_bytes(log.path.read_bytes()[:-1])
    with pytest.raises(AuditError, match="incomplete"):
        list(log.records())
    report = log.verify()
    assert not report.ok and report.first_problem is not None
    assert report.first_problem.line == 2
    with pytest.raises(AuditError, match="incomplete"):
        log.append(AuditEvent.EGRESS, data={})


def test_unknown_event_name_is_refused(log: AuditLog) -> None:
    with pytest.raises(AuditError, match="unknown audit event"):
        log.append("run.exploded", data={})  # type: ignore[arg-type]
    assert list(log.records()) == []
    assert log.append("run.started", data={}).event is AuditEvent.RUN_STARTED  # type: ignore[arg-type]
