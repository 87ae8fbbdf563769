"""`sandbox agent`'s wait for its agent wakes on what happens (connection, a refusal by the
gateway, the agent's end), each from its own thread, never on a timer: `anyio.sleep` is made to
never return here, so a loop that polled would never see anything and hit the deadline. Each
event is made to happen only once the loop is waiting, so none is seen by luck."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import anyio
import pytest

from sandbox.mcp._agentwait import Stopped, Wake, supervise

DEADLINE_S = 30  # only reached when a wake-up is lost


@pytest.fixture(autouse=True)
def no_polling(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    async def never(*_: object, **__: object) -> None:
        await anyio.sleep_forever()

    monkeypatch.setattr(anyio, "sleep", never)
    yield


class SpiedWake(Wake):
    """Tells other threads when the loop is waiting on it."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting = threading.Event()

    async def wait(self) -> None:
        self.waiting.set()
        try:
            await super().wait()
        finally:
            self.waiting.clear()


class FakeAgent:
    """The launch thread of an agent that runs until stopped (or told to end)."""

    def __init__(self, wake: SpiedWake) -> None:
        self.wake = wake
        self.finished = threading.Event()
        self.end = threading.Event()
        self.stops = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self.end.wait(DEADLINE_S)
        self.wake.waiting.wait(DEADLINE_S)
        self.finished.set()  # as the launch thread does: done, then wake
        self.wake.set()

    def stop(self) -> None:
        self.stops += 1
        self.end.set()


def _watch(agent: FakeAgent, *, connected: threading.Event, refusals: list[object],
           connect_timeout_s: float = 600,
           meanwhile: Callable[[], object] | None = None) -> Stopped | None:
    async def main() -> Stopped | None:
        agent.wake.bind()
        agent.thread.start()
        if meanwhile is not None:
            threading.Thread(target=meanwhile, daemon=True).start()
        with anyio.fail_after(DEADLINE_S):
            return await supervise(agent.wake, connected=connected, finished=agent.finished,
                                   thread=agent.thread, refusals=refusals,
                                   connect_timeout_s=connect_timeout_s, stop=agent.stop)

    return anyio.run(main)


@pytest.mark.parametrize("was_connected", [False, True])
def test_a_refusal_on_the_gateways_thread_stops_the_agent_at_once(was_connected: bool) -> None:
    agent, connected = FakeAgent(SpiedWake()), threading.Event()
    refusals: list[object] = []
    if was_connected:
        connected.set()

    def gateway_refuses() -> None:
        assert agent.wake.waiting.wait(DEADLINE_S)
        refusals.append("Bash")
        agent.wake.set()

    assert _watch(agent, connected=connected, refusals=refusals,
                  meanwhile=gateway_refuses) is Stopped.REFUSED
    assert agent.stops == 1 and agent.finished.is_set()


@pytest.mark.parametrize("connects", [False, True])
def test_the_agents_end_wakes_the_wait(connects: bool) -> None:
    agent, connected = FakeAgent(SpiedWake()), threading.Event()
    if connects:
        connected.set()
    agent.end.set()  # it exits by itself, once the loop waits
    assert _watch(agent, connected=connected, refusals=[]) is None
    assert agent.stops == 0


def test_no_connection_in_time_stops_it() -> None:
    agent = FakeAgent(SpiedWake())
    assert _watch(agent, connected=threading.Event(), refusals=[],
                  connect_timeout_s=0.01) is Stopped.NOT_CONNECTED
    assert agent.stops == 1 and agent.finished.is_set()


def test_a_wake_after_the_loop_is_gone_is_harmless() -> None:
    wake = Wake()
    wake.set()  # before bind: nothing waits yet

    async def main() -> None:
        wake.bind()

    anyio.run(main)
    done = threading.Event()
    def late() -> None:
        wake.set()
        done.set()

    threading.Thread(target=late, daemon=True).start()
    assert done.wait(DEADLINE_S)
