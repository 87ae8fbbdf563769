"""The agents' command lines, and the tools their keys may offer (see test_gateway_tools)."""

from __future__ import annotations

from sandbox.mcp._agent import EXTRA_ALLOWED, OUR_PREFIX, AgentKind, agent_argv, allowed_tools
from sandbox.mcp._server import TOOL_NAMES


def test_the_agents_key_allows_our_tools_by_exact_name() -> None:
    for kind in AgentKind:
        allowed = allowed_tools(kind).allowed
        assert {f"{OUR_PREFIX}{n}" for n in TOOL_NAMES} <= allowed
        assert f"{OUR_PREFIX}x__bash" not in allowed  # an MCP server named `sandbox__x`
        assert allowed - {f"{OUR_PREFIX}{n}" for n in TOOL_NAMES} == EXTRA_ALLOWED[kind]


def test_claude_gets_no_builtin_tools_and_only_our_server() -> None:
    from pathlib import Path

    argv = agent_argv(AgentKind.CLAUDE, Path("/x/claude"), "/run/sandbox-mcp/mcp.json",
                      ["-p", "hi"])
    assert argv[0] == "/run/agent/claude" and argv[-2:] == ("-p", "hi")
    i = argv.index("--tools")
    assert argv[i + 1] == ""  # an allowlist naming no built-in
    assert "--strict-mcp-config" in argv and "mcp__sandbox" in argv
