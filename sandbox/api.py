"""The library entry point: the whole life of a session, without the CLI.

    from sandbox.api import Runtime
    with Runtime() as rt:
        outcome = rt.run(["pytest", "-q"], workspace="/src/project", level=2)
        print(outcome.exit_code, outcome.state, [c.path for c in outcome.changeset])
        rt.approve(outcome.session_id, ["src/"])     # or rt.reject(...), rt.export(...)

Every step that changes a session holds the session's lock and writes its audit records; the
CLI (and the servers) only parse, call this, and render.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from sandbox._home import HomeLayout
from sandbox._runner import Interaction, Runner, RunOutcome, RunRequest, check_workspace
from sandbox.audit import AuditLog
from sandbox.backends import Backend, get_backend
from sandbox.lifecycle import Approved, Lifecycle, Pending, Rejected, Reviewed
from sandbox.policy import Layer, load_policy
from sandbox.store import ResolvedRef, RunRecord, SessionState, Store

if TYPE_CHECKING:
    from sandbox.review import ExportResult, Plan

__all__ = ["Approved", "Pending", "Rejected", "Reviewed", "RunOutcome", "Runtime"]


class Runtime:
    """State dir, store, audit log and backend, opened once and reused across runs.

    RUN arguments (`ref`) are a run id, a session id, or "last" (with `workspace`: the last
    run of that workspace; without: of any)."""

    def __init__(self, home: Path | None = None, *, backend: Backend | None = None,
                 person: Interaction | None = None) -> None:
        self.layout = (HomeLayout(home) if home else HomeLayout.from_env()).ensure()
        from sandbox.fs import recover_interrupted

        recover_interrupted(self.layout.journal_dir)
        self.store = Store(self.layout)
        self.audit = AuditLog(self.layout.audit)
        self.lifecycle = Lifecycle(self.layout, self.store, self.audit)
        self._backend = backend
        self._person = person
        self.lifecycle.reap_lost()

    def run(self, argv: Sequence[str], *, workspace: str | os.PathLike[str] = ".",
            level: int | None = None, session: str | None = None,
            env: Mapping[str, str | None] | None = None,
            policy_file: Path | None = None, cwd: str = "") -> RunOutcome:
        """One run in the session (a new one unless `session` names one). `cwd`: where the
        command starts, relative to the workspace."""
        ws = check_workspace(Path(workspace))
        flags = Layer("api", "level=", {"level": level}) if level is not None else None
        effective = load_policy(ws, flags=flags, policy_file=policy_file)
        backend = self._backend or get_backend(effective.policy.backend)
        runner = Runner(self.layout, self.store, self.audit, backend, self._person)
        return runner.run(RunRequest(argv=tuple(argv), workspace=ws, policy=effective,
                                     session=session, env=dict(env or {}), cwd=cwd))

    def resolve(self, ref: str, *, workspace: str | os.PathLike[str] | None = None,
                cwd: str | os.PathLike[str] | None = None) -> ResolvedRef:
        """`last` with `cwd`: the last run of the innermost workspace around `cwd` that has
        runs, as `sandbox show last` run there means it."""
        return self.lifecycle.resolve(
            ref, workspace=None if workspace is None else check_workspace(Path(workspace)),
            cwd=None if cwd is None else Path(cwd))

    def pending(self, ref: str) -> Pending:
        """The session's pending changes and the policy they are judged by."""
        return self.lifecycle.pending(self.resolve(ref))

    def waiting(self) -> list[RunRecord]:
        """The latest run of every session waiting for a person."""
        return self.lifecycle.waiting()

    def patch(self, ref: str, paths: Sequence[str] | None = None, *,
              include_forbidden: bool = False) -> bytes:
        """The pending changes as a patch; forbidden ones only with `include_forbidden`."""
        p = self.pending(ref)
        return b"".join(self.lifecycle.patch(p, paths, include_forbidden=include_forbidden))

    def approve(self, ref: str, paths: Sequence[str] = (), *, force: bool = False,
                include_protected: bool = False, message: str | None = None) -> Approved:
        return self.lifecycle.approve(self.resolve(ref), paths, force=force,
                                      include_protected=include_protected, message=message)

    def reject(self, ref: str, paths: Sequence[str] = (), *,
               message: str | None = None) -> Rejected:
        return self.lifecycle.reject(self.resolve(ref), paths, message=message)

    @contextmanager
    def reviewing(self, ref: str) -> Iterator[Pending]:
        """Hold the session while a person reviews; then `apply_review` inside the block."""
        with self.lifecycle.reviewing(self.resolve(ref)) as pending:
            yield pending

    def apply_review(self, pending: Pending, plan: Plan, *, message: str | None = None,
                     force: bool = False) -> Reviewed:
        return self.lifecycle.apply_review(pending, plan, message=message, force=force)

    def export(self, ref: str, branch: str, *, message: str | None = None,
               include_protected: bool = False) -> ExportResult:
        return self.lifecycle.export(self.resolve(ref), branch, message=message,
                                     include_protected=include_protected)

    def cancel(self, ref: str) -> RunRecord:
        """Stop a running run; it is recorded cancelled and its changes stay pending."""
        return self.lifecycle.cancel(self.resolve(ref))

    def settle(self, ref: str) -> SessionState:
        return self.lifecycle.settle(self.resolve(ref))

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
