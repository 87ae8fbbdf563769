"""The life of a session, in one place: its state machine, the policy it was decided under,
the decisions after its runs (approve, reject, review, export, settle), cancelling a run, and
finding runs whose process died. The CLI, the library API and the servers only call this."""

from sandbox.lifecycle._liveness import alive, launcher_identity, reap_lost, stop_run
from sandbox.lifecycle._paths import normalize_paths
from sandbox.lifecycle._policy import DECIDING, policy_from_record, policy_record
from sandbox.lifecycle._session import (
    Approved,
    Lifecycle,
    Pending,
    Rejected,
    Reviewed,
    agent_session_id,
    default_message,
    held_policy,
)
from sandbox.lifecycle._states import (
    ALLOWED,
    FINAL,
    Closing,
    check_move,
    next_state,
    run_decision,
)

__all__ = [
    "ALLOWED",
    "DECIDING",
    "FINAL",
    "Approved",
    "Closing",
    "Lifecycle",
    "Pending",
    "Rejected",
    "Reviewed",
    "agent_session_id",
    "alive",
    "check_move",
    "default_message",
    "held_policy",
    "launcher_identity",
    "next_state",
    "normalize_paths",
    "policy_from_record",
    "policy_record",
    "reap_lost",
    "run_decision",
    "stop_run",
]
