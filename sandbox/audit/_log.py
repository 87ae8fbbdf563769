"""The append-only audit log file and its head sidecar.

Concurrency: every writer takes an exclusive flock on the log for the whole read-last /
write / fsync / update-head sequence, so the chain stays linear across processes. Readers take
a shared lock only long enough to note the file size and head; everything below that size is
immutable (append-only), so they stream it afterwards without blocking writers.

Cost: an append reads only the tail of the file (seeking back from the end until the last
newline), never the whole log, so it stays O(record size) however long the log grows.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import re
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sandbox.audit._head import EMPTY_HEAD, Head, HeadState, check_head
from sandbox.audit._record import (
    AuditEvent,
    AuditRecord,
    RecordFormatError,
    compute_hash,
    decode_line,
    default_actor,
    make_record,
    normalize_data,
    utc_timestamp,
)

if TYPE_CHECKING:
    from sandbox.audit._verify import VerifyReport
from sandbox.errors import AuditError

__all__ = ["AuditLog", "Entry"]


@dataclass(frozen=True)
class Entry:
    """One record to append (see AuditLog.append_many)."""

    event: AuditEvent
    run: str | None = None
    session: str | None = None
    actor: str | None = None
    data: Mapping[str, object] | None = None

_TAIL_CHUNK = 4096
# Fixed width so the sidecar is rewritten in place with one small write (no rename dance).
_HEAD_FMT = "v1 {seq:020d} {hash}\n"
_HEAD_RE = re.compile(rb"^v1 (\d{20}) ([0-9a-f]{64})\n$")
_FIX_HINT = (
    "run `sandbox audit --verify`; after investigating, move the log and its .head file aside "
    "to start a new chain"
)


def _open(path: Path, flags: int) -> int:
    return os.open(path, flags | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)


def _read_tail_line(fd: int, size: int) -> bytes | None:
    """The last line of the first `size` bytes (with its newline), or None if empty."""
    if size == 0:
        return None
    chunk = min(_TAIL_CHUNK, size)
    while True:
        start = size - chunk
        buf = os.pread(fd, chunk, start)
        # Search before the final byte: the line's own terminator is not its start.
        cut = buf.rfind(b"\n", 0, len(buf) - 1)
        if cut >= 0:
            return buf[cut + 1 :]
        if start == 0:
            return buf
        chunk = min(chunk * 2, size)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class AuditLog:
    """Hash-chained JSON-lines log at `path`, with its head in `<path stem>.head` beside it."""

    path: Path

    @property
    def head_path(self) -> Path:
        return self.path.with_suffix(".head")

    # -- head sidecar ---------------------------------------------------------------------

    def read_head(self) -> Head | None:
        """The sidecar's (seq, hash); None when there is no sidecar. AuditError if garbled."""
        try:
            fd = _open(self.head_path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise AuditError(f"cannot read {self.head_path}: {exc.strerror}") from exc
        try:
            raw = os.read(fd, 256)
        finally:
            os.close(fd)
        m = _HEAD_RE.fullmatch(raw)
        if m is None:
            raise AuditError(f"audit head {self.head_path} is garbled", hint=_FIX_HINT)
        return Head(int(m.group(1)), m.group(2).decode("ascii"))

    def _write_head(self, head: Head) -> None:
        data = _HEAD_FMT.format(seq=head.seq, hash=head.hash).encode("ascii")
        fd = _open(self.head_path, os.O_RDWR | os.O_CREAT)
        try:
            # Not fsync'd: the log is, before this; a sidecar the disk lost at a power loss
            # only lags (HeadState.LAGS), never runs ahead of the log.
            os.pwrite(fd, data, 0)
            os.ftruncate(fd, len(data))
        finally:
            os.close(fd)

    # -- writing --------------------------------------------------------------------------

    def _last_record(self, fd: int, size: int) -> AuditRecord | None:
        line = _read_tail_line(fd, size)
        if line is None:
            return None
        if not line.endswith(b"\n"):
            raise AuditError(
                f"audit log {self.path} ends with an incomplete record (crash or truncation)",
                hint=_FIX_HINT,
            )
        try:
            last = decode_line(line)
        except RecordFormatError as exc:
            raise AuditError(
                f"last record of {self.path} is malformed: {exc}", hint=_FIX_HINT
            ) from exc
        if compute_hash(last.body()) != last.hash:
            raise AuditError(
                f"last record of {self.path} was edited (hash mismatch)", hint=_FIX_HINT
            )
        return last

    def _hash_at(self, size: int, seq: int) -> str | None:
        """The hash of record `seq` in the first `size` bytes (None if absent or unreadable):
        read only when the sidecar lags by more than one record."""
        for _, raw in self._lines(size):
            with contextlib.suppress(RecordFormatError):
                rec = decode_line(raw)
                if rec.seq == seq:
                    return rec.hash
        return None

    def append(
        self,
        event: AuditEvent,
        *,
        run: str | None = None,
        session: str | None = None,
        actor: str | None = None,
        data: Mapping[str, object] | None = None,
    ) -> AuditRecord:
        """Append one record durably (fsync'd) and return it.

        Raises AuditError if it cannot be written, or if the end of the log does not match the
        head sidecar (a truncated or rewritten log is not silently extended). If the record was
        written but the sidecar update failed, AuditError is raised too: the record is on disk
        and the next append repairs the sidecar.
        """
        return self.append_many([Entry(event, run=run, session=session, actor=actor,
                                       data=data)])[0]

    def append_many(self, entries: Sequence[Entry]) -> list[AuditRecord]:
        """Append several records as one durable write (one fsync for all): the steps that
        end a run are recorded together, at the cost of one disk flush instead of four."""
        prepared: list[tuple[AuditEvent, Entry, Mapping[str, object], str]] = []
        for e in entries:
            try:
                # Re-validate: a stray string here would write a record no reader accepts.
                event = AuditEvent(e.event)
            except ValueError as exc:
                raise AuditError(f"unknown audit event {e.event!r}") from exc
            try:
                payload = normalize_data(e.data)
            except (TypeError, ValueError) as exc:
                raise AuditError(f"audit data for {event} is not JSON-serialisable: {exc}") from exc
            prepared.append((event, e, payload, default_actor() if e.actor is None else e.actor))
        try:
            fd = _open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT)
        except OSError as exc:
            raise AuditError(f"cannot open audit log {self.path}: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            size = os.fstat(fd).st_size
            last = self._last_record(fd, size)
            at = functools.partial(self._hash_at, size)
            if check_head(self.read_head(), last, at) is HeadState.MISMATCH:
                raise AuditError(
                    f"audit log {self.path} does not match its head {self.head_path} "
                    "(truncated or rewritten); refusing to extend it",
                    hint=_FIX_HINT,
                )
            prev = EMPTY_HEAD if last is None else Head(last.seq, last.hash)
            records: list[AuditRecord] = []
            for event, e, payload, who in prepared:
                record = make_record(
                    seq=prev.seq + 1,
                    prev=prev.hash,
                    event=event,
                    run=e.run,
                    session=e.session,
                    actor=who,
                    data=payload,
                    ts=utc_timestamp(),
                )
                records.append(record)
                prev = Head(record.seq, record.hash)
            try:
                _write_all(fd, b"".join(r.encode_line() for r in records))
                os.fsync(fd)
            except OSError:
                # Leave no torn record behind: the append either happened or did not.
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, size)
                raise
            if size == 0:
                _fsync_dir(self.path.parent)  # the file may be new: make its entry durable
            self._write_head(prev)
            return records
        except OSError as exc:
            raise AuditError(f"cannot append to audit log {self.path}: {exc}") from exc
        finally:
            os.close(fd)  # also releases the flock

    # -- reading --------------------------------------------------------------------------

    def _head_for_verify(self) -> tuple[Head | None, bool]:
        """(head, garbled): verify reports a garbled sidecar instead of raising."""
        try:
            return self.read_head(), False
        except AuditError:
            return None, True

    def _snapshot(self) -> tuple[int, tuple[Head | None, bool]]:
        """(size, head) taken atomically w.r.t. writers; size 0 when the log does not exist."""
        try:
            fd = _open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return 0, self._head_for_verify()
        except OSError as exc:
            raise AuditError(f"cannot open audit log {self.path}: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            return os.fstat(fd).st_size, self._head_for_verify()
        finally:
            os.close(fd)

    def _lines(self, size: int) -> Iterator[tuple[int, bytes]]:
        """Numbered raw lines of the first `size` bytes; a torn last line has no newline."""
        if size == 0:
            return
        try:
            with open(self.path, "rb") as f:
                pos, line_no = 0, 0
                while pos < size:
                    line = f.readline(size - pos)
                    if not line:
                        return
                    pos += len(line)
                    line_no += 1
                    yield line_no, line
        except OSError as exc:
            raise AuditError(f"cannot read audit log {self.path}: {exc.strerror}") from exc

    def records(
        self, run: str | None = None, *, session: str | None = None
    ) -> Iterator[AuditRecord]:
        """Records in order, optionally only those of one run and/or session.

        Structure is checked (AuditError on a malformed line), hashes are not: use verify().
        """
        size, _ = self._snapshot()
        for line_no, raw in self._lines(size):
            try:
                if not raw.endswith(b"\n"):
                    # Writers hold the lock while writing, so this is a torn write, not one
                    # in progress.
                    raise RecordFormatError("incomplete last line (truncated)")
                rec = decode_line(raw)
            except RecordFormatError as exc:
                raise AuditError(
                    f"{self.path} line {line_no} is malformed: {exc}", hint=_FIX_HINT
                ) from exc
            if (run is None or rec.run == run) and (session is None or rec.session == session):
                yield rec

    def verify(self, keep: Collection[int] = ()) -> VerifyReport:
        """Check every record, the chain and the head (`keep`: see verify_lines).

        A broken log is reported, not raised; AuditError only when the file cannot be read.
        """
        from sandbox.audit._verify import verify_lines  # the walk is only for `audit --verify`

        size, (head, garbled) = self._snapshot()
        return verify_lines(self.path, self._lines(size), head, head_garbled=garbled,
                            keep=keep)
