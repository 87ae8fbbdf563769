"""The run/session store: one SQLite database (WAL) in the state directory.

It is opened on every CLI call, so opening is one connect plus one pragma read; schema work
happens only when the version is behind. Writes are short BEGIN IMMEDIATE transactions so
concurrent sandbox processes queue on busy_timeout instead of failing.

Durability: synchronous=NORMAL (in WAL mode the database cannot corrupt; a power cut may lose
the last few transactions). The fsync'd audit log and the commit journal are the durable
record of what happened; this store is the index used to find and show it.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from sandbox._home import HomeLayout, check_id, ensure_home
from sandbox.errors import NotFoundError, StateError, UsageError
from sandbox.store._ids import IdKind, new_id
from sandbox.store._lock import session_lock
from sandbox.store._model import (
    Decision,
    RefKind,
    ResolvedRef,
    RunRecord,
    RunStatus,
    SessionRecord,
    SessionState,
    format_time,
    path_to_db,
    run_from_row,
    session_from_row,
)
from sandbox.store._schema import ensure_schema

__all__ = ["Store"]

_BUSY_TIMEOUT_S = 10.0
_ID_RETRIES = 5
_REF_RE = re.compile(r"^[0-9a-z-]+$")
_HINT_COUNT = 5


def _now() -> datetime:
    return datetime.now(UTC)


def _json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


class Store:
    """Run and session records. Not thread-safe: one Store per thread (one per CLI call)."""

    def __init__(self, layout: HomeLayout) -> None:
        self.layout = layout
        ensure_home(layout.root)
        try:
            conn = sqlite3.connect(layout.db, timeout=_BUSY_TIMEOUT_S, isolation_level=None)
        except sqlite3.Error as exc:
            raise StateError(f"cannot open state database {layout.db}: {exc}") from exc
        try:
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA synchronous = NORMAL")
            ensure_schema(conn)
        except sqlite3.Error as exc:
            conn.close()
            raise StateError(
                f"state database {layout.db} is unusable: {exc}",
                hint="move it aside; run history is also in the audit log",
            ) from exc
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    # -- lifecycle ------------------------------------------------------------------------

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction; sqlite errors become StateError."""
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StateError(f"state database {self.layout.db} is busy: {exc}") from exc
        try:
            yield self._conn
        except sqlite3.Error as exc:
            self._conn.execute("ROLLBACK")
            raise StateError(f"state database write failed: {exc}") from exc
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def _one(self, sql: str, params: Sequence[object] = ()) -> sqlite3.Row | None:
        try:
            row: sqlite3.Row | None = self._conn.execute(sql, params).fetchone()
        except sqlite3.Error as exc:
            raise StateError(f"state database read failed: {exc}") from exc
        return row

    def _all(self, sql: str, params: Sequence[object] = ()) -> list[sqlite3.Row]:
        try:
            return list(self._conn.execute(sql, params).fetchall())
        except sqlite3.Error as exc:
            raise StateError(f"state database read failed: {exc}") from exc

    # -- sessions -------------------------------------------------------------------------

    def new_session(
        self,
        workspace: Path,
        *,
        level: int,
        policy_digest: str,
        started_ns: int | None = None,
    ) -> SessionRecord:
        now = format_time(_now())
        started = time.time_ns() if started_ns is None else started_ns
        for _ in range(_ID_RETRIES):
            sid = new_id(IdKind.SESSION)
            try:
                with self._tx() as conn:
                    conn.execute(
                        "INSERT INTO sessions (id, workspace, created, updated, state, level,"
                        " policy_digest, started_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            sid,
                            path_to_db(workspace),
                            now,
                            now,
                            SessionState.OPEN,
                            level,
                            policy_digest,
                            started,
                        ),
                    )
            except StateError as exc:
                if isinstance(exc.__cause__, sqlite3.IntegrityError):
                    continue  # id collision within the same centisecond: draw again
                raise
            return self.get_session(sid)
        raise StateError("could not allocate a unique session id")

    def open_named_session(
        self, name: str, workspace: Path, *, level: int, policy_digest: str,
        started_ns: int | None = None,
    ) -> SessionRecord:
        """The session called `name` (`--session NAME`), created on first use."""
        check_id("session", name)
        row = self._one("SELECT * FROM sessions WHERE id = ?", (name,))
        if row is not None:
            return session_from_row(row)
        now = format_time(_now())
        with self._tx() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO sessions (id, workspace, created, updated, state, level,"
                " policy_digest, started_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (name, path_to_db(workspace), now, now, SessionState.OPEN, level,
                 policy_digest, time.time_ns() if started_ns is None else started_ns),
            )
        return self.get_session(name)

    def get_session(self, session_id: str) -> SessionRecord:
        row = self._one("SELECT * FROM sessions WHERE id = ?", (session_id,))
        if row is None:
            raise NotFoundError(f"no session {session_id!r}", hint=self._recent_hint())
        return session_from_row(row)

    def list_sessions(
        self, *, state: SessionState | None = None, limit: int = 20
    ) -> list[SessionRecord]:
        """Newest first."""
        if state is None:
            rows = self._all(
                "SELECT * FROM sessions ORDER BY created DESC, id DESC LIMIT ?", (limit,)
            )
        else:
            rows = self._all(
                "SELECT * FROM sessions WHERE state = ? ORDER BY created DESC, id DESC LIMIT ?",
                (state, limit),
            )
        return [session_from_row(r) for r in rows]

    def set_session_state(self, session_id: str, state: SessionState, *,
                          committed: int = 0, latest_run: Decision | None = None
                          ) -> SessionRecord:
        """Move the session to `state` (the caller checked the move) and count `committed`
        more of its changes as committed; with `latest_run`, record that decision on the
        session's latest run (`list_runs` order) in the same write."""
        with self._tx() as conn:
            cur = conn.execute(
                "UPDATE sessions SET state = ?, updated = ?, committed = committed + ?"
                " WHERE id = ?",
                (state, format_time(_now()), committed, session_id),
            )
            if cur.rowcount == 0:
                raise NotFoundError(f"no session {session_id!r}")
            if latest_run is not None:
                conn.execute(
                    "UPDATE runs SET decision = ? WHERE id = (SELECT id FROM runs WHERE"
                    " session_id = ? ORDER BY started DESC, id DESC LIMIT 1)",
                    (latest_run, session_id))
        return self.get_session(session_id)

    def set_session_policy(self, session_id: str, policy: Mapping[str, object]) -> None:
        """Keep the effective policy the session's latest run was decided under."""
        with self._tx() as conn:
            conn.execute("UPDATE sessions SET policy = ? WHERE id = ?",
                         (_json(dict(policy)), session_id))

    # -- runs -----------------------------------------------------------------------------

    def new_run(
        self,
        session_id: str,
        command: Sequence[str],
        *,
        backend: str,
        profile: str,
        workspace: Path | None = None,
        level: int | None = None,
        launcher: tuple[int, float | None] | None = None,
        session_policy: Mapping[str, object] | None = None,
    ) -> RunRecord:
        """Record a run as `running`; workspace and level default to the session's.
        `launcher`: (pid, start) of the process that holds it (see `set_launcher`);
        `session_policy`: the policy the session's runs are now decided under. Both are
        written with the run, in one transaction (each write of its own costs a commit)."""
        session = self.get_session(session_id)
        ws = session.workspace if workspace is None else workspace
        lvl = session.level if level is None else level
        argv = _json([str(a) for a in command])
        for _ in range(_ID_RETRIES):
            rid = new_id(IdKind.RUN)
            try:
                with self._tx() as conn:
                    if session_policy is not None:
                        conn.execute("UPDATE sessions SET policy = ? WHERE id = ?",
                                     (_json(dict(session_policy)), session_id))
                    # seq is computed inside the write transaction, so concurrent runs of a
                    # session (which the session lock should prevent anyway) cannot share one.
                    conn.execute(
                        "INSERT INTO runs (id, session_id, seq, command, workspace, level,"
                        " backend, profile, status, started, decision, launcher_pid,"
                        " launcher_start)"
                        " VALUES (?, ?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM runs"
                        " WHERE session_id = ?), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            rid,
                            session_id,
                            session_id,
                            argv,
                            path_to_db(ws),
                            lvl,
                            backend,
                            profile,
                            RunStatus.RUNNING,
                            format_time(_now()),
                            Decision.NONE,
                            None if launcher is None else launcher[0],
                            None if launcher is None else launcher[1],
                        ),
                    )
            except StateError as exc:
                if isinstance(exc.__cause__, sqlite3.IntegrityError):
                    continue
                raise
            return self.get_run(rid)
        raise StateError("could not allocate a unique run id")

    def get_run(self, run_id: str) -> RunRecord:
        row = self._one("SELECT * FROM runs WHERE id = ?", (run_id,))
        if row is None:
            raise NotFoundError(f"no run {run_id!r}", hint=self._recent_hint())
        return run_from_row(row)

    def finish_run(
        self,
        run_id: str,
        *,
        status: RunStatus,
        exit_code: int | None,
        duration_ms: int | None = None,
        peak_mem_kb: int | None = None,
        cpu_ms: int | None = None,
        summary: Mapping[str, object] | None = None,
    ) -> RunRecord:
        """Record how a run ended; duration defaults to the wall time since it was recorded."""
        run = self.get_run(run_id)
        finished = _now()
        if duration_ms is None:
            duration_ms = max(0, int((finished - run.started).total_seconds() * 1000))
        try:
            summary_json = _json(dict(summary or {}))
        except (TypeError, ValueError) as exc:
            raise StateError(f"run summary is not JSON-serialisable: {exc}") from exc
        with self._tx() as conn:
            conn.execute(
                "UPDATE runs SET status = ?, exit_code = ?, finished = ?, duration_ms = ?,"
                " peak_mem_kb = ?, cpu_ms = ?, summary = ? WHERE id = ?",
                (
                    status,
                    exit_code,
                    format_time(finished),
                    duration_ms,
                    peak_mem_kb,
                    cpu_ms,
                    summary_json,
                    run_id,
                ),
            )
        return self.get_run(run_id)

    def set_launcher(self, run_id: str, *, pid: int, start: float | None,
                     backend_ref: str | None = None) -> None:
        """Which process holds the run (and its start time), so a dead holder can be told."""
        with self._tx() as conn:
            conn.execute(
                "UPDATE runs SET launcher_pid = ?, launcher_start = ?,"
                " backend_ref = COALESCE(?, backend_ref) WHERE id = ?",
                (pid, start, backend_ref, run_id))

    def running_runs(self) -> list[RunRecord]:
        """Runs recorded as running (index on status: cheap on every invocation)."""
        rows = self._all("SELECT * FROM runs WHERE status = ?", (RunStatus.RUNNING,))
        return [run_from_row(r) for r in rows]

    def set_decision(self, run_id: str, decision: Decision) -> RunRecord:
        with self._tx() as conn:
            cur = conn.execute("UPDATE runs SET decision = ? WHERE id = ?", (decision, run_id))
            if cur.rowcount == 0:
                raise NotFoundError(f"no run {run_id!r}")
        return self.get_run(run_id)

    def list_runs(
        self, limit: int = 20, *, session_id: str | None = None, workspace: Path | None = None
    ) -> list[RunRecord]:
        """Newest first, optionally only one session's or one workspace's runs."""
        where, params = self._run_filter(session_id, workspace)
        rows = self._all(
            f"SELECT * FROM runs{where} ORDER BY started DESC, id DESC LIMIT ?", (*params, limit)
        )
        return [run_from_row(r) for r in rows]

    @staticmethod
    def _run_filter(session_id: str | None, workspace: Path | None) -> tuple[str, list[object]]:
        clauses: list[str] = []
        params: list[object] = []
        if session_id is not None:
            clauses.append("session_id = ?")
            params.append(session_id)
        if workspace is not None:
            clauses.append("workspace = ?")
            params.append(path_to_db(workspace))
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), params

    # -- references -----------------------------------------------------------------------

    def resolve(self, ref: str, *, workspace: Path | None = None) -> ResolvedRef:
        """A run id, a session id, a unique prefix of either (with or without its "r-"/"s-"),
        or "last" (the latest run, in `workspace` if given). NotFoundError/UsageError else."""
        text = ref.strip().lower()
        named = self._one("SELECT * FROM sessions WHERE id = ?", (ref.strip(),))
        if named is not None:  # a `--session NAME` given by the user, matched exactly
            return self._from_session(ref, session_from_row(named))
        if text == "last":
            runs = self.list_runs(1, workspace=workspace)
            if not runs:
                where = "" if workspace is None else f" in {workspace}"
                raise NotFoundError(f"no runs yet{where}", hint="start one with `sandbox run`")
            return self._from_run(ref, runs[0])
        if not text or not _REF_RE.fullmatch(text):
            raise NotFoundError(f"no run or session {ref!r}", hint=self._recent_hint())
        matches = self._prefix_matches(text)
        if len(matches) == 1:
            kind, ident = matches[0]
            if kind is RefKind.RUN:
                return self._from_run(ref, self.get_run(ident))
            return self._from_session(ref, self.get_session(ident))
        if not matches:
            raise NotFoundError(f"no run or session {ref!r}", hint=self._recent_hint())
        shown = ", ".join(ident for _, ident in matches[:_HINT_COUNT])
        more = "..." if len(matches) > _HINT_COUNT else ""
        raise UsageError(
            f"{ref!r} is ambiguous: it matches {len(matches)} runs/sessions",
            hint=f"type more characters: {shown}{more}",
        )

    def _prefix_matches(self, text: str) -> list[tuple[RefKind, str]]:
        candidates = [text] if text.startswith(("r-", "s-")) else [f"r-{text}", f"s-{text}"]
        out: list[tuple[RefKind, str]] = []
        for prefix in candidates:
            # An exact id wins even if it is also a prefix of a longer (foreign) id.
            for table, kind in (("runs", RefKind.RUN), ("sessions", RefKind.SESSION)):
                if self._one(f"SELECT 1 FROM {table} WHERE id = ?", (prefix,)) is not None:
                    return [(kind, prefix)]
        for prefix in candidates:
            # Range scan on the primary key; "~" sorts after every id character.
            for table, kind in (("runs", RefKind.RUN), ("sessions", RefKind.SESSION)):
                rows = self._all(
                    f"SELECT id FROM {table} WHERE id >= ? AND id < ? ORDER BY id DESC LIMIT ?",
                    (prefix, prefix + "~", _HINT_COUNT + 1),
                )
                out += [(kind, str(r["id"])) for r in rows]
        return out

    def _from_run(self, ref: str, run: RunRecord) -> ResolvedRef:
        return ResolvedRef(ref, RefKind.RUN, self.get_session(run.session_id), run)

    def _from_session(self, ref: str, session: SessionRecord) -> ResolvedRef:
        runs = self.list_runs(1, session_id=session.id)
        return ResolvedRef(ref, RefKind.SESSION, session, runs[0] if runs else None)

    def _recent_hint(self) -> str:
        rows = self._all(
            "SELECT id, session_id FROM runs ORDER BY started DESC, id DESC LIMIT ?",
            (_HINT_COUNT,),
        )
        if not rows:
            return "there are no runs yet; start one with `sandbox run -- COMMAND`"
        recent = ", ".join(f"{r['id']} ({r['session_id']})" for r in rows)
        return f"recent runs: {recent}; or use `last`"

    # -- locking --------------------------------------------------------------------------

    def session_lock(
        self, session_id: str, *, timeout: float | None = None
    ) -> AbstractContextManager[Path]:
        """See `sandbox.store.session_lock`."""
        return session_lock(self.layout, session_id, timeout=timeout)
