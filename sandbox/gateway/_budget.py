"""Budgets that are never overspent: reserve the worst case before dispatch, settle after.

LiteLLM-style proxies record spend after each response, so concurrent requests all pass the
check on the same figure. Here admission is one synchronous step on the event loop (no await
between check and reserve), across every scope a call counts against (key, session, day,
month): a call is admitted only if, for each scope, committed + reserved + its worst case stays
within the limit. Settling replaces the reservation by the real cost, which is never more
(the reservation bounds input by bytes and output by the cap the gateway enforces).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

__all__ = ["Ledger", "Refusal", "Reservation", "Scope"]


@dataclass(frozen=True)
class Scope:
    name: str  # "key:k_...", "session:...", "day:2026-11-30", "month:2026-11"
    limit: float | None  # USD; None: tracked, not limited


@dataclass(frozen=True)
class Refusal:
    scope: str
    limit: float
    left: float
    needed: float

    def message(self) -> str:
        return (
            f"budget exceeded: {self.scope} has ${self.left:.6f} left of its "
            f"${self.limit:.6f} limit; this request may cost up to ${self.needed:.6f}"
        )


@dataclass
class Reservation:
    scopes: tuple[str, ...]
    amount: float
    settled: bool = False


@dataclass
class _Account:
    committed: float
    reserved: float = 0.0


@dataclass
class Ledger:
    """In-memory authority for spend; `load` reads a scope's committed spend once (persisted);
    `settle` returns what to persist."""

    load: Callable[[str], float]
    _accounts: dict[str, _Account] = field(default_factory=dict)
    # The highest committed + reserved seen per scope: tests assert it never passed the limit.
    peak: dict[str, float] = field(default_factory=dict)

    def _account(self, scope: str) -> _Account:
        acct = self._accounts.get(scope)
        if acct is None:
            acct = self._accounts[scope] = _Account(self.load(scope))
        return acct

    def reserve(self, scopes: Sequence[Scope], amount: float) -> Reservation | Refusal:
        accounts = [(s, self._account(s.name)) for s in scopes]
        for s, acct in accounts:
            if s.limit is not None and acct.committed + acct.reserved + amount > s.limit:
                left = max(0.0, s.limit - acct.committed - acct.reserved)
                return Refusal(s.name, s.limit, left, amount)
        for s, acct in accounts:
            acct.reserved += amount
            self._note_peak(s.name, acct)
        return Reservation(tuple(s.name for s in scopes), amount)

    def _note_peak(self, name: str, acct: _Account) -> None:
        self.peak[name] = max(self.peak.get(name, 0.0), acct.committed + acct.reserved)

    def settle(self, res: Reservation, cost: float) -> tuple[tuple[str, float], ...]:
        """Replace the reservation by the real cost (never more than the reservation, by how
        the reservation is bounded; recorded as it is all the same). Idempotent."""
        if res.settled:
            return ()
        res.settled = True
        cost = max(cost, 0.0)
        for name in res.scopes:
            acct = self._account(name)
            acct.reserved -= res.amount
            acct.committed += cost
            self._note_peak(name, acct)
        return tuple((name, cost) for name in res.scopes) if cost > 0 else ()

    def committed(self, scope: str) -> float:
        return self._account(scope).committed

    def reserved(self, scope: str) -> float:
        return self._account(scope).reserved
