"""Real agents through the LLM gateway: `sandbox run --llm -- claude -p ...` with only a virtual
key inside. The model is tests/support/llm_standin.py on the host's loopback, behind the
in-process gateway, which holds the only real key (in a 0600 key file outside the sandbox).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from tests.conftest import Cli, require
from tests.e2e.test_claude_code import E2E, QUIET, claude_binary, place_agent
from tests.support.gateway import PRICES
from tests.support.llm_standin import MessagesStandIn, Text, ToolUse, Turn
from tests.support.provider_standin import ProviderStandIn

REAL_KEY = "sk-ant-api03-REAL-gateway-only-0123456789abcdef"

SCRIPT = [
    Turn(
        Text("Writing it."),
        ToolUse(
            "Bash",
            {
                "command": "echo via-gateway > note.txt && env | grep -c sk-ant-api03-REAL || true",
                "description": "Write the note",
            },
        ),
    ),
    Turn(Text("Done.")),
]


def _config(cli: Cli, url: str) -> dict[str, str]:
    """Anthropic and OpenAI providers at the stand-in; the real key in a 0600 file."""
    keyfile = cli.home.parent / "provider.key"
    keyfile.write_text(REAL_KEY + "\n")
    keyfile.chmod(0o600)
    cfg = cli.home.parent / "gateway.toml"
    cfg.write_text(
        f'[providers.anthropic]\ntype = "anthropic"\nbase_url = "{url}"\n'
        f'api_key_file = "{keyfile}"\n'
        f'[providers.openai]\ntype = "openai"\nbase_url = "{url}/v1"\n'
        f'api_key_file = "{keyfile}"\n'
        '[routes]\n"claude-*" = ["anthropic"]\n"gpt-*" = ["openai"]\n'
        "[gateway]\nallow_unpriced = true\n" + PRICES
    )
    if cli.user is not None:
        subprocess.run(["chown", cli.user, str(keyfile), str(cfg)], check=True)
    return {"SANDBOX_GATEWAY_CONFIG": str(cfg)}


def test_claude_code_through_the_gateway_with_a_virtual_key(user_cli: tuple[Cli, Path]) -> None:
    cli, workspace = user_cli
    agent = place_agent(workspace, claude_binary())
    with MessagesStandIn(SCRIPT, api_key=REAL_KEY, model="claude-standin-1") as llm:
        proc = cli(
            "run", "-C", str(workspace), "--level", "2", "--json", "--llm",
            *[arg for k, v in QUIET.items() for arg in ("-e", f"{k}={v}")],
            "--", agent, "-p", "Write note.txt", "--allowedTools", "Bash", "--output-format", "json",
            env=_config(cli, llm.url), timeout=240,
        )  # fmt: skip
        assert proc.returncode == 0, (proc.stdout + proc.stderr).decode(errors="replace")[-3000:]
        main = llm.main_loop()
    assert len(main) >= 2
    # The provider saw the real key; the agent only ever had its virtual key.
    assert {r.headers["x-api-key"] for r in llm.received} == {REAL_KEY}
    assert main[-1].tool_results()[0].strip() == "0"  # the real key is not in the agent's env
    outcome = json.loads(proc.stdout)
    assert outcome["changes"]["changes"][0]["path"] == "note.txt", outcome
    shown = json.loads(cli("show", "last", "--json", check=True).stdout)
    assert shown["llm"]["calls"] == len(llm.received)
    records = [json.loads(line) for line in (cli.home / "audit.log").read_text().splitlines()]
    calls = [r for r in records if r["event"] == "llm.call"]
    assert calls and all(c["run"] == outcome["run"] and c["data"]["status"] == 200 for c in calls)
    assert any(c["data"]["stream"] for c in calls)  # Claude Code streams
    assert REAL_KEY not in (cli.home / "audit.log").read_text()


def codex_binary() -> Path:
    path = E2E / "node_modules/@openai/codex-linux-x64/vendor/x86_64-unknown-linux-musl/bin/codex"
    require(
        os.access(path, os.X_OK), "Codex CLI is not installed: run tests/e2e/setup.sh (npm, project-local)"
    )
    return path


def test_codex_through_the_gateway_with_a_virtual_key(user_cli: tuple[Cli, Path]) -> None:
    cli, workspace = user_cli
    agent = place_agent(workspace, codex_binary(), "codex")
    # Codex reads its provider from config; `-c` says: the gateway's OpenAI base, the key from
    # $OPENAI_API_KEY (both set by --llm), the Responses API over HTTP.
    provider = (
        'model_providers.gw={name="gateway",base_url="http://127.0.0.1:8787/openai/v1",'
        'env_key="OPENAI_API_KEY",wire_api="responses"}'
    )
    with ProviderStandIn(api_key=REAL_KEY, text="Hello from the gateway stand-in.") as up:
        env = _config(cli, up.url)
        proc = cli(
            "run", "-C", str(workspace), "--level", "2", "--llm", "--",
            agent, "exec", "--skip-git-repo-check", "-m", "gpt-test",
            "-c", 'model_provider="gw"', "-c", provider, "say hello",
            env=env, timeout=240,
        )  # fmt: skip
        received = list(up.received)
    assert proc.returncode == 0, (proc.stdout + proc.stderr).decode(errors="replace")[-3000:]
    assert "Hello from the gateway stand-in." in proc.stdout.decode()
    assert received and {r.path for r in received} == {"/v1/responses"}
    assert {r.headers["authorization"] for r in received} == {f"Bearer {REAL_KEY}"}
    records = [json.loads(line) for line in (cli.home / "audit.log").read_text().splitlines()]
    calls = [r["data"] for r in records if r["event"] == "llm.call"]
    assert calls and all(
        c["api"] == "openai.responses" and c["stream"] and c["output_tokens"] > 0 for c in calls
    )
