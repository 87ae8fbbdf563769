"""AGENT ARGS (after `--`) that would override the agent's confinement, refused up front.

`sandbox agent` puts its own flags first: built-in tools off, our MCP server the only one. The
agent's own arguments come after them and may override them. The gateway refuses any request
offering a tool that is not ours, but a gateway reached by URL ($SANDBOX_GATEWAY_URL) cannot know
whether the agent connected to our server, so a server configured under our name (`sandbox`)
is caught there only after the fact. So an argument that adds tools, MCP servers, plugins,
settings or directories, or loosens tool permissions, stops the run before anything starts
(exit 2), naming the flag and why. One table per agent kind, checked against its `--help` (and
its hidden options) at the version the tests install.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sandbox.errors import UsageError


@dataclass(frozen=True)
class RefusedFlag:
    names: tuple[str, ...]  # every spelling of the flag
    reason: str  # what it would do, for the person who passed it
    # Only when its value sets one of these config keys (or a key under them): Codex's `-c`.
    config_keys: tuple[str, ...] = ()


_SETTINGS = ("loads settings, which can add MCP servers, hooks, plugins and permissions; the "
             "sandbox alone configures the agent")
_PERMISSIONS = ("changes which tools run without asking; the sandbox allows its own server's "
                "only")
_PLUGIN = "loads a plugin, which can bring MCP servers, hooks, agents and commands"
_CHANNELS = "enables MCP channel servers besides the sandbox's server"

# Claude Code 2.1.330: `claude --help` and the hidden options of its main command.
CLAUDE_REFUSED: tuple[RefusedFlag, ...] = (
    RefusedFlag(("--mcp-config",), "adds MCP servers; one named `sandbox` would pass for ours"),
    RefusedFlag(("--strict-mcp-config",), "overrides the sandbox's MCP configuration (already "
                                          "strict: its server only)"),
    RefusedFlag(("--tools",), "turns built-in tools back on; the sandbox switches them all off"),
    RefusedFlag(("--allowedTools", "--allowed-tools"), _PERMISSIONS),
    RefusedFlag(("--disallowedTools", "--disallowed-tools"), "rewrites the tool rules the "
                                                             "sandbox sets"),
    RefusedFlag(("--permission-mode", "--inherit-permission-mode", "--enable-auto-mode"),
                _PERMISSIONS),
    RefusedFlag(("--dangerously-skip-permissions", "--allow-dangerously-skip-permissions"),
                "bypasses the tool rules the sandbox sets"),
    RefusedFlag(("--settings", "--managed-settings"), _SETTINGS),
    RefusedFlag(("--setting-sources",), _SETTINGS),
    RefusedFlag(("--project-config-root",), "reads project settings and MCP servers (.claude/, "
                                            ".mcp.json) from another directory"),
    RefusedFlag(("--plugin-dir", "--plugin-dir-no-mcp", "--plugin-url"), _PLUGIN),
    RefusedFlag(("--add-dir",), "gives the agent another directory; its only one is an empty "
                                "scratch directory (the workspace is reached by our tools)"),
    RefusedFlag(("--agents",), "defines subagents, which can name their own tools and MCP "
                               "servers"),
    RefusedFlag(("--channels", "--dangerously-load-development-channels"), _CHANNELS),
    RefusedFlag(("--chrome",), "turns on Claude in Chrome, whose browser tools are not ours"),
    RefusedFlag(("--ide",), "connects to an IDE, whose MCP tools are not ours"),
    RefusedFlag(("--brief",), "turns on the SendUserMessage tool, which is not ours"),
    RefusedFlag(("--cloud", "--remote", "--environment", "--pool", "--teleport"),
                "runs the agent in a cloud session, outside the sandbox and its tools"),
)

# Codex CLI 0.171 (`codex --help`, `codex exec --help`): `-c key=value` overrides any config
# key; those that name MCP servers would add a server, or replace ours under its name, and those
# that set tools, features, the model catalog or the provider undo what the sandbox set. A key
# the sandbox does not set (`model`, `model_reasoning_effort`...) passes.
_CODEX_TOOLS = ("turns a built-in tool back on or changes which tools the model is offered; the "
                "sandbox switches them off")
CODEX_REFUSED: tuple[RefusedFlag, ...] = (
    RefusedFlag(("-c", "--config"), "configures an MCP server: the sandbox's server must be the "
                                    "agent's only one", config_keys=("mcp_servers",)),
    RefusedFlag(("-c", "--config"), _CODEX_TOOLS,
                config_keys=("features", "tools", "web_search", "model_catalog_json",
                             "include_apply_patch_tool", "experimental_use_freeform_apply_patch")),
    RefusedFlag(("-c", "--config"), "changes the model provider; the agent's only network is the "
                                    "sandbox's gateway",
                config_keys=("model_provider", "model_providers", "openai_base_url",
                             "chatgpt_base_url")),
    RefusedFlag(("-c", "--config"), "selects or defines a config profile, which can set any of "
                                    "the above", config_keys=("profile", "profiles")),
    RefusedFlag(("--enable",), _CODEX_TOOLS),
    RefusedFlag(("--search",), "offers the model the web search tool, which is not ours"),
    RefusedFlag(("-p", "--profile"), "selects a config profile, which can set tools, features, "
                                     "MCP servers and the provider"),
    RefusedFlag(("--oss", "--local-provider"), "changes the model provider; the agent's only "
                                               "network is the sandbox's gateway"),
    RefusedFlag(("--remote", "--remote-auth-token-env"),
                "runs the agent's loop on a remote app server, outside the sandbox and its tools"),
    RefusedFlag(("--add-dir",), "gives the agent another directory; its only one is an empty "
                                "scratch directory (the workspace is reached by our tools)"),
    RefusedFlag(("--dangerously-bypass-approvals-and-sandbox", "--dangerously-bypass-hook-trust"),
                "bypasses the approvals and hook trust the sandbox relies on"),
)


def _split(arg: str, table: Sequence[RefusedFlag]) -> tuple[str, str | None] | None:
    """The flag an argument spells and its attached value (`--flag=value`, `-cVALUE`), if it
    is one of the table's."""
    names = {n for flag in table for n in flag.names}
    if arg.startswith("--"):
        name, sep, value = arg.partition("=")
        return (name, value if sep else None) if name in names else None
    if arg.startswith("-") and arg[:2] in names:
        attached = arg[2:]
        # clap takes `-c=VALUE` and `-cVALUE` as well as `-c VALUE`
        return arg[:2], (attached.removeprefix("=") if attached else None)
    return None


