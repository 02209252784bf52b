"""Rendering of benchmark reports: the table's columns and cells, notes, Markdown, and the saved report.

Pure presentation of the dict :mod:`edgefuse.bench` measures; matplotlib is imported inside
:func:`save_report`. Host measurements and target estimates never share a column or a plot panel.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "COLUMNS",
    "DEFINITIONS",
    "columns",
    "definitions",
    "format_cell",
    "notes",
    "render_markdown",
    "save_report",
    "table_rows",
]

#: One-line definition of each reported figure (printed under the table and in the Markdown).
DEFINITIONS: dict[str, str] = {
    "precision": (
        "numeric precision of the artifact's graphs (fp32, fp16, int8: post-training quantized with "
        "calibration); the PyTorch reference is fp32"
    ),
    "accuracy": (
        "top-1 accuracy (%) on a labelled test split (bench: --data) with only the pattern's modalities "
        "given, run through the same session as the latency"
    ),
    "size_bytes": "bytes of the model files the session loads (graphs only; manifest and reference excluded)",
    "load_ms": "cold load: wall time to build the session (read, verify sha256, create backend sessions)",
    "first_ms": "first inference at batch 1 right after loading (includes lazy backend initialisation)",
    "p50_ms/p90_ms/p99_ms": (
        "warm latency percentiles at batch 1 over --iters calls (timed in 5 blocks) after --warmup calls"
    ),
    "mean_ms": "mean warm latency at batch 1 over the same calls",
    "iqr_ms": "spread: 75th minus 25th percentile of those calls",
    "cv": (
        "spread: coefficient of variation of the 5 block medians (%); above 10% the row is flagged as noisy"
    ),
    "throughput_b1": "samples/s at batch 1: iters / total warm time of those calls",
    "throughput_b8": "samples/s at batch 8: 8 x calls / total time of as many warm batch-8 calls as batch 1",
    "peak_rss_mb": "peak resident set size (VmHWM; ru_maxrss off Linux) of a fresh subprocess that loads and runs it",
    "estimate_ms": (
        "ESTIMATE for the profile's target, not a measurement: calls x per-call overhead + sum over "
        "operations of max(FLOPs / (peak x efficiency), bytes / bandwidth), with the profile's peak and "
        "bandwidth and the backend class's efficiency and overhead (each with its source in the JSON); "
        "operations counted at export (manifest) or from the ONNX graphs"
    ),
    "budget": (
        "the profile's [budgets] against the target ESTIMATE: latency_ms, and memory_mb against the model's "
        "weights + its largest operation's tensors; pass when 2x the estimate fits, fail when half of it "
        "does not, uncertain in between (the estimate's stated margin)"
    ),
}

#: Every column: (result key, title). :func:`columns` leaves out those not measured in a report.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("backend", "backend"),
    ("precision", "precision"),
    ("pattern", "pattern"),
    ("accuracy", "accuracy %"),
    ("size_bytes", "size (KiB)"),
    ("load_ms", "load ms"),
    ("first_ms", "first ms"),
    ("p50_ms", "p50 ms"),
    ("p90_ms", "p90 ms"),
    ("p99_ms", "p99 ms"),
    ("mean_ms", "mean ms"),
    ("iqr_ms", "IQR ms"),
    ("cv", "CV %"),
    ("throughput_b1", "b1 /s"),
    ("throughput_b8", "b8 /s"),
    ("peak_rss_mb", "peak RSS MiB"),
    ("estimate", "target estimate ms"),
    ("budget", "target budget (estimate)"),
)


def columns(report: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The :data:`COLUMNS` of ``report``: ``accuracy`` only when measured, peak RSS unless ``rss`` is off."""
    skip = set()
    if not any(r.get("accuracy") is not None for r in report["results"]):
        skip.add("accuracy")
    if report.get("rss") is False:
        skip.add("peak_rss_mb")
    if not any(
        r.get("budget") and (r["budget"]["latency"] or r["budget"]["memory"]) for r in report["results"]
    ):
        skip.add("budget")
    return [(k, title) for k, title in COLUMNS if k not in skip]


def definitions(report: Mapping[str, Any]) -> dict[str, str]:
    """The report's definitions, less those of columns :func:`columns` leaves out."""
    shown = {k for k, _ in columns(report)}
    hidden = {k for k, _ in COLUMNS} - shown
    return {k: v for k, v in report["definitions"].items() if k not in hidden}


def format_cell(key: str, value: Any) -> str:
    """Text of one table cell."""
    if key == "estimate":
        ms = value.get("ms") if isinstance(value, Mapping) else None
        bound = value.get("bound") if isinstance(value, Mapping) else None
        text = "n/a" if ms is None else f"~{ms:.4f} (estimate{', ' + bound + '-bound' if bound else ''})"
    elif key == "budget":
        text = _budget_cell(value)
    elif value is None:
        text = "-"
    elif key == "cv":
        text = f"{100 * value:.1f}"
    elif key == "size_bytes":
        text = f"{value / 1024:.1f}"
    elif key == "accuracy":
        text = f"{100 * value:.1f}"
    elif key.startswith("throughput"):
        text = f"{value:,.0f}"
    elif isinstance(value, float):
        text = f"{value:.3f}" if value < 100 else f"{value:.1f}"
    else:
        text = str(value)
    return text


