"""SIGINT, SIGTERM and SIGHUP to `sandbox run`: stop the sandbox, record the run, keep changes.

The CLI installs the handlers for a run. While the sandbox runs (or a person is asked), a
signal raises `Cancelled` in the main thread: it is a KeyboardInterrupt, so every backend's
existing "stop what I started" path handles it, and the runner records the run as cancelled
with 128+N. Outside those stretches (diff, commit, audit) a signal is only remembered, so a
journaled commit is never cut in half; the CLI exits 128+N when the work is recorded.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

__all__ = ["HANDLED", "Cancelled", "armed", "install", "received"]

HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Cancelled(KeyboardInterrupt):
    """A signal asked the run to stop (128 + signum is the exit status)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class _State:
    installed = False
    armed = 0
    received: int | None = None


_state = _State()


def _handler(signum: int, frame: FrameType | None) -> None:
    first = _state.received is None
    if first:
        _state.received = signum
    if _state.armed and first:
        raise Cancelled(signum)


def install() -> None:
    """Route the three signals through `_handler` (main thread only; idempotent)."""
    if _state.installed or threading.current_thread() is not threading.main_thread():
        return
    for sig in HANDLED:
        signal.signal(sig, _handler)
    _state.installed = True


def received() -> int | None:
    """The first signal that arrived since `install`, if any."""
    return _state.received


@contextmanager
def armed() -> Iterator[None]:
    """A stretch a signal may interrupt (with Cancelled); raises at once if one came before."""
    if _state.installed and _state.received is not None:
        raise Cancelled(_state.received)
    _state.armed += 1
    try:
        yield
    finally:
        _state.armed -= 1
