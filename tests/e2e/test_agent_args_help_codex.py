"""The refused-flag table against the installed Codex CLI, as test_agent_args_help.py does for
Claude Code: each option `codex --help` and `codex exec --help` list is either refused
(sandbox/mcp/_agentargs.py) or judged harmless here, with the reason, so a version that adds one
fails this test until someone decides which. (clap takes no abbreviations: `--sear` and `--conf`
are errors, checked by hand for 0.171; its only short flags without a value are -h and -V.)"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from sandbox.mcp._agentargs import CODEX_REFUSED
from tests.e2e.test_agents_gateway import codex_binary

# Options of Codex CLI 0.171 that leave its tools, MCP servers, provider and directories as
# `sandbox agent` sets them (the gateway refuses any tool offered that is not ours anyway).
HARMLESS = {
    # the prompt, the model and how it answers
    "--model", "--image", "--output-schema", "--color", "--json", "--output-last-message",
    "--help", "--version", "--no-alt-screen", "--thread-source", "--cyber-access-program",
    # fewer features, config or rules, never more
    "--disable", "--strict-config", "--ignore-user-config", "--ignore-rules", "--ephemeral",
    # its own approvals and sandbox for shell commands: its shell tools are off
    "--sandbox", "--ask-for-approval", "--approve-for-me",
    # where it works, inside the agent's sandbox (no workspace is mounted there)
    "--cd", "--worktree", "--skip-git-repo-check", "--trust", "--no-daemon",
}


def _options(home: Path, *sub: str) -> set[str]:
    # a HOME of its own: Codex creates ~/.codex even for --help
    out = subprocess.run([str(codex_binary()), *sub, "--help"], capture_output=True, text=True,
                         check=True, timeout=60, env={"PATH": "/usr/bin:/bin", "HOME": str(home)})
    return set(re.findall(r"^\s+(?:-\w, )?(--[\w-]+)", out.stdout, re.M))


def test_every_option_of_codexs_help_is_refused_or_judged_harmless(tmp_path: Path) -> None:
    options = _options(tmp_path) | _options(tmp_path, "exec")
    assert len(options) > 25, options  # the help was read
    refused = {n for flag in CODEX_REFUSED for n in flag.names}
    assert not refused & HARMLESS
    unjudged = options - refused - HARMLESS
    assert not unjudged, f"new Codex options: refuse them or judge them harmless: {unjudged}"
