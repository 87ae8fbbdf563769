"""The session state machine, exhaustively: every state x every step x every fact."""

from __future__ import annotations

import itertools

import pytest

from sandbox.errors import StateError
from sandbox.lifecycle import ALLOWED, FINAL, Closing, check_move, next_state
from sandbox.store import SessionState as S


@pytest.mark.parametrize(("current", "pending", "committed_any", "closing"), list(
    itertools.product(S, (False, True), (False, True), Closing)))
def test_every_step_is_an_allowed_move(current: S, pending: bool, committed_any: bool,
                                       closing: Closing) -> None:
    if current in FINAL:
        with pytest.raises(StateError):
            next_state(current, pending=pending, committed_any=committed_any, closing=closing)
        return
    new = next_state(current, pending=pending, committed_any=committed_any, closing=closing)
    assert new in ALLOWED[current]
    check_move(current, new)
    # the facts decide: pending means pending or partial, never a closed state
    committed = committed_any or current is S.PARTIAL
    if pending:
        assert new is (S.PARTIAL if committed else S.PENDING)
    if new is S.REJECTED:
        assert not committed  # committed work is never relabelled rejected


@pytest.mark.parametrize(("current", "new"), list(itertools.product(S, S)))
def test_check_move_matches_the_table(current: S, new: S) -> None:
    if new in ALLOWED[current]:
        check_move(current, new)
    else:
        with pytest.raises(StateError):
            check_move(current, new)


def test_the_lifecycle_paths() -> None:
    def step(cur: S, pending: bool, committed: bool, closing: Closing) -> S:
        return next_state(cur, pending=pending, committed_any=committed, closing=closing)

    # level 2: open -> pending -> partial -> committed
    assert step(S.OPEN, True, False, Closing.NONE) is S.PENDING
    assert step(S.PENDING, True, True, Closing.APPROVE) is S.PARTIAL
    assert step(S.PARTIAL, False, True, Closing.APPROVE) is S.COMMITTED
    # reject after a partial approve: the session is committed, not rejected
    assert step(S.PARTIAL, False, True, Closing.REJECT) is S.COMMITTED
    assert step(S.PENDING, False, False, Closing.REJECT) is S.REJECTED
    # levels 3-4: all auto-committed -> stays open for the next run
    assert step(S.OPEN, False, True, Closing.NONE) is S.OPEN
    assert step(S.PENDING, False, True, Closing.NONE) is S.OPEN
    # export + merge: nothing left pending while it was pending -> committed
    assert step(S.PENDING, False, False, Closing.SETTLE) is S.COMMITTED
    assert step(S.OPEN, False, False, Closing.SETTLE) is S.OPEN
    assert {S.COMMITTED, S.REJECTED} == FINAL
