"""The demo's plots and its self-contained HTML report (tables and PNG plots embedded as data: URIs).

The HTML has no external resource of any kind (no script, font, stylesheet or image fetched), so it
opens from disk, as an e-mail attachment or in an air-gapped lab the same way. Every value is escaped.
"""

from __future__ import annotations

import base64
import html
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["render_demo_html", "write_demo_plots"]

_PATTERN_COLORS = {"audio+image": "#4C72B0", "audio": "#DD8452", "image": "#55A868"}


def _patterns(report: Mapping[str, Any]) -> list[str]:
    return list(report["grid"]["test_sets"])


def write_demo_plots(report: Mapping[str, Any], grid: Any, folder: str | Path) -> dict[str, Path]:
    """Write ``heatmap.png``, ``accuracy.png`` (per profile x pattern) and ``latency.png`` into ``folder``."""
    import numpy as np

    from edgefuse.plots import pyplot, save_figure

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    plt = pyplot()
    paths = {"heatmap": grid.heatmap(out / "heatmap.png")}
    patterns = _patterns(report)

    # ---- accuracy per presence pattern per profile ------------------------------------------------
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
    paths["accuracy"] = save_figure(fig, out / "accuracy.png")

    # ---- accuracy vs severity of a corrupted sensor -------------------------------------------------
    corruption = report.get("corruption") or {}
    models = corruption.get("models") or {}
    if models:
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
        paths["corruption"] = save_figure(fig, out / "corruption.png")

    # ---- latency per profile -----------------------------------------------------------------------
    bench = [b for b in report["bench"] if b["results"]]
    if not bench:  # nothing ran here (every export failed or none is runnable): no latency plot
        return paths
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
    paths["latency"] = save_figure(fig, out / "latency.png")
    return paths


# --------------------------------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------------------------------


def _corruption_table(corruption: Mapping[str, Any]) -> str:
    """Fused accuracy, best single modality and fusion regret per model x corruption x severity."""
    rows = []
    for role, res in (corruption.get("models") or {}).items():
        for c in res["curves"]:
            regret = c["regret"]
            color = "#b00020" if regret > 0 else "#1b7f3b"
            rows.append(
                [
                    _e(f"{role} ({res['label']})"),
                    _e(f"{c['modality']}: {c['kind']} ({c['domain']})"),
                    _e(str(c["severity"])),
                    _num(c["fused"]),
                    _e(f"{c['best_single']} {c['single'][c['best_single']]:.3f}"),
                    f"<span style='color:{color}'>{_e(f'{100 * regret:+.1f} pts')}</span>",
                    _num(c["retention"]),
                ]
            )
    if not rows:
        return ""
    return _table(
        ["model", "corruption", "severity", "fused", "best single", "fusion regret", "retention"],
        rows,
        left=2,
    )


def _budget_html(budget: Any) -> str:
    """The budget verdicts of one row (pass green, fail red, uncertain amber), or ``–`` without budgets."""
    from edgefuse.bench.report import format_cell

    text = format_cell("budget", budget)
    if text == "-":
        return "–"
    color = "#b00020" if "fail" in text else "#a86b00" if "uncertain" in text else "#1b7f3b"
    return f"<span style='color:{color}'>{_e(text)}</span>"


