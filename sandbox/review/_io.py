"""Symlink-proof access to the workspace, the pending upper dir and the staging dir.

Paths come from a run, so every component below the tree's root is opened with O_NOFOLLOW
relative to its parent's fd: a symlink anywhere in a path fails the call instead of leading
out of the tree. Only the roots themselves are opened by name (they are our own paths).
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from sandbox.errors import CommitError

__all__ = ["Tree"]

_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_O_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


def _unsafe(rel: str, why: str) -> CommitError:
    return CommitError(f"{rel}: {why}; refusing to follow it")


class Tree:
    """A directory tree addressed by workspace-relative POSIX paths."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @contextmanager
    def parent(self, rel: str, *, create: bool = False) -> Iterator[tuple[int, str]]:
        """(fd of the directory holding `rel`, last component); `create` makes missing
        directories (0700) on the way."""
        *dirs, name = rel.split("/")
        fd = os.open(self.root, _O_DIR)
        try:
            for comp in dirs:
                if comp in ("", ".", ".."):
                    raise _unsafe(rel, "not a plain relative path")
                if create:
                    with suppress(FileExistsError):
                        os.mkdir(comp, 0o700, dir_fd=fd)
                try:
                    nfd = os.open(comp, _O_DIR, dir_fd=fd)
                except OSError as exc:
                    raise _unsafe(rel, f"{comp!r} is not a directory ({exc.strerror})") from exc
                os.close(fd)
                fd = nfd
            yield fd, name
        finally:
            os.close(fd)

    def lstat(self, rel: str) -> os.stat_result | None:
        try:
            with self.parent(rel) as (fd, name):
                return os.stat(name, dir_fd=fd, follow_symlinks=False)
        except (FileNotFoundError, CommitError):
            return None

    def read(self, rel: str) -> bytes:
        """A regular file's content; CommitError if it is anything else."""
        with self.parent(rel) as (dfd, name):
            try:
                fd = os.open(name, _O_READ, dir_fd=dfd)
            except OSError as exc:
                raise _unsafe(rel, f"cannot open ({exc.strerror})") from exc
            try:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    raise _unsafe(rel, "not a regular file")
                chunks: list[bytes] = []
                while chunk := os.read(fd, 1 << 20):
                    chunks.append(chunk)
                return b"".join(chunks)
            finally:
                os.close(fd)

    def readlink(self, rel: str) -> str:
        with self.parent(rel) as (fd, name):
            return os.readlink(name, dir_fd=fd)

    def write(self, rel: str, data: bytes, *, mode: int, like: os.stat_result | None = None,
              create_parents: bool = False) -> None:
        """Replace `rel` atomically (temp file + rename) with `data` and permission `mode`;
        owner taken from `like` when we may set it (root)."""
        with self.parent(rel, create=create_parents) as (dfd, name):
            tmp = f".sandbox-review-{secrets.token_hex(6)}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                         0o600, dir_fd=dfd)
            try:
                try:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view):]
                    if like is not None and os.geteuid() == 0:
                        os.fchown(fd, like.st_uid, like.st_gid)
                    os.fchmod(fd, mode & 0o7777)
                    os.fsync(fd)
                finally:
                    os.close(fd)
                os.rename(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
            except BaseException:
                with suppress(FileNotFoundError):
                    os.unlink(tmp, dir_fd=dfd)
                raise

    def link_from(self, src: Tree, rel: str) -> None:
        """Hard-link `src`'s entry at `rel` (file or symlink itself) to the same place here."""
        with src.parent(rel) as (sfd, name), self.parent(rel, create=True) as (dfd, _):
            try:
                os.link(name, name, src_dir_fd=sfd, dst_dir_fd=dfd, follow_symlinks=False)
                return
            except OSError:
                pass  # e.g. protected_hardlinks for a file we do not own: copy instead
            st = os.stat(name, dir_fd=sfd, follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                os.symlink(os.readlink(name, dir_fd=sfd), name, dir_fd=dfd)
                return
        self.write(rel, src.read(rel), mode=st.st_mode, like=st)
        with self.parent(rel) as (dfd, name):
            os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dfd)

    def mkdir(self, rel: str) -> None:
        with self.parent(rel, create=True) as (dfd, name), suppress(FileExistsError):
            os.mkdir(name, 0o700, dir_fd=dfd)

    def copy_attrs(self, rel: str, st: os.stat_result) -> None:
        """Give the directory at `rel` the mode and times of `st` (what commit copies); call
        it after filling the directory, since adding entries moves its mtime."""
        with self.parent(rel) as (dfd, name):
            fd = os.open(name, _O_DIR, dir_fd=dfd)
            try:
                os.fchmod(fd, st.st_mode & 0o7777)
                os.utime(fd, ns=(st.st_atime_ns, st.st_mtime_ns))
            finally:
                os.close(fd)
