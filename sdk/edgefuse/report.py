"""The demo's plots and its self-contained HTML report (tables and PNG plots embedded as data: URIs).

The HTML has no external resource of any kind (no script, font, stylesheet or image fetched), so it
opens from disk, as an e-mail attachment or in an air-gapped lab the same way. It is made in two steps:
:func:`demo_view` turns report.json into a view-model (rows of already formatted text, statuses and
flags: a mapping reads ``train 1000 · val 360``, a tiny number ``1.9×10⁻⁶``, never a Python repr), and
the template ``edgefuse/templates/demo_report.html`` (:mod:`edgefuse.templating`) lays it out, escaping
every value.
"""

from __future__ import annotations

import base64
import math
import numbers
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from edgefuse.chance import not_learned_message, not_learned_row_message
from edgefuse.templating import render_template

__all__ = ["GLOSSARY", "demo_glossary", "demo_view", "fmt_value", "render_demo_html", "write_demo_plots"]

_PATTERN_COLORS = {"audio+image": "#4C72B0", "audio": "#DD8452", "image": "#55A868"}


def _patterns(report: Mapping[str, Any]) -> list[str]:
    return list(report["grid"]["test_sets"])


def write_demo_plots(report: Mapping[str, Any], grid: Any, folder: str | Path) -> dict[str, Path]:
    """Write ``heatmap.png``, ``accuracy.png`` (per profile x pattern), ``corruption.png`` and ``latency.png``.

    The corruption plot only with corruption results, the latency plot only when a profile ran here.
    """
    from edgefuse.plots import pyplot

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    plt = pyplot()
    paths = {"heatmap": grid.heatmap(out / "heatmap.png"), "accuracy": _accuracy_plot(plt, report, out)}
    for name, plot in (("corruption", _corruption_plot), ("latency", _latency_plot)):
        path = plot(plt, report, out)
        if path is not None:
            paths[name] = path
    return paths