_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;margin:0;color:#1d2433;background:#f6f7f9}
main{max-width:1180px;margin:0 auto;padding:24px 28px 60px}
h1{font-size:26px;margin:8px 0 4px}h2{font-size:20px;margin:34px 0 10px;border-bottom:2px solid #dde1e8;padding-bottom:4px}
h3{font-size:16px;margin:20px 0 8px}.sub{color:#5b6478;margin:0 0 14px}
table{border-collapse:collapse;background:#fff;margin:8px 0 14px;font-size:13px;box-shadow:0 1px 2px #0001}
th,td{border:1px solid #dde1e8;padding:5px 9px;text-align:right;vertical-align:top}
th{background:#eef1f6;font-weight:600}td.l,th.l{text-align:left}
tr:nth-child(even) td{background:#fafbfc}
.ok{color:#1a7f37;font-weight:600}.warn{color:#9a6700;font-weight:600}.bad{color:#cf222e;font-weight:600}
.banner{padding:10px 14px;border-radius:6px;margin:12px 0;font-weight:600}
.banner.synthetic{background:#fff4d6;border:1px solid #e3b341}.banner.real{background:#e7f5ea;border:1px solid #8fd19e}
figure{margin:10px 0 18px;background:#fff;padding:10px;box-shadow:0 1px 2px #0001;display:inline-block;max-width:100%}
figure img{max-width:100%;height:auto;display:block}figcaption{font-size:12px;color:#5b6478;margin-top:6px}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin:12px 0}
.card{background:#fff;border-radius:8px;padding:12px 16px;box-shadow:0 1px 3px #0002;min-width:170px}
.card .v{font-size:24px;font-weight:700}.card .k{font-size:12px;color:#5b6478}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px}
pre{background:#fff;border:1px solid #dde1e8;padding:10px;overflow-x:auto}
dl{background:#fff;padding:10px 16px;font-size:13px}dt{font-weight:600;margin-top:6px}dd{margin-left:16px;color:#3a4256}
.small{font-size:12px;color:#5b6478}
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return _e(value)


_NUMERIC = re.compile(r"^[~–\-+]?[\d.,]*\d[\d.,e+\-]*( \(.*\))?$|^–$")


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1) -> str:
    """An HTML table of already-escaped cells.

    The first ``left`` columns and every cell that is not a number are left-aligned; numbers right.
    """

    def cls(i: int, cell: str) -> str:
        return "l" if i < left or not _NUMERIC.match(cell) else ""

    th = "".join(f'<th class="{"l" if i < left else ""}">{_e(h)}</th>' for i, h in enumerate(head))
    body = "".join(
        "<tr>" + "".join(f'<td class="{cls(i, c)}">{c}</td>' for i, c in enumerate(r)) + "</tr>" for r in rows
    )
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _img(path: Path, alt: str, caption: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return (
        f'<figure><img alt="{_e(alt)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{_e(caption)}</figcaption></figure>"
    )


def _status(status: str | None) -> str:
    cls = {"ok": "ok", "unavailable": "warn", "failed": "bad"}.get(str(status), "")
    return f'<span class="{cls}">{_e(status)}</span>'


def _card(value: str, key: str) -> str:
    return f'<div class="card"><div class="v">{value}</div><div class="k">{_e(key)}</div></div>'


def render_demo_html(report: Mapping[str, Any], plots: Mapping[str, Path]) -> str:
    """The demo report as one self-contained HTML page (every value escaped, plots embedded)."""
    data, models, patterns = report["data"], report["models"], _patterns(report)
    base, best = models["baseline"], models["best"]
    full = patterns[0]

    def mean_drop(m: Mapping[str, Any]) -> float:
        acc = m["test_accuracy"]
        return sum(acc[full] - acc[t] for t in patterns[1:]) / max(1, len(patterns) - 1)

    synthetic = data["audio"] == "synthetic"
    banner = (
        f'<div class="banner synthetic">⚠ {_e(data["label"])} ({_e(data.get("why", ""))}). Point the demo at '
        "FSDD with <code>--fsdd PATH</code> or <code>EDGEFUSE_FSDD</code> for real speech.</div>"
        if synthetic
        else f'<div class="banner real">{_e(data["label"])}. {_e(data.get("attribution") or "")}</div>'
    )
    bench_by = {b["profile"]: b for b in report["bench"]}
    acc_by = {a["profile"]: a for a in report["accuracy"]}
    runnable = sum(1 for b in report["bench"] if b["results"])
    cards = "".join(
        [
            _card(f"{best['test_accuracy'][full]:.3f}", f"test accuracy, all present ({best['label']})"),
            _card(
                f"{mean_drop(base):.3f} → {mean_drop(best):.3f}",
                f"mean missing-modality drop: baseline → {best['label']}",
            ),
            _card(f"{len(report['profiles'])}", "device profiles"),
            _card(
                f"{sum(1 for e in report['exports'] if e['status'] == 'ok')}/{len(report['exports'])}",
                "exports written (others: reason below)",
            ),
            _card(f"{runnable}", "profiles benchmarked here"),
            _card(f"{report['seconds']['total']:.0f} s", "demo run time"),
        ]
    )

    # ---- summary per profile ----------------------------------------------------------------------
    summary_rows = []
    for p in report["profiles"]:
        b, a = bench_by.get(p["id"], {}), acc_by.get(p["id"], {})
        exps = [e for e in report["exports"] if e["profile"] == p["id"]]
        exp_txt = "<br>".join(f"{_e(e['format'])} {_e(e['precision'])}: {_status(e['status'])}" for e in exps)
        parity = [e["parity_max_abs_logits"] for e in exps if e.get("parity_max_abs_logits") is not None]
        first = b.get("results", [{}])[0] if b.get("results") else {}
        if not first and b.get("estimates"):
            first = {"estimate": next(iter(b["estimates"].values()))}
        summary_rows.append(
            [
                f"<b>{_e(p['id'])}</b><br><span class='small'>{_e(p['name'])}</span>",
                _e(", ".join(p["modalities"])),
                exp_txt or "–",
                _e(f"{max(parity):.1e}") if parity else "–",
                _e(b.get("backend") or "not runnable here"),
                _num(a.get("accuracy", {}).get("+".join(x for x in full.split("+") if x in p["modalities"]))),
                _num(first.get("p50_ms"), 3) if first.get("p50_ms") else "–",
                _num((first.get("estimate") or {}).get("ms"), 4) if first else "–",
            ]
        )
    summary = _table(
        [
            "profile",
            "sensors → modalities",
            "exports",
            "parity max |Δ logits|",
            "backend used here",
            "accuracy (every sensor present)",
            "p50 ms here",
            "estimate ms on target",
        ],
        summary_rows,
        left=3,
    )

    # ---- models -----------------------------------------------------------------------------------
    sel = report["selection"]
    model_rows = []
    for role, m in (("baseline", base), ("chosen intervention", best)):
        model_rows.append(
            [
                f"{_e(role)}: <b>{_e(m['label'])}</b>",
                *[_num(m["test_accuracy"].get(t)) for t in patterns],
                _num(mean_drop(m)),
                _num(sel["mean_val_accuracy"].get(m["label"])),
            ]
        )
    for label, mv in sel["mean_val_accuracy"].items():
        if label not in (base["label"], best["label"]):
            model_rows.append([f"candidate: {_e(label)}", *["" for _ in patterns], "", _num(mv)])
    models_table = _table(
        ["model", *[f"test: {t}" for t in patterns], "mean missing drop (test)", "selection score (val)"],
        model_rows,
    )

    # ---- robustness -------------------------------------------------------------------------------
    grid = report["grid"]
    cell_rows = [
        [
            _e(c["method"]),
            _e(c["train"]),
            _e(c["test"]),
            _e(c["scenario"]),
            _num(c["accuracy"]["mean"]),
            _num(c["retention"]["mean"]),
            _num(c["drop"]["mean"]),
            _num((c.get("gap_to_specialist") or {}).get("mean")),
        ]
        for c in grid["cells"]
    ]
    cells = _table(
        ["method", "train S", "test T", "scenario", "P(S→T)", "retention", "drop", "gap to specialist"],
        cell_rows,
        left=4,
    )
    imp_rows = [
        [
            _e(r["intervention"]),
            _e(r["train"]),
            _e(r["test"]),
            _e(r["scenario"]),
            _num(r["baseline_value"]["mean"]),
            _num(r["intervention_value"]["mean"]),
            _e(r.get("verdict") or "–"),
            _num(r["full_accuracy_change"]["mean"]),
        ]
        for r in grid["improvements"]
    ]
    improvements = _table(
        [
            "intervention",
            "train S",
            "test T",
            "scenario",
            "baseline drop",
            "intervention drop",
            "improvement",
            "Δ full accuracy",
        ],
        imp_rows,
        left=4,
    )

    # ---- exports ----------------------------------------------------------------------------------
    exp_rows = [
        [
            _e(e["profile"]),
            _e(e["format"]),
            _e(e["precision"]),
            _status(e["status"]),
            _e("reused" if e.get("reused") else "exported") if e["status"] == "ok" else "–",
            _num((e.get("size_bytes") or 0) / 1024, 1) if e.get("size_bytes") else "–",
            _parity_cell(e),
            _num(e.get("parity_max_abs_logits"), 7) if e.get("parity_max_abs_logits") is not None else "–",
            _num(e.get("fp16_top1_agreement"), 4) if e.get("fp16_top1_agreement") is not None else "–",
            _e("; ".join(x for x in (e.get("reason"), e.get("note")) if x) or ""),
        ]
        for e in report["exports"]
    ]
    exports = _table(
        [
            "profile",
            "format",
            "precision",
            "status",
            "run",
            "size KiB",
            "parity vs PyTorch",
            "max |Δ logits|",
            "fp16 top-1 agreement",
            "reason / note",
        ],
        exp_rows,
        left=5,
    )

    int8_rows = [
        [
            _e(e["profile"]),
            _e(e["format"]),
            _e(r["pattern"]),
            _num(r["fp32_accuracy"]),
            _num(r["int8_accuracy"]),
            _num(-r["drop_points"], 2),
            _num(r["top1_agreement"]),
        ]
        for e in report["exports"]
        for r in e.get("int8_accuracy") or []
    ]
    int8_table = (
        _table(
            [
                "profile",
                "format",
                "pattern",
                "fp32 (PyTorch)",
                "int8 artifact",
                "Δ points",
                "top-1 agreement",
            ],
            int8_rows,
            left=3,
        )
        if int8_rows
        else ""
    )

    # ---- accuracy per pattern ---------------------------------------------------------------------
    acc_rows = []
    for a in report["accuracy"]:
        for t in patterns:
            if t not in a["reference"]:
                continue
            dev = a["accuracy"].get(t)
            acc_rows.append(
                [
                    _e(a["profile"]),
                    _e(t),
                    _e(
                        f"{a.get('backend')} ({a.get('format')} {a.get('precision')})"
                        if a.get("backend")
                        else "–"
                    ),
                    _num(dev),
                    _num(a["reference"].get(t)),
                    _num(None if dev is None else dev - a["reference"][t], 4),
                    _e(a.get("reason") or ""),
                ]
            )
    acc_table = _table(
        ["profile", "present", "artifact run here", "accuracy", "PyTorch", "Δ", "why not run"],
        acc_rows,
        left=3,
    )

    # ---- latency ----------------------------------------------------------------------------------
    lat_rows = []
    for b in report["bench"]:
        if not b["results"]:
            for pattern, est in (b.get("estimates") or {"–": {}}).items():
                lat_rows.append(
                    [
                        _e(b["profile"]),
                        _e(pattern),
                        _e(f"not runnable here: {b.get('reason')}"),
                        *["–"] * 9,
                        _e(f"~{est['ms']:.4f} ({est.get('bound')}-bound)" if est.get("ms") else "n/a"),
                        _budget_html(est.get("budget")),
                    ]
                )
            continue
        for r in b["results"]:
            est = r.get("estimate") or {}
            lat_rows.append(
                [
                    _e(b["profile"]),
                    _e(r["pattern"]),
                    _e(f"{b['backend']} ({b['format']} {b['precision']}), {r.get('threads')} thread(s)"),
                    _num(r["load_ms"], 1),
                    _num(r["first_ms"], 3),
                    _num(r["p50_ms"], 3),
                    _num(r["p90_ms"], 3),
                    _num(r["p99_ms"], 3),
                    _e("–" if r.get("cv") is None else f"{100 * r['cv']:.1f}"),
                    _e(f"{r['throughput_b1']:,.0f}"),
                    _e(f"{r['throughput_b8']:,.0f}"),
                    _num(b.get("peak_rss_mb"), 1),
                    _e(
                        f"~{est['ms']:.4f} ({est.get('bound')}-bound)"
                        if est.get("ms")
                        else est.get("note", "n/a")
                    ),
                    _budget_html(r.get("budget")),
                ]
            )
    lat_table = _table(
        [
            "profile",
            "present",
            "backend here",
            "load ms",
            "first ms",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "CV %",
            "b1 /s",
            "b8 /s",
            "peak RSS MiB",
            "ESTIMATE ms on target",
            "budget (target ESTIMATE)",
        ],
        lat_rows,
        left=3,
    )

    corruption_table = _corruption_table(report.get("corruption") or {})
    definitions = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in report["definitions"].items())
    m = report["machine"]
    cfg = report["config"]
    timings = ", ".join(f"{_e(k)} {v:.1f} s" for k, v in report["seconds"].items())
    command = (
        "make demo" if not cfg.get("profiles") else "edgefuse demo --profiles " + ",".join(cfg["profiles"])
    )
    images = "".join(
        [
            _img(
                plots["heatmap"],
                "robustness heatmap",
                "P(S→T) on the test split: one panel per training recipe; rows = train modalities S, "
                "columns = test modalities T, each cell labelled with its scenario.",
            ),
        ]
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>EdgeFuse demo report</title><style>{_CSS}</style></head>
<body><main>
<h1>EdgeFuse demo: AV-digits from training to every device profile</h1>
<p class="sub">EdgeFuse {_e(report["edgefuse_version"])} · {_e(report["created"])} · measured on {_e(m["cpu"])}
({_e(m["cores"])} cores, {_e(m["platform"])})</p>
{banner}
<div class="cards">{cards}</div>

<h2>Summary per device profile</h2>
<p class="sub">Latencies are measured <b>on this machine</b> with each profile's encoders, backend and threads
(capped at this machine's cores); the estimate column is a roofline <b>estimate</b> for the profile's real target,
never a measurement.</p>
{summary}

<h2>Training: baseline and the chosen intervention</h2>
<p class="sub">Data: {_e(data["name"])}, splits {_e(data.get("counts"))}, image degraded to {_e(data.get("degrade_image"))}
PCA components. Intervention chosen by: {_e(sel["rule"])} on the <b>{_e(sel["split"])}</b> split
(the test split is never used to choose).{" Models reused from an earlier run with the same data and recipe." if report.get("reused_models") else ""}</p>
{models_table}

<h2>Robustness grid (test split)</h2>
{images}
<h3>Improvement of each intervention over the baseline</h3>
{improvements}
<h3>Every cell</h3>
{cells}

<h2>Exports per profile</h2>
<p class="sub">Each profile gets the format of each of its backends; parity of the artifact against PyTorch is checked
for every presence pattern the device can produce, at batch 1 and 7.</p>
{exports}
{"<h3>int8 against fp32, per presence pattern (test split)</h3>" if int8_table else ""}
{'<p class="sub">int8 artifacts are validated by accuracy, not a float tolerance: each profile that prefers int8 gets an artifact calibrated on the train split (every presence pattern in equal shares); a drop of more than 1 point on any pattern fails the export.</p>' if int8_table else ""}
{int8_table}

<h2>Accuracy per presence pattern per profile</h2>
<p class="sub">The exported artifact run through the EdgeFuse runtime on the {_e(next((a.get("rows") for a in report["accuracy"] if a.get("rows")), "?"))}
test rows, with only the modalities of the pattern present (the other encoders do not run), next to the PyTorch model.</p>
{_img(plots["accuracy"], "accuracy per presence pattern per profile", "Bars: artifact accuracy measured here; black ticks: PyTorch; hatched: the artifact cannot run here (PyTorch only).")}
{acc_table}

<h2>Degraded sensors: does fusing ever lose to the best sensor alone?</h2>
<p class="sub">Each modality corrupted on the test split at severities 1-5 (edgefuse.data.corruptions), every
modality still present. <b>Fusion regret</b> = best single-modality accuracy of the same model on the same rows −
fused accuracy: ≤ 0 is good, above 0 the model would do better by ignoring the degraded sensor (docs/metrics.md).</p>
{_img(plots["corruption"], "accuracy under corrupted sensors", "Accuracy vs severity of one corrupted modality: fused (black; solid the kept model, dashed the baseline) and each modality alone with the kept model (dotted).") if "corruption" in plots else ""}
{corruption_table}

<h2>Latency per profile</h2>
{_img(plots["latency"], "latency per profile", "Left: p50 at batch 1 measured on this machine (whisker to p90). Right, a separate panel: the roofline ESTIMATE for each profile's target, never a measurement.") if "latency" in plots else '<p class="sub">No artifact was benchmarked on this machine (see the export table).</p>'}
<p class="sub">Budgets: each profile's <code>[budgets]</code> (latency_ms, memory_mb) checked against the
target <b>estimate</b> (memory: the model's weights plus its largest operation's tensors): pass when twice the
estimate fits, fail when half of it does not, uncertain in between. This AV-digits model is tiny; the realistic
workload (EfficientNet-Lite0 + DS-CNN + IMU CNN) is measured per profile by
<code>benchmarks/bench_workload.py</code> (README, "Benchmarks").</p>
{lat_table}

<h2>Definitions</h2>
<dl>{definitions}</dl>

<h2>Reproduce</h2>
<pre>{_e(command)}
edgefuse bench {_e(report["checkpoint"])} --profile generic/x86-64
edgefuse robustness --data {_e("av-digits" if not synthetic else "av-digits-synthetic-audio")} --degrade-image {_e(data.get("degrade_image"))}</pre>
<p class="small">Step timings: {timings}. Report data: report.json next to this file.</p>
</main></body></html>
"""


def _parity_cell(e: dict[str, Any]) -> str:
    """The export table's validation cell: float parity checks, or the int8 accuracy check."""
    if e["status"] != "ok":
        return "–"
    if e.get("int8_accuracy"):
        worst = max(float(r["drop_points"]) for r in e["int8_accuracy"])
        return _e(f"int8: accuracy on {len(e['int8_accuracy'])} patterns, worst drop {worst:.2f} points")
    if e.get("parity_passed") is None:
        return _e(f"{e.get('parity_checks', 0)} checks, not run here")
    return _e(
        f"{e.get('parity_checks', 0)} checks, " + ("all passed" if e.get("parity_passed") else "FAILED")
    )
