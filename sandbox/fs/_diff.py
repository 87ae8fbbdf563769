"""Diff an overlay upper dir against the real workspace: cost follows the size of `upper`.

Only `upper` is walked; each upper entry costs one lstat of its lower counterpart. The lower
side is walked only where the run deleted a directory (whiteout or opaque dir), because each
deleted entry is a change of its own. A lower counterpart is looked up only when its parent
is known to be a real lower directory, so a lower symlink is never followed.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import assert_never

from sandbox.errors import WorkspaceError
from sandbox.fs import _overlay, _rules
from sandbox.fs._changeset import Change, ChangeKind, ChangeSet, FileType
from sandbox.fs._textdiff import MAX_TEXT_DIFF, line_counts, looks_binary

_CHUNK = 1024 * 1024
_PERM = 0o7777


@dataclass(frozen=True)
class _Ctx:
    upper: str
    lower: str
    hidden: _rules.HiddenIndex


def compute_changeset(upper: Path, lower: Path, *, hidden: Sequence[str] = (),
                      unhidden: Sequence[str] = ()) -> ChangeSet:
    """Everything the run changed: `upper` is the overlay upper dir, `lower` the workspace.

    `hidden` are workspace-relative paths the mask hid from the run (what `build_mask`
    returned) and the hide patterns, `unhidden` the `[hide] except` patterns: a change to a
    hidden file or inside a hidden directory is marked forbidden; a new file inside a
    directory the run created clobbers nothing and is not. A change to a file the sandbox saw
    scrubbed (a .git/config without its credentials) is forbidden too: it would drop them.
    """
    from sandbox.fs._gitcreds import scrubbed_paths

    hidden = (*hidden, *scrubbed_paths(lower))
    ctx = _Ctx(os.fspath(upper), os.fspath(lower), _rules.HiddenIndex.of(hidden, unhidden))
    try:
        lower_st = os.stat(ctx.lower)  # the workspace root itself may be reached via a symlink
    except OSError as exc:
        raise WorkspaceError(f"workspace {ctx.lower!r} is not readable: {exc}") from exc
    if not stat.S_ISDIR(lower_st.st_mode):
        raise WorkspaceError(f"workspace {ctx.lower!r} is not a directory")
    names = _overlay.listxattr(ctx.upper)
    _overlay.check_supported(ctx.upper, names)
    opaque = _overlay.opaque_xattr(ctx.upper, names) is not None
    out: list[Change] = []
    _walk(ctx, "", lower_is_dir=True, opaque=opaque, out=out)
    if hidden and any(c.path.startswith(".git/") for c in out):
        # git work inside: commits or an index that would delete, replace or add a hidden
        # file are forbidden like a direct write to it (git runs only in this case).
        from sandbox.fs import _gitview

        bad = _gitview.violations(upper, lower, out, ctx.hidden)
        out = [replace(c, forbidden=(*c.forbidden, bad[c.path])) if c.path in bad else c
               for c in out]
    return ChangeSet(tuple(out))


def _join(rel: str, name: str) -> str:
    return f"{rel}/{name}" if rel else name


def _lstat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        return None


def _walk(ctx: _Ctx, rel: str, *, lower_is_dir: bool, opaque: bool, out: list[Change]) -> None:
    udir = os.path.join(ctx.upper, rel) if rel else ctx.upper
    seen: set[str] = set()
    with os.scandir(udir) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        seen.add(entry.name)
        crel = _join(rel, entry.name)
        upath = entry.path
        ust = entry.stat(follow_symlinks=False)
        xnames = _overlay.listxattr(upath)
        _overlay.check_supported(upath, xnames)
        lpath = os.path.join(ctx.lower, crel)
        lst = _lstat(lpath) if lower_is_dir else None
        if _overlay.is_whiteout(ust, xnames):
            if lst is not None:
                _deleted(ctx, crel, lst, out)
            continue
        new_type = FileType.of_mode(ust.st_mode)
        if lst is None:
            out.append(_added(ctx, crel, upath, ust, parent_in_lower=lower_is_dir))
            if new_type is FileType.DIR:
                _walk(ctx, crel, lower_is_dir=False, opaque=False, out=out)
            continue
        old_type = FileType.of_mode(lst.st_mode)
        if old_type is not new_type:
            out.append(_type_changed(ctx, crel, upath, ust, lpath, lst))
            if old_type is FileType.DIR:
                _deleted_children(ctx, crel, out)
            if new_type is FileType.DIR:
                _walk(ctx, crel, lower_is_dir=False, opaque=False, out=out)
            continue
        if new_type is FileType.DIR:
            if ust.st_mode & _PERM != lst.st_mode & _PERM:
                out.append(_mode_changed(ctx, crel, FileType.DIR, ust, lst))
            child_opaque = opaque or _overlay.opaque_xattr(upath, xnames) is not None
            _walk(ctx, crel, lower_is_dir=True, opaque=child_opaque, out=out)
            continue
        change = _same_type(ctx, crel, new_type, upath, ust, lpath, lst)
        if change is not None:
            out.append(change)
    if opaque and lower_is_dir:
        # An opaque dir hides every lower entry it does not itself contain: those are gone.
        ldir = os.path.join(ctx.lower, rel) if rel else ctx.lower
        with os.scandir(ldir) as it:
            for lentry in it:
                if lentry.name not in seen:
                    _deleted(ctx, _join(rel, lentry.name), lentry.stat(follow_symlinks=False), out)


def _deleted(ctx: _Ctx, rel: str, lst: os.stat_result, out: list[Change]) -> None:
    old_type = FileType.of_mode(lst.st_mode)
    removed: int | None = None
    binary = False
    if old_type is FileType.FILE:
        binary, removed = _count_one(os.path.join(ctx.lower, rel), lst.st_size)
    out.append(
        Change(
            path=rel,
            kind=ChangeKind.DELETED,
            old_type=old_type,
            old_mode=lst.st_mode,
            old_size=lst.st_size if old_type is not FileType.DIR else None,
            binary=binary,
            forbidden=_rules.violations(
                rel, new_type=None, new_mode=None, link_target=None, hidden=ctx.hidden
            ),
            added_lines=0 if removed is not None else None,
            removed_lines=removed,
        )
    )
    if old_type is FileType.DIR:
        _deleted_children(ctx, rel, out)


def _deleted_children(ctx: _Ctx, rel: str, out: list[Change]) -> None:
    with os.scandir(os.path.join(ctx.lower, rel)) as it:
        for entry in it:
            _deleted(ctx, _join(rel, entry.name), entry.stat(follow_symlinks=False), out)


def _new_side(
    ctx: _Ctx, rel: str, upath: str, ust: os.stat_result, *, added: bool = False,
    parent_in_lower: bool = True,
) -> tuple[FileType, str | None, tuple[str, ...]]:
    new_type = FileType.of_mode(ust.st_mode)
    target = os.readlink(upath) if new_type is FileType.SYMLINK else None
    # Inside a directory the run created there is nothing of the workspace's to clobber.
    forbidden = _rules.violations(
        rel, new_type=new_type, new_mode=ust.st_mode, link_target=target,
        hidden=ctx.hidden if parent_in_lower or not added else (),
    )
    return new_type, target, forbidden


def _setid(mode: int) -> bool:
    return bool(mode & (stat.S_ISUID | stat.S_ISGID))


def _size(ftype: FileType, st: os.stat_result) -> int | None:
    return st.st_size if ftype in (FileType.FILE, FileType.SYMLINK) else None


def _added(ctx: _Ctx, rel: str, upath: str, ust: os.stat_result, *,
           parent_in_lower: bool) -> Change:
    new_type, target, forbidden = _new_side(ctx, rel, upath, ust, added=True,
                                            parent_in_lower=parent_in_lower)
    binary, added = (False, None)
    if new_type is FileType.FILE:
        binary, added = _count_one(upath, ust.st_size)
    return Change(
        path=rel,
        kind=ChangeKind.ADDED,
        new_type=new_type,
        new_mode=ust.st_mode,
        new_size=_size(new_type, ust),
        binary=binary,
        link_target=target,
        executable_added=new_type is FileType.FILE and bool(ust.st_mode & 0o111),
        setid=_setid(ust.st_mode),
        forbidden=forbidden,
        added_lines=added,
        removed_lines=0 if added is not None else None,
    )


def _type_changed(
    ctx: _Ctx, rel: str, upath: str, ust: os.stat_result, lpath: str, lst: os.stat_result
) -> Change:
    new_type, target, forbidden = _new_side(ctx, rel, upath, ust)
    old_type = FileType.of_mode(lst.st_mode)
    binary = False
    added: int | None = None
    removed: int | None = None
    if new_type is FileType.FILE:
        b, added = _count_one(upath, ust.st_size)
        binary = binary or b
    if old_type is FileType.FILE:
        b, removed = _count_one(lpath, lst.st_size)
        binary = binary or b
    return Change(
        path=rel,
        kind=ChangeKind.TYPE_CHANGED,
        old_type=old_type,
        new_type=new_type,
        old_mode=lst.st_mode,
        new_mode=ust.st_mode,
        old_size=_size(old_type, lst),
        new_size=_size(new_type, ust),
        binary=binary,
        link_target=target,
        executable_added=new_type is FileType.FILE and bool(ust.st_mode & 0o111),
        setid=_setid(ust.st_mode),
        forbidden=forbidden,
        added_lines=None if binary else (added or 0),
        removed_lines=None if binary else (removed or 0),
    )


def _mode_changed(ctx: _Ctx, rel: str, ftype: FileType, ust: os.stat_result, lst: os.stat_result) -> Change:
    return Change(
        path=rel,
        kind=ChangeKind.MODE_CHANGED,
        old_type=ftype,
        new_type=ftype,
        old_mode=lst.st_mode,
        new_mode=ust.st_mode,
        old_size=_size(ftype, lst),
        new_size=_size(ftype, ust),
        executable_added=bool(ust.st_mode & 0o111 & ~lst.st_mode),
        setid=_setid(ust.st_mode),
        forbidden=_rules.violations(
            rel, new_type=ftype, new_mode=ust.st_mode, link_target=None, hidden=ctx.hidden
        ),
    )


def _same_type(
    ctx: _Ctx,
    rel: str,
    ftype: FileType,
    upath: str,
    ust: os.stat_result,
    lpath: str,
    lst: os.stat_result,
) -> Change | None:
    mode_differs = ust.st_mode & _PERM != lst.st_mode & _PERM
    binary = False
    added: int | None = None
    removed: int | None = None
    target: str | None = None
    match ftype:
        case FileType.FILE:
            same, binary, added, removed = _compare_files(upath, ust.st_size, lpath, lst.st_size)
        case FileType.SYMLINK:
            target = os.readlink(upath)
            same = target == os.readlink(lpath)
        case FileType.CHARDEV | FileType.BLOCKDEV:
            same = ust.st_rdev == lst.st_rdev
        case FileType.FIFO | FileType.SOCKET:
            same = True
        case FileType.DIR:
            raise AssertionError("directories are compared by the walk")
        case _:
            assert_never(ftype)
    if same and not mode_differs:
        return None  # copied up (or touched) but identical: not a change
    if same:
        return _mode_changed(ctx, rel, ftype, ust, lst)
    return Change(
        path=rel,
        kind=ChangeKind.MODIFIED,
        old_type=ftype,
        new_type=ftype,
        old_mode=lst.st_mode,
        new_mode=ust.st_mode,
        old_size=_size(ftype, lst),
        new_size=_size(ftype, ust),
        binary=binary,
        link_target=target,
        executable_added=bool(ust.st_mode & 0o111 & ~lst.st_mode),
        setid=_setid(ust.st_mode),
        forbidden=_rules.violations(
            rel, new_type=ftype, new_mode=ust.st_mode, link_target=target, hidden=ctx.hidden
        ),
        added_lines=added,
        removed_lines=removed,
    )


def read_bytes(path: str, limit: int | None = None) -> bytes:
    """Read a regular file without following a symlink in its last component."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        if limit is not None:
            return os.read(fd, limit)
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read()
    finally:
        os.close(fd)


