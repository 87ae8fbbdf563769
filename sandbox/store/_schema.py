"""Database schema, versioned with PRAGMA user_version.

MIGRATIONS[i] takes the database from version i to i+1. Opening an up-to-date database costs
one `PRAGMA user_version` read; migrations run only when the number is behind, inside one
exclusive transaction that re-checks the version (two processes may race to migrate).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from sandbox.errors import StateError

__all__ = ["SCHEMA_VERSION", "ensure_schema", "user_version"]

_V1 = (
    """
    CREATE TABLE sessions (
        id            TEXT PRIMARY KEY,
        workspace     BLOB NOT NULL,
        created       TEXT NOT NULL,
        updated       TEXT NOT NULL,
        state         TEXT NOT NULL
                      CHECK (state IN ('open', 'pending', 'committed', 'rejected', 'partial')),
        level         INTEGER NOT NULL,
        policy_digest TEXT NOT NULL,
        started_ns    INTEGER NOT NULL
    ) STRICT
    """,
    """
    CREATE TABLE runs (
        id          TEXT PRIMARY KEY,
        session_id  TEXT NOT NULL REFERENCES sessions(id),
        seq         INTEGER NOT NULL,
        command     TEXT NOT NULL,
        workspace   BLOB NOT NULL,
        level       INTEGER NOT NULL,
        backend     TEXT NOT NULL,
        profile     TEXT NOT NULL,
        status      TEXT NOT NULL
                    CHECK (status IN ('running', 'finished', 'failed', 'timeout')),
        exit_code   INTEGER,
        started     TEXT NOT NULL,
        finished    TEXT,
        duration_ms INTEGER,
        peak_mem_kb INTEGER,
        cpu_ms      INTEGER,
        decision    TEXT NOT NULL
                    CHECK (decision IN ('none', 'pending', 'committed', 'rejected', 'partial')),
        summary     TEXT NOT NULL DEFAULT '{}',
        UNIQUE (session_id, seq)
    ) STRICT
    """,
    "CREATE INDEX runs_started ON runs (started)",
    "CREATE INDEX sessions_state ON sessions (state)",
)


# v2: the session keeps the effective policy its runs were decided under and whether any of its
# changes were committed; a run may end `cancelled` or `lost`, and keeps its launcher's pid and
# start time (so a later invocation can tell a live run from one whose process died).
# SQLite cannot alter a CHECK constraint: the runs table is rebuilt.
_V2 = (
    "ALTER TABLE sessions ADD COLUMN policy TEXT NOT NULL DEFAULT '{}'",
    "ALTER TABLE sessions ADD COLUMN committed INTEGER NOT NULL DEFAULT 0",
    """
    CREATE TABLE runs_v2 (
        id          TEXT PRIMARY KEY,
        session_id  TEXT NOT NULL REFERENCES sessions(id),
        seq         INTEGER NOT NULL,
        command     TEXT NOT NULL,
        workspace   BLOB NOT NULL,
        level       INTEGER NOT NULL,
        backend     TEXT NOT NULL,
        profile     TEXT NOT NULL,
        status      TEXT NOT NULL
                    CHECK (status IN ('running', 'finished', 'failed', 'timeout', 'cancelled',
                                      'lost')),
        exit_code   INTEGER,
        started     TEXT NOT NULL,
        finished    TEXT,
        duration_ms INTEGER,
        peak_mem_kb INTEGER,
        cpu_ms      INTEGER,
        decision    TEXT NOT NULL
                    CHECK (decision IN ('none', 'pending', 'committed', 'rejected', 'partial')),
        summary     TEXT NOT NULL DEFAULT '{}',
        launcher_pid   INTEGER,
        launcher_start REAL,
        backend_ref    TEXT,
        UNIQUE (session_id, seq)
    ) STRICT
    """,
    "INSERT INTO runs_v2 (id, session_id, seq, command, workspace, level, backend, profile,"
    " status, exit_code, started, finished, duration_ms, peak_mem_kb, cpu_ms, decision, summary)"
    " SELECT id, session_id, seq, command, workspace, level, backend, profile, status,"
    " exit_code, started, finished, duration_ms, peak_mem_kb, cpu_ms, decision, summary"
    " FROM runs",
    "DROP TABLE runs",
    "ALTER TABLE runs_v2 RENAME TO runs",
    "CREATE INDEX runs_started ON runs (started)",
    "CREATE INDEX runs_status ON runs (status)",
)


def _statements(stmts: tuple[str, ...]) -> Callable[[sqlite3.Connection], None]:
    # Not executescript(): it COMMITs first, which would break the surrounding transaction.
    def apply(conn: sqlite3.Connection) -> None:
        for stmt in stmts:
            conn.execute(stmt)

    return apply


MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (
    _statements(_V1), _statements(_V2))
SCHEMA_VERSION = len(MIGRATIONS)


def user_version(conn: sqlite3.Connection) -> int:
    row = conn.execute("PRAGMA user_version").fetchone()
    return int(row[0])


def _too_new(version: int) -> StateError:
    return StateError(
        f"state database schema version {version} is newer than this sandbox understands "
        f"({SCHEMA_VERSION})",
        hint="upgrade sandbox, or point SANDBOX_HOME elsewhere",
    )


def ensure_schema(conn: sqlite3.Connection) -> None:
    """Bring the database to SCHEMA_VERSION; a no-op (one pragma read) when it is already."""
    version = user_version(conn)
    if version == SCHEMA_VERSION:
        return
    if version > SCHEMA_VERSION:
        raise _too_new(version)
    # Persistent per database file; must be set outside a transaction.
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("BEGIN EXCLUSIVE")
    try:
        version = user_version(conn)  # another process may have migrated meanwhile
        if version > SCHEMA_VERSION:
            raise _too_new(version)
        for migrate in MIGRATIONS[version:]:
            migrate(conn)
        # PRAGMA takes no bound parameters; SCHEMA_VERSION is our own int.
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION:d}")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
