"""Which tools a request offers the model, and a virtual key's restriction on them.

A key may carry a tool restriction (the exact tool names it may offer): `sandbox agent` gets
one for the agent's key, so a request offering any other tool -- a built-in brought back by the
agent's own arguments, a second MCP server, a hosted tool -- is refused before the model sees
it, rather than noticed after the fact. Keys without one (plain `run --llm`, `gateway key
create`) are not limited.

Every dialect the gateway serves is read, failing closed on anything it cannot name:
- Anthropic Messages: `tools` (custom tools by name, server tools such as web search by type)
  and `mcp_servers` (the MCP connector: remote tools the request does not list);
- OpenAI Chat Completions: `tools[].function.name` (and `custom`), the legacy `functions`,
  and `web_search_options` (hosted web search switched on without any `tools` entry);
- OpenAI Responses: `tools` (functions by name, `namespace` groups as `ns__tool`, as Codex
  groups an MCP server's tools, hosted tools such as web_search by type) and `prompt` (a stored
  prompt brings tools of its own that the request does not list).
On both OpenAI dialects a model whose name holds `search` (gpt-4o-search-preview,
gpt-5-search-api...) searches the web on every request with no tool field at all: it counts as
the hosted tool `model:NAME`, so a restricted key never reaches it (the rule is the name alone:
OpenAI names its search models so, and a false match costs a refusal, never a leak).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import assert_never

from sandbox.gateway._usage import Api

__all__ = ["ToolGate", "ToolRestriction", "ToolsRefused", "Why", "offered_tools", "tool_names"]

# Tool types that are the caller's own functions, named by the caller: everything else is a
# provider-hosted tool (web search, code execution, remote MCP...), named by its type.
_OWN_TYPES = (None, "function", "custom")


@dataclass(frozen=True)
class ToolRestriction:
    """The exact tool names a key's requests may offer (no patterns: a prefix would let an MCP
    server named like ours, `sandbox__x`, through)."""

    allowed: frozenset[str]

    def foreign(self, offered: Iterable[str]) -> tuple[str, ...]:
        return tuple(sorted({n for n in offered if n not in self.allowed}))

    def to_json(self) -> str:
        return json.dumps(sorted(self.allowed))

    @classmethod
    def from_json(cls, text: str) -> ToolRestriction:
        names = json.loads(text)
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValueError(f"a tool restriction is a list of names, not {text[:80]!r}")
        return cls(frozenset(names))


class Why(StrEnum):
    FOREIGN = "foreign"  # a tool outside the key's restriction
    BEFORE_SERVER = "before-server"  # tools offered before the agent reached our MCP server


@dataclass(frozen=True)
class ToolsRefused:
    """A request the gateway refused for the tools it offers."""

    key: str
    run: str | None
    session: str | None
    tools: tuple[str, ...]  # the foreign ones; before our server: all it offered
    why: Why = Why.FOREIGN

    def rule(self) -> str:
        match self.why:
            case Why.FOREIGN:
                return f"not allowed for this key: {', '.join(self.tools)}"
            case Why.BEFORE_SERVER:
                return "offered before the agent connected to our MCP server"
            case _:
                assert_never(self.why)

    def message(self) -> str:
        names = f"{', '.join(self.tools[:10])}{' ...' if len(self.tools) > 10 else ''}"
        match self.why:
            case Why.FOREIGN:
                return f"the gateway refused a request offering the model tools that are not ours: {names}"
            case Why.BEFORE_SERVER:
                return (f"the gateway refused a request offering the model tools before the agent "
                        f"connected to our MCP server, so they cannot be ours: {names}")
            case _:
                assert_never(self.why)


@dataclass(frozen=True)
class ToolGate:
    """What a run's key may offer; who hears of a refusal the moment it happens, and whether the
    agent has reached our MCP server yet (before that no offered tool can be ours, whatever its
    name: another server configured under our name would look the same). Both callables are
    used only by the run's in-process gateway, from its event loop: they must return at once."""

    restriction: ToolRestriction
    on_refused: Callable[[ToolsRefused], None] | None = None
    ready: Callable[[], bool] | None = None


def tool_names(tools: object) -> list[str]:
    """The names of the tools in a `tools` list, in any dialect: functions by name, a Responses
    API namespace as `ns__tool`, a hosted tool by its type (`type:name` when it has a name, so
    a hosted tool never passes for a function). Anything unreadable is named by its repr, so it
    is foreign."""
    if tools is None:
        return []
    if not isinstance(tools, list):
        return [f"<tools: {type(tools).__name__}>"]
    names: list[str] = []
    for t in tools:
        if not isinstance(t, dict):
            names.append(repr(t)[:80])
            continue
        kind = t.get("type")
        inner = t.get(kind) if isinstance(kind, str) else None
        # Chat nests {"function": {"name"}}, the others name the tool at the top: a tool naming
        # itself both ways (so that we and the provider read different names) counts as both.
        own = [n for n in (inner.get("name") if isinstance(inner, dict) else None, t.get("name"))
               if isinstance(n, str)]
        if kind == "namespace":
            names.extend(f"{ns}__{n}" for ns in own for n in tool_names(t.get("tools")))
        elif kind in _OWN_TYPES and own:
            names.extend(dict.fromkeys(own))
        else:
            names.append(f"{kind}:{own[0]}" if own else str(kind))
    return names


def offered_tools(api: Api, body: Mapping[str, object]) -> list[str]:
    """Every tool `body` offers the model on `api`."""
    names = tool_names(body.get("tools"))
    match api:
        case Api.MESSAGES:
            servers = body.get("mcp_servers")
            if servers is not None:
                for s in servers if isinstance(servers, list) else [servers]:
                    label = s.get("name") if isinstance(s, dict) else None
                    names.append(f"mcp_servers:{label if isinstance(label, str) else '?'}")
        case Api.CHAT:
            names += _search_model(body)
            names += tool_names(body.get("functions"))
            if body.get("web_search_options") is not None:
                names.append("web_search_options (hosted web search)")
        case Api.RESPONSES:
            names += _search_model(body)
            if body.get("prompt") is not None:
                names.append("prompt (a stored prompt's tools)")
        case _:
            assert_never(api)
    return names


def _search_model(body: Mapping[str, object]) -> list[str]:
    """OpenAI's search models search the web whatever the request offers (casefolded: a
    provider that matches names loosely must not find one we did not)."""
    model = body.get("model")
    if isinstance(model, str) and "search" in model.casefold():
        return [f"model:{model} (searches the web itself)"]
    return []
