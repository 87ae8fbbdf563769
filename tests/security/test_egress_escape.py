"""Escape attempts against egress, from inside real nsjail with the proxy running.

Each test is an attack a compromised agent would try. The sandbox's only network is its own
loopback, with the proxy's listening socket in it; every attempt to leave by another way must
fail at once (an error, not a timeout), and every attempt through the proxy to a place the
policy does not allow must be refused. Host-side canaries count anything that gets through.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sandbox.egress import EgressHandle, EgressPolicy, host_addresses, mapped_resolver, start
from tests.conftest import require
from tests.support.egress_env import denied_events, origin, require_nsjail, run_jailed, traversable

NAMES = {"allowed.test": ["127.0.0.1"], "rebind.test": ["127.0.0.1"]}


@dataclass
class Canary:
    """TCP and UDP listeners on every host address; records whatever reaches them."""

    tcp: list[socket.socket] = field(default_factory=list)
    udp: socket.socket | None = None
    hits: list[str] = field(default_factory=list)

    def watch(self) -> None:
        for sock in self.tcp:
            threading.Thread(target=self._accept, args=(sock,), daemon=True).start()

    def _accept(self, sock: socket.socket) -> None:
        while True:
            try:
                conn, peer = sock.accept()
            except OSError:
                return
            self.hits.append(f"tcp {peer}")
            conn.close()

    def udp_hits(self) -> list[bytes]:
        assert self.udp is not None
        got = []
        self.udp.settimeout(0.05)
        try:
            while True:
                got.append(self.udp.recv(100))
        except OSError:
            return got


@pytest.fixture(scope="module")
def canary() -> Iterator[tuple[Canary, int, int]]:
    c = Canary()
    v4 = socket.create_server(("0.0.0.0", 0))
    port = v4.getsockname()[1]
    c.tcp.append(v4)
    with contextlib.suppress(OSError):
        c.tcp.append(socket.create_server(("::", port), family=socket.AF_INET6, dualstack_ipv6=False))
    c.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    c.udp.bind(("0.0.0.0", 0))
    c.watch()
    yield c, port, c.udp.getsockname()[1]
    for s in [*c.tcp, c.udp]:
        s.close()


@dataclass
class Attack:
    handle: EgressHandle
    port: int  # host canary TCP port (all addresses)
    udp_port: int
    origin: int  # an allowed origin on host loopback
    canary: Canary


@pytest.fixture
def attack(canary: tuple[Canary, int, int], tmp_path: Path) -> Iterator[Attack]:
    require_nsjail()
    c, port, udp_port = canary
    c.hits.clear()
    with origin("allowed") as origin_port:
        rules = [f"{name}:{origin_port}" for name in ("allowed.test", "rebind.test", "hostaddr.test")]
        # allowed.test works only because 127.0.0.1 is named; rebind.test (-> 127.0.0.2) and
        # hostaddr.test (-> the host's own address) are allowed names with forbidden addresses
        policy = EgressPolicy.from_strings(rules, allow_addresses=["127.0.0.1"])
        names = NAMES | {"rebind.test": ["127.0.0.2"], "hostaddr.test": [_host_v4()]}
        resolver = mapped_resolver(names, None)
        handle = start(policy, run_id="r-attack", run_dir=traversable(tmp_path) / "run", resolver=resolver)
        try:
            yield Attack(handle, port, udp_port, origin_port, c)
        finally:
            handle.stop()
    udp = c.udp_hits()
    assert c.hits == [] and udp == [], f"reached the host: {c.hits} {udp}"


def _host_v4() -> str:
    addrs = [a for a in host_addresses() if a.version == 4 and not a.is_loopback]
    require(bool(addrs), "host has no non-loopback IPv4 address")
    return str(addrs[0])


_PY_CONNECT = """
import socket, sys, time
family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = socket.socket(family, socket.SOCK_STREAM)
s.settimeout(5)
t = time.monotonic()
try:
    s.connect((sys.argv[1], int(sys.argv[2])))
except OSError as e:
    print("BLOCKED", type(e).__name__, e.errno, round(time.monotonic() - t, 3))
else:
    print("ESCAPED")
