"""The session's view of the workspace, read without a sandbox: the workspace (lower) with the
session's pending upper dir on top, exactly as a run sees it under /workspace.

Overlay rules, applied by hand: an upper entry hides the lower one; a whiteout deletes it; an
opaque upper directory hides the whole lower directory. Hidden paths (the policy's hide list)
do not exist here, as inside a run. Every directory is opened with O_NOFOLLOW relative to its
parent's fd (see sandbox/fs/_safeio.py), so a symlink is only ever followed by us, lexically,
and only while it stays inside the workspace.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from sandbox.fs import _overlay
from sandbox.fs._gitcreds import GIT_CONFIG, scrubbed_git_config
from sandbox.fs._rules import HiddenIndex, symlink_escapes
from sandbox.fs._safeio import O_DIR, lstat_at
from sandbox.mcp._errors import ToolRefused

MOUNT_POINT = "/workspace"  # where a run sees the workspace: the model may use either form
_MAX_HOPS = 40  # symlinks followed in one lookup (the kernel's own limit)


class Layer(StrEnum):
    UPPER = "upper"  # the session's pending changes
    LOWER = "lower"  # the real workspace


@dataclass(frozen=True)
class Node:
    """One entry of the view: where it lives (`rel`, after following symlinks) and its stat."""

    rel: str
    layer: Layer
    st: os.stat_result

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.st.st_mode)

    @property
    def is_file(self) -> bool:
        return stat.S_ISREG(self.st.st_mode)

    @property
    def is_symlink(self) -> bool:
        return stat.S_ISLNK(self.st.st_mode)


@dataclass
class _Dir:
    """A directory of the view: its fd in each layer that contributes to it."""

    upper: int | None
    lower: int | None

    def close(self) -> None:
        for fd in (self.upper, self.lower):
            if fd is not None:
                os.close(fd)


def normalize(path: str, workspace: Path) -> str:
    """A tool's `path` argument as a workspace-relative path ("" for the root).

    Accepted: relative to the workspace, absolute under the workspace, or under /workspace
    (where a run sees it). Refused: anything else absolute, `..`, NUL and control characters.
    """
    if not isinstance(path, str):
        raise ToolRefused("path must be a string")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in path):
        raise ToolRefused(f"{path!r}: control characters are not allowed in paths")
    raw = path.strip()
    if raw.startswith("/"):
        for root in (os.fspath(workspace), MOUNT_POINT):
            if raw == root or raw.startswith(root.rstrip("/") + "/"):
                raw = raw[len(root):]
                break
        else:
            raise ToolRefused(f"{path}: outside the workspace (paths are relative to it, "
                              f"or under {MOUNT_POINT})")
    comps = [c for c in raw.split("/") if c not in ("", ".")]
    if ".." in comps:
        raise ToolRefused(f"{path}: '..' is not allowed in paths")
    return "/".join(comps)


class View:
    """Lookups and walks over (lower, upper) minus `hide`; no state kept between calls."""

    def __init__(self, workspace: Path, upper: Path, hide: tuple[str, ...]) -> None:
        self.workspace = workspace
        self.upper = upper
        self.hidden = HiddenIndex.of(hide)

    # -- lookups --------------------------------------------------------------------------

    def hidden_at(self, rel: str, *, is_dir: bool = False) -> bool:
        return bool(rel) and self.hidden.covers(rel, is_dir=is_dir) is not None

    def _root(self) -> _Dir:
        lower = os.open(self.workspace, O_DIR & ~os.O_NOFOLLOW)
        try:
            upper = os.open(self.upper, O_DIR) if self.upper.is_dir() else None
        except BaseException:
            os.close(lower)
            raise
        if upper is not None and _opaque(upper, ""):
            os.close(lower)
            return _Dir(upper, None)
        return _Dir(upper, lower)

    def _child(self, d: _Dir, name: str, rel: str) -> tuple[Node | None, int | None]:
        """The entry `name` of directory `d` at view path `rel`: (node, layer dir fd)."""
        if d.upper is not None:
            ust = lstat_at(d.upper, name)
            if ust is not None:
                if _overlay.is_whiteout(ust, _xattrs(d.upper, name)):
                    return None, None
                return Node(rel, Layer.UPPER, ust), d.upper
        if d.lower is not None:
            lst = lstat_at(d.lower, name)
            if lst is not None:
                return Node(rel, Layer.LOWER, lst), d.lower
        return None, None

    def _descend(self, d: _Dir, name: str) -> _Dir:
        """Enter directory `name` of `d` in every layer that has it as a real directory."""
        upper = lower = None
        try:
            if d.upper is not None:
                ust = lstat_at(d.upper, name)
                if ust is not None and stat.S_ISDIR(ust.st_mode):
                    upper = os.open(name, O_DIR, dir_fd=d.upper)
                    if _opaque(upper, ""):
                        return _Dir(upper, None)
                elif ust is not None:  # a whiteout or a non-dir replaced it
                    return _Dir(None, None)
            if d.lower is not None:
                lst = lstat_at(d.lower, name)
                if lst is not None and stat.S_ISDIR(lst.st_mode):
                    lower = os.open(name, O_DIR, dir_fd=d.lower)
            return _Dir(upper, lower)
        except BaseException:
            _Dir(upper, lower).close()
            raise

    def lookup(self, rel: str, *, follow: bool = True) -> Node | None:
        """The entry at `rel` (symlinks in the middle followed inside the workspace; the last
        one too when `follow`), or None if it does not exist in the view or is hidden."""
        node, _ = self._resolve(rel, follow=follow, want_fd=False)
        return node

    @contextlib.contextmanager
    def opened_dir(self, rel: str) -> Iterator[tuple[Node, _Dir]]:
        """The directory at `rel` opened in both layers (symlinks followed inside)."""
        node, d = self._resolve(rel, follow=True, want_fd=True)
        assert d is not None or node is None
        if node is None or d is None:
            raise ToolRefused(f"{rel or '.'}: no such directory")
        if not node.is_dir:
            d.close()
            raise ToolRefused(f"{rel}: not a directory")
        try:
            yield node, d
        finally:
            d.close()

    def _resolve(self, rel: str, *, follow: bool, want_fd: bool) -> tuple[Node | None, _Dir | None]:
        """(node, its directory fds if `want_fd` and it is a directory) for `rel`."""
        comps = [c for c in rel.split("/") if c]
        hops = 0
        while True:
            d: _Dir | None = self._root()
            assert d is not None
            try:
                root_fd = d.lower if d.lower is not None else d.upper
                assert root_fd is not None
                node: Node | None = Node("", Layer.LOWER, os.fstat(root_fd))
                restart: list[str] | None = None
                walked: list[str] = []
                for i, name in enumerate(comps):
                    last = i == len(comps) - 1
                    here = "/".join([*walked, name])
                    node, fd = self._child(d, name, here)
                    if node is None or self.hidden_at(here, is_dir=node.is_dir):
                        return None, None
                    if node.is_symlink and (follow or not last):
                        assert fd is not None
                        restart = self._follow(here, os.readlink(name, dir_fd=fd), walked,
                                               comps[i + 1:])
                        hops += 1
                        if hops > _MAX_HOPS:
                            raise ToolRefused(f"{rel}: too many levels of symlinks")
                        break
                    if last and not (want_fd and node.is_dir):
                        break
                    if not node.is_dir:
                        return None, None
                    nd = self._descend(d, name)
                    d.close()
                    d = nd
                    walked.append(name)
                if restart is None:
                    if not want_fd or node is None or not node.is_dir:
                        return node, None
                    kept, d = d, None
                    return node, kept
            finally:
                if d is not None:
                    d.close()
            comps = restart

    @staticmethod
    def _follow(here: str, target: str, walked: list[str], rest: list[str]) -> list[str]:
        """The components to look up instead, after the symlink at `here` (inside only)."""
        if symlink_escapes(here, target):
            raise ToolRefused(f"{here}: a symlink leading outside the workspace ({target})")
        joined = posixpath.normpath(posixpath.join("/".join(walked), target))
        return [c for c in joined.split("/") if c not in ("", ".")] + rest

    # -- reading --------------------------------------------------------------------------

    def open_file(self, rel: str) -> tuple[Node, int]:
        """(node, fd) of the regular file at `rel`, opened read-only without following a
        symlink at the end (the lookup already followed the ones inside the workspace)."""
        node = self.lookup(rel)
        if node is None:
            raise ToolRefused(f"{rel or '.'}: no such file")
        if node.is_dir:
            raise ToolRefused(f"{rel}: is a directory (use list_files)")
        if not node.is_file:
            raise ToolRefused(f"{rel}: not a regular file")
        parent, _, name = node.rel.rpartition("/")
        with self.opened_dir(parent) as (_, d):
            fd_dir = d.upper if node.layer is Layer.UPPER else d.lower
            if fd_dir is None:
                raise ToolRefused(f"{rel}: changed while reading; try again")
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK,
                         dir_fd=fd_dir)
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            raise ToolRefused(f"{rel}: changed while reading; try again")
        if node.layer is Layer.LOWER and node.rel == GIT_CONFIG:
            fd = self._scrubbed(fd)  # as a run sees it: without the credentials
            st = os.fstat(fd)
        return Node(node.rel, node.layer, st), fd

    def _scrubbed(self, fd: int) -> int:
        """A run sees .git/config without credential-bearing values (the hide mask holds
        that rewrite); the view shows the same bytes, from memory."""
        clean = scrubbed_git_config(self.workspace)
        if clean is None:
            return fd
        os.close(fd)
        mem = os.memfd_create("git-config", os.MFD_CLOEXEC)
        os.write(mem, clean)
        os.lseek(mem, 0, os.SEEK_SET)
        return mem

    def entries(self, d: _Dir, rel: str) -> Iterator[tuple[str, Node]]:
        """The merged, visible entries of an opened directory, sorted by name, made one at a
        time: a directory of a million entries (a run or a hostile repository can make one)
        keeps only its names in memory here, not a million stats (~1 KB each, on the host)."""
        names: set[str] = set()
        for fd in (d.upper, d.lower):
            if fd is not None:
                names.update(os.listdir(fd))
        for name in sorted(names):
            child = f"{rel}/{name}" if rel else name
            node, _ = self._child(d, name, child)
            if node is None or self.hidden_at(child, is_dir=node.is_dir):
                continue
            yield name, node

    def walk(self, rel: str, *, skip: frozenset[str] = frozenset()) -> Iterator[Node]:
        """Every visible entry below `rel`, depth first, never following a symlink; directory
        names in `skip` (e.g. `.git`) are not entered."""
        with self.opened_dir(rel) as (_, d):
            yield from self._walk(d, rel, skip)

    def _walk(self, d: _Dir, rel: str, skip: frozenset[str]) -> Iterator[Node]:
        for name, node in self.entries(d, rel):
            yield node
            if node.is_dir and name not in skip:
                sub = self._descend(d, name)
                try:
                    yield from self._walk(sub, node.rel, skip)
                finally:
                    sub.close()

    def readlink(self, node: Node) -> str:
        parent, _, name = node.rel.rpartition("/")
        with self.opened_dir(parent) as (_, d):
            fd = d.upper if node.layer is Layer.UPPER else d.lower
            return os.readlink(name, dir_fd=fd) if fd is not None else "?"


def _xattrs(dir_fd: int, name: str) -> list[str]:
    return _overlay.listxattr(f"/proc/self/fd/{dir_fd}/{name}" if name else
                              f"/proc/self/fd/{dir_fd}")


def _opaque(dir_fd: int, name: str) -> bool:
    path = f"/proc/self/fd/{dir_fd}/{name}" if name else f"/proc/self/fd/{dir_fd}"
    return _overlay.opaque_xattr(path, _xattrs(dir_fd, name)) is not None
