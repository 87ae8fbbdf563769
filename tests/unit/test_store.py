"""Store: round trips, ordering, resolve(), schema versioning and cheap reopen."""

from __future__ import annotations

import os
import re
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox._home import HomeLayout
from sandbox.errors import NotFoundError, StateError, UsageError
from sandbox.store import (
    SCHEMA_VERSION,
    Decision,
    IdKind,
    RefKind,
    RunStatus,
    SessionState,
    Store,
    new_id,
)

ID_RE = re.compile(r"^[rs]-[0-9a-hjkmnp-tv-z]{10}$")


@pytest.fixture
def layout(tmp_path: Path) -> HomeLayout:
    return HomeLayout(tmp_path / "home").ensure()


@pytest.fixture
def store(layout: HomeLayout) -> Iterator[Store]:
    with Store(layout) as s:
        yield s


def test_session_round_trip(store: Store, tmp_path: Path) -> None:
    s = store.new_session(tmp_path, level=3, policy_digest="sha256:abc", started_ns=123)
    assert ID_RE.fullmatch(s.id) and s.id.startswith("s-")
    got = store.get_session(s.id)
    assert got == s
    assert (got.workspace, got.level, got.policy_digest, got.started_ns) == (
        tmp_path,
        3,
        "sha256:abc",
        123,
    )
    assert got.state is SessionState.OPEN
    changed = store.set_session_state(s.id, SessionState.PENDING)
    assert changed.state is SessionState.PENDING and changed.updated >= s.updated
    assert store.get_session(s.id).state is SessionState.PENDING


def test_run_round_trip(store: Store, tmp_path: Path) -> None:
    s = store.new_session(tmp_path, level=2, policy_digest="d")
    r = store.new_run(s.id, ["sh", "-c", "echo 'x y'"], backend="nsjail", profile="default")
    assert ID_RE.fullmatch(r.id) and r.id.startswith("r-")
    assert (r.seq, r.command, r.workspace, r.level) == (1, ("sh", "-c", "echo 'x y'"), tmp_path, 2)
    assert (r.status, r.decision, r.exit_code, r.finished) == (
        RunStatus.RUNNING,
        Decision.NONE,
        None,
        None,
    )
    done = store.finish_run(
        r.id,
        status=RunStatus.TIMEOUT,
        exit_code=124,
        peak_mem_kb=2048,
        cpu_ms=15,
        summary={"added": 2, "paths": ["a", "b"]},
    )
    assert done.status is RunStatus.TIMEOUT and done.exit_code == 124
    assert done.finished is not None and done.finished >= done.started
    assert done.duration_ms is not None and done.duration_ms >= 0
    assert (done.peak_mem_kb, done.cpu_ms) == (2048, 15)
    assert done.summary == {"added": 2, "paths": ["a", "b"]}
    assert store.set_decision(r.id, Decision.PENDING).decision is Decision.PENDING
    assert store.get_run(r.id) == store.set_decision(r.id, Decision.PENDING)


def test_run_overrides_and_explicit_duration(store: Store, tmp_path: Path) -> None:
    s = store.new_session(tmp_path, level=2, policy_digest="d")
    r = store.new_run(s.id, ["x"], backend="docker", profile="p", workspace=tmp_path / "w", level=1)
    assert (r.workspace, r.level, r.backend, r.profile) == (tmp_path / "w", 1, "docker", "p")
    done = store.finish_run(r.id, status=RunStatus.FINISHED, exit_code=0, duration_ms=1234)
    assert done.duration_ms == 1234 and done.summary == {}


def test_non_utf8_workspace(store: Store, tmp_path: Path) -> None:
    ws = Path(os.fsdecode(tmp_path.as_posix().encode() + b"/\xff\xfe"))
    s = store.new_session(ws, level=2, policy_digest="d")
    assert store.get_session(s.id).workspace == ws
    r = store.new_run(s.id, [os.fsdecode(b"\xff")], backend="nsjail", profile="p")
    assert store.get_run(r.id).command == (os.fsdecode(b"\xff"),)
    assert store.list_runs(workspace=ws)[0].id == r.id


def test_seq_is_per_session(store: Store, tmp_path: Path) -> None:
    a = store.new_session(tmp_path, level=2, policy_digest="d")
    b = store.new_session(tmp_path, level=2, policy_digest="d")
    seqs = [store.new_run(sid, ["t"], backend="n", profile="p").seq for sid in (a.id, a.id, b.id)]
    assert seqs == [1, 2, 1]


def test_unknown_ids(store: Store) -> None:
    with pytest.raises(NotFoundError):
        store.get_session("s-nope")
    with pytest.raises(NotFoundError):
        store.get_run("r-nope")
    with pytest.raises(NotFoundError):
        store.new_run("s-nope", ["x"], backend="n", profile="p")
    with pytest.raises(NotFoundError):
        store.set_decision("r-nope", Decision.COMMITTED)
    with pytest.raises(NotFoundError):
        store.set_session_state("s-nope", SessionState.REJECTED)


def test_list_runs_newest_first_and_filters(store: Store, tmp_path: Path) -> None:
    a = store.new_session(tmp_path / "a", level=2, policy_digest="d")
    b = store.new_session(tmp_path / "b", level=2, policy_digest="d")
    runs = [store.new_run(sid, ["t"], backend="n", profile="p") for sid in (a.id, b.id, a.id)]
    assert [r.id for r in store.list_runs()] == [r.id for r in reversed(runs)]
    assert [r.id for r in store.list_runs(2)] == [runs[2].id, runs[1].id]
    assert [r.id for r in store.list_runs(session_id=a.id)] == [runs[2].id, runs[0].id]
    assert [r.id for r in store.list_runs(workspace=tmp_path / "b")] == [runs[1].id]
    assert [s.id for s in store.list_sessions()] == [b.id, a.id]
    store.set_session_state(a.id, SessionState.PENDING)
    assert [s.id for s in store.list_sessions(state=SessionState.PENDING)] == [a.id]


