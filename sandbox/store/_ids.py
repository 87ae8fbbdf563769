"""Short, sortable ids: "r-"/"s-" + 10 base32 chars (8 of time, 2 of randomness).

The time part counts centiseconds since 2024-01-01 UTC in Crockford base32 (lowercase, no
i/l/o/u), whose alphabet is in ASCII order, so ids sort by creation time as plain strings for
the next ~340 years. Two ids made in the same centisecond share the time part and differ only
by chance (1 in 1024), so inserts retry on a collision.
"""

from __future__ import annotations

import os
import time
from enum import StrEnum

__all__ = ["ID_ALPHABET", "IdKind", "new_id"]

ID_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_EPOCH_S = 1_704_067_200  # 2024-01-01T00:00:00Z
_TIME_CHARS = 8
_RANDOM_CHARS = 2


class IdKind(StrEnum):
    RUN = "r"
    SESSION = "s"


def _b32(value: int, width: int) -> str:
    chars = []
    for _ in range(width):
        value, digit = divmod(value, 32)
        chars.append(ID_ALPHABET[digit])
    return "".join(reversed(chars))


def new_id(kind: IdKind, *, now: float | None = None) -> str:
    seconds = time.time() if now is None else now
    ticks = max(0, int((seconds - _EPOCH_S) * 100)) % (32**_TIME_CHARS)
    # 32**2 = 2**10: ten bits of os.urandom (what `secrets` reads) are uniform; `secrets`
    # itself would import random, base64 and hmac on every `sandbox run`.
    rand = int.from_bytes(os.urandom(2), "big") & (32**_RANDOM_CHARS - 1)
    return f"{kind}-{_b32(ticks, _TIME_CHARS)}{_b32(rand, _RANDOM_CHARS)}"
