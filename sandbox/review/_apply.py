"""Apply a review: commit exactly the accepted parts, discard the rejected, keep the rest.

One journaled commit carries everything accepted. Its source is a staging dir laid out like
the upper dir: accepted files are hard links to the pending ones, a partly accepted file is
written there as workspace content + accepted hunks. The real upper dir keeps the full new
file, so afterwards the pending diff of that file is exactly the hunks not accepted; rejected
hunks are dropped by rewriting the pending file as old + accepted + undecided.

A partly committed file is newer in the workspace than the session's start, which the commit
would call a conflict next time; its post-commit ctime is kept as that path's baseline
(`review-baselines.json` in the session dir) and the next review checks against it.
"""

from __future__ import annotations

import shutil
import stat
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from sandbox.audit import AuditEvent, AuditLog, Entry
from sandbox.fs import (
    Change,
    ChangeKind,
    ChangeSet,
    FileType,
    commit_changeset,
    discard_paths,
    load_bases,
    reobserve,
)
from sandbox.governance._baselines import baseline_started_ns, load_baselines, save_baselines
from sandbox.review._hunks import TextDiff
from sandbox.review._io import Tree
from sandbox.review._model import Choice, ReviewState

__all__ = ["ApplyResult", "HunkedFile", "PartialOutcome", "Plan", "Target", "apply_plan", "make_plan"]



@dataclass(frozen=True)
class HunkedFile:
    """What the reviewer saw of a file split into hunks (needed to apply some of them)."""

    diff: TextDiff
    mode_part: int | None


@dataclass(frozen=True)
class Partial:
    path: str
    content: bytes  # workspace content after the commit: old + accepted hunks
    mode: int  # permission bits to commit
    hunks: tuple[int, ...]  # accepted hunk numbers, 1-based as shown


@dataclass(frozen=True)
class Rewrite:
    path: str
    content: bytes  # new pending content: old + accepted + undecided hunks
    mode: int


@dataclass(frozen=True)
class Plan:
    whole: tuple[str, ...]  # changes committed as they are
    partial: tuple[Partial, ...]
    discard: tuple[str, ...]  # dropped from pending (rejected, or their rest rejected)
    rewrite: tuple[Rewrite, ...]
    records: tuple[dict[str, object], ...]  # one audit record per decided item

    @property
    def empty(self) -> bool:
        return not (self.whole or self.partial or self.discard or self.rewrite)


@dataclass(frozen=True)
class PartialOutcome:
    path: str
    hunks: tuple[int, ...]  # committed hunk numbers (1-based); () when only the mode was
    rest: Choice  # what became of the other parts: REJECT (discarded) or PENDING (kept)


@dataclass(frozen=True)
class ApplyResult:
    committed: tuple[str, ...]  # changes committed whole
    partial: tuple[PartialOutcome, ...]
    discarded: tuple[str, ...]  # changes discarded whole
    deferred: tuple[str, ...]  # accepted, but still pending (a directory kept non-empty)


def _numbers(parts: Sequence[Choice], choice: Choice, skip: int | None) -> list[int]:
    return [n + 1 for n, c in enumerate(parts) if c is choice and n != skip]


def _hunked(change: Change, parts: tuple[Choice, ...], seen: HunkedFile, out: _Builder) -> None:
    diff, mp = seen.diff, seen.mode_part
    hunk_ids = range(len(diff.hunks))
    acc = [h for h in hunk_ids if parts[h] is Choice.ACCEPT]
    keep = [h for h in hunk_ids if parts[h] is Choice.PENDING]
    mode_choice = parts[mp] if mp is not None else Choice.REJECT
    old_mode = (change.old_mode or 0) & 0o7777
    new_mode = (change.new_mode or 0) & 0o7777
    if acc or mode_choice is Choice.ACCEPT:
        mode = new_mode if mode_choice is Choice.ACCEPT else old_mode
        out.partial.append(Partial(change.path, diff.apply(acc), mode,
                                   tuple(h + 1 for h in acc)))
    if Choice.PENDING not in parts:
        out.discard.append(change.path)
    elif Choice.REJECT in parts:
        mode = new_mode if mode_choice is not Choice.REJECT else old_mode
        out.rewrite.append(Rewrite(change.path, diff.apply(acc + keep), mode))
    record: dict[str, object] = {
        "decision": "partial", "path": change.path,
        "hunks": {"accepted": _numbers(parts, Choice.ACCEPT, mp),
                  "rejected": _numbers(parts, Choice.REJECT, mp),
                  "pending": _numbers(parts, Choice.PENDING, mp), "total": len(diff.hunks)}}
    if mp is not None:
        record["mode"] = str(parts[mp])
    out.records.append(record)


@dataclass
class _Builder:
    whole: list[str]
    partial: list[Partial]
    discard: list[str]
    rewrite: list[Rewrite]
    records: list[dict[str, object]]


def make_plan(state: ReviewState, hunked: Mapping[int, HunkedFile], *,
              discard_pending: bool) -> Plan:
    """What applying `state` does; `discard_pending` treats undecided parts as rejected."""
    out = _Builder([], [], [], [], [])
    for i, item in enumerate(state.items):
        parts = state.choices[i]
        if discard_pending:
            parts = tuple(Choice.REJECT if c is Choice.PENDING else c for c in parts)
        kinds = set(parts)
        if len(kinds) > 1:
            _hunked(item.change, parts, hunked[i], out)
            continue
        choice = parts[0]
        match choice:
            case Choice.ACCEPT:
                out.whole.append(item.path)
            case Choice.REJECT:
                out.discard.append(item.path)
            case Choice.PENDING:
                continue
        out.records.append({"decision": str(choice), "path": item.path})
    return Plan(tuple(out.whole), tuple(out.partial), tuple(out.discard), tuple(out.rewrite),
                tuple(out.records))


