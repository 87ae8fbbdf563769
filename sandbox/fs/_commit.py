"""Apply (part of) a ChangeSet to the real workspace: journaled, atomic, symlink-proof.

Order of events (see _journal for the crash contract):
plan (read-only checks) -> journal "preparing" -> stage temps next to their targets ->
journal "staged" -> roll forward (deletions deepest first, renames, chmods) -> drop journal.
All workspace access goes through dir fds opened with O_NOFOLLOW; upper is read the same way.
"""

from __future__ import annotations

import errno
import os
import stat
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import assert_never

from sandbox.errors import CommitError, ConflictError, ForbiddenChangeError
from sandbox.fs import _base
from sandbox.fs._changeset import Change, ChangeSet, FileType
from sandbox.fs._journal import (
    COMMIT_LOCK,
    ChmodOp,
    DeleteOp,
    Journal,
    JournalState,
    Op,
    ReplaceOp,
    create_owner_lock,
    lock,
    release_owner_lock,
    remove_journal,
    roll_forward,
    rollback,
    step_delay,
    sync_dirs,
    write_journal,
)
from sandbox.fs._plan import Plan, Target, check_forbidden, make_plan, select_closure
from sandbox.fs._safeio import O_DIR, DirFds, UnsafePathError, fsync_fd, split

# Permission bits we ever write: no setuid/setgid (the sandbox must not mint privileged
# binaries), sticky kept.
_KEEP_BITS = 0o1777
_COPY_CHUNK = 1 << 30


@dataclass(frozen=True)
class CommitResult:
    committed: tuple[str, ...]  # change paths applied (incl. directories they needed)
    # selected but not applied: already so in the workspace, or a directory removal whose
    # contents were not all selected (still pending)
    skipped: tuple[str, ...]
    conflicts: tuple[str, ...]  # "path: reason" overridden because force=True
    journal_id: str


@dataclass(frozen=True)
class _Owner:
    uid: int
    gid: int


def commit_changeset(
    cs: ChangeSet,
    *,
    upper: Path,
    workspace: Path,
    journal_dir: Path,
    started_ns: int,
    paths: Sequence[str] | None = None,
    force: bool = False,
    bases: Mapping[str, _base.Seen] | None = None,
) -> CommitResult:
    """Apply exactly the changes at `paths` (all when None), plus the new parent dirs they need.

    Raises ForbiddenChangeError if any selected change is forbidden, ConflictError if the
    workspace no longer looks as the run saw it (overridable with force, except where it
    would destroy unknown data or cross a symlink), and applies nothing in either case.
    With the session's `bases`, "no longer looks as the run saw it" is any difference from
    them (checked here again, under the commit lock); without, a ctime after `started_ns`.
    """
    selection = select_closure(cs, paths)
    changes = selection.changes
    check_forbidden(changes)
    journal_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    workspace_abs = os.path.abspath(workspace)
    glock = lock(journal_dir / COMMIT_LOCK, blocking=True)  # one commit at a time
    assert glock is not None
    try:
        with DirFds(workspace_abs) as dirs, DirFds(upper) as src:
            moved = _moved(changes, dirs, bases, force)
            plan = make_plan(changes, dirs, started_ns=None if bases is not None else started_ns,
                             force=force)
            jid = f"{time.time_ns():x}-{os.urandom(4).hex()}"
            owner_fd = create_owner_lock(journal_dir, jid)
            try:
                _execute(plan, dirs, src, journal_dir, jid, workspace_abs)
            finally:
                release_owner_lock(journal_dir, jid, owner_fd)
    finally:
        os.close(glock)
    return CommitResult(
        committed=plan.committed,
        skipped=plan.skipped + selection.deferred,
        conflicts=moved + tuple(f"{c.path}: {c.reason}" for c in plan.conflicts),
        journal_id=jid,
    )


