"""A `sandbox` invocation on a real pseudo-terminal, with the screen a person would see
(read back through the pyte terminal emulator): keystrokes in, screen out."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time

import pexpect

from tests.conftest import SANDBOX_BIN, Cli, require

# pyte (the emulator) lacks REP, SU and SD, which ncurses uses with TERM=xterm; xterm-color
# describes an xterm without them, so the screen we read is the screen a person would see.
TERM = "xterm-color"

try:
    import pyte
except ImportError:  # a dev dependency; `require` skips locally and fails in CI
    pyte = None  # type: ignore[assignment]


# Every Tty a test opened; `reap()` (an autouse fixture in tests/conftest.py) kills what a
# failing test left behind, so a program waiting for keys never blocks the rest of the suite.
_OPEN: list[Tty] = []


def reap() -> None:
    while _OPEN:
        child = _OPEN.pop().child
        if child.isalive() and child.pid is not None:
            # the child leads its own session: its process group is its pid
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
        child.close(force=True)


class Tty:
    """One `sandbox` invocation on a pseudo-terminal, with the screen it shows."""

    def __init__(self, cli: Cli, *args: str, rows: int = 24, cols: int = 80,
                 env: dict[str, str] | None = None) -> None:
        require(pyte is not None, "pyte (pip install pyte), the terminal emulator tests read")
        env = cli.env({"TERM": TERM, "LANG": "C.UTF-8", **(env or {})})
        argv = [str(SANDBOX_BIN), *args]
        if cli.user is not None:  # as the unprivileged user, on the same terminal
            argv = [shutil.which("runuser") or "/usr/sbin/runuser", "-u", cli.user, "--",
                    "env", "-i", *[f"{k}={v}" for k, v in env.items()], *argv]
        here = cli.here.get("ws")  # run from the test's workspace, as a person would
        self.child: pexpect.spawn[bytes] = pexpect.spawn(argv[0], argv[1:], env=env, timeout=30,
                                   dimensions=(rows, cols),
                                   cwd=str(here) if here is not None and here.is_dir() else None)
        self.screen = pyte.Screen(cols, rows)
        self.stream = pyte.ByteStream(self.screen)
        self.raw = bytearray()
        _OPEN.append(self)

    def _pump(self, seconds: float) -> bool:
        """Feed output for up to `seconds`; False once the program has exited."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                data = self.child.read_nonblocking(65536, timeout=0.05)
            except pexpect.TIMEOUT:
                continue
            except pexpect.EOF:
                return False
            self.raw += data
            self.stream.feed(data)
        return True

    def text(self) -> str:
        return "\n".join(line.rstrip() for line in self.screen.display)

    def wait(self, needle: str, timeout: float = 20) -> str:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if needle in self.text():
                return self.text()
            if not self._pump(0.1) and needle not in self.text():
                break
        raise AssertionError(f"{needle!r} not on screen:\n{self.text()}")

    def press(self, keys: str, then: str | None = None) -> str:
        for k in keys:
            self.child.send(k)
            self._pump(0.05)
        return self.wait(then) if then else self.text()

    def drain(self) -> bytes:
        """Everything the program wrote, once it has exited."""
        while self._pump(0.2):
            pass
        return bytes(self.raw)

    def finish(self, timeout: float = 30) -> tuple[int, str]:
        end = time.monotonic() + timeout
        while time.monotonic() < end and self._pump(0.2):
            pass
        self.child.close()
        return self.child.exitstatus or 0, self.raw.decode("utf-8", "replace")
