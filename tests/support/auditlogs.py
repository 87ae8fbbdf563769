"""Audit logs for tests: filled with records, and rewritten the way an attacker would."""

from __future__ import annotations

from pathlib import Path

from sandbox.audit import GENESIS, AuditEvent, AuditLog
from sandbox.audit._head import Head
from sandbox.audit._record import decode_line, make_record


def fill(log: AuditLog, n: int, session: str = "s1") -> None:
    for i in range(n):
        log.append(AuditEvent.RUN_STARTED, run=f"r{i}", session=session, data={"argv": ["t", str(i)]})


def rewrite(log: AuditLog, *, edit_seq: int, drop_last: int) -> None:
    """Edit one record, drop the last `drop_last`, recompute every hash, rewrite the head:
    a log that passes the chain check on its own."""
    recs = [decode_line(line) for line in log.path.read_bytes().splitlines(keepends=True)]
    recs = recs[: len(recs) - drop_last]
    out, prev = [], GENESIS
    for r in recs:
        data = {**r.data, "argv": ["rm", "-rf", "evidence"]} if r.seq == edit_seq else r.data
        new = make_record(seq=r.seq, prev=prev, event=r.event, run=r.run, session=r.session,
                          actor=r.actor, data=data, ts=r.ts)
        out.append(new)
        prev = new.hash
    log.path.write_bytes(b"".join(r.encode_line() for r in out))
    log._write_head(Head(out[-1].seq, out[-1].hash))


def checkpoint_seqs(home: Path) -> list[int]:
    import json

    path = home / "audit.checkpoints"
    if not path.exists():
        return []
    return [json.loads(line)["seq"] for line in path.read_text().splitlines() if line.strip()]


def write_log(log: AuditLog, entries: list[tuple[str, str, str | None, str, dict[str, object]]]) -> None:
    """A chained log with the given timestamps: (ts, event, session, actor, data) each."""
    out, prev = [], GENESIS
    for seq, (ts, event, session, actor, data) in enumerate(entries, 1):
        rec = make_record(seq=seq, prev=prev, event=AuditEvent(event), run=None, session=session,
                          actor=actor, data=data, ts=ts)
        out.append(rec)
        prev = rec.hash
    log.path.write_bytes(b"".join(r.encode_line() for r in out))
    log._write_head(Head(out[-1].seq, out[-1].hash))
