"""Virtual keys and persisted spend, in SQLite at $SANDBOX_HOME/gateway/gateway.db.

A key is `sk-sbx-` + 32 random bytes (base32). Only its sha256 is stored: the key carries 256
bits of entropy, so a fast hash is as strong as a slow one and lookups stay cheap on every
request. Keys are named everywhere else (audit, logs, metrics, `key ls`) by their id.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from sandbox.errors import NotFoundError, StateError
from sandbox.gateway._tools import ToolRestriction

__all__ = ["KEY_PREFIX", "KeyStore", "VirtualKey", "hash_key"]

KEY_PREFIX = "sk-sbx-"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS keys (
  id TEXT PRIMARY KEY,
  hash TEXT NOT NULL UNIQUE,
  label TEXT,
  budget_usd REAL,
  models TEXT NOT NULL,
  created_at REAL NOT NULL,
  expires_at REAL,
  revoked_at REAL,
  session TEXT,
  run TEXT,
  tools TEXT
);
CREATE INDEX IF NOT EXISTS keys_session ON keys(session);
CREATE TABLE IF NOT EXISTS spend (
  scope TEXT PRIMARY KEY,
  usd REAL NOT NULL
);
"""


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class VirtualKey:
    id: str
    label: str | None
    budget_usd: float | None
    models: tuple[str, ...]
    created_at: float
    expires_at: float | None
    revoked_at: float | None
    session: str | None
    run: str | None
    tools: ToolRestriction | None = None  # the only tools its requests may offer; None: any

    def usable(self, now: float) -> bool:
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)

    def status(self, now: float) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and now >= self.expires_at:
            return "expired"
        return "active"


_COLS = "id, label, budget_usd, models, created_at, expires_at, revoked_at, session, run, tools"


def _row(row: tuple[object, ...]) -> VirtualKey:
    kid, label, budget, models, created, expires, revoked, session, run, tools = row
    assert isinstance(kid, str) and isinstance(models, str) and isinstance(created, float)
    return VirtualKey(
        kid,
        label if isinstance(label, str) else None,
        float(budget) if isinstance(budget, int | float) else None,
        tuple(json.loads(models)),
        created,
        float(expires) if isinstance(expires, int | float) else None,
        float(revoked) if isinstance(revoked, int | float) else None,
        session if isinstance(session, str) else None,
        run if isinstance(run, str) else None,
        ToolRestriction.from_json(tools) if isinstance(tools, str) else None,
    )


def _add_tools_column(db: sqlite3.Connection) -> None:
    """A database made before keys carried a tool restriction gets the column (NULL: any tool,
    which is what those keys allowed). Two processes may race to add it: one wins."""
    cols = {row[1] for row in db.execute("PRAGMA table_info(keys)")}
    if "tools" in cols:
        return
    try:
        db.execute("ALTER TABLE keys ADD COLUMN tools TEXT")
    except sqlite3.OperationalError as exc:
        if "duplicate column" not in str(exc):
            raise


class KeyStore:
    """One connection, opened on first use and kept: the server looks a key up per request."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None

    @classmethod
    def at_home(cls, home: Path) -> KeyStore:
        from sandbox._home import ensure_home

        return cls(ensure_home(home / "gateway") / "gateway.db")

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    @contextmanager
    def _conn(self) -> Iterator[sqlite3.Connection]:
        try:
            if self._db is None:
                db = sqlite3.connect(self.path, timeout=10, isolation_level=None, check_same_thread=False)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                db.executescript(_SCHEMA)
                _add_tools_column(db)
                self._db = db
            yield self._db
        except sqlite3.Error as exc:
            raise StateError(f"gateway database {self.path}: {exc}") from exc

    def create(
        self,
        *,
        label: str | None = None,
        budget_usd: float | None = None,
        ttl_s: float | None = None,
        models: Sequence[str] = (),
        session: str | None = None,
        run: str | None = None,
        tools: ToolRestriction | None = None,
    ) -> tuple[str, VirtualKey]:
        """A new key: (the key itself, shown once; its record)."""
        secret = KEY_PREFIX + base64.b32encode(secrets.token_bytes(32)).decode().rstrip("=").lower()
        now = time.time()
        vk = VirtualKey(
            "k_" + secrets.token_hex(6),
            label,
            budget_usd,
            tuple(models),
            now,
            now + ttl_s if ttl_s is not None else None,
            None,
            session,
            run,
            tools,
        )
        with self._conn() as c:
            c.execute(
                f"INSERT INTO keys ({_COLS}, hash) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    vk.id,
                    label,
                    budget_usd,
                    json.dumps(list(models)),
                    now,
                    vk.expires_at,
                    None,
                    session,
                    run,
                    tools.to_json() if tools is not None else None,
                    hash_key(secret),
                ),
            )
        return secret, vk

    def lookup(self, key: str) -> VirtualKey | None:
        with self._conn() as c:
            row = c.execute(f"SELECT {_COLS} FROM keys WHERE hash = ?", (hash_key(key),)).fetchone()
        return None if row is None else _row(row)

    def get(self, key_id: str) -> VirtualKey:
        with self._conn() as c:
            row = c.execute(f"SELECT {_COLS} FROM keys WHERE id = ?", (key_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no gateway key {key_id!r}")
        return _row(row)

    def list(self) -> list[VirtualKey]:
        with self._conn() as c:
            rows = c.execute(f"SELECT {_COLS} FROM keys ORDER BY created_at").fetchall()
        return [_row(r) for r in rows]

    def listing(self, now: float) -> Sequence[dict[str, object]]:
        """Every key as JSON (`gateway key ls --json`, the server's API): its record, status and
        spend; a tool restriction as the list of names."""
        return [
            {
                **asdict(k),
                "tools": sorted(k.tools.allowed) if k.tools is not None else None,
                "status": k.status(now),
                "spent_usd": self.spent(f"key:{k.id}"),
            }
            for k in self.list()
        ]

    def revoke(self, key_id: str) -> VirtualKey:
        with self._conn() as c:
            cur = c.execute(
                "UPDATE keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (time.time(), key_id)
            )
            if cur.rowcount == 0:
                self.get(key_id)  # NotFoundError when unknown; already revoked is fine
        return self.get(key_id)

    def revoke_session(self, session: str) -> int:
        with self._conn() as c:
            cur = c.execute(
                "UPDATE keys SET revoked_at = ? WHERE session = ? AND revoked_at IS NULL",
                (time.time(), session),
            )
        return cur.rowcount

    # -- spend, by scope ("key:ID", "session:ID", "day:2026-11-30", "month:2026-11") --------

    def spent(self, scope: str) -> float:
        with self._conn() as c:
            row = c.execute("SELECT usd FROM spend WHERE scope = ?", (scope,)).fetchone()
        return float(row[0]) if row else 0.0

    def add_spend(self, amounts: Sequence[tuple[str, float]]) -> None:
        with self._conn() as c:
            c.execute("BEGIN IMMEDIATE")
            c.executemany(
                "INSERT INTO spend (scope, usd) VALUES (?, ?) "
                "ON CONFLICT(scope) DO UPDATE SET usd = usd + excluded.usd",
                amounts,
            )
            c.execute("COMMIT")
