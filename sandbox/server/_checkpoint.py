"""The key holder's side of the signed audit trail: tail the log, check, sign, tell forwarders.

`sandbox serve` runs one Checkpointer. Each poll reads the records appended since the last one
(by any process: runs, the gateway, the CLI), checks that each extends the chain it has already
checked (its hash recomputes, its seq is the next, its prev is the last hash), signs the new
head and tells the forwarding senders how far the checked log reaches (they send on their own
threads, so a slow collector never holds up a poll or the request that asked for it).
It never signs a head that does not extend the one it signed before: a log rewritten under it
stops the signing and is reported, so the key cannot be used to bless a rewritten history.
"""

from __future__ import annotations

import fcntl
import os
import sys
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sandbox.audit._head import EMPTY_HEAD, Head
from sandbox.audit._record import AuditRecord, RecordFormatError, decode_line
from sandbox.audit._sign import (
    Checkpoint,
    SigningKey,
    checkpoints_path,
    publish,
    write_checkpoint,
)
from sandbox.audit._sigverify import published_key_path, verify_signed
from sandbox.audit._verify import check_extends
from sandbox.errors import AuditError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path

    from sandbox.audit._log import AuditLog

__all__ = ["Checkpointer", "read_chain"]


def read_chain(path: Path, start: int, end: int, prev: Head, *, keep: bool,
               limit: int | None = None) -> tuple[Head, int, list[AuditRecord]]:
    """Records of the log between byte offsets `start` and `end`, each checked to extend `prev`:
    (the new head, the offset reached, the records if `keep`). Streamed line by line, so
    checking a long log holds one record at a time; `limit` stops after that many records."""
    records: list[AuditRecord] = []
    offset = start
    with open(path, "rb") as f:
        f.seek(start)
        while offset < end and (limit is None or len(records) < limit):
            line = f.readline(end - offset)
            if not line:
                break
            try:
                rec = decode_line(line)
            except RecordFormatError as exc:
                raise AuditError(f"record after seq {prev.seq} is malformed: {exc}") from exc
            problem = check_extends(rec, prev)
            if problem is not None:
                raise AuditError(f"the record after seq {prev.seq} does not extend the checked "
                                 f"chain: {problem}")
            offset += len(line)
            if keep:
                records.append(rec)
            prev = Head(rec.seq, rec.hash)
    return prev, offset, records


@dataclass
class Checkpointer:
    log: AuditLog
    key: SigningKey
    head: Head = EMPTY_HEAD  # the last record checked (and signed once poll() returns)
    offset: int = 0  # bytes of the log checked so far
    broken: str | None = None  # why signing stopped, once the log stops extending the chain
    checkpoints: int = 0
    # Called (from the polling thread) with each batch of new, checked records: live events.
    listeners: list[Callable[[Sequence[AuditRecord]], None]] = field(default_factory=list)
    # Told (from the polling thread) of each checkpoint and the log offset it covers: the
    # forwarding senders, which must not block (they deliver on their own threads).
    signed: list[Callable[[Checkpoint, int], None]] = field(default_factory=list)
    last: Checkpoint | None = None  # the newest checkpoint written
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> Checkpoint | None:
        """Refuse a log that already fails verification (signing it would launder it), publish
        the public key beside the log, then check and sign everything written so far."""
        report = verify_signed(self.log, {self.key.id: self.key.public},
                               key_source=str(self.key.public_path), required=False)
        if not report.ok:
            raise AuditError(
                f"the audit log {self.log.path} fails verification, so it will not be signed: "
                f"{report.first_problem}", hint="run `sandbox audit --verify`")
        publish(published_key_path(self.log), self.key.public_path.read_bytes())
        # Live events start with what is new from now on; senders resume from their cursors.
        return self.poll(forward=False)

    def _size(self) -> int:
        try:
            fd = os.open(self.log.path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except FileNotFoundError:
            return 0
        try:
            # Writers hold LOCK_EX across write+fsync: under LOCK_SH every byte below the size
            # belongs to a complete record.
            fcntl.flock(fd, fcntl.LOCK_SH)
            return os.fstat(fd).st_size
        finally:
            os.close(fd)

    def _read_new(self, size: int, *, keep: bool) -> tuple[Head, list[AuditRecord]]:
        head, _end, records = read_chain(self.log.path, self.offset, size, self.head, keep=keep)
        return head, records

    def poll(self, *, forward: bool = True) -> Checkpoint | None:
        """Check, forward and sign what was appended since the last poll; None if nothing was.

        Thread-safe (the API's decisions and the periodic task both call it). Once the log
        stops extending the chain, nothing more is signed and `broken` says why.
        """
        with self._lock:
            if self.broken is not None:
                return None
            size = self._size()
            if size < self.offset:
                self.broken = (f"the audit log shrank from {self.offset} to {size} bytes "
                               "(truncated or replaced)")
            elif size == self.offset and self.checkpoints:
                return None
            head = self.head
            records: list[AuditRecord] = []
            try:
                if not self.broken and size != self.offset:
                    head, records = self._read_new(size, keep=forward)
            except (AuditError, OSError) as exc:
                self.broken = str(exc)
            if self.broken is not None:
                print(f"sandbox serve: audit signing stopped: {self.broken}", file=sys.stderr)
                return None
            self.head, self.offset = head, size
            if self.head.seq == 0:
                return None  # an empty log: nothing to vouch for yet
            cp = self.key.sign(self.head.seq, self.head.hash)
            write_checkpoint(checkpoints_path(self.log), cp)
            self.checkpoints += 1
            self.last = cp
            if forward:
                for notify in self.signed:
                    notify(cp, size)
                for listener in self.listeners:
                    listener(records)
            return cp
