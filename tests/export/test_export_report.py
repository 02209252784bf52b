"""Every requested format gets a result: one failing format never loses the others' artifacts or report.

Also: the CLI's table and exit status for a failed format, and the weights' sha256 recorded for a model
exported from memory. The profile is ``generic/smart-speaker`` (audio only: two graphs, one presence
pattern) to keep each export to a few seconds.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

pytest.importorskip("onnx")

from edgefuse import outputs
from edgefuse.export import export
from edgefuse.export.errors import ExportError, ParityError
from edgefuse.export.report import ExportReport, FormatResult
from edgefuse.manifest import read_manifest

PROFILE = "generic/smart-speaker"
needs_ort = pytest.mark.backend("onnxruntime")


@pytest.fixture
def tflite_crashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The TFLite converter raises what a third-party converter raises: no EdgeFuse error at all."""
    pytest.importorskip("edgefuse.export.formats.tflite")
    from edgefuse.export.formats.tflite import TFLiteExporter

    def crash(self, graph, folder, precision, plan):  # type: ignore[no-untyped-def]
        raise RuntimeError("converter crashed on aten::simulated")

    monkeypatch.setattr(TFLiteExporter, "unavailable_reason", lambda self: None)
    monkeypatch.setattr(TFLiteExporter, "convert", crash)


@needs_ort
def test_a_failing_format_is_reported_and_the_next_one_is_written(  # type: ignore[no-untyped-def]
    reference_ckpt, tmp_path, tflite_crashes, caplog
) -> None:
    from edgefuse.runtime import load

    caplog.set_level(logging.DEBUG, logger="edgefuse.export.pipeline")
    out = tmp_path / "out"
    report = export(
        reference_ckpt, PROFILE, ["tflite", "onnx"], out, precision="fp32"
    )  # the failing one first
    assert [r.format for r in report.results] == ["tflite", "onnx"]
    failed, ok = report.results
    assert (failed.status, failed.error_type, failed.folder) == ("failed", "RuntimeError", None)
    assert failed.reason == "RuntimeError: converter crashed on aten::simulated"
    assert "Traceback" in caplog.text
    assert "converter crashed" in caplog.text
    assert ok.status == "ok"
    assert ok.folder == out / "onnx"
    assert ok.parity_ran
    assert not report.ok
    assert report.failed == [failed]
    # the ok format's artifact is complete and runs; the failed one left nothing behind
    read_manifest(out / "onnx").verify_files()
    with load(out / "onnx") as session:
        assert session.verify().passed
    assert sorted(p.name for p in out.iterdir()) == ["onnx"]
    assert outputs.leftovers(out) == []
    with pytest.raises(
        ExportError, match=r"(?s)1 of 2 format\(s\) failed \(tflite\).*- tflite: RuntimeError"
    ) as info:
        report.raise_for_failures()
    assert not isinstance(info.value, ParityError)
    assert f"written and validated: onnx ({out / 'onnx'})" in str(info.value)


@needs_ort
def test_a_single_format_failing_parity_is_reported_not_raised(  # type: ignore[no-untyped-def]
    reference_ckpt, tmp_path, monkeypatch
) -> None:
    """Parity failures stay recognisable: error_type, the failing comparisons, and ParityError on demand."""
    from edgefuse.export.formats.onnx import OnnxExporter

    real = OnnxExporter.load_runner

    def off_by_one(self, folder, converted, graph):  # type: ignore[no-untyped-def]
        run = real(self, folder, converted, graph)
        if graph.name != "head":
            return run
        return lambda feed: {k: v + 1.0 for k, v in run(feed).items()}

    monkeypatch.setattr(OnnxExporter, "load_runner", off_by_one)
    report = export(reference_ckpt, PROFILE, "onnx", tmp_path / "a", precision="fp32")
    (result,) = report.results
    assert (result.status, result.error_type) == ("failed", "ParityError")
    assert result.reason.startswith(f"ParityError: onnx (fp32) export for {PROFILE}")
    assert result.parity
    assert not any(c["passed"] for c in result.parity)
    assert {c["output"] for c in result.parity} == {"logits"}
    assert not (tmp_path / "a").exists()
    assert outputs.leftovers(tmp_path) == []
    with pytest.raises(ParityError, match="onnx: ParityError") as info:
        report.raise_for_failures()
    assert info.value.failures == result.parity


