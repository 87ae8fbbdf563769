"""Writes of the file tools: into the session's upper dir, never the workspace.

A file written here is a pending change exactly like one a run wrote: the next run sees it, the
diff shows it, approve commits it. Directories are walked with O_NOFOLLOW dir fds created as
needed (copying the workspace directory's mode, as overlayfs's copy-up does); the file is
written under a temporary name and renamed into place, so a half-written file is never seen.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

from sandbox.backends._mountns import MAPPED_ROOT_ID
from sandbox.fs import FileType
from sandbox.fs._gitcreds import GIT_CONFIG, scrubbed_paths
from sandbox.fs._rules import HiddenIndex, violations
from sandbox.fs._safeio import O_DIR, fsync_fd, lstat_at, walk_at
from sandbox.mcp._errors import ToolRefused
from sandbox.mcp._view import View

_NEW_FILE_MODE = 0o644
_NEW_DIR_MODE = 0o755


def upper_owner() -> tuple[int, int] | None:
    """Who owns entries in the upper dir: the sandbox's root as seen outside (root callers map
    it to MAPPED_ROOT_ID; an unprivileged caller's files are already its own)."""
    return (MAPPED_ROOT_ID, MAPPED_ROOT_ID) if os.getuid() == 0 else None


def check_writable(view: View, rel: str) -> None:
    """Refuse what no level may commit (hidden, control characters, ...), before writing."""
    if not rel:
        raise ToolRefused("cannot write the workspace root itself")
    hidden = view.hidden
    if rel == GIT_CONFIG:  # seen scrubbed: writing it back would drop the credentials
        hidden = HiddenIndex.of((*view.hidden.exact, *scrubbed_paths(view.workspace)))
        hidden = HiddenIndex(hidden.exact, view.hidden.matcher)
    bad = violations(rel, new_type=FileType.FILE, new_mode=_NEW_FILE_MODE, link_target=None,
                     hidden=hidden)
    if bad:
        raise ToolRefused(f"{rel}: refused ({'; '.join(bad)})")


def write_file(view: View, rel: str, data: bytes) -> bool:
    """Write `data` at `rel` in the session's view; True if the file is new to the view.

    The caller holds the session lock. Symlinks in the parent chain are followed inside the
    workspace (as a run would); a symlink, directory or special file at `rel` itself is
    refused rather than written through.
    """
    check_writable(view, rel)
    parent, _, name = rel.rpartition("/")
    parent_node = view.lookup(parent) if parent else None
    if parent and parent_node is not None:
        parent = parent_node.rel  # symlinks in the parent chain resolved (inside only)
        rel = f"{parent}/{name}" if parent else name
        check_writable(view, rel)
    existing = view.lookup(rel, follow=False)
    if existing is not None and not existing.is_file:
        kind = ("a symlink (write to the path it points to)" if existing.is_symlink else
                "a directory" if existing.is_dir else "not a regular file")
        raise ToolRefused(f"{rel}: is {kind}")
    mode = stat.S_IMODE(existing.st.st_mode) if existing is not None else _NEW_FILE_MODE
    owner = upper_owner()
    dir_fd = _upper_dir(view, parent, owner)
    tmp = f".sandbox-write-{secrets.token_hex(6)}"
    try:
        ust = lstat_at(dir_fd, name)
        if ust is not None and stat.S_ISDIR(ust.st_mode):
            raise ToolRefused(f"{rel}: is a directory")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600, dir_fd=dir_fd)
        try:
            view_bytes = memoryview(data)
            while view_bytes:
                n = os.write(fd, view_bytes)
                view_bytes = view_bytes[n:]
            if owner is not None:
                os.fchown(fd, *owner)
            os.fchmod(fd, mode)
            fsync_fd(fd)
        finally:
            os.close(fd)
        # rename never follows: it replaces a whiteout or an older upper file in place
        os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        fsync_fd(dir_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise
    finally:
        os.close(dir_fd)
    return existing is None


def _upper_dir(view: View, parent: str, owner: tuple[int, int] | None) -> int:
    """An fd of `parent` inside the upper dir, creating the directories the view has (with the
    workspace's mode) or that are new; refusing where the view has no directory."""

    def step(fd: int, comp: str, walked: str) -> int:
        node = view.lookup(walked, follow=False)
        ust = lstat_at(fd, comp)
        if node is not None and not node.is_dir:
            raise ToolRefused(f"{walked}: not a directory")
        if ust is None:
            if node is None and view.hidden_at(walked, is_dir=True):
                raise ToolRefused(f"{walked}: refused (hidden path)")
            mode = stat.S_IMODE(node.st.st_mode) if node is not None else _NEW_DIR_MODE
            os.mkdir(comp, 0o700, dir_fd=fd)
            nfd = os.open(comp, O_DIR, dir_fd=fd)
            if owner is not None:
                os.fchown(nfd, *owner)
            os.fchmod(nfd, mode)
            return nfd
        if stat.S_ISDIR(ust.st_mode):
            return os.open(comp, O_DIR, dir_fd=fd)
        raise ToolRefused(f"{walked}: was deleted in this session; recreate it with bash "
                          "(mkdir) first")  # a whiteout: the session deleted this directory

    root = os.open(view.upper, O_DIR)
    try:
        return walk_at(root, parent, step)
    finally:
        os.close(root)


def upper_snapshot(upper: Path) -> dict[str, tuple[int, int, int, int]]:
    """(mtime, size, mode, inode) of every non-directory entry in the upper dir: what changed
    between two snapshots is what one call changed. Cost follows the upper dir's size."""
    out: dict[str, tuple[int, int, int, int]] = {}
    if not upper.is_dir():
        return out
    stack = [("", os.fspath(upper))]
    while stack:
        rel, path = stack.pop()
        with os.scandir(path) as it:
            for entry in it:
                crel = f"{rel}/{entry.name}" if rel else entry.name
                st = entry.stat(follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    out[crel + "/"] = (0, 0, st.st_mode, st.st_ino)
                    stack.append((crel, entry.path))
                else:
                    out[crel] = (st.st_mtime_ns, st.st_size, st.st_mode, st.st_ino)
    return out


def changed_between(before: dict[str, tuple[int, int, int, int]],
                    after: dict[str, tuple[int, int, int, int]]) -> set[str]:
    keys = set(before) | set(after)
    return {k.rstrip("/") for k in keys if before.get(k) != after.get(k)}


__all__ = ["changed_between", "check_writable", "upper_owner", "upper_snapshot",
           "write_file"]
