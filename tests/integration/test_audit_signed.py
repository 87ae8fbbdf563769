"""The signed audit trail end to end: `sandbox serve` holds the key and signs the head as
records arrive; a log rewritten with recomputed hashes fails `sandbox audit --verify`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox._home import HomeLayout
from sandbox.audit import AuditLog
from sandbox.audit._sign import SigningKey, checkpoints_path, write_checkpoint
from tests.conftest import SANDBOX_BIN, Cli
from tests.support.auditlogs import checkpoint_seqs, fill, rewrite


@pytest.fixture
def home(base_dir: Path) -> Path:
    h = base_dir / "home" / "state"
    h.parent.mkdir()
    HomeLayout(h).ensure()
    return h


def _wait_for(cond: object, what: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(cond) and cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def served(home: Path, base_dir: Path) -> Iterator[tuple[Cli, Path, subprocess.Popen[bytes]]]:
    """A real `sandbox serve` on a unix socket, its key outside the state dir."""
    cli = Cli(home=home)
    key = base_dir / "keys" / "audit-key"
    proc = subprocess.Popen(
        [str(SANDBOX_BIN), "serve", "--listen", f"unix:{base_dir / 'serve.sock'}",
         "--audit-key", str(key), "--checkpoint-interval", "0.1"],
        env=cli.env(), stderr=subprocess.PIPE)
    try:
        _wait_for(lambda: (base_dir / "serve.sock").exists() or proc.poll() is not None, "serve")
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else b""
        yield cli, key, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)


def _verify(cli: Cli, *extra: str) -> tuple[int, dict[str, object], str]:
    p = cli("audit", "--verify", "--json", *extra)
    text = p.stdout.decode()
    return p.returncode, (json.loads(text) if text.strip().startswith("{") else {}), \
        text + p.stderr.decode()


def test_serve_signs_records_other_processes_append(served: tuple[Cli, Path, subprocess.Popen[bytes]],
                                                    home: Path, base_dir: Path) -> None:
    cli, key, proc = served
    log = AuditLog(home / "audit.log")
    fill(log, 10)  # what `sandbox run` processes append: they hold no key
    _wait_for(lambda: 10 in checkpoint_seqs(home), "a checkpoint of seq 10")
    fill(log, 2, session="s2")
    _wait_for(lambda: 12 in checkpoint_seqs(home), "a checkpoint of seq 12")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    # The key is the server's: created 0600 in a 0700 directory, public half beside it.
    assert (key.stat().st_mode & 0o777, key.parent.stat().st_mode & 0o777) == (0o600, 0o700)
    rc, report, text = _verify(cli, "--pubkey", str(key.with_suffix(".pub")))
    assert rc == 0, text
    assert report["signed_seq"] == 12 and report["ok"] is True


def test_log_rewritten_with_recomputed_hashes_fails_verify(
        served: tuple[Cli, Path, subprocess.Popen[bytes]], home: Path, base_dir: Path) -> None:
    cli, key, proc = served
    log = AuditLog(home / "audit.log")
    fill(log, 10)
    _wait_for(lambda: 10 in checkpoint_seqs(home), "a checkpoint of seq 10")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    pub = base_dir / "trusted.pub"  # the verifier's own copy of the public key
    pub.write_bytes(key.with_suffix(".pub").read_bytes())

    # The attack: edit record 4, drop the last three, recompute every hash, rewrite audit.head.
    rewrite(log, edit_seq=4, drop_last=3)
    assert log.verify().ok  # the chain alone is consistent again: only signatures catch it
    assert log.read_head() is not None and log.read_head().seq == 7  # type: ignore[union-attr]

    for extra in ((), ("--pubkey", str(pub))):
        rc, report, text = _verify(cli, *extra)
        assert rc == 1, text
        problems = report["problems"]
        assert isinstance(problems, list) and problems, text
        assert all(": signature: " in p for p in problems), text
        assert "signed records were removed" in text or "rewritten" in text, text

    # Removing the checkpoints too: with the trusted key, an unsigned log is not accepted.
    checkpoints_path(log).unlink()
    (home / "audit.pub").unlink()
    rc, report, text = _verify(cli, "--pubkey", str(pub))
    assert rc == 1 and "nothing in it is signed" in text, text

    # Signing the rewrite with a key of one's own: only the trusted key counts.
    mine = SigningKey.load_or_create(base_dir / "mine" / "key")
    write_checkpoint(checkpoints_path(log), mine.sign(7, log.read_head().hash))  # type: ignore[union-attr]
    (home / "audit.pub").write_bytes(mine.public_path.read_bytes())
    rc, _, text = _verify(cli)
    assert rc == 0, text  # self-consistent against the key beside the log, which it names
    assert "beside the log" in text
    rc, report, text = _verify(cli, "--pubkey", str(pub))
    assert rc == 1 and f"signed by key {mine.id}" in text, text


def test_signing_key_others_can_read_is_refused(home: Path, base_dir: Path) -> None:
    key = SigningKey.load_or_create(base_dir / "k" / "audit-key")
    os.chmod(key.path, 0o644)
    p = Cli(home=home)("serve", "--listen", f"unix:{base_dir / 's.sock'}",
                       "--audit-key", str(key.path), timeout=30)
    assert p.returncode == 2, p.stderr
    assert b"readable by others" in p.stderr and not (base_dir / "s.sock").exists()


def test_people_cannot_read_the_key_serve_holds(base_dir: Path) -> None:
    """serve runs as root (or a service account); the person, another uid, cannot open its key
    even though they can read the public half and verify with it."""
    from tests.conftest import TEST_USER, test_user

    test_user()
    key = SigningKey.load_or_create(base_dir / "serve" / "audit-key")
    as_user = ["runuser", "-u", TEST_USER, "--", "cat"]
    denied = subprocess.run([*as_user, str(key.path)], capture_output=True, check=False)
    assert denied.returncode != 0 and b"Permission denied" in denied.stderr
    os.chmod(key.path.parent, 0o755)  # even with the directory open, the file stays closed
    denied = subprocess.run([*as_user, str(key.path)], capture_output=True, check=False)
    assert denied.returncode != 0 and b"Permission denied" in denied.stderr
    assert subprocess.run([*as_user, str(key.public_path)], capture_output=True,
                          check=False).returncode == 0
