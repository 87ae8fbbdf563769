"""Render a ChangeSet as a git patch that `git apply` accepts byte-exactly, and a diffstat.

Follows what `git diff --binary --full-index` emits: path quoting (core.quotePath), mode
headers, symlinks as mode 120000, `GIT binary patch` literals (zlib + git's base85) in both
directions, and "\\ No newline at end of file". Directories are not content in git, and
devices/fifos/sockets cannot be expressed, so those changes produce no section.
"""

from __future__ import annotations

import base64
import hashlib
import os
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from sandbox.fs import _base
from sandbox.fs._base import Seen
from sandbox.fs._changeset import Change, ChangeKind, ChangeSet, FileType
from sandbox.fs._diff import read_bytes
from sandbox.fs._textdiff import grouped, is_binary, line_diff

_NULL_SHA = b"0" * 40
_ESCAPES = {7: b"\\a", 8: b"\\b", 9: b"\\t", 10: b"\\n", 11: b"\\v", 12: b"\\f", 13: b"\\r"}
_NO_NEWLINE = b"\\ No newline at end of file\n"


@dataclass(frozen=True)
class _Side:
    """One side of a file section: git mode and content (None = absent)."""

    mode: int
    data: bytes


def git_quote(name: bytes) -> bytes:
    """git's quote_c_style with core.quotePath=true: quote only when needed."""
    if not any(b < 0x20 or b in (0x22, 0x5C) or b >= 0x7F for b in name):
        return name
    out = bytearray(b'"')
    for b in name:
        if b in _ESCAPES:
            out += _ESCAPES[b]
        elif b in (0x22, 0x5C):
            out += b"\\" + bytes([b])
        elif b < 0x20 or b >= 0x7F:
            out += b"\\%03o" % b
        else:
            out.append(b)
    out += b'"'
    return bytes(out)


def blob_sha(data: bytes) -> bytes:
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest().encode()


def _base85_lines(data: bytes) -> bytes:
    out = bytearray()
    for i in range(0, len(data), 52):
        chunk = data[i : i + 52]
        n = len(chunk)
        out.append(ord("A") + n - 1 if n <= 26 else ord("a") + n - 27)
        out += base64.b85encode(chunk, pad=True)
        out += b"\n"
    return bytes(out)


def _binary_literal(data: bytes) -> bytes:
    return b"literal %d\n" % len(data) + _base85_lines(zlib.compress(data)) + b"\n"


def _hunk_range(start: int, length: int) -> bytes:
    if length == 1:
        return b"%d" % (start + 1)
    if length == 0:
        return b"%d,0" % start
    return b"%d,%d" % (start + 1, length)


def _emit_line(prefix: bytes, line: bytes) -> bytes:
    if line.endswith(b"\n"):
        return prefix + line
    return prefix + line + b"\n" + _NO_NEWLINE


_CHUNK = 1 << 16  # a streamed patch is written in pieces of about this size


def _text_hunks(old: bytes, new: bytes) -> Iterator[bytes]:
    """The `@@` hunks, in pieces: a million-line hunk streams instead of being built whole."""
    d = line_diff(old, new)
    a, b = d.a, d.b
    out = bytearray()
    for group in grouped(d.ops, 3):
        i1, i2 = group[0][1], group[-1][2]
        j1, j2 = group[0][3], group[-1][4]
        out += b"@@ -" + _hunk_range(i1, i2 - i1) + b" +" + _hunk_range(j1, j2 - j1) + b" @@\n"
        for tag, ai1, ai2, bj1, bj2 in group:
            runs = [(b" ", a[ai1:ai2])] if tag == "equal" else [(b"-", a[ai1:ai2]),
                                                                 (b"+", b[bj1:bj2])]
            for sign, lines in runs:
                for line in lines:
                    out += _emit_line(sign, line)
                    if len(out) >= _CHUNK:
                        yield bytes(out)
                        out.clear()
    if out:
        yield bytes(out)