def _moved(changes: Sequence[Change], dirs: DirFds, bases: Mapping[str, _base.Seen] | None,
           force: bool) -> tuple[str, ...]:
    if bases is None:
        return ()
    found = [f"{c.path}: {why}" for c in changes if (why := _base.moved(dirs, c.path, bases))]
    if found and not force:
        raise ConflictError(
            "the workspace changed since the session saw it; nothing was committed:\n  "
            + "\n  ".join(found),
            hint="review the workspace, then approve again (--force: the session's version wins)")
    return tuple(found)


def _execute(plan: Plan, dirs: DirFds, src: DirFds, journal_dir: Path, jid: str, workspace: str) -> None:
    delay = step_delay()
    owner = _workspace_owner(dirs)
    temps = tuple((split(t.change.path)[0], f".sandbox-{jid}-{i}.tmp") for i, t in enumerate(plan.targets))
    ops: list[Op] = [DeleteOp(c.path, c.old_type is FileType.DIR) for c in plan.deletes]
    for target, (d, tmp) in zip(plan.targets, temps, strict=True):
        ops.append(
            ReplaceOp(
                d,
                tmp,
                split(target.change.path)[1],
                target.old,
                target.change.new_type is FileType.DIR,
            )
        )
    ops += [ChmodOp(c.path, (c.new_mode or 0) & _KEEP_BITS) for c in plan.chmods]
    journal = Journal(jid, workspace, JournalState.PREPARING, temps, tuple(ops))
    write_journal(journal_dir, journal)
    try:
        for target, (d, tmp) in zip(plan.targets, temps, strict=True):
            _stage(target, dirs.get(d), tmp, src, owner, delay)
        for d in sorted({d for d, _ in temps}):
            fsync_fd(dirs.get(d))
    except BaseException as exc:
        rollback(dirs, temps)
        remove_journal(journal_dir, jid)
        if isinstance(exc, OSError | UnsafePathError):
            raise CommitError(f"staging failed, nothing was committed: {exc}") from exc
        raise
    staged = replace(journal, state=JournalState.STAGED)
    write_journal(journal_dir, staged)  # the commit is decided from here on
    failures = roll_forward(dirs, staged.ops, delay)
    sync_dirs(dirs, staged)
    remove_journal(journal_dir, jid)
    if failures:
        raise CommitError("commit partially applied; failed: " + "; ".join(failures))


def _workspace_owner(dirs: DirFds) -> _Owner | None:
    if os.geteuid() != 0:
        return None  # files we create are ours anyway, and we may not chown
    st = os.fstat(dirs.root_fd)
    return _Owner(st.st_uid, st.st_gid)


def _stage(target: Target, dir_fd: int, tmp: str, src: DirFds, owner: _Owner | None, delay: float) -> None:
    change = target.change
    match change.new_type:
        case FileType.FILE:
            _stage_file(change, src, dir_fd, tmp, owner)
        case FileType.SYMLINK:
            _stage_symlink(change, src, dir_fd, tmp, owner)
        case FileType.DIR:
            _stage_tree(target, src, dir_fd, tmp, owner, delay)
        case FileType.FIFO | FileType.SOCKET | FileType.CHARDEV | FileType.BLOCKDEV | None:
            raise ForbiddenChangeError(f"{change.path}: cannot commit a {change.new_type}")
        case _:
            assert_never(change.new_type)
    if delay:
        time.sleep(delay)


def _changed_since_diff(change: Change, what: str) -> CommitError:
    return CommitError(f"{change.path}: the pending {what} changed since it was diffed")


def _stage_file(change: Change, src: DirFds, dst_dir: int, name: str, owner: _Owner | None) -> None:
    parent, base = split(change.path)
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
    sfd = os.open(base, flags, dir_fd=src.get(parent))
    try:
        st = os.fstat(sfd)
        if not stat.S_ISREG(st.st_mode) or st.st_size != change.new_size:
            raise _changed_since_diff(change, "file")
        dfd = os.open(
            name,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
            0o600,
            dir_fd=dst_dir,
        )
        try:
            _copy(sfd, dfd)
            if owner is not None:
                os.fchown(dfd, owner.uid, owner.gid)
            os.fchmod(dfd, st.st_mode & _KEEP_BITS)
            os.utime(dfd, ns=(st.st_atime_ns, st.st_mtime_ns))
            fsync_fd(dfd)
        finally:
            os.close(dfd)
    finally:
        os.close(sfd)


