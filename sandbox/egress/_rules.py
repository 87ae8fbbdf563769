"""The egress allowlist: rule syntax, the policy's decision, and address classification.

Pure logic, no I/O: the proxy feeds it host names, ports and resolved addresses; the policy
loader feeds it the strings of `[egress] allow`, `ceiling` and `allow_addresses`.

Rule syntax (case-insensitive):
    example.com            exact name, ports 80 and 443
    example.com:8443       exact name, that port ("*" = any port, "8000-8100" = a range)
    *.example.com          any name strictly below example.com (not example.com itself)
    10.1.2.3, [::1]:8080   an IP literal (a request must name the literal itself)
    10.0.0.0/8:443         a CIDR range of literals; "[fd00::/8]:443" for IPv6 with a port

Addresses that are not globally routable (loopback, link-local such as the cloud metadata
address 169.254.169.254, private ranges, multicast, reserved) and the host's own addresses are
refused even when an allowed name resolves to them (DNS rebinding), unless the policy names
them: as an IP/CIDR rule in `allow`, or in `allow_addresses` (which lets names resolve there
without allowing the literal itself).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import assert_never

from sandbox.errors import CeilingError, PolicyError

type IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
type IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
type PortRange = tuple[int, int]

DEFAULT_PORTS: tuple[PortRange, ...] = ((80, 80), (443, 443))
ANY_PORT: tuple[PortRange, ...] = ((1, 65535),)

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


class RuleKind(StrEnum):
    HOST = "host"  # exact name
    WILDCARD = "wildcard"  # "*.suffix": any name strictly below suffix
    ADDRESS = "address"  # IP literal or CIDR range


class DenyReason(StrEnum):
    """Why a request was refused; the value goes into the `X-Sandbox-Deny` header."""

    NOT_IN_ALLOWLIST = "not-in-allowlist"
    OUTSIDE_CEILING = "outside-ceiling"
    LOOPBACK = "loopback"
    LINK_LOCAL = "link-local"
    PRIVATE = "private"
    HOST_ADDRESS = "host-address"
    RESERVED = "reserved"
    HOST_MISMATCH = "host-mismatch"
    MALFORMED = "malformed"
    UNSUPPORTED = "unsupported"
    USER = "denied-by-user"

    @property
    def text(self) -> str:
        """Short human wording, used in summaries: `evil.example (not in allowlist)`."""
        match self:
            case DenyReason.NOT_IN_ALLOWLIST:
                return "not in allowlist"
            case DenyReason.OUTSIDE_CEILING:
                return "outside the org egress ceiling"
            case DenyReason.LOOPBACK:
                return "loopback"
            case DenyReason.LINK_LOCAL:
                return "link-local"
            case DenyReason.PRIVATE:
                return "private address"
            case DenyReason.HOST_ADDRESS:
                return "address of the host"
            case DenyReason.RESERVED:
                return "reserved address"
            case DenyReason.HOST_MISMATCH:
                return "Host header differs from the target"
            case DenyReason.MALFORMED:
                return "malformed request"
            case DenyReason.UNSUPPORTED:
                return "unsupported request"
            case DenyReason.USER:
                return "denied by the user"
            case _:
                assert_never(self)


@dataclass(frozen=True)
class Allow:
    rule: str  # the rule (or "asked") that allowed it, for the audit
    remember: bool = False  # from the level-1 prompt: keep this answer for the run/session


@dataclass(frozen=True)
class Deny:
    reason: DenyReason
    detail: str = ""  # one sentence a person understands


type Decision = Allow | Deny


def _parse_ports(text: str, rule: str) -> tuple[PortRange, ...]:
    if text == "*":
        return ANY_PORT
    lo_s, sep, hi_s = text.partition("-")
    try:
        lo = int(lo_s)
        hi = int(hi_s) if sep else lo
    except ValueError:
        raise PolicyError(f"egress rule {rule!r}: bad port {text!r}") from None
    if not (1 <= lo <= hi <= 65535) or not lo_s.isdigit() or (sep and not hi_s.isdigit()):
        raise PolicyError(f"egress rule {rule!r}: port {text!r} is not in 1-65535")
    return ((lo, hi),)


def valid_hostname(name: str) -> bool:
    """A DNS name of LDH labels whose last label is not numeric.

    The numeric-label rule refuses the inet_aton spellings of addresses ("127.1", "0x7f.1",
    "2130706433") that a resolver would quietly turn into IP literals.
    """
    if not name or len(name) > 253:
        return False
    labels = name.split(".")
    if not all(_LABEL.match(label) for label in labels):
        return False
    last = labels[-1]
    return not (last.isdigit() or last.startswith("0x"))


def normalize_host(raw: str) -> str | IPAddress:
    """Lower-case name without trailing dot, or an IP address. ValueError if neither."""
    host = raw.strip().lower()
    if host.startswith("[") and host.endswith("]"):
        return ipaddress.IPv6Address(host[1:-1])
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    host = host.removesuffix(".")
    if not valid_hostname(host):
        raise ValueError(f"not a host name: {raw!r}")
    return host


def _split_rule(text: str) -> tuple[str, str | None]:
    """Split "host[:port]" with IPv6 brackets; bare IPv6 (two colons or more) has no port."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise PolicyError(f"egress rule {text!r}: unclosed '['")
        rest = text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise PolicyError(f"egress rule {text!r}: junk after ']'")
        return text[1:end], (rest[1:] if rest else None)
    if text.count(":") >= 2:
        return text, None
    host, sep, port = text.partition(":")
    return host, (port if sep else None)


