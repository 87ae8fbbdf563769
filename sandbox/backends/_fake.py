"""A fake backend for unit tests of everything above the backend (levels, commit, audit).

It runs no process: `act(upper, lower)` edits the session's upper dir the way an overlay would
(new files, copies, whiteouts) and returns the exit code. Never used by the CLI.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sandbox.backends._base import LaunchResult, LaunchSpec

Act = Callable[[Path, Path], int]


class FakeBackend:
    name = "fake"

    def __init__(self, act: Act) -> None:
        self._act = act
        self.launched: list[LaunchSpec] = []

    def check(self) -> None:
        return None

    def launch(self, spec: LaunchSpec) -> LaunchResult:
        self.launched.append(spec)
        code = self._act(spec.snapshot.upper, spec.snapshot.lower)
        return LaunchResult(exit_code=code, timed_out=False, signal=None, duration_ms=1,
                            cpu_ms=0, peak_memory_kb=0)
