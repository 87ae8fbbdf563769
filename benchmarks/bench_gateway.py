"""LLM gateway benchmark: added latency and throughput, ours vs LiteLLM's proxy vs direct, same run.

    .venv/bin/python benchmarks/bench_gateway.py [--seconds 8] [--think 0.02] [--no-litellm] [--json]
                                                 [--baseline DIR]

One provider stand-in (tests/support/provider_standin.py, its own process, a fixed think time)
answers OpenAI Chat Completions. The same load generator (aiohttp, this process) sends to it:
- direct;
- through `sandbox gateway serve` (own process; a virtual key with a budget; every call audited
  with its bodies stored, i.e. logging on);
- through LiteLLM's proxy (`litellm[proxy]` from PyPI, installed by this script into
  benchmarks/.litellm; own process; one worker; its master key: LiteLLM's virtual keys and
  budgets need a Postgres database, which this benchmark does not run);
- with --baseline DIR, also through the gateway served from the source tree DIR (a `git
  worktree` of an older commit), same set-up: before and after a change in one run.

For each, open-loop load at 50 and 200 requests/s: latency of complete responses and time to
the first byte of streamed ones; added latency = the peer's percentile minus direct's. Then the
most requests/s each sustains with 64 requests in flight. Targets (issue 12): p50 added <= 1 ms
and p99 <= 5 ms at 200 rps; ours <= 1/5 of LiteLLM's added latency.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
LITELLM_VENV = REPO / "benchmarks" / ".litellm"
UP_KEY = "sk-bench-upstream-0123456789"
BODY = {"model": "gpt-test", "max_tokens": 16, "messages": [{"role": "user", "content": "hello " * 40}]}

STANDIN = r"""
import sys, time
sys.path.insert(0, sys.argv[1])
from tests.support.provider_standin import ProviderStandIn
up = ProviderStandIn(api_key=sys.argv[2], think=float(sys.argv[3]), text="ok " * 8)
with up:
    print(up.url, flush=True)
    sys.stdin.read()
"""


# The sandbox CLI from the source tree in argv[1] rather than this venv's editable install.
FROM_TREE = r"""
import sys
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
sys.path.insert(0, sys.argv.pop(1))
from sandbox.cli.main import main
sys.exit(main())
"""


def from_tree(tree: Path, argv: list[str]) -> list[str]:
    """`argv` (a `sandbox ...` command line) run with the sandbox package from `tree`."""
    return [str(VENV_BIN / "python"), "-c", FROM_TREE, str(tree.resolve()), *argv[1:]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    import urllib.error
    import urllib.request

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


@contextmanager
def process(argv: list[str], env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def ensure_litellm() -> Path | None:
    exe = LITELLM_VENV / "bin" / "litellm"
    if exe.exists():
        return exe
    print("installing litellm[proxy] into benchmarks/.litellm ...", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(LITELLM_VENV)], check=True)
    r = subprocess.run(
        [str(LITELLM_VENV / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", "litellm[proxy]"],
        check=False,
    )
    return exe if r.returncode == 0 and exe.exists() else None


async def one(http: aiohttp.ClientSession, url: str, key: str, stream: bool) -> float:
    body = {**BODY, "stream": True} if stream else BODY
    t = time.perf_counter()
    async with http.post(url, json=body, headers={"authorization": f"Bearer {key}"}) as r:
        if r.status != 200:
            raise RuntimeError(f"{url}: HTTP {r.status}: {(await r.read())[:200]!r}")
        if stream:
            await r.content.readany()
            first = time.perf_counter() - t
            await r.read()
            return first
        await r.read()
        return time.perf_counter() - t


async def open_loop(url: str, key: str, rate: float, seconds: float, stream: bool) -> list[float]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        for _ in range(10):  # warm connections
            await one(http, url, key, stream)
        n = int(rate * seconds)
        start = time.perf_counter()
        tasks = []
        for i in range(n):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(http, url, key, stream)))
        return list(await asyncio.gather(*tasks))


async def closed_loop(url: str, key: str, seconds: float, inflight: int = 64) -> float:
    done = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        end = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < end:
                await one(http, url, key, False)
                done += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(inflight)))
        return done / (time.perf_counter() - start)


def pct(xs: list[float], q: float) -> float:
    return (
        statistics.quantiles(xs, n=100, method="inclusive")[int(q) - 1] * 1000
        if len(xs) > 1
        else xs[0] * 1000
    )


def gateway_target(up_url: str, home: Path) -> tuple[list[str], dict[str, str], str]:
    home.mkdir(parents=True, exist_ok=True)
    cfg = home / "gateway.toml"
    cfg.write_text(
        f'[providers.up]\ntype = "openai"\nbase_url = "{up_url}/v1"\napi_key_env = "UP_KEY"\n'
        '[routes]\n"gpt-*" = ["up"]\n[prices."gpt-test"]\ninput = 1.0\noutput = 2.0\n'
    )
    env = {**os.environ, "SANDBOX_HOME": str(home / "state"), "UP_KEY": UP_KEY}
    key = subprocess.run(
        [str(VENV_BIN / "sandbox"), "gateway", "key", "create", "--budget", "1000"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    port = free_port()
    argv = [
        str(VENV_BIN / "sandbox"),
        "gateway",
        "serve",
        "--config",
        str(cfg),
        "--listen",
        f"127.0.0.1:{port}",
    ]
    return argv, env, key + f" http://127.0.0.1:{port}"


def litellm_target(exe: Path, up_url: str, home: Path) -> tuple[list[str], dict[str, str], str]:
    cfg = home / "litellm.yaml"
    cfg.write_text(f"""model_list:
  - model_name: gpt-test
    litellm_params:
      model: openai/gpt-test
      api_base: {up_url}/v1
      api_key: {UP_KEY}
