"""Codex's command line: each built-in switched off, our server its only MCP server."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.errors import UsageError
from sandbox.mcp._agent import (
    CODEX_CATALOG,
    CODEX_CATALOG_NAME,
    AgentKind,
    agent_argv,
    check_agent_args,
)


def _overrides(argv: tuple[str, ...]) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv) if a == "-c"]


def test_codex_gets_each_builtin_switched_off_and_our_server_required() -> None:
    argv = agent_argv(AgentKind.CODEX, Path("/x/codex"), "/unused", ["exec", "hi"])
    assert argv[0] == "/run/agent/codex"
    # theirs come last; exec's git check is off (its working directory is an empty scratch)
    assert argv[-3:] == ("exec", "--skip-git-repo-check", "hi")
    assert agent_argv(AgentKind.CODEX, Path("/x/codex"), "/unused",
                      ["exec", "--skip-git-repo-check", "hi"])[-3:] == argv[-3:]
    assert agent_argv(AgentKind.CODEX, Path("/x/codex"), "/unused", ["hi"])[-1:] == ("hi",)
    got = _overrides(argv)
    for feature in ("shell_tool", "unified_exec", "shell_snapshot", "view_image", "goals",
                    "multi_agent", "image_generation", "apps", "plugins"):
        assert f"features.{feature}=false" in got
    assert "tools.experimental_request_user_input={enabled=false}" in got
    assert 'web_search="disabled"' in got
    assert f'model_catalog_json="/run/sandbox-mcp/{CODEX_CATALOG_NAME}"' in got
    assert "mcp_servers.sandbox.required=true" in got
    assert 'mcp_servers.sandbox.default_tools_approval_mode="approve"' in got


def test_the_catalog_model_has_no_builtin_tools() -> None:
    (model,) = CODEX_CATALOG["models"]
    assert model["apply_patch_tool_type"] is None and model["shell_type"] == "disabled"
    assert model["supports_search_tool"] is False and model["experimental_supported_tools"] == []


@pytest.mark.parametrize("args", [
    ["exec", "-c", "mcp_servers.evil.command=\"sh\"", "hi"],
    ["exec", "--config", "mcp_servers={}", "hi"],
    ["exec", "--config=mcp_servers.sandbox.command=\"sh\"", "hi"],
    ["exec", "-cmcp_servers.x.url=\"http://h\"", "hi"],
    ["exec", "-c", " 'mcp_servers' . x . command = 'sh'", "hi"],
])
def test_agent_args_configuring_an_mcp_server_are_refused(args: list[str]) -> None:
    with pytest.raises(UsageError, match="configures an MCP server"):
        check_agent_args(AgentKind.CODEX, args)


def test_other_agent_args_pass() -> None:
    check_agent_args(AgentKind.CODEX, ["exec", "-m", "gpt-x", "-c", "model_reasoning_effort=low",
                                       "explain mcp_servers in config.toml"])
    check_agent_args(AgentKind.CLAUDE, ["-p", "-c", "mcp_servers.x=1"])  # not Codex's flag