"""


def _blocked_fast(stdout: str) -> None:
    """Refused at once with an errno (not a 5 s timeout, not a connection)."""
    words = stdout.split()
    assert words and words[0] == "BLOCKED", stdout
    assert words[1] != "TimeoutError", stdout


@pytest.mark.parametrize(
    "target",
    [
        "1.1.1.1:80",
        "8.8.8.8:53",
        "169.254.169.254:80",
        "[2606:4700:4700::1111]:443",
        "[::1]:{port}",
    ],
)
def test_direct_tcp_has_no_route(attack: Attack, target: str) -> None:
    host, _, port = target.format(port=attack.port).rpartition(":")
    result = run_jailed(
        attack.handle, "", argv=["/usr/bin/python3", "-c", _PY_CONNECT, host.strip("[]"), port]
    )
    _blocked_fast(result.stdout)
    # no route at all; [::1] is the sandbox's own loopback, where nothing listens
    assert _errname(result.stdout) == ("ECONNREFUSED" if host == "[::1]" else "ENETUNREACH")


def _errname(stdout: str) -> str:
    words = stdout.split()
    return errno.errorcode.get(int(words[2]), "") if len(words) > 2 and words[2].isdigit() else ""


def test_direct_tcp_to_host_addresses_fails(attack: Attack) -> None:
    # one run, both targets: a handle serves exactly one sandbox launch
    script = f"""
import subprocess, sys
for host in ("127.0.0.1", "{_host_v4()}"):
    subprocess.run([sys.executable, "-c", {_PY_CONNECT!r}, host, "{attack.port}"])
"""
    result = run_jailed(attack.handle, "", argv=["/usr/bin/python3", "-c", script])
    lines = result.stdout.splitlines()
    assert len(lines) == 2, result
    for line in lines:
        _blocked_fast(line)
    assert [_errname(line) for line in lines] == ["ECONNREFUSED", "ENETUNREACH"]


def test_allowed_origin_is_unreachable_without_the_proxy(attack: Attack) -> None:
    script = f"curl -sS --noproxy '*' --max-time 5 http://127.0.0.1:{attack.origin}/; echo rc=$?"
    result = run_jailed(attack.handle, script)
    assert "rc=7" in result.stdout  # couldn't connect: the sandbox's 127.0.0.1 is its own


def test_udp_and_dns_have_no_route(attack: Attack) -> None:
    resolver = Path("/etc/resolv.conf").read_text().split("nameserver", 1)[-1].split()[0]
    code = f"""
import socket
for host in ("{resolver}", "8.8.8.8", "127.0.0.1", "{_host_v4()}"):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.sendto(b"canary", (host, {attack.udp_port} if host != "{resolver}" else 53))
        s.settimeout(0.3)
        s.recv(10)
        print("ESCAPED", host)
    except OSError as e:
        print("BLOCKED", host, type(e).__name__)
try:
    print("ESCAPED", socket.getaddrinfo("example.com", 443))
except OSError as e:
    print("BLOCKED dns", type(e).__name__)
"""
    result = run_jailed(attack.handle, "", argv=["/usr/bin/python3", "-c", code])
    lines = result.stdout.splitlines()
    assert len(lines) == 5 and all(line.startswith("BLOCKED") for line in lines), lines
    # the loopback one "fails" by never being answered: it went to the sandbox's own lo
    assert "ESCAPED" not in result.stdout


def test_dns_tools_fail(attack: Attack) -> None:
    result = run_jailed(attack.handle, "getent hosts example.com; echo rc=$?")
    assert result.stdout.strip() == "rc=2"


def test_icmp_fails(attack: Attack) -> None:
    # unprivileged ICMP ("ping sockets") and raw sockets, to the world and to the host
    code = f"""
import socket
echo = bytes([8, 0, 0xF7, 0xFF, 0, 0, 0, 0])  # type 8 echo request, valid checksum
for kind in ("dgram", "raw"):
    for host in ("1.1.1.1", "{_host_v4()}"):
        try:
            t = socket.SOCK_DGRAM if kind == "dgram" else socket.SOCK_RAW
            s = socket.socket(socket.AF_INET, t, socket.IPPROTO_ICMP)
            s.settimeout(2)
            s.sendto(echo, (host, 0))
            s.recv(100)
            print("ESCAPED", kind, host)
        except OSError as e:
            print("BLOCKED", kind, host, type(e).__name__)
