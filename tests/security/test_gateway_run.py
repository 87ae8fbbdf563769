"""`sandbox run --llm`: the run reaches models through the gateway with a virtual key only.

Real nsjail, as root and as an unprivileged user; the gateway starts in-process for the run
(from $SANDBOX_GATEWAY_CONFIG), the provider stand-in listens on the host's loopback.
"""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import SANDBOX_BIN, Cli, give
from tests.support.gateway import UPSTREAM_KEY, config_text
from tests.support.provider_standin import ProviderStandIn

# Runs inside the sandbox: one model call, then a search of everything it can read for the real
# key. It gets the key reversed and base64'd (so neither its argv nor any file holds the key).
PROBE = r'''
import base64, json, os, sys, urllib.request
real = base64.b64decode(open("needle").read()).decode()[::-1].encode()
virtual = os.environ["ANTHROPIC_API_KEY"].encode()
body = json.dumps({"model": "claude-test", "max_tokens": 30,
                   "messages": [{"role": "user", "content": "hi"}]}).encode()
req = urllib.request.Request(os.environ["ANTHROPIC_BASE_URL"] + "/v1/messages", data=body,
                             headers={"x-api-key": virtual.decode(), "content-type": "application/json",
                                      "anthropic-version": "2023-06-01"})
answer = json.loads(urllib.request.urlopen(req, timeout=30).read())["content"][0]["text"]
found, seen_virtual, scanned = [], [], 0
def check(where, data):
    global scanned
    scanned += 1
    if real in data:
        found.append(where)
    if virtual in data:
        seen_virtual.append(where)
check("env", b"\0".join(f"{k}={v}".encode() for k, v in os.environ.items()))
for pid in os.listdir("/proc"):
    if pid.isdigit():
        for f in ("environ", "cmdline"):
            try:
                check(f"/proc/{pid}/{f}", open(f"/proc/{pid}/{f}", "rb").read())
            except OSError:
                pass
skip = ("/proc", "/sys", "/dev", "/usr", "/lib", "/lib32", "/lib64", "/libx32", "/bin", "/sbin")
for top, dirs, files in os.walk("/"):
    dirs[:] = [d for d in dirs if os.path.join(top, d) not in skip]
    for name in files:
        path = os.path.join(top, name)
        try:
            with open(path, "rb") as fh:
                check(path, fh.read(8 << 20))
        except OSError:
            pass
print(json.dumps({"answer": answer, "found": found, "virtual_in": seen_virtual[:3], "scanned": scanned,
                  "base": os.environ["ANTHROPIC_BASE_URL"], "openai": os.environ["OPENAI_BASE_URL"]}))
'''


@pytest.fixture
def upstream() -> Iterator[ProviderStandIn]:
    with ProviderStandIn(api_key=UPSTREAM_KEY) as up:
        yield up


def _gateway_config(cli: Cli, upstream: ProviderStandIn) -> dict[str, str]:
    """The gateway config with the real key in a 0600 file of the person running sandbox."""
    keyfile = cli.home.parent / "upstream.key"
    keyfile.write_text(UPSTREAM_KEY + "\n")
    keyfile.chmod(0o600)
    cfg = cli.home.parent / "gateway.toml"
    cfg.write_text(config_text(upstream.url).replace('api_key_env = "UP_KEY"', f'api_key_file = "{keyfile}"'))
    if cli.user is not None:
        subprocess.run(["chown", cli.user, str(keyfile), str(cfg)], check=True)
    return {"SANDBOX_GATEWAY_CONFIG": str(cfg)}


def test_run_llm_uses_a_virtual_key_and_the_real_one_is_nowhere_inside(
        sbx: tuple[Cli, Path], upstream: ProviderStandIn) -> None:
    cli, ws = sbx
    env = _gateway_config(cli, upstream)
    (ws / "probe.py").write_text(PROBE)
    (ws / "needle").write_text(base64.b64encode(UPSTREAM_KEY[::-1].encode()).decode())
    give(cli, ws)
    r = cli("run", "-C", str(ws), "--llm", "--", "python3", "probe.py", env=env, timeout=180)
    assert r.returncode == 0, r.stderr.decode()
    out = json.loads(r.stdout.decode().strip().splitlines()[-1])
    assert out["answer"] == upstream.text  # the call went through the gateway
    assert out["base"] == "http://127.0.0.1:8787/anthropic" and out["openai"] == "http://127.0.0.1:8787/openai/v1"
    assert out["found"] == [] and out["scanned"] > 50  # the real key: nowhere it can read
    assert "env" in out["virtual_in"]  # the search does find what is there
    assert [rec.headers["x-api-key"] for rec in upstream.received] == [UPSTREAM_KEY]
    # The call is audited against the run and its session; the run's key is revoked.
    show = json.loads(cli("show", "last", "--json", cwd=ws, check=True).stdout)
    assert show["llm"]["calls"] == 1 and show["llm"]["output_tokens"] == 30  # capped by max_tokens
    keys = json.loads(cli("gateway", "key", "ls", "--json", check=True).stdout)
    assert len(keys) == 1 and keys[0]["status"] == "revoked" and keys[0]["session"] == show["session"]
    audit = cli("audit", "--json", check=True).stdout.decode()
    assert UPSTREAM_KEY not in audit


