"""Host-side name resolution for the proxy, and the host's own addresses.

The sandbox never resolves names (it has no route to any resolver); the proxy does it here, on
the host. The resolver is injectable so tests can map names like `allowed.test` to their local
servers; `SANDBOX_EGRESS_HOSTS` names a hosts-format file ("ADDRESS NAME [NAME...]") that is
consulted before the system resolver. It is read from the runtime's own environment, which the
sandbox cannot touch.
"""

from __future__ import annotations

import ipaddress
import itertools
import os
import socket
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from sandbox.egress._rules import IPAddress

type Resolver = Callable[[str], Sequence[str]]

HOSTS_ENV = "SANDBOX_EGRESS_HOSTS"


def system_resolver(host: str) -> list[str]:
    """All TCP addresses of `host`, in the resolver's order, without duplicates."""
    infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    seen: dict[str, None] = {}
    for _family, _type, _proto, _canon, sockaddr in infos:
        seen[str(sockaddr[0])] = None
    return list(seen)


def load_hosts_file(path: Path) -> dict[str, tuple[str, ...]]:
    """Parse an /etc/hosts-format file into name -> addresses (validated)."""
    table: dict[str, list[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) < 2:
            continue
        addr = str(ipaddress.ip_address(fields[0]))
        for name in fields[1:]:
            table.setdefault(name.lower().removesuffix("."), []).append(addr)
    return {name: tuple(addrs) for name, addrs in table.items()}


def mapped_resolver(
    table: Mapping[str, Sequence[str]], fallback: Resolver | None = system_resolver
) -> Resolver:
    """Resolve names from `table` first, then with `fallback` (None: unknown names fail)."""
    frozen = {k.lower(): tuple(v) for k, v in table.items()}

    def resolve(host: str) -> Sequence[str]:
        found = frozen.get(host.lower())
        if found is not None:
            return found
        if fallback is None:
            raise OSError(f"{host}: not in the egress hosts map")
        return fallback(host)

    return resolve


def default_resolver(env: Mapping[str, str] | None = None) -> Resolver:
    environ = os.environ if env is None else env
    hosts = environ.get(HOSTS_ENV)
    if hosts:
        return mapped_resolver(load_hosts_file(Path(hosts)))
    return system_resolver


def host_addresses(proc: Path = Path("/proc/net")) -> frozenset[IPAddress]:
    """Every address configured on this host's interfaces (v4 from fib_trie, v6 from
    if_inet6), so the proxy refuses to connect back to services bound on them."""
    found: set[IPAddress] = set()
    try:
        lines = (proc / "fib_trie").read_text().splitlines()
    except OSError:
        lines = []
    for prev, line in itertools.pairwise(lines):
        # "|-- 10.0.0.5" followed by "/32 host LOCAL" marks a local address
        if "host LOCAL" in line and "|--" in prev:
            try:
                found.add(ipaddress.IPv4Address(prev.split("|--")[1].strip()))
            except ValueError:
                continue
    try:
        v6 = (proc / "if_inet6").read_text().splitlines()
    except OSError:
        v6 = []
    for line in v6:
        raw = line.split()[0] if line.split() else ""
        if len(raw) == 32:
            found.add(ipaddress.IPv6Address(int(raw, 16)))
    return frozenset(found)


__all__ = [
    "HOSTS_ENV",
    "Resolver",
    "default_resolver",
    "host_addresses",
    "load_hosts_file",
    "mapped_resolver",
    "system_resolver",
]
