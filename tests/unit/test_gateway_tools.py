"""The tools a request offers, in every dialect the gateway serves, and a key's restriction."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from sandbox.gateway._keys import KeyStore
from sandbox.gateway._tools import ToolRestriction, offered_tools, tool_names
from sandbox.gateway._usage import Api

OURS = ToolRestriction(frozenset({"mcp__sandbox__bash", "mcp__sandbox__read_file"}))


def test_tool_names_of_each_format() -> None:
    tools = [
        {"name": "mcp__sandbox__bash", "input_schema": {}},  # Anthropic
        {"type": "custom", "name": "Write", "input_schema": {}},  # Anthropic, typed
        {"type": "function", "function": {"name": "Bash"}},  # OpenAI chat
        {"type": "custom", "custom": {"name": "grammar_tool"}},  # OpenAI chat, custom
        {"type": "namespace", "name": "mcp__sandbox",  # Codex on the Responses API
         "tools": [{"type": "function", "name": "read_file"}]},
        {"type": "web_search"},  # a hosted tool: no name
        {"type": "web_search_20250305", "name": "mcp__sandbox__bash"},  # hosted, named like ours
        "not a tool",
    ]
    assert tool_names(tools) == [
        "mcp__sandbox__bash", "Write", "Bash", "grammar_tool", "mcp__sandbox__read_file",
        "web_search", "web_search_20250305:mcp__sandbox__bash", "'not a tool'"]
    assert OURS.foreign(tool_names(tools)) == (
        "'not a tool'", "Bash", "Write", "grammar_tool", "web_search",
        "web_search_20250305:mcp__sandbox__bash")
    # named two ways, so that the gateway and the provider could read different names
    assert tool_names([{"type": "function", "function": {"name": "mcp__sandbox__bash"},
                        "name": "Bash"}]) == ["mcp__sandbox__bash", "Bash"]
    assert tool_names(None) == []
    assert OURS.foreign(tool_names({"name": "Bash"})) == ("<tools: dict>",)  # fails closed


def test_offered_tools_per_endpoint() -> None:
    ours = [{"name": "mcp__sandbox__bash"}]
    assert OURS.foreign(offered_tools(Api.MESSAGES, {"tools": ours})) == ()
    assert OURS.foreign(offered_tools(Api.MESSAGES, {})) == ()
    # the MCP connector brings tools the request does not list
    assert OURS.foreign(offered_tools(Api.MESSAGES, {
        "tools": ours, "mcp_servers": [{"type": "url", "name": "evil", "url": "https://x"}]})) == (
        "mcp_servers:evil",)
    assert OURS.foreign(offered_tools(Api.CHAT, {
        "tools": [{"type": "function", "function": {"name": "mcp__sandbox__bash"}}],
        "functions": [{"name": "shell", "parameters": {}}]})) == ("shell",)  # the legacy form
    assert OURS.foreign(offered_tools(Api.CHAT, {"web_search_options": {}})) == (
        "web_search_options (hosted web search)",)  # hosted search without a `tools` entry
    assert OURS.foreign(offered_tools(Api.RESPONSES, {
        "tools": [{"type": "namespace", "name": "mcp__sandbox", "tools": [
            {"type": "function", "name": "bash"}, {"type": "function", "name": "view_image"}]},
            {"type": "mcp", "server_label": "x"}]})) == ("mcp", "mcp__sandbox__view_image")
    assert OURS.foreign(offered_tools(Api.RESPONSES, {"prompt": {"id": "pmpt_1"}})) == (
        "prompt (a stored prompt's tools)",)


def test_a_key_keeps_its_restriction_and_an_old_database_gains_the_column(tmp_path: Path) -> None:
    db = tmp_path / "gateway" / "gateway.db"
    db.parent.mkdir(mode=0o700)
    old = sqlite3.connect(db)  # the table as it was before keys carried tools
    old.executescript("CREATE TABLE keys (id TEXT PRIMARY KEY, hash TEXT NOT NULL UNIQUE, "
                      "label TEXT, budget_usd REAL, models TEXT NOT NULL, created_at REAL NOT "
                      "NULL, expires_at REAL, revoked_at REAL, session TEXT, run TEXT);"
                      "INSERT INTO keys VALUES ('k_old', 'h', NULL, NULL, '[]', 1.0, NULL, "
                      "NULL, NULL, NULL);")
    old.close()
    store = KeyStore.at_home(tmp_path)
    assert store.get("k_old").tools is None  # an old key: any tool, as before
    secret, vk = store.create(tools=OURS)
    plain, _ = store.create()
    found = store.lookup(secret)
    assert found is not None and found.tools == OURS == vk.tools
    unrestricted = store.lookup(plain)
    assert unrestricted is not None and unrestricted.tools is None
    listed = json.loads(json.dumps(store.listing(0.0)))  # `gateway key ls --json`, the API
    assert [k["tools"] for k in listed] == [None, sorted(OURS.allowed), None]
    store.close()