def _partial_change(c: Change, p: Partial) -> Change:
    """The change as committed: its content and mode are the accepted parts only."""
    old_mode = c.old_mode or 0
    return replace(c, new_mode=(old_mode & ~0o7777) | p.mode, new_size=len(p.content),
                   kind=ChangeKind.MODIFIED if p.hunks else ChangeKind.MODE_CHANGED,
                   executable_added=bool(p.mode & 0o111 & ~old_mode))




def _stage(staging: Tree, upper: Tree, changes: Sequence[Change],
           partial: Mapping[str, Partial]) -> None:
    dirs: list[Change] = []
    for c in changes:  # parents first
        if c.kind in (ChangeKind.DELETED, ChangeKind.MODE_CHANGED) and c.path not in partial:
            continue
        if c.path in partial:
            staging.write(c.path, partial[c.path].content, mode=partial[c.path].mode,
                          create_parents=True)
        elif c.new_type is FileType.DIR:
            staging.mkdir(c.path)
            dirs.append(c)
        elif c.new_type in (FileType.FILE, FileType.SYMLINK):
            staging.link_from(upper, c.path)
    for c in sorted(dirs, key=lambda c: c.path.count("/"), reverse=True):
        st = upper.lstat(c.path)
        if st is not None and stat.S_ISDIR(st.st_mode):
            staging.copy_attrs(c.path, st)


@dataclass(frozen=True)
class Target:
    """Where the review applies: the session's dirs and the state it commits against."""

    session_id: str
    session_dir: Path
    upper: Path
    workspace: Path
    journal_dir: Path
    started_ns: int
    run_id: str | None


def apply_plan(plan: Plan, cs: ChangeSet, target: Target, audit: AuditLog, *,
               message: str | None, actor: str | None = None,
               force: bool = False) -> ApplyResult:
    """Commit, discard and rewrite as planned (hold the session lock around this)."""
    upper, workspace = Tree(target.upper), Tree(target.workspace)
    partial = {p.path: p for p in plan.partial}
    committed: tuple[str, ...] = ()
    deferred: tuple[str, ...] = ()
    journal = None
    baselines = load_baselines(target.session_dir)
    commit_paths = [*plan.whole, *partial]
    if commit_paths:
        changes = tuple(
            _partial_change(c, partial[c.path]) if c.path in partial else c
            for c in cs.changes)
        commit_cs = ChangeSet(changes)
        wanted = set(commit_paths)
        chosen = [c for c in commit_cs.changes if c.path in wanted or _is_fresh_parent(
            c, wanted)]
        started = baseline_started_ns(chosen, workspace.lstat, target.started_ns, baselines, force)
        staging = Path(tempfile.mkdtemp(prefix=".review-staging-", dir=target.session_dir))
        try:
            _stage(Tree(staging), upper, chosen, partial)
            result = commit_changeset(commit_cs, upper=staging, workspace=target.workspace,
                                      journal_dir=target.journal_dir, started_ns=started,
                                      paths=commit_paths, force=force,
                                      bases=load_bases(target.session_dir))
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        committed, deferred, journal = result.committed, result.skipped, result.journal_id
        for path in partial:
            st = workspace.lstat(path)
            if st is not None:
                baselines[path] = st.st_ctime_ns
        # What we just committed of a partly accepted file is the session's new base there.
        reobserve(target.session_dir, target.workspace, list(partial))
    done = set(committed)
    drop = [p for p in committed if p not in partial]
    drop += [p for p in plan.discard if p not in done or p in partial]
    if drop:
        discard_paths(target.upper, sorted(set(drop)), lower=target.workspace)
    for rw in plan.rewrite:
        like = upper.lstat(rw.path)
        upper.write(rw.path, rw.content, mode=rw.mode, like=like)
    for path in drop:
        if path not in partial or path in plan.discard:
            baselines.pop(path, None)
    save_baselines(target.session_dir, baselines)
    entries = [Entry(AuditEvent.DECISION, run=target.run_id, session=target.session_id,
                     actor=actor, data={**rec, "message": message}) for rec in plan.records]
    if commit_paths:
        entries.append(Entry(AuditEvent.COMMIT, run=target.run_id, session=target.session_id,
                             actor=actor, data={
                                 "paths": list(committed), "journal": journal, "force": force,
                                 "message": message, "via": "review",
                                 "partial": [{"path": p.path, "hunks": list(p.hunks)}
                                             for p in plan.partial]}))
    if entries:
        audit.append_many(entries)
    outcomes = tuple(PartialOutcome(p.path, p.hunks, Choice.REJECT if p.path in plan.discard
                                    else Choice.PENDING) for p in plan.partial)
    return ApplyResult(committed=tuple(p for p in committed if p not in partial),
                       partial=outcomes,
                       discarded=tuple(p for p in plan.discard if p not in partial),
                       deferred=tuple(deferred))


def _is_fresh_parent(c: Change, wanted: set[str]) -> bool:
    if c.new_type is not FileType.DIR or c.kind not in (ChangeKind.ADDED,
                                                          ChangeKind.TYPE_CHANGED):
        return False
    prefix = c.path + "/"
    return any(p.startswith(prefix) for p in wanted)
