"""Hunks of a text change, and building the content that results from accepting some of them.

The hunks are exactly those of `sandbox diff` (same opcodes, same 3-line context grouping), so
"hunk 2" in the review screen is the second `@@` of the patch. Each changed region (a
non-equal opcode) belongs to exactly one hunk; accepting a set of hunks takes the new lines of
their regions and the old lines everywhere else, so the result never depends on how the
regions would be re-diffed, and what is left (accepted result vs. new) is exactly the other
hunks' regions.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

# The same line diff `render_patch` uses (kept in one place so hunks agree with the patch).
from sandbox.fs import grouped, lines_of, opcodes

__all__ = ["CONTEXT", "Hunk", "TextDiff", "text_diff"]

CONTEXT = 3
NO_NEWLINE = "\\ No newline at end of file"


def _range(start: int, length: int) -> str:
    # git's unified ranges: 1-based start, length omitted when 1, start-1 when empty.
    if length == 1:
        return f"{start + 1}"
    if length == 0:
        return f"{start},0"
    return f"{start + 1},{length}"


@dataclass(frozen=True)
class Hunk:
    """One `@@` block: where it sits, its lines ((sign, raw line) with sign ' ', '-' or '+'),
    and the changed regions it owns as (old_start, old_end, new_start, new_end)."""

    index: int
    old_start: int
    old_len: int
    new_start: int
    new_len: int
    lines: tuple[tuple[str, bytes], ...]
    regions: tuple[tuple[int, int, int, int], ...]

    @property
    def header(self) -> str:
        return (f"@@ -{_range(self.old_start, self.old_len)} "
                f"+{_range(self.new_start, self.new_len)} @@")

    @property
    def added(self) -> int:
        return sum(1 for sign, _ in self.lines if sign == "+")

    @property
    def removed(self) -> int:
        return sum(1 for sign, _ in self.lines if sign == "-")


@dataclass(frozen=True)
class TextDiff:
    old: tuple[bytes, ...]
    new: tuple[bytes, ...]
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


def text_diff(old: bytes, new: bytes, *, context: int = CONTEXT) -> TextDiff:
    a, b = lines_of(old), lines_of(new)
    hunks: list[Hunk] = []
    for group in grouped(opcodes(a, b), context):
        i1, i2 = group[0][1], group[-1][2]
        j1, j2 = group[0][3], group[-1][4]
        lines: list[tuple[str, bytes]] = []
        regions: list[tuple[int, int, int, int]] = []
        for tag, ai1, ai2, bj1, bj2 in group:
            if tag == "equal":
                lines.extend((" ", line) for line in a[ai1:ai2])
                continue
            regions.append((ai1, ai2, bj1, bj2))
            lines.extend(("-", line) for line in a[ai1:ai2])
            lines.extend(("+", line) for line in b[bj1:bj2])
        hunks.append(Hunk(len(hunks), i1, i2 - i1, j1, j2 - j1, tuple(lines), tuple(regions)))
    return TextDiff(tuple(a), tuple(b), tuple(hunks))
