"""Console log-ins: a browser holds a random session id, never the person's API token.

The token is checked once, at `/login`, and forgotten; what the server keeps is the sha256 of a
fresh 256-bit session id with the token's id, digest, name and role. A cookie read from a browser
profile or a proxy log is therefore worth one console session, which ends:
- after `IDLE` seconds without a request, and `ABSOLUTE` seconds after log-in whatever happens;
- at log-out;
- as soon as its token is revoked, by the API or by `sandbox serve token revoke` in another
  process: every use re-reads the token store (as a bearer request does) and a session whose
  token is gone is dropped on the spot.

Sessions live in the server's memory only, so a restart of `sandbox serve` logs everyone out
(fail closed; nothing to leak from disk).
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from sandbox.server._tokens import digest

if TYPE_CHECKING:
    from collections.abc import Callable

    from sandbox.server._tokens import Role, Token, TokenStore

__all__ = ["ABSOLUTE", "IDLE", "PER_TOKEN", "Login", "Logins"]

IDLE = 30 * 60.0  # a console left alone this long asks for the token again
ABSOLUTE = 12 * 3600.0  # a working day: no session outlives it, however busy
PER_TOKEN = 20  # log-ins kept per token; a new one past this ends the least recently used


@dataclass(frozen=True)
class Login:
    token_id: str
    token_sha256: str  # the token it came from, exactly (a reused id cannot inherit it)
    name: str
    role: Role
    started: float
    seen: float


@dataclass
class Logins:
    tokens: TokenStore
    idle: float = IDLE
    absolute: float = ABSOLUTE
    per_token: int = PER_TOKEN
    clock: Callable[[], float] = time.monotonic
    _by_digest: dict[str, Login] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def open(self, token: Token) -> str:
        """A new session for `token` (just checked by the caller); returns its id, for the
        cookie only: the server keeps its digest."""
        sid = secrets.token_urlsafe(32)
        now = self.clock()
        with self._lock:
            self._expire(now)
            # Memory stays bounded however often a token logs in (a script, a leaked token).
            mine = sorted((v.seen, k) for k, v in self._by_digest.items() if v.token_id == token.id)
            for _seen, k in mine[:max(0, len(mine) - self.per_token + 1)]:
                del self._by_digest[k]
            self._by_digest[digest(sid)] = Login(token.id, token.sha256, token.name, token.role,
                                                  now, now)
        return sid

    def resolve(self, sid: str) -> Login | None:
        """The live session `sid` names (and it counts as used now), or None: unknown, expired,
        or its token revoked, in which case it is ended here."""
        key, now = digest(sid), self.clock()
        with self._lock:
            login = self._by_digest.get(key)
            if login is None:
                return None
            if not self._alive(login, now):
                del self._by_digest[key]
                return None
        token = self.tokens.get(login.token_id)  # file I/O outside the lock
        with self._lock:
            if token is None or not secrets.compare_digest(token.sha256, login.token_sha256):
                self._by_digest.pop(key, None)
                return None
            if key not in self._by_digest:  # logged out meanwhile
                return None
            self._by_digest[key] = replace(login, seen=now)
        return login

    def close(self, sid: str) -> None:
        with self._lock:
            self._by_digest.pop(digest(sid), None)

    def close_token(self, token_id: str) -> int:
        """End every session of a revoked token; how many there were."""
        with self._lock:
            gone = [k for k, v in self._by_digest.items() if v.token_id == token_id]
            for k in gone:
                del self._by_digest[k]
        return len(gone)

    def __len__(self) -> int:
        with self._lock:
            self._expire(self.clock())
            return len(self._by_digest)

    def _alive(self, login: Login, now: float) -> bool:
        return now - login.seen < self.idle and now - login.started < self.absolute

    def _expire(self, now: float) -> None:
        for k in [k for k, v in self._by_digest.items() if not self._alive(v, now)]:
            del self._by_digest[k]
