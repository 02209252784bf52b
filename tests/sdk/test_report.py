"""The demo report's view-model and template (edgefuse.report, edgefuse.templating): no training, no export.

The report dict is built here directly, shaped like ``edgefuse demo``'s report.json, with a real
``GridResult`` for the robustness part.
"""

from __future__ import annotations

import copy
import html
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from edgefuse.chance import NearChanceWarning
from edgefuse.report import GLOSSARY, demo_view, fmt_number, fmt_value, render_demo_html
from edgefuse.robustness import GridResult
from edgefuse.templating import TemplateError, render_template

AI, A, IM = ("audio", "image"), ("audio",), ("image",)
PATTERNS = ["audio+image", "audio", "image"]
EVIL = "<script>alert('x')</script>"


def _grid(moddrop: float | None) -> dict[str, Any]:
    """A learned baseline and a moddrop row (``moddrop``: its accuracy everywhere, to put it at chance)."""
    scores = {
        ("supervised", AI, 0): {AI: 0.90, A: 0.45, IM: 0.50},
        ("supervised", A, 0): {AI: 0.55, A: 0.60, IM: 0.10},
        ("supervised", IM, 0): {AI: 0.70, A: 0.10, IM: 0.75},
        ("supervised+moddrop", AI, 0): (
            {AI: 0.88, A: 0.70, IM: 0.65} if moddrop is None else dict.fromkeys((AI, A, IM), moddrop)
        ),
    }
    return GridResult(modalities=AI, scores=scores, split="test", chance=0.103).to_dict()


def _export(profile: str, fmt: str, status: str = "ok", **kw: Any) -> dict[str, Any]:
    row = {"profile": profile, "format": fmt, "precision": "fp32", "status": status, "reason": None}
    row |= {"note": None, "folder": None, "reused": False, "parity_checks": 0, "parity_passed": None}
    row |= {"parity_max_abs_logits": None, "fp16_top1_agreement": None, "int8_accuracy": None}
    row |= {"size_bytes": 12345 if status == "ok" else None}
    return row | kw


