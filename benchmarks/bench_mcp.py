"""Round trip of one MCP tool call through `sandbox mcp` over stdio, next to a bare nsjail launch
measured in the same run, interleaved.

    .venv/bin/python benchmarks/bench_mcp.py [--n 30] [--json out.json]

Two clients: a lean JSON-RPC client over the server's stdio pipes (tests/support/
jsonrpc_client.py: what an agent such as Claude Code or Codex does, at ~0.1 ms a call), and the
SDK's own Python client (`mcp.Client`, which costs ~2 ms a call by itself). Contenders:
`bash {command: "true"}` (one sandboxed run of the session: snapshot, launch, diff, audit),
`read_file` of a small file (no sandbox: the session's view read with no-follow fds), a bare
nsjail launch of `true`, the same run as a library call, and the floor of the transport: a tool
that does nothing on a minimal server of the same SDK over the same stdio transport. Reports
medians and ratios; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
VENV_BIN = Path(sys.executable).parent

import anyio  # noqa: E402
from bench_run import nsjail_argv, run_quiet  # noqa: E402 (benchmarks/ is sys.path[0])
from mcp import Client  # noqa: E402
from mcp.client.stdio import StdioServerParameters  # noqa: E402

from tests.support.jsonrpc_client import LeanClient  # noqa: E402

ECHO_SERVER = """
from mcp.server.mcpserver import MCPServer
server = MCPServer("echo", log_level="WARNING")
@server.tool()
async def echo(text: str) -> str:
    return text
server.run()
"""


async def round_trips(n: int, base: Path) -> dict[str, float]:
    ws = base / "ws"
    ws.mkdir()
    (ws / "small.txt").write_text("".join(f"line {i}\n" for i in range(40)))
    (base / "org.toml").write_text("")
    env = dict(os.environ, SANDBOX_HOME=str(base / "home"),
               SANDBOX_ORG_POLICY=str(base / "org.toml"))
    params = StdioServerParameters(command=str(VENV_BIN / "sandbox"),
                                   args=["mcp", "-C", str(ws), "--session", "bench"], env=env)
    nsjail = nsjail_argv()
    (base / "echo_server.py").write_text(ECHO_SERVER)
    echo_params = StdioServerParameters(command=sys.executable,
                                        args=[str(base / "echo_server.py")])
    server_argv = [str(VENV_BIN / "sandbox"), "mcp", "-C", str(ws), "--session", "bench-lean"]
    echo_argv = [sys.executable, str(base / "echo_server.py")]
    async with Client(params, mode="legacy") as client, \
            Client(echo_params, mode="legacy") as echo_client:
        lean, lean_echo = LeanClient(server_argv, env), LeanClient(echo_argv)

        async def bash() -> None:
            r = await client.call_tool("bash", {"command": "true"})
            assert not r.is_error and "exit status: 0" in r.content[0].text  # type: ignore[union-attr]

        async def read() -> None:
            r = await client.call_tool("read_file", {"path": "small.txt"})
            assert not r.is_error, r

        async def lean_bash() -> None:
            assert "exit status: 0" in lean.call_tool("bash", {"command": "true"})

        async def lean_read() -> None:
            assert "line 39" in lean.call_tool("read_file", {"path": "small.txt"})

        async def bare() -> None:
            run_quiet(nsjail)

        async def echo() -> None:
            await echo_client.call_tool("echo", {"text": "x"})

        async def lean_floor() -> None:
            lean_echo.call_tool("echo", {"text": "x"})

        runner, req = _library_run(base)

        async def library() -> None:
            runner.run(req)

        fns: dict[str, Callable[[], Awaitable[None]]] = {
            "bare nsjail launch": bare,
            "MCP bash true (lean client)": lean_bash,
            "MCP read_file (small) (lean client)": lean_read,
            "SDK floor: no-op tool, same transport (lean client)": lean_floor,
            "MCP bash true (SDK client)": bash, "MCP read_file (small) (SDK client)": read,
            "SDK floor: no-op tool, same transport (SDK client)": echo,
            "library call: Runner.run(bash -c true)": library}
        for fn in fns.values():  # warm-up
            await fn()
            await fn()
        samples: dict[str, list[float]] = {k: [] for k in fns}
        for _ in range(n):
            for name, fn in fns.items():
                t = time.perf_counter()
                await fn()
                samples[name].append(time.perf_counter() - t)
        lean.close()
        lean_echo.close()
    return {k: statistics.median(v) * 1000 for k, v in samples.items()}


def _library_run(base: Path) -> tuple[Any, Any]:
    """What `bash` does underneath, called in-process (a session of its own, changes held)."""
    from sandbox._home import HomeLayout
    from sandbox._runner import Runner, RunRequest
    from sandbox.audit import AuditLog
    from sandbox.backends import get_backend
    from sandbox.policy import Layer, merge
    from sandbox.store import Store

    layout = HomeLayout(base / "home-lib").ensure()
    runner = Runner(layout, Store(layout), AuditLog(layout.audit), get_backend("nsjail"))
    policy = merge([Layer("flags", "--level", {"level": 2})])
    return runner, RunRequest(argv=("bash", "-c", "true"), workspace=base / "ws", policy=policy,
                              session="lib")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=30)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="sbx-bench-mcp-") as tmp:
        base = Path(tmp)
        os.chmod(base, 0o755)
        results = anyio.run(round_trips, args.n, base)
    print(f"load average (1 min) before / after: {load_before:.1f} / {os.getloadavg()[0]:.1f}")
    bare = results["bare nsjail launch"]
    print("| per tool call | median | vs bare nsjail | target |")
    print("|---|---:|---:|---|")
    def verdict(ok: bool) -> str:
        return "met" if ok else "**not met**"

    targets = {}
    for client in ("lean client", "SDK client"):
        b, r = f"MCP bash true ({client})", f"MCP read_file (small) ({client})"
        targets[b] = f"within 4x: {verdict(results[b] <= 4 * bare)}"
        targets[r] = f"under 2 ms: {verdict(results[r] < 2)}"
    for name, ms in results.items():
        print(f"| {name} | {ms:.2f} ms | {ms / bare:.2f}x | {targets.get(name, '')} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