def test_ids_sort_by_time() -> None:
    ids = [new_id(IdKind.RUN, now=1_800_000_000 + i * 0.37) for i in range(50)]
    assert ids == sorted(ids)
    assert all(ID_RE.fullmatch(i) for i in ids)


# -- resolve ----------------------------------------------------------------------------


@pytest.fixture
def populated(store: Store, tmp_path: Path) -> dict[str, Any]:
    s1 = store.new_session(tmp_path / "one", level=2, policy_digest="d")
    r1 = store.new_run(s1.id, ["a"], backend="n", profile="p")
    r2 = store.new_run(s1.id, ["b"], backend="n", profile="p")
    s2 = store.new_session(tmp_path / "two", level=2, policy_digest="d")
    r3 = store.new_run(s2.id, ["c"], backend="n", profile="p")
    s3 = store.new_session(tmp_path / "three", level=2, policy_digest="d")
    return {"s1": s1, "s2": s2, "s3": s3, "r1": r1, "r2": r2, "r3": r3}


def test_resolve_full_ids(store: Store, populated: dict[str, Any]) -> None:
    got = store.resolve(populated["r1"].id)
    assert got.kind is RefKind.RUN and got.run == populated["r1"]
    assert got.session.id == populated["s1"].id
    got = store.resolve(populated["s1"].id)
    assert got.kind is RefKind.SESSION and got.run is not None
    assert got.run.id == populated["r2"].id  # the session's latest run
    got = store.resolve(populated["s3"].id)
    assert got.kind is RefKind.SESSION and got.run is None


def test_resolve_last(store: Store, populated: dict[str, Any], tmp_path: Path) -> None:
    assert store.resolve("last").run == populated["r3"]
    assert store.resolve(" LAST ").run == populated["r3"]
    assert store.resolve("last", workspace=tmp_path / "one").run == populated["r2"]
    with pytest.raises(NotFoundError, match="no runs yet"):
        store.resolve("last", workspace=tmp_path / "none")


def test_resolve_unique_prefix(store: Store, populated: dict[str, Any]) -> None:
    rid: str = populated["r3"].id
    # The shortest prefix that only r3 has (the time part is shared with r1/r2).
    # Ids minus their "r-"/"s-": a bare prefix may name a run or a session.
    others = [r.id[2:] for r in store.list_runs(100) if r.id != rid]
    others += [s.id[2:] for s in store.list_sessions(limit=100)]
    for n in range(3, len(rid) + 1):
        if not any(o.startswith(rid[2:n]) for o in others):
            break
    got = store.resolve(rid[:n])
    assert got.kind is RefKind.RUN and got.run == populated["r3"]
    # Without the "r-" and in upper case, as a user might paste it.
    assert store.resolve(rid[2:n].upper()).run == populated["r3"]


def test_resolve_ambiguous_prefix(store: Store, populated: dict[str, Any]) -> None:
    with pytest.raises(UsageError, match="ambiguous") as info:
        store.resolve("r-")
    assert info.value.hint is not None and populated["r1"].id in info.value.hint


def test_resolve_unknown_lists_recent(store: Store, populated: dict[str, Any]) -> None:
    with pytest.raises(NotFoundError) as info:
        store.resolve("r-zzzz")
    err = info.value
    assert err.exit_code == 2
    assert err.hint is not None
    assert populated["r3"].id in err.hint and "last" in err.hint
    with pytest.raises(NotFoundError):
        store.resolve("../../etc/passwd")
    with pytest.raises(NotFoundError):
        store.resolve("")


def test_resolve_with_no_runs(store: Store) -> None:
    with pytest.raises(NotFoundError) as info:
        store.resolve("r-0")
    assert "no runs yet" in str(info.value)
    with pytest.raises(NotFoundError):
        store.resolve("last")


# -- schema and opening -----------------------------------------------------------------


def test_schema_versioned_and_wal(layout: HomeLayout) -> None:
    Store(layout).close()
    conn = sqlite3.connect(layout.db)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


def test_reopen_does_no_schema_work(layout: HomeLayout, monkeypatch: pytest.MonkeyPatch) -> None:
    Store(layout).close()
    statements: list[str] = []
    real_connect = sqlite3.connect

    def traced(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        conn: sqlite3.Connection = real_connect(*args, **kwargs)
        conn.set_trace_callback(statements.append)
        return conn

    monkeypatch.setattr(sqlite3, "connect", traced)
    Store(layout).close()
    assert statements, "trace callback saw nothing"
    assert not [s for s in statements if re.search(r"CREATE|journal_mode|BEGIN", s, re.I)]


def test_newer_schema_is_refused(layout: HomeLayout) -> None:
    Store(layout).close()
    conn = sqlite3.connect(layout.db)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StateError, match="newer"):
        Store(layout)


def test_corrupt_database_is_a_state_error(layout: HomeLayout) -> None:
    layout.db.write_bytes(b"this is not a sqlite database" * 200)
    with pytest.raises(StateError):
        Store(layout)


def test_concurrent_first_open_migrates_once(layout: HomeLayout) -> None:
    errors: list[BaseException] = []

    def open_and_use() -> None:
        try:
            with Store(layout) as s:
                s.new_session(layout.root, level=2, policy_digest="d")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_and_use) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with Store(layout) as s:
        assert len(s.list_sessions()) == 4
