"""Hash-chained, append-only audit log: one JSON line per event, tamper-evident.

log = AuditLog(layout.audit)
log.append(AuditEvent.RUN_STARTED, run=run_id, session=sid, data={"level": 2})
report = log.verify()          # says which line/seq broke, if any
print(render_text(log.records(run=run_id)))
"""

from sandbox.audit._log import AuditLog, Entry
from sandbox.audit._record import GENESIS, AuditEvent, AuditRecord, canonical_bytes, compute_hash
from sandbox.audit._render import render_text, safe_text
from sandbox.audit._verify import Head, Problem, ProblemKind, VerifyReport

__all__ = [
    "GENESIS",
    "AuditEvent",
    "AuditLog",
    "AuditRecord",
    "Entry",
    "Head",
    "Problem",
    "ProblemKind",
    "VerifyReport",
    "canonical_bytes",
    "compute_hash",
    "render_text",
    "safe_text",
]
