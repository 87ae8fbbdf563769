"""commit_changeset and recover_interrupted: results, conflicts, ownership, journal replay."""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path
from typing import Any

import pytest

from sandbox.errors import ConflictError, ForbiddenChangeError, NotFoundError
from sandbox.fs import ChangeSet, _journal, commit_changeset, compute_changeset, recover_interrupted
from sandbox.fs import _commit as commit_mod
from tests.conftest import require_root
from tests.support.trees import Tree, snapshot, whiteout, write


class Env:
    def __init__(self, tmp: Path) -> None:
        self.upper = tmp / "upper"
        self.ws = tmp / "ws"
        self.journal = tmp / "state/journal"
        self.upper.mkdir()
        self.ws.mkdir()
        self.started = time.time_ns()

    def mark_started(self) -> None:
        # ctime uses the coarse clock; step past it so "before the run" is unambiguous
        time.sleep(0.02)
        self.started = time.time_ns()
        time.sleep(0.02)

    def commit(self, cs: ChangeSet | None = None, **kw: Any) -> commit_mod.CommitResult:
        cs = cs if cs is not None else compute_changeset(self.upper, self.ws)
        return commit_changeset(
            cs, upper=self.upper, workspace=self.ws, journal_dir=self.journal,
            started_ns=self.started, **kw,
        )  # fmt: skip


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return Env(tmp_path)


def build_scenario(env: Env) -> Tree:
    """A workspace, an upper with every kind of change, and the expected merged result."""
    require_root()
    write(env.ws / "keep.txt", "keep\n")
    write(env.ws / "mod.txt", "old\n")
    write(env.ws / "run.sh", "echo\n")
    write(env.ws / "del.txt", "bye\n")
    write(env.ws / "olddir/a", "a\n")
    write(env.ws / "olddir/sub/b", "b\n")
    write(env.ws / "becomes_dir", "file\n")
    write(env.ws / "becomes_file/x", "x\n")
    os.symlink("keep.txt", env.ws / "link")
    env.mark_started()
    write(env.upper / "mod.txt", "new\ncontent\n", 0o600)
    write(env.upper / "run.sh", "echo\n", 0o755)
    whiteout(env.upper / "del.txt")
    whiteout(env.upper / "olddir")
    (env.upper / "becomes_dir").mkdir()
    write(env.upper / "becomes_dir/inner.txt", "inner\n")
    write(env.upper / "becomes_file", "now file\n")
    os.symlink("mod.txt", env.upper / "link")
    write(env.upper / "new/deep/file.py", "print()\n", 0o755)
    os.symlink("../file.py", env.upper / "new/deep/rel")
    write(env.upper / "bin.dat", b"\0\1\2\3")
    return {
        "keep.txt": ("file", 0o644, b"keep\n"),
        "mod.txt": ("file", 0o600, b"new\ncontent\n"),
        "run.sh": ("file", 0o755, b"echo\n"),
        "becomes_dir": ("dir", 0o755),
        "becomes_dir/inner.txt": ("file", 0o644, b"inner\n"),
        "becomes_file": ("file", 0o644, b"now file\n"),
        "link": ("link", "mod.txt"),
        "new": ("dir", 0o755),
        "new/deep": ("dir", 0o755),
        "new/deep/file.py": ("file", 0o755, b"print()\n"),
        "new/deep/rel": ("link", "../file.py"),
        "bin.dat": ("file", 0o644, b"\0\1\2\3"),
    }


def test_full_commit_reaches_merged_view(env: Env) -> None:
    expected = build_scenario(env)
    result = env.commit()
    assert snapshot(env.ws) == expected
    assert "olddir/sub/b" in result.committed and result.conflicts == ()
    assert os.listdir(env.journal) == ["commit.lock"]  # journal dropped when done
    assert not [n for n in os.listdir(env.ws) if n.startswith(".sandbox-")]


def test_commit_preserves_mtime_and_sets_workspace_owner(env: Env) -> None:
    require_root()
    os.chown(env.ws, 1234, 4321)
    f = write(env.upper / "d/f.txt", "x", 0o640)
    os.utime(f, ns=(1_000_000_000, 1_500_000_000))
    os.symlink("f.txt", env.upper / "d/l")
    os.utime(env.upper / "d", ns=(1_000_000_000, 1_200_000_000))
    env.commit()
    st = os.lstat(env.ws / "d/f.txt")
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1234, 4321, 0o640)
    assert st.st_mtime_ns == 1_500_000_000
    assert os.lstat(env.ws / "d").st_mtime_ns == 1_200_000_000
    assert os.lstat(env.ws / "d/l").st_uid == 1234


