"""Watchers of a running container: its resource usage (cgroup files) and the write cap.

Docker deletes a container's cgroup when it exits, so usage is sampled while it runs; the
figures are the last sample (peak memory is the cgroup's own high-water mark, so it is exact up
to the last 50 ms; cpu time may miss that much).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

_SAMPLE_S = 0.05
_CGROUP = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class Usage:
    cpu_ms: int
    peak_memory_kb: int


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _read_usage(cid: str) -> tuple[int | None, int | None]:
    """(cpu ns, peak memory bytes) from cgroup v1 (cgroupfs driver) or v2."""
    v1_mem = _read_int(_CGROUP / "memory" / "docker" / cid / "memory.max_usage_in_bytes")
    if v1_mem is not None:
        return _read_int(_CGROUP / "cpuacct" / "docker" / cid / "cpuacct.usage"), v1_mem
    for d in (_CGROUP / "docker" / cid, _CGROUP / "system.slice" / f"docker-{cid}.scope"):
        peak = _read_int(d / "memory.peak")
        if peak is not None:
            cpu = None
            try:
                for line in (d / "cpu.stat").read_text().splitlines():
                    if line.startswith("usage_usec "):
                        cpu = int(line.split()[1]) * 1000
            except (OSError, ValueError):
                pass
            return cpu, peak
    return None, None


class UsageSampler:
    def __init__(self, cid: str) -> None:
        self._cid = cid
        self._stop = threading.Event()
        self._cpu_ns = 0
        self._peak = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)

    def _sample(self) -> None:
        cpu, peak = _read_usage(self._cid)
        if cpu is not None:
            self._cpu_ns = max(self._cpu_ns, cpu)
        if peak is not None:
            self._peak = max(self._peak, peak)

    def _run(self) -> None:
        self._sample()
        while not self._stop.wait(_SAMPLE_S):
            self._sample()

    def result(self) -> Usage:
        return Usage(cpu_ms=self._cpu_ns // 1_000_000, peak_memory_kb=self._peak // 1024)


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
        while not self._stop.wait(0.2):
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
