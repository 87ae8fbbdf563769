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
    (config,) = CODEX_REFUSED
    assert config.names == ("-c", "--config") and config.config_keys == ("mcp_servers",)
    check_agent_args(AgentKind.CODEX, ["exec", "-c", "mcp_servers_note=1", "--config",
                                       "model=\"x\"", "-cmodel_reasoning_effort=low"])