def test_setgid_is_stripped_from_directories(env: Env) -> None:
    (env.upper / "shared").mkdir()
    os.chmod(env.upper / "shared", 0o2775)
    env.commit()
    assert stat.S_IMODE(os.lstat(env.ws / "shared").st_mode) == 0o775


def test_forbidden_change_refuses_everything(env: Env) -> None:
    write(env.upper / "fine.txt", "ok")
    os.symlink("/etc/passwd", env.upper / "evil")
    with pytest.raises(ForbiddenChangeError, match="symlink-escape"):
        env.commit()
    assert snapshot(env.ws) == {}
    # the governance layer passes only allowed paths: then it goes through
    env.commit(paths=["fine.txt"])
    assert snapshot(env.ws) == {"fine.txt": ("file", 0o644, b"ok")}


def test_modified_since_start_is_a_conflict_and_nothing_applies(env: Env) -> None:
    write(env.ws / "a.txt", "a\n")
    write(env.ws / "b.txt", "b\n")
    env.mark_started()
    write(env.upper / "a.txt", "A\n")
    write(env.upper / "b.txt", "B\n")
    write(env.upper / "c.txt", "C\n")
    write(env.ws / "b.txt", "someone else\n")  # a person edits b.txt during the run
    before = snapshot(env.ws)
    with pytest.raises(ConflictError) as info:
        env.commit()
    assert "b.txt" in str(info.value) and "a.txt" not in str(info.value)
    assert snapshot(env.ws) == before
    result = env.commit(force=True)
    assert snapshot(env.ws)["b.txt"] == ("file", 0o644, b"B\n")
    assert any(c.startswith("b.txt:") for c in result.conflicts)


def test_added_path_created_meanwhile_is_a_conflict(env: Env) -> None:
    env.mark_started()
    write(env.upper / "n.txt", "mine\n")
    write(env.ws / "n.txt", "theirs\n")
    with pytest.raises(ConflictError, match=r"n\.txt"):
        env.commit()
    assert (env.ws / "n.txt").read_text() == "theirs\n"


def test_deleted_dir_with_unknown_entries_is_fatal_even_with_force(env: Env) -> None:
    require_root()
    write(env.ws / "d/known", "k")
    env.mark_started()
    whiteout(env.upper / "d")
    cs = compute_changeset(env.upper, env.ws)
    write(env.ws / "d/unknown", "created after the diff")
    for force in (False, True):
        with pytest.raises(ConflictError, match="did not remove"):
            env.commit(cs, force=force)
    assert (env.ws / "d/unknown").exists() and (env.ws / "d/known").exists()


def test_partial_commit_pulls_in_needed_parent_dirs(env: Env) -> None:
    write(env.upper / "src/a.py", "a\n")
    write(env.upper / "src/b.py", "b\n")
    write(env.upper / "other.txt", "o\n")
    result = env.commit(paths=["src/a.py"])
    assert result.committed == ("src", "src/a.py")
    assert snapshot(env.ws) == {"src": ("dir", 0o755), "src/a.py": ("file", 0o644, b"a\n")}
    # the next diff no longer shows what was committed
    with pytest.raises(NotFoundError):
        env.commit(paths=["src"])
    assert env.commit(paths=["src/b.py"]).committed == ("src/b.py",)


def test_selecting_a_directory_never_carries_its_children(env: Env) -> None:
    # governance approved the new dir but held what is inside: only the dir is created
    write(env.upper / "pkg/held.py", "h\n")
    result = env.commit(paths=["pkg"])
    assert result.committed == ("pkg",)
    assert snapshot(env.ws) == {"pkg": ("dir", 0o755)}


def test_added_dir_that_now_exists_is_merged(env: Env) -> None:
    write(env.upper / "pkg/m.py", "m\n")
    cs = compute_changeset(env.upper, env.ws)
    (env.ws / "pkg").mkdir()
    write(env.ws / "pkg/theirs.py", "t\n")
    result = env.commit(cs)
    assert result.skipped == ("pkg",) and result.committed == ("pkg/m.py",)
    assert set(snapshot(env.ws)) == {"pkg", "pkg/m.py", "pkg/theirs.py"}


def test_unknown_path_is_an_error(env: Env) -> None:
    write(env.upper / "a", "a")
    with pytest.raises(NotFoundError, match="nope"):
        env.commit(paths=["nope"])


