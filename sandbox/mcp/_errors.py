"""Tool-level refusals: returned to the model as a readable tool error, never a crash."""

from __future__ import annotations

from sandbox.errors import UsageError


class ToolRefused(UsageError):
    """The tool call is not allowed or its arguments are wrong (path outside the workspace,
    hidden, not unique...). The message is written for the model; nothing was changed."""
