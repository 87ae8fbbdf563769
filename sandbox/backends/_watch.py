"""The write cap shared by the backends: stop a run whose upper dir outgrows the limit."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

__all__ = ["WriteWatcher", "tree_bytes"]


class WriteWatcher:
    """Stop the run when its upper dir outgrows the write cap (RLIMIT_FSIZE only caps single
    files). Polls, so it costs nothing when no cap is set; its walk follows upper's size."""

    def __init__(self, upper: Path, cap: int | None, kill: Callable[[], None]) -> None:
        self._upper, self._cap, self._kill = upper, cap, kill
        self._stop = threading.Event()
        self.hit = False
        self._thread: threading.Thread | None = None

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
        while not self._stop.wait(0.1):
            if tree_bytes(self._upper) > self._cap:
                self.hit = True
                self._kill()
                return


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
