"""What follows a run inside `Runner`, under the session lock: carry out the level's decision,
then move the session's state. A commit that cannot happen (conflict, forbidden change) keeps
the changes pending and is reported; it never replaces the command's exit status."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, assert_never

from sandbox.audit import AuditEvent, Entry
from sandbox.errors import CommitError
from sandbox.governance import AskPerson, AutoCommit, Decision, Hold, NothingToDo, Verdict
from sandbox.governance import commit_paths as _commit_paths
from sandbox.lifecycle._session import left_after
from sandbox.lifecycle._states import Closing
from sandbox.store import SessionState

if TYPE_CHECKING:
    from sandbox.lifecycle._session import Lifecycle, Pending

__all__ = ["Applied", "apply_decision"]


@dataclass(frozen=True)
class Applied:
    committed: tuple[str, ...]
    state: SessionState
    commit_error: str | None = None  # why nothing was committed (changes stay pending)
    interrupted: bool = False  # Ctrl-C (or a signal) at the person's prompt


def verdicts_json(vs: tuple[Verdict, ...]) -> list[dict[str, str]]:
    return [{"path": v.path, "reason": v.reason} for v in vs]


def apply_decision(lc: Lifecycle, p: Pending, decision: Decision, *, run_id: str | None,
                   records: list[Entry], ask: Callable[[], bool]) -> Applied:
    """Carry out `decision` on the session's pending changes. Its audit record joins
    `records`, which are flushed before anything is committed (a commit is always preceded
    by its decision in the log). `ask` asks the person (levels 1-2 with a terminal)."""
    session = p.session

    def record(data: dict[str, Any], actor: str | None) -> None:
        records.append(Entry(AuditEvent.DECISION, run=run_id, session=session.id,
                             actor=actor, data=data))

    def flush() -> None:
        lc.audit.append_many(records)
        records.clear()

    def commit(paths: tuple[str, ...], actor: str | None) -> tuple[tuple[str, ...], str | None]:
        try:
            return _commit_paths(lc.layout, lc.audit, session, p.changeset, p.upper, paths,
                                 run_id=run_id, actor=actor), None
        except CommitError as exc:  # nothing was committed; the changes stay pending
            lc.audit.append(AuditEvent.DECISION, run=run_id, session=session.id, actor=actor,
                            data={"decision": "commit-failed", "paths": list(paths),
                                  "error": exc.message, "kind": type(exc).__name__})
            return (), exc.message

    closing = Closing.NONE
    committed: tuple[str, ...] = ()
    error: str | None = None
    interrupted = False
    match decision:
        case NothingToDo():
            pass
        case Hold(reasons=reasons, refused=refused):
            record({"decision": "hold", "reasons": list(reasons),
                    "refused": verdicts_json(refused)}, "policy")
        case AutoCommit(paths=paths, refused=refused, held=held):
            record({"decision": "auto-commit", "paths": list(paths),
                    "refused": verdicts_json(refused), "held": verdicts_json(held)}, "policy")
            flush()
            committed, error = commit(paths, "policy")
        case AskPerson(paths=paths, refused=refused):
            flush()  # the run is on record before a person is asked
            try:
                yes = ask()
            except KeyboardInterrupt:  # Ctrl-C at the prompt: nothing decided, kept pending
                yes, interrupted = False, True
            record({"decision": "approve" if yes else "keep-pending",
                    "paths": list(paths) if yes else [], "refused": verdicts_json(refused)}
                   | ({"interrupted": True} if interrupted else {}), None)
            flush()
            if yes:
                committed, error = commit(paths, None)
                closing = Closing.APPROVE
        case _:
            assert_never(decision)
    if records:
        flush()
    state = lc.advance(p, closing, committed=len(committed), left=left_after(p.changeset, committed))
    return Applied(committed, state, error, interrupted)