def _section(path: bytes, old: _Side | None, new: _Side | None) -> Iterator[bytes]:
    """One `diff --git` section; old/new None mean the file is created/deleted."""
    a_name, b_name = git_quote(b"a/" + path), git_quote(b"b/" + path)
    tab = b"\t" if b" " in path else b""
    out = bytearray(b"diff --git " + a_name + b" " + b_name + b"\n")
    old_data = old.data if old else b""
    new_data = new.data if new else b""
    if old is None and new is not None:
        out += b"new file mode %o\n" % new.mode
    elif new is None and old is not None:
        out += b"deleted file mode %o\n" % old.mode
    elif old is not None and new is not None and old.mode != new.mode:
        out += b"old mode %o\nnew mode %o\n" % (old.mode, new.mode)
    if old is not None and new is not None and old_data == new_data:
        yield bytes(out)  # mode-only change: no index line, no hunk
        return
    old_sha = blob_sha(old_data) if old else _NULL_SHA
    new_sha = blob_sha(new_data) if new else _NULL_SHA
    out += b"index " + old_sha + b".." + new_sha
    if old is not None and new is not None and old.mode == new.mode:
        out += b" %o" % old.mode
    out += b"\n"
    if is_binary(old_data) or is_binary(new_data):
        out += b"GIT binary patch\n" + _binary_literal(new_data) + _binary_literal(old_data)
        yield bytes(out)
        return
    if not old_data and not new_data:
        yield bytes(out)
        return
    out += b"--- " + (a_name + tab if old else b"/dev/null") + b"\n"
    out += b"+++ " + (b_name + tab if new else b"/dev/null") + b"\n"
    yield bytes(out)
    yield from _text_hunks(old_data, new_data)


def _read_side(root: Path, rel: str, ftype: FileType | None, mode: int | None) -> _Side | None:
    if ftype is None or mode is None:
        return None
    git_mode = ftype.git_mode(mode)
    if git_mode is None:
        return None
    path = os.path.join(root, rel)
    match ftype:
        case FileType.SYMLINK:
            return _Side(git_mode, os.fsencode(os.readlink(path)))
        case FileType.FILE:
            return _Side(git_mode, read_bytes(path))
        case _:
            return None


def _render_change(change: Change, upper: Path, lower: Path) -> Iterator[bytes]:
    old = _read_side(lower, change.path, change.old_type, change.old_mode)
    if change.kind is ChangeKind.DELETED:
        if old:
            yield from _section(os.fsencode(change.path), old, None)
        return
    yield from _pair(change.path, old, _read_side(upper, change.path, change.new_type,
                                                  change.new_mode))


def _pair(rel: str, old: _Side | None, new: _Side | None) -> Iterator[bytes]:
    path = os.fsencode(rel)
    if old is None and new is None:
        return
    if old is not None and new is not None and old.mode >> 12 != new.mode >> 12:
        # file <-> symlink: git shows a deletion then a creation of the same path
        yield from _section(path, old, None)
        yield from _section(path, None, new)
        return
    if old is not None and new is not None and old == new:
        return  # e.g. 0644 -> 0600: invisible to git
    yield from _section(path, old, new)


@dataclass(frozen=True)
class Conflicted:
    """A change where the workspace moved since the session saw it, shown from both sides."""

    path: str
    reason: str
    theirs: bytes  # the workspace's change since the session saw the path (a patch section)
    base_kept: bool  # False: what the session saw is not kept; `ours` is against the workspace


def render_patch(cs: ChangeSet, *, upper: Path, lower: Path, paths: Sequence[str] | None = None,
                 session_dir: Path | None = None,
                 conflicted: list[Conflicted] | None = None) -> bytes:
    """A patch of the session's changes, for `git apply` on the workspace it saw.

    A file deleted at one path and added with the same bytes at another is a rename, shown
    as git shows one (`rename from`/`rename to`, similarity 100%). With the `session_dir`,
    a change where the workspace moved since the session saw it is shown against what the
    session saw (never presenting a person's edit as the session's); the workspace's own
    change there is appended to `conflicted`, for the caller to show beside it."""
    return b"".join(iter_patch(cs, upper=upper, lower=lower, paths=paths,
                               session_dir=session_dir, conflicted=conflicted))


def iter_patch(cs: ChangeSet, *, upper: Path, lower: Path, paths: Sequence[str] | None = None,
               session_dir: Path | None = None,
               conflicted: list[Conflicted] | None = None) -> Iterator[bytes]:
    """`render_patch` in pieces, as they are made (`sandbox diff` streams them);
    `conflicted` is complete once the pieces are."""
    chosen = cs.select(paths)
    bases = _base.load(session_dir) if session_dir is not None else None
    moves = renames([c for c in chosen if not c.conflict], upper=upper, lower=lower)
    gone = set(moves.values())
    for c in chosen:
        if c.path in gone:
            continue
        seen = bases.get(c.path) if bases is not None and c.conflict else None
        if seen is not None and session_dir is not None:
            theirs_side = _read_side(lower, c.path, c.old_type, c.old_mode)
            data = _base.seen_content(session_dir, seen)
            kept = seen.kind in (None, FileType.DIR) or data is not None
            base = _seen_side(seen, data) if kept else theirs_side
            new = None if c.kind is ChangeKind.DELETED else _read_side(
                upper, c.path, c.new_type, c.new_mode)
            yield from _pair(c.path, base, new)
            if conflicted is not None:
                conflicted.append(Conflicted(c.path, c.conflict or "", b"".join(_pair(
                    c.path, base, theirs_side)) if kept else b"", kept))
            continue
        src = moves.get(c.path)
        if src is None:
            yield from _render_change(c, upper, lower)
        else:
            yield _rename_section(cs.by_path(src), c)


