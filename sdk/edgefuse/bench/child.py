"""The fresh process :func:`edgefuse.bench.timing.peak_rss_subprocess` starts: load, run, report peak RSS."""

from __future__ import annotations

from typing import Any

from edgefuse.bench.timing import ru_maxrss_mb

__all__ = ["rss_child"]


def rss_child(kind: str, spec: dict[str, Any]) -> dict[str, float]:
    """In a fresh process: load and run a few calls, then report the peak RSS in MiB.

    ``kind`` ``"artifact"``: ``spec`` has ``artifact``, ``profile``, ``backend``, ``pattern`` and
    optionally ``threads`` and ``zero_fill`` (every modality given, absent ones as zeros, all marked
    present: what a model without presence handling is fed). ``"model"``: ``path`` and ``threads``.
    """
    if kind == "artifact":
        from edgefuse.bench.artifact import pattern_inputs
        from edgefuse.runtime import load

        session = load(
            spec["artifact"],
            profile=spec.get("profile"),
            backend=spec.get("backend"),
            threads=spec.get("threads"),
        )
        pattern = tuple(spec["pattern"])
        inputs1, inputs8 = pattern_inputs(session, pattern, zero_fill=bool(spec.get("zero_fill")))
        for _ in range(5):
            session.predict(inputs1)
        session.predict(inputs8)
        session.close()
    else:
        from pathlib import Path

        from edgefuse.bench.model import ModelRunner
        from edgefuse.trust import read_bounded

        path = Path(spec["path"])
        runner = ModelRunner(path, spec.get("threads"), read_bounded(path, max_bytes=4 << 30, what="model"))
        runner.run(1)
        if runner.batch_dynamic:
            runner.run(8)
    return {"peak_rss_mb": ru_maxrss_mb()}
