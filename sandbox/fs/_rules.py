"""Forbidden-change rules: changes no governance level may commit.

Each violation is a "rule-id: reason" string; ids are stable (policy, audit and tests use them).
"""

from __future__ import annotations

import posixpath
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from typing import assert_never

from sandbox.fs._changeset import FileType
from sandbox.fs._globs import PathMatcher

SYMLINK_ESCAPE = "symlink-escape"
DEVICE_NODE = "device-node"
FIFO = "fifo"
SOCKET = "socket"
SETID = "setid"
DOTDOT = "dotdot-path"
CONTROL_CHAR = "control-char"
HIDDEN = "hidden-path"
HIDDEN_TRACKED = "hidden-tracked"  # git work inside that would delete/replace/add a hidden file

RULE_IDS = (SYMLINK_ESCAPE, DEVICE_NODE, FIFO, SOCKET, SETID, DOTDOT, CONTROL_CHAR, HIDDEN,
            HIDDEN_TRACKED)


def symlink_escapes(path: str, target: str) -> bool:
    """True when `target`, read relative to the link's own directory, leaves the workspace.

    Lexical only: commit never follows symlinks, so what matters is where the link would
    point for whoever uses the workspace later.
    """
    if not target or target.startswith("/"):
        return True
    depth = len([c for c in posixpath.dirname(path).split("/") if c])
    for comp in target.split("/"):
        if comp in ("", "."):
            continue
        depth = depth - 1 if comp == ".." else depth + 1
        if depth < 0:
            return True
    return False


# The read-only system view every sandbox has: a link there (a venv's bin/python3 ->
# /usr/bin/python3) points at the same files outside. It needs a person, not a refusal.
_SYSTEM_VIEW = ("/usr/", "/bin/", "/sbin/", "/lib/", "/lib32/", "/lib64/", "/libx32/",
                "/etc/alternatives/")


def system_link(target: str | None) -> bool:
    """True when `target` is an absolute path into the read-only system view."""
    if not target or not target.startswith("/") or _has_control(target):
        return False
    norm = posixpath.normpath(target)
    return any(norm.startswith(p) for p in _SYSTEM_VIEW)


def _has_control(text: str) -> bool:
    return any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text)


def is_hidden(path: str, hidden: Sequence[str] | HiddenIndex) -> str | None:
    """The hidden path (as returned by `build_mask`) or hide pattern (the policy's list) that
    covers `path`, if any. Patterns matter for changes judged without the run's mask (approve
    later) and for new files at hidden names: both must never overwrite a secret."""
    index = hidden if isinstance(hidden, HiddenIndex) else HiddenIndex.of(hidden)
    return index.covers(path)


@dataclass(frozen=True)
class HiddenIndex:
    """`hidden` prepared once per diff: exact paths in a set (a lookup per ancestor instead
    of a scan of every hidden path per change), patterns parsed once."""

    exact: frozenset[str]
    matcher: PathMatcher
    unhidden: PathMatcher | None = None  # `[hide] except`: patterns that do not hide these

    @classmethod
    def of(cls, hidden: Sequence[str], unhidden: Sequence[str] = ()) -> HiddenIndex:
        exact = frozenset(h.strip("/") for h in hidden if h.strip("/"))
        return cls(exact, PathMatcher.of(hidden), PathMatcher.of(unhidden) if unhidden else None)

    def covers(self, path: str, *, is_dir: bool = False) -> str | None:
        if self.exact:
            parts = path.split("/")
            for i in range(1, len(parts) + 1):
                prefix = "/".join(parts[:i])
                if prefix in self.exact:
                    return prefix  # found hidden by the mask, which already honoured except
        found = self.matcher.match(path, is_dir=is_dir)
        if found is not None and self.unhidden is not None and self.unhidden.match(
                path, is_dir=is_dir) is not None:
            return None
        return found


def violations(
    path: str,
    *,
    new_type: FileType | None,
    new_mode: int | None,
    link_target: str | None,
    hidden: Sequence[str] | HiddenIndex = (),
) -> tuple[str, ...]:
    """Every forbidden rule the change at `path` breaks (deletions only have path rules)."""
    found: list[str] = []
    comps = path.split("/")
    if ".." in comps or "." in comps or "" in comps or path.startswith("/"):
        found.append(f"{DOTDOT}: path {path!r} is not a plain relative path")
    if _has_control(path):
        found.append(f"{CONTROL_CHAR}: path {path!r} contains control characters")
    index = hidden if isinstance(hidden, HiddenIndex) else HiddenIndex.of(hidden)
    covering = index.covers(path, is_dir=new_type is FileType.DIR)
    if covering is not None:
        found.append(f"{HIDDEN}: {covering!r} is hidden from the sandbox; committing would clobber it")
    match new_type:
        case None | FileType.FILE | FileType.DIR:
            pass
        case FileType.SYMLINK:
            if link_target is None or (symlink_escapes(path, link_target)
                                       and not system_link(link_target)):
                found.append(f"{SYMLINK_ESCAPE}: symlink target {link_target!r} leaves the workspace")
        case FileType.CHARDEV | FileType.BLOCKDEV:
            found.append(f"{DEVICE_NODE}: device nodes are never committed")
        case FileType.FIFO:
            found.append(f"{FIFO}: fifos are never committed")
        case FileType.SOCKET:
            found.append(f"{SOCKET}: sockets are never committed")
        case _:
            assert_never(new_type)
    # setgid on a directory only makes new entries inherit the group (and new dirs inherit it
    # from a setgid parent automatically), so it is no privilege; commit strips it anyway.
    if new_mode is not None and new_type is not FileType.DIR and new_mode & (stat.S_ISUID | stat.S_ISGID):
        found.append(f"{SETID}: mode {new_mode & 0o7777:04o} sets setuid/setgid")
    return tuple(found)