def _config_key(value: str) -> str:
    # TOML may quote a dotted key's parts and space them: compare the bare parts
    return "".join(value.split("=", 1)[0].replace('"', "").replace("'", "").split())


def _refusal(table: Sequence[RefusedFlag], name: str, value: str | None,
             following: str) -> tuple[RefusedFlag, str] | None:
    """The row refusing flag `name` with its value (attached, else the next argument), and how
    to show it; a flag may have a row per family of config keys, each with its own reason."""
    for flag in table:
        if name not in flag.names:
            continue
        if not flag.config_keys:
            return flag, name
        given = following if value is None else value
        key = _config_key(given)
        if any(key == k or key.startswith(k + ".") for k in flag.config_keys):
            return flag, repr(given)
    return None


def check(table: Sequence[RefusedFlag], args: Sequence[str]) -> None:
    """Raise UsageError (exit 2) naming the first refused flag in `args`.

    Every argument is looked at, including those after a `--` and the values of other flags:
    Claude Code reads some flags (its settings) from the raw argv before parsing it, and a
    prompt that is exactly a refused flag is not worth the risk of reading argv like the agent.
    """
    for i, arg in enumerate(args):
        split = _split(arg, table)
        if split is None:
            continue
        name, value = split
        refused = _refusal(table, name, value, args[i + 1] if i + 1 < len(args) else "")
        if refused is None:
            continue
        flag, shown = refused
        raise UsageError(f"agent argument {shown} is refused: it {flag.reason}",
                         hint="the sandbox sets the agent's tools, MCP servers and directories; "
                              "its tools are the session's (sandbox agent --help)")