def _budget_cell(budget: Any) -> str:
    """``latency pass (~3.1 / 100 ms), memory fail (~150 / 128 MB)``; ``-`` without budgets."""
    if not isinstance(budget, Mapping):
        return "-"
    parts = []
    for key, unit in (("latency", "ms"), ("memory", "MB")):
        verdict = budget.get(key)
        value = budget.get("latency_ms" if key == "latency" else "memory_mb")
        limit = budget.get("latency_budget_ms" if key == "latency" else "memory_budget_mb")
        if verdict is not None:
            parts.append(f"{key} {verdict} (~{value:.3g} / {limit:g} {unit})")
    return ", ".join(parts) or "-"


def table_rows(report: Mapping[str, Any]) -> list[list[str]]:
    """Cells of every result row, in :func:`columns` order."""
    keys = [k for k, _ in columns(report)]
    return [[format_cell(k, r.get(k)) for k in keys] for r in report["results"]]


def notes(report: Mapping[str, Any]) -> list[str]:
    """Notes about unavailable backends and precisions, accuracy data, estimates and RSS scope (deduplicated)."""
    out: list[str] = [
        f"{u['backend']}{' ' + u['precision'] if u.get('precision') else ''} not benchmarked: {u['reason']}"
        for u in report.get("unavailable", [])
    ]
    if report.get("accuracy_data"):
        out.append(f"accuracy measured on {report['accuracy_data']}")
    out += [f"WARNING {w}" for w in report.get("warnings", [])]
    rss = report.get("rss") is not False
    for r in report["results"]:
        for text in (r["estimate"].get("note"), f"peak RSS: {r.get('rss_scope')}" if rss else None):
            if text and text not in out:
                out.append(text)
    return out


def render_markdown(report: Mapping[str, Any]) -> str:
    """The report as a Markdown table followed by the definition of each figure."""
    cols = columns(report)
    head = "| " + " | ".join(title for _, title in cols) + " |"
    sep = "|" + "|".join("---" for _ in cols) + "|"
    lines = [
        f"# Benchmark: {report['artifact']}",
        "",
        f"profile {report.get('profile')}, format {report.get('format')}, precision {report.get('precision')}, "
        f"layout {report.get('layout')}, "
        f"warmup {report['warmup']}, iters {report['iters']}",
        "",
        head,
        sep,
    ]
    lines += ["| " + " | ".join(cells) + " |" for cells in table_rows(report)]
    lines += ["", "## Definitions", ""]
    lines += [f"- **{k}**: {v}" for k, v in definitions(report).items()]
    extra = notes(report)
    if extra:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in extra]
    return "\n".join(lines) + "\n"


def save_report(report: Mapping[str, Any], folder: str | Path) -> dict[str, Path]:
    """Write ``bench.json``, ``bench.md`` and ``latency.png`` (latency per pattern) into ``folder``."""
    from edgefuse.plots import pyplot, save_figure

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "bench.json", "markdown": out / "bench.md", "plot": out / "latency.png"}
    from edgefuse.outputs import write_file

    write_file(paths["json"], json.dumps(report, indent=2, default=str))
    write_file(paths["markdown"], render_markdown(report))
    plt = pyplot()
    results = report["results"]
    labels = [f"{r['backend']} {r.get('precision') or ''}\n{r['pattern']}" for r in results]
    x = np.arange(len(results))
    est = [r["estimate"].get("ms") for r in results]
    panels = 2 if any(e is not None for e in est) else 1
    fig, axes = plt.subplots(
        1,
        panels,
        figsize=(panels * max(4.0, 1.6 * len(results)), 3.8),
        squeeze=False,
        constrained_layout=True,
    )
    ax = axes[0][0]
    width = 0.25
    for k, (key, name) in enumerate((("p50_ms", "p50"), ("p90_ms", "p90"), ("p99_ms", "p99"))):
        ax.bar(x + (k - 1) * width, [r[key] for r in results], width, label=name)
    ax.set_xticks(x, labels)
    ax.set_ylabel("latency at batch 1 (ms)")
    ax.set_title(f"measured on this host: {Path(str(report['artifact'])).name}")
    ax.legend()
    if panels == 2:
        ax2 = axes[0][1]
        ax2.bar(x, [math.nan if e is None else e for e in est], 0.5, color="#888888", hatch="//")
        ax2.set_xticks(x, labels)
        ax2.set_ylabel("ESTIMATE (ms)")
        ax2.set_title(f"roofline ESTIMATE on the target of {report.get('profile')}")
    save_figure(fig, paths["plot"])
    return paths
