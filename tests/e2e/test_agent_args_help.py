"""The refused-flag table is checked against the installed Claude Code: each option its `--help`
lists is either refused (sandbox/mcp/_agentargs.py) or judged harmless here, with the reason.
A new version that adds an option fails this test until someone decides which it is. (Hidden
options, not in `--help`, were reviewed by hand for 2.1.330: the table names those it refuses.)"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from sandbox.mcp._agentargs import CLAUDE_REFUSED
from tests.e2e.test_claude_code import claude_binary

# Options of Claude Code 2.1.330's `--help` that leave its tools, MCP servers, settings,
# plugins, directories and permissions as `sandbox agent` sets them.
HARMLESS = {
    # the prompt, the model and how it answers
    "--print", "--model", "--fallback-model", "--effort", "--betas", "--append-system-prompt",
    "--system-prompt", "--system-prompt-snapshot", "--exclude-dynamic-system-prompt-sections",
    "--output-format", "--input-format", "--json-schema", "--include-partial-messages",
    "--include-hook-events", "--replay-user-messages", "--forward-subagent-text",
    "--max-budget-usd", "--autocompact", "--prompt-suggestions", "--verbose", "--debug",
    "--debug-file", "--ax-screen-reader", "--name", "--help", "--version",
    # conversations, kept in the agent's sandbox (its /root is thrown away)
    "--continue", "--resume", "--fork-session", "--session-id", "--no-session-persistence",
    "--from-pr", "--file",
    # fewer tools or prompts, never more
    "--bare", "--safe-mode", "--restricted", "--disable-slash-commands", "--no-chrome",
    "--permission-prompts",
    # picks one of the agent definitions it has (none but the built-ins: nothing is loaded)
    "--agent",
    # elsewhere or in the background: its only network is the gateway, its sandbox ends with it
    "--bg", "--background", "--desktop", "--remote-control",
    "--remote-control-session-name-prefix", "--worktree", "--tmux",
}


def test_every_option_of_claudes_help_is_refused_or_judged_harmless(tmp_path: Path) -> None:
    out = subprocess.run([str(claude_binary()), "--help"], capture_output=True, text=True,
                         check=True, timeout=60,
                         env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    listed = set(re.findall(r"^  (?:-\w, )?(--[\w-]+)(?:, (--[\w-]+))?", out.stdout, re.M))
    options = {name for pair in listed for name in pair if name}
    assert len(options) > 50, out.stdout  # the help was read
    refused = {n for flag in CLAUDE_REFUSED for n in flag.names}
    assert not refused & HARMLESS
    unjudged = options - refused - HARMLESS
    assert not unjudged, f"new Claude Code options: refuse them or judge them harmless: {unjudged}"