def make_report(*, moddrop: float | None = None, profile: str = "generic/x86-64") -> dict[str, Any]:
    """A demo report; ``moddrop=0.100`` puts the chosen intervention at chance (it did not learn)."""
    near = moddrop is not None
    val = {"supervised": 0.86, "supervised+moddrop": 0.100 if near else 0.84}
    trained = [
        {"label": k, "train": "audio+image", "split": "val", "accuracy": v, "chance": 0.103}
        | {"near_chance": v - 0.103 <= 0.05}
        for k, v in val.items()
    ]
    grid = _grid(moddrop)
    best_acc = (
        dict.fromkeys(PATTERNS, moddrop) if near else {"audio+image": 0.88, "audio": 0.7, "image": 0.65}
    )
    result = {"pattern": "audio+image", "load_ms": 12.5, "first_ms": 0.9, "p50_ms": 0.21, "p90_ms": 0.25}
    result |= {"p99_ms": 0.4, "cv": 0.031, "throughput_b1": 4500.0, "throughput_b8": 21000.0, "threads": 2}
    result |= {"estimate": {"kind": "estimate", "ms": 0.0123, "bound": "memory"}, "budget": None}
    return {
        "kind": "edgefuse-demo",
        "edgefuse_version": "0.1.0",
        "created": "2026-01-01T00:00:00Z",
        "config": {"profiles": [profile, "apple/iphone-15-pro"], "epochs": 20},
        "machine": {"cpu": "Test CPU", "cores": 2, "platform": "Linux", "python": "3.11"},
        "data": {
            "name": "av-digits",
            "audio": "fsdd",
            "label": "FSDD spoken digits paired by label with 8x8 digit images",
            "attribution": "FSDD (CC BY-SA 4.0)",
            "counts": {"train": 1000, "val": 360, "test": 359},
            "degrade_image": 4,
        },
        "models": {
            "baseline": {
                "label": "supervised",
                "test_accuracy": {"audio+image": 0.9, "audio": 0.45, "image": 0.5},
            }
            | {"chance": 0.103, "near_chance": False},
            "best": {
                "label": "supervised+moddrop",
                "test_accuracy": best_acc,
                "chance": 0.103,
                "near_chance": near,
            },
        },
        "selection": {
            "rule": "highest mean validation accuracy over every presence pattern",
            "split": "val",
            "mean_val_accuracy": {**val, "supervised+masd": 0.80},
        },
        "trained_models": trained,
        "not_learned": grid["not_learned"],
        "warnings": (
            ["supervised S=audio+image did not learn: validation accuracy 0.100 is below chance (0.103, ...)"]
            if near
            else []
        ),
        "reused_models": False,
        "checkpoint": "out/demo/models/supervised+moddrop",
        "grid": grid,
        "profiles": [
            {"id": profile, "name": f"Generic x86-64 {EVIL}", "modalities": ["audio", "image"]},
            {"id": "apple/iphone-15-pro", "name": "iPhone 15 Pro", "modalities": ["audio", "image"]},
        ],
        "exports": [
            _export(profile, "onnx", parity_checks=14, parity_passed=True, parity_max_abs_logits=1.9e-06),
            _export("apple/iphone-15-pro", "coreml", note="Core ML prediction needs macOS"),
            _export("apple/iphone-15-pro", "tflite", "unavailable", reason="ai-edge-litert is not installed"),
        ],
        "failed_exports": [],
        "accuracy": [
            {"profile": profile, "backend": "onnxruntime", "format": "onnx", "precision": "fp32", "rows": 359}
            | {"accuracy": dict.fromkeys(PATTERNS, 0.5), "reference": dict.fromkeys(PATTERNS, 0.5)},
            {"profile": "apple/iphone-15-pro", "backend": None, "reason": "coreml needs macOS"}
            | {"accuracy": {}, "reference": dict.fromkeys(PATTERNS, 0.5)},
        ],
        "corruption": {
            "kinds": [["audio", "noise"]],
            "models": {
                "best": {
                    "label": "supervised+moddrop",
                    "clean": {"fused": 0.88, "single": {"audio": 0.7, "image": 0.65}},
                    "curves": [
                        {"modality": "audio", "kind": "noise", "domain": "features", "severity": 3}
                        | {"fused": 0.6, "single": {"audio": 0.3, "image": 0.65}, "best_single": "image"}
                        | {"regret": 0.05, "retention": 0.68}
                    ],
                }
            },
        },
        "bench": [
            {"profile": profile, "backend": "onnxruntime", "format": "onnx", "precision": "fp32"}
            | {"threads": 2, "peak_rss_mb": None, "results": [result]},
            {"profile": "apple/iphone-15-pro", "backend": None, "reason": "coreml needs macOS", "results": []}
            | {"estimates": {"audio+image": {"ms": 0.004, "bound": "compute", "budget": None}}},
        ],
        "definitions": "docs/metrics.md",
        "seconds": {"data": 1.0, "train": 20.0, "total": 42.0},
    }


@pytest.fixture
def plots(tmp_path: Path) -> dict[str, Path]:
    out = {}
    for name in ("heatmap", "accuracy", "corruption", "latency"):
        out[name] = tmp_path / f"{name}.png"
        out[name].write_bytes(b"\x89PNG\r\n\x1a\n" + name.encode())
    return out


def _strings(view: Any) -> Iterator[str]:
    if isinstance(view, str):
        yield view
    elif isinstance(view, dict):
        for v in view.values():
            yield from _strings(v)
    elif isinstance(view, list):
        for v in view:
            yield from _strings(v)


def _cells(table: dict[str, Any]) -> list[list[dict[str, Any]]]:
    return table["rows"]


def test_values_read_as_text_never_as_reprs(plots: dict[str, Path]) -> None:
    assert fmt_value({"train": 1000, "val": 360, "test": 359}) == "train 1000 · val 360 · test 359"
    assert fmt_value(["audio", "image"]) == "audio, image"
    assert fmt_value({"a": {"x": 1, "y": 0.5}, "b": [1, 2]}) == "a (x 1 · y 0.500) · b (1, 2)"
    assert fmt_value(None) == "–"
    assert fmt_value(np.int64(3)) == "3"
    assert fmt_value(True) == "yes"
    view = demo_view(make_report(), plots)
    assert view["training"]["splits"] == "train 1000 · val 360 · test 359"
    for text in _strings(view):
        assert not re.search(r"[{\[]'|': |\bNone\b|\bnan\b", text), text
    page = render_demo_html(make_report(), plots)
    assert "splits train 1000 · val 360 · test 359" in page
    assert "{&#x27;" not in page
    assert "{'" not in page


