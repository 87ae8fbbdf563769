"""Commit planning: which changes to apply, whether the workspace still matches, and how.

Everything here only reads the workspace (through safe dir fds); nothing is written until
the plan is complete, so any refusal leaves the workspace untouched.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, assert_never

from sandbox.errors import ConflictError, ForbiddenChangeError, NotFoundError
from sandbox.fs import _rules
from sandbox.fs._changeset import Change, ChangeKind, ChangeSet, FileType
from sandbox.fs._journal import OldKind
from sandbox.fs._safeio import DirFds, UnsafePathError, lstat_at, split


class _ConflictSink(Protocol):
    def __call__(self, path: str, reason: str, *, fatal: bool = False) -> None: ...


@dataclass(frozen=True)
class Conflict:
    path: str
    reason: str
    fatal: bool  # cannot be overridden with force (it would delete or write unknown data)


@dataclass(frozen=True)
class Target:
    """One new file/symlink or new directory tree to stage next to `name` in `dir`."""

    change: Change
    old: OldKind
    members: tuple[Change, ...] = ()  # for a new directory: its selected contents


@dataclass(frozen=True)
class Plan:
    deletes: tuple[Change, ...]  # deepest first
    targets: tuple[Target, ...]
    chmods: tuple[Change, ...]
    committed: tuple[str, ...]
    skipped: tuple[str, ...]
    conflicts: tuple[Conflict, ...]


_CREATES = (ChangeKind.ADDED, ChangeKind.TYPE_CHANGED)
_REMOVES = (ChangeKind.DELETED, ChangeKind.TYPE_CHANGED)


def _under(path: str, prefix: str) -> bool:
    return path.startswith(prefix + "/")


@dataclass(frozen=True)
class Selection:
    changes: tuple[Change, ...]  # to apply, sorted parents first
    deferred: tuple[str, ...]  # selected, but needing unselected changes: left pending


def select_closure(cs: ChangeSet, paths: Sequence[str] | None) -> Selection:
    """Exactly the named changes (all when None), plus the new directories they live in.

    Paths are exact change paths, never subtrees: governance decides per change, and a
    directory it approved must not carry along a child it held (expand user-given subtrees
    with `ChangeSet.select` first). Removing a directory needs every deletion below it; if
    one of those was not selected the removal is deferred (stays pending), never widened.
    """
    if paths is None:
        chosen = {c.path: c for c in cs.changes}
    else:
        wanted = {p.strip("/") for p in paths}
        missing = sorted(p for p in wanted if cs.by_path(p) is None)
        if missing:
            raise NotFoundError("no pending change at " + ", ".join(repr(p) for p in missing))
        chosen = {p: c for p in wanted if (c := cs.by_path(p)) is not None}
    for change in list(chosen.values()):
        parts = change.path.split("/")
        for i in range(1, len(parts)):
            anc = cs.by_path("/".join(parts[:i]))
            if anc is not None and anc.new_type is FileType.DIR and anc.kind in _CREATES:
                chosen[anc.path] = anc
    deferred: list[str] = []
    for change in sorted(chosen.values(), key=lambda c: c.path.count("/"), reverse=True):
        if change.old_type is FileType.DIR and change.kind in _REMOVES:
            inside = [o for o in cs.changes if _under(o.path, change.path)]
            if any(o.path not in chosen for o in inside):
                deferred.append(change.path)
                del chosen[change.path]
    return Selection(tuple(c for c in cs.changes if c.path in chosen), tuple(sorted(deferred)))


def check_forbidden(changes: Sequence[Change]) -> None:
    """Refuse forbidden changes: those the diff flagged, and (defense in depth, for change
    sets loaded from storage or built by hand) whatever the rules find again now."""
    bad: list[tuple[str, tuple[str, ...]]] = []
    for c in changes:
        again = _rules.violations(c.path, new_type=c.new_type, new_mode=c.new_mode, link_target=c.link_target)
        found = tuple(dict.fromkeys((*c.forbidden, *again)))
        if found:
            bad.append((c.path, found))
    if bad:
        lines = [f"{path}: {'; '.join(found)}" for path, found in bad]
        rules = sorted({f.split(":", 1)[0] for _, found in bad for f in found})
        raise ForbiddenChangeError(
            f"refusing forbidden change(s) ({', '.join(rules)}):\n  " + "\n  ".join(lines)
        )


def _fresh_ancestor(path: str, fresh: set[str]) -> str | None:
    parts = path.split("/")
    for i in range(1, len(parts)):
        anc = "/".join(parts[:i])
        if anc in fresh:
            return anc
    return None


def _type_of(st: os.stat_result) -> FileType:
    return FileType.of_mode(st.st_mode)


def make_plan(changes: Sequence[Change], dirs: DirFds, *, started_ns: int | None,
              force: bool) -> Plan:
    """Check every change against the workspace as it is now and lay out the operations.

    `started_ns` None: the session's bases were checked already (`_base.moved`), so a file's
    ctime is not compared with the session start."""
    selected = {c.path for c in changes}
    fresh: set[str] = set()  # directories this commit creates: everything below is new
    tree_members: dict[str, list[Change]] = {}
    roots: list[tuple[Change, OldKind]] = []
    files: list[tuple[Change, OldKind]] = []
    deletes: list[Change] = []
    chmods: list[Change] = []
    committed: list[str] = []
    skipped: list[str] = []
    conflicts: list[Conflict] = []

    def conflict(path: str, reason: str, *, fatal: bool = False) -> None:
        conflicts.append(Conflict(path, reason, fatal))

    for c in changes:  # sorted: parents before children
        parent, name = split(c.path)
        top = _fresh_ancestor(c.path, fresh)
        if top is not None:
            tree_members[top].append(c)
            committed.append(c.path)
            continue
        try:
            cur = lstat_at(dirs.get(parent), name)
        except UnsafePathError as exc:
            conflict(c.path, f"parent {exc.rel!r} {exc.reason}; refusing to write there", fatal=True)
            continue
        old_kind = (
            OldKind.NONE if cur is None else (OldKind.DIR if stat.S_ISDIR(cur.st_mode) else OldKind.NONDIR)
        )
        if c.kind is ChangeKind.ADDED:
            if cur is not None:
                if c.new_type is FileType.DIR and stat.S_ISDIR(cur.st_mode):
                    skipped.append(c.path)  # same directory already there: merge into it
                    continue
                conflict(
                    c.path,
                    "was created in the workspace after the run started",
                    fatal=stat.S_ISDIR(cur.st_mode) or c.new_type is FileType.DIR,
                )
        elif cur is None:
            conflict(c.path, "was removed from the workspace after the run started")
            if c.kind in (ChangeKind.DELETED, ChangeKind.MODE_CHANGED) or (
                c.kind is ChangeKind.TYPE_CHANGED and c.old_type is FileType.DIR
            ):
                skipped.append(c.path)
                continue
        else:
            _check_existing(c, cur, dirs, selected, started_ns, conflict)
        match c.kind:
            case ChangeKind.DELETED:
                deletes.append(c)
            case ChangeKind.MODE_CHANGED:
                chmods.append(c)
            case ChangeKind.ADDED | ChangeKind.MODIFIED | ChangeKind.TYPE_CHANGED:
                if c.new_type is FileType.DIR:
                    fresh.add(c.path)
                    tree_members[c.path] = []
                    roots.append((c, old_kind))
                else:
                    files.append((c, old_kind))
            case _:
                assert_never(c.kind)
        committed.append(c.path)

    fatal = [x for x in conflicts if x.fatal]
    if fatal or (conflicts and not force):
        shown = fatal if fatal else conflicts
        raise ConflictError(
            "the workspace changed since the run started; nothing was committed:\n  "
            + "\n  ".join(f"{x.path}: {x.reason}" for x in shown),
            hint=None if fatal else "review the workspace, then approve again with --force",
        )
    targets = [Target(c, old) for c, old in files]
    targets += [Target(c, old, tuple(tree_members[c.path])) for c, old in roots]
    deletes.sort(key=lambda c: c.path.count("/"), reverse=True)
    return Plan(
        deletes=tuple(deletes),
        targets=tuple(targets),
        chmods=tuple(chmods),
        committed=tuple(committed),
        skipped=tuple(skipped),
        conflicts=tuple(conflicts),
    )


def _check_existing(
    c: Change,
    cur: os.stat_result,
    dirs: DirFds,
    selected: set[str],
    started_ns: int | None,
    conflict: _ConflictSink,
) -> None:
    cur_type = _type_of(cur)
    if c.old_type is not None and cur_type is not c.old_type:
        conflict(
            c.path,
            f"is now a {cur_type.value}, the run saw a {c.old_type.value}",
            fatal=cur_type is FileType.DIR or c.old_type is FileType.DIR,
        )
        return
    if cur_type is FileType.DIR:
        # A directory's ctime moves whenever anything is added inside it, so compare what
        # matters instead: its mode, and (when it goes away) that we remove all it holds.
        mode_moved = c.old_mode is not None and cur.st_mode & 0o7777 != c.old_mode & 0o7777
        if c.kind is ChangeKind.MODE_CHANGED and mode_moved:
            conflict(c.path, "its mode changed in the workspace after the run started")
        if c.kind in (ChangeKind.DELETED, ChangeKind.TYPE_CHANGED):
            extra = _unselected_entries(c.path, dirs, selected)
            if extra:
                conflict(
                    c.path,
                    "holds entries the run did not remove: " + ", ".join(sorted(extra)[:5]),
                    fatal=True,
                )
        return
    if started_ns is not None and cur.st_ctime_ns > started_ns:
        conflict(c.path, "was modified in the workspace after the run started")


def _unselected_entries(path: str, dirs: DirFds, selected: set[str]) -> list[str]:
    try:
        fd = dirs.get(path)
    except UnsafePathError as exc:
        return [f"{exc.rel} ({exc.reason})"]
    return [n for n in os.listdir(fd) if f"{path}/{n}" not in selected]