def _copy(sfd: int, dfd: int) -> None:
    try:
        while os.copy_file_range(sfd, dfd, _COPY_CHUNK):
            pass
        return
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
            raise
    os.lseek(sfd, 0, os.SEEK_SET)
    os.ftruncate(dfd, 0)
    os.lseek(dfd, 0, os.SEEK_SET)
    while chunk := os.read(sfd, 1 << 20):
        view = memoryview(chunk)
        while view:
            view = view[os.write(dfd, view) :]


def _stage_symlink(change: Change, src: DirFds, dst_dir: int, name: str, owner: _Owner | None) -> None:
    parent, base = split(change.path)
    sdir = src.get(parent)
    st = os.stat(base, dir_fd=sdir, follow_symlinks=False)
    # Write exactly the target the forbidden rules checked, and only if upper still agrees.
    if not stat.S_ISLNK(st.st_mode) or os.readlink(base, dir_fd=sdir) != change.link_target:
        raise _changed_since_diff(change, "symlink")
    assert change.link_target is not None
    os.symlink(change.link_target, name, dir_fd=dst_dir)
    if owner is not None:
        os.chown(name, owner.uid, owner.gid, dir_fd=dst_dir, follow_symlinks=False)
    os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dst_dir, follow_symlinks=False)


def _stage_tree(
    target: Target, src: DirFds, dst_dir: int, tmp: str, owner: _Owner | None, delay: float
) -> None:
    """Build a new directory tree under the temp name; it appears whole at the rename."""
    root = target.change
    os.mkdir(tmp, 0o700, dir_fd=dst_dir)
    # Depth-first with a stack of open dirs: members are sorted parents-first, so a dir is
    # complete (and its mode/mtime can be set) when we leave it; open fds stay ~ depth.
    stack: list[tuple[str, int, Change]] = [("", os.open(tmp, O_DIR, dir_fd=dst_dir), root)]
    try:
        for member in target.members:
            sub = member.path[len(root.path) + 1 :]
            parent_sub, name = split(sub)
            while stack and stack[-1][0] != parent_sub:
                _finish_dir(stack.pop(), src, owner)
            if not stack:
                raise CommitError(f"{member.path}: its parent directory is not part of the commit")
            pfd = stack[-1][1]
            match member.new_type:
                case FileType.DIR:
                    os.mkdir(name, 0o700, dir_fd=pfd)
                    stack.append((sub, os.open(name, O_DIR, dir_fd=pfd), member))
                case FileType.FILE:
                    _stage_file(member, src, pfd, name, owner)
                case FileType.SYMLINK:
                    _stage_symlink(member, src, pfd, name, owner)
                case FileType.FIFO | FileType.SOCKET | FileType.CHARDEV | FileType.BLOCKDEV | None:
                    raise ForbiddenChangeError(f"{member.path}: cannot commit a {member.new_type}")
                case _:
                    assert_never(member.new_type)
            if delay:
                time.sleep(delay)
        while stack:
            _finish_dir(stack.pop(), src, owner)
    finally:
        for _, fd, _ in stack:
            os.close(fd)


def _finish_dir(entry: tuple[str, int, Change], src: DirFds, owner: _Owner | None) -> None:
    _, fd, change = entry
    try:
        parent, base = split(change.path)
        st = os.stat(base, dir_fd=src.get(parent), follow_symlinks=False)
        if not stat.S_ISDIR(st.st_mode):
            raise _changed_since_diff(change, "directory")
        if owner is not None:
            os.fchown(fd, owner.uid, owner.gid)
        os.fchmod(fd, st.st_mode & _KEEP_BITS)
        os.utime(fd, ns=(st.st_atime_ns, st.st_mtime_ns))
        fsync_fd(fd)
    finally:
        os.close(fd)


def run_start_ns() -> int:
    """See sandbox.fs.run_start_ns (kept here for callers of this module)."""
    from sandbox.fs import run_start_ns as start

    return start()