def test_a_passing_report_does_not_raise() -> None:
    report = ExportReport(
        PROFILE,
        ["audio"],
        [["audio"]],
        [FormatResult("onnx", "ok"), FormatResult("tensorrt", "unavailable", reason="no GPU")],
    )
    assert report.ok
    assert report.failed == []
    report.raise_for_failures()  # unavailable is not a failure
    assert report.result("tensorrt").reason == "no GPU"
    with pytest.raises(KeyError, match="tflite"):
        report.result("tflite")


def test_an_exception_without_a_message_still_names_its_type() -> None:
    result = FormatResult.from_exception("coreml", MemoryError())
    assert (result.status, result.reason, result.error_type) == (
        "failed",
        "MemoryError (no message)",
        "MemoryError",
    )


def test_prepare_errors_still_raise_before_any_work(reference_ckpt, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from edgefuse.export import pipeline

    def never(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("no format may be tried")

    monkeypatch.setattr(pipeline, "_run_format", never)
    with pytest.raises(ExportError, match="did you mean 'onnx'"):
        export(reference_ckpt, PROFILE, ["tflite", "onx"], tmp_path / "x")
    with pytest.raises(ExportError, match="lists precisions"):
        export(reference_ckpt, PROFILE, ["onnx", "tflite"], tmp_path / "x", precision="fp16")
    assert not (tmp_path / "x").exists()


@needs_ort
def test_cli_names_the_failed_format_and_exits_1(  # type: ignore[no-untyped-def]
    reference_ckpt, tmp_path, tflite_crashes, capsys
) -> None:
    from edgefuse.cli import main

    out = tmp_path / "cli"
    base = [
        "export",
        str(reference_ckpt),
        "--profile",
        PROFILE,
        "--precision",
        "fp32",
        "--format",
        "onnx,tflite",
        "--out",
    ]
    assert main([*base, str(out)]) == 1
    captured = capsys.readouterr()
    table = " ".join(captured.out.split())
    assert "onnx" in table
    assert "tflite" in table
    assert "failed" in table
    err = " ".join(captured.err.split())
    assert "tflite export failed: RuntimeError: converter crashed on aten::simulated" in err
    assert "1 of 2 format(s) failed; written and validated: onnx" in err
    read_manifest(out / "onnx").verify_files()
    # --json: every format's row, the same exit status
    assert main([*base, str(tmp_path / "json"), "--json"]) == 1
    rows = {r["format"]: r for r in json.loads(capsys.readouterr().out)["results"]}
    assert (rows["onnx"]["status"], rows["tflite"]["status"]) == ("ok", "failed")
    assert rows["tflite"]["error_type"] == "RuntimeError"
    assert "converter crashed" in rows["tflite"]["note"]


def test_cli_single_unavailable_format_is_an_error(reference_ckpt, tmp_path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    """Unchanged: asking for exactly one format that cannot be converted here exits 2 with the reason."""
    pytest.importorskip("edgefuse.export.formats.tflite")
    from edgefuse.cli import main
    from edgefuse.export.formats.tflite import TFLiteExporter

    monkeypatch.setattr(TFLiteExporter, "unavailable_reason", lambda self: "litert-torch is not installed")
    out = tmp_path / "x"
    assert (
        main(
            [
                "export",
                str(reference_ckpt),
                "--profile",
                PROFILE,
                "--precision",
                "fp32",
                "--format",
                "tflite",
                "--out",
                str(out),
            ]
        )
        == 2
    )
    err = " ".join(capsys.readouterr().err.split())
    assert "BackendUnavailableError: litert-torch is not installed" in err
    assert not out.exists()


@needs_ort
def test_in_memory_model_records_the_checkpoints_weights_sha256(reference_ckpt, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from edgefuse.checkpoint import load_checkpoint, read_checkpoint_info

    model = load_checkpoint(reference_ckpt).model
    export(
        model, PROFILE, "onnx", tmp_path / "memory", monolithic=True, precision="fp32"
    ).raise_for_failures()
    export(
        reference_ckpt, PROFILE, "onnx", tmp_path / "disk", monolithic=True, precision="fp32"
    ).raise_for_failures()
    memory = read_manifest(tmp_path / "memory").data["checkpoint"]
    disk = read_manifest(tmp_path / "disk").data["checkpoint"]
    sha = read_checkpoint_info(reference_ckpt)["weights_sha256"]
    assert memory == {"path": None, "weights_sha256": sha}
    assert disk["weights_sha256"] == sha
    assert disk["path"] is not None
    # and the artifacts themselves agree
    ref_m = np.load(tmp_path / "memory" / "reference.npz")
    ref_d = np.load(tmp_path / "disk" / "reference.npz")
    for key in ref_m.files:
        np.testing.assert_array_equal(ref_m[key], ref_d[key])
