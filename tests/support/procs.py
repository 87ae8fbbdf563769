"""A `sandbox run` started in the background (as root or as the test user), and what of it is
still alive: for the tests that kill it at each point and then look for leftovers."""

from __future__ import annotations

import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import IO

import psutil

from tests.conftest import SANDBOX_BIN, Cli


class Running:
    """`sandbox run ARGS` in the background; `.sandbox` is the sandbox process itself (under
    runuser for the test user), `.tree` every process it started, taken once it is going."""

    def __init__(self, cli: Cli, *args: str, cwd: Path | None = None, ready: str = "") -> None:
        if "-C" in args[:-1]:  # later calls of `cli` run from this workspace, as in Cli
            cli.here["ws"] = Path(args[args.index("-C") + 1])
        argv = [str(SANDBOX_BIN), *args]
        env = cli.env()
        if cli.user is not None:
            argv = [shutil.which("runuser") or "/usr/sbin/runuser", "-u", cli.user, "--",
                    "env", "-i", *[f"{k}={v}" for k, v in env.items()], *argv]
        self.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self.sandbox = self._find_sandbox()
        self.tree: list[psutil.Process] = []
        if ready:
            self.wait_for(ready)

    def _find_sandbox(self) -> psutil.Process:
        top = psutil.Process(self.proc.pid)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            for p in [top, *top.children(recursive=True)]:
                try:
                    if any(str(SANDBOX_BIN) == a for a in p.cmdline()[:2]):
                        return p
                except psutil.Error:
                    continue
            time.sleep(0.02)
        raise AssertionError("sandbox run did not start")

    def wait_for(self, marker: str, timeout: float = 20, *, count: int = 1) -> None:
        """Until `count` processes of the run have exactly `marker` as their command line (say
        the `sleep 60` a script execs once it has done its writes)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            kids = self.sandbox.children(recursive=True)
            found = 0
            for p in kids:
                try:
                    found += " ".join(p.cmdline()) == marker
                except psutil.Error:
                    continue
            if found >= count:
                self.tree = kids
                return
            time.sleep(0.02)
        raise AssertionError(f"no process of the run shows {marker!r}")

    def signal(self, sig: int) -> float:
        """Send `sig` to the sandbox process; return the moment it was sent."""
        sent = time.monotonic()
        self.sandbox.send_signal(sig)
        return sent

    def finish(self, timeout: float = 30) -> tuple[int, bytes, bytes]:
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out, err

    def survivors(self, within: float = 1.0) -> list[str]:
        """Processes of the run still alive after `within` seconds (none is the contract)."""
        deadline = time.monotonic() + within
        alive = self.tree
        while time.monotonic() < deadline:
            alive = [p for p in self.tree if _running(p)]
            if not alive:
                return []
            time.sleep(0.02)
        return [" ".join(p.cmdline()) for p in alive if _running(p)]


def _running(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


class Lines:
    """A text stream (a process's stderr) read line by line on a thread, so a test can wait
    for what the process says it did instead of pausing and hoping it did."""

    def __init__(self, stream: IO[str]) -> None:
        self._lines: list[str] = []
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            with self._cond:
                self._lines.append(line)
                self._cond.notify_all()

    def wait_for(self, text: str, *, count: int = 1, timeout: float = 30) -> None:
        """Until `count` lines contain `text`."""
        with self._cond:
            if not self._cond.wait_for(lambda: sum(text in ln for ln in self._lines) >= count,
                                       timeout):
                raise AssertionError(f"never said {text!r}: {''.join(self._lines)}")

    def text(self, timeout: float = 30) -> str:
        """Everything, once the stream ended (the process exited)."""
        self._thread.join(timeout)
        with self._cond:
            return "".join(self._lines)


def mounts_under(path: Path) -> list[str]:
    return [ln for ln in Path("/proc/self/mountinfo").read_text().splitlines()
            if str(path) in ln]


__all__ = ["Lines", "Running", "mounts_under", "signal"]
