"""The run flow above the backend (levels, decisions, sessions, audit) with the fake backend."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pytest

from sandbox._home import HomeLayout
from sandbox._runner import Interaction, Runner, RunRequest
from sandbox.audit import AuditLog
from sandbox.backends._fake import Act, FakeBackend
from sandbox.errors import UsageError
from sandbox.fs import ChangeSet
from sandbox.governance import AskPerson
from sandbox.policy import EffectivePolicy, Layer, merge
from sandbox.store import SessionRecord, SessionState, Store


class Person:
    def __init__(self, answers: Sequence[bool]) -> None:
        self.answers = list(answers)
        self.asked: list[str] = []

    def interactive(self) -> bool:
        return True

    def confirm_run(self, argv: Sequence[str], policy: EffectivePolicy) -> bool:
        self.asked.append("confirm")
        return self.answers.pop(0)

    def review(self, cs: ChangeSet, decision: AskPerson, session: SessionRecord,
               upper: Path) -> bool:
        self.asked.append("review")
        return self.answers.pop(0)

    def ask_egress(self, host: str, port: int) -> None:
        raise AssertionError(f"no egress is asked for in these tests ({host}:{port})")


def write(rel: str, text: str) -> Act:
    def act(upper: Path, lower: Path) -> int:
        p = upper / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        return 0
    return act


Env = tuple[HomeLayout, Store, AuditLog, Path]


@pytest.fixture
def env(tmp_path: Path) -> Env:
    layout = HomeLayout(tmp_path / "home").ensure()
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "a.txt").write_text("a\n")
    return layout, Store(layout), AuditLog(layout.audit), ws


def _runner(env: Env, act: Act, person: Interaction | None = None) -> Runner:
    layout, store, audit, _ = env
    return Runner(layout, store, audit, FakeBackend(act), person)


def _req(ws: Path, level: int, session: str | None = None) -> RunRequest:
    return RunRequest(argv=("agent",), workspace=ws,
                      policy=merge([Layer("flags", "--level", {"level": level})]),
                      session=session)


@pytest.fixture(autouse=True)
def _unprivileged_owner(monkeypatch: pytest.MonkeyPatch) -> None:
    # the fake backend writes upper files as the test process; keep chown out of the way
    monkeypatch.setattr(os, "chown", lambda *a, **k: None)


def test_level2_without_person_holds(env) -> None:  # type: ignore[no-untyped-def]
    out = _runner(env, write("b.txt", "b\n")).run(_req(env[3], 2))
    assert out.state is SessionState.PENDING and not (env[3] / "b.txt").exists()


def test_level2_person_yes_commits_and_no_keeps_pending(env) -> None:  # type: ignore[no-untyped-def]
    p = Person([True])
    out = _runner(env, write("b.txt", "b\n"), p).run(_req(env[3], 2))
    assert p.asked == ["review"] and out.state is SessionState.COMMITTED
    assert (env[3] / "b.txt").read_text() == "b\n"
    p = Person([False])
    out = _runner(env, write("c.txt", "c\n"), p).run(_req(env[3], 2))
    assert out.state is SessionState.PENDING and not (env[3] / "c.txt").exists()


def test_level1_asks_before_running(env) -> None:  # type: ignore[no-untyped-def]
    p = Person([False])
    backend_ran: list[bool] = []

    def act(upper: Path, lower: Path) -> int:
        backend_ran.append(True)
        return 0

    with pytest.raises(UsageError, match="not confirmed"):
        _runner(env, act, p).run(_req(env[3], 1))
    assert backend_ran == []
    with pytest.raises(UsageError, match="level 1 needs a person"):
        _runner(env, act).run(_req(env[3], 1))


def test_level1_confirm_then_review(env) -> None:  # type: ignore[no-untyped-def]
    p = Person([True, True])
    out = _runner(env, write("b.txt", "b\n"), p).run(_req(env[3], 1))
    assert p.asked == ["confirm", "review"] and out.committed == ("b.txt",)


def test_session_accumulates(env) -> None:  # type: ignore[no-untyped-def]
    _runner(env, write("b.txt", "b\n")).run(_req(env[3], 2, "s1"))
    out = _runner(env, write("c.txt", "c\n")).run(_req(env[3], 2, "s1"))
    assert [c.path for c in out.changeset.changes] == ["b.txt", "c.txt"]


def test_audit_records_every_step(env) -> None:  # type: ignore[no-untyped-def]
    _runner(env, write("b.txt", "b\n")).run(_req(env[3], 4))
    events = [r.event.value for r in env[2].records()]
    assert events == ["run.started", "run.finished", "changeset", "decision", "commit"]
    started = next(iter(env[2].records())).data
    assert {"command", "workspace", "level", "policy_digest", "backend",
            "profile_digest"} <= set(started)
    assert env[2].verify().ok
