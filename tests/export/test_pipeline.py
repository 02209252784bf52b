"""The export pipeline: ONNX parity for every profile, manifest integrity, bad input, no partial output."""

from __future__ import annotations

import importlib.util
import json
import shutil

import numpy as np
import pytest

pytest.importorskip("onnx")

from edgefuse.errors import BackendUnavailableError, CheckpointError, ProfileError
from edgefuse.export import export, export_cached
from edgefuse.export.errors import ExportError, ExportValidationError
from edgefuse.export.selection import profile_formats
from edgefuse.manifest import ArtifactIntegrityError, ManifestError, read_manifest
from edgefuse.profiles import list_profiles

SUFFIX = {"onnx": ".onnx", "tflite": ".tflite"}
#: The formats whose parity runs end to end: always both cases, each skipped with the reason (never
#: dropped from the list) when the package its runtime or its converter needs is missing.
RUNNABLE = [
    pytest.param("onnx", marks=pytest.mark.backend("onnxruntime")),
    pytest.param(
        "tflite",
        marks=[
            pytest.mark.backend("litert"),
            pytest.mark.skipif(
                importlib.util.find_spec("litert_torch") is None,
                reason="TFLite export needs the Python package 'litert_torch' (pip install 'edgefuse[export]')",
            ),
        ],
    ),
]

#: Every (profile, format) a user can export: the formats the profile's backends run (fp32 parity;
#: profiles without fp32 are skipped: they are covered by their other formats' precision tests).
PAIRS = [
    pytest.param(p.id, fmt.values[0], marks=fmt.marks, id=f"{p.id}-{fmt.values[0]}")
    for p in list_profiles()
    if "fp32" in p.precisions
    for fmt in RUNNABLE
    if fmt.values[0] in profile_formats(p)
]


def _check_report(report, folder, model_modalities, fmt: str = "onnx") -> None:  # type: ignore[no-untyped-def]
    (result,) = report.results
    assert result.status == "ok"
    assert result.parity_ran
    assert all(c["passed"] for c in result.parity)
    assert max(c["max_abs"] for c in result.parity) <= 1e-4
    # Every presence pattern of the profile, at batch 1 and 7, end to end.
    logits = {(c["pattern"], c["batch"]) for c in result.parity if c["output"] == "logits"}
    assert logits == {("+".join(p), b) for p in report.patterns for b in (1, 7)}
    manifest = read_manifest(folder)
    manifest.verify_files()
    assert manifest.modality_names == report.modalities
    assert set(report.modalities) <= set(model_modalities)
    graph_files = {f["path"] for f in manifest.data["files"] if f["role"] != "reference"}
    ext = SUFFIX[fmt]
    assert graph_files == {f"encoder_{m}{ext}" for m in report.modalities} | {f"head{ext}"}
    # Nothing in the folder escapes the manifest's hashes (no external-data side files).
    assert {p.name for p in folder.iterdir()} == {f["path"] for f in manifest.data["files"]} | {
        "manifest.json"
    }


@pytest.mark.parametrize(("profile", "fmt"), PAIRS)
def test_parity_for_every_profile_reference_model(reference_ckpt, tmp_path, profile: str, fmt: str) -> None:  # type: ignore[no-untyped-def]
    report = export(reference_ckpt, profile, fmt, tmp_path / "a", precision="fp32")
    _check_report(report, tmp_path / "a", ["audio", "image"], fmt)


@pytest.mark.parametrize(("profile", "fmt"), PAIRS)
def test_parity_three_modality_model(three_ckpt, tmp_path, profile: str, fmt: str) -> None:  # type: ignore[no-untyped-def]
    report = export(three_ckpt, profile, fmt, tmp_path / "a", precision="fp32")
    _check_report(report, tmp_path / "a", ["audio", "image", "imu"], fmt)


