"""What the CLI, the servers and the MCP tools ask the lifecycle rather than work out for
themselves: which run `last` means from a directory, which sessions wait for a person, the
patch with forbidden changes left out (or marked), the held policy of an agent's runs, and one
timeline for a `sandbox agent` session (fake backend: the logic above the sandbox)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sandbox.api import Runtime
from sandbox.audit import AuditEvent
from sandbox.backends._fake import FakeBackend
from sandbox.errors import UsageError
from sandbox.lifecycle import agent_session_id, held_policy
from sandbox.policy import EffectivePolicy, Level, Policy
from tests.unit.test_lifecycle import Act, write


@pytest.fixture(autouse=True)
def _unprivileged_owner(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "chown", lambda *a, **k: None)


def rt(tmp_path: Path, act: Act) -> Runtime:
    return Runtime(tmp_path / "home", backend=FakeBackend(act))


def test_last_from_a_directory_is_the_innermost_workspace_with_runs(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    (ws / "sub" / "deeper").mkdir(parents=True)
    (ws / "other").mkdir()
    with rt(tmp_path, write("f.txt", "f\n")) as r:
        top = r.run(["agent"], workspace=ws, level=2).run_id
        sub = r.run(["agent"], workspace=ws / "sub", level=2).run_id
        assert r.resolve("last", cwd=ws / "sub" / "deeper").run.id == sub  # type: ignore[union-attr]
        assert r.resolve("last", cwd=ws / "other").run.id == top  # type: ignore[union-attr]
        assert r.resolve("LAST", cwd=ws).run.id == top  # type: ignore[union-attr]
        assert r.resolve(top, cwd=ws / "sub").run.id == top  # type: ignore[union-attr]
        assert r.resolve("last").run.id == sub  # type: ignore[union-attr]  # any workspace
        with pytest.raises(UsageError, match="no runs yet"):
            r.resolve("last", cwd=tmp_path)


def test_waiting_lists_each_session_waiting_for_a_person_by_its_latest_run(
        tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    with rt(tmp_path, write("f.txt", "f\n")) as r:
        first = r.run(["agent"], workspace=ws, level=2, session="held")
        second = r.run(["agent"], workspace=ws, level=2, session="held")
        r.run(["agent"], workspace=ws, level=4, session="auto")  # committed: waits for no one
        assert [run.id for run in r.waiting()] == [second.run_id]
        r.approve(first.session_id)
        assert r.waiting() == []


def test_patch_leaves_forbidden_changes_out_unless_asked_and_then_marks_them(
        tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()

    def act(upper: Path, lower: Path) -> int:
        (upper / "ok.txt").write_text("fine\n")
        os.symlink("/etc/passwd", upper / "pw")
        return 0

    with rt(tmp_path, act) as r:
        sid = r.run(["agent"], workspace=ws, level=2).session_id
        plain = r.patch(sid)
        assert b"+fine" in plain and b"pw" not in plain
        marked = r.patch(sid, include_forbidden=True)
        assert marked.startswith(plain)
        assert b"# FORBIDDEN: pw: symlink-escape" in marked and b"/etc/passwd" in marked
        assert [c.path for c in r.pending(sid).forbidden()] == ["pw"]
        assert r.pending(sid).forbidden(["ok.txt"]) == []


def test_held_policy_holds_at_level_2_and_keeps_the_tightening() -> None:
    eff = EffectivePolicy(Policy(level=Level.HUMAN_OUTSIDE_THE_LOOP), sources={}, layers=())
    held = held_policy(eff)
    assert held.policy.level is Level.HUMAN_ON_THE_LOOP and eff.policy.level.value == 4
    tight = held_policy(eff, Policy(level=Level.HUMAN_OUTSIDE_THE_LOOP, egress_allow=()))
    assert tight.policy.level is Level.HUMAN_ON_THE_LOOP and tight.policy.egress_allow == ()
    assert agent_session_id("s-1") == "s-1-agent" and agent_session_id("x" * 60) is None


def test_an_agent_sessions_timeline_holds_its_llm_calls_in_order(tmp_path: Path) -> None:
    (tmp_path / "ws").mkdir()
    with rt(tmp_path, write("f.txt", "f\n")) as r:
        sid = r.run(["agent"], workspace=tmp_path / "ws", level=2, session="ag").session_id
        agent = agent_session_id(sid)
        assert agent is not None
        r.audit.append(AuditEvent.LLM_CALL, session=agent, data={"model": "m"})
        r.audit.append(AuditEvent.TOOL_CALL, session=sid, data={"tool": "bash"})
        r.audit.append(AuditEvent.LLM_CALL, session="unrelated", data={"model": "m"})
        events = r.lifecycle.timeline(r.store.get_session(sid))
        steps = [(e.event, e.session) for e in events
                 if e.event in (AuditEvent.LLM_CALL, AuditEvent.TOOL_CALL)]
        assert steps == [(AuditEvent.LLM_CALL, agent), (AuditEvent.TOOL_CALL, sid)]
        seqs = [e.seq for e in events]
        assert seqs == sorted(seqs)


def test_one_usage_total_over_a_session_and_its_agent(tmp_path: Path) -> None:
    from sandbox.gateway._report import total

    (tmp_path / "ws").mkdir()
    with rt(tmp_path, write("f.txt", "f\n")) as r:
        sid = r.run(["agent"], workspace=tmp_path / "ws", level=2, session="ag").session_id
        r.audit.append(AuditEvent.LLM_CALL, session=sid,
                       data={"input_tokens": 5, "output_tokens": 1, "cost_usd": 0.5})
        r.audit.append(AuditEvent.LLM_CALL, session=agent_session_id(sid),
                       data={"input_tokens": 7, "output_tokens": 2, "cost_usd": 0.25})
        r.audit.append(AuditEvent.TOOL_CALL, session=sid, data={"tool": "bash"})
        usage = total(r.lifecycle.timeline(r.store.get_session(sid)))
    assert (usage.calls, usage.input_tokens, usage.output_tokens, usage.cost_usd) == (
        2, 12, 3, 0.75)
