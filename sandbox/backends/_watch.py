"""Polled caps shared by the backends: the write cap (a run's upper dir), and the memory cap
where no cgroup can enforce it (the resident memory of the run's processes)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

__all__ = ["LimitWatcher", "tree_bytes", "tree_resident_bytes", "write_watcher"]

POLL_S = 0.1


class LimitWatcher:
    """Stop the run (`kill`) when `measure()` exceeds `cap`. Polls, so it costs nothing when
    no cap is set."""

    def __init__(self, measure: Callable[[], int], cap: int | None,
                 kill: Callable[[], None]) -> None:
        self._measure, self._cap, self._kill = measure, cap, kill
        self._stop = threading.Event()
        self.hit = False
        self._thread: threading.Thread | None = None

    @property
    def active(self) -> bool:
        return self._cap is not None

    def check(self) -> None:
        """One poll, in the caller's thread (nsjail's supervise loop): kill once over the cap."""
        if self._cap is not None and not self.hit and self._measure() > self._cap:
            self.hit = True
            self._kill()

    def start(self) -> None:
        if self._cap is not None:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def _run(self) -> None:
        assert self._cap is not None
        while not self._stop.wait(POLL_S):
            if self._measure() > self._cap:
                self.hit = True
                self._kill()
                return


def write_watcher(upper: Path, cap: int | None, kill: Callable[[], None]) -> LimitWatcher:
    """The write cap: RLIMIT_FSIZE only caps single files, this caps the upper dir's total
    (its walk follows upper's size, not the workspace's)."""
    return LimitWatcher(lambda: tree_bytes(upper), cap, kill)


def tree_resident_bytes(pid: int) -> int:
    """Resident anonymous memory of `pid`'s descendants (what they allocated; shared libraries
    and page cache, which a cgroup would not charge to one run alone, are left out)."""
    import psutil  # only runs that need a polled memory cap pay for the import

    try:
        procs = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return 0
    total = 0
    for p in procs:
        try:
            mem = p.memory_info()
        except psutil.Error:
            continue
        total += max(0, mem.rss - mem.shared)
    return total


def tree_bytes(root: Path) -> int:
    total = 0
    stack = [str(root)]
    while stack:
        try:
            with os.scandir(stack.pop()) as it:
                for e in it:
                    try:
                        st = e.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    total += st.st_blocks * 512
                    if e.is_dir(follow_symlinks=False):
                        stack.append(e.path)
        except OSError:
            continue
    return total
