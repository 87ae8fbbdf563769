"""Is an egress allow entry inside an org ceiling entry? (names, wildcards, ports, CIDRs)"""

from __future__ import annotations

import ipaddress


def split_host_port(entry: str) -> tuple[str, int | None]:
    entry = entry.strip().lower()
    if entry.startswith("["):  # [v6]:port
        host, _, rest = entry[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else None
    if entry.count(":") == 1:
        host, _, port = entry.partition(":")
        return host, int(port)
    return entry, None


def _network(host: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(host, strict=False)
    except ValueError:
        return None


def host_within(entry: str, ceiling: str) -> bool:
    host, port = split_host_port(entry)
    c_host, c_port = split_host_port(ceiling)
    if c_port is not None and port != c_port:
        return False
    net, c_net = _network(host), _network(c_host)
    if net is not None or c_net is not None:
        return (net is not None and c_net is not None and net.version == c_net.version
                and net.subnet_of(c_net))  # type: ignore[arg-type]
    if c_host.startswith("*."):
        suffix = c_host[1:]
        return host.endswith(suffix) and len(host) > len(suffix)
    return host == c_host