def test_small_numbers_never_break_across_lines(plots: dict[str, Path]) -> None:
    assert fmt_number(1.9e-06) == "1.9×10⁻⁶"
    assert fmt_number(-2.5e-12) == "-2.5×10⁻¹²"
    assert fmt_number(0.0004, 3) == "4.0×10⁻⁴"
    assert fmt_number(0.0) == "0.000"
    assert fmt_number(0.1234) == "0.123"
    assert fmt_number(float("nan")) == "–"
    page = render_demo_html(make_report(), plots)
    assert "e-06" not in page
    assert "e-0" not in re.sub(r"data:image/png;base64,[^\"]*", "", page)
    # the parity figure sits in a numeric cell, and numeric cells never wrap
    assert '<td class="n">1.9×10⁻⁶</td>' in page
    assert "td.n{white-space:nowrap}" in page


def test_coreml_converted_but_not_run_is_not_ok(plots: dict[str, Path]) -> None:
    view = demo_view(make_report(), plots)
    rows = {(r[0]["text"], r[1]["text"]): r for r in _cells(view["exports"]["table"])}
    status, parity = rows[("apple/iphone-15-pro", "coreml")][3], rows[("apple/iphone-15-pro", "coreml")][6]
    assert status["text"] == "converted, not run here (needs macOS)"
    assert status["tone"] == "neutral"
    assert parity["tone"] == "neutral"
    assert "0 checks" not in parity["text"]
    onnx = rows[("generic/x86-64", "onnx")]
    assert (onnx[3]["text"], onnx[3]["tone"]) == ("ok", "ok")
    assert onnx[6]["text"] == "14 checks, all passed"
    summary = {r[0]["text"]: r[2]["lines"] for r in _cells(view["summary"])}
    assert summary["apple/iphone-15-pro"][0] == {
        "text": "coreml fp32: converted, not run here (needs macOS)",
        "tone": "neutral",
    }
    page = render_demo_html(make_report(), plots)
    assert '<span class="neutral">converted, not run here (needs macOS)</span>' in page


def test_glossary_in_the_page_and_headings_link_to_it(plots: dict[str, Path]) -> None:
    page = render_demo_html(make_report(), plots)
    assert '<h2 id="definitions">Definitions</h2>' in page
    assert "docs/metrics.md" in page
    for term in (
        "retention",
        "drop",
        "gap to specialist",
        "added gain",
        "improvement factor",
        "noise floor",
        "fusion regret",
        "chance level",
    ):
        assert term in GLOSSARY
        assert f">{html.escape(term)}</dt>" in page, term
    ids = set(re.findall(r'id="([^"]+)"', page))
    anchors = re.findall(r'href="#([^"]+)"', page)
    assert {"g-retention", "g-drop", "g-gap-to-specialist", "g-improvement-factor", "g-fusion-regret"} <= set(
        anchors
    )
    assert set(anchors) <= ids  # every in-page link lands on a definition
    refs = re.findall(r"""(?:src|href)=["']([^"']*)["']""", page)
    assert all(r.startswith(("#", "data:image/png;base64,")) for r in refs)  # nothing outside the page


