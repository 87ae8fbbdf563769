"""The life of a session after its runs: approve, reject, review's partial commit, export,
settle, cancel. One implementation for the CLI, the library and (later) the servers.

Every step that changes a session holds its lock (refusing at once, with the run that holds
it, rather than committing part of a run still going), judges with the policy the session
recorded, writes its audit records, and moves the state machine of `_states` by one step.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from sandbox.audit import AuditEvent
from sandbox.errors import (
    ForbiddenChangeError,
    ProtectedChangeError,
    SessionBusyError,
    SessionClosedError,
    UsageError,
)
from sandbox.fs import Change, ChangeSet
from sandbox.governance import (
    Risk,
    Verdict,
    classify,
    commit_paths,
    reject_paths,
    split_conflicts,
)
from sandbox.lifecycle._liveness import stop_run
from sandbox.lifecycle._paths import normalize_paths
from sandbox.lifecycle._policy import policy_from_record
from sandbox.lifecycle._states import FINAL, Closing, check_move, next_state, run_decision
from sandbox.policy import Level, Policy
from sandbox.store import ResolvedRef, RunRecord, RunStatus, SessionRecord, SessionState

if TYPE_CHECKING:
    from sandbox._home import HomeLayout
    from sandbox.audit import AuditLog, AuditRecord
    from sandbox.fs import Ignored
    from sandbox.fs._patch import Conflicted
    from sandbox.policy import EffectivePolicy
    from sandbox.review import ApplyResult, ExportResult, Plan
    from sandbox.store import Store

__all__ = ["Approved", "Lifecycle", "Pending", "Rejected", "Reviewed", "agent_session_id",
           "held_policy"]


@dataclass(frozen=True)
class Pending:
    """A session's pending changes as of now, and the policy they are judged by."""

    ref: ResolvedRef
    changeset: ChangeSet
    upper: Path
    policy: Policy
    ignored: Ignored = field(default_factory=lambda: _no_ignored())  # output left out

    @property
    def session(self) -> SessionRecord:
        return self.ref.session

    @property
    def run_id(self) -> str | None:
        return self.ref.run.id if self.ref.run else None

    def verdicts(self) -> list[Verdict]:
        return [classify(c, self.policy) for c in self.changeset.changes]

    def forbidden(self, paths: Sequence[str] | None = None) -> list[Change]:
        """The forbidden changes (under `paths`): never committed, never in a patch unless
        asked for by name."""
        return [c for c in self.changeset.select(paths) if c.forbidden]


@dataclass(frozen=True)
class Approved:
    session_id: str
    committed: tuple[str, ...]
    refused: tuple[Verdict, ...]  # forbidden changes left pending
    state: SessionState
    # (path, why): the workspace moved there since the session saw it; kept pending (--force)
    conflicts: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Rejected:
    session_id: str
    rejected: tuple[str, ...]
    state: SessionState


@dataclass(frozen=True)
class Reviewed:
    result: ApplyResult
    state: SessionState
    left: int  # changes still pending


def _no_ignored() -> Ignored:
    from sandbox.fs import Ignored

    return Ignored()


