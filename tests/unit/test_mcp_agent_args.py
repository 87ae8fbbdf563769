"""AGENT ARGS that would override the agent's confinement are refused, naming the flag and why."""

from __future__ import annotations

import pytest

from sandbox.errors import EXIT_USAGE, UsageError
from sandbox.mcp._agent import AgentKind, check_agent_args
from sandbox.mcp._agentargs import CLAUDE_REFUSED, CODEX_REFUSED

_CLAUDE_NAMES = [(n, f.reason) for f in CLAUDE_REFUSED for n in f.names]


def test_the_claude_table_covers_what_overrides_our_flags() -> None:
    names = {n for n, _ in _CLAUDE_NAMES}
    # the ones `sandbox agent` sets itself, and the others that add tools, servers, settings,
    # plugins or directories in Claude Code 2.1.330
    assert names >= {"--mcp-config", "--strict-mcp-config", "--tools", "--allowedTools",
                     "--allowed-tools", "--disallowedTools", "--disallowed-tools", "--settings",
                     "--setting-sources", "--plugin-dir", "--plugin-url", "--add-dir",
                     "--permission-mode", "--dangerously-skip-permissions", "--agents",
                     "--managed-settings", "--project-config-root", "--plugin-dir-no-mcp"}
    assert len(names) == len(_CLAUDE_NAMES)  # each spelling in one row only
    assert all(n.startswith("--") for n in names)


@pytest.mark.parametrize(("flag", "reason"), _CLAUDE_NAMES)
@pytest.mark.parametrize("form", ["separate", "equals", "after-terminator"])
def test_each_claude_flag_is_refused_in_every_form(flag: str, reason: str, form: str) -> None:
    args = {"separate": ["-p", "go", flag, "x.json"],
            "equals": ["-p", "go", f"{flag}=x.json"],
            # Claude Code reads some flags from the raw argv, `--` or not
            "after-terminator": ["-p", "--", flag, "x"]}[form]
    with pytest.raises(UsageError) as caught:
        check_agent_args(AgentKind.CLAUDE, args)
    assert caught.value.exit_code == EXIT_USAGE
    assert caught.value.message == f"agent argument {flag} is refused: it {reason}"
    assert "\n" not in caught.value.message


def test_claude_args_that_change_no_confinement_pass() -> None:
    check_agent_args(AgentKind.CLAUDE, [
        "-p", "explain --mcp-config and --tools", "--model", "claude-x", "--output-format",
        "json", "--max-turns", "3", "--append-system-prompt", "be brief", "-c", "--verbose",
        "--agent", "reviewer", "--effort=low", "--tools-x", "--settingsfoo"])


def test_codex_flags_are_claude_flags_no_more() -> None:
    check_agent_args(AgentKind.CLAUDE, ["-p", "-c", "mcp_servers.x=1"])  # -c is --continue
    check_agent_args(AgentKind.CODEX, ["exec", "--mcp-config", "x", "--tools", "Bash"])


@pytest.mark.parametrize("args", [
    ["exec", "-c=mcp_servers.x.command=\"sh\"", "hi"],
    ["exec", "-c", "mcp_servers", "hi"],
])
def test_codex_config_keys_in_more_spellings(args: list[str]) -> None:
    with pytest.raises(UsageError, match=r"^agent argument .* is refused: it configures an MCP"):
        check_agent_args(AgentKind.CODEX, args)


def test_codex_table_refuses_by_config_key_only() -> None:
    assert all(f.config_keys for f in CODEX_REFUSED if "-c" in f.names)
    check_agent_args(AgentKind.CODEX, ["exec", "-c", "mcp_servers_note=1", "--config",
                                       "model=\"x\"", "-cmodel_reasoning_effort=low",
                                       "-m", "gpt-x", "--disable", "view_image", "-c",
                                       "featuresx=1", "--json", "-C", "/tmp", "hi"])


@pytest.mark.parametrize(("args", "says"), [
    # a built-in back on, by config key or by flag, in every spelling
    (["exec", "-c", "features.shell_tool=true", "hi"], "turns a built-in tool back on"),
    (["exec", "-c", "features={shell_tool=true}", "hi"], "turns a built-in tool back on"),
    (["exec", "--config=tools.view_image=true", "hi"], "turns a built-in tool back on"),
    (["exec", "-c", 'web_search="live"', "hi"], "turns a built-in tool back on"),
    (["exec", "-cmodel_catalog_json=\"/tmp/m.json\"", "hi"], "turns a built-in tool back on"),
    (["exec", "--enable", "shell_tool", "hi"], "turns a built-in tool back on"),
    (["exec", "--enable=unified_exec", "hi"], "turns a built-in tool back on"),
    (["exec", "--search", "hi"], "web search tool"),
    # another provider than the gateway, or the loop elsewhere
    (["exec", "-c", 'model_provider="openai"', "hi"], "changes the model provider"),
    (["exec", "-c", "model_providers.x.base_url=\"http://h\"", "hi"], "changes the model provider"),
    (["exec", "--oss", "hi"], "changes the model provider"),
    (["exec", "--local-provider", "ollama", "hi"], "changes the model provider"),
    (["exec", "--remote", "ws://h:1", "hi"], "remote app server"),
    # profiles can set all of it
    (["exec", "-p", "mine", "hi"], "config profile"),
    (["exec", "--profile=mine", "hi"], "config profile"),
    (["exec", "-c", "profiles.mine.features.shell_tool=true", "hi"], "config profile"),
    (["exec", "--add-dir", "/", "hi"], "another directory"),
    (["exec", "--dangerously-bypass-approvals-and-sandbox", "hi"], "bypasses"),
])
def test_codex_overrides_of_what_the_sandbox_sets_are_refused(args: list[str], says: str) -> None:
    with pytest.raises(UsageError) as caught:
        check_agent_args(AgentKind.CODEX, args)
    assert caught.value.exit_code == EXIT_USAGE
    assert caught.value.message.startswith("agent argument ") and says in caught.value.message
    assert "\n" not in caught.value.message