def test_dir_removal_is_deferred_unless_its_contents_are_selected(env: Env) -> None:
    require_root()
    write(env.ws / "d/x/y", "y")
    write(env.ws / "d/z", "z")
    env.mark_started()
    whiteout(env.upper / "d")
    result = env.commit(paths=["d", "d/x", "d/x/y"])  # d/z held
    assert result.committed == ("d/x", "d/x/y") and result.skipped == ("d",)
    assert snapshot(env.ws) == {"d": ("dir", 0o755), "d/z": ("file", 0o644, b"z")}
    result = env.commit(paths=["d", "d/z"])
    assert result.committed == ("d", "d/z")
    assert snapshot(env.ws) == {}


def test_recover_is_free_when_nothing_to_do(tmp_path: Path) -> None:
    assert recover_interrupted(tmp_path / "missing") == ()
    (tmp_path / "j").mkdir()
    (tmp_path / "j" / "commit.lock").touch()
    assert recover_interrupted(tmp_path / "j") == ()


def _crash_after_staging(monkeypatch: pytest.MonkeyPatch, ops_before_crash: int) -> None:
    """Simulate kill -9 during roll forward: apply some ops, then die without cleanup."""
    real = _journal.roll_forward

    def partial(dirs: Any, ops: Any, delay: float = 0.0) -> list[str]:
        real(dirs, ops[:ops_before_crash])
        raise SystemExit("simulated crash")

    monkeypatch.setattr(commit_mod, "roll_forward", partial)
    monkeypatch.setattr(commit_mod, "remove_journal", lambda *a: None)


@pytest.mark.parametrize("ops_before_crash", [0, 1, 3, 100])
def test_staged_journal_is_rolled_forward(
    env: Env, monkeypatch: pytest.MonkeyPatch, ops_before_crash: int
) -> None:
    expected = build_scenario(env)
    _crash_after_staging(monkeypatch, ops_before_crash)
    with pytest.raises(SystemExit):
        env.commit()
    monkeypatch.undo()
    done = recover_interrupted(env.journal)
    assert len(done) == 1 and "rolled forward" in done[0] and ":" not in done[0].split(": ", 1)[1]
    assert snapshot(env.ws) == expected
    assert recover_interrupted(env.journal) == ()


def test_preparing_journal_is_rolled_back(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    build_scenario(env)
    before = snapshot(env.ws)
    calls = {"n": 0}
    real = commit_mod._stage

    def stage_then_die(*args: Any) -> None:
        calls["n"] += 1
        real(*args)
        if calls["n"] == 3:
            raise SystemExit("simulated crash")

    monkeypatch.setattr(commit_mod, "_stage", stage_then_die)
    monkeypatch.setattr(commit_mod, "rollback", lambda *a: None)
    monkeypatch.setattr(commit_mod, "remove_journal", lambda *a: None)
    with pytest.raises(SystemExit):
        env.commit()
    monkeypatch.undo()
    assert snapshot(env.ws) != before  # temps were left behind by the "crash"
    assert [m.endswith("rolled back") for m in recover_interrupted(env.journal)] == [True]
    assert snapshot(env.ws) == before


def test_live_commit_journal_is_not_recovered(tmp_path: Path) -> None:
    journal_dir = tmp_path / "j"
    journal_dir.mkdir()
    ws = tmp_path / "ws"
    ws.mkdir()
    fd = _journal.create_owner_lock(journal_dir, "live")
    try:
        j = _journal.Journal("live", os.fspath(ws), _journal.JournalState.PREPARING, (), ())
        _journal.write_journal(journal_dir, j)
        assert recover_interrupted(journal_dir) == ()
        assert (journal_dir / "live.json").exists()
    finally:
        os.close(fd)
    assert recover_interrupted(journal_dir) == ("live: rolled back",)
    assert os.listdir(journal_dir) == []


def test_journal_roundtrips_non_utf8_names(tmp_path: Path) -> None:
    name = os.fsdecode(b"caf\xe9")
    j = _journal.Journal(
        "x", "/w", _journal.JournalState.STAGED, (("", "t"),),
        (
            _journal.DeleteOp(name, False),
            _journal.ReplaceOp("", "t", name, _journal.OldKind.NONE, False),
            _journal.ChmodOp(name, 0o644),
        ),
    )  # fmt: skip
    assert _journal.Journal.from_json(json.loads(json.dumps(j.to_json()))) == j