class Lifecycle:
    def __init__(self, layout: HomeLayout, store: Store, audit: AuditLog) -> None:
        self.layout, self.store, self.audit = layout, store, audit

    # -- looking ------------------------------------------------------------------------

    def resolve(self, ref: str, *, workspace: Path | None = None,
                cwd: Path | None = None) -> ResolvedRef:
        """RUN as a person means it: `last` is the last run of `workspace`; with `cwd`
        instead, of the innermost workspace around `cwd` that has runs (`-C sub` of a git
        work tree, the work tree itself, or an enclosing non-git workspace); with neither, of
        any workspace."""
        if cwd is None or workspace is not None or ref.strip().lower() != "last":
            return self.store.resolve(ref, workspace=workspace)
        here = Path(os.path.realpath(cwd))
        for ws in (here, *here.parents):
            if self.store.list_runs(1, workspace=ws):
                return self.store.resolve("last", workspace=ws)
        from sandbox._workspace import locate_workspace

        # raises "no runs yet in ...", naming the workspace a run from here would use
        return self.store.resolve("last", workspace=locate_workspace(None, cwd=here).workspace)

    def waiting(self) -> list[RunRecord]:
        """The latest run of every session waiting for a person (pending, or partly
        committed), however old it is."""
        return [run for state in (SessionState.PENDING, SessionState.PARTIAL)
                for session in self.store.list_sessions(state=state, limit=1_000_000)
                for run in self.store.list_runs(limit=1, session_id=session.id)]

    def timeline(self, session: SessionRecord) -> list[AuditRecord]:
        """The session's audit records in order; for a `sandbox agent` session, with the LLM
        calls of the agent's own session (they caused the tool calls) in their place."""
        events = list(self.audit.records(session=session.id))
        agent = agent_session_id(session.id)
        if agent is not None and any(e.event is AuditEvent.TOOL_CALL for e in events):
            events = sorted(events + list(self.audit.records(session=agent)),
                            key=lambda e: e.seq)
        return events

    def patch(self, p: Pending, paths: Sequence[str] | None = None, *,
              include_forbidden: bool = False,
              conflicted: list[Conflicted] | None = None) -> Iterator[bytes]:
        """The pending changes (under `paths`) as a patch, in pieces as they are made (a
        million-line change starts at once). Forbidden changes stay out (`diff | git apply`
        must never write what approve refuses); `include_forbidden` adds each after a
        `# FORBIDDEN` line (git apply skips text between patches), for forensics."""
        from sandbox.fs import iter_patch
        from sandbox.review import esc

        def of(cs: ChangeSet) -> Iterator[bytes]:
            return iter_patch(cs, upper=p.upper, lower=p.session.workspace, paths=paths,
                              session_dir=self.layout.session_dir(p.session.id),
                              conflicted=conflicted)

        yield from of(p.changeset.permitted())
        if include_forbidden:
            for c in p.forbidden(paths):
                yield (esc(f"# FORBIDDEN: {c.path}: {'; '.join(c.forbidden)}") + "\n").encode()
                yield from of(ChangeSet((c,)))

    def policy_of(self, session: SessionRecord) -> Policy:
        """The policy the session's runs were decided under (recorded with the session)."""
        recorded = policy_from_record(session.policy)
        if recorded is not None:
            return recorded
        from sandbox.errors import SandboxError
        from sandbox.policy import load_policy

        try:  # a session recorded before policies were kept: today's workspace policy
            return load_policy(session.workspace).policy
        except SandboxError:
            return Policy()  # a policy broken since must not block its pending changes

    def pending(self, ref: ResolvedRef, *, include_ignored: bool = False) -> Pending:
        """The session's proposed changes (with `include_ignored`, the ignored output too)."""
        session = self.store.get_session(ref.session.id)  # fresh: the state may have moved
        ref = ResolvedRef(ref.ref, ref.kind, session, ref.run)
        upper = self.layout.session_dirs(session.id).upper
        policy = self.policy_of(session)
        cs, ignored = self._changes(session, upper, policy)
        if include_ignored:
            cs = ChangeSet(cs.changes + ignored.changes)
        return Pending(ref, cs, upper, policy, ignored)

    def _changes(self, session: SessionRecord, upper: Path,
                 policy: Policy) -> tuple[ChangeSet, Ignored]:
        """(each pending change as the session made it, against what it saw; the ignored
        output left out of the proposal)."""
        from sandbox.fs import compute_changeset, rebase, split_ignored

        if not upper.exists():
            return ChangeSet(()), _no_ignored()
        cs = compute_changeset(upper, session.workspace, hidden=policy.hide,
                               unhidden=policy.hide_except)
        cs = rebase(cs, self.layout.session_dir(session.id), session.workspace, upper)
        return split_ignored(cs, session.workspace, policy.changes_ignore)

    # -- locking ------------------------------------------------------------------------

    @contextmanager
    def locked(self, session_id: str) -> Iterator[None]:
        """The session's lock, or SessionBusyError naming the run that holds it: a decision
        never waits for, nor takes part of, a run still going."""
        try:
            with self.store.session_lock(session_id, timeout=0):
                yield
        except SessionBusyError as exc:
            running = [r for r in self.store.list_runs(5, session_id=session_id)
                       if r.status is RunStatus.RUNNING]
            if not running:
                raise
            raise SessionBusyError(
                f"session {session_id} has a run going ({running[0].id}); nothing was changed",
                hint=f"wait for it to end, or stop it with `sandbox kill {running[0].id}`",
            ) from exc

    # -- decisions ----------------------------------------------------------------------

    def approve(self, ref: ResolvedRef, paths: Sequence[str] = (), *, force: bool = False,
                include_protected: bool = False, include_ignored: bool = False,
                message: str | None = None, cwd: Path | None = None) -> Approved:
        """Commit the pending changes (all, or those under `paths`), journaled and atomic.
        ForbiddenChangeError / ProtectedChangeError / ConflictError: nothing was committed."""
        with self.locked(ref.session.id):
            p = self.pending(ref, include_ignored=include_ignored)
            if not p.changeset:
                return Approved(p.session.id, (), (), self._settle(p))
            chosen = normalize_paths(paths, p.changeset, workspace=p.session.workspace, cwd=cwd)
            verdicts = [classify(c, p.policy) for c in p.changeset.select(chosen)]
            forbidden = tuple(v for v in verdicts if v.risk is Risk.FORBIDDEN)
            if forbidden and chosen is not None:
                raise ForbiddenChangeError("forbidden, never committed: " + "; ".join(
                    f"{v.path}: {v.reason}" for v in forbidden),
                    hint=f"nothing was committed; discard it with `sandbox reject "
                    f"{p.session.id} PATH`, or approve the other paths by name")
            protected = [v for v in verdicts if v.risk is Risk.PROTECTED]
            if protected and not include_protected:
                raise ProtectedChangeError(
                    "protected changes need --include-protected: " + "; ".join(
                        f"{v.path} ({v.reason})" for v in protected),
                    hint="nothing was committed")
            to_commit, conflicts = split_conflicts(
                [v.path for v in verdicts if v.risk is not Risk.FORBIDDEN], p.changeset, force)
            committed = commit_paths(self.layout, self.audit, p.session, p.changeset, p.upper,
                                     to_commit, run_id=p.run_id, actor=None, force=force,
                                     message=message)
            if conflicts:
                self.audit.append(AuditEvent.DECISION, run=p.run_id, session=p.session.id,
                                  data={"decision": "keep-pending", "conflicts": [
                                      {"path": q, "reason": why} for q, why in conflicts]})
            state = self.advance(p, Closing.APPROVE, committed=len(committed),
                                 left=left_after(p.changeset, committed))
        return Approved(p.session.id, committed, forbidden, state, tuple(conflicts))

    def reject(self, ref: ResolvedRef, paths: Sequence[str] = (), *,
               message: str | None = None, cwd: Path | None = None) -> Rejected:
        """Discard the pending changes (all, or those under `paths`); the workspace is
        untouched. A closed session is refused: rejecting never relabels committed work."""
        with self.locked(ref.session.id):
            p = self.pending(ref)
            self._refuse_closed(p.session, "reject")
            if not p.changeset:
                return Rejected(p.session.id, (), self._settle(p))
            chosen = normalize_paths(paths, p.changeset, workspace=p.session.workspace, cwd=cwd)
            rejected = reject_paths(self.audit, p.session, p.changeset, p.upper, chosen,
                                    message=message)
            state = self.advance(p, Closing.REJECT, left=left_after(p.changeset, rejected))
        return Rejected(p.session.id, rejected, state)

    @contextmanager
    def reviewing(self, ref: ResolvedRef) -> Iterator[Pending]:
        """Hold the lock while a person looks: what they saw is what `apply_review` applies."""
        with self.locked(ref.session.id):
            yield self.pending(ref)

    def apply_review(self, p: Pending, plan: Plan, *, message: str | None = None,
                     force: bool = False, actor: str | None = None) -> Reviewed:
        """Review's commit: accepted parts committed, rejected ones discarded, the rest kept.
        Call inside `reviewing` with the Pending it gave. `actor`: who decided, for the audit
        records (default: this process's user; `sandbox serve` names the token's person)."""
        from sandbox.review import Target, apply_plan

        target = Target(p.session.id, self.layout.session_dir(p.session.id), p.upper,
                        p.session.workspace, self.layout.journal_dir, p.session.started_ns,
                        p.run_id)
        result = apply_plan(plan, p.changeset, target, self.audit, message=message, force=force,
                            actor=actor)
        count = len(result.committed) + len(result.partial)
        left = self.pending(p.ref).changeset  # one diff: the state's and the count's
        state = self.advance(p, Closing.APPROVE if count else Closing.REJECT, committed=count,
                             left=left)
        return Reviewed(result, state, len(left.changes))

    def export(self, ref: ResolvedRef, branch: str, *, message: str | None = None,
               include_protected: bool = False) -> ExportResult:
        """The pending changes as one commit on a new branch; the working tree, the index and
        the pending changes stay as they are (a merge later settles the session)."""
        from sandbox.review import export_changeset

        with self.locked(ref.session.id):
            # export judges ignored output itself (and says what it left out, and why)
            p = self.pending(ref, include_ignored=True)
            if not p.changeset:
                raise UsageError(f"nothing pending in session {p.session.id} to export",
                                 hint=f"`sandbox show {p.session.id}` lists what it did")
            result = export_changeset(p.changeset, p.verdicts(), upper=p.upper,
                                      workspace=p.session.workspace, branch=branch,
                                      message=message or default_message(p.ref),
                                      include_protected=include_protected)
            self.audit.append(AuditEvent.DECISION, run=p.run_id, session=p.session.id, data={
                "decision": "export", "branch": result.branch, "commit": result.commit,
                "base": result.base, "paths": list(result.paths),
                "skipped": [{"path": q, "reason": r} for q, r in result.skipped],
                "carried": list(result.carried), "message": message})
        return result

    def settled(self, ref: ResolvedRef) -> Pending:
        """`settle`, then the pending changes (`sandbox show`): one diff of the upper dir
        serves both, unless settling closed the session (its ignored output is then gone)."""
        try:
            with self.locked(ref.session.id):
                p = self.pending(ref)
                state = self._settle(p)
                if not (state in FINAL and state is not p.session.state):
                    session = self.store.get_session(p.session.id)  # its state as recorded
                    return replace(p, ref=ResolvedRef(p.ref.ref, p.ref.kind, session, p.ref.run))
        except SessionBusyError:
            pass
        return self.pending(ref)

    def settle(self, ref: ResolvedRef) -> SessionState:
        """Bring the recorded state up to what is pending now (after an export was merged,
        nothing is left: the session is committed). Skipped while the session is busy."""
        try:
            with self.locked(ref.session.id):
                return self._settle(self.pending(ref))
        except SessionBusyError:
            return self.store.get_session(ref.session.id).state

    def cancel(self, ref: ResolvedRef) -> RunRecord:
        """Stop a running run (its `sandbox run` records it cancelled and keeps its changes
        pending); a run whose process is gone is marked lost."""
        run = ref.run
        if ref.kind.value == "session" or run is None:
            running = [r for r in self.store.list_runs(5, session_id=ref.session.id)
                       if r.status is RunStatus.RUNNING]
            if not running:
                raise UsageError(f"session {ref.session.id} has no run going",
                                 hint="`sandbox ls` lists the runs and their states")
            run = running[0]
        if run.status is not RunStatus.RUNNING:
            raise UsageError(f"run {run.id} is not running (it is {run.status.value})",
                             hint=f"`sandbox show {run.id}` shows how it ended")
        if not stop_run(run):
            self.reap_lost()  # its process is gone: lost, and its session settled
        return self.store.get_run(run.id)

    def reap_lost(self) -> list[RunRecord]:
        """Mark runs whose `sandbox run` died as lost; their sessions show what they left
        pending (the changes made so far are kept, like a cancelled run's)."""
        from sandbox.lifecycle._liveness import reap_lost
        from sandbox.store import RefKind

        lost = reap_lost(self.store, self.audit)
        for run in lost:
            self.settle(ResolvedRef(run.id, RefKind.RUN, self.store.get_session(run.session_id),
                                    run))
        return lost

    # -- the state machine --------------------------------------------------------------

    def advance(self, p: Pending, closing: Closing, *, committed: int = 0,
                left: ChangeSet | None = None) -> SessionState:
        """Move the session one step: what is left pending, whether anything of it was ever
        committed, and whether a person closed it decide the state (see `_states`)."""

        session = self.store.get_session(p.session.id)
        walked: tuple[ChangeSet, Ignored] | None = None
        if left is None:  # ignored output left over is not pending
            walked = self._changes(session, p.upper, p.policy)
            left = walked[0]
        if session.state in FINAL and not left and not committed:
            return session.state
        state = next_state(session.state, pending=bool(left),
                           committed_any=session.committed + committed > 0, closing=closing)
        check_move(session.state, state)
        if state in FINAL and state is not session.state:
            self._drop_ignored(session, p, walked)
        self.store.set_session_state(session.id, state, committed=committed,
                                     latest_run=run_decision(state))
        if state is not session.state and closing is Closing.SETTLE:
            self.audit.append(AuditEvent.DECISION, run=p.run_id, session=session.id, data={
                "decision": "settle", "state": state.value,
                "reason": "nothing is pending any more: its changes are in the workspace"})
        return state

    def _drop_ignored(self, session: SessionRecord, p: Pending,
                      walked: tuple[ChangeSet, Ignored] | None) -> None:
        """Ignored output goes with the session it was made in (`approve --include-ignored`
        was the way to keep it): a closed session leaves nothing behind in its upper dir.
        `walked`: a diff of the upper dir made since the commit, if `advance` made one."""
        from sandbox.fs import discard_paths

        ignored = (walked or self._changes(session, p.upper, p.policy))[1]
        if ignored.changes:
            discard_paths(p.upper, [c.path for c in ignored.changes], lower=session.workspace)

    def _settle(self, p: Pending) -> SessionState:
        if p.session.state in FINAL:
            return p.session.state
        return self.advance(p, Closing.SETTLE, left=p.changeset)

    @staticmethod
    def _refuse_closed(session: SessionRecord, what: str) -> None:
        match session.state:
            case SessionState.COMMITTED:
                raise SessionClosedError(
                    f"session {session.id} is already committed: its changes are in the "
                    f"workspace; nothing to {what}", hint="undo them with git, if needed")
            case SessionState.REJECTED:
                raise SessionClosedError(f"session {session.id} is already rejected; "
                                         f"nothing to {what}")
            case SessionState.OPEN | SessionState.PENDING | SessionState.PARTIAL:
                return


