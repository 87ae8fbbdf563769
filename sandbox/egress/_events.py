"""Egress decisions as audit events: one per request, with bytes each way and duration.

`EgressEvent.to_audit()` is the `data` of an `egress` audit record; `from_audit()` reads it
back for `sandbox show`, `describe()` renders one line, `summarize_denials()` the closing
summary of a run.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from enum import StrEnum

from sandbox.egress._rules import DenyReason


class Verdict(StrEnum):
    ALLOWED = "allowed"
    DENIED = "denied"


@dataclass(frozen=True)
class EgressEvent:
    """One decision, for the audit log (`to_audit()` is its `data`)."""

    run_id: str
    verdict: Verdict
    host: str
    port: int
    method: str  # CONNECT, GET, ..., SOCKS5
    reason: str  # deny code (X-Sandbox-Deny) or the allow rule that matched
    detail: str = ""  # a sentence for people
    address: str = ""  # the address the proxy connected to
    bytes_up: int = 0
    bytes_down: int = 0
    duration_ms: float = 0.0
    started: float = 0.0  # unix time
    error: str = ""  # allowed, but the origin could not be reached

    def to_audit(self) -> dict[str, object]:
        data = asdict(self)
        data["verdict"] = str(self.verdict)
        return data

    @classmethod
    def from_audit(cls, data: Mapping[str, object]) -> EgressEvent:
        """Inverse of `to_audit` (for `sandbox show`); unknown keys are ignored."""

        def num(key: str) -> float:
            value = data.get(key, 0)
            return float(value) if isinstance(value, int | float) else 0.0

        def text(key: str) -> str:
            return str(data.get(key, ""))

        return cls(
            run_id=text("run_id"),
            verdict=Verdict(text("verdict")),
            host=text("host"),
            port=int(num("port")),
            method=text("method"),
            reason=text("reason"),
            detail=text("detail"),
            address=text("address"),
            bytes_up=int(num("bytes_up")),
            bytes_down=int(num("bytes_down")),
            duration_ms=num("duration_ms"),
            started=num("started"),
            error=text("error"),
        )

    def describe(self) -> str:
        """One line for people: `denied  CONNECT evil.example:443  not in allowlist`."""
        target = f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
        if self.verdict is Verdict.DENIED:
            try:
                why = DenyReason(self.reason).text
            except ValueError:
                why = self.reason
            return f"denied   {self.method} {target}  {why}"
        tail = f"  error: {self.error}" if self.error else ""
        return (
            f"allowed  {self.method} {target}  ({self.reason})  "
            f"{_size(self.bytes_up)} up, {_size(self.bytes_down)} down, "
            f"{self.duration_ms:.0f} ms{tail}"
        )


def _size(n: int) -> str:
    if n < 1000:
        return f"{n} B"
    exponent = min(3, (len(str(n)) - 1) // 3)  # 1: kB, 2: MB, 3: GB
    return f"{n / 1000**exponent:.1f} {('kB', 'MB', 'GB')[exponent - 1]}"


# Refused for where the name resolved, not for the name: allowing the host is not enough.
ADDRESS_REASONS = frozenset({DenyReason.LOOPBACK, DenyReason.LINK_LOCAL, DenyReason.PRIVATE,
                              DenyReason.HOST_ADDRESS, DenyReason.RESERVED})
ALLOW_ADDRESSES_HINT = (
    "the proxy connects to loopback, private, link-local and this host's own addresses only "
    "when `[egress] allow_addresses` names them, whatever --allow says; set it in your policy "
    "(in a workspace sandbox.toml it applies only once you `sandbox trust` that file)")


def address_refusal(host: str, addr: object, why: DenyReason) -> str:
    """The refusal of an allowed name whose address is special: names the real fix."""
    return (f"{host} resolves to {addr} ({why.text}), which [egress] allow_addresses does not "
            f"name (e.g. allow_addresses = [\"{addr}\"]); {ALLOW_ADDRESSES_HINT}")


def _literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def summarize_denials(events: Iterable[EgressEvent]) -> str | None:
    """'2 egress requests denied: evil.example (not in allowlist), 169.254.169.254
    (link-local)', or None when nothing was denied. Repeats of one host/reason count once."""
    denied = [e for e in events if e.verdict is Verdict.DENIED]
    if not denied:
        return None
    seen: dict[tuple[str, str], None] = {}
    for e in denied:
        try:
            why = DenyReason(e.reason).text
        except ValueError:
            why = e.reason
        seen[(e.host or "(unparsable request)", why)] = None
    noun = "request" if len(denied) == 1 else "requests"
    items = ", ".join(f"{host} ({why})" for host, why in seen)
    summary = f"{len(denied)} egress {noun} denied: {items}"
    if any(e.reason in ADDRESS_REASONS and not _literal(e.host) for e in denied):
        summary += f". Hint: {ALLOW_ADDRESSES_HINT}"
    return summary


__all__ = ["ADDRESS_REASONS", "ALLOW_ADDRESSES_HINT", "EgressEvent", "Verdict", "address_refusal",
           "summarize_denials"]