def test_warning_box_and_verdicts_when_a_model_did_not_learn(plots: dict[str, Path]) -> None:
    report = make_report(moddrop=0.100)
    view = demo_view(report, plots)
    box = view["not_learned"]
    assert box["any"]
    [item] = box["items"]  # the val row of the kept model; the grid's test row of the same model merged
    assert item.startswith("supervised+moddrop (trained on audio+image) did not learn: val accuracy")
    assert "val accuracy 0.100 is below chance (0.103, the most frequent class's share)" in item
    assert item.endswith(
        "train longer (more epochs), check the learning rate and the labels; its retention and verdicts are not computed"
    )
    assert box["warnings"] == report["warnings"]
    page = render_demo_html(report, plots)
    assert page.index('class="banner alarm"') < page.index("Summary per device profile")
    improvements = _cells(view["grid"]["improvements"])
    assert improvements
    for row in improvements:
        assert row[6]["text"] == "did not learn"
        assert "did not learn" in row[6]["sub"]
    cells = [r for r in _cells(view["grid"]["cells"]) if r[0]["text"] == "supervised+moddrop"]
    assert {r[5]["text"] for r in cells} == {"did not learn"}
    training = {r[0]["text"]: r for r in _cells(view["training"]["table"])}
    assert training["supervised+moddrop"][4]["text"] == "did not learn"
    assert training["supervised+moddrop"][-1]["text"] == "did not learn"
    assert training["supervised"][-1]["text"] == "yes"
    assert view["cards"][1]["value"] == "not computed"


def test_no_warning_box_when_every_model_learned(plots: dict[str, Path]) -> None:
    view = demo_view(make_report(), plots)
    assert not view["not_learned"]["any"]
    page = render_demo_html(make_report(), plots)
    assert "banner alarm" not in page
    assert "did not learn" not in page.split('<h2 id="definitions">')[0]


def test_grid_rows_at_chance_without_training_records(plots: dict[str, Path]) -> None:
    """An older report (no trained_models, no warnings): the grid's own not_learned still raises the box."""
    report = make_report(moddrop=0.100)
    for key in ("trained_models", "warnings", "not_learned"):
        del report[key]
    box = demo_view(report, plots)["not_learned"]
    assert box["any"]
    assert box["items"][0].startswith(
        "supervised+moddrop S=audio+image did not learn: test accuracy 0.100 is below"
    )


def test_every_user_string_is_escaped(plots: dict[str, Path]) -> None:
    report = make_report(profile=f"acme/{EVIL}")
    report["data"]["label"] = f"label {EVIL}"
    report["exports"][0]["note"] = EVIL
    report["selection"]["mean_val_accuracy"][EVIL] = 0.5
    page = render_demo_html(report, plots)
    assert "<script" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert page.count("&lt;script&gt;") >= 6


def test_the_page_keeps_its_sections(plots: dict[str, Path]) -> None:
    page = render_demo_html(make_report(), plots)
    assert page.startswith("<!DOCTYPE html>")
    for section in (
        "Summary per device profile",
        "Training: baseline and the chosen intervention",
        "Robustness grid (test split)",
        "Improvement of each intervention over the baseline",
        "Every cell",
        "Exports per profile",
        "Accuracy per presence pattern per profile",
        "Degraded sensors",
        "Fusion regret",
        "Latency per profile",
        "Definitions",
        "Reproduce",
    ):
        assert section in page, section
    assert page.count("<img ") == 4
    assert "edgefuse demo --profiles generic/x86-64,apple/iphone-15-pro" in page
    assert "FSDD (CC BY-SA 4.0)" in page
    # without the optional plots, their figures are left out (and the latency says why)
    fewer = {k: v for k, v in plots.items() if k in ("heatmap", "accuracy")}
    page = render_demo_html(make_report(), fewer)
    assert page.count("<img ") == 2
    assert "No artifact was benchmarked on this machine" in page


def test_an_old_report_json_still_renders(plots: dict[str, Path]) -> None:
    """report.json from before the view-model: definitions as a dict, no chance fields."""
    report = copy.deepcopy(make_report())
    for key in ("trained_models", "warnings", "not_learned"):
        del report[key]
    for m in report["models"].values():
        del m["chance"], m["near_chance"]
    report["definitions"] = {"retention": "P(S->T) / P(S->S)"}
    for c in report["grid"]["cells"]:
        del c["learned"]
    page = render_demo_html(report, plots)
    assert "Chance level</a> of the validation split: not recorded" in page


def test_template_renderer_refuses_non_text_and_missing_values() -> None:
    ok = render_template("demo_report.html", _minimal_view())
    assert ok.startswith("<!DOCTYPE html>")
    bad = _minimal_view()
    bad["header"]["line"] = {"a": 1}  # a dict must never reach the page as its repr
    with pytest.raises(TemplateError, match=r"header\.line"):
        render_template("demo_report.html", bad)
    missing = _minimal_view()
    del missing["cards"]
    with pytest.raises(TemplateError, match="cards"):
        render_template("demo_report.html", missing)


