"""The head sidecar's model: what the last record should be (on every append's path, so
kept apart from the verification walk in _verify)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from sandbox.audit._record import GENESIS, AuditRecord

__all__ = ["EMPTY_HEAD", "Head", "HeadState", "check_head"]


@dataclass(frozen=True)
class Head:
    """What the sidecar says the last record is."""

    seq: int
    hash: str


EMPTY_HEAD = Head(0, GENESIS)


class HeadState(StrEnum):
    MATCH = "match"
    # The sidecar names an earlier record of this log: the process died between appending and
    # updating the sidecar, or the machine lost power before the sidecar's write reached the disk
    # (it is not fsync'd: the log is, before any append returns). The next append repairs it.
    # A log cut short is never this: its end is before what the sidecar names.
    LAGS = "lags"
    MISMATCH = "mismatch"


def check_head(head: Head | None, last: AuditRecord | None,
               hash_at: Callable[[int], str | None]) -> HeadState:
    """Compare the sidecar with the log's last record; `hash_at(seq)` reads an earlier record's
    hash from the log (only called when the sidecar lags by more than one record)."""
    h = EMPTY_HEAD if head is None else head
    if last is None:
        return HeadState.MATCH if h == EMPTY_HEAD else HeadState.MISMATCH
    if (h.seq, h.hash) == (last.seq, last.hash):
        return HeadState.MATCH
    if h.seq == last.seq - 1 and h.hash == last.prev:
        return HeadState.LAGS
    # A missing sidecar beside records stays a mismatch (deleted?): the first append writes it.
    if head is not None and 1 <= h.seq < last.seq and hash_at(h.seq) == h.hash:
        return HeadState.LAGS
    return HeadState.MISMATCH
