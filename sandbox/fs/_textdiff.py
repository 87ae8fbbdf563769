"""Line diffs over bytes: git's binary heuristic, opcodes, +/- counts, grouped hunks."""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

# git looks at the first 8000 bytes for a NUL to call a file binary; do the same so our
# line counts and patch format agree with what `git diff` would show.
BINARY_PROBE = 8000
# Above this size we neither count lines nor load both sides for an in-memory diff.
MAX_TEXT_DIFF = 32 * 1024 * 1024

Opcode = tuple[str, int, int, int, int]


def is_binary(data: bytes) -> bool:
    """git's heuristic (a NUL in the first 8000 bytes): decides the patch format only."""
    return b"\0" in data[:BINARY_PROBE]


# C0 controls but tab, LF, FF, CR; and DEL. C1 controls are checked on the decoded text.
_C0 = re.compile(rb"[\x00-\x08\x0b\x0e-\x1f\x7f]")
_C1 = re.compile("[\x80-\x9f]")


def looks_binary(data: bytes, *, complete: bool = True) -> bool:
    """What a reviewer would call binary (the changeset's `binary`: the `[review.auto]
    binaries` rule and the review marks): not valid UTF-8, or holding control characters other
    than tab, newline, carriage return and form feed. A NUL test alone lets 4,000 random
    non-zero bytes pass as a text change. `complete=False`: `data` is a file's head, which may
    end inside a character."""
    if _C0.search(data):
        return True
    try:
        text = codecs.getincrementaldecoder("utf-8")().decode(data, final=complete)
    except UnicodeDecodeError:
        return True
    return _C1.search(text) is not None