def held_policy(effective: EffectivePolicy, policy: Policy | None = None) -> EffectivePolicy:
    """`effective` (with `policy`, a tightened copy of its policy, in its place) for runs
    whose changes a later decision settles: held pending at level 2, nobody asked. The
    agent's tool calls are such runs (the level decides when the agent finishes), and so is
    the agent process itself (its scratch changes are thrown away)."""
    return replace(effective, policy=replace(policy or effective.policy,
                                             level=Level.HUMAN_ON_THE_LOOP))


def left_after(cs: ChangeSet, done: Sequence[str]) -> ChangeSet | None:
    """What stays pending after `done` paths of `cs` were committed or discarded, when that
    is known without another diff of the upper dir: all of `cs` when nothing was done; nothing
    when every change was (both remove exactly those paths from the upper dir: level 4's
    usual run, an approve or reject of everything). None otherwise: a partial commit may
    have made parents of a held path in the workspace; only a fresh diff says what is left."""
    if not done:
        return cs
    gone = set(done)
    if all(c.path in gone for c in cs.changes):
        return ChangeSet(())
    return None


def agent_session_id(session_id: str) -> str | None:
    """The session the agent process of `sandbox agent` runs in, beside the session of its
    tool calls (None: the id would be too long to be one)."""
    agent = f"{session_id}-agent"
    return agent if len(agent) <= 64 else None


def default_message(ref: ResolvedRef) -> str:
    # Escaped: `git log` prints a message's control characters as they are, so a command
    # line from the run must not carry escape sequences into every reviewer's terminal.
    import shlex

    from sandbox.review import esc

    run = ref.run
    subject = f"sandbox: changes of session {ref.session.id}"
    body = [f"Session: {ref.session.id}"]
    if run is not None:
        body += [f"Run: {run.id}", f"Command: {esc(shlex.join(run.command))}"]
    return subject + "\n\n" + "\n".join(body) + "\n"
