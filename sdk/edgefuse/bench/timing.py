"""Timing and memory measurement for benchmarks: timed blocks, spread, host load, peak RSS of a fresh process.

Latency is timed in **repeated blocks** of calls (after warm-up): the percentiles come from every call, the
spread is reported as the inter-quartile range of the calls and the coefficient of variation of the block
medians (how much the median moves from one block to the next). A warning is raised when that CV exceeds
:data:`CV_WARN` or the host is busy (1-minute load average above the core count): those numbers are noise
as much as latency. Batch 8 is timed with as many calls as batch 1.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from edgefuse.errors import ContractError

__all__ = [
    "CV_WARN",
    "DEFAULT_BLOCKS",
    "check_counts",
    "host_load",
    "latency_figures",
    "noise_warnings",
    "peak_rss_subprocess",
    "ru_maxrss_mb",
    "time_blocks",
]

_log = logging.getLogger(__name__)

#: Coefficient of variation of the block medians above which a row is flagged as noisy.
CV_WARN = 0.10
#: Blocks the timed calls are split into.
DEFAULT_BLOCKS = 5


def _ms(seconds: float) -> float:
    return seconds * 1e3


def check_counts(warmup: int, iters: int) -> None:
    """Raise :class:`ContractError` unless ``warmup >= 0`` and ``iters >= 1`` are ints."""
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ContractError(f"warmup must be an int >= 0; got {warmup!r}")
    if isinstance(iters, bool) or not isinstance(iters, int) or iters < 1:
        raise ContractError(f"iters must be an int >= 1; got {iters!r}")


def time_blocks(
    fn: Callable[[], object], warmup: int, iters: int, blocks: int = DEFAULT_BLOCKS
) -> dict[str, Any]:
    """Time ``iters`` calls of ``fn`` (after ``warmup`` calls) in ``blocks`` consecutive blocks.

    Returns:
        ``{"times": [s per call], "p50_ms", "p90_ms", "p99_ms", "mean_ms", "iqr_ms", "cv", "blocks",
        "calls"}``. ``cv`` is the standard deviation of the block medians over their mean (``None`` with
        fewer than 2 blocks); ``iqr_ms`` the 75th minus the 25th percentile of every call.
    """
    for _ in range(warmup):
        fn()
    blocks = max(1, min(int(blocks), iters))
    sizes = [iters // blocks + (1 if b < iters % blocks else 0) for b in range(blocks)]
    times: list[float] = []
    medians: list[float] = []
    for size in sizes:
        block = []
        for _ in range(size):
            t0 = time.perf_counter()
            fn()
            block.append(time.perf_counter() - t0)
        times += block
        medians.append(float(np.median(block)))
    arr = np.asarray(times)
    med = np.asarray(medians)
    q25, q50, q75, p90, p99 = np.percentile(arr, [25, 50, 75, 90, 99])
    cv = float(med.std() / med.mean()) if len(med) >= 2 and med.mean() > 0 else None
    return {
        "times": times,
        "p50_ms": _ms(float(q50)),
        "p90_ms": _ms(float(p90)),
        "p99_ms": _ms(float(p99)),
        "mean_ms": _ms(float(arr.mean())),
        "iqr_ms": _ms(float(q75 - q25)),
        "cv": cv,
        "blocks": blocks,
        "calls": int(iters),
    }


def latency_figures(
    call_b1: Callable[[], object],
    call_b8: Callable[[], object] | None,
    warmup: int,
    iters: int,
    blocks: int = DEFAULT_BLOCKS,
) -> dict[str, Any]:
    """Batch-1 percentiles and spread, throughput at batch 1 and at batch 8 (same number of calls).

    ``call_b8`` ``None`` (a fixed-batch model) gives ``throughput_b8 = None``.
    """
    b1 = time_blocks(call_b1, warmup, iters, blocks)
    out = {k: v for k, v in b1.items() if k not in ("times", "calls")}
    out["throughput_b1"] = float(len(b1["times"]) / sum(b1["times"]))
    out["throughput_b8"] = None
    if call_b8 is not None:
        b8 = time_blocks(call_b8, max(1, warmup // 4), iters, blocks)
        out["throughput_b8"] = float(8 * len(b8["times"]) / sum(b8["times"]))
        out["b8_calls"] = b8["calls"]
    return out


def host_load() -> dict[str, Any]:
    """``{"load_average": 1-minute load or None, "cpus": os.cpu_count(), "busy": load > cpus}``."""
    cpus = os.cpu_count() or 1
    try:
        load = float(os.getloadavg()[0])
    except (OSError, AttributeError):  # not available on this platform
        return {"load_average": None, "cpus": cpus, "busy": False}
    return {"load_average": load, "cpus": cpus, "busy": load > cpus}


def noise_warnings(rows: list[Mapping[str, Any]], load: Mapping[str, Any]) -> list[str]:
    """Warnings for rows whose block-median CV exceeds :data:`CV_WARN` and for a busy host."""
    out = []
    if load.get("busy"):
        out.append(
            f"host busy: 1-minute load average {load['load_average']:.1f} > {load['cpus']} cores; "
            "latencies include time waiting for a core (rerun on an idle machine)"
        )
    noisy = [r for r in rows if r.get("cv") is not None and r["cv"] > CV_WARN]
    if noisy:
        worst = max(noisy, key=lambda r: r["cv"])
        names = ", ".join(f"{r.get('backend')} {r.get('pattern')}" for r in noisy[:5])
        more = f" and {len(noisy) - 5} more" if len(noisy) > 5 else ""
        out.append(
            f"noisy timing: the block medians vary by more than {CV_WARN:.0%} (CV up to "
            f"{worst['cv']:.0%}) for {names}{more}; raise --iters or rerun on an idle machine"
        )
    return out


def peak_rss_subprocess(kind: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    """Run :func:`edgefuse.bench.child.rss_child` in a fresh interpreter; ``{"peak_rss_mb", "rss_scope"}``."""
    code = (
        "import sys, json; from edgefuse.bench.child import rss_child; "
        "print(json.dumps(rss_child(*json.loads(sys.argv[1]))))"
    )
    try:
        proc = subprocess.run(
            [sys.executable, "-c", code, json.dumps([kind, dict(spec)])],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "no output")
        peak = float(json.loads(proc.stdout.strip().splitlines()[-1])["peak_rss_mb"])
        return {"peak_rss_mb": peak, "rss_scope": "fresh subprocess"}
    except Exception as exc:
        _log.warning("peak RSS subprocess failed (%s); reporting this process's peak instead", exc)
        return {"peak_rss_mb": ru_maxrss_mb(), "rss_scope": "process peak (subprocess failed)"}


def ru_maxrss_mb() -> float:
    """Peak RSS of this process in MiB.

    On Linux, ``VmHWM`` of ``/proc/self/status`` (the high-water mark of this process's own memory
    map). ``ru_maxrss`` is not used there: Linux carries it across ``exec``, so a child started by a
    large parent (say one that imported torch) would report the parent's peak.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024  # bytes on macOS, KiB on Linux