def _accuracy_plot(plt: Any, report: Mapping[str, Any], out: Path) -> Path:
    """Accuracy per presence pattern per profile: the artifact here, PyTorch where it cannot run."""
    import numpy as np

    from edgefuse.plots import save_figure

    patterns = _patterns(report)
    acc = report["accuracy"]
    fig, ax = plt.subplots(figsize=(max(6.0, 1.15 * len(acc) + 2), 4.6), constrained_layout=True)
    width = 0.8 / len(patterns)
    x = np.arange(len(acc))
    for k, pattern in enumerate(patterns):
        device = [row["accuracy"].get(pattern, math.nan) for row in acc]
        ref = [row["reference"].get(pattern, math.nan) for row in acc]
        pos = x + (k - (len(patterns) - 1) / 2) * width
        ax.bar(pos, device, width, color=_PATTERN_COLORS.get(pattern), label=f"{pattern} (artifact, here)")
        missing = [r if math.isnan(d) else math.nan for d, r in zip(device, ref, strict=True)]
        ax.bar(pos, missing, width, color="none", edgecolor=_PATTERN_COLORS.get(pattern), hatch="//")
        ax.scatter(
            pos,
            ref,
            marker="_",
            color="black",
            s=120,
            zorder=3,
            label="PyTorch reference" if k == 0 else None,
        )
    ax.set_xticks(x, [row["profile"] for row in acc], rotation=30, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel("top-1 accuracy (test split)")
    ax.set_title(
        "Accuracy per presence pattern per profile (hatched: PyTorch only, artifact not runnable here)"
    )
    ax.legend(fontsize=7, ncols=4, loc="upper center", bbox_to_anchor=(0.5, -0.32))
    return save_figure(fig, out / "accuracy.png")


def _corruption_plot(plt: Any, report: Mapping[str, Any], out: Path) -> Path | None:
    """Accuracy vs severity of one corrupted sensor: fused and each modality alone (None without results)."""
    from edgefuse.plots import save_figure

    corruption = report.get("corruption") or {}
    models = corruption.get("models") or {}
    if not models:
        return None
    kinds = [tuple(k) for k in corruption["kinds"]]
    fig, axes = plt.subplots(
        1, len(kinds), figsize=(4.2 * len(kinds), 3.6), squeeze=False, constrained_layout=True
    )
    for ax, (modality, kind) in zip(axes[0], kinds, strict=True):
        for role, style in (("best", "-"), ("baseline", "--")):
            res = models.get(role)
            if res is None:
                continue
            rows = [c for c in res["curves"] if (c["modality"], c["kind"]) == (modality, kind)]
            x = [0] + [c["severity"] for c in rows]
            ax.plot(
                x,
                [res["clean"]["fused"]] + [c["fused"] for c in rows],
                style,
                color="black",
                marker="o",
                label=f"fused: {role} ({res['label']})",
            )
            if role == "best":
                for m, v in res["clean"]["single"].items():
                    ax.plot(
                        x,
                        [v] + [c["single"][m] for c in rows],
                        ":",
                        marker=".",
                        color=_PATTERN_COLORS.get(m),
                        label=f"{m} alone ({res['label']})",
                    )
        ax.set_title(f"{modality}: {kind}", fontsize=10)
        ax.set_xlabel("severity (0 = clean)")
        ax.set_ylim(0, 1)
    axes[0][0].set_ylabel("top-1 accuracy (test split)")
    axes[0][0].legend(fontsize=7, loc="lower left")
    return save_figure(fig, out / "corruption.png")


def _latency_plot(plt: Any, report: Mapping[str, Any], out: Path) -> Path | None:
    """p50 to p90 measured here next to each target's roofline estimate (None when nothing ran here)."""
    import numpy as np

    from edgefuse.plots import save_figure

    patterns = _patterns(report)
    width = 0.8 / len(patterns)
    bench = [b for b in report["bench"] if b["results"]]
    if not bench:  # nothing ran here (every export failed or none is runnable): no latency plot
        return None
    fig, (ax, ax_est) = plt.subplots(
        1, 2, figsize=(2 * max(6.0, 1.15 * max(1, len(bench)) + 2), 4.8), constrained_layout=True
    )
    x = np.arange(len(bench))
    for k, pattern in enumerate(patterns):
        pos = x + (k - (len(patterns) - 1) / 2) * width
        rows = [next((r for r in b["results"] if r["pattern"] == pattern), None) for b in bench]
        p50 = [r["p50_ms"] if r else math.nan for r in rows]
        p90 = [r["p90_ms"] if r else math.nan for r in rows]
        est = [(r["estimate"].get("ms") if r and r["estimate"].get("ms") else math.nan) for r in rows]
        err = [
            max(0.0, b - a) if not (math.isnan(a) or math.isnan(b)) else 0.0
            for a, b in zip(p50, p90, strict=True)
        ]
        ax.bar(
            pos,
            p50,
            width,
            yerr=[[0] * len(err), err],
            color=_PATTERN_COLORS.get(pattern),
            capsize=2,
            label=f"{pattern}: p50 (bar) to p90",
        )
        ax_est.bar(pos, est, width, color=_PATTERN_COLORS.get(pattern), hatch="//", label=pattern)
    ticks = [f"{b['profile']}\n({b['backend']})" for b in bench]
    for axis, values, title in (
        (ax, [r["p90_ms"] for b in bench for r in b["results"]], "MEASURED on this machine"),
        (
            ax_est,
            [(r.get("estimate") or {}).get("ms") for b in bench for r in b["results"]],
            "roofline ESTIMATE on each profile's target (not measured)",
        ),
    ):
        axis.set_yscale("log")
        positive = [v for v in values if v and v > 0]
        if positive:
            axis.set_ylim(min(positive) / 2, max(positive) * 2)
        axis.set_xticks(x, ticks, rotation=30, ha="right", fontsize=8)
        axis.set_title(title, fontsize=10)
        axis.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.32), ncols=4)
    ax.set_ylabel("latency at batch 1 (ms, log)")
    ax_est.set_ylabel("ESTIMATE at batch 1 (ms, log)")
    return save_figure(fig, out / "latency.png")


# --------------------------------------------------------------------------------------------------
# text: every value on the page is a string made here (no Python repr ever reaches the page)
# --------------------------------------------------------------------------------------------------

