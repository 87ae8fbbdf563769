"""The offered-tools check reads both wire formats, Codex's namespaces included."""

from __future__ import annotations

from sandbox.mcp._agent import OUR_PREFIX, AgentKind, agent_argv, tool_names


def test_tool_names_of_each_format() -> None:
    tools = [
        {"name": "mcp__sandbox__bash", "input_schema": {}},  # Anthropic
        {"type": "function", "function": {"name": "Bash"}},  # OpenAI chat
        {"type": "namespace", "name": "mcp__sandbox",  # Codex on the Responses API
         "tools": [{"type": "function", "name": "read_file"}]},
        {"type": "web_search"},  # a hosted tool: no name
    ]
    assert tool_names(tools) == ["mcp__sandbox__bash", "Bash", "mcp__sandbox__read_file",
                                 "web_search"]
    assert [n for n in tool_names(tools) if not n.startswith(OUR_PREFIX)] == ["Bash",
                                                                              "web_search"]
    assert tool_names("not a list") == []


def test_claude_gets_no_builtin_tools_and_only_our_server() -> None:
    from pathlib import Path

    argv = agent_argv(AgentKind.CLAUDE, Path("/x/claude"), "/run/sandbox-mcp/mcp.json",
                      ["-p", "hi"])
    assert argv[0] == "/run/agent/claude" and argv[-2:] == ("-p", "hi")
    i = argv.index("--tools")
    assert argv[i + 1] == ""  # an allowlist naming no built-in
    assert "--strict-mcp-config" in argv and "mcp__sandbox" in argv
