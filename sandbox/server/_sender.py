"""Forwarding off the request path: one sender thread per `--forward` target.

The checkpointer only tells a sender how far the checked log reaches (`notify`, which never
blocks). The sender reads the records past its cursor from the log itself, delivers them in
order, and moves its cursor (seq, hash, byte offset; written atomically beside serve's other
state) only once the target took them. So:
- a slow or dead collector holds up nothing but its own thread; meanwhile the pending work is a
  single "up to here" slot (a bounded, coalescing queue: a newer checkpoint covers an older
  one) and the log itself is the buffer, so memory stays flat however long the outage lasts;
- after a failure the same records are tried again (backing off up to `MAX_BACKOFF`), and
  after a restart of serve the sender resumes at its cursor: nothing is lost, and nothing is
  sent twice unless the target took a batch without the answer reaching us;
- a target seen for the first time starts at the log's current end (history is not replayed).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sandbox.audit._head import Head
from sandbox.errors import AuditError
from sandbox.server._checkpoint import read_chain
from sandbox.server._forward import ForwardError, shown

if TYPE_CHECKING:
    from pathlib import Path

    from sandbox.audit._log import AuditLog
    from sandbox.audit._sign import Checkpoint
    from sandbox.server._forward import Forwarder

__all__ = ["BATCH", "Cursor", "Sender", "cursor_path"]

BATCH = 500  # records per delivery: one OTLP request, or that many syslog messages
MAX_BACKOFF = 30.0


@dataclass(frozen=True)
class Cursor:
    """The last record the target has taken, and where the log continues after it."""

    seq: int
    hash: str
    offset: int

    @property
    def head(self) -> Head:
        return Head(self.seq, self.hash)


def cursor_path(directory: Path, target: str) -> Path:
    """One cursor per target, named by a digest (a URL may carry credentials)."""
    return directory / f"{hashlib.sha256(target.encode()).hexdigest()[:24]}.cursor"


def _load(path: Path) -> Cursor | None:
    try:
        raw = json.loads(path.read_text())
        return Cursor(int(raw["seq"]), str(raw["hash"]), int(raw["offset"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise AuditError(f"cannot read the forwarding cursor {path}: {exc}",
                         hint="delete it to forward from the log's current end") from exc


def _save(path: Path, cursor: Cursor) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"seq": cursor.seq, "hash": cursor.hash, "offset": cursor.offset}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class Sender:
    def __init__(self, forwarder: Forwarder, log: AuditLog, cursor_file: Path) -> None:
        self.forwarder, self.log, self.cursor_file = forwarder, log, cursor_file
        self.cursor: Cursor | None = _load(cursor_file)
        self.failures = 0  # consecutive failed deliveries (0: healthy)
        self._cond = threading.Condition()
        self._target: tuple[Checkpoint | None, int] | None = None  # the one-slot queue
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=f"forward {self.shown}",
                                        daemon=True)

    @property
    def shown(self) -> str:
        return shown(self.forwarder.where)

    def behind(self, head_seq: int) -> int:
        """How many records up to `head_seq` the target has not taken yet."""
        cursor = self.cursor
        return max(0, head_seq - cursor.seq) if cursor is not None else 0

    def start(self, head: Head, offset: int, checkpoint: Checkpoint | None) -> None:
        """Begin (from the cursor, or at `head`/`offset` for a new target) and catch up to
        `offset`, the end of the checked log."""
        if self.cursor is None:
            self.cursor = Cursor(head.seq, head.hash, offset)
            _save(self.cursor_file, self.cursor)
        with self._cond:  # a poll may have notified a newer end already
            if self._target is None or self._target[1] < offset:
                self._target = (checkpoint, offset)
        self._thread.start()

    def notify(self, checkpoint: Checkpoint, offset: int) -> None:
        """The checked log now reaches `offset`, signed by `checkpoint`. Never blocks on I/O."""
        with self._cond:
            self._target = (checkpoint, offset)
            self._cond.notify()

    def stop(self, timeout: float) -> None:
        """Let the sender deliver what it can within `timeout` seconds, then leave: whatever is
        left waits for the next start at the cursor."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _behind(self) -> bool:
        assert self.cursor is not None
        return self._target is not None and self._target[1] > self.cursor.offset

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._behind() and not self._stopping:
                    self._cond.wait()
                if not self._behind():
                    return
                assert self._target is not None
                checkpoint, end = self._target
            if not self._send_batch(checkpoint, end):
                with self._cond:
                    if self._stopping:
                        return  # the cursor holds; the next start tries again
                    self._cond.wait(min(MAX_BACKOFF, 0.5 * 2 ** min(self.failures, 8)))

    def _send_batch(self, checkpoint: Checkpoint | None, end: int) -> bool:
        cur = self.cursor
        assert cur is not None
        try:
            head, offset, records = read_chain(self.log.path, cur.offset, end, cur.head,
                                               keep=True, limit=BATCH)
            if offset == cur.offset:  # checked bytes gone (truncated): no progress is possible
                raise AuditError(f"the log ends before byte {end}")
        except (AuditError, OSError) as exc:
            # The checkpointer checked these bytes; if they no longer chain on from what was
            # sent, the log was rewritten under us: stop rather than send a different story.
            self._say(f"stopped: the log does not continue from seq {cur.seq}: {exc}")
            with self._cond:
                self._stopping = True
            return False
        last = offset >= end  # the checkpoint goes with the batch that reaches it
        try:
            self.forwarder.forward(records, checkpoint if last else None)
        except ForwardError as exc:
            self.failures += 1
            if self.failures == 1:
                self._say(f"cannot deliver (will retry, from seq {cur.seq + 1}): {exc}")
            return False
        self.cursor = Cursor(head.seq, head.hash, offset)
        _save(self.cursor_file, self.cursor)
        if self.failures:
            self._say(f"delivering again after {self.failures} failed attempt(s)")
            self.failures = 0
        return True

    def _say(self, what: str) -> None:
        print(f"sandbox serve: forwarding audit records to {self.shown}: {what}",
              file=sys.stderr, flush=True)
