"""Timing helper shared by the benchmark scripts (run as ``python benchmarks/<script>.py``)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

__all__ = ["time_us"]


def time_us(fn: Callable[[], object], inner: int, repeats: int, warmup: int | None = None) -> float:
    """Median over ``repeats`` of the mean time of ``inner`` calls of ``fn``, in microseconds.

    ``warmup`` calls run first (default: one tenth of ``inner``, at least 1).
    """
    for _ in range(max(1, inner // 10) if warmup is None else warmup):
        fn()
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter_ns()
        for _ in range(inner):
            fn()
        samples.append((time.perf_counter_ns() - t0) / inner / 1e3)
    return statistics.median(samples)
