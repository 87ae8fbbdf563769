"""What the reviewer sees of one change: rows of escaped text, each tagged with its part.

Contents are read through the symlink-proof `Tree` from the pending upper dir (new side) and
the workspace (old side). Nothing read here reaches the screen unescaped: rows hold display
text only, and binary content is summarised (size, type, sha256), never shown.
"""

from __future__ import annotations

import bisect
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import assert_never, overload

from sandbox.errors import SandboxError
from sandbox.fs import Change, ChangeKind, ChangeSet, FileType, Seen, load_bases
from sandbox.fs._base import seen_content
from sandbox.review._hunks import NO_NEWLINE, Segment, TextDiff, text_diff
from sandbox.review._io import Tree
from sandbox.review._model import Item, hunkable
from sandbox.review._safe import describe_binary, esc, esc_line

__all__ = ["Detail", "Loader", "Row", "RowKind", "Rows"]

# Largest side we diff for display; beyond it the change is described, not shown.
MAX_SHOWN = 32 << 20


class RowKind(StrEnum):
    INFO = "info"
    NOTE = "note"  # a warning: forbidden, protected...
    HUNK = "hunk"
    CONTEXT = "context"
    ADD = "add"
    DEL = "del"
    MODE = "mode"


@dataclass(frozen=True)
class Row:
    kind: RowKind
    text: str  # escaped: safe to draw
    part: int | None = None  # which part (hunk) the row belongs to, for hunked files


class Rows(Sequence[Row]):
    """A detail's rows, made on demand: fixed rows and hunk segments (slices of the sides)
    laid end to end. Indexing costs a bisect and one `esc_line`, so drawing a screen of a
    million-line change escapes a screen of lines, never the whole file."""

    def __init__(self, *, ascii_only: bool = False) -> None:
        self._blocks: list[Row | tuple[Segment, int | None]] = []
        self._starts: list[int] = []
        self._len = 0
        self._ascii = ascii_only

    def add(self, row: Row) -> None:
        self._blocks.append(row)
        self._starts.append(self._len)
        self._len += 1

    def add_segment(self, seg: Segment, part: int | None) -> None:
        if len(seg):
            self._blocks.append((seg, part))
            self._starts.append(self._len)
            self._len += len(seg)

    def extend(self, rows: Iterable[Row]) -> None:
        for row in rows:
            self.add(row)

    def __len__(self) -> int:
        return self._len

    @overload
    def __getitem__(self, i: int) -> Row: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[Row]: ...

    def __getitem__(self, i: int | slice) -> Row | Sequence[Row]:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(self._len))]
        if i < 0:
            i += self._len
        if not 0 <= i < self._len:
            raise IndexError(i)
        n = bisect.bisect_right(self._starts, i) - 1
        block = self._blocks[n]
        if isinstance(block, Row):
            return block
        seg, part = block
        k = seg.start + i - self._starts[n]
        if k == seg.end:
            return Row(RowKind.INFO, NO_NEWLINE, part)
        line = esc_line(seg.lines[k], ascii_only=self._ascii)
        return Row(_SIGN_KIND[seg.sign], seg.sign + line, part)

    def part_starts(self) -> tuple[int, ...]:
        """Row index of the first row of each part."""
        starts: dict[int, int] = {}
        for block, at in zip(self._blocks, self._starts, strict=True):
            part = block.part if isinstance(block, Row) else block[1]
            if part is not None and part not in starts:
                starts[part] = at
        return tuple(starts[p] for p in sorted(starts))


_SIGN_KIND = {" ": RowKind.CONTEXT, "-": RowKind.DEL, "+": RowKind.ADD}
_PATCH_KIND = {b"-": RowKind.DEL, b"+": RowKind.ADD}


@dataclass(frozen=True)
class Detail:
    rows: Rows
    parts: int  # 1, or hunks (+1 for a mode change) for a hunked file
    diff: TextDiff | None = None
    mode_part: int | None = None  # the part index of the mode change, if it is one

    def part_starts(self) -> tuple[int, ...]:
        """Row index of the first row of each part."""
        return self.rows.part_starts()


def _mode(mode: int | None) -> str:
    return "-" if mode is None else f"{mode & 0o7777:04o}"


def _side(ftype: FileType | None) -> str:
    return "nothing" if ftype is None else ftype.value


