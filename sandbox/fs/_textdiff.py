"""Line diffs over bytes: git's binary heuristic, opcodes, +/- counts, grouped hunks."""

from __future__ import annotations

import codecs
import difflib
import re
from collections.abc import Iterator, Sequence

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
    # bytes.splitlines also splits on \r, \v, \f, \x1c..; git splits on \n only.
    if not data:
        return []
    parts = data.split(b"\n")
    lines = [p + b"\n" for p in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def opcodes(a: Sequence[bytes], b: Sequence[bytes]) -> list[Opcode]:
    """difflib opcodes, after trimming the common head and tail (cheap, and the usual case)."""
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
        # autojunk would treat frequent lines ("}", blank) as junk and give odd hunks on small
        # files; on huge middles it keeps the matcher from going quadratic.
        junk = len(mid_a) + len(mid_b) > 40_000
        matcher = difflib.SequenceMatcher(None, mid_a, mid_b, autojunk=junk)
        for tag, i1, i2, j1, j2 in matcher.get_opcodes():
            out.append((tag, i1 + head, i2 + head, j1 + head, j2 + head))
    if tail:
        out.append(("equal", len(a) - tail, len(a), len(b) - tail, len(b)))
    return _merge_equal(out)


def _merge_equal(ops: list[Opcode]) -> list[Opcode]:
    merged: list[Opcode] = []
    for op in ops:
        if merged and merged[-1][0] == op[0] == "equal":
            prev = merged[-1]
            merged[-1] = ("equal", prev[1], op[2], prev[3], op[4])
        else:
            merged.append(op)
    return merged


def line_counts(old: bytes, new: bytes) -> tuple[int, int]:
    """(added, removed) lines between two texts."""
    added = removed = 0
    for tag, i1, i2, j1, j2 in opcodes(lines_of(old), lines_of(new)):
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
