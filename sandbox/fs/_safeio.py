"""Symlink-proof filesystem access: every path is walked component by component with dir fds.

Each component is opened with O_NOFOLLOW|O_DIRECTORY relative to its parent's fd, so a
symlink (or a non-directory) anywhere in a parent chain makes the open fail instead of
silently leading outside the tree. Only the tree's root is opened by plain path (it is the
caller's own input, e.g. a workspace reached through a symlinked home).
"""

from __future__ import annotations

import errno
import os
import stat
from collections import OrderedDict
from collections.abc import Callable
from types import TracebackType

O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class UnsafePathError(Exception):
    """A parent component is a symlink, not a directory, or missing."""

    def __init__(self, rel: str, reason: str) -> None:
        super().__init__(f"{rel!r}: {reason}")
        self.rel = rel
        self.reason = reason


def split(rel: str) -> tuple[str, str]:
    parent, _, name = rel.rpartition("/")
    return parent, name


def walk_at(root_fd: int, rel_dir: str, step: Callable[[int, str, str], int]) -> int:
    """A new fd for `rel_dir` below `root_fd`, each component opened by `step(parent fd,
    name, path so far)`, which returns its fd (or raises); the fds passed are closed on the
    way, and the one held on any error."""
    fd = os.dup(root_fd)
    walked = ""
    try:
        for comp in (c for c in rel_dir.split("/") if c):
            walked = f"{walked}/{comp}" if walked else comp
            nfd = step(fd, comp, walked)
            os.close(fd)
            fd = nfd
        return fd
    except BaseException:
        os.close(fd)
        raise


def open_dir_at(root_fd: int, rel_dir: str) -> int:
    """A new fd for `rel_dir` below `root_fd`, never crossing a symlink."""

    def step(fd: int, comp: str, walked: str) -> int:
        if comp in (".", ".."):
            raise UnsafePathError(walked, "'..' or '.' component")
        try:
            return os.open(comp, O_DIR, dir_fd=fd)
        except OSError as exc:
            raise UnsafePathError(walked, _why(fd, comp, exc)) from exc

    return walk_at(root_fd, rel_dir, step)


def _why(dir_fd: int, name: str, exc: OSError) -> str:
    if exc.errno not in (errno.ELOOP, errno.ENOTDIR, errno.ENOENT):
        raise exc
    st = lstat_at(dir_fd, name)
    if st is None:
        return "does not exist"
    return "is a symlink" if stat.S_ISLNK(st.st_mode) else "is not a directory"


def lstat_at(dir_fd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def rmtree_at(dir_fd: int, name: str) -> None:
    """Remove `name` and, if it is a directory, everything below it; never follows symlinks."""
    st = lstat_at(dir_fd, name)
    if st is None:
        return
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(name, dir_fd=dir_fd)
        return
    try:
        sub = os.open(name, O_DIR, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):  # swapped under us: just unlink it
            os.unlink(name, dir_fd=dir_fd)
            return
        raise
    try:
        for child in os.listdir(sub):
            rmtree_at(sub, child)
    finally:
        os.close(sub)
    os.rmdir(name, dir_fd=dir_fd)


class DirFds:
    """A bounded cache of safely opened directory fds under one root (LRU, closes on exit).

    Keeping the fd we checked, rather than re-resolving the path, means a parent swapped for
    a symlink after the check still cannot redirect a write.
    """

    def __init__(self, root: str | os.PathLike[str], *, limit: int = 256) -> None:
        self.root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self._fds: OrderedDict[str, int] = OrderedDict()
        self._limit = limit

    def get(self, rel_dir: str) -> int:
        rel_dir = rel_dir.strip("/")
        if not rel_dir:
            return self.root_fd
        fd = self._fds.get(rel_dir)
        if fd is not None:
            self._fds.move_to_end(rel_dir)
            return fd
        parent, name = split(rel_dir)
        if parent and parent in self._fds:
            pfd = self._fds[parent]
            try:
                fd = os.open(name, O_DIR, dir_fd=pfd)
            except OSError as exc:
                raise UnsafePathError(rel_dir, _why(pfd, name, exc)) from exc
        else:
            fd = open_dir_at(self.root_fd, rel_dir)
        self._fds[rel_dir] = fd
        while len(self._fds) > self._limit:
            _, old = self._fds.popitem(last=False)
            os.close(old)
        return fd

    def forget(self, rel_dir: str) -> None:
        """Drop cached fds at or below `rel_dir` (it is about to be removed or replaced)."""
        prefix = rel_dir + "/"
        for key in [k for k in self._fds if k == rel_dir or k.startswith(prefix)]:
            os.close(self._fds.pop(key))

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
        os.close(self.root_fd)

    def __enter__(self) -> DirFds:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def fsync_fd(fd: int) -> None:
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.EROFS):  # fs without fsync support
            raise
