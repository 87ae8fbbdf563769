"""Errors in each provider's own wire shape, so unmodified SDKs and agents understand them."""

from __future__ import annotations

import json
from enum import StrEnum

from sandbox.gateway._config import ApiFamily

__all__ = ["Kind", "error_body"]


class Kind(StrEnum):
    """What went wrong, mapped to each provider's status and error type."""

    INVALID = "invalid"  # 400
    AUTH = "auth"  # 401
    BUDGET = "budget"  # 402: non-retryable on purpose (SDKs and agents retry 429)
    FORBIDDEN = "forbidden"  # 403
    TOOLS = "tools"  # 403: the request offers tools its key does not allow
    NOT_FOUND = "not_found"  # 404
    TOO_LARGE = "too_large"  # 413
    RATE = "rate"  # 429
    UPSTREAM = "upstream"  # 502


def status_of(kind: Kind) -> int:
    match kind:
        case Kind.INVALID:
            return 400
        case Kind.AUTH:
            return 401
        case Kind.BUDGET:
            return 402
        case Kind.FORBIDDEN | Kind.TOOLS:
            return 403
        case Kind.NOT_FOUND:
            return 404
        case Kind.TOO_LARGE:
            return 413
        case Kind.RATE:
            return 429
        case Kind.UPSTREAM:
            return 502


def _anthropic_type(kind: Kind) -> str:
    match kind:
        case Kind.INVALID:
            return "invalid_request_error"
        case Kind.AUTH:
            return "authentication_error"
        case Kind.BUDGET:
            return "billing_error"
        case Kind.FORBIDDEN | Kind.TOOLS:
            return "permission_error"
        case Kind.NOT_FOUND:
            return "not_found_error"
        case Kind.TOO_LARGE:
            return "request_too_large"
        case Kind.RATE:
            return "rate_limit_error"
        case Kind.UPSTREAM:
            return "api_error"


def _openai_type(kind: Kind) -> tuple[str, str | None]:
    match kind:
        case Kind.INVALID | Kind.TOO_LARGE:
            return "invalid_request_error", None
        case Kind.AUTH:
            return "invalid_request_error", "invalid_api_key"
        case Kind.BUDGET:
            return "insufficient_quota", "budget_exceeded"
        case Kind.FORBIDDEN:
            return "invalid_request_error", "model_not_allowed"
        case Kind.TOOLS:
            return "invalid_request_error", "tool_not_allowed"
        case Kind.NOT_FOUND:
            return "invalid_request_error", "model_not_found"
        case Kind.RATE:
            return "rate_limit_error", "rate_limit_exceeded"
        case Kind.UPSTREAM:
            return "server_error", None


def error_body(family: ApiFamily, kind: Kind, message: str) -> tuple[int, bytes]:
    match family:
        case ApiFamily.ANTHROPIC:
            obj: dict[str, object] = {
                "type": "error",
                "error": {"type": _anthropic_type(kind), "message": message},
            }
        case ApiFamily.OPENAI:
            etype, code = _openai_type(kind)
            obj = {"error": {"message": message, "type": etype, "param": None, "code": code}}
    return status_of(kind), json.dumps(obj).encode()
