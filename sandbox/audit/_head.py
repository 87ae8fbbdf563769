"""The head sidecar's model: what the last record should be (on every append's path, so
kept apart from the verification walk in _verify)."""

from __future__ import annotations

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
    # The process died (or failed) between appending a record and updating the sidecar: the
    # one record past the head is legitimate and the next append brings the head up to date.
    LAGS_ONE = "lags-one"
    MISMATCH = "mismatch"


def check_head(head: Head | None, last: AuditRecord | None) -> HeadState:
    h = EMPTY_HEAD if head is None else head
    if last is None:
        return HeadState.MATCH if h == EMPTY_HEAD else HeadState.MISMATCH
    if (h.seq, h.hash) == (last.seq, last.hash):
        return HeadState.MATCH
    if h.seq == last.seq - 1 and h.hash == last.prev:
        return HeadState.LAGS_ONE
    return HeadState.MISMATCH