_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def fmt_number(value: Any, digits: int = 3) -> str:
    """A number as text: ``digits`` decimals; ``1.9×10⁻⁶`` when that would read 0; ``–`` for None or NaN.

    The scientific form has no hyphen, so a table cell never breaks it across two lines.
    """
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    v = math.nan if value is None else float(value)
    if math.isnan(v) or math.isinf(v):
        return "–" if math.isnan(v) else "∞" if v > 0 else "−∞"
    if v != 0 and abs(v) < 0.5 * 10**-digits:
        mantissa, exponent = f"{v:.1e}".split("e")
        return f"{mantissa}×10{str(int(exponent)).translate(_SUPERSCRIPT)}"
    return f"{v:.{digits}f}"


def fmt_value(value: Any, digits: int = 3) -> str:
    """Any report value as readable text; never a Python repr.

    Numbers by :func:`fmt_number`, ``train 1000 · val 360`` for a mapping, ``a, b`` for a sequence (nested
    ones in brackets), ``–`` for None.
    """
    if value is None or isinstance(value, numbers.Real):
        return fmt_number(value, digits)
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        return " · ".join(f"{fmt_value(k)} {_nested(v, digits)}" for k, v in value.items()) or "–"
    if isinstance(value, (list, tuple, set, frozenset)):
        return ", ".join(_nested(v, digits) for v in value) or "–"
    return str(value)


def _nested(value: Any, digits: int) -> str:
    text = fmt_value(value, digits)
    composite = isinstance(value, Mapping) or (isinstance(value, (list, tuple, set)) and len(value) > 1)
    return f"({text})" if composite else text


# --------------------------------------------------------------------------------------------------
# the view-model: report.json -> rows of already formatted text, statuses and flags
# --------------------------------------------------------------------------------------------------

#: EdgeFuse's definitions of the report's metrics (the full text: docs/metrics.md).
GLOSSARY: dict[str, str] = {
    "P(S→T)": "top-1 accuracy of a model trained with the modalities S and tested with only the modalities T "
    "present (the encoders of the absent ones do not run)",
    "retention": "P(S→T) / P(S→S): the share of its own full accuracy a model keeps when the device has only "
    "T; 1.0 = nothing lost, 0.5 = half of it gone",
    "drop": "P(S→S) − P(S→T) for T a proper subset of S: the accuracy lost when sensors are missing "
    "(× 100 for points); positive = worse with fewer sensors",
    "gap to specialist": "P(S→T) − P(T→T), the specialist being the same recipe and seed trained on T alone: "
    "below 0, one multimodal model deprived of sensors is worse than a model built for those sensors",
    "added gain": "P(S→T) − P(S→S) for T a proper superset of S: what a sensor the model was not trained "
    "with adds; 0 = unused, below 0 = it disturbs the model",
    "improvement factor": "of an intervention against its baseline (same S, T and seeds): baseline drop / "
    "intervention drop when sensors are missing (2.0 = the drop is halved), intervention gain / baseline "
    "gain when sensors are added; shown with the change of full-modality accuracy, the intervention's cost",
    "noise floor": "a drop or gain whose mean over seeds is not above its standard error (std / √n) is "
    "'no measurable drop' (gain): no factor is computed by dividing by it. One seed has no spread: its "
    "values are shown alone",
    "chance level": "the accuracy of always guessing the most frequent class of the split (0.10 for ten "
    "balanced digits). A model at most 5 points above it did not learn: it is flagged at the top of this "
    "report and no retention, drop, gap, gain or factor is computed for it",
    "fusion regret": "best single-modality accuracy of the same model on the same corrupted rows − fused "
    "accuracy: ≤ 0 is good; above 0 the model would do better by ignoring the degraded sensor",
    "corruption retention": "accuracy with a corrupted sensor / clean accuracy of the same model with the "
    "same modalities (1 = unaffected)",
    "parity": "largest |logits − PyTorch logits| of an exported artifact over every presence pattern at "
    "batch 1 and 7 (checked only where the artifact runs)",
}

#: Where the full definitions live (named in report.json and on the page; the page links nowhere outside).
DEFINITIONS_DOC = "docs/metrics.md"

#: What an artifact converted here needs to run (its parity is checked only where it runs).
_NEEDS = {"coreml": "needs macOS", "tensorrt": "needs TensorRT on an NVIDIA GPU"}