def _minimal_view() -> dict[str, Any]:
    return demo_view(make_report(), dict.fromkeys(("heatmap", "accuracy"), Path(__file__)))  # any file


def test_parser_reports_unclosed_and_stray_tags() -> None:
    from edgefuse.templating import _parse, _render

    with pytest.raises(TemplateError, match="never closed"):
        _parse("{% for x in xs %}{{ x }}")
    for bad in (
        "{% endif %}",
        "{% for x %}{% endfor %}",
        "{% if %}{% endif %}",
        "{% if a %}{% else %}{% else %}",
    ):
        with pytest.raises(TemplateError, match="unexpected"):
            _parse(bad)
    nodes, macros = _parse("{% call nothing %}")
    with pytest.raises(TemplateError, match="no such macro"):
        _render(nodes, {}, macros, [])
    nodes, macros = _parse("{# c #}\n{% macro m %}<b>{{ v }}</b>{% endmacro %}{% call m v=a.b %}")
    assert set(macros) == {"m"}
    out: list[str] = []
    _render(nodes, {"a": {"b": "<i>"}}, macros, out)
    assert "".join(out) == "<b>&lt;i&gt;</b>"


def test_demo_collects_near_chance_warnings_without_printing_them() -> None:
    from edgefuse.demo import _near_chance_warnings

    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        with _near_chance_warnings() as texts:
            warnings.warn(NearChanceWarning("supervised S=audio+image did not learn"), stacklevel=1)
            warnings.warn(NearChanceWarning("supervised S=audio did not learn"), stacklevel=1)
            warnings.warn("something else", UserWarning, stacklevel=1)
    assert texts == ["supervised S=audio+image did not learn", "supervised S=audio did not learn"]
    assert [str(w.message) for w in shown] == ["something else"]  # only the other warning is passed on


def test_demo_records_chance_per_trained_model() -> None:
    from edgefuse.demo import _learned

    class Split:
        labels = np.repeat(np.arange(10), 36)[:359]

    class Data:
        modality_names = ("audio", "image")

        def split(self, name: str) -> Split:
            assert name == "val"
            return Split()

    rows = {
        r["label"]: r
        for r in _learned(
            Data(), {"supervised": {"audio+image": 0.86}, "supervised+moddrop": {"audio+image": 0.1}}
        )
    }
    assert rows["supervised"]["near_chance"] is False
    assert rows["supervised+moddrop"]["near_chance"] is True
    assert rows["supervised+moddrop"]["chance"] == pytest.approx(36 / 359)
    assert rows["supervised+moddrop"]["train"] == "audio+image"


@pytest.mark.slow
def test_a_model_trained_one_epoch_raises_the_warning_box(plots: dict[str, Path]) -> None:
    """The real thing, without the demo: AV-digits with synthetic audio, moddrop, 1 epoch lands at chance."""
    pytest.importorskip("torch")
    from edgefuse.data.avdigits import load_av_digits_synthetic_audio
    from edgefuse.demo import _learned, _near_chance_warnings
    from edgefuse.train import TrainConfig, train

    data = load_av_digits_synthetic_audio(degrade_image=4, seed=0)
    config = TrainConfig(modalities=AI, epochs=1, seed=0, intervention="moddrop")
    with _near_chance_warnings() as texts:
        result = train(data, config)
    assert result.metrics["val_accuracy"] - result.metrics["chance"] <= 0.05
    assert len(texts) == 1
    assert "did not learn" in texts[0]
    report = make_report(moddrop=result.metrics["val_accuracy"])
    report["trained_models"] = _learned(
        data, {"supervised+moddrop": {"audio+image": result.metrics["val_accuracy"]}}
    )
    report["warnings"] = texts
    box = demo_view(report, plots)["not_learned"]
    assert box["any"]
    assert box["items"][0].startswith("supervised+moddrop (trained on audio+image) did not learn")
    assert box["warnings"] == texts
    page = render_demo_html(report, plots)
    assert "did not learn" in page.split("Summary per device profile")[0]
