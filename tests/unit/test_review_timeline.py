"""`sandbox audit RUN` as a timeline in words: one sentence per record, everything escaped."""

from __future__ import annotations

from pathlib import Path

from sandbox.audit import AuditEvent, AuditLog
from sandbox.review import timeline


def test_a_run_from_start_to_commit_reads_as_sentences(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.log")
    run, sid = "r-1", "s-1"
    log.append(AuditEvent.RUN_STARTED, run=run, session=sid, data={
        "command": ["sh", "-c", "echo \x1b]0;pwned\x07"], "level": 2, "backend": "nsjail",
        "profile": "default"})
    log.append(AuditEvent.RUN_FINISHED, run=run, session=sid, data={
        "status": "finished", "exit_code": 0, "duration_ms": 12, "timed_out": False,
        "notes": []})
    log.append(AuditEvent.CHANGESET, run=run, session=sid, data={
        "added": 1, "modified": 1, "deleted": 0, "mode_changed": 0, "type_changed": 0,
        "total": 2, "forbidden": 0, "added_lines": 3, "removed_lines": 1, "paths": ["a", "b"]})
    log.append(AuditEvent.DECISION, run=run, session=sid, actor="policy", data={
        "decision": "hold", "reasons": ["level 2: changes wait for a person"], "refused": []})
    log.append(AuditEvent.DECISION, run=run, session=sid, actor="alice", data={
        "decision": "partial", "path": "b\u202e.py", "hunks": {
            "accepted": [1], "rejected": [2], "pending": [], "total": 2}, "message": "ok"})
    log.append(AuditEvent.COMMIT, run=run, session=sid, actor="alice", data={
        "paths": ["b\u202e.py"], "journal": "j", "force": False, "message": "ok",
        "partial": [{"path": "b\u202e.py", "hunks": [1]}]})
    lines = timeline(list(log.records())).splitlines()
    assert len(lines) == 6
    assert [line.split()[3] for line in lines] == [
        "run.started", "run.finished", "changeset", "decision", "decision", "commit"]
    texts = [line.split("  ", 3)[3].strip() for line in lines]
    assert texts[0] == ("started `sh -c 'echo \\x1b]0;pwned\\x07'` "
                        "(level 2, backend nsjail, profile default)")
    assert texts[1].endswith("exited 0 in 12 ms")
    assert texts[2].endswith("2 changes (1 added, 1 modified), +3 -1 lines")
    assert texts[3].endswith("policy held the changes: level 2: changes wait for a person")
    assert texts[4].endswith('alice decided per hunk on b\\u202e.py (2 hunks): accepted 1; '
                             'rejected 2: "ok"')
    assert texts[5].endswith('alice committed 1 path: b\\u202e.py; partly: b\\u202e.py '
                             '(hunks 1): "ok"')
    assert all("\x1b" not in line and "\u202e" not in line for line in lines)
    assert timeline([]) == ""
