"""Timing helper shared by the benchmark scripts (run as ``python benchmarks/<script>.py``)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

__all__ = ["paired_ratio", "time_us"]


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


def paired_ratio(
    fn_a: Callable[[], object], fn_b: Callable[[], object], inner: int, repeats: int
) -> tuple[float, float, float]:
    """Median over ``repeats`` of time(a) / time(b), a and b timed back to back in each repeat.

    Pairing keeps slow drifts of a shared machine (another process, frequency changes) out of the
    ratio. Returns ``(ratio, a_us, b_us)`` with the per-call medians of each side.
    """
    for _ in range(max(1, inner // 10)):
        fn_a()
        fn_b()
    ratios, a_us, b_us = [], [], []
    for _ in range(repeats):
        t0 = time.perf_counter_ns()
        for _ in range(inner):
            fn_a()
        t1 = time.perf_counter_ns()
        for _ in range(inner):
            fn_b()
        t2 = time.perf_counter_ns()
        a_us.append((t1 - t0) / inner / 1e3)
        b_us.append((t2 - t1) / inner / 1e3)
        ratios.append((t1 - t0) / (t2 - t1))
    return statistics.median(ratios), statistics.median(a_us), statistics.median(b_us)
