"""Run and session state in SQLite ($SANDBOX_HOME/state.db), and per-session locks.

with Store(HomeLayout.from_env().ensure()) as store:
    s = store.new_session(workspace, level=2, policy_digest=digest)
    with store.session_lock(s.id):
        r = store.new_run(s.id, ["make", "test"], backend="nsjail", profile="default")
        ...
        store.finish_run(r.id, status=RunStatus.FINISHED, exit_code=0)
    store.resolve("last")
"""

from sandbox.store._ids import IdKind, new_id
from sandbox.store._lock import session_lock
from sandbox.store._model import (
    Decision,
    RefKind,
    ResolvedRef,
    RunRecord,
    RunStatus,
    SessionRecord,
    SessionState,
)
from sandbox.store._schema import SCHEMA_VERSION
from sandbox.store._store import Store

__all__ = [
    "SCHEMA_VERSION",
    "Decision",
    "IdKind",
    "RefKind",
    "ResolvedRef",
    "RunRecord",
    "RunStatus",
    "SessionRecord",
    "SessionState",
    "Store",
    "new_id",
    "session_lock",
]
