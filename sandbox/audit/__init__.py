"""Hash-chained, append-only audit log: one JSON line per event, tamper-evident.

log = AuditLog(layout.audit)
log.append(AuditEvent.RUN_STARTED, run=run_id, session=sid, data={"level": 2})
report = log.verify()          # says which line/seq broke, if any
print(render_text(log.records(run=run_id)))
"""

from typing import TYPE_CHECKING, Any

from sandbox.audit._head import Head
from sandbox.audit._log import AuditLog, Entry
from sandbox.audit._record import GENESIS, AuditEvent, AuditRecord, canonical_bytes, compute_hash

if TYPE_CHECKING:
    from sandbox.audit._render import render_text, safe_text
    from sandbox.audit._sigverify import verify_log
    from sandbox.audit._verify import Problem, ProblemKind, VerifyReport

_LAZY = {"render_text": "sandbox.audit._render", "safe_text": "sandbox.audit._render",
         "Problem": "sandbox.audit._verify", "ProblemKind": "sandbox.audit._verify",
         "VerifyReport": "sandbox.audit._verify", "verify_log": "sandbox.audit._sigverify"}


def __getattr__(name: str) -> Any:
    # Rendering and verification are for `sandbox audit`; appends (every run) skip them.
    if name not in _LAZY:
        raise AttributeError(f"module 'sandbox.audit' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_LAZY[name]), name)

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
    "verify_log",
]