def demo_glossary() -> dict[str, str]:
    """Term -> definition for every figure of the demo report (the metrics, then the benchmark's)."""
    from edgefuse.bench import DEFINITIONS

    return {**GLOSSARY, **DEFINITIONS}


def _anchor(term: str) -> str:
    return "g-" + re.sub(r"[^a-z0-9]+", "-", term.lower()).strip("-")


_NUMERIC = re.compile(r"^[~–\-+]?[\d.,]*\d[\d.,e+\-]*(×10[⁻⁰¹²³⁴⁵⁶⁷⁸⁹]+)?( \(.*\))?$|^–$")


def _cell(
    text: Any, tone: str = "", *, strong: bool = False, sub: Any = "", lines: Sequence[Any] = ()
) -> dict:
    """One table cell: text, a tone (``ok``, ``warn``, ``bad``, ``neutral``), bold, a small second line.

    ``lines`` (each ``{"text", "tone"}``) are shown one under the other after the text.
    """
    return {
        "text": fmt_value(text),
        "tone": tone,
        "strong": strong,
        "sub": fmt_value(sub) if sub else "",
        "lines": list(lines),
        "cls": "",
    }


def _table(
    head: Sequence[str | tuple[str, str]], rows: Sequence[Sequence[Any]], left: int = 1
) -> dict[str, Any]:
    """A table of cells (:func:`_cell` or text) under ``head``.

    The first ``left`` columns and every cell that is not a number are left-aligned; numbers are
    right-aligned and never wrapped. A heading ``(text, term)`` (a term of :func:`demo_glossary`), or
    a text that is a metric of :data:`GLOSSARY`, links to its definition.
    """
    body = []
    for row in rows:
        cells = []
        for i, raw in enumerate(row):
            c = raw if isinstance(raw, Mapping) else _cell(raw)
            numeric = i >= left and not (c["strong"] or c["lines"]) and _NUMERIC.match(c["text"])
            cells.append({**c, "cls": "n" if numeric else "l"})
        body.append(cells)
    terms = demo_glossary()
    heads = []
    for i, h in enumerate(head):
        text, term = (h, h) if isinstance(h, str) else h
        linked = term in GLOSSARY or (not isinstance(h, str) and term in terms)
        heads.append(
            {"text": text, "cls": "l" if i < left else "", "anchor": _anchor(term) if linked else ""}
        )
    return {"head": heads, "rows": body}


def _mean(stat: Mapping[str, Any] | None, digits: int = 3) -> str:
    """The mean of a ``{mean, std, n}`` metric (``–`` when undefined)."""
    return fmt_number((stat or {}).get("mean"), digits)


def _img(path: Path | str | None) -> str:
    """A PNG as a ``data:`` URI (the page fetches nothing); empty without the plot."""
    return (
        "" if path is None else "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode()
    )


def _mean_drop(model: Mapping[str, Any], patterns: Sequence[str]) -> float:
    acc = model["test_accuracy"]
    return sum(acc[patterns[0]] - acc[t] for t in patterns[1:]) / max(1, len(patterns) - 1)