def test_run_llm_policy_budget_and_models(sbx: tuple[Cli, Path], upstream: ProviderStandIn) -> None:
    cli, ws = sbx
    env = _gateway_config(cli, upstream)
    (ws / "sandbox-llm.toml").write_text('[llm]\nbudget = "0.000001usd"\nmodels = ["gpt-*"]\n')
    give(cli, ws)
    code = ("import json, os, urllib.request, urllib.error\n"
            "for model in ('claude-test', 'gpt-test'):\n"
            "    msgs = [{'role': 'user', 'content': 'x'}]\n"
            "    body = json.dumps({'model': model, 'messages': msgs}).encode()\n"
            "    url = os.environ['OPENAI_BASE_URL'] + '/chat/completions'\n"
            "    req = urllib.request.Request(url, data=body,\n"
            "        headers={'authorization': 'Bearer ' + os.environ['OPENAI_API_KEY'],\n"
            "                 'content-type': 'application/json'})\n"
            "    try:\n"
            "        urllib.request.urlopen(req)\n"
            "    except urllib.error.HTTPError as e:\n"
            "        print(e.code, json.loads(e.read())['error']['message'])\n")
    r = cli("run", "-C", str(ws), "--llm", "--policy", str(ws / "sandbox-llm.toml"), "--",
            "python3", "-c", code, env=env, timeout=180)
    assert r.returncode == 0, r.stderr.decode()
    lines = r.stdout.decode().splitlines()
    assert lines[0].startswith("403 model claude-test is not allowed")
    assert lines[1].startswith("402 budget exceeded") and "limit" in lines[1]
    assert upstream.received == []


def test_run_llm_with_a_bad_gateway_config_exits_2(sbx: tuple[Cli, Path], upstream: ProviderStandIn) -> None:
    cli, ws = sbx
    bad = cli.home.parent / "bad.toml"
    bad.write_text("[providers.x]\ntype = 'nope'\n")
    give(cli, bad)
    r = cli("run", "-C", str(ws), "--llm", "--", "true", env={"SANDBOX_GATEWAY_CONFIG": str(bad)})
    assert r.returncode == 2 and b"unknown provider type 'nope'" in r.stderr


def test_run_llm_through_a_running_gateway(cli: Cli, workspace: Path, upstream: ProviderStandIn) -> None:
    """$SANDBOX_GATEWAY_URL: the run's key is minted in the shared state, the sandbox reaches
    the running gateway through a relay on its own loopback, and nothing else."""
    import socket
    import time
    import urllib.request

    env = _gateway_config(cli, upstream)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    serve = subprocess.Popen([str(SANDBOX_BIN), "gateway", "serve", "--listen", f"127.0.0.1:{port}"],
                             env=cli.env(env), stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        (workspace / "probe.py").write_text(PROBE)
        (workspace / "needle").write_text(base64.b64encode(UPSTREAM_KEY[::-1].encode()).decode())
        r = cli("run", "-C", str(workspace), "--llm", "--", "python3", "probe.py",
                env={**env, "SANDBOX_GATEWAY_URL": f"http://127.0.0.1:{port}"}, timeout=180)
    finally:
        serve.terminate()
        serve.wait(30)
    assert r.returncode == 0, r.stderr.decode()
    out = json.loads(r.stdout.decode().strip().splitlines()[-1])
    assert out["answer"] == upstream.text and out["found"] == []
    assert [rec.headers["x-api-key"] for rec in upstream.received] == [UPSTREAM_KEY]
    calls = [json.loads(line) for line in (cli.home / "audit.log").read_text().splitlines()]
    assert [c["data"]["status"] for c in calls if c["event"] == "llm.call"] == [200]
