"""People's tokens for `sandbox serve`: created once, shown once, stored only as a sha256.

A token is 256 random bits, so a plain sha256 is as good as a slow hash here (there is nothing
to brute-force) and a lookup stays O(1). The file is 0600 in the 0700 serve directory.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path

from sandbox.audit._record import utc_timestamp
from sandbox.errors import NotFoundError, StateError, UsageError

__all__ = ["Role", "Token", "TokenStore", "digest"]

_PREFIX = "sbx_"


class Role(StrEnum):
    VIEWER = "viewer"  # reads sessions, diffs, the audit log, the report
    REVIEWER = "reviewer"  # also approves and rejects
    ADMIN = "admin"  # also manages tokens, keys and budgets

    def allows(self, needed: Role) -> bool:
        return _RANK[self] >= _RANK[needed]


_RANK = {Role.VIEWER: 0, Role.REVIEWER: 1, Role.ADMIN: 2}


@dataclass(frozen=True)
class Token:
    id: str
    name: str
    role: Role
    sha256: str
    created: str


def digest(secret: str) -> str:
    """How a secret (a token, a console session id) is kept: its sha256, never itself."""
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class TokenStore:
    path: Path

    def _load(self) -> list[Token]:
        try:
            raw = json.loads(self.path.read_text())
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            raise StateError(f"cannot read tokens from {self.path}: {exc}") from exc
        return [Token(t["id"], t["name"], Role(t["role"]), t["sha256"], t["created"])
                for t in raw]

    def _save(self, tokens: list[Token]) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump([asdict(t) for t in tokens], f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Load-modify-save under an exclusive lock: two API calls at once (serve runs them in
        threads) must neither lose a new token nor bring back a revoked one. The lock file
        sits beside the tokens and is never deleted (flock holds an inode)."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path.with_suffix(".lock"),
                     os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing drops the lock

    def create(self, name: str, role: Role) -> tuple[Token, str]:
        """(the stored token, the secret: shown once, never stored)."""
        if not name.strip() or len(name) > 100 or not name.isprintable():
            raise UsageError("--name must be 1-100 printable characters")
        secret = _PREFIX + secrets.token_urlsafe(32)
        token = Token(id="tok_" + secrets.token_hex(4), name=name, role=role,
                      sha256=digest(secret), created=utc_timestamp())
        with self._locked():
            self._save([*self._load(), token])
        return token, secret

    def list(self) -> list[Token]:
        return self._load()

    def revoke(self, token_id: str) -> Token:
        with self._locked():
            tokens = self._load()
            gone = [t for t in tokens if t.id == token_id]
            if not gone:
                raise NotFoundError(f"no token {token_id!r}",
                                    hint="`sandbox serve token ls` lists the token ids")
            self._save([t for t in tokens if t.id != token_id])
        return gone[0]

    def get(self, token_id: str) -> Token | None:
        return next((t for t in self._load() if t.id == token_id), None)

    def lookup(self, secret: str) -> Token | None:
        wanted = digest(secret)
        return next((t for t in self._load() if secrets.compare_digest(t.sha256, wanted)), None)
