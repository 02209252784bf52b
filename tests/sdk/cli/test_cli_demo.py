"""``edgefuse demo`` exits 1 when an export fails (parity here), with the report still written.

A sliver of AV-digits (:data:`ROWS` rows per split) and one training epoch keep every step of the demo
real and quick: the models are trained, exported through the real pipeline, run and benchmarked. Only
the PyTorch reference of one export is shifted, so that export fails its parity check for real.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from edgefuse.cli import main

FAILING = ("generic/x86-64", "onnx")
TRT = ("nvidia/jetson-orin-nano", "tensorrt")
ARGS = [
    "--epochs",
    "1",
    "--iters",
    "1",
    "--warmup",
    "0",
    "--no-rss",
    "--audio",
    "synthetic",
    "--profiles",
    "generic/x86-64,nvidia/jetson-orin-nano",
]
ROWS = 40  # rows per split


@pytest.fixture
def small_demo(monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo on the first :data:`ROWS` rows of each split of the synthetic-audio AV-digits."""
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    import edgefuse.demo

    real = edgefuse.demo._load_data

    def small(cfg: Any) -> tuple[Any, dict[str, Any]]:
        data, info = real(cfg)
        rows = np.arange(ROWS)
        splits = {name: split.subset(rows) for name, split in data.splits.items()}
        counts = {name: len(split) for name, split in splits.items()}
        return dataclasses.replace(data, splits=splits, meta={**data.meta, "counts": counts}), info

    monkeypatch.setattr(edgefuse.demo, "_load_data", small)


def _failing_parity(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the :data:`FAILING` export fail parity: its PyTorch reference logits are shifted by 1.0."""
    import edgefuse.export
    import edgefuse.export.pipeline as pipeline

    real_export = edgefuse.export.export_cached
    real_reference = pipeline._torch_reference

    def shifted(model: Any, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = real_reference(model, inputs)
        out["logits"] = out["logits"] + 1.0
        return out

    def export_cached(checkpoint: Any, profile: Any, fmt: str, out: Any, **kwargs: Any) -> Any:
        if (getattr(profile, "id", profile), fmt) != FAILING:
            return real_export(checkpoint, profile, fmt, out, **kwargs)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(pipeline, "_torch_reference", shifted)
            return real_export(checkpoint, profile, fmt, out, **kwargs)

    monkeypatch.setattr(edgefuse.export, "export_cached", export_cached)


def _statuses(report: dict[str, Any]) -> dict[tuple[str, str], str]:
    return {(e["profile"], e["format"]): e["status"] for e in report["exports"]}


def test_a_parity_failure_fails_the_demo_and_the_report_is_written(
    small_demo: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "demo"
    with pytest.MonkeyPatch.context() as patch:
        _failing_parity(patch)
        assert main(["demo", "--out", str(out), *ARGS]) == 1
    report = json.loads((out / "report.json").read_text())
    assert (out / "report.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    statuses = _statuses(report)
    assert statuses[FAILING] == "failed"
    assert statuses[("nvidia/jetson-orin-nano", "onnx")] == "ok"
    if importlib.util.find_spec("tensorrt") is None:
        assert statuses[TRT] == "unavailable"  # reported, and no failure
    failed = next(e for e in report["exports"] if (e["profile"], e["format"]) == FAILING)
    assert failed["reason"].startswith("ParityError: onnx (fp32) export for generic/x86-64: ")
    assert report["failed_exports"] == [
        {"profile": "generic/x86-64", "format": "onnx", "precision": "fp32", "reason": failed["reason"]}
    ]
    err = " ".join(capsys.readouterr().err.split())
    assert "error: generic/x86-64 onnx (fp32) export failed: ParityError: onnx (fp32) export for" in err
    # 1 epoch on 40 rows: the report's chance-level warnings reach the terminal, one line each
    assert report["warnings"], "1 epoch on 40 rows learned; the chance-level warning path went untested"
    for message in report["warnings"]:
        assert f"warning: {' '.join(str(message).split())}" in err
    assert "error: 1 export(s) failed" in err
    assert "tensorrt" not in err  # unavailable is not an error
    # The failed export left no artifact, and nothing ran from it.
    accuracy = {a["profile"]: a for a in report["accuracy"]}
    assert accuracy["generic/x86-64"]["backend"] is None
    assert "no onnx artifact (ParityError" in accuracy["generic/x86-64"]["reason"]
    assert accuracy["nvidia/jetson-orin-nano"]["backend"] == "onnxruntime"

    # The same folder once the export passes: exit 0, the unavailable TensorRT does not fail the demo.
    # --json PATH writes the same report (plus the paths of the written files); the converters' output
    # went to OUT/demo.log.
    assert main(["demo", "--out", str(out), *ARGS, "--json", str(tmp_path / "demo.json")]) == 0
    again = json.loads((out / "report.json").read_text())
    document = json.loads((tmp_path / "demo.json").read_text())
    assert document.pop("paths") == {"json": str(out / "report.json"), "html": str(out / "report.html")}
    assert document == again
    assert (out / "demo.log").is_file()
    assert again["reused_models"] is True
    assert again["failed_exports"] == []
    assert _statuses(again)[FAILING] == "ok"
    assert "failed" not in _statuses(again).values()
