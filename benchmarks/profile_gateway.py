"""Where the gateway's CPU goes per call: a fixed number of calls through `sandbox gateway serve`.

    .venv/bin/python benchmarks/profile_gateway.py [--calls 2000] [--inflight 16] [--stream]
                                                   [--cprofile FILE] [--code DIR]
                                                   [--floor constant|proxy]

The same stand-in and gateway set-up as bench_gateway.py (a virtual key with a budget, audit and
bodies on). Reports the gateway process's CPU time per call (user + system, from /proc, so other
processes' load on the machine changes it little) over the fixed number of calls after a
warm-up, split into the event loop's thread and the others (the audit writer). With --cprofile
FILE, the server runs under cProfile and its stats go to FILE (the event loop's thread only;
read them with `python -m pstats FILE`; cProfile's own overhead inflates the figures).
Instruction counts (`perf stat -e instructions`) would not depend on the machine's load, but
this VM has no hardware counters. --code DIR serves the gateway from another source tree (a
`git worktree` of an older commit), to compare before and after on the same machine.
--floor serves, instead of the gateway, the same uvicorn (httptools, uvloop) with a bare ASGI
app answering a constant (`constant`) or passing the body to the stand-in with aiohttp
(`proxy`): what any gateway built on these costs before doing anything of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_gateway import REPO, STANDIN, UP_KEY, VENV_BIN, from_tree, gateway_target, one, process, wait_http

FLOOR = r"""
import sys, aiohttp, uvicorn
up, port, mode, key = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
http = None

async def app(scope, receive, send):
    global http
    if scope["type"] == "lifespan":
        while (await receive())["type"] == "lifespan.startup":
            http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), auto_decompress=False)
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    body, more = b"", True
    while more:
        m = await receive()
        body, more = body + m.get("body", b""), m.get("more_body", False)
    status, data = 200, b'{"usage": {}}'
    if mode == "proxy":
        headers = {"authorization": "Bearer " + key, "content-type": "application/json"}
        async with http.post(up + "/v1/chat/completions", data=body, headers=headers) as r:
            status, data = r.status, await r.read()
    length = str(len(data)).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", length)]})
    await send({"type": "http.response.body", "body": data})

uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, loop="uvloop",
            http="httptools", proxy_headers=False, server_header=False)
"""


def cpu_seconds(pid: int, task: int | None = None) -> float:
    """User + system CPU of process `pid` (or of its thread `task`)."""
    where = f"/proc/{pid}/task/{task}/stat" if task else f"/proc/{pid}/stat"
    fields = Path(where).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def calls(url: str, key: str, n: int, inflight: int, stream: bool) -> None:
    left = n
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:

        async def worker() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                await one(http, url, key, stream)

        await asyncio.gather(*(worker() for _ in range(inflight)))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--inflight", type=int, default=16)
    ap.add_argument("--stream", action="store_true")
    ap.add_argument("--think", type=float, default=0.02)
    ap.add_argument("--cprofile", type=Path)
    ap.add_argument("--code", type=Path, help="serve the gateway from this source tree")
    ap.add_argument("--floor", choices=["constant", "proxy"], help="a bare ASGI app instead")
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="prof-gw-"))
    try:
        with process([str(VENV_BIN / "python"), "-c", STANDIN, str(REPO), UP_KEY, str(args.think)]) as st:
            assert st.stdout is not None
            up_url = st.stdout.readline().decode().strip()
            argv, env, kurl = gateway_target(up_url, home)
            key, base = kurl.split(" ")
            if args.floor:
                port = base.rsplit(":", 1)[1]
                argv = [str(VENV_BIN / "python"), "-c", FLOOR, up_url, port, args.floor, UP_KEY]
            if args.code:
                argv = from_tree(args.code, argv)
            if args.cprofile:
                argv = [str(VENV_BIN / "python"), "-m", "cProfile", "-o", str(args.cprofile), *argv]
            url = f"{base}/openai/v1/chat/completions"
            with process(argv, env) as gw:
                wait_http(base + ("/" if args.floor else "/healthz"), gw)
                asyncio.run(calls(url, key, 200, args.inflight, args.stream))  # warm-up
                before, t0 = cpu_seconds(gw.pid), time.perf_counter()
                loop_before = cpu_seconds(gw.pid, gw.pid)
                asyncio.run(calls(url, key, args.calls, args.inflight, args.stream))
                cpu, wall = cpu_seconds(gw.pid) - before, time.perf_counter() - t0
                loop_cpu = cpu_seconds(gw.pid, gw.pid) - loop_before
                print(f"{args.calls} calls ({'stream' if args.stream else 'complete'}, "
                      f"{args.inflight} in flight) in {wall:.2f} s: {args.calls / wall:.0f}/s; "
                      f"gateway CPU {cpu * 1000 / args.calls:.3f} ms per call "
                      f"(event loop thread {loop_cpu * 1000 / args.calls:.3f} ms, "
                      f"other threads {(cpu - loop_cpu) * 1000 / args.calls:.3f} ms)")
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