@pytest.mark.backend("onnxruntime")
def test_monolithic_onnx_keeps_nan_out(reference_ckpt, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import onnxruntime as ort

    report = export(reference_ckpt, "generic/x86-64", "onnx", tmp_path / "m", monolithic=True)
    (result,) = report.results
    assert all(c["passed"] for c in result.parity)
    session = ort.InferenceSession(str(tmp_path / "m" / "model.onnx"))
    rng = np.random.default_rng(0)
    audio = rng.standard_normal((3, 1, 32, 61)).astype(np.float32)
    image = np.full((3, 1, 8, 8), np.nan, np.float32)
    presence = np.array([[True, False]] * 3)
    (nan_out,) = session.run(None, {"audio": audio, "image": image, "presence": presence})
    (zero_out,) = session.run(None, {"audio": audio, "image": np.zeros_like(image), "presence": presence})
    assert np.isfinite(nan_out).all()
    np.testing.assert_array_equal(nan_out, zero_out)
    assert read_manifest(tmp_path / "m").layout == "monolithic"


def test_manifest_integrity_detects_tampering(reference_ckpt, tmp_path) -> None:  # type: ignore[no-untyped-def]
    export(reference_ckpt, "generic/dashcam", "onnx", tmp_path / "a", precision="fp32")
    folder = tmp_path / "a"
    data = bytearray((folder / "head.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / "head.onnx").write_bytes(bytes(data))
    with pytest.raises(ArtifactIntegrityError, match=r"head\.onnx has sha256"):
        read_manifest(folder).verify_files()
    shutil.rmtree(folder)
    export(reference_ckpt, "generic/dashcam", "onnx", folder, precision="fp32")
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"][0]["sha256"] = "0" * 64
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactIntegrityError, match="was modified or belongs to another artifact"):
        read_manifest(folder).verify_files()
    manifest["schema_version"] = 99
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ManifestError, match="newer than this EdgeFuse supports"):
        read_manifest(folder)
    (folder / "manifest.json").write_text("{")
    with pytest.raises(ManifestError, match="not valid JSON"):
        read_manifest(folder)


def test_export_cached_reuses_only_an_identical_intact_artifact(reference_ckpt, tmp_path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "cache" / "onnx"
    result, reused = export_cached(reference_ckpt, "generic/dashcam", "onnx", folder)
    assert (result.status, result.folder, reused) == ("ok", folder, False)
    before = (folder / "manifest.json").stat().st_mtime_ns
    result, reused = export_cached(reference_ckpt, "generic/dashcam", "onnx", folder)
    assert (result.status, reused) == ("ok", True)
    assert (folder / "manifest.json").stat().st_mtime_ns == before
    # another profile for the same folder: exported again
    result, reused = export_cached(reference_ckpt, "generic/x86-64", "onnx", folder)
    assert (result.status, reused) == ("ok", False)
    assert read_manifest(folder).data["profile"] == "generic/x86-64"
    # a damaged file: exported again instead of reused
    (folder / "head.onnx").write_bytes(b"broken")
    result, reused = export_cached(reference_ckpt, "generic/x86-64", "onnx", folder)
    assert (result.status, reused) == ("ok", False)
    read_manifest(folder).verify_files()
    # a format that cannot be converted here is reported, not raised
    result, reused = export_cached(reference_ckpt, "nvidia/jetson-orin-nano", "tensorrt", tmp_path / "trt")
    if importlib.util.find_spec("tensorrt") is None:
        assert result.status == "unavailable"
        assert "tensorrt" in (result.reason or "")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"profile": "generic/dashcm"}, ProfileError, "did you mean 'generic/dashcam'"),
        ({"formats": "onx"}, ExportError, "did you mean 'onnx'"),
        ({"precision": "fp61"}, ExportError, "did you mean 'fp16'"),
        ({"precision": "fp16", "profile": "generic/dashcam"}, ExportError, "lists precisions"),
    ],
)
def test_bad_options(reference_ckpt, tmp_path, kwargs, error, match) -> None:  # type: ignore[no-untyped-def]
    args = {"profile": "generic/dashcam", "formats": "onnx", "precision": "fp32", **kwargs}
    with pytest.raises(error, match=match):
        export(reference_ckpt, args.pop("profile"), args.pop("formats"), tmp_path / "x", **args)
    assert not (tmp_path / "x").exists()


def test_profile_without_the_models_modalities(imu_ckpt, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ExportError, match=r"none of the model's modalities \['imu'\]"):
        export(imu_ckpt, "generic/dashcam", "onnx", tmp_path / "x", precision="fp32")


def test_broken_checkpoint_and_existing_output(reference_ckpt, tmp_path) -> None:  # type: ignore[no-untyped-def]
    broken = tmp_path / "broken"
    shutil.copytree(reference_ckpt, broken)
    info = json.loads((broken / "model.json").read_text())
    info["architecture"]["embed_dim"] = 8
    (broken / "model.json").write_text(json.dumps(info))
    with pytest.raises(CheckpointError, match="does not match the architecture"):
        export(broken, "generic/dashcam", "onnx", tmp_path / "x", precision="fp32")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    with pytest.raises(ExportError, match="already exists; pass overwrite=True"):
        export(reference_ckpt, "generic/dashcam", "onnx", tmp_path / "taken", precision="fp32")
    assert (tmp_path / "taken" / "keep.txt").read_text() == "mine"


def test_failure_midway_leaves_nothing(reference_ckpt, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from edgefuse.export.formats.onnx import OnnxExporter

    def broken_inspect(self, folder, converted, graph):  # type: ignore[no-untyped-def]
        raise ExportValidationError("simulated validation failure")

    monkeypatch.setattr(OnnxExporter, "_inspect", broken_inspect)
    report = export(reference_ckpt, "generic/dashcam", "onnx", tmp_path / "out", precision="fp32")
    (result,) = report.results  # a failed format is reported (with its type), not raised
    assert (result.status, result.error_type) == ("failed", "ExportValidationError")
    assert result.reason == "ExportValidationError: simulated validation failure"
    assert not report.ok
    assert list(tmp_path.iterdir()) == []  # neither the artifact nor a temporary folder
    with pytest.raises(ExportError, match="onnx: ExportValidationError: simulated"):
        report.raise_for_failures()


def test_tensorrt_writes_its_onnx_then_reports_what_is_missing(reference_ckpt, tmp_path) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("edgefuse.export.formats.tensorrt")
    from edgefuse.export.formats.tensorrt import TensorRTExporter

    reason = TensorRTExporter().unavailable_reason()
    if reason is None:
        pytest.skip(
            "TensorRT is available here: the engine path is tested in tests/export/test_formats_tensorrt.py"
        )
    with pytest.raises(BackendUnavailableError, match="tensorrt"):
        export(reference_ckpt, "nvidia/jetson-orin-nano", "tensorrt", tmp_path / "trt", precision="fp16")
    manifest = read_manifest(tmp_path / "trt-onnx")
    manifest.verify_files()
    assert manifest.format == "onnx"
    assert "TensorRT" in manifest.data["notes"]["note"]
    assert not (tmp_path / "trt").exists()  # no pretend engine