general_settings:
  master_key: sk-litellm-master
""")
    port = free_port()
    argv = [str(exe), "--config", str(cfg), "--port", str(port), "--host", "127.0.0.1", "--num_workers", "1"]
    env = {**os.environ, "LITELLM_LOG": "ERROR", "LITELLM_TELEMETRY": "False"}
    return argv, env, f"sk-litellm-master http://127.0.0.1:{port}"


def measure(url: str, key: str, rates: list[float], seconds: float) -> dict[str, object]:
    out: dict[str, object] = {}
    for rate in rates:
        for stream in (False, True):
            xs = asyncio.run(open_loop(url, key, rate, seconds, stream))
            out[f"{'ttfb' if stream else 'full'}@{rate:g}"] = {"p50": pct(xs, 50), "p99": pct(xs, 99)}
    out["max_rps"] = asyncio.run(closed_loop(url, key, seconds))
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--think", type=float, default=0.02, help="the stand-in's think time (s)")
    ap.add_argument("--no-litellm", action="store_true")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--baseline", type=Path, help="also measure the gateway from this source tree")
    args = ap.parse_args()
    rates = [50.0, 200.0]
    home = Path(tempfile.mkdtemp(prefix="bench-gw-"))
    results: dict[str, dict[str, object]] = {}
    exe = None if args.no_litellm else ensure_litellm()
    try:
        with process(
            [str(VENV_BIN / "python"), "-c", STANDIN, str(REPO), UP_KEY, str(args.think)]
        ) as standin:
            assert standin.stdout is not None
            up_url = standin.stdout.readline().decode().strip()
            results["direct"] = measure(f"{up_url}/v1/chat/completions", UP_KEY, rates, args.seconds)
            argv, env, kurl = gateway_target(up_url, home)
            key, base = kurl.split(" ")
            with process(argv, env) as gw:
                wait_http(base + "/healthz", gw)
                results["sandbox gateway"] = measure(
                    f"{base}/openai/v1/chat/completions", key, rates, args.seconds
                )
            if args.baseline is not None:
                argv, env, kurl = gateway_target(up_url, home / "baseline")
                key, base = kurl.split(" ")
                with process(from_tree(args.baseline, argv), env) as gw:
                    wait_http(base + "/healthz", gw)
                    results[f"sandbox gateway ({args.baseline})"] = measure(
                        f"{base}/openai/v1/chat/completions", key, rates, args.seconds
                    )
            if exe is not None:
                argv, env, kurl = litellm_target(exe, up_url, home)
                key, base = kurl.split(" ")
                with process(argv, env) as ll:
                    wait_http(base + "/health/liveliness", ll, timeout=180)
                    results["LiteLLM proxy"] = measure(
                        f"{base}/v1/chat/completions", key, rates, args.seconds
                    )
    finally:
        shutil.rmtree(home, ignore_errors=True)
    report(results, args.think)
    out = REPO / "benchmarks" / "results"
    out.mkdir(exist_ok=True)
    (out / f"gateway-{time.strftime('%Y%m%dT%H%M%S')}.json").write_text(json.dumps(results, indent=2))
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


def report(results: dict[str, dict[str, object]], think: float) -> None:
    direct = results["direct"]
    print(f"upstream stand-in think time {think * 1000:g} ms; added = peer percentile - direct percentile\n")
    print("| path | rate | added p50 full | added p99 full | added p50 TTFB | added p99 TTFB |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        if name == "direct":
            continue
        for rate in ("50", "200"):
            cells = []
            for kind in ("full", "ttfb"):
                mine, base = r[f"{kind}@{rate}"], direct[f"{kind}@{rate}"]
                assert isinstance(mine, dict) and isinstance(base, dict)
                cells += [f"{mine['p50'] - base['p50']:+.2f} ms", f"{mine['p99'] - base['p99']:+.2f} ms"]
            print(f"| {name} | {rate}/s | " + " | ".join(cells) + " |")
    print("\n| path | max requests/s (64 in flight) |\n|---|---:|")
    for name, r in results.items():
        print(f"| {name} | {float(r['max_rps']):.0f} |")  # type: ignore[arg-type]


if __name__ == "__main__":
    sys.exit(main())
