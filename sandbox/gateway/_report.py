"""`gateway usage`: LLM calls summed from the audit log (the one record of every call)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from sandbox.audit import AuditEvent, AuditRecord

__all__ = ["By", "UsageRow", "summarize", "total"]


class By(StrEnum):
    KEY = "key"
    SESSION = "session"
    MODEL = "model"
    DAY = "day"


@dataclass(frozen=True)
class UsageRow:
    group: str
    calls: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost_usd: float


def _num(rec: AuditRecord, field: str) -> float:
    v = rec.data.get(field)
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else 0.0


def _group(rec: AuditRecord, by: By) -> str:
    match by:
        case By.KEY:
            return str(rec.data.get("key") or "-")
        case By.SESSION:
            return rec.session or "-"
        case By.MODEL:
            return str(rec.data.get("model") or "-")
        case By.DAY:
            return rec.ts[:10]


_FIELDS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "cost_usd")


def summarize(records: Iterable[AuditRecord], by: By) -> list[UsageRow]:
    sums: dict[str, list[float]] = {}
    for rec in records:
        if rec.event is AuditEvent.LLM_CALL:
            _add(sums.setdefault(_group(rec, by), [0.0] * 6), rec)
    return [_row(g, a) for g, a in sorted(sums.items())]


def total(records: Iterable[AuditRecord]) -> UsageRow:
    """Every LLM call among `records` summed into one row (group "all"): a session's usage,
    its agent's included, for `show`, `sandbox agent`'s summary and serve's session view."""
    acc = [0.0] * 6
    for rec in records:
        if rec.event is AuditEvent.LLM_CALL:
            _add(acc, rec)
    return _row("all", acc)


def _add(acc: list[float], rec: AuditRecord) -> None:
    acc[0] += 1
    for i, f in enumerate(_FIELDS, start=1):
        acc[i] += _num(rec, f)


def _row(group: str, a: list[float]) -> UsageRow:
    return UsageRow(group, int(a[0]), int(a[1]), int(a[2]), int(a[3]), int(a[4]), round(a[5], 6))
