"""`edgefuse export` follows the profile, refuses foreign formats, and exits non-zero when one is missing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from edgefuse.cli import main
from edgefuse.export.report import ExportReport, FormatResult

pytest.importorskip("onnx")


def test_a_format_no_backend_runs_is_refused_before_anything_is_written(
    reference_ckpt, tmp_path, capsys
) -> None:  # type: ignore[no-untyped-def]
    code = main(
        [
            "export",
            str(reference_ckpt),
            "--profile",
            "google/pixel-8",
            "--format",
            "coreml",
            "--out",
            str(tmp_path / "a"),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "no backend of profile 'google/pixel-8'" in err
    assert "['litert']" in err
    assert "--any-format" in err
    assert not (tmp_path / "a").exists()


@pytest.mark.backend("onnxruntime")
def test_all_means_the_profiles_formats_and_the_choice_is_recorded(reference_ckpt, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "x86"
    assert (
        main(
            [
                "export",
                str(reference_ckpt),
                "--profile",
                "generic/x86-64",
                "--format",
                "all",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    err = capsys.readouterr().err
    assert "onnx fp32: every format of the profile's backends, run there by onnxruntime" in err
    manifest = json.loads((out / "manifest.json").read_text())  # one format: out is the artifact itself
    assert manifest["selection"]["format"] == "onnx"
    assert manifest["selection"]["backends"] == ["onnxruntime"]
    assert "first precision" in manifest["selection"]["reason"]
    assert not (out / "tflite").exists()


@pytest.mark.parametrize(("allow", "expected"), [(False, 1), (True, 0)])
def test_an_unavailable_format_fails_the_command_unless_allowed(
    reference_ckpt, tmp_path, monkeypatch, capsys, allow: bool, expected: int
) -> None:  # type: ignore[no-untyped-def]
    import edgefuse.export.pipeline as pipeline

    def fake_export(checkpoint, profile, formats, out, **kwargs):  # type: ignore[no-untyped-def]
        assert formats == ["tensorrt", "onnx"]
        results = [
            FormatResult("tensorrt", "unavailable", reason="TensorRT needs the Python package 'tensorrt'"),
            FormatResult("onnx", "ok", folder=Path(out) / "onnx", precision="fp32"),
        ]
        return ExportReport(profile.id, ["audio", "image"], [["audio", "image"]], results)

    monkeypatch.setattr(pipeline, "export", fake_export)
    argv = [
        "export",
        str(reference_ckpt),
        "--profile",
        "nvidia/jetson-orin-nano",
        "--precision",
        "fp32",
        "--out",
        str(tmp_path / "j"),
    ]
    assert main([*argv, *(["--allow-unavailable"] if allow else [])]) == expected
    err = capsys.readouterr().err
    assert "not exported here (unavailable" in err
    assert ("--allow-unavailable keeps 0" in err) is not allow
