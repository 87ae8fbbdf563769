"""What the reviewer sees of one change: rows of escaped text, each tagged with its part.

Contents are read through the symlink-proof `Tree` from the pending upper dir (new side) and
the workspace (old side). Nothing read here reaches the screen unescaped: rows hold display
text only, and binary content is summarised (size, type, sha256), never shown.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import assert_never

from sandbox.fs import Change, ChangeKind, FileType
from sandbox.review._hunks import NO_NEWLINE, TextDiff, text_diff
from sandbox.review._io import Tree
from sandbox.review._model import Item, hunkable
from sandbox.review._safe import describe_binary, esc, esc_line

__all__ = ["Detail", "Loader", "Row", "RowKind"]

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


@dataclass(frozen=True)
class Detail:
    rows: tuple[Row, ...]
    parts: int  # 1, or hunks (+1 for a mode change) for a hunked file
    diff: TextDiff | None = None
    mode_part: int | None = None  # the part index of the mode change, if it is one

    def part_starts(self) -> tuple[int, ...]:
        """Row index of the first row of each part."""
        starts: dict[int, int] = {}
        for n, row in enumerate(self.rows):
            if row.part is not None and row.part not in starts:
                starts[row.part] = n
        return tuple(starts[p] for p in sorted(starts))


def _mode(mode: int | None) -> str:
    return "-" if mode is None else f"{mode & 0o7777:04o}"


def _side(ftype: FileType | None) -> str:
    return "nothing" if ftype is None else ftype.value


class Loader:
    """Reads both sides of a change; `ascii_only` for terminals without UTF-8."""

    def __init__(self, upper: Path, lower: Path, *, ascii_only: bool = False) -> None:
        self.upper, self.lower = Tree(upper), Tree(lower)
        self.ascii_only = ascii_only

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
        rows: list[Row] = [Row(RowKind.INFO, self._header(item))]
        if item.forbidden:
            rows.append(Row(RowKind.NOTE, "FORBIDDEN, never committed: "
                            + self._esc(item.verdict.reason)))
        elif item.protected:
            rows.append(Row(RowKind.NOTE, "protected: " + self._esc(item.verdict.reason)
                            + "; accept it on its own (y), bulk accept skips it"))
        if c.setid:
            rows.append(Row(RowKind.NOTE, "sets setuid/setgid"))
        if hunkable(c):
            return self._hunked(c, rows)
        rows += self._whole(c)
        return Detail(tuple(rows), 1)

    def _header(self, item: Item) -> str:
        c = item.change
        kind = c.kind.value.replace("_", " ")
        types = _side(c.new_type or c.old_type)
        if c.kind is ChangeKind.TYPE_CHANGED:
            types = f"{_side(c.old_type)} -> {_side(c.new_type)}"
        counts = "" if c.added_lines is None else f"  +{c.added_lines} -{c.removed_lines or 0}"
        return f"{self._esc(c.path)}  ({kind}, {types}){counts}"

    def _hunked(self, c: Change, rows: list[Row]) -> Detail:
        diff = self.text_diff(c)
        for h in diff.hunks:
            rows.append(Row(RowKind.HUNK, h.header + f"  (hunk {h.index + 1} of "
                            f"{len(diff.hunks)})", h.index))
            rows += self._lines(h.lines, h.index)
        mode_part: int | None = None
        if (c.old_mode or 0) & 0o7777 != (c.new_mode or 0) & 0o7777:
            mode_part = len(diff.hunks)
            rows.append(Row(RowKind.MODE, f"mode {_mode(c.old_mode)} -> {_mode(c.new_mode)}"
                            + ("  (makes it executable)" if c.executable_added else ""),
                            mode_part))
        parts = len(diff.hunks) + (mode_part is not None)
        return Detail(tuple(rows), max(1, parts), diff, mode_part)

    def _lines(self, lines: tuple[tuple[str, bytes], ...], part: int | None) -> list[Row]:
        kinds = {" ": RowKind.CONTEXT, "-": RowKind.DEL, "+": RowKind.ADD}
        out: list[Row] = []
        for sign, raw in lines:
            out.append(Row(kinds[sign], sign + esc_line(raw, ascii_only=self.ascii_only), part))
            if not raw.endswith(b"\n"):
                out.append(Row(RowKind.INFO, NO_NEWLINE, part))
        return out

    def _whole(self, c: Change) -> list[Row]:
        rows: list[Row] = []
        if c.old_mode is not None and c.new_mode is not None and (
                c.old_mode & 0o7777 != c.new_mode & 0o7777):
            rows.append(Row(RowKind.MODE, f"mode {_mode(c.old_mode)} -> {_mode(c.new_mode)}"))
        if c.kind is ChangeKind.MODE_CHANGED:
            return rows
        old = self._file(c, c.old_type, self.lower)
        new = self._file(c, c.new_type, self.upper) if c.kind is not ChangeKind.DELETED else None
        old_text = c.old_type is None or isinstance(old, bytes)
        new_text = c.kind is ChangeKind.DELETED or c.new_type is None or isinstance(new, bytes)
        if old_text and new_text and (isinstance(old, bytes) or isinstance(new, bytes)):
            # Text on both sides (or text and nothing): one diff, as `sandbox diff` shows it.
            old_b = old if isinstance(old, bytes) else b""
            new_b = new if isinstance(new, bytes) else b""
            for h in text_diff(old_b, new_b).hunks:
                rows.append(Row(RowKind.HUNK, h.header))
                rows += self._lines(h.lines, None)
            if not old_b and not new_b:
                rows.append(Row(RowKind.INFO, "(empty file)"))
            return rows
        rows += self._describe("-", c.old_type, c, self.lower, old)
        if c.kind is not ChangeKind.DELETED:
            rows += self._describe("+", c.new_type, c, self.upper, new)
        return rows

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
                  file: bytes | str | None) -> list[Row]:
        kind = RowKind.ADD if sign == "+" else RowKind.DEL
        match ftype:
            case None:
                return []
            case FileType.DIR:
                return [Row(RowKind.INFO, "new directory" if sign == "+" else "removed directory")]
            case FileType.SYMLINK:
                return [Row(kind, f"{sign}symlink -> " + self._esc(tree.readlink(c.path)))]
            case FileType.FILE:
                if isinstance(file, str):
                    return [Row(kind, f"{sign}{file}")]
                text = text_diff(b"", file or b"") if sign == "+" else text_diff(file or b"", b"")
                return [row for h in text.hunks for row in self._lines(h.lines, None)]
            case FileType.FIFO | FileType.SOCKET | FileType.CHARDEV | FileType.BLOCKDEV:
                return [Row(RowKind.NOTE, f"{sign}{ftype.value} (never committed)")]
            case _:
                assert_never(ftype)
