"""The ChangeSet model: what one run changed in the workspace, as pure data.

Paths are workspace-relative POSIX strings; names that are not UTF-8 are kept losslessly with
`os.fsdecode` (surrogateescape), so `os.fsencode(path)` gives back the real bytes.
"""

from __future__ import annotations

import stat
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, assert_never


class FileType(StrEnum):
    FILE = "file"
    DIR = "dir"
    SYMLINK = "symlink"
    FIFO = "fifo"
    SOCKET = "socket"
    CHARDEV = "chardev"
    BLOCKDEV = "blockdev"

    @classmethod
    def of_mode(cls, mode: int) -> FileType:
        fmt = stat.S_IFMT(mode)
        for test, ftype in _MODE_TESTS:
            if test(fmt):
                return ftype
        raise ValueError(f"unknown file type in mode {mode:o}")

    def git_mode(self, mode: int) -> int | None:
        """The mode git would record, or None when git cannot represent the type."""
        match self:
            case FileType.FILE:
                return 0o100755 if mode & stat.S_IXUSR else 0o100644
            case FileType.SYMLINK:
                return 0o120000
            case FileType.DIR | FileType.FIFO | FileType.SOCKET | FileType.CHARDEV | FileType.BLOCKDEV:
                return None
            case _:
                assert_never(self)


_MODE_TESTS = (
    (stat.S_ISREG, FileType.FILE),
    (stat.S_ISDIR, FileType.DIR),
    (stat.S_ISLNK, FileType.SYMLINK),
    (stat.S_ISFIFO, FileType.FIFO),
    (stat.S_ISSOCK, FileType.SOCKET),
    (stat.S_ISCHR, FileType.CHARDEV),
    (stat.S_ISBLK, FileType.BLOCKDEV),
)


class ChangeKind(StrEnum):
    ADDED = "added"
    MODIFIED = "modified"  # content (or symlink target) changed; mode may have changed too
    DELETED = "deleted"
    MODE_CHANGED = "mode_changed"  # same type and content, permission bits differ
    TYPE_CHANGED = "type_changed"  # e.g. a file replaced by a directory or a symlink


@dataclass(frozen=True)
class Change:
    """One path that differs between the workspace (old) and the run's view of it (new).

    `forbidden` holds "rule-id: reason" strings; a change with any is never committed.
    Line counts are None for binary files, directories and special files.
    """

    path: str
    kind: ChangeKind
    old_type: FileType | None = None
    new_type: FileType | None = None
    old_mode: int | None = None
    new_mode: int | None = None
    old_size: int | None = None
    new_size: int | None = None
    binary: bool = False
    link_target: str | None = None
    executable_added: bool = False
    setid: bool = False
    forbidden: tuple[str, ...] = ()
    added_lines: int | None = None
    removed_lines: int | None = None
    # How the workspace moved at this path since the session saw it (None: it did not). The
    # change is then a conflict: never committed without --force, shown with both sides.
    conflict: str | None = None

    @property
    def forbidden_rules(self) -> tuple[str, ...]:
        """Just the rule ids of `forbidden`."""
        return tuple(f.split(":", 1)[0] for f in self.forbidden)

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "kind": self.kind.value,
            "old_type": None if self.old_type is None else self.old_type.value,
            "new_type": None if self.new_type is None else self.new_type.value,
            "old_mode": self.old_mode,
            "new_mode": self.new_mode,
            "old_size": self.old_size,
            "new_size": self.new_size,
            "binary": self.binary,
            "link_target": self.link_target,
            "executable_added": self.executable_added,
            "setid": self.setid,
            "forbidden": list(self.forbidden),
            "added_lines": self.added_lines,
            "removed_lines": self.removed_lines,
            "conflict": self.conflict,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Change:
        def ftype(value: Any) -> FileType | None:
            return None if value is None else FileType(value)

        return cls(
            path=str(data["path"]),
            kind=ChangeKind(data["kind"]),
            old_type=ftype(data.get("old_type")),
            new_type=ftype(data.get("new_type")),
            old_mode=data.get("old_mode"),
            new_mode=data.get("new_mode"),
            old_size=data.get("old_size"),
            new_size=data.get("new_size"),
            binary=bool(data.get("binary", False)),
            link_target=data.get("link_target"),
            executable_added=bool(data.get("executable_added", False)),
            setid=bool(data.get("setid", False)),
            forbidden=tuple(data.get("forbidden", ())),
            added_lines=data.get("added_lines"),
            removed_lines=data.get("removed_lines"),
            conflict=data.get("conflict"),
        )


@dataclass(frozen=True)
class ChangeSet:
    """All changes of a run, sorted by path (so parents come before their children)."""

    changes: tuple[Change, ...] = ()
    _index: Mapping[str, Change] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        ordered = tuple(sorted(self.changes, key=lambda c: _sort_key(c.path)))
        object.__setattr__(self, "changes", ordered)
        object.__setattr__(self, "_index", {c.path: c for c in ordered})

    def __len__(self) -> int:
        return len(self.changes)

    def __iter__(self) -> Iterator[Change]:
        return iter(self.changes)

    def __bool__(self) -> bool:
        return bool(self.changes)

    def by_path(self, path: str) -> Change | None:
        return self._index.get(path)

    def counts(self) -> dict[str, int]:
        """Number of changes per kind (every kind present, zero included)."""
        tally = Counter(c.kind for c in self.changes)
        return {kind.value: tally.get(kind, 0) for kind in ChangeKind}

    @property
    def forbidden(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.forbidden)

    def permitted(self) -> ChangeSet:
        """Without the forbidden changes: what `approve` could ever commit (so a patch of it,
        applied with `git apply`, never writes what approve refuses)."""
        return ChangeSet(tuple(c for c in self.changes if not c.forbidden))

    @property
    def conflicts(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.conflict)

    def select(self, paths: Sequence[str] | None) -> tuple[Change, ...]:
        """Changes at or below any of `paths` (all when None): a path selects its subtree."""
        if paths is None:
            return self.changes
        wanted = [p.strip("/") for p in paths]
        return tuple(c for c in self.changes if any(_under(c.path, w) for w in wanted))

    def unmatched(self, paths: Iterable[str]) -> tuple[str, ...]:
        """Those of `paths` that select no change (a typo in `approve PATH` must not pass)."""
        return tuple(p for p in paths if not self.select([p]))

    def summary(self) -> dict[str, int]:
        out = self.counts()
        out["total"] = len(self.changes)
        out["forbidden"] = len(self.forbidden)
        out["conflicts"] = len(self.conflicts)
        out["added_lines"] = sum(c.added_lines or 0 for c in self.changes)
        out["removed_lines"] = sum(c.removed_lines or 0 for c in self.changes)
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "changes": [c.to_json() for c in self.changes],
            "summary": self.summary(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ChangeSet:
        return cls(tuple(Change.from_json(c) for c in data["changes"]))


def _under(path: str, prefix: str) -> bool:
    return prefix in ("", ".") or path == prefix or path.startswith(prefix + "/")


def _sort_key(path: str) -> tuple[str, ...]:
    # Component-wise order keeps every directory immediately before its contents
    # ("a", "a/b", "a-c"), which plain string order does not ("a", "a-c", "a/b").
    return tuple(path.split("/"))
