"""fp16 TFLite export of a model trained on AV-digits: top-1 agreement with PyTorch >= 99.5% on test."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

pytest.importorskip("litert_torch")
pytest.importorskip("ai_edge_litert")

from edgefuse.cli import main

FSDD = os.environ.get("EDGEFUSE_FSDD")


@pytest.mark.skipif(
    not FSDD or not Path(FSDD).is_dir(),
    reason="needs FSDD: set EDGEFUSE_FSDD (the Makefile does when ../shared/data/fsdd exists)",
)
def test_fp16_tflite_agrees_with_torch_on_av_digits_test(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    ckpt = tmp_path / "ckpt"
    train = [
        "train",
        "--data",
        "av-digits",
        "--degrade-image",
        "4",
        "--epochs",
        "4",
        "--out",
        str(ckpt),
        "--json",
    ]
    assert main(train) == 0
    capsys.readouterr()
    out = tmp_path / "art"
    code = main(
        [
            "export",
            str(ckpt),
            "--profile",
            "google/pixel-8",
            "--format",
            "tflite",
            "--precision",
            "fp16",
            "--out",
            str(out),
            "--json",
        ]
    )
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    (result,) = report["results"]
    assert result["status"] == "ok"
    assert result["fp16_agreement"] >= 0.995
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["precision"] == "fp16"
    assert manifest["notes"]["fp16_top1_agreement"] == result["fp16_agreement"]