@dataclass(frozen=True)
class EgressRule:
    kind: RuleKind
    host: str = ""  # HOST: the name; WILDCARD: the suffix after "*."
    network: IPNetwork | None = None  # ADDRESS only
    ports: tuple[PortRange, ...] = DEFAULT_PORTS

    @classmethod
    def parse(cls, text: str) -> EgressRule:
        rule = text.strip().lower()
        host, port_text = _split_rule(rule)
        ports = DEFAULT_PORTS if port_text is None else _parse_ports(port_text, text)
        if not host:
            raise PolicyError(f"egress rule {text!r}: empty host")
        if "/" in host:
            try:
                net = ipaddress.ip_network(host, strict=True)
            except ValueError as exc:
                raise PolicyError(f"egress rule {text!r}: bad CIDR range: {exc}") from None
            return cls(RuleKind.ADDRESS, network=net, ports=ports)
        try:
            addr = ipaddress.ip_address(host)
        except ValueError:
            pass
        else:
            return cls(RuleKind.ADDRESS, network=ipaddress.ip_network(addr), ports=ports)
        if host.startswith("*."):
            suffix = host[2:].removesuffix(".")
            if "." not in suffix or not valid_hostname(suffix):
                raise PolicyError(f"egress rule {text!r}: a wildcard needs a domain of two labels or more")
            return cls(RuleKind.WILDCARD, host=suffix, ports=ports)
        name = host.removesuffix(".")
        if not valid_hostname(name):
            raise PolicyError(f"egress rule {text!r}: not a host name, IP address or CIDR range")
        return cls(RuleKind.HOST, host=name, ports=ports)

    def port_ok(self, port: int) -> bool:
        return any(lo <= port <= hi for lo, hi in self.ports)

    def matches(self, host: str | IPAddress, port: int) -> bool:
        """`host` as returned by `normalize_host`. Names never match address rules and
        literals never match name rules: an IP literal is reachable only when named."""
        if not self.port_ok(port):
            return False
        match self.kind:
            case RuleKind.HOST:
                return isinstance(host, str) and host == self.host
            case RuleKind.WILDCARD:
                return isinstance(host, str) and host.endswith("." + self.host)
            case RuleKind.ADDRESS:
                return not isinstance(host, str) and _in_network(host, self.network)
            case _:
                assert_never(self.kind)

    def _ports_within(self, other: EgressRule) -> bool:
        for lo, hi in self.ports:
            cur = lo
            while cur <= hi:
                nxt = next((h for lo2, h in other.ports if lo2 <= cur <= h), None)
                if nxt is None:
                    return False
                cur = nxt + 1
        return True

    def _covered_by(self, other: EgressRule) -> bool:
        if not self._ports_within(other):
            return False
        match self.kind:
            case RuleKind.HOST:
                return (other.kind is RuleKind.HOST and other.host == self.host) or (
                    other.kind is RuleKind.WILDCARD and self.host.endswith("." + other.host)
                )
            case RuleKind.WILDCARD:
                return other.kind is RuleKind.WILDCARD and (
                    self.host == other.host or self.host.endswith("." + other.host)
                )
            case RuleKind.ADDRESS:
                return other.kind is RuleKind.ADDRESS and _subnet(self.network, other.network)
            case _:
                assert_never(self.kind)

    def within(self, ceiling: Iterable[EgressRule]) -> bool:
        """True if one ceiling rule covers every host and port this rule allows."""
        return any(self._covered_by(c) for c in ceiling)

    def __str__(self) -> str:
        match self.kind:
            case RuleKind.HOST:
                base = self.host
            case RuleKind.WILDCARD:
                base = "*." + self.host
            case RuleKind.ADDRESS:
                net = self.network
                assert net is not None
                text = str(net.network_address) if net.num_addresses == 1 else str(net)
                base = f"[{text}]" if net.version == 6 else text
            case _:
                assert_never(self.kind)
        if self.ports == DEFAULT_PORTS:
            return base
        if self.ports == ANY_PORT:
            return base + ":*"
        return base + ":" + ",".join(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in self.ports)


