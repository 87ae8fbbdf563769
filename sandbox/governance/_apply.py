"""Committing and rejecting a session's pending changes: shared by auto-commit and approve."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from sandbox._home import HomeLayout
from sandbox.audit import AuditEvent, AuditLog
from sandbox.errors import ForbiddenChangeError, UsageError
from sandbox.fs import ChangeSet
from sandbox.governance._baselines import baseline_started_ns, load_baselines, save_baselines
from sandbox.store import SessionRecord


def commit_paths(layout: HomeLayout, audit: AuditLog, session: SessionRecord, cs: ChangeSet,
                 upper: Path, paths: Sequence[str], *, run_id: str | None, actor: str | None,
                 force: bool = False, message: str | None = None) -> tuple[str, ...]:
    """Commit exactly `paths` (journaled, atomic); remove them from the pending upper dir."""
    if not paths:
        return ()
    if actor != "policy":
        paths = _with_git_objects(cs, paths)
    selected = [c for c in cs.changes if c.path in set(paths)]
    bad = [c for c in selected if c.forbidden]
    if bad:
        raise ForbiddenChangeError(
            "refusing to commit forbidden changes: "
            + "; ".join(f"{c.path} ({', '.join(c.forbidden)})" for c in bad))
    from sandbox.fs import commit_changeset, discard_paths, load_bases  # only when committing

    if actor != "policy":  # a person's approval is a decision of its own, before the commit
        audit.append(AuditEvent.DECISION, run=run_id, session=session.id, actor=actor, data={
            "decision": "approve", "paths": list(paths), "force": force, "message": message})
    session_dir = layout.session_dir(session.id)
    baselines = load_baselines(session_dir)
    started = baseline_started_ns(selected, lambda p: _lstat(session.workspace / p),
                                  session.started_ns, baselines, force)
    result = commit_changeset(cs, upper=upper, workspace=session.workspace,
                              journal_dir=layout.journal_dir, started_ns=started,
                              paths=list(paths), force=force, bases=load_bases(session_dir))
    committed = tuple(result.committed)
    if baselines and committed:  # whole files now committed: their partial baselines go
        save_baselines(session_dir, {k: v for k, v in baselines.items() if k not in committed})
    audit.append(AuditEvent.COMMIT, run=run_id, session=session.id, actor=actor, data={
        "paths": list(committed), "journal": result.journal_id, "force": force,
        "message": message,
        # --force: for these the session's version won over the workspace's change
        "overridden": list(result.conflicts),
    })
    discard_paths(upper, list(committed), lower=session.workspace)
    return committed


def _with_git_objects(cs: ChangeSet, paths: Sequence[str]) -> Sequence[str]:
    """A person approving a ref that commits made inside moved approves the objects, logs and
    index git wrote for them too: alone, the ref would name commits the repository lacks."""
    from sandbox.fs import is_git_internal

    if not any(p.startswith(".git/refs/") or p == ".git/packed-refs" for p in paths):
        return paths
    chosen = set(paths)
    return (*paths, *(c.path for c in cs.changes
                      if is_git_internal(c.path) and c.path not in chosen and not c.forbidden))


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return path.lstat()
    except OSError:
        return None


def reject_paths(audit: AuditLog, session: SessionRecord, cs: ChangeSet, upper: Path,
                 paths: Sequence[str] | None, *, message: str | None) -> tuple[str, ...]:
    """Discard pending changes (all when paths is None). Nothing in the workspace changes."""
    if paths is not None:
        missing = cs.unmatched(paths)
        if missing:
            raise UsageError(f"no pending change at: {', '.join(missing)}")
    from sandbox.fs import discard_paths

    chosen = tuple(c.path for c in cs.select(paths))
    discard_paths(upper, list(chosen), lower=session.workspace)
    audit.append(AuditEvent.DECISION, session=session.id, data={
        "decision": "reject", "paths": list(chosen), "message": message})
    return chosen
