"""Timing helpers shared by the benchmark scripts (run as ``python benchmarks/<script>.py``)."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable

__all__ = ["OtherLoad", "paired_ratio", "time_us"]


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


class OtherLoad:
    """How busy other processes kept the CPUs while a block ran (Linux ``/proc``; else ``None``).

    ``with OtherLoad() as load: ...`` then ``load.share``: CPU time used by everything but this process
    (all its threads) plus steal, as a fraction of all CPUs' time over the block. Near 0 on an idle
    machine; a multi-threaded figure measured while it is well above 0 is not to be trusted.
    """

    share: float | None = None

    @staticmethod
    def _snapshot() -> tuple[int, int, int] | None:
        try:
            with open("/proc/stat") as f:
                cpu = [int(x) for x in f.readline().split()[1:9]]
            with open(f"/proc/{os.getpid()}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, ValueError, IndexError):
            return None
        user, nice, system, _idle, _iowait, irq, softirq, steal = cpu
        own = int(fields[11]) + int(fields[12])  # utime + stime, every thread of this process
        return user + nice + system + irq + softirq + steal, sum(cpu), own

    def __enter__(self) -> OtherLoad:
        self._start = self._snapshot()
        return self

    def __exit__(self, *exc: object) -> None:
        end = self._snapshot()
        if self._start is None or end is None or end[1] <= self._start[1]:
            return
        busy, total, own = (e - s for e, s in zip(end, self._start, strict=True))
        self.share = max(0.0, (busy - own) / total)
