"""Watchers of a running container: its resource usage (cgroup files) and the write cap.

Docker deletes a container's cgroup when it exits, so usage is sampled while it runs; the
figures are the last sample (peak memory is the cgroup's own high-water mark, so it is exact up
to the last 50 ms; cpu time may miss that much).
"""

from __future__ import annotations

import threading
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