def _unmap(addr: IPAddress) -> IPAddress:
    """The IPv4 address behind IPv4-mapped/6to4/NAT64 forms, so they are judged as IPv4."""
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return addr.ipv4_mapped
        if addr.sixtofour is not None:
            return addr.sixtofour
        if addr in ipaddress.IPv6Network("64:ff9b::/96"):
            return ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    return addr


def _in_network(addr: IPAddress, net: IPNetwork | None) -> bool:
    if net is None:
        return False
    return any(a.version == net.version and a in net for a in {addr, _unmap(addr)})


def _subnet(inner: IPNetwork | None, outer: IPNetwork | None) -> bool:
    if inner is None or outer is None:
        return False
    if isinstance(inner, ipaddress.IPv4Network) and isinstance(outer, ipaddress.IPv4Network):
        return inner.subnet_of(outer)
    if isinstance(inner, ipaddress.IPv6Network) and isinstance(outer, ipaddress.IPv6Network):
        return inner.subnet_of(outer)
    return False


def classify(addr: IPAddress, host_addresses: frozenset[IPAddress] = frozenset()) -> DenyReason | None:
    """None for a globally routable address that is not the host's; else why it is special."""
    plain = _unmap(addr)
    if addr in host_addresses or plain in host_addresses:
        return DenyReason.HOST_ADDRESS
    if plain.is_loopback:
        return DenyReason.LOOPBACK
    if plain.is_link_local:  # includes the cloud metadata address 169.254.169.254
        return DenyReason.LINK_LOCAL
    if plain.is_unspecified or plain.is_multicast or plain.is_reserved:
        return DenyReason.RESERVED
    if plain.is_private:
        return DenyReason.PRIVATE
    if not plain.is_global:  # shared (CGNAT), benchmarking, other non-routable ranges
        return DenyReason.RESERVED
    return None


def parse_address_range(text: str) -> IPNetwork:
    try:
        return ipaddress.ip_network(text.strip().strip("[]"), strict=True)
    except ValueError as exc:
        raise PolicyError(f"egress allow_addresses entry {text!r}: {exc}") from None


