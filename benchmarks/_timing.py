"""Timing helpers shared by the benchmarks: medians, and interleaved medians of peers."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def median_ms(fn: Callable[[], object], n: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    xs = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        xs.append(time.perf_counter() - t)
    return statistics.median(xs) * 1000


def interleaved_ms(fns: dict[str, Callable[[], object]], n: int, warmup: int = 2) -> dict[str, float]:
    """Medians of several contenders measured in turn (A B C A B C ...), so drift in the
    machine's load hits them all alike."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(n):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - t)
    return {k: statistics.median(v) * 1000 for k, v in samples.items()}
