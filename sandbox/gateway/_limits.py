"""Per-key rate limits: requests per minute, tokens per minute, concurrent streams."""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field

from sandbox.gateway._config import Limits

__all__ = ["RateLimiter"]

_WINDOW = 60.0


@dataclass
class _KeyState:
    requests: deque[float] = field(default_factory=deque)
    tokens: deque[tuple[float, int]] = field(default_factory=deque)
    token_sum: int = 0
    streams: int = 0


@dataclass
class RateLimiter:
    _keys: dict[str, _KeyState] = field(default_factory=dict)

    def _state(self, key_id: str, now: float) -> _KeyState:
        st = self._keys.setdefault(key_id, _KeyState())
        while st.requests and st.requests[0] <= now - _WINDOW:
            st.requests.popleft()
        while st.tokens and st.tokens[0][0] <= now - _WINDOW:
            st.token_sum -= st.tokens.popleft()[1]
        return st

    def admit(self, key_id: str, limits: Limits, stream: bool) -> tuple[str, int] | None:
        """None when admitted (and counted); else (why, retry-after seconds)."""
        now = time.monotonic()
        st = self._state(key_id, now)
        rpm, tpm, streams = (limits.requests_per_minute, limits.tokens_per_minute, limits.concurrent_streams)
        if rpm is not None and len(st.requests) >= rpm:
            return (
                f"rate limit: {rpm} requests per minute",
                max(1, math.ceil(st.requests[0] + _WINDOW - now)),
            )
        if tpm is not None and st.token_sum >= tpm:
            return (
                f"rate limit: {tpm} tokens per minute",
                max(1, math.ceil(st.tokens[0][0] + _WINDOW - now)),
            )
        if stream and streams is not None and st.streams >= streams:
            return f"rate limit: {streams} concurrent streams", 1
        st.requests.append(now)
        if stream:
            st.streams += 1
        return None

    def done(self, key_id: str, stream: bool, tokens: int) -> None:
        now = time.monotonic()
        st = self._state(key_id, now)
        if stream:
            st.streams -= 1
        if tokens:
            st.tokens.append((now, tokens))
            st.token_sum += tokens
