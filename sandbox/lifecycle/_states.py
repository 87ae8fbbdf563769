"""The session state machine: one table of allowed moves, one function that picks the next state.

    open -> pending -> partial -> committed | rejected

A session collects runs until a person closes it (committed or rejected). A run or a policy
auto-commit never closes it: at levels 3-4 a session whose changes were all committed stays
`open` for the agent's next tool call. Which state follows is decided by three facts only:
whether changes are still pending, whether any change of the session was ever committed, and
whether a person has just closed it (approve or reject of everything that was left).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import assert_never

from sandbox.errors import StateError
from sandbox.store import Decision, SessionState

__all__ = ["ALLOWED", "FINAL", "Closing", "check_move", "next_state", "run_decision"]

_S = SessionState

# Every move the lifecycle may make; anything else is a bug (StateError), tested exhaustively.
ALLOWED: Mapping[SessionState, frozenset[SessionState]] = {
    _S.OPEN: frozenset({_S.OPEN, _S.PENDING, _S.PARTIAL, _S.COMMITTED, _S.REJECTED}),
    _S.PENDING: frozenset({_S.OPEN, _S.PENDING, _S.PARTIAL, _S.COMMITTED, _S.REJECTED}),
    _S.PARTIAL: frozenset({_S.OPEN, _S.PARTIAL, _S.COMMITTED}),
    _S.COMMITTED: frozenset(),
    _S.REJECTED: frozenset(),
}

FINAL = frozenset(s for s, moves in ALLOWED.items() if not moves)


class Closing(StrEnum):
    """What the step that changes the state was."""

    NONE = "none"  # a run or a policy auto-commit (never closes: the session stays open)
    SETTLE = "settle"  # a look at what is left: nothing left means it reached the workspace
    APPROVE = "approve"  # a person committed what they chose (closes when nothing is left)
    REJECT = "reject"  # a person discarded what they chose (closes when nothing is left)


def next_state(current: SessionState, *, pending: bool, committed_any: bool,
               closing: Closing) -> SessionState:
    """The state after a step. StateError if the session is already closed."""
    if current in FINAL:
        raise StateError(f"session is already {current.value}; nothing can change it")
    committed_any = committed_any or current is _S.PARTIAL  # partial means some committed
    if pending:
        return _S.PARTIAL if committed_any else _S.PENDING
    match closing:
        case Closing.NONE:
            return _S.OPEN
        case Closing.SETTLE:
            # Nothing left while it was pending: what was held reached the workspace another
            # way (export + merge, or the same edit by hand). That closes it as committed.
            return _S.OPEN if current is _S.OPEN else _S.COMMITTED
        case Closing.APPROVE:
            return _S.COMMITTED
        case Closing.REJECT:
            # Files of this session already in the workspace keep it `committed`: a rejection
            # of the rest must never relabel committed work as rejected.
            return _S.COMMITTED if committed_any else _S.REJECTED
        case _:
            assert_never(closing)


def check_move(current: SessionState, new: SessionState) -> None:
    if new not in ALLOWED[current]:
        raise StateError(f"session state cannot go from {current.value} to {new.value}")


def run_decision(state: SessionState) -> Decision:
    """What a session state means for the decision shown on its latest run."""
    match state:
        case SessionState.OPEN:
            return Decision.NONE
        case SessionState.PENDING:
            return Decision.PENDING
        case SessionState.COMMITTED:
            return Decision.COMMITTED
        case SessionState.REJECTED:
            return Decision.REJECTED
        case SessionState.PARTIAL:
            return Decision.PARTIAL
        case _:
            assert_never(state)