def _trained(report: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """Label -> its row of ``trained_models`` (val accuracy, chance, near_chance); empty for old reports."""
    return {row["label"]: row for row in report.get("trained_models") or []}


def _not_learned_view(report: Mapping[str, Any]) -> dict[str, Any]:
    """The warning box: one line per model at chance (validation, then the grid's test rows)."""
    items, seen = [], set()
    for row in report.get("trained_models") or []:
        if row.get("near_chance"):
            seen.add((row["label"], row["train"]))
            what = f"{row['label']} (trained on {row['train']})"
            message = not_learned_message(what, row["accuracy"], row["chance"], row.get("split", "val"))
            items.append(f"{message}; its retention and verdicts are not computed")
    grid = report["grid"]
    for row in report.get("not_learned", grid.get("not_learned")) or []:
        if (row["method"], row["train"]) not in seen:
            items.append(not_learned_row_message(row, grid["split"]))
    warnings = [fmt_value(w) for w in report.get("warnings") or []]
    n = len(items)
    title = "A model did not learn" if n <= 1 else f"{n} models did not learn"
    return {"any": bool(items or warnings), "title": title, "items": items, "warnings": warnings}


def _header_view(report: Mapping[str, Any]) -> dict[str, Any]:
    m, data = report["machine"], report["data"]
    return {
        "line": f"EdgeFuse {fmt_value(report['edgefuse_version'])} · {fmt_value(report['created'])} · measured "
        f"on {fmt_value(m['cpu'])} ({fmt_value(m['cores'])} cores, {fmt_value(m['platform'])})",
        "synthetic": data["audio"] == "synthetic",
        "data_label": fmt_value(data["label"]),
        "data_why": fmt_value(data.get("why") or ""),
        "attribution": fmt_value(data.get("attribution") or ""),
    }


def _cards_view(report: Mapping[str, Any]) -> list[dict[str, str]]:
    patterns, models = _patterns(report), report["models"]
    base, best = models["baseline"], models["best"]
    learned = not (base.get("near_chance") or best.get("near_chance"))
    drops = f"{fmt_number(_mean_drop(base, patterns))} → {fmt_number(_mean_drop(best, patterns))}"
    ok = sum(1 for e in report["exports"] if e["status"] == "ok")
    cards = [
        (fmt_number(best["test_accuracy"][patterns[0]]), f"test accuracy, all present ({best['label']})"),
        (
            drops if learned else "not computed",
            f"mean missing-modality drop: baseline → {best['label']}"
            + ("" if learned else " (a model did not learn: see the warning above)"),
        ),
        (str(len(report["profiles"])), "device profiles"),
        (f"{ok}/{len(report['exports'])}", "exports written (others: reason below)"),
        (str(sum(1 for b in report["bench"] if b["results"])), "profiles benchmarked here"),
        (f"{report['seconds']['total']:.0f} s", "demo run time"),
    ]
    return [{"value": v, "key": fmt_value(k)} for v, k in cards]


def export_status(e: Mapping[str, Any]) -> tuple[str, str]:
    """Status text and tone of an export; converted but never run here (no parity check) is not ``ok``."""
    status = str(e["status"])
    if status == "ok" and not e.get("int8_accuracy") and e.get("parity_passed") is None:
        return (
            f"converted, not run here ({_NEEDS.get(e['format'], 'its runtime is missing here')})",
            "neutral",
        )
    return status, {"ok": "ok", "unavailable": "warn", "failed": "bad"}.get(status, "")


def _summary_view(report: Mapping[str, Any]) -> dict[str, Any]:
    full = _patterns(report)[0]
    bench_by = {b["profile"]: b for b in report["bench"]}
    acc_by = {a["profile"]: a for a in report["accuracy"]}
    rows = []
    for p in report["profiles"]:
        b, a = bench_by.get(p["id"], {}), acc_by.get(p["id"], {})
        exps = [e for e in report["exports"] if e["profile"] == p["id"]]
        lines = []
        for e in exps:
            text, tone = export_status(e)
            lines.append({"text": f"{e['format']} {e['precision']}: {text}", "tone": tone})
        parity = [e["parity_max_abs_logits"] for e in exps if e.get("parity_max_abs_logits") is not None]
        first = b["results"][0] if b.get("results") else {}
        if not first and b.get("estimates"):
            first = {"estimate": next(iter(b["estimates"].values()))}
        present = "+".join(x for x in full.split("+") if x in p["modalities"])
        rows.append(
            [
                _cell(p["id"], strong=True, sub=p["name"]),
                ", ".join(p["modalities"]),
                _cell("", lines=lines) if lines else "–",
                fmt_number(max(parity)) if parity else "–",
                b.get("backend") or "not runnable here",
                fmt_number(a.get("accuracy", {}).get(present)),
                fmt_number(first.get("p50_ms")) if first.get("p50_ms") else "–",
                fmt_number((first.get("estimate") or {}).get("ms"), 4) if first else "–",
            ]
        )
    head = ["profile", "sensors → modalities", "exports", ("parity max |Δ logits|", "parity")]
    head += ["backend used here", "accuracy (every sensor present)", "p50 ms here"]
    head += [("estimate ms on target", "estimate_ms")]
    return _table(head, rows, left=3)


def _learned_cell(row: Mapping[str, Any] | None) -> dict[str, Any]:
    if not row or row.get("near_chance") is None:
        return _cell("–")
    text, tone = ("did not learn", "bad") if row["near_chance"] else ("yes", "ok")
    return _cell(text, tone, sub=f"{fmt_number(row['accuracy'])} vs {fmt_number(row['chance'])}")


def _training_view(report: Mapping[str, Any]) -> dict[str, Any]:
    patterns, models, sel, data = _patterns(report), report["models"], report["selection"], report["data"]
    base, best = models["baseline"], models["best"]
    trained = _trained(report)
    rows = []
    for role, m in (("baseline", base), ("chosen intervention", best)):
        row = trained.get(m["label"]) or m
        drop = "did not learn" if row.get("near_chance") else fmt_number(_mean_drop(m, patterns))
        rows.append(
            [
                _cell(m["label"], strong=True, sub=role),
                *[fmt_number(m["test_accuracy"].get(t)) for t in patterns],
                _cell(drop, "warn" if row.get("near_chance") else ""),
                fmt_number(sel["mean_val_accuracy"].get(m["label"])),
                _learned_cell(trained.get(m["label"])),
            ]
        )
    for label, score in sel["mean_val_accuracy"].items():
        if label not in (base["label"], best["label"]):
            rows.append(
                [
                    _cell(label, sub="candidate"),
                    *["" for _ in patterns],
                    "",
                    fmt_number(score),
                    _learned_cell(trained.get(label)),
                ]
            )
    head = [
        "model",
        *[f"test: {t}" for t in patterns],
        ("mean missing drop (test)", "drop"),
        "selection score (val)",
        ("learned (val vs chance)", "chance level"),
    ]
    chance = next((r["chance"] for r in trained.values() if r.get("chance") is not None), None)
    return {
        "data_name": fmt_value(data["name"]),
        "splits": fmt_value(data.get("counts")),
        "degrade_image": fmt_value(data.get("degrade_image")),
        "rule": fmt_value(sel["rule"]),
        "split": fmt_value(sel["split"]),
        "reused": bool(report.get("reused_models")),
        "chance": fmt_number(chance) if chance is not None else "not recorded",
        "table": _table(head, rows),
    }


def _grid_view(grid: Mapping[str, Any]) -> dict[str, Any]:
    cells = []
    for c in grid["cells"]:
        learned = c.get("learned", True)
        cells.append(
            [
                *(c[k] for k in ("method", "train", "test", "scenario")),
                _mean(c["accuracy"]),
                _mean(c["retention"]) if learned else _cell("did not learn", "warn"),
                _mean(c["drop"]),
                _mean(c.get("gap_to_specialist")),
            ]
        )
    improvements = []
    for r in grid["improvements"]:
        verdict = r.get("verdict") or "–"
        if r.get("factor") is None and "did not learn" in verdict:
            verdict_cell = _cell("did not learn", "warn", sub=verdict)
        else:
            verdict_cell = _cell(verdict)
        improvements.append(
            [
                *(r[k] for k in ("intervention", "train", "test", "scenario")),
                _mean(r["baseline_value"]),
                _mean(r["intervention_value"]),
                verdict_cell,
                _mean(r["full_accuracy_change"]),
            ]
        )
    return {
        "cells": _table(
            ["method", "train S", "test T", "scenario", "P(S→T)", "retention", "drop", "gap to specialist"],
            cells,
            left=4,
        ),
        "improvements": _table(
            [
                *("intervention", "train S", "test T", "scenario"),
                ("baseline drop", "drop"),
                ("intervention drop", "drop"),
                ("improvement", "improvement factor"),
                "Δ full accuracy",
            ],
            improvements,
            left=4,
        ),
    }


def _parity_cell(e: Mapping[str, Any]) -> dict[str, Any]:
    """The export table's validation cell: float parity checks, or the int8 accuracy check."""
    if e["status"] != "ok":
        return _cell("–")
    if e.get("int8_accuracy"):
        worst = max(float(r["drop_points"]) for r in e["int8_accuracy"])
        return _cell(f"int8: accuracy on {len(e['int8_accuracy'])} patterns, worst drop {worst:.2f} points")
    if e.get("parity_passed") is None:
        return _cell("not checked (not run here)", "neutral")
    checks = e.get("parity_checks", 0)
    if e["parity_passed"]:
        return _cell(f"{checks} checks, all passed", "ok")
    return _cell(f"{checks} checks, FAILED", "bad")


def _exports_view(report: Mapping[str, Any]) -> dict[str, Any]:
    rows = []
    for e in report["exports"]:
        text, tone = export_status(e)
        size = e.get("size_bytes")
        rows.append(
            [
                e["profile"],
                e["format"],
                e["precision"],
                _cell(text, tone),
                ("reused" if e.get("reused") else "exported") if e["status"] == "ok" else "–",
                fmt_number(size / 1024, 1) if size else "–",
                _parity_cell(e),
                fmt_number(e.get("parity_max_abs_logits")),
                fmt_number(e.get("fp16_top1_agreement"), 4),
                "; ".join(fmt_value(x) for x in (e.get("reason"), e.get("note")) if x),
            ]
        )
    head: list[str | tuple[str, str]] = [
        "profile",
        "format",
        "precision",
        "status",
        "run",
        "size KiB",
        ("parity vs PyTorch", "parity"),
    ]
    head += [("max |Δ logits|", "parity"), "fp16 top-1 agreement", "reason / note"]
    int8 = [
        [
            e["profile"],
            e["format"],
            r["pattern"],
            fmt_number(r["fp32_accuracy"]),
            fmt_number(r["int8_accuracy"]),
            fmt_number(-r["drop_points"], 2),
            fmt_number(r["top1_agreement"]),
        ]
        for e in report["exports"]
        for r in e.get("int8_accuracy") or []
    ]
    int8_head = [
        "profile",
        "format",
        "pattern",
        "fp32 (PyTorch)",
        "int8 artifact",
        "Δ points",
        "top-1 agreement",
    ]
    return {
        "table": _table(head, rows, left=5),
        "int8": _table(int8_head, int8, left=3) if int8 else None,
    }


def _accuracy_view(report: Mapping[str, Any]) -> dict[str, Any]:
    rows = []
    for a in report["accuracy"]:
        run_here = f"{a['backend']} ({a.get('format')} {a.get('precision')})" if a.get("backend") else "–"
        for t in _patterns(report):
            if t not in a["reference"]:
                continue
            dev, ref = a["accuracy"].get(t), a["reference"][t]
            delta = None if dev is None else dev - ref
            rows.append(
                [
                    a["profile"],
                    t,
                    run_here,
                    fmt_number(dev),
                    fmt_number(ref),
                    fmt_number(delta, 4),
                    a.get("reason") or "",
                ]
            )
    head = ["profile", "present", "artifact run here", "accuracy", "PyTorch", "Δ", "why not run"]
    n = next((a.get("rows") for a in report["accuracy"] if a.get("rows")), None)
    return {"rows": fmt_value(n) if n else "?", "table": _table(head, rows, left=3)}


def _corruption_view(corruption: Mapping[str, Any]) -> dict[str, Any] | None:
    """Fused accuracy, best single modality and fusion regret per model x corruption x severity."""
    rows = []
    for role, res in (corruption.get("models") or {}).items():
        for c in res["curves"]:
            regret = c.get("regret")
            best = c["best_single"]
            rows.append(
                [
                    f"{role} ({res['label']})",
                    f"{c['modality']}: {c['kind']} ({c['domain']})",
                    fmt_value(c["severity"]),
                    fmt_number(c["fused"]),
                    f"{best} {fmt_number(c['single'][best])}",
                    _cell("–")
                    if regret is None
                    else _cell(f"{100 * regret:+.1f} pts", "bad" if regret > 0 else "ok"),
                    fmt_number(c.get("retention")),
                ]
            )
    if not rows:
        return None
    head = [
        "model",
        "corruption",
        "severity",
        "fused",
        "best single",
        "fusion regret",
        "corruption retention",
    ]
    return _table(head, rows, left=2)


def _budget_cell(budget: Any) -> dict[str, Any]:
    """The budget verdicts of one row (pass ok, fail bad, uncertain warn), or ``–`` without budgets."""
    from edgefuse.bench.report import format_cell

    text = format_cell("budget", budget)
    if text == "-":
        return _cell("–")
    return _cell(text, "bad" if "fail" in text else "warn" if "uncertain" in text else "ok")


def _estimate_text(est: Mapping[str, Any], missing: str) -> str:
    return f"~{fmt_number(est['ms'], 4)} ({est.get('bound')}-bound)" if est.get("ms") else missing


def _latency_view(report: Mapping[str, Any]) -> dict[str, Any]:
    rows = []
    for b in report["bench"]:
        if not b["results"]:
            for pattern, est in (b.get("estimates") or {"–": {}}).items():
                rows.append(
                    [
                        *(b["profile"], pattern, f"not runnable here: {fmt_value(b.get('reason'))}"),
                        *["–"] * 9,
                        *(_estimate_text(est, "n/a"), _budget_cell(est.get("budget"))),
                    ]
                )
            continue
        for r in b["results"]:
            est = r.get("estimate") or {}
            rows.append(
                [
                    b["profile"],
                    r["pattern"],
                    f"{b['backend']} ({b['format']} {b['precision']}), {fmt_value(r.get('threads'))} thread(s)",
                    fmt_number(r["load_ms"], 1),
                    *(fmt_number(r[k]) for k in ("first_ms", "p50_ms", "p90_ms", "p99_ms")),
                    "–" if r.get("cv") is None else fmt_number(100 * r["cv"], 1),
                    f"{r['throughput_b1']:,.0f}",
                    f"{r['throughput_b8']:,.0f}",
                    fmt_number(b.get("peak_rss_mb"), 1),
                    _estimate_text(est, fmt_value(est.get("note", "n/a"))),
                    _budget_cell(r.get("budget")),
                ]
            )
    head: list[str | tuple[str, str]] = ["profile", "present", "backend here", ("load ms", "load_ms")]
    head += [("first ms", "first_ms"), *((f"{p} ms", "p50_ms/p90_ms/p99_ms") for p in ("p50", "p90", "p99"))]
    head += [("CV %", "cv"), ("b1 /s", "throughput_b1"), ("b8 /s", "throughput_b8")]
    head += [("peak RSS MiB", "peak_rss_mb"), ("ESTIMATE ms on target", "estimate_ms")]
    head += [("budget (target ESTIMATE)", "budget")]
    return _table(head, rows, left=3)


def _reproduce_view(report: Mapping[str, Any]) -> dict[str, Any]:
    cfg, data = report["config"], report["data"]
    profiles = cfg.get("profiles")
    dataset = "av-digits-synthetic-audio" if data["audio"] == "synthetic" else "av-digits"
    commands = [
        "make demo" if not profiles else "edgefuse demo --profiles " + ",".join(map(str, profiles)),
        f"edgefuse bench {fmt_value(report['checkpoint'])} --profile generic/x86-64",
        f"edgefuse robustness --data {dataset} --degrade-image {fmt_value(data.get('degrade_image'))}",
    ]
    timings = ", ".join(f"{k} {fmt_number(v, 1)} s" for k, v in report["seconds"].items())
    return {"commands": commands, "timings": timings}


def demo_view(report: Mapping[str, Any], plots: Mapping[str, Path | str]) -> dict[str, Any]:
    """The demo report as a view-model for ``templates/demo_report.html``.

    Only text, lists, dicts and flags: every number, mapping and status already formatted (no repr),
    the plots as ``data:`` URIs. The template adds the markup and the fixed prose (captions included).
    """
    return {
        "header": _header_view(report),
        "not_learned": _not_learned_view(report),
        "cards": _cards_view(report),
        "summary": _summary_view(report),
        "training": _training_view(report),
        "grid": _grid_view(report["grid"]),
        "exports": _exports_view(report),
        "accuracy": _accuracy_view(report),
        "corruption": _corruption_view(report.get("corruption") or {}),
        "latency": _latency_view(report),
        "images": {k: _img(plots.get(k)) for k in ("heatmap", "accuracy", "corruption", "latency")},
        "glossary": [{"id": _anchor(k), "term": k, "text": v} for k, v in demo_glossary().items()],
        "definitions_doc": DEFINITIONS_DOC,
        "reproduce": _reproduce_view(report),
    }


def render_demo_html(report: Mapping[str, Any], plots: Mapping[str, Path | str]) -> str:
    """The demo report as one self-contained HTML page (every value escaped, plots embedded).

    :func:`demo_view` rendered by the template ``edgefuse/templates/demo_report.html``.
    """
    return render_template("demo_report.html", demo_view(report, plots))