def _seen_side(seen: Seen, data: bytes | None) -> _Side | None:
    if seen.kind is None or data is None:
        return None
    mode = seen.kind.git_mode(seen.mode)
    return None if mode is None else _Side(mode, data)


def renames(changes: Sequence[Change], *, upper: Path, lower: Path) -> dict[str, str]:
    """{added path: deleted path} for files that moved unchanged (same type and bytes)."""
    deleted: dict[tuple[FileType, int], list[Change]] = {}
    for c in changes:
        if c.kind is ChangeKind.DELETED and c.old_type in (FileType.FILE, FileType.SYMLINK):
            assert c.old_type is not None
            deleted.setdefault((c.old_type, c.old_size or 0), []).append(c)
    if not deleted:
        return {}
    out: dict[str, str] = {}
    for c in changes:
        if c.kind is not ChangeKind.ADDED or c.new_type is None:
            continue
        candidates = deleted.get((c.new_type, c.new_size or 0))
        if not candidates:
            continue
        new = _read_side(upper, c.path, c.new_type, c.new_mode)
        for d in candidates:
            old = _read_side(lower, d.path, d.old_type, d.old_mode)
            if new is not None and old is not None and old.data == new.data:
                out[c.path] = d.path
                candidates.remove(d)
                break
    return out


def _rename_section(old: Change | None, new: Change) -> bytes:
    assert old is not None and old.old_type is not None and new.new_type is not None
    a, b = os.fsencode(old.path), os.fsencode(new.path)
    out = bytearray(b"diff --git " + git_quote(b"a/" + a) + b" " + git_quote(b"b/" + b) + b"\n")
    old_mode = old.old_type.git_mode(old.old_mode or 0)
    new_mode = new.new_type.git_mode(new.new_mode or 0)
    if old_mode is not None and new_mode is not None and old_mode != new_mode:
        out += b"old mode %o\nnew mode %o\n" % (old_mode, new_mode)
    out += b"similarity index 100%\nrename from " + git_quote(a) + b"\nrename to " + git_quote(b)
    return bytes(out + b"\n")


def diffstat(cs: ChangeSet, *, paths: Sequence[str] | None = None, width: int = 80) -> str:
    """A `git diff --stat` style summary (directories are not listed, as in git)."""
    shown = [
        c
        for c in cs.select(paths)
        if c.kind is ChangeKind.TYPE_CHANGED or FileType.DIR not in (c.old_type, c.new_type)
    ]
    if not shown:
        return " 0 files changed\n"
    names = [os.fsdecode(git_quote(os.fsencode(c.path))) for c in shown]
    totals = [(c.added_lines or 0) + (c.removed_lines or 0) for c in shown]
    name_w = max(len(n) for n in names)
    num_w = max(len(str(t)) for t in totals)
    bar_w = max(10, width - name_w - num_w - 6)
    scale = min(1.0, bar_w / max(1, *totals))
    lines: list[str] = []
    for c, name, total in zip(shown, names, totals, strict=True):
        if c.binary:
            lines.append(f" {name:<{name_w}} | Bin {c.old_size or 0} -> {c.new_size or 0} bytes")
            continue
        plus, minus = round((c.added_lines or 0) * scale), round((c.removed_lines or 0) * scale)
        bar = "+" * plus + "-" * minus
        lines.append(f" {name:<{name_w}} | {total:>{num_w}} {bar}".rstrip())
    ins = sum(c.added_lines or 0 for c in shown)
    dels = sum(c.removed_lines or 0 for c in shown)
    summary = f" {len(shown)} file{'s' if len(shown) != 1 else ''} changed"
    if ins:
        summary += f", {ins} insertion{'s' if ins != 1 else ''}(+)"
    if dels:
        summary += f", {dels} deletion{'s' if dels != 1 else ''}(-)"
    return "\n".join([*lines, summary]) + "\n"
