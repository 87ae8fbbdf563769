"""The file view's screen lines: a change's rows wrapped to the screen width, one screen at a
time. A position is (row, piece of that row); moving and drawing touch only the rows on the way,
so scrolling a million-line change costs what a screen of it costs, whatever the key."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sandbox.review._detail import Row, RowKind
from sandbox.review._safe import wrap_cells

__all__ = ["Layout", "Pos", "Visual"]

Pos = tuple[int, int]
_KEEP = 4096  # wrapped rows remembered (a few screens either way)


@dataclass(frozen=True)
class Visual:
    """One screen line: a piece of a row."""

    text: str
    kind: RowKind
    part: int | None
    continued: bool


class Layout:
    def __init__(self, rows: Sequence[Row], width: int, *, cont: str) -> None:
        self.rows, self.width, self._cont = rows, width, cont
        self._wrapped: dict[int, list[str]] = {}

    def _pieces(self, r: int) -> list[str]:
        got = self._wrapped.get(r)
        if got is None:
            if len(self._wrapped) >= _KEEP:
                self._wrapped.clear()
            got = self._wrapped[r] = wrap_cells(self.rows[r].text, self.width) or [""]
        return got

    def last(self) -> Pos:
        if not self.rows:
            return (0, 0)
        r = len(self.rows) - 1
        return (r, len(self._pieces(r)) - 1)

    def _next(self, pos: Pos) -> Pos | None:
        r, k = pos
        if k + 1 < len(self._pieces(r)):
            return (r, k + 1)
        return (r + 1, 0) if r + 1 < len(self.rows) else None

    def _prev(self, pos: Pos) -> Pos | None:
        r, k = pos
        if k > 0:
            return (r, k - 1)
        return (r - 1, len(self._pieces(r - 1)) - 1) if r > 0 else None

    def forward(self, pos: Pos, n: int) -> Pos:
        for _ in range(n):
            nxt = self._next(pos)
            if nxt is None:
                break
            pos = nxt
        return pos

    def back(self, pos: Pos, n: int) -> Pos:
        for _ in range(n):
            prv = self._prev(pos)
            if prv is None:
                break
            pos = prv
        return pos

    def clamp(self, pos: Pos, view: int) -> Pos:
        """`pos`, or the top of the last screen if fewer than `view` lines follow it."""
        if not self.rows:
            return (0, 0)
        r, k = min(pos, self.last())
        pos = (r, min(k, len(self._pieces(r)) - 1))
        end = self.back(self.last(), view - 1)
        return min(pos, end)

    def lines(self, pos: Pos, n: int) -> list[Visual]:
        out: list[Visual] = []
        cur: Pos | None = pos if self.rows else None
        while cur is not None and len(out) < n:
            r, k = cur
            row = self.rows[r]
            piece = self._pieces(r)[k]
            out.append(Visual(piece if k == 0 else self._cont + piece, row.kind, row.part,
                              k > 0))
            cur = self._next(cur)
        return out
