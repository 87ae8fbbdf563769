"""The MCP execution layer: an agent's tool calls as runs and file operations of one session.

`sandbox mcp` serves the tools on stdio (`serve_stdio`); `sandbox agent` runs Claude Code or
Codex with these as their only tools. Importing this package is cheap; the `mcp` SDK is loaded
only when a server is built (it is never on the `sandbox run` path).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sandbox.mcp._server import TOOL_NAMES, serve_stdio
    from sandbox.mcp._session import Confirm, Finished, McpConfig, McpSession, scrub_environment

_LAZY = {
    "TOOL_NAMES": "sandbox.mcp._server",
    "serve_stdio": "sandbox.mcp._server",
    "Confirm": "sandbox.mcp._session",
    "Finished": "sandbox.mcp._session",
    "McpConfig": "sandbox.mcp._session",
    "McpSession": "sandbox.mcp._session",
    "scrub_environment": "sandbox.mcp._session",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'sandbox.mcp' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = ["TOOL_NAMES", "Confirm", "Finished", "McpConfig", "McpSession", "scrub_environment",
           "serve_stdio"]
