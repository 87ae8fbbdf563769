"""Signed checkpoints: verification, the key holder's refusal to sign a rewritten log, and the
copies forwarded to syslog and an OTLP collector (real sockets on loopback)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from sandbox.audit import AuditEvent, AuditLog
from sandbox.audit._sign import SigningKey, checkpoints_path
from sandbox.audit._sigverify import verify_log
from sandbox.server._checkpoint import Checkpointer
from sandbox.server._forward import parse_forward
from sandbox.server._sender import Sender
from tests.support.auditlogs import fill, rewrite
from tests.support.collector import collector


@pytest.fixture
def log(tmp_path: Path) -> AuditLog:
    return AuditLog(tmp_path / "audit.log")


@pytest.fixture
def key(tmp_path: Path) -> SigningKey:
    return SigningKey.load_or_create(tmp_path / "keys" / "audit-key")


def test_unsigned_tail_is_reported_not_failed(log: AuditLog, key: SigningKey) -> None:
    fill(log, 3)
    Checkpointer(log, key).start()
    fill(log, 2)
    report = verify_log(log, key.public_path)
    assert report.ok and report.signed_seq == 3
    assert any("2 record(s) after seq 3 are not signed" in n for n in report.notes)


def test_edited_checkpoint_is_a_forgery(log: AuditLog, key: SigningKey) -> None:
    fill(log, 3)
    Checkpointer(log, key).start()
    path = checkpoints_path(log)
    cp = json.loads(path.read_text())
    cp["seq"] = 2  # claim an earlier head: the signature covers seq too
    path.write_text(json.dumps(cp, separators=(",", ":")) + "\n")
    report = verify_log(log, key.public_path)
    assert not report.ok and "does not verify" in str(report.first_problem)


def test_holder_never_signs_a_log_rewritten_under_it(log: AuditLog, key: SigningKey) -> None:
    fill(log, 8)
    cp = Checkpointer(log, key)
    assert cp.start() is not None and cp.head.seq == 8
    rewrite(log, edit_seq=2, drop_last=3)
    fill(log, 4)  # the rewritten log grows past the signed size again
    assert cp.poll() is None and cp.broken is not None
    before = checkpoints_path(log).read_bytes()
    assert cp.poll() is None and checkpoints_path(log).read_bytes() == before
    # A new holder refuses to start on it too: signing it would launder the rewrite.
    with pytest.raises(Exception, match="fails verification"):
        Checkpointer(log, key).start()


def _sending(log: AuditLog, key: SigningKey, target: str, cursor: Path) -> tuple[Checkpointer, Sender]:
    cp = Checkpointer(log, key)
    cp.start()
    sender = Sender(parse_forward(target), log, cursor)
    cp.signed.append(sender.notify)
    sender.start(cp.head, cp.offset, cp.last)
    return cp, sender


def test_syslog_gets_each_record_and_the_checkpoint(log: AuditLog, key: SigningKey,
                                                    tmp_path: Path) -> None:
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(5)
    port = rx.getsockname()[1]
    cp, sender = _sending(log, key, f"syslog+udp://127.0.0.1:{port}", tmp_path / "c.cursor")
    fill(log, 2)
    cp.poll()
    got = [rx.recv(65536).decode() for _ in range(3)]
    rx.close()
    sender.stop(5)
    assert all("sandbox-audit: " in m for m in got)
    assert '"seq":1' in got[0] and '"seq":2' in got[1] and "checkpoint" in got[2]
    assert got[0].startswith("<86>")  # authpriv.info


def test_otlp_logs_carry_genai_conventions(log: AuditLog, key: SigningKey, tmp_path: Path) -> None:
    with collector() as c:
        cp, sender = _sending(log, key, c.url, tmp_path / "c.cursor")
        log.append(AuditEvent.LLM_CALL, session="s1", data={
            "provider": "anthropic", "model": "claude-x", "input_tokens": 120, "output_tokens": 7})
        cp.poll()
        c.wait_for(lambda: len(c.bodies) == 1, "one export")
        sender.stop(5)
        bodies = c.bodies
    records = bodies[0]["resourceLogs"][0]["scopeLogs"][0]["logRecords"]  # type: ignore[index]
    attrs = {a["key"]: a["value"] for a in records[0]["attributes"]}
    assert attrs["gen_ai.request.model"] == {"stringValue": "claude-x"}
    assert attrs["gen_ai.usage.input_tokens"] == {"intValue": "120"}
    assert attrs["gen_ai.system"] == {"stringValue": "anthropic"}
    assert attrs["event.name"] == {"stringValue": "sandbox.audit.llm.call"}
    assert records[1]["attributes"][0]["value"] == {"stringValue": "sandbox.audit.checkpoint"}


def test_a_sender_stops_when_the_log_is_truncated_under_it(log: AuditLog, key: SigningKey,
                                                         tmp_path: Path) -> None:
    """Rather than spin on bytes that are gone, or send a different story."""
    with collector() as c:
        cp, sender = _sending(log, key, c.url, tmp_path / "c.cursor")
        cp.signed.remove(sender.notify)  # the sender is told below, after the truncation
        fill(log, 2)
        signed = cp.poll()
        assert signed is not None
        log.path.write_bytes(b"")
        sender.notify(signed, cp.offset)
        sender.stop(10)  # without the check it spins on, sending nothing, past this
        assert not sender._thread.is_alive() and c.seqs() == []