"""
    result = run_jailed(attack.handle, "", argv=["/usr/bin/python3", "-c", code])
    lines = result.stdout.splitlines()
    assert len(lines) == 4 and all(line.startswith("BLOCKED") for line in lines), lines
    assert "TimeoutError" not in result.stdout  # refused at once, not lost on the way


def test_dev_tcp_and_nc_fail(attack: Attack) -> None:
    nc = Path("/usr/bin/nc").exists() or Path("/bin/nc").exists()
    require(nc, "nc (netcat-openbsd) is not installed")
    host = _host_v4()
    script = (
        f"bash -c 'exec 3<>/dev/tcp/1.1.1.1/80' 2>/dev/null; echo devtcp=$?; "
        f"bash -c 'exec 3<>/dev/tcp/{host}/{attack.port}' 2>/dev/null; echo devtcp_host=$?; "
        f"nc -z -w 3 1.1.1.1 443; echo nc=$?; "
        f"nc -z -w 3 {host} {attack.port}; echo nc_host=$?; "
        f"echo x | nc -u -w 1 8.8.8.8 53; echo ncu=$?"
    )
    result = run_jailed(attack.handle, script)
    values = dict(line.split("=") for line in result.stdout.split())
    assert values == {"devtcp": "1", "devtcp_host": "1", "nc": "1", "nc_host": "1", "ncu": "1"}


# -- through the proxy: asking it to go where the policy does not ------------------------


@pytest.mark.parametrize(
    ("curl", "reason"),
    [
        ("http://127.0.0.1:{origin}/", "not-in-allowlist"),  # IP literal, named for names only
        ("http://127.0.0.2:{origin}/", "loopback"),
        ("-p http://127.0.0.2:{origin}/", "loopback"),  # CONNECT to loopback
        ("http://169.254.169.254/latest/meta-data/", "link-local"),  # cloud metadata
        ("-p http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://rebind.test:{origin}/", "loopback"),  # allowed name resolving to loopback
        ("http://[::1]:{origin}/", "loopback"),
        ("http://hostaddr.test:{origin}/", "host-address"),
        ("http://{host}:{port}/", "private"),  # the host's address as a literal
        ("http://2130706433:{origin}/", "not-in-allowlist"),  # curl itself reads 127.0.0.1
        ("http://evil.test/", "not-in-allowlist"),
        ("-H 'Host: evil.test' http://allowed.test:{origin}/", "host-mismatch"),
    ],
)
def test_proxy_refuses_bypasses(attack: Attack, curl: str, reason: str) -> None:
    url = curl.format(origin=attack.origin, host=_host_v4(), port=attack.port)
    result = run_jailed(attack.handle, f"curl -sS -i --max-time 5 {url}")
    assert f"X-Sandbox-Deny: {reason}" in result.stdout or (
        "CONNECT tunnel failed, response 403" in result.stderr
    ), (result.stdout, result.stderr)
    assert any(e.reason == reason for e in denied_events(attack.handle))


def test_raw_connect_with_mismatched_host_is_refused(attack: Attack) -> None:
    code = f"""
import socket
s = socket.create_connection(("127.0.0.1", 3128))
s.sendall(b"CONNECT allowed.test:{attack.origin} HTTP/1.1\\r\\nHost: evil.test:443\\r\\n\\r\\n")
print(s.recv(200).split(b"\\r\\n")[0].decode())
"""
    result = run_jailed(attack.handle, "", argv=["/usr/bin/python3", "-c", code])
    assert result.stdout.strip() == "HTTP/1.1 403 Forbidden"


def test_control_socket_is_gone_once_the_command_runs(attack: Attack) -> None:
    code = """
import socket
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    s.connect("/run/sandbox-egress/proxy.sock")
    print("ESCAPED")
except OSError as e:
    print("BLOCKED", type(e).__name__)
"""
    result = run_jailed(attack.handle, "", argv=["/usr/bin/python3", "-c", code])
    assert result.stdout.startswith("BLOCKED"), result.stdout


def test_tunnels_die_with_the_run(attack: Attack) -> None:
    # a background process holds a tunnel open; the command exits; nothing may remain
    script = (
        f"python3 -c \"import socket,time; s=socket.create_connection(('127.0.0.1',3128)); "
        f"s.sendall(b'CONNECT allowed.test:{attack.origin} HTTP/1.1\\r\\n\\r\\n'); "
        f"s.recv(100); open('/tmp/tunnel-up', 'w').close(); time.sleep(60)\" & "
        # started once the tunnel is up, not after a pause that a slow machine outlasts
        "i=0; until [ -e /tmp/tunnel-up ] || [ $i -ge 600 ]; do i=$((i+1)); sleep 0.05; done; "
        "[ -e /tmp/tunnel-up ] && echo started"
    )
    result = run_jailed(attack.handle, script)
    assert result.stdout.strip() == "started"
    attack.handle.stop()
    assert attack.handle.live_connections() == 0
    assert [e.verdict.value for e in attack.handle.events()] == ["allowed"]