@dataclass(frozen=True)
class EgressPolicy:
    allow: tuple[EgressRule, ...] = ()
    ceiling: tuple[EgressRule, ...] | None = None  # None: the org set no ceiling
    allow_addresses: tuple[IPNetwork, ...] = ()  # special ranges names may resolve into

    @classmethod
    def from_strings(
        cls,
        allow: Sequence[str] = (),
        *,
        ceiling: Sequence[str] | None = None,
        allow_addresses: Sequence[str] = (),
    ) -> EgressPolicy:
        return cls(
            allow=tuple(EgressRule.parse(a) for a in allow),
            ceiling=None if ceiling is None else tuple(EgressRule.parse(c) for c in ceiling),
            allow_addresses=tuple(parse_address_range(a) for a in allow_addresses),
        )

    @property
    def enabled(self) -> bool:
        """False: the run gets no network at all (no proxy either)."""
        return bool(self.allow)

    def outside(self, ceiling: Sequence[EgressRule] | None = None) -> tuple[str, ...]:
        """Entries of this policy that the ceiling (default: its own) does not cover."""
        ceil = self.ceiling if ceiling is None else tuple(ceiling)
        if ceil is None:
            return ()
        bad = [str(r) for r in self.allow if not r.within(ceil)]
        addr_rules = [c.network for c in ceil if c.kind is RuleKind.ADDRESS]
        bad += [str(n) for n in self.allow_addresses if not any(_subnet(n, c) for c in addr_rules)]
        return tuple(bad)

    def within(self, ceiling: Sequence[EgressRule] | None = None) -> bool:
        return not self.outside(ceiling)

    def check_ceiling(self, source: str = "the org policy") -> None:
        """Raise CeilingError (exit 2) naming the ceiling and the entries beyond it."""
        bad = self.outside()
        if bad:
            ceil = ", ".join(str(c) for c in self.ceiling or ()) or "(nothing)"
            raise CeilingError(
                f"egress allow {', '.join(bad)} is outside egress.ceiling [{ceil}] set by {source}",
                hint="ask for the host to be added to the org ceiling, or drop the --allow",
            )

    def decide(self, host: str, port: int) -> Decision:
        """Decide on the name (or literal) and port alone; addresses are checked later."""
        try:
            target = normalize_host(host)
        except ValueError:
            return Deny(DenyReason.MALFORMED, f"{host!r} is not a valid host name or address")
        if not 1 <= port <= 65535:
            return Deny(DenyReason.MALFORMED, f"port {port} is out of range")
        shown = _show(target, port)
        if self.ceiling is not None and not any(c.matches(target, port) for c in self.ceiling):
            return Deny(DenyReason.OUTSIDE_CEILING, f"{shown} is outside the org egress ceiling")
        for rule in self.allow:
            if rule.matches(target, port):
                return Allow(str(rule))
        if not isinstance(target, str):
            special = None if self.address_named(target) else classify(target)
            if special is not None:
                return Deny(special, f"{shown}: {special.text}, and the policy does not name it")
            return Deny(
                DenyReason.NOT_IN_ALLOWLIST,
                f"{shown} is not in the egress allowlist (IP literals must be named)",
            )
        return Deny(DenyReason.NOT_IN_ALLOWLIST, f"{shown} is not in the egress allowlist")

    def address_named(self, addr: IPAddress) -> bool:
        nets = [r.network for r in self.allow if r.kind is RuleKind.ADDRESS]
        return any(_in_network(addr, n) for n in (*nets, *self.allow_addresses))

    def check_address(
        self, addr: IPAddress, host_addresses: frozenset[IPAddress] = frozenset()
    ) -> DenyReason | None:
        """None if the proxy may connect to `addr`; else why not (anti-rebinding)."""
        if self.address_named(addr):
            return None
        return classify(addr, host_addresses)


def _show(target: str | IPAddress, port: int) -> str:
    if isinstance(target, ipaddress.IPv6Address):
        return f"[{target}]:{port}"
    return f"{target}:{port}"


__all__ = [
    "ANY_PORT",
    "DEFAULT_PORTS",
    "Allow",
    "Decision",
    "Deny",
    "DenyReason",
    "EgressPolicy",
    "EgressRule",
    "IPAddress",
    "IPNetwork",
    "RuleKind",
    "classify",
    "normalize_host",
    "parse_address_range",
    "valid_hostname",
]
