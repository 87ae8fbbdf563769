"""Hunks of a text change, and building the content that results from accepting some of them.

The hunks are exactly those of `sandbox diff` (same opcodes, same 3-line context grouping), so
"hunk 2" in the review screen is the second `@@` of the patch. Each changed region (a
non-equal opcode) belongs to exactly one hunk; accepting a set of hunks takes the new lines of
their regions and the old lines everywhere else, so the result never depends on how the
regions would be re-diffed, and what is left (accepted result vs. new) is exactly the other
hunks' regions.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property

# The same line diff `render_patch` uses (kept in one place so hunks agree with the patch).
from sandbox.fs import grouped, line_diff

__all__ = ["CONTEXT", "Hunk", "Segment", "TextDiff", "text_diff"]

CONTEXT = 3
NO_NEWLINE = "\\ No newline at end of file"

Opcode = tuple[str, int, int, int, int]


def _range(start: int, length: int) -> str:
    # git's unified ranges: 1-based start, length omitted when 1, start-1 when empty.
    if length == 1:
        return f"{start + 1}"
    if length == 0:
        return f"{start},0"
    return f"{start + 1},{length}"


@dataclass(frozen=True)
class Segment:
    """A run of lines of one sign in a hunk: `lines[start:end]` of one side (no copy), and
    whether its last line lacks a newline (the row "\\ No newline at end of file" follows)."""

    sign: str  # " ", "-" or "+"
    lines: Sequence[bytes] = field(repr=False, compare=False)
    start: int
    end: int
    no_newline: bool

    def __len__(self) -> int:
        return self.end - self.start + self.no_newline


@dataclass(frozen=True)
class Hunk:
    """One `@@` block: where it sits, its segments of lines, and the changed regions it owns as
    (old_start, old_end, new_start, new_end). Lines are sliced from the sides on demand, so a
    hunk of a million lines costs nothing until a screen of it is drawn."""

    index: int
    old_start: int
    old_len: int
    new_start: int
    new_len: int
    segments: tuple[Segment, ...]
    regions: tuple[tuple[int, int, int, int], ...]

    @property
    def header(self) -> str:
        return (f"@@ -{_range(self.old_start, self.old_len)} "
                f"+{_range(self.new_start, self.new_len)} @@")

    @cached_property
    def lines(self) -> tuple[tuple[str, bytes], ...]:
        """Every line as (sign, raw line): materialised, for small hunks and tests."""
        return tuple((s.sign, line) for s in self.segments
                     for line in s.lines[s.start:s.end])

    @property
    def added(self) -> int:
        return sum(j2 - j1 for _, _, j1, j2 in self.regions)

    @property
    def removed(self) -> int:
        return sum(i2 - i1 for i1, i2, _, _ in self.regions)


@dataclass(frozen=True)
class TextDiff:
    old: Sequence[bytes] = field(repr=False)
    new: Sequence[bytes] = field(repr=False)
    hunks: tuple[Hunk, ...]

    def apply(self, accepted: Collection[int]) -> bytes:
        """The content with the hunks numbered in `accepted` applied, the others not."""
        chosen = {region for h in self.hunks if h.index in accepted for region in h.regions}
        regions = sorted(region for h in self.hunks for region in h.regions)
        out: list[bytes] = []
        pos = 0
        for region in regions:
            i1, i2, j1, j2 = region
            out.extend(self.old[pos:i1])
            out.extend(self.new[j1:j2] if region in chosen else self.old[i1:i2])
            pos = i2
        out.extend(self.old[pos:])
        return b"".join(out)


def _segments(group: list[Opcode], a: Sequence[bytes], b: Sequence[bytes]) -> Iterator[Segment]:
    def seg(sign: str, side: Sequence[bytes], lo: int, hi: int) -> Segment:
        last = hi == len(side) and hi > lo and not side[hi - 1].endswith(b"\n")
        return Segment(sign, side, lo, hi, last)

    for tag, i1, i2, j1, j2 in group:
        if tag == "equal":
            yield seg(" ", a, i1, i2)
            continue
        if i2 > i1:
            yield seg("-", a, i1, i2)
        if j2 > j1:
            yield seg("+", b, j1, j2)


def text_diff(old: bytes, new: bytes, *, context: int = CONTEXT) -> TextDiff:
    d = line_diff(old, new)
    a, b = d.a, d.b
    hunks: list[Hunk] = []
    for group in grouped(d.ops, context):
        i1, i2 = group[0][1], group[-1][2]
        j1, j2 = group[0][3], group[-1][4]
        regions = tuple((ai1, ai2, bj1, bj2) for tag, ai1, ai2, bj1, bj2 in group
                        if tag != "equal")
        hunks.append(Hunk(len(hunks), i1, i2 - i1, j1, j2 - j1,
                          tuple(_segments(group, a, b)), regions))
    return TextDiff(a, b, tuple(hunks))