def lines_of(data: bytes) -> list[bytes]:
    # git splits on \n only; bytes.splitlines also splits on \r (and \r\n), so it is only the
    # fast path (one C pass) for text without \r.
    if not data:
        return []
    if b"\r" not in data:
        return data.splitlines(keepends=True)
    parts = data.split(b"\n")
    lines = [p + b"\n" for p in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


# Above this many lines in a changed middle, difflib's matcher (quadratic in the worst case,
# seconds per million lines at best) gives way to git's own line diff (libgit2's xdiff).
XDIFF_ABOVE = 10_000


def opcodes(a: Sequence[bytes], b: Sequence[bytes]) -> list[Opcode]:
    """difflib opcodes, after trimming the common head and tail (cheap, and the usual case);
    a huge middle is diffed by libgit2 instead (see `_xdiff`)."""
    head = 0
    limit = min(len(a), len(b))
    while head < limit and a[head] == b[head]:
        head += 1
    tail = 0
    while tail < limit - head and a[len(a) - 1 - tail] == b[len(b) - 1 - tail]:
        tail += 1
    mid_a = a[head : len(a) - tail]
    mid_b = b[head : len(b) - tail]
    out: list[Opcode] = []
    if head:
        out.append(("equal", 0, head, 0, head))
    if mid_a or mid_b:
        ops: Sequence[Opcode]
        if not mid_a or not mid_b:  # a pure insertion or deletion: what difflib would say
            ops = [("insert", 0, 0, 0, len(mid_b))] if mid_b else [("delete", 0, len(mid_a), 0, 0)]
        elif len(mid_a) + len(mid_b) > XDIFF_ABOVE:
            ops = _xdiff(b"".join(mid_a), b"".join(mid_b), len(mid_a), len(mid_b))
        else:
            # autojunk would treat frequent lines ("}", blank) as junk and give odd hunks.
            import difflib  # only for a changed middle: a run with no edits never needs it

            ops = difflib.SequenceMatcher(None, mid_a, mid_b, autojunk=False).get_opcodes()
        out += [(tag, i1 + head, i2 + head, j1 + head, j2 + head) for tag, i1, i2, j1, j2 in ops]
    if tail:
        out.append(("equal", len(a) - tail, len(a), len(b) - tail, len(b)))
    return _merge_equal(out)


def _xdiff(old: bytes, new: bytes, len_a: int, len_b: int) -> list[Opcode]:
    """Opcodes from git's line diff (libgit2, in C: a million changed lines in well under a
    second, where difflib takes many). Lines split on \\n only, as ours do."""
    import pygit2  # only huge changes pay for the import

    patch = pygit2.Patch.create_from(old, new, context_lines=0, interhunk_lines=0)
    out: list[Opcode] = []
    i = j = 0
    for h in patch.hunks:
        # git's ranges are 1-based; an empty side names the line before it.
        i1 = h.old_start - 1 if h.old_lines else h.old_start
        j1 = h.new_start - 1 if h.new_lines else h.new_start
        if i1 > i:
            out.append(("equal", i, i1, j, j1))
        tag = "replace" if h.old_lines and h.new_lines else "delete" if h.old_lines else "insert"
        i, j = i1 + h.old_lines, j1 + h.new_lines
        out.append((tag, i1, i, j1, j))
    if i < len_a:
        out.append(("equal", i, len_a, j, len_b))
    return out


def _merge_equal(ops: list[Opcode]) -> list[Opcode]:
    merged: list[Opcode] = []
    for op in ops:
        if merged and merged[-1][0] == op[0] == "equal":
            prev = merged[-1]
            merged[-1] = ("equal", prev[1], op[2], prev[3], op[4])
        else:
            merged.append(op)
    return merged


@dataclass(frozen=True)
class LineDiff:
    """Both sides split into lines, and the opcodes turning `a` into `b`."""

    a: list[bytes]
    b: list[bytes]
    ops: list[Opcode]


# The diffs of the last few big changes, so the run summary's line counts, `sandbox diff` and
# the review screen diff a million-line file once per process, not once each.
_CACHE_ABOVE = 1 << 20
_CACHE_SIZE = 3
_cache: dict[tuple[int, int, int, int], tuple[bytes, bytes, LineDiff]] = {}


def line_diff(old: bytes, new: bytes) -> LineDiff:
    big = len(old) + len(new) > _CACHE_ABOVE
    key = (hash(old), hash(new), len(old), len(new))
    if big:
        hit = _cache.get(key)
        if hit is not None and hit[0] == old and hit[1] == new:
            return hit[2]
    a, b = lines_of(old), lines_of(new)
    # A big pair goes to libgit2 whole (it trims the common ends itself): no re-joining.
    d = LineDiff(a, b, _merge_equal(_xdiff(old, new, len(a), len(b))) if big and a and b
                 else opcodes(a, b))
    if big:
        if len(_cache) >= _CACHE_SIZE:
            del _cache[next(iter(_cache))]
        _cache[key] = (old, new, d)
    return d


def line_counts(old: bytes, new: bytes) -> tuple[int, int]:
    """(added, removed) lines between two texts."""
    added = removed = 0
    for tag, i1, i2, j1, j2 in line_diff(old, new).ops:
        if tag != "equal":
            removed += i2 - i1
            added += j2 - j1
    return added, removed


def grouped(ops: list[Opcode], context: int = 3) -> Iterator[list[Opcode]]:
    """Hunks with `context` lines around changes (difflib's get_grouped_opcodes, on our ops)."""
    if not ops:
        return
    codes = list(ops)
    if codes[0][0] == "equal":
        tag, i1, i2, j1, j2 = codes[0]
        codes[0] = tag, max(i1, i2 - context), i2, max(j1, j2 - context), j2
    if codes[-1][0] == "equal":
        tag, i1, i2, j1, j2 = codes[-1]
        codes[-1] = tag, i1, min(i2, i1 + context), j1, min(j2, j1 + context)
    span = context + context
    group: list[Opcode] = []
    for tag, i1, i2, j1, j2 in codes:
        if tag == "equal" and i2 - i1 > span:
            group.append((tag, i1, min(i2, i1 + context), j1, min(j2, j1 + context)))
            yield group
            group = []
            i1, j1 = max(i1, i2 - context), max(j1, j2 - context)
        group.append((tag, i1, i2, j1, j2))
    if group and not (len(group) == 1 and group[0][0] == "equal"):
        yield group