def _count_one(path: str, size: int) -> tuple[bool, int | None]:
    """(binary, line count) of one side of an added/deleted file."""
    if size > MAX_TEXT_DIFF:
        return looks_binary(read_bytes(path, 8000), complete=False), None
    data = read_bytes(path)
    if looks_binary(data):
        return True, None
    added, _ = line_counts(b"", data)
    return False, added


def _compare_files(
    upath: str, usize: int, lpath: str, lsize: int
) -> tuple[bool, bool, int | None, int | None]:
    """(same content, binary, added lines, removed lines)."""
    if usize > MAX_TEXT_DIFF or lsize > MAX_TEXT_DIFF:
        binary = (looks_binary(read_bytes(upath, 8000), complete=False)
                  or looks_binary(read_bytes(lpath, 8000), complete=False))
        same = usize == lsize and _same_stream(upath, lpath)
        return same, binary, None, None
    new = read_bytes(upath)
    if usize == lsize:
        old = read_bytes(lpath)
        if old == new:
            return True, looks_binary(new), None, None
    else:
        old = read_bytes(lpath)
    if looks_binary(old) or looks_binary(new):
        return False, True, None, None
    added, removed = line_counts(old, new)
    return False, False, added, removed


def _same_stream(a: str, b: str) -> bool:
    fa = os.open(a, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        fb = os.open(b, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            while True:
                ca, cb = os.read(fa, _CHUNK), os.read(fb, _CHUNK)
                if ca != cb:
                    return False
                if not ca:
                    return True
        finally:
            os.close(fb)
    finally:
        os.close(fa)
