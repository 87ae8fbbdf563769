"""Typed records of the run-state store and their conversion from SQLite rows."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType

__all__ = [
    "Decision",
    "RefKind",
    "ResolvedRef",
    "RunRecord",
    "RunStatus",
    "SessionRecord",
    "SessionState",
    "format_time",
    "parse_time",
    "path_from_db",
    "path_to_db",
    "run_from_row",
    "session_from_row",
]

_TIME_FMT = "%Y-%m-%dT%H:%M:%S.%fZ"


class SessionState(StrEnum):
    """Where a session is; the allowed moves are in `sandbox.lifecycle` (one state machine)."""

    OPEN = "open"  # nothing pending: no changes yet, or all auto-committed (levels 3-4)
    PENDING = "pending"  # changes held for a person; nothing of the session committed yet
    PARTIAL = "partial"  # some of the session's changes committed, the rest still pending
    COMMITTED = "committed"  # a person closed it with its changes committed (final)
    REJECTED = "rejected"  # a person discarded all of it, nothing was committed (final)


class RunStatus(StrEnum):
    RUNNING = "running"
    FINISHED = "finished"  # the command ran and exited (any exit code)
    FAILED = "failed"  # the sandbox itself failed (exit 125 class)
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"  # stopped by a signal to `sandbox run` or by `sandbox kill`
    LOST = "lost"  # its `sandbox run` process died without recording the end (SIGKILL, crash)


class Decision(StrEnum):
    NONE = "none"  # nothing to decide (no changes), or not decided yet
    PENDING = "pending"
    COMMITTED = "committed"
    REJECTED = "rejected"
    PARTIAL = "partial"


class RefKind(StrEnum):
    RUN = "run"
    SESSION = "session"


def format_time(moment: datetime) -> str:
    # Fixed-width UTC text sorts chronologically as a string, so ORDER BY works on it.
    return moment.astimezone(UTC).strftime(_TIME_FMT)


def parse_time(text: str) -> datetime:
    # fromisoformat reads format_time's "...Z" text; strptime would import _strptime and
    # calendar on every CLI call (~3 ms) and parse ~10x slower.
    return datetime.fromisoformat(text).astimezone(UTC)


def path_to_db(path: Path) -> bytes:
    # BLOB, not TEXT: a workspace path need not be valid UTF-8 on Linux.
    return os.fsencode(path)


def path_from_db(value: bytes) -> Path:
    return Path(os.fsdecode(value))


@dataclass(frozen=True)
class SessionRecord:
    id: str
    workspace: Path
    created: datetime
    updated: datetime
    state: SessionState
    level: int
    policy_digest: str
    started_ns: int  # wall clock (time_ns) when the session's snapshot began: conflict baseline
    policy: Mapping[str, object] = MappingProxyType({})  # the effective policy of its last run
    committed: int = 0  # how many of its changes were committed so far (any actor)


@dataclass(frozen=True)
class RunRecord:
    id: str
    session_id: str
    seq: int  # 1-based position of the run in its session
    command: tuple[str, ...]
    workspace: Path
    level: int
    backend: str
    profile: str
    status: RunStatus
    exit_code: int | None
    started: datetime
    finished: datetime | None
    duration_ms: int | None
    peak_mem_kb: int | None
    cpu_ms: int | None
    decision: Decision
    summary: Mapping[str, object]
    launcher_pid: int | None = None  # the `sandbox run` process that holds the run
    launcher_start: float | None = None  # its start time (psutil), so a reused pid is not it
    backend_ref: str | None = None  # e.g. the Docker container, removed if the run is lost


@dataclass(frozen=True)
class ResolvedRef:
    """What a user's RUN argument named.

    kind RUN: `run` is that run. kind SESSION: `run` is the session's latest run (None if it
    has none yet). `session` is always the session involved.
    """

    ref: str
    kind: RefKind
    session: SessionRecord
    run: RunRecord | None


def session_from_row(row: sqlite3.Row) -> SessionRecord:
    return SessionRecord(
        id=row["id"],
        workspace=path_from_db(row["workspace"]),
        created=parse_time(row["created"]),
        updated=parse_time(row["updated"]),
        state=SessionState(row["state"]),
        level=row["level"],
        policy_digest=row["policy_digest"],
        started_ns=row["started_ns"],
        policy=MappingProxyType(_dict(row["policy"])),
        committed=row["committed"],
    )


def _dict(text: str) -> dict[str, object]:
    data = json.loads(text)
    return data if isinstance(data, dict) else {}


def run_from_row(row: sqlite3.Row) -> RunRecord:
    command = json.loads(row["command"])
    summary = json.loads(row["summary"])
    finished = row["finished"]
    return RunRecord(
        id=row["id"],
        session_id=row["session_id"],
        seq=row["seq"],
        command=tuple(str(a) for a in command),
        workspace=path_from_db(row["workspace"]),
        level=row["level"],
        backend=row["backend"],
        profile=row["profile"],
        status=RunStatus(row["status"]),
        exit_code=row["exit_code"],
        started=parse_time(row["started"]),
        finished=None if finished is None else parse_time(finished),
        duration_ms=row["duration_ms"],
        peak_mem_kb=row["peak_mem_kb"],
        cpu_ms=row["cpu_ms"],
        decision=Decision(row["decision"]),
        summary=MappingProxyType(summary if isinstance(summary, dict) else {}),
        launcher_pid=row["launcher_pid"],
        launcher_start=row["launcher_start"],
        backend_ref=row["backend_ref"],
    )
