"""Reports of a robustness grid: the Markdown tables and the heatmap of :class:`~edgefuse.robustness.GridResult`.

Kept apart from the metrics (:mod:`edgefuse.robustness` computes, this module lays out): one-way arrow,
this module reads a ``GridResult`` through its public methods and is imported by it lazily. Definitions of
every metric: docs/metrics.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edgefuse.chance import not_learned_row_message
from edgefuse.modality_sets import format_set, scenario

#: A :class:`edgefuse.robustness.GridResult` (not imported: robustness imports this module, one way).
GridResult = Any

__all__ = ["grid_heatmap", "grid_markdown", "pm"]


def grid_markdown(grid: GridResult) -> str:
    """A Markdown report: the accuracy matrix per method, then the metrics per cell."""
    lines = [
        f"Top-1 accuracy P(S→T) on the {grid.split} split, "
        + (
            f"mean ± std over seeds {grid.seeds}. "
            if len(grid.seeds) > 1
            else f"one seed ({grid.seeds[0]}): no spread. "
        )
        + "Scenario in brackets: same / missing / added / transfer. Metric definitions: docs/metrics.md."
        + (f" Chance level {grid.chance:.3f}." if grid.chance is not None else ""),
        "",
    ]
    for row in grid.not_learned():
        lines += [
            f"**Warning:** {not_learned_row_message(row, grid.split)}.",
            "",
        ]
    for method in grid.methods:
        rows = [s for s in grid.train_sets if grid._seeds_for(method, s)]
        lines += [
            f"### {method}",
            "",
            "| train S \\ test T | " + " | ".join(map(format_set, grid.test_sets)) + " |",
        ]
        lines.append("|---|" + "---|" * len(grid.test_sets))
        for s in rows:
            cells = []
            for t in grid.test_sets:
                c = grid.cell(method, s, t)
                cells.append(f"{pm(c['accuracy'], sign=False)} ({c['scenario']})")
            lines.append(f"| {format_set(s)} | " + " | ".join(cells) + " |")
        lines += [
            "",
            "| S | T | scenario | retention | drop | gap to specialist | added gain |",
            "|---|---|---|---|---|---|---|",
        ]
        for s in rows:
            for t in grid.test_sets:
                if t == s:
                    continue
                c = grid.cell(method, s, t)
                if not c["learned"]:
                    lines.append(
                        f"| {format_set(s)} | {format_set(t)} | {c['scenario']} | did not learn | – | – | – |"
                    )
                    continue
                lines.append(
                    f"| {format_set(s)} | {format_set(t)} | {c['scenario']} | {pm(c['retention'], sign=False)} | {pm(c['drop'])} | "
                    f"{pm(c['gap_to_specialist'])} | {pm(c['added_gain'])} |"
                )
        mr = [(s, grid.mean_retention(method, s)) for s in rows]
        mr = [(s, v) for s, v in mr if v is not None]
        if mr:
            lines += [
                "",
                "Mean retention: " + "; ".join(f"{format_set(s)}: {pm(v, sign=False)}" for s, v in mr),
            ]
        lines.append("")
    imp = grid.all_improvements()
    if imp:
        lines += [
            "### Interventions against their baseline",
            "",
            "| intervention | S | T | scenario | baseline | intervention | factor | verdict | Δ full-modality accuracy |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in imp:
            f = "–" if r["factor"] is None else f"{r['factor']:.2f}x"
            lines.append(
                f"| {r['intervention']} | {r['train']} | {r['test']} | {r['scenario']} ({r['metric']}) | "
                f"{pm(r['baseline_value'])} | {pm(r['intervention_value'])} | {f} | {r['verdict']} | "
                f"{pm(r['full_accuracy_change'])} |"
            )
        lines.append("")
    if grid.corruption is not None:
        lines += [grid.corruption.markdown(), ""]
    return "\n".join(lines + _sweep_lines(grid))


def _sweep_lines(grid: GridResult) -> list[str]:
    """How the jobs ran (``meta["sweep"]``) and the failed cells, if any."""
    sw = grid.meta.get("sweep")
    lines = []
    if sw:
        lines += [
            f"Sweep: executor {sw['executor']}, workers {sw['workers']}, threads {sw['threads']}; "
            f"{sw['jobs']} jobs: {sw['ran']} run, {sw['reused']} reused, {sw['retries']} retried, "
            f"{sw['failed']} failed; {sw['wall_s']:.1f} s wall time.",
            "",
        ]
    if grid.failed:
        lines += ["### Failed cells", "", "| method | S | seed | job | error |", "|---|---|---|---|---|"]
        for f in grid.failed:
            error = str(f.get("error") or "").replace("|", "\\|").replace("\n", " ")[:300]
            lines.append(f"| {f['method']} | {f['train']} | {f['seed']} | {f.get('job')} | {error} |")
        lines.append("")
    return lines


def grid_heatmap(grid: GridResult, path: str | Path) -> Path:
    """Save a heatmap PNG of mean ``P(S→T)`` (one panel per method), cells labelled with the scenario."""
    from edgefuse.plots import pyplot, save_figure

    plt = pyplot()
    import numpy as np

    methods = grid.methods
    tests = grid.test_sets
    ncols = min(len(methods), 5)
    nrows = -(-len(methods) // ncols)
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(1.0 + 1.5 * len(tests) * ncols, 0.9 + (0.7 * len(grid.train_sets) + 1.3) * nrows),
        squeeze=False,
        constrained_layout=True,
    )
    for k, ax in enumerate(axes.flat):
        if k >= len(methods):
            ax.set_visible(False)
            continue
        method = methods[k]
        rows = [s for s in grid.train_sets if grid._seeds_for(method, s)]
        acc = np.array([[grid.cell(method, s, t)["accuracy"]["mean"] for t in tests] for s in rows])
        im = ax.imshow(acc, vmin=0.0, vmax=1.0, cmap="viridis")
        ax.set_xticks(range(len(tests)), [format_set(t) for t in tests], rotation=30, ha="right")
        ax.set_yticks(range(len(rows)), [format_set(s) for s in rows] if k % ncols == 0 else [])
        if k // ncols == nrows - 1:
            ax.set_xlabel("test modalities T")
        if k % ncols == 0:
            ax.set_ylabel("train modalities S")
        ax.set_title(method, fontsize=10)
        for i, s in enumerate(rows):
            for j, t in enumerate(tests):
                color = "black" if acc[i, j] > 0.6 else "white"
                ax.text(
                    j,
                    i,
                    f"{acc[i, j]:.2f}\n{scenario(s, t)}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color=color,
                )
    fig.colorbar(im, ax=axes, shrink=0.6, label="top-1 accuracy")
    fig.suptitle(f"P(S→T) on the {grid.split} split, mean over {len(grid.seeds)} seed(s)")
    return save_figure(fig, path)


def pm(v: Mapping[str, float] | None, sign: bool = True) -> str:
    """``mean ± std``; the mean alone for one seed (a spread of one value is not 0, it is unknown)."""
    if v is None:
        return "–"
    mean = f"{v['mean']:{'+' if sign else ''}.3f}"
    return mean if v.get("n", 2) < 2 else f"{mean} ± {v['std']:.3f}"
