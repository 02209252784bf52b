"""int8 through the export pipeline: calibration per presence pattern, accuracy validation, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from edgefuse.data.base import Split
from edgefuse.export import export
from edgefuse.export.errors import CalibrationError, ExportError, ParityError
from edgefuse.export.int8 import Int8Settings, check_drops

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

PROFILE = "generic/smart-speaker"  # LiteRT then ONNX Runtime, int8 first; a microphone only


def _split(n: int, seed: int) -> Split:
    rng = np.random.default_rng(seed)
    return Split(
        {
            "audio": rng.standard_normal((n, 1, 32, 61)).astype(np.float32),
            "image": rng.standard_normal((n, 1, 8, 8)).astype(np.float32),
        },
        rng.integers(0, 10, n).astype(np.int64),
    )


@pytest.fixture(scope="module")
def splits() -> dict[str, Split]:
    return {"train": _split(96, 0), "test": _split(64, 1)}


def _settings(splits, **kwargs) -> Int8Settings:  # type: ignore[no-untyped-def]
    base = {
        "calibration": splits["train"],
        "validation": splits["test"],
        "source": "random:train",
        "max_drop": 100.0,
    }
    return Int8Settings(**{**base, **kwargs})


@pytest.fixture(scope="module")
def int8_onnx(reference_ckpt, splits, tmp_path_factory):  # type: ignore[no-untyped-def]
    out = tmp_path_factory.mktemp("int8") / "dashcam"
    report = export(reference_ckpt, "generic/x86-64", "onnx", out, precision="int8", int8=_settings(splits))
    return report, out


def test_the_int8_artifact_records_what_was_checked(int8_onnx) -> None:  # type: ignore[no-untyped-def]
    report, out = int8_onnx
    (result,) = report.results
    assert (result.status, result.precision) == ("ok", "int8")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["precision"] == "int8"
    record = manifest["int8"]
    patterns = {"+".join(p) for p in report.patterns}
    assert {r["pattern"] for r in record["accuracy"]} == patterns == {"audio+image", "audio", "image"}
    for row in record["accuracy"]:
        assert 0.0 <= row["int8_accuracy"] <= 1.0
        assert row["drop_points"] == pytest.approx(
            100 * (row["fp32_accuracy"] - row["int8_accuracy"]), abs=1e-3
        )
    assert set(record["sqnr_db"]) == {"encoder_audio", "encoder_image", "head"}
    assert all(v is None or v > 10 for v in record["sqnr_db"].values())
    # the head saw every presence pattern in equal shares; each encoder its own modality's rows
    cal = record["calibration"]
    assert sorted(map(tuple, cal["patterns"])) == sorted(tuple(p) for p in report.patterns)
    assert record["settings"]["source"] == "random:train"
    assert record["graphs"] == {"encoder_audio": "int8", "encoder_image": "int8", "head": "int8"}
    assert manifest["reference"]["expected_from"] == "artifact"
    assert manifest["selection"]["precision"] == "int8"


def test_the_int8_artifact_runs_and_verifies_float_in_float_out(int8_onnx, splits) -> None:  # type: ignore[no-untyped-def]
    import edgefuse.runtime as rt

    _, out = int8_onnx
    with rt.load(out) as session:
        assert session.verify().passed
        pred = session.predict({"audio": splits["test"].inputs["audio"][:5]})
        assert pred.logits.dtype == np.float32
        assert pred.logits.shape == (5, 10)
        assert np.isfinite(pred.logits).all()


def test_keep_fp32_leaves_the_head_in_float(reference_ckpt, splits, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import onnx

    report = export(
        reference_ckpt,
        PROFILE,
        "onnx",
        tmp_path / "mixed",
        precision="int8",
        int8=_settings(splits, keep_fp32=("head",)),
    )
    report.raise_for_failures()
    record = json.loads((tmp_path / "mixed" / "manifest.json").read_text())["int8"]
    assert record["graphs"] == {"encoder_audio": "int8", "head": "fp32 (kept in float)"}
    ops = {n.op_type for n in onnx.load(str(tmp_path / "mixed" / "head.onnx")).graph.node}
    assert "QuantizeLinear" not in ops
    ops = {n.op_type for n in onnx.load(str(tmp_path / "mixed" / "encoder_audio.onnx")).graph.node}
    assert "QuantizeLinear" in ops


def test_an_accuracy_drop_fails_the_format_naming_the_pattern(
    reference_ckpt, splits, tmp_path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    from edgefuse.export import int8 as stages

    real = stages.accuracy_per_pattern

    def one_pattern_drops(*args, **kwargs):  # type: ignore[no-untyped-def]
        rows = real(*args, **kwargs)
        rows[-1] = {**rows[-1], "int8_accuracy": rows[-1]["fp32_accuracy"] - 0.05, "drop_points": 5.0}
        return rows

    monkeypatch.setattr(stages, "accuracy_per_pattern", one_pattern_drops)
    report = export(
        reference_ckpt,
        "generic/x86-64",
        "onnx",
        tmp_path / "a",
        precision="int8",
        int8=_settings(splits, max_drop=1.0),
    )
    (result,) = report.results
    assert (result.status, result.error_type) == ("failed", "ParityError")
    assert "pattern image:" in result.reason
    assert "-5.0 points" in result.reason
    assert "--keep-fp32" in result.reason
    assert not (tmp_path / "a").exists()


def test_check_drops_passes_at_the_limit() -> None:
    rows = [{"pattern": "audio", "fp32_accuracy": 0.9, "int8_accuracy": 0.89, "drop_points": 1.0}]
    check_drops(rows, 1.0, "x")
    with pytest.raises(ParityError, match="pattern audio"):
        check_drops(rows, 0.5, "x")


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        ({"calibration": None}, ExportError, r"int8 needs calibration data"),
        ("no-audio", ExportError, r"lacks modalit(y|ies) \['audio'\]"),
        ("nan", CalibrationError, r"audio"),
        ("few", CalibrationError, r"16"),
        ({"keep_fp32": ("encoder_imu",)}, ExportError, r"graphs are \['encoder_audio', 'head'\]"),
    ],
)
def test_bad_calibration_is_refused_before_conversion(
    reference_ckpt, splits, tmp_path, change, error, match
) -> None:  # type: ignore[no-untyped-def]
    train = splits["train"]
    if change == "no-audio":
        change = {"calibration": Split({"image": train.inputs["image"]}, train.labels)}
    elif change == "nan":
        audio = train.inputs["audio"].copy()
        audio[3, 0, 0, 0] = np.nan
        change = {"calibration": Split({**train.inputs, "audio": audio}, train.labels)}
    elif change == "few":
        change = {"calibration": train.subset(np.arange(8))}
    with pytest.raises(error, match=match):
        export(reference_ckpt, PROFILE, "onnx", tmp_path / "x", int8=_settings(splits, **change))
    assert not (tmp_path / "x").exists()


def test_a_method_a_format_lacks_is_refused_before_conversion(reference_ckpt, splits, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from edgefuse.export.quantize import QuantOptions

    with pytest.raises(
        ExportError, match=r"tflite int8: the entropy calibration method.*--calibration-method"
    ):
        export(
            reference_ckpt,
            PROFILE,
            None,
            tmp_path / "x",
            int8=_settings(splits, options=QuantOptions(method="entropy")),
        )
    assert not (tmp_path / "x").exists()


def test_cli_int8_with_calibration_data(reference_ckpt, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from edgefuse.cli import main

    out = tmp_path / "speaker"
    argv = ["export", str(reference_ckpt), "--profile", PROFILE, "--format", "onnx", "--out", str(out)]
    argv += [
        "--calibration",
        "av-digits-synthetic-audio",
        "--calibration-samples",
        "64",
        "--max-int8-drop",
        "100",
    ]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert (
        "onnx int8: requested, run there by onnxruntime; int8: the profile's first precision" in captured.err
    )
    assert "int8 accuracy per presence pattern" in captured.out
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["int8"]["settings"]["source"] == "av-digits-synthetic-audio:train"
    assert manifest["int8"]["settings"]["samples"] == 64
