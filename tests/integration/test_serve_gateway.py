"""One process: `sandbox serve` hosts the LLM gateway at /llm; its calls are audited and the
audit records are signed by the same process."""

from __future__ import annotations

import json
import time
from pathlib import Path

from sandbox.audit import AuditLog
from tests.conftest import Cli
from tests.support.gateway import UPSTREAM_KEY, config_text
from tests.support.provider_standin import ProviderStandIn
from tests.support.serve import Client, free_port, serving, state_home


def test_serve_hosts_the_gateway(base_dir: Path) -> None:
    home = state_home(base_dir)
    cli = Cli(home=home)
    env = {"UP_KEY": UPSTREAM_KEY}
    with ProviderStandIn(api_key=UPSTREAM_KEY) as up:
        (home / "gateway.toml").write_text(config_text(up.url))
        key = cli("gateway", "key", "create", "--budget", "1", env=env, check=True)
        vkey = key.stdout.decode().strip()
        listen = f"127.0.0.1:{free_port()}"
        with serving(cli, listen, env=env):
            c = Client(listen)
            body = {"model": "claude-test", "max_tokens": 20,
                    "messages": [{"role": "user", "content": "hi"}]}
            r = c.post("/llm/anthropic/v1/messages", body,
                       headers={"x-api-key": vkey, "anthropic-version": "2023-06-01"})
            assert r.status == 200, r.body
            assert json.loads(r.body)["usage"]["output_tokens"] == 20  # capped by max_tokens
            assert c.post("/llm/anthropic/v1/messages", body).status == 401  # no virtual key
            log = AuditLog(home / "audit.log")
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                calls = [x for x in log.records() if x.event == "llm.call"]
                signed = json.loads((home / "audit.checkpoints").read_text().splitlines()[-1]) \
                    if (home / "audit.checkpoints").exists() else {"seq": 0}
                if calls and signed["seq"] >= calls[0].seq:
                    break
                time.sleep(0.1)
            else:
                raise AssertionError("the gateway's call was not audited and signed")
        assert len(up.received) == 1
