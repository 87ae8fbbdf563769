"""Audit records of LLM calls, and their bodies stored once by content hash.

Agents resend the whole transcript every turn, so a request is stored as a manifest whose
messages (and system prompt, tools) are references to blobs: turn 100 adds one new message
blob and a small manifest, not a 100-message transcript. Every string is redacted by the content
scanner before it is hashed and stored. Blobs live in $SANDBOX_HOME/gateway/bodies/ (0700/0600).

Writing happens on one background thread (the event loop never waits on fsync); records queued
close together are appended as one durable write. `close()` drains the queue.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sandbox.audit import AuditEvent, AuditLog, Entry
from sandbox.audit._record import default_actor
from sandbox.errors import SandboxError
from sandbox.gateway._content import Scanner, redact_json

if TYPE_CHECKING:
    from sandbox.gateway._usage import Api

__all__ = ["BodyStore", "CallRecord", "Recorder", "request_manifest"]

# Parts of a request that repeat from turn to turn: stored as blobs, one per element for lists.
_LIST_PARTS = ("messages", "input")
_WHOLE_PARTS = ("system", "tools", "instructions")


def _canon(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class BodyStore:
    root: Path
    # Digests known to be stored: a repeated message costs no stat (one writer thread).
    known: set[str] = field(default_factory=set, compare=False, repr=False)

    def path(self, digest: str) -> Path:
        return self.root / digest[:2] / digest[2:]

    def put(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        if digest in self.known:
            return digest
        target = self.path(digest)
        if target.exists():
            self.known.add(digest)
            return digest
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        os.replace(tmp, target)
        self.known.add(digest)
        return digest

    def get(self, digest: str) -> bytes:
        return self.path(digest).read_bytes()


def request_manifest(body: Mapping[str, object], scanner: Scanner | None) -> tuple[bytes, list[bytes]]:
    """(manifest, blobs): the redacted request with its repeating parts replaced by
    {"$blob": sha256} references, and the blobs those references name. `scanner` None: the
    body was already scanned and found clean."""
    clean = dict(body) if scanner is None else redact_json(scanner, dict(body), set())
    assert isinstance(clean, dict)
    blobs: list[bytes] = []

    def ref(obj: object) -> dict[str, str]:
        data = _canon(obj)
        blobs.append(data)
        return {"$blob": hashlib.sha256(data).hexdigest()}

    for part in _LIST_PARTS:
        if isinstance(clean.get(part), list):
            clean[part] = [ref(m) for m in clean[part]]
    for part in _WHOLE_PARTS:
        if part in clean:
            clean[part] = ref(clean[part])
    return _canon(clean), blobs


@dataclass(frozen=True)
class CallRecord:
    event: AuditEvent
    run: str | None
    session: str | None
    data: Mapping[str, object]
    request: Mapping[str, object] | None = None  # parsed request body (redacted on write)
    response: bytes | None = None  # raw response body or SSE (redacted on write)
    api: Api | None = None
    request_clean: bool = False  # the request was scanned before it left and had no secret
    spend: tuple[tuple[str, float], ...] = ()  # settled cost per budget scope, to persist


class Recorder:
    def __init__(self, log: AuditLog, bodies: BodyStore, scanner: Scanner,
                 persist: Callable[[Sequence[tuple[str, float]]], None]) -> None:
        """`persist` stores settled spend (on this thread, batched: the event loop never
        waits on the database)."""
        self.log, self.bodies, self.scanner, self.persist = log, bodies, scanner, persist
        self._actor = default_actor()
        # None stops the thread; an Event is set once everything queued before it is durable.
        self._q: queue.Queue[CallRecord | threading.Event | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="gateway-audit", daemon=True)
        self._thread.start()

    def submit(self, rec: CallRecord) -> None:
        self._q.put(rec)

    def close(self) -> None:
        self._q.put(None)
        self._thread.join()

    def flush(self) -> None:
        """Wait until everything submitted so far is durable (tests, shutdown)."""
        done = threading.Event()
        self._q.put(done)
        done.wait()

    def _entry(self, rec: CallRecord) -> Entry:
        data = dict(rec.data)
        if rec.request is not None:
            manifest, blobs = request_manifest(rec.request, None if rec.request_clean else self.scanner)
            for blob in blobs:
                self.bodies.put(blob)
            data["request"] = self.bodies.put(manifest)
        if rec.response is not None:
            text, _ = self.scanner.redact(rec.response.decode("utf-8", "replace"))
            data["response"] = self.bodies.put(text.encode())
        return Entry(rec.event, run=rec.run, session=rec.session, actor=self._actor, data=data)

    def _loop(self) -> None:
        stop = False
        while not stop:
            batch = [self._q.get()]
            while True:
                try:
                    batch.append(self._q.get_nowait())
                except queue.Empty:
                    break
            entries: list[Entry] = []
            spend: list[tuple[str, float]] = []
            flushes: list[threading.Event] = []
            for rec in batch:
                match rec:
                    case None:
                        stop = True
                    case threading.Event():
                        flushes.append(rec)
                    case CallRecord():
                        spend += rec.spend
                        try:
                            entries.append(self._entry(rec))
                        except OSError as exc:  # the body store failed: keep the record itself
                            print(f"sandbox gateway: cannot store a call's bodies: {exc}", file=sys.stderr)
                            entries.append(Entry(rec.event, rec.run, rec.session, data=rec.data))
            if spend:
                try:
                    self.persist(spend)
                except SandboxError as exc:
                    print(f"sandbox gateway: cannot persist spend: {exc}", file=sys.stderr)
            if entries:
                try:
                    self.log.append_many(entries)
                except (OSError, SandboxError) as exc:  # say so loudly; the thread must go on
                    print(f"sandbox gateway: audit append failed: {exc}", file=sys.stderr)
            for ev in flushes:
                ev.set()
