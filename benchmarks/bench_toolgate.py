"""The cost of a key's tool restriction (`sandbox agent`'s key), next to an unrestricted key in
the same run.

    .venv/bin/python benchmarks/bench_toolgate.py [--n 200] [--kb 200] [--json]

A real gateway (in-process, as `sandbox agent` runs it) in front of the provider stand-in; the
same agent-shaped Messages request (our eight MCP tools with schemas, a transcript of --kb KB)
is sent through an unrestricted key and a restricted one, interleaved (both orders). The restricted path
reads the offered tools and forwards the re-encoded body (what was checked is what is sent).
Also: a request offering a foreign tool, refused before dispatch.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._timing import interleaved_ms
from sandbox.gateway import KeyStore
from sandbox.mcp._agent import AgentKind, allowed_tools
from sandbox.mcp._server import TOOL_NAMES
from tests.support.gateway import UPSTREAM_KEY, config_text, running_gateway, url_of
from tests.support.provider_standin import ProviderStandIn


def body(kb: int, extra_tool: str | None = None) -> bytes:
    schema = {"type": "object", "properties": {"path": {"type": "string", "description": "x" * 200}}}
    tools = [{"name": f"mcp__sandbox__{n}", "description": "d" * 400, "input_schema": schema}
             for n in TOOL_NAMES]
    if extra_tool:
        tools.append({"name": extra_tool, "input_schema": schema})
    turns = [{"role": "user" if i % 2 == 0 else "assistant", "content": "word " * 200}
             for i in range(max(1, kb))]  # ~1 KB each
    return json.dumps({"model": "claude-test", "max_tokens": 16, "messages": turns,
                       "tools": tools}).encode()


def post(url: str, key: str, data: bytes) -> int:
    req = urllib.request.Request(url + "/anthropic/v1/messages", data, {
        "x-api-key": key, "content-type": "application/json", "anthropic-version": "2023-06-01"})
    try:
        with urllib.request.urlopen(req) as resp:
            resp.read()
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        exc.read()
        return int(exc.code)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--kb", type=int, default=200, help="transcript size per request (KB)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    ok, bad = body(args.kb), body(args.kb, extra_tool="Bash")
    with tempfile.TemporaryDirectory() as tmp, ProviderStandIn(api_key=UPSTREAM_KEY) as up, \
            running_gateway(Path(tmp), config_text(up.url), {}) as gw:
        store = KeyStore.at_home(Path(tmp))
        plain, _ = store.create()
        gated, _ = store.create(tools=allowed_tools(AgentKind.CLAUDE))
        url = url_of(gw)
        assert post(url, plain, ok) == 200 and post(url, gated, ok) == 200
        assert post(url, gated, bad) == 403
        # A call's record (its 200 KB body) is written by the recorder's thread after it
        # returns, so the next call pays for some of its predecessor's write: both orders are
        # measured and each key's two medians averaged.
        ms: dict[str, float] = {}
        for order in (("unrestricted key", "restricted key"), ("restricted key", "unrestricted key")):
            calls = {"unrestricted key": lambda: post(url, plain, ok),
                     "restricted key": lambda: post(url, gated, ok)}
            got = interleaved_ms({name: calls[name] for name in order}, args.n)
            for name, v in got.items():
                ms[name] = ms.get(name, 0.0) + v / 2
        ms["restricted key, foreign tool (refused)"] = interleaved_ms(
            {"refused": lambda: post(url, gated, bad)}, args.n)["refused"]
        store.close()
    base = ms["unrestricted key"]
    result = {"kb": args.kb, "n": args.n, "median_ms": ms,
              "restricted_minus_unrestricted_ms": ms["restricted key"] - base}
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"per call, {len(ok) // 1024} KB request, median of {args.n} (interleaved):")
    for name, v in ms.items():
        print(f"  {name:40} {v:7.2f} ms  ({v / base:.2f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
