"""`sandbox agent`'s wait for its agent, woken by what happens rather than by a timer.

Three things end a wait, each from its own thread: the agent connects to our MCP server (the
event loop's), the gateway refuses a request of the agent (the gateway's), the agent's sandbox
ends (the launch thread's). Each sets one `Wake`; the waiting task looks at the state again.
It polled every 50 ms before: a refused agent kept running up to that long, and the loop woke
20 times a second for nothing during the agent's whole run.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Sequence
from enum import StrEnum

import anyio
import anyio.from_thread
import anyio.lowlevel


class Wake:
    """An event the waiting task awaits and any thread may set; each wait consumes it."""

    def __init__(self) -> None:
        self._token: anyio.lowlevel.EventLoopToken | None = None
        self._loop_thread = 0
        self._event: anyio.Event | None = None

    def bind(self) -> None:
        """In the event loop, before anything may set it."""
        self._token = anyio.lowlevel.current_token()
        self._loop_thread = threading.get_ident()
        self._event = anyio.Event()

    def set(self) -> None:
        if self._token is None:
            return  # no wait yet: the waiter looks at the state before its first wait
        if threading.get_ident() == self._loop_thread:
            self._fire()
            return
        # Not a worker thread of the loop (the gateway's own loop, the launch thread): the
        # token brings the call over. A loop that is gone has no one waiting.
        with contextlib.suppress(anyio.RunFinishedError):
            anyio.from_thread.run_sync(self._fire, token=self._token)

    def _fire(self) -> None:  # in the loop: the event waited on now, not one already consumed
        assert self._event is not None
        self._event.set()

    async def wait(self) -> None:
        assert self._event is not None, "bind() first"
        await self._event.wait()
        # No await between the wake-up and the fresh event: a set() can only come before
        # (already seen by the caller's check of the state) or after (sets the fresh one).
        self._event = anyio.Event()


class Stopped(StrEnum):
    NOT_CONNECTED = "not-connected"  # no connection to our server within the timeout
    REFUSED = "refused"  # the gateway refused a request of the agent


async def supervise(wake: Wake, *, connected: threading.Event, finished: threading.Event,
                    thread: threading.Thread, refusals: Sequence[object],
                    connect_timeout_s: float, stop: Callable[[], object]) -> Stopped | None:
    """Wait until the agent's launch thread has finished (`finished`, set before `wake`; its
    thread still alive then, so both are checked), stopping it (`stop`, on a worker thread) at
    once when the gateway refuses a request or when it has not connected in time."""

    def running() -> bool:
        return not finished.is_set() and thread.is_alive()

    stopped: Stopped | None = None
    with anyio.move_on_after(connect_timeout_s):
        while not connected.is_set() and running() and not refusals:
            await wake.wait()
    if not connected.is_set() and running() and not refusals:
        stopped = Stopped.NOT_CONNECTED
        await anyio.to_thread.run_sync(stop)
    while running():
        if refusals and stopped is None:
            stopped = Stopped.REFUSED
            await anyio.to_thread.run_sync(stop)
            continue  # the stop may have ended it: look again before waiting
        await wake.wait()
    return stopped