class Loader:
    """Reads both sides of a change; `ascii_only` for terminals without UTF-8."""

    def __init__(self, upper: Path, lower: Path, *, ascii_only: bool = False,
                 changes: ChangeSet | None = None) -> None:
        self.upper, self.lower = Tree(upper), Tree(lower)
        self.ascii_only = ascii_only
        self._git_changes = changes  # the whole changeset: a ref is shown by its commits
        # What the session saw where it changed things (kept beside its upper dir): a
        # conflicting change is shown against that, never crediting a person's edit to it.
        self._session_dir = Path(upper).parent
        self._bases: dict[str, Seen] | None = None

    def _esc(self, text: str) -> str:
        return esc(text, ascii_only=self.ascii_only)

    def contents(self, c: Change) -> tuple[bytes, bytes]:
        """(old, new) content of a regular-file change (b"" for a side that is not a file)."""
        old = self.lower.read(c.path) if c.old_type is FileType.FILE else b""
        new = self.upper.read(c.path) if c.new_type is FileType.FILE else b""
        return old, new

    def text_diff(self, c: Change) -> TextDiff:
        old, new = self.contents(c)
        return text_diff(old, new)

    def detail(self, item: Item) -> Detail:
        c = item.change
        rows = Rows(ascii_only=self.ascii_only)
        rows.add(Row(RowKind.INFO, self._header(item)))
        if item.forbidden:
            rows.add(Row(RowKind.NOTE, "FORBIDDEN, never committed: "
                         + self._esc(item.verdict.reason)))
        elif item.protected:
            rows.add(Row(RowKind.NOTE, "protected: " + self._esc(item.verdict.reason)
                         + "; accept it on its own (y), bulk accept skips it"))
        if c.conflict:
            rows.add(Row(RowKind.NOTE, "CONFLICT: " + self._esc(c.conflict)))
            self._both_sides(c, rows)
        if c.setid:
            rows.add(Row(RowKind.NOTE, "sets setuid/setgid"))
        if c.path.startswith(".git/refs/") or c.path == ".git/packed-refs":
            self._git_rows(c, rows)
        if hunkable(c):
            return self._hunked(c, rows)
        self._whole(c, rows)
        return Detail(rows, 1)

    def _both_sides(self, c: Change, rows: Rows) -> None:
        """A path the workspace changed since the session saw it: the session's own change
        and the workspace's, each against what the session saw (not selectable), then the
        parts to apply, which are against the workspace as it is now."""
        if self._bases is None:
            self._bases = load_bases(self._session_dir) or {}
        seen = self._bases.get(c.path)
        base = seen_content(self._session_dir, seen) if seen is not None else None
        if seen is not None and seen.kind is None:
            base = b""  # the session saw nothing there
        try:  # either side may have moved on since the changeset was made
            now = self.lower.read(c.path) if c.old_type is FileType.FILE else b""
            new = self.upper.read(c.path) if c.new_type is FileType.FILE else b""
        except (OSError, SandboxError):
            base = None
        if base is None:
            rows.add(Row(RowKind.NOTE, "what the session saw there was not kept: the parts "
                         "below are against the workspace as it is now"))
        else:
            rows.add(Row(RowKind.NOTE, "the session's own change (against what it saw):"))
            self._segments(text_diff(base, new), rows, headers=True)
            rows.add(Row(RowKind.NOTE, "the workspace's change since (a person's, not the "
                         "session's):"))
            self._segments(text_diff(base, now), rows, headers=True)
        rows.add(Row(RowKind.NOTE, "applying it (needs --force) replaces the workspace's "
                     "version with the session's:"))

    def _git_rows(self, c: Change, rows: Rows) -> None:
        """A ref the run moved: the commits behind it (author, message, files), which
        accepting it brings along with their objects."""
        from sandbox.fs import commit_patch, git_work

        if self._git_changes is None:
            return
        work = git_work(self.upper.root, self.lower.root, self._git_changes.changes)
        name = c.path.removeprefix(".git/")
        for move in work.refs if work else ():
            if c.path == ".git/packed-refs" or move.ref == name:
                rows.add(Row(RowKind.NOTE, self._esc(move.describe())
                             + "; accepting it brings its commits' objects"))
                for commit in move.commits:
                    rows.add(Row(RowKind.HUNK, f"commit {commit.sha[:12]}  "
                                 + self._esc(f"{commit.author}  {commit.date}")))
                    for line in commit.message.splitlines():
                        rows.add(Row(RowKind.CONTEXT, "    " + self._esc(line)))
                    for path, added, removed in commit.files:
                        counts = "binary" if added is None else f"+{added} -{removed or 0}"
                        rows.add(Row(RowKind.INFO, f"    {self._esc(path)}  {counts}"))
                    patch = commit_patch(self.upper.root, self.lower.root, commit.sha)
                    for raw in patch.splitlines():
                        kind = _PATCH_KIND.get(raw[:1], RowKind.CONTEXT)
                        if raw.startswith((b"diff --git", b"@@")):
                            kind = RowKind.HUNK
                        rows.add(Row(kind, esc_line(raw, ascii_only=self.ascii_only)))

    def _header(self, item: Item) -> str:
        c = item.change
        kind = c.kind.value.replace("_", " ")
        types = _side(c.new_type or c.old_type)
        if c.kind is ChangeKind.TYPE_CHANGED:
            types = f"{_side(c.old_type)} -> {_side(c.new_type)}"
        counts = "" if c.added_lines is None else f"  +{c.added_lines} -{c.removed_lines or 0}"
        return f"{self._esc(c.path)}  ({kind}, {types}){counts}"

    def _hunked(self, c: Change, rows: Rows) -> Detail:
        diff = self.text_diff(c)
        for h in diff.hunks:
            rows.add(Row(RowKind.HUNK, h.header + f"  (hunk {h.index + 1} of "
                         f"{len(diff.hunks)})", h.index))
            for seg in h.segments:
                rows.add_segment(seg, h.index)
        mode_part: int | None = None
        if (c.old_mode or 0) & 0o7777 != (c.new_mode or 0) & 0o7777:
            mode_part = len(diff.hunks)
            rows.add(Row(RowKind.MODE, f"mode {_mode(c.old_mode)} -> {_mode(c.new_mode)}"
                         + ("  (makes it executable)" if c.executable_added else ""),
                         mode_part))
        parts = len(diff.hunks) + (mode_part is not None)
        return Detail(rows, max(1, parts), diff, mode_part)

    def _whole(self, c: Change, rows: Rows) -> None:
        if c.old_mode is not None and c.new_mode is not None and (
                c.old_mode & 0o7777 != c.new_mode & 0o7777):
            rows.add(Row(RowKind.MODE, f"mode {_mode(c.old_mode)} -> {_mode(c.new_mode)}"))
        if c.kind is ChangeKind.MODE_CHANGED:
            return
        old = self._file(c, c.old_type, self.lower)
        new = self._file(c, c.new_type, self.upper) if c.kind is not ChangeKind.DELETED else None
        old_text = c.old_type is None or isinstance(old, bytes)
        new_text = c.kind is ChangeKind.DELETED or c.new_type is None or isinstance(new, bytes)
        if old_text and new_text and (isinstance(old, bytes) or isinstance(new, bytes)):
            # Text on both sides (or text and nothing): one diff, as `sandbox diff` shows it.
            old_b = old if isinstance(old, bytes) else b""
            new_b = new if isinstance(new, bytes) else b""
            self._segments(text_diff(old_b, new_b), rows, headers=True)
            if not old_b and not new_b:
                rows.add(Row(RowKind.INFO, "(empty file)"))
            return
        self._describe("-", c.old_type, c, self.lower, old, rows)
        if c.kind is not ChangeKind.DELETED:
            self._describe("+", c.new_type, c, self.upper, new, rows)

    @staticmethod
    def _segments(diff: TextDiff, rows: Rows, *, headers: bool) -> None:
        for h in diff.hunks:
            if headers:
                rows.add(Row(RowKind.HUNK, h.header))
            for seg in h.segments:
                rows.add_segment(seg, None)

    def _file(self, c: Change, ftype: FileType | None, tree: Tree) -> bytes | str | None:
        """A regular file's text, or a description of it (binary, huge, gone); None when
        that side is not a regular file."""
        if ftype is not FileType.FILE:
            return None
        st = tree.lstat(c.path)
        if st is None or not stat.S_ISREG(st.st_mode):
            return "(the file is gone)"
        if st.st_size > MAX_SHOWN:
            return f"file of {st.st_size} bytes (too large to show here; see `sandbox diff`)"
        data = tree.read(c.path)
        if b"\0" in data[:8000]:
            return f"binary file: {describe_binary(data)}"
        return data

    def _describe(self, sign: str, ftype: FileType | None, c: Change, tree: Tree,
                  file: bytes | str | None, rows: Rows) -> None:
        kind = RowKind.ADD if sign == "+" else RowKind.DEL
        match ftype:
            case None:
                return
            case FileType.DIR:
                rows.add(Row(RowKind.INFO, "new directory" if sign == "+"
                             else "removed directory"))
            case FileType.SYMLINK:
                rows.add(Row(kind, f"{sign}symlink -> " + self._esc(tree.readlink(c.path))))
            case FileType.FILE:
                if isinstance(file, str):
                    rows.add(Row(kind, f"{sign}{file}"))
                    return
                data = file or b""
                text = text_diff(b"", data) if sign == "+" else text_diff(data, b"")
                self._segments(text, rows, headers=False)
            case FileType.FIFO | FileType.SOCKET | FileType.CHARDEV | FileType.BLOCKDEV:
                rows.add(Row(RowKind.NOTE, f"{sign}{ftype.value} (never committed)"))
            case _:
                assert_never(ftype)
