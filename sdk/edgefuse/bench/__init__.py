"""Benchmark reports for artifacts, checkpoints and plain model files, like ``trtexec`` / ``onnxruntime_perf_test``.

Split by what is measured:

* :mod:`edgefuse.bench.timing`: timed blocks, spread (IQR, CV), host load, peak RSS of a fresh process;
* :mod:`edgefuse.bench.artifact`: an artifact folder per backend x presence pattern, with the target's
  roofline estimate (:mod:`edgefuse.roofline`) and the profile's budgets;
* :mod:`edgefuse.bench.checkpoint`: a checkpoint exported to every format and precision the profile runs;
* :mod:`edgefuse.bench.model`: a plain ``.onnx`` / ``.tflite`` file;
* :mod:`edgefuse.bench.precisions`: precisions side by side and accuracy on labelled data;
* :mod:`edgefuse.bench.host`: ``edgefuse profiles calibrate-host`` (this machine's measured profile);
* :mod:`edgefuse.bench.report`: columns, Markdown, the saved report and plot.

Heavy imports (onnx, onnxruntime, LiteRT, matplotlib, torch) happen inside the functions that need them.
"""

from __future__ import annotations

from edgefuse.bench.artifact import bench_artifact, budget_check, estimate_pattern, parse_patterns
from edgefuse.bench.checkpoint import bench_checkpoint
from edgefuse.bench.model import bench_model
from edgefuse.bench.report import DEFINITIONS, render_markdown, save_report

__all__ = [
    "DEFINITIONS",
    "bench_artifact",
    "bench_checkpoint",
    "bench_model",
    "budget_check",
    "estimate_pattern",
    "parse_patterns",
    "render_markdown",
    "save_report",
]
