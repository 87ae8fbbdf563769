"""The session lifecycle through the library (`sandbox.api.Runtime`) with the fake backend:
chaining at levels 3-4, true states after every decision, the lock, the recorded policy,
cancelled and lost runs, commits that cannot happen inside `run`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from sandbox.api import Runtime
from sandbox.backends._fake import FakeBackend
from sandbox.errors import (
    EXIT_BUSY,
    EXIT_CONFLICT,
    EXIT_FORBIDDEN,
    EXIT_PROTECTED,
    ConflictError,
    ProtectedChangeError,
    SessionBusyError,
    SessionClosedError,
    UsageError,
)
from sandbox.fs import ChangeSet
from sandbox.governance import AskPerson
from sandbox.lifecycle._signals import Cancelled
from sandbox.policy import EffectivePolicy
from sandbox.store import RunStatus, SessionRecord, SessionState

Act = Callable[[Path, Path], int]


def write(rel: str, text: str, code: int = 0) -> Act:
    def act(upper: Path, lower: Path) -> int:
        p = upper / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        return code
    return act


@pytest.fixture(autouse=True)
def _unprivileged_owner(monkeypatch: pytest.MonkeyPatch) -> None:
    # the fake backend writes upper files as the test process; keep chown out of the way
    monkeypatch.setattr(os, "chown", lambda *a, **k: None)


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    w = tmp_path / "ws"
    (w / "src").mkdir(parents=True)
    (w / "a.txt").write_text("a\n")
    (w / "src" / "x.py").write_text("x\n")
    return w


def rt(tmp_path: Path, act: Act, person: object | None = None) -> Runtime:
    return Runtime(tmp_path / "home", backend=FakeBackend(act), person=person)  # type: ignore[arg-type]


def test_level4_session_chains_and_stays_open(tmp_path: Path, ws: Path) -> None:
    with rt(tmp_path, write("a.txt", "one\n")) as r:
        first = r.run(["agent"], workspace=ws, level=4, session="s")
    assert first.state is SessionState.OPEN and first.committed == ("a.txt",)
    # the second tool call of the same session changes the same file again: no conflict
    with rt(tmp_path, write("a.txt", "two\n")) as r:
        second = r.run(["agent"], workspace=ws, level=4, session="s")
    assert second.exit_code == 0 and second.committed == ("a.txt",), second.notes
    assert second.state is SessionState.OPEN and (ws / "a.txt").read_text() == "two\n"


def test_level3_chain_after_auto_commit(tmp_path: Path, ws: Path) -> None:
    with rt(tmp_path, write("doc.md", "d\n")) as r:
        assert r.run(["agent"], workspace=ws, level=3, session="t").state is SessionState.OPEN
    with rt(tmp_path, write("doc2.md", "e\n")) as r:
        out = r.run(["agent"], workspace=ws, level=3, session="t")
    assert out.state is SessionState.OPEN and (ws / "doc2.md").exists()


def test_reject_after_approve_never_relabels(tmp_path: Path, ws: Path) -> None:
    with rt(tmp_path, write("b.txt", "b\n")) as r:
        out = r.run(["agent"], workspace=ws, level=2)
        assert out.state is SessionState.PENDING
        assert r.approve(out.session_id).state is SessionState.COMMITTED
        with pytest.raises(SessionClosedError, match="already committed"):
            r.reject(out.session_id)
        assert r.store.get_session(out.session_id).state is SessionState.COMMITTED
    assert (ws / "b.txt").read_text() == "b\n"


def test_partial_approve_then_reject_rest_is_committed(tmp_path: Path, ws: Path) -> None:
    def two(upper: Path, lower: Path) -> int:
        (upper / "b.txt").write_text("b\n")
        (upper / "c.txt").write_text("c\n")
        return 0

    with rt(tmp_path, two) as r:
        sid = r.run(["agent"], workspace=ws, level=2).session_id
        assert r.approve(sid, ["b.txt"]).state is SessionState.PARTIAL
        assert r.reject(sid).state is SessionState.COMMITTED
    assert (ws / "b.txt").exists() and not (ws / "c.txt").exists()


def test_reject_all_is_rejected(tmp_path: Path, ws: Path) -> None:
    with rt(tmp_path, write("b.txt", "b\n")) as r:
        sid = r.run(["agent"], workspace=ws, level=2).session_id
        assert r.reject(sid).state is SessionState.REJECTED
        with pytest.raises(UsageError, match="already rejected"):
            r.run(["agent"], workspace=ws, level=2, session=sid)


def test_settles_after_the_changes_reach_the_workspace(tmp_path: Path, ws: Path) -> None:
    with rt(tmp_path, write("b.txt", "b\n")) as r:
        sid = r.run(["agent"], workspace=ws, level=2).session_id
        (ws / "b.txt").write_text("b\n")  # what `export` + `git merge` does to the workspace
        assert r.settle(sid) is SessionState.COMMITTED
        done = r.approve(sid)
        assert done.committed == () and done.state is SessionState.COMMITTED


def test_approve_while_a_run_of_the_session_is_going_refuses(tmp_path: Path, ws: Path) -> None:
    seen: list[BaseException] = []

    def act(upper: Path, lower: Path) -> int:
        (upper / "b.txt").write_text("half\n")
        try:  # another process approving now (the lock is per open file: it conflicts)
            with Runtime(tmp_path / "home") as other:
                other.approve("s")
        except SessionBusyError as exc:
            seen.append(exc)
        (upper / "c.txt").write_text("rest\n")
        return 0

    with rt(tmp_path, act) as r:
        out = r.run(["agent"], workspace=ws, level=2, session="s")
    assert len(seen) == 1 and "has a run going" in str(seen[0])
    assert getattr(seen[0], "exit_code", None) == EXIT_BUSY
    assert not (ws / "b.txt").exists()  # nothing of the running run was committed
    assert out.state is SessionState.PENDING


def test_decisions_use_the_policy_the_session_ran_under(tmp_path: Path, ws: Path) -> None:
    (ws / "sandbox.toml").write_text('[protect]\npaths = ["deploy/**"]\n')
    with rt(tmp_path, write("deploy/prod.sh", "x\n")) as r:
        sid = r.run(["agent"], workspace=ws, level=2).session_id
        (ws / "sandbox.toml").unlink()  # the workspace's policy changes after the run
        with pytest.raises(ProtectedChangeError) as info:
            r.approve(sid)
        assert info.value.exit_code == EXIT_PROTECTED
        record = r.store.get_session(sid).policy
        assert "deploy/**" in record["protected"] and record["digest"]  # type: ignore[operator]
    assert not (ws / "deploy").exists()


def test_conflict_in_level4_auto_commit_keeps_the_exit_status(tmp_path: Path, ws: Path) -> None:
    def act(upper: Path, lower: Path) -> int:
        (upper / "a.txt").write_text("agent\n")
        (lower / "a.txt").write_text("a person's edit\n")  # meanwhile, in the workspace
        return 7

    with rt(tmp_path, act) as r:
        out = r.run(["agent"], workspace=ws, level=4)
        assert out.exit_code == 7 and out.committed == ()
        assert out.state is SessionState.PENDING and out.status is RunStatus.FINISHED
        assert "a.txt" in json.dumps(out.to_json()["decision"])  # reported: held, and why
        assert r.store.get_run(out.run_id).status is RunStatus.FINISHED
        done = r.approve(out.session_id)  # kept pending for a person's --force (exit 3)
        assert done.committed == () and [p for p, _ in done.conflicts] == ["a.txt"]
        assert done.state is SessionState.PENDING and ConflictError.exit_code == EXIT_CONFLICT
    assert (ws / "a.txt").read_text() == "a person's edit\n"


def test_commit_failing_in_run_never_replaces_the_exit_status(
        tmp_path: Path, ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sandbox.lifecycle import _after_run

    def refuse(*a: object, **k: object) -> tuple[str, ...]:
        raise ConflictError("a.txt: was modified in the workspace")  # between decide and commit

    monkeypatch.setattr(_after_run, "_commit_paths", refuse)
    with rt(tmp_path, write("a.txt", "agent\n", code=3)) as r:
        out = r.run(["agent"], workspace=ws, level=4)
        assert out.exit_code == 3 and out.commit_error and "a.txt" in out.commit_error
        assert out.state is SessionState.PENDING and out.committed == ()
        assert any("not committed" in n for n in out.notes)
        assert out.to_json()["commit_error"]
        decisions = [rec.data for rec in r.audit.records(session=out.session_id)
                     if rec.data.get("decision") == "commit-failed"]
        assert decisions and decisions[0]["kind"] == "ConflictError"


def test_forbidden_path_refusal_has_its_code(tmp_path: Path, ws: Path) -> None:
    def act(upper: Path, lower: Path) -> int:
        os.symlink("/etc/passwd", upper / "pw")
        return 0

    with rt(tmp_path, act) as r:
        sid = r.run(["agent"], workspace=ws, level=2).session_id
        with pytest.raises(Exception) as info:
            r.approve(sid, ["pw"])
        assert getattr(info.value, "exit_code", None) == EXIT_FORBIDDEN


def test_cancelled_run_is_recorded_and_keeps_its_changes(tmp_path: Path, ws: Path) -> None:
    def act(upper: Path, lower: Path) -> int:
        (upper / "half.txt").write_text("so far\n")
        raise Cancelled(signal.SIGTERM)  # what a SIGTERM to `sandbox run` raises

    with rt(tmp_path, act) as r:
        out = r.run(["agent"], workspace=ws, level=4)  # level 4: still nothing committed
        assert out.exit_code == 143 and out.status is RunStatus.CANCELLED
        assert out.state is SessionState.PENDING and out.committed == ()
        assert r.store.get_run(out.run_id).status is RunStatus.CANCELLED
        assert [c.path for c in r.pending(out.session_id).changeset.changes] == ["half.txt"]
    assert not (ws / "half.txt").exists()


class CtrlC:
    def interactive(self) -> bool:
        return True

    def confirm_run(self, argv: Sequence[str], policy: EffectivePolicy) -> bool:
        return True

    def review(self, cs: ChangeSet, decision: AskPerson, session: SessionRecord,
               upper: Path) -> bool:
        raise KeyboardInterrupt


def test_ctrl_c_at_the_prompt_keeps_pending(tmp_path: Path, ws: Path) -> None:
    with rt(tmp_path, write("b.txt", "b\n"), CtrlC()) as r:
        out = r.run(["agent"], workspace=ws, level=2)
        assert out.exit_code == 130 and out.state is SessionState.PENDING
        assert r.store.get_run(out.run_id).status is RunStatus.FINISHED


def test_a_run_whose_launcher_died_is_marked_lost(tmp_path: Path, ws: Path) -> None:
    with rt(tmp_path, write("b.txt", "b\n")) as r:
        sid = r.run(["agent"], workspace=ws, level=2).session_id
        run = r.store.new_run(sid, ["agent"], backend="fake", profile="default")
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        r.store.set_launcher(run.id, pid=dead.pid, start=0.0)
        mine = r.store.new_run(sid, ["agent"], backend="fake", profile="default")
        r.store.set_launcher(mine.id, pid=os.getppid(), start=9e9)  # alive: left alone
    with rt(tmp_path, write("c.txt", "c\n")) as r:
        assert r.store.get_run(run.id).status is RunStatus.LOST
        assert r.store.get_run(mine.id).status is RunStatus.RUNNING
        assert any(rec.data.get("status") == "lost" for rec in r.audit.records(session=sid))


def test_state_dir_inside_the_workspace_is_refused(tmp_path: Path, ws: Path) -> None:
    with Runtime(ws / ".state", backend=FakeBackend(write("b", "b"))) as r, \
            pytest.raises(UsageError, match="may not live in the workspace"):
        r.run(["agent"], workspace=ws)


def test_last_is_per_workspace(tmp_path: Path, ws: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    with rt(tmp_path, write("b.txt", "b\n")) as r:
        r.run(["agent"], workspace=ws, level=2)
        with pytest.raises(UsageError, match="no runs yet"):
            r.resolve("last", workspace=other)
        assert r.resolve("last", workspace=ws).session.workspace == ws.resolve()
