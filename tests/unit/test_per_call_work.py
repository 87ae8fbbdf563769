"""Work done once per call, not two or three times: counting spies on the expensive steps
(a diff of the session's upper dir, classification, file reads, store writes) around the real
library code, with the fake backend standing in for the launch."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import sandbox._runner
import sandbox.fs
from sandbox._home import HomeLayout
from sandbox._runner import Runner, RunRequest
from sandbox.audit import AuditLog
from sandbox.backends._fake import FakeBackend
from sandbox.policy import Layer, merge
from sandbox.store import SessionState, Store


class Counter:
    def __init__(self) -> None:
        self.calls = 0

    def wrap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return fn(*args, **kwargs)
        return counted


@pytest.fixture(autouse=True)
def _unprivileged_owner(monkeypatch: pytest.MonkeyPatch) -> None:
    # the fake backend writes upper files as the test process; keep chown out of the way
    monkeypatch.setattr(os, "chown", lambda *a, **k: None)


@pytest.fixture
def diffs(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter]:
    """Counts walks of a session's upper dir (`compute_changeset`), wherever they are made."""
    c = Counter()
    counted = c.wrap(sandbox.fs.compute_changeset)
    monkeypatch.setattr(sandbox.fs, "compute_changeset", counted)
    monkeypatch.setattr(sandbox._runner, "compute_changeset", counted)
    yield c


def _files(**files: str) -> Callable[[Path, Path], int]:
    def act(upper: Path, lower: Path) -> int:
        for rel, text in files.items():
            p = upper / rel.replace("__", "/")
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text)
        return 0
    return act


def _run(tmp_path: Path, level: int, act: Callable[[Path, Path], int],
         session: str | None = None) -> sandbox._runner.RunOutcome:
    layout = HomeLayout(tmp_path / "home").ensure()
    ws = tmp_path / "ws"
    ws.mkdir(exist_ok=True)
    runner = Runner(layout, Store(layout), AuditLog(layout.audit), FakeBackend(act))
    return runner.run(RunRequest(argv=("agent",), workspace=ws, session=session,
                                 policy=merge([Layer("flags", "--level", {"level": level})])))


def test_a_level4_run_that_commits_everything_diffs_the_upper_dir_once(
        tmp_path: Path, diffs: Counter) -> None:
    out = _run(tmp_path, 4, _files(a="a\n", b="b\n"), session="s1")
    assert out.committed == ("a", "b") and (tmp_path / "ws" / "b").read_text() == "b\n"
    assert out.state is SessionState.OPEN  # levels 3-4: open for the next run
    assert diffs.calls == 1  # the run's own diff; what is left is known: nothing
    # and the session is right for the next run: nothing pending, still chaining
    out = _run(tmp_path, 4, _files(c="c\n"), session="s1")
    assert out.committed == ("c",) and out.state is SessionState.OPEN


def test_a_level3_run_that_holds_a_path_still_finds_it_pending(
        tmp_path: Path, diffs: Counter) -> None:
    out = _run(tmp_path, 3, _files(a="a\n", **{".github__workflows__ci.yml": "x\n"}))
    # its parent dirs are committed (low risk), the protected file waits for a person: only
    # a fresh diff after the commit can say what is left (the dirs now exist in the workspace)
    assert "a" in out.committed and ".github/workflows/ci.yml" not in out.committed
    assert out.state is SessionState.PARTIAL  # some committed, the rest pending
    assert not (tmp_path / "ws" / ".github" / "workflows" / "ci.yml").exists()
    assert diffs.calls == 2


@pytest.fixture
def held(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A session with two changes held at level 2 (no person); the CLI pointed at its home."""
    out = _run(tmp_path, 2, _files(a="a\n", b="b\n"))
    assert out.state is SessionState.PENDING
    monkeypatch.setenv("SANDBOX_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SANDBOX_ORG_POLICY", str(tmp_path / "org.toml"))
    monkeypatch.chdir(tmp_path / "ws")
    return out.session_id


@pytest.mark.parametrize("argv,walks", [
    (["show"], 1), (["show", "--json"], 1), (["diff"], 1), (["diff", "--stat"], 1),
    (["reject"], 2),  # the pending changes, then (closed) what ignored output to drop
    (["approve"], 2),
])
def test_a_decision_command_diffs_the_upper_dir_as_few_times_as_it_can(
        held: str, diffs: Counter, argv: list[str], walks: int,
        capfd: pytest.CaptureFixture[str]) -> None:
    from sandbox.cli.main import main

    assert main([argv[0], held, *argv[1:]]) == 0
    out = capfd.readouterr().out
    assert out  # it did its work: the changes shown, or the decision made
    assert diffs.calls == walks


def test_a_change_listing_classifies_each_change_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`sandbox run`'s summary and every --json listing show each change's concern in risk
    order: one classification per change (protected globs are matched for each)."""
    import sandbox.governance._decide as decide
    from sandbox.cli import _render

    out = _run(tmp_path, 2, _files(a="a\n", b="b\n", **{".github__workflows__ci.yml": "x\n"}))
    policy = merge([Layer("flags", "--level", {"level": 2})]).policy
    calls = Counter()
    monkeypatch.setattr(decide, "classify", calls.wrap(decide.classify))
    n = len(out.changeset.changes)
    table = _render.change_table(out.changeset, policy=policy)
    first = table.splitlines()[0]  # the risky first, and marked
    assert "ci.yml" in first and first.endswith("(protected)")
    assert calls.calls == n
    listing = _render.changes_json(out.changeset, policy)["changes"]
    assert listing[0]["concern"] == "protected" and len(listing) == n
    assert calls.calls == 2 * n


def test_a_base_is_read_once_for_its_digest_and_its_kept_copy(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the session saw at a changed path is recorded (digest, and the bytes of a small
    file for diffs against it): one read of the workspace file for both."""
    from sandbox.fs import ChangeKind, ChangeSet, FileType, record_bases
    from sandbox.fs._base import load, seen_content

    ws, session_dir = tmp_path / "ws", tmp_path / "session"
    ws.mkdir()
    session_dir.mkdir()
    (ws / "a.txt").write_text("what the person wrote\n")
    opened: list[str] = []
    real_open = os.open

    def spy(path: Any, *args: Any, **kwargs: Any) -> int:
        opened.append(os.fsdecode(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", spy)
    cs = ChangeSet((sandbox.fs.Change("a.txt", ChangeKind.MODIFIED, old_type=FileType.FILE,
                                      new_type=FileType.FILE),))
    record_bases(session_dir, cs, ws, 0)
    monkeypatch.setattr(os, "open", real_open)
    assert opened.count("a.txt") == 1
    seen = (load(session_dir) or {})["a.txt"]
    assert seen_content(session_dir, seen) == b"what the person wrote\n"  # kept, and right



@pytest.mark.parametrize("level", [2, 4])
def test_a_run_writes_the_state_database_in_four_transactions(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, level: int) -> None:
    """Session, run (with its launcher and the session's policy), the session's new state
    (with the run's decision), how the run finished: a commit each, and no more."""
    writes = Counter()
    monkeypatch.setattr(Store, "_tx", writes.wrap(Store._tx))
    out = _run(tmp_path, level, _files(a="a\n"))
    assert writes.calls == 4
    layout = HomeLayout(tmp_path / "home")
    with Store(layout) as store:  # and all of it was written
        run = store.get_run(out.run_id)
        session = store.get_session(out.session_id)
    assert run.launcher_pid == os.getpid() and run.status.value == "finished"
    assert run.decision.value == ("none" if level == 4 else "pending")  # 4: session open
    assert session.policy and session.policy.get("level") == level
