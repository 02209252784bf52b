"""Session: parity with PyTorch under every presence pattern, lazy encoders, typed errors, integrity."""

from __future__ import annotations

import json
import re
import sys
import warnings

import numpy as np
import pytest
from edgefuse.errors import BackendUnavailableError, EdgeFuseError
from edgefuse.manifest import ArtifactIntegrityError, ManifestError, file_entry, read_manifest
from edgefuse.runtime import InputError, Prediction, VerificationError, load
from edgefuse.runtime.errors import BackendStateError


@pytest.fixture(scope="module")
def x86(x86_split):  # type: ignore[no-untyped-def]
    with load(x86_split) as session:
        yield session


# ---- parity -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("batch", [1, 5, 13])
def test_every_pattern_matches_torch(artifact, torch_model, rt, batch) -> None:  # type: ignore[no-untyped-def]
    session = load(artifact)
    for i, pattern in enumerate(rt.PATTERNS):
        if not set(pattern) <= set(session.modalities):
            continue
        inputs = rt.make_inputs(batch, seed=100 * batch + i, modalities=pattern)
        pred = session.predict(inputs)
        expected = rt.torch_logits(torch_model, inputs)
        np.testing.assert_allclose(pred.logits, expected, atol=rt.ATOL, rtol=1e-4, err_msg=str(pattern))
        assert pred.logits.dtype == np.float32
        assert pred.logits.shape == (batch, 10)
        assert pred.present.shape == (batch, len(session.modalities))
        assert (pred.present == np.array([m in pattern for m in session.modalities])).all()
    session.close()


def test_prediction_fields(x86, rt) -> None:  # type: ignore[no-untyped-def]
    pred = x86.predict(rt.make_inputs(3, seed=1))
    assert isinstance(pred, Prediction)
    assert pred.backend == "onnxruntime"
    assert pred.modalities == ("audio", "image")
    np.testing.assert_allclose(pred.probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert pred.probabilities.dtype == np.float32
    assert (pred.label_ids == pred.logits.argmax(axis=1)).all()
    assert pred.labels == [f"digit{i}" for i in pred.label_ids]
    assert pred.present.dtype == np.bool_
    assert pred.present.all()
    with pytest.raises(AttributeError):
        pred.backend = "x"  # type: ignore[misc]


@pytest.mark.parametrize("mask_dtype", [bool, np.uint8])
def test_per_row_mask_matches_torch_and_ignores_absent_data(artifact, torch_model, rt, mask_dtype) -> None:  # type: ignore[no-untyped-def]
    session = load(artifact)
    if session.modalities != ("audio", "image"):
        pytest.skip(f"needs both modalities; this artifact has {session.modalities}")
    mask = np.array([[1, 1], [1, 0], [0, 1], [1, 1], [1, 0], [0, 1], [1, 0]], dtype=mask_dtype)
    inputs = rt.make_inputs(len(mask), seed=7)
    expected = rt.torch_logits(torch_model, inputs, mask.astype(bool))
    dirty = {m: v.copy() for m, v in inputs.items()}
    for j, m in enumerate(("audio", "image")):
        dirty[m][~mask[:, j].astype(bool)] = np.nan  # absent rows hold garbage: never read
    pred = session.predict(dirty, mask)
    np.testing.assert_allclose(pred.logits, expected, atol=rt.ATOL, rtol=1e-4)
    assert np.isfinite(pred.logits).all()
    assert (pred.present == mask.astype(bool)).all()


def test_mask_with_none_column_and_all_true_mask(x86, torch_model, rt) -> None:  # type: ignore[no-untyped-def]
    inputs = rt.make_inputs(4, seed=3, modalities=("audio",))
    mask = np.array([[1, 0]] * 4, dtype=bool)
    pred = x86.predict({"audio": inputs["audio"], "image": None}, mask)
    np.testing.assert_allclose(pred.logits, rt.torch_logits(torch_model, inputs), atol=rt.ATOL, rtol=1e-4)
    both = rt.make_inputs(4, seed=4)
    np.testing.assert_allclose(
        x86.predict(both, np.ones((4, 2), bool)).logits, x86.predict(both).logits, atol=0, rtol=0
    )


# ---- absent encoders are neither loaded nor run ---------------------------------------------------------


def _count_runs(session, graph: str) -> list[int]:  # type: ignore[no-untyped-def]
    backend = session.graph_backend(graph)
    calls = [0]
    original = backend._execute1  # the split session's only way into a backend

    def counting(in_name, x, out_name):  # type: ignore[no-untyped-def]
        calls[0] += 1
        return original(in_name, x, out_name)

    backend._execute1 = counting
    return calls


def test_absent_encoder_is_not_run(x86_split, rt) -> None:  # type: ignore[no-untyped-def]
    with load(x86_split) as session:
        image_runs = _count_runs(session, "encoder_image")
        audio_runs = _count_runs(session, "encoder_audio")
        head_runs = _count_runs(session, "head")
        inputs = rt.make_inputs(3, seed=5)
        session.predict({"audio": inputs["audio"]})
        session.predict({"audio": inputs["audio"], "image": None})
        assert image_runs == [0]
        # Given, but absent in every row of the mask: still not run.
        session.predict(inputs, np.array([[1, 0]] * 3, bool))
        assert image_runs == [0]
        # Present in one row: runs once for the whole batch.
        session.predict(inputs, np.array([[1, 0], [1, 1], [1, 0]], bool))
        assert image_runs == [1]
        assert audio_runs == [4]
        assert head_runs == [4]


def test_smart_speaker_artifact_has_no_image_encoder(speaker_split, torch_model, rt) -> None:  # type: ignore[no-untyped-def]
    session = load(speaker_split)
    assert session.modalities == ("audio",)
    assert session.loaded_graphs == ("encoder_audio", "head")
    assert not (speaker_split / "encoder_image.onnx").exists()
    inputs = rt.make_inputs(2, seed=9, modalities=("audio",))
    np.testing.assert_allclose(
        session.predict(inputs).logits, rt.torch_logits(torch_model, inputs), atol=rt.ATOL, rtol=1e-4
    )
    image = rt.make_inputs(2, seed=9)
    with pytest.raises(InputError, match=r"accepts \['audio'\].*'image' is a modality of the model"):
        session.predict(image)
    assert session.verify().passed


def test_profile_without_camera_does_not_load_image_encoder(x86_split, torch_model, rt) -> None:  # type: ignore[no-untyped-def]
    session = load(x86_split, profile="generic/smart-speaker")
    assert session.profile == "generic/smart-speaker"
    assert session.modalities == ("audio",)
    assert session.loaded_files == ("encoder_audio.onnx", "head.onnx")
    assert session.backend == "onnxruntime"
    # litert comes first for this profile but cannot run ONNX: skipped with the reason, not silently.
    assert session.skipped_backends[0][0] == "litert"
    inputs = rt.make_inputs(3, seed=11, modalities=("audio",))
    np.testing.assert_allclose(
        session.predict(inputs).logits, rt.torch_logits(torch_model, inputs), atol=rt.ATOL, rtol=1e-4
    )
    with pytest.raises(InputError, match=r"'image' is not available.*smart-speaker.*accepts \['audio'\]"):
        session.predict(rt.make_inputs(3, seed=11))
    report = session.verify()
    assert report.passed
    assert [c.passed for c in report.checks] == [None, True, None]  # patterns needing image: skipped


def test_profile_without_any_artifact_modality(speaker_split) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError, match=r"generic/dashcam.*none of the modalities \['audio'\]"):
        load(speaker_split, profile="generic/dashcam")


def test_monolithic_gets_zeros_and_false_presence_for_absent(x86_mono, torch_model, rt) -> None:  # type: ignore[no-untyped-def]
    session = load(x86_mono)
    assert session.loaded_graphs == ("model",)
    model = session.graph_backend("model")
    seen = []
    original = model._run
    model._run = lambda feeds: (seen.append({k: v.copy() for k, v in feeds.items()}), original(feeds))[1]  # type: ignore[method-assign]
    inputs = rt.make_inputs(2, seed=12, modalities=("audio",))
    pred = session.predict(inputs)
    np.testing.assert_allclose(pred.logits, rt.torch_logits(torch_model, inputs), atol=rt.ATOL, rtol=1e-4)
    (feeds,) = seen
    assert (feeds["image"] == 0).all()
    assert feeds["image"].shape == (2, 1, 8, 8)
    assert (feeds["presence"] == np.array([[True, False]] * 2)).all()


# ---- typed input errors --------------------------------------------------------------------------------


def _audio(batch: int = 2, dtype: type = np.float32) -> np.ndarray:
    return np.zeros((batch, 1, 32, 61), dtype=dtype)


@pytest.mark.parametrize(
    ("inputs", "mask", "kwargs", "pattern"),
    [
        ({"audoi": _audio()}, None, {}, r"unknown modality 'audoi' \(did you mean 'audio'\?\).*accepts"),
        ({"text": _audio()}, None, {}, r"unknown modality 'text'; this session accepts \['audio', 'image'\]"),
        ({"audio": np.zeros((1, 32, 61), np.float32)}, None, {}, r"expected \(B, 1, 32, 61\).*x\[None\]"),
        (
            {"audio": np.zeros((2, 1, 32, 60), np.float32)},
            None,
            {},
            r"shape \(2, 1, 32, 60\); expected \(B, 1, 32, 61\)",
        ),
        ({"audio": _audio(dtype=np.float64)}, None, {}, r"float64.*astype\(np.float32\).*never casts"),
        ({"audio": _audio(dtype=np.float16)}, None, {}, r"float16.*takes float32"),
        ({"audio": _audio().tolist()}, None, {}, r"must be a np.ndarray of shape \(B, 1, 32, 61\)"),
        ({"audio": _audio(0)}, None, {}, r"empty batch"),
        ({"audio": None, "image": None}, None, {}, r"every modality is None"),
        ({}, None, {}, r"every modality is None"),
        (
            {"audio": _audio(2), "image": np.zeros((3, 1, 8, 8), np.float32)},
            None,
            {},
            r"different batch sizes",
        ),
        (
            {"audio": _audio()},
            np.ones((2, 3), bool),
            {},
            r"mask has shape \(2, 3\); expected \(2, 2\).*\['audio', 'image'\]",
        ),
        ({"audio": _audio()}, np.ones((3, 2), bool), {}, r"mask has shape \(3, 2\); expected \(2, 2\)"),
        (
            {"audio": _audio()},
            np.ones((2, 2), np.int64),
            {},
            r"mask has dtype int64; it must be bool or uint8",
        ),
        ({"audio": _audio()}, np.ones((2, 2), np.float32), {}, r"mask has dtype float32"),
        ({"audio": _audio()}, [[1, 0], [1, 0]], {}, r"mask must be a np.ndarray"),
        ({"audio": _audio()}, np.full((2, 2), 2, np.uint8), {}, r"only 0 and 1"),
        (
            {"audio": _audio()},
            np.array([[1, 1], [1, 0]], bool),
            {},
            r"'image' is present in row 0 but inputs\['image'\] is None",
        ),
        (
            {"audio": _audio(3)},
            np.array([[1, 0], [0, 0], [0, 0]], bool),
            {},
            r"every modality is absent in rows 1, 2",
        ),
        (
            {"audio": _audio()},
            None,
            {"on_nonfinite": "ignore"},
            r"on_nonfinite must be one of \['error', 'allow'\]",
        ),
        (
            {"audio": _audio()},
            None,
            {"on_all_absent": "zeros"},
            r"on_all_absent must be one of \['error', 'beta'\]",
        ),
    ],
)
def test_typed_input_errors(x86, inputs, mask, kwargs, pattern) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError, match=pattern) as info:
        x86.predict(inputs, mask, **kwargs)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, EdgeFuseError)


def test_inputs_must_be_a_mapping(x86) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError, match="inputs must be a dict"):
        x86.predict([_audio()])  # type: ignore[arg-type]


def test_nonfinite_in_present_row(x86, torch_model, rt) -> None:  # type: ignore[no-untyped-def]
    inputs = rt.make_inputs(4, seed=13)
    inputs["image"][2, 0, 3, 3] = np.inf
    inputs["image"][3, 0, 1, 1] = np.nan
    with pytest.raises(InputError, match=r"inputs\['image'\] has NaN or Inf in present rows 2, 3"):
        x86.predict(inputs)
    # Absent there per the mask: harmless, never read.
    mask = np.array([[1, 1], [1, 1], [1, 0], [1, 0]], bool)
    assert np.isfinite(x86.predict(inputs, mask).logits).all()
    # Explicitly allowed: passes through (the result of those rows is the model's business): PyTorch's
    # logits, NaN where PyTorch gives NaN.
    pred = x86.predict(inputs, on_nonfinite="allow")
    expected = rt.torch_logits(torch_model, inputs)
    assert np.isfinite(pred.logits[:2]).all()
    assert np.isnan(expected[2:]).all()
    np.testing.assert_allclose(pred.logits, expected, atol=rt.ATOL, rtol=1e-4, equal_nan=True)
    # A finite array whose sum overflows is not mistaken for a NaN: it is predicted, and right. The
    # encoder outputs (~1e36) overflow a float32 variance in PyTorch's LayerNorm (NaN logits there),
    # so the reference is the same model in float64; the kernel's LayerNorm stays finite and agrees.
    big = rt.make_inputs(1, seed=1)
    big["audio"][:] = np.float32(3e38)
    pred = x86.predict(big)
    assert pred.present.all()
    np.testing.assert_allclose(pred.logits, _float64_logits(torch_model, big), atol=rt.ATOL, rtol=1e-4)


def _float64_logits(model, inputs: dict[str, np.ndarray]) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Logits of a float64 copy of ``model`` (a reference where float32 intermediates overflow)."""
    import copy

    import torch

    with torch.no_grad():
        wide = copy.deepcopy(model).double()
        return wide({k: torch.from_numpy(v.astype(np.float64)) for k, v in inputs.items()}).numpy()


def test_all_absent_rows_with_beta(artifact, torch_model, rt) -> None:  # type: ignore[no-untyped-def]
    import torch

    x86 = load(artifact)
    inputs = rt.make_inputs(3, seed=14)
    mask = np.array([[1, 1], [0, 0], [1, 0]], bool)
    pred = x86.predict(inputs, mask, on_all_absent="beta")
    with torch.no_grad():
        beta_logits = torch_model.head(torch_model.fusion.norm.bias[None]).numpy()
    np.testing.assert_allclose(pred.logits[1:2], beta_logits, atol=rt.ATOL, rtol=1e-4)
    keep = [0, 2]
    expected = rt.torch_logits(torch_model, {k: v[keep] for k, v in inputs.items()}, mask[keep])
    np.testing.assert_allclose(pred.logits[keep], expected, atol=rt.ATOL, rtol=1e-4)
    assert not pred.present[1].any()
    # Every row empty: no encoder runs at all, the kernel's defined output for each row.
    none = x86.predict({"audio": None, "image": None}, np.zeros((2, 2), bool), on_all_absent="beta")
    np.testing.assert_allclose(none.logits, np.repeat(beta_logits, 2, axis=0), atol=rt.ATOL, rtol=1e-4)


# ---- verify, integrity, schema -------------------------------------------------------------------------


def test_verify_passes(artifact) -> None:  # type: ignore[no-untyped-def]
    session = load(artifact)
    report = session.verify(raise_on_failure=True)
    assert report.passed
    assert report.backend == session.backend
    for check in report.checks:
        assert check.passed
        assert check.max_abs is not None
        assert check.max_abs <= check.atol
    assert json.dumps(report.to_dict())


def _resign(folder, rel: str) -> None:  # type: ignore[no-untyped-def]
    """Rewrite the manifest's entry of ``rel`` after a deliberate change (a tampered but consistent artifact)."""
    path = folder / "manifest.json"
    data = json.loads(path.read_text())
    data["files"] = [file_entry(folder, rel, f["role"]) if f["path"] == rel else f for f in data["files"]]
    path.write_text(json.dumps(data))


def test_verify_detects_a_wrong_reference(x86_split, rt, tmp_path) -> None:  # type: ignore[no-untyped-def]
    folder = rt.copy_artifact(x86_split, tmp_path / "a")
    with np.load(folder / "reference.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["audio/logits"] = arrays["audio/logits"] + 0.5
    np.savez(folder / "reference.npz", **arrays)
    _resign(folder, "reference.npz")
    session = load(folder)
    report = session.verify()
    assert not report.passed
    assert [c.pattern for c in report.failures()] == [("audio",)]
    assert report.failures()[0].max_abs == pytest.approx(0.5, abs=1e-3)
    with pytest.raises(VerificationError, match=r"audio: max abs diff 0.5"):
        session.verify(raise_on_failure=True)
    # Changed after loading, without re-signing: an integrity error, not a parity result.
    np.savez(folder / "reference.npz", **{**arrays, "audio/logits": arrays["audio/logits"] * 2})
    with pytest.raises(ArtifactIntegrityError, match=r"reference.npz"):
        session.verify()


def test_tampered_graph_is_refused_at_load(x86_split, rt, tmp_path) -> None:  # type: ignore[no-untyped-def]
    folder = rt.copy_artifact(x86_split, tmp_path / "a")
    raw = bytearray((folder / "head.onnx").read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    (folder / "head.onnx").write_bytes(bytes(raw))
    with pytest.raises(ArtifactIntegrityError, match=r"head.onnx has sha256"):
        load(folder)
    (folder / "head.onnx").unlink()
    with pytest.raises(ArtifactIntegrityError, match=r"head.onnx is missing"):
        load(folder)


def test_newer_schema_is_refused(x86_split, rt, tmp_path) -> None:  # type: ignore[no-untyped-def]
    folder = rt.copy_artifact(x86_split, tmp_path / "a")
    path = folder / "manifest.json"
    data = json.loads(path.read_text())
    data["schema_version"] = 99
    path.write_text(json.dumps(data))
    with pytest.raises(ManifestError, match=r"schema_version 99, newer than"):
        load(folder)
    with pytest.raises(ManifestError, match=r"not found"):
        load(tmp_path / "nowhere")
    data["schema_version"] = 1
    del data["graphs"]["head"]
    path.write_text(json.dumps(data))
    with pytest.raises(ManifestError, match=r"needs a 'head' graph"):
        load(folder)


# ---- backend choice: explicit order, no fallback outside it ------------------------------------------


def test_backend_recorded_and_order_respected(x86_split, rt) -> None:  # type: ignore[no-untyped-def]
    inputs = rt.make_inputs(1, seed=2)
    session = load(x86_split, backend="onnxruntime")
    assert session.backend == "onnxruntime"
    assert session.predict(inputs).backend == "onnxruntime"
    session = load(x86_split, backend=["tensorrt", "coreml", "onnxruntime"])
    assert session.backend == "onnxruntime"
    assert [name for name, _ in session.skipped_backends] == ["tensorrt", "coreml"]
    assert session.backend_order == ("tensorrt", "coreml", "onnxruntime")
    # Default: the manifest's profile order (generic/x86-64: onnxruntime, torch).
    assert load(x86_split).backend_order == ("onnxruntime", "torch")


def test_no_fallback_outside_the_list(x86_split) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(
        BackendUnavailableError, match=r"(?s)\['coreml'\].*- coreml: .*runs \['coreml'\]"
    ) as info:
        load(x86_split, backend=["coreml"])
    if sys.platform != "darwin":
        assert "macOS" in str(info.value)
    with pytest.raises(
        BackendUnavailableError, match=r"(?s)- litert: .*not 'onnx'.*run on backend 'onnxruntime'"
    ):
        load(x86_split, backend="litert")
    # A profile whose only backend cannot run ONNX: the artifact's own backend runs it, with a warning
    # (an explicit backend= list above stays strict).
    from edgefuse.runtime import BackendFallbackWarning

    with pytest.warns(BackendFallbackWarning, match="backend='onnxruntime'"):
        load(x86_split, profile="generic/smartwatch").close()
    with pytest.raises(InputError, match=r"unknown backend 'onxruntime' \(did you mean 'onnxruntime'\?\)"):
        load(x86_split, backend="onxruntime")


def _with_manifest_profile(x86_split, rt, folder, profile: str):  # type: ignore[no-untyped-def]
    folder = rt.copy_artifact(x86_split, folder)
    path = folder / "manifest.json"
    data = json.loads(path.read_text())
    data["profile"] = profile
    path.write_text(json.dumps(data))
    return folder


@pytest.mark.parametrize(
    ("profile", "why"),
    [
        (
            "acme/fitness-band",
            r"\(unknown device profile id 'acme/fitness-band'; known ids: ",
        ),  # e.g. exported with a custom .toml
        ("../band.toml", r"'\.\./band\.toml' is not a profile id"),  # never read as a path
    ],
)
def test_an_unknown_manifest_profile_is_said_and_noted(x86_split, rt, tmp_path, profile, why) -> None:  # type: ignore[no-untyped-def]
    from edgefuse.runtime.registry import BACKENDS, BackendFallbackWarning, UnknownProfileWarning

    folder = _with_manifest_profile(x86_split, rt, tmp_path / "a", profile)
    with pytest.warns(UnknownProfileWarning) as record:
        session = load(folder)
    (warning,) = [w for w in record if issubclass(w.category, BackendFallbackWarning)]
    message = str(warning.message)
    assert warning.filename == __file__  # points at the caller's load()
    assert message.startswith(
        f"the manifest of {folder} names device profile {profile!r}, which is not known"
    )
    assert re.search(why, message)
    assert f"every backend is allowed, in the default order {list(BACKENDS)}" in message
    assert "Pass profile=" in message
    assert session.notes == (message,)
    assert session.profile is None
    assert session.backend_order == tuple(BACKENDS)
    assert session.backend == "onnxruntime"
    session.close()
    # An explicit profile or backend: nothing to warn about, nothing noted.
    with warnings.catch_warnings():
        warnings.simplefilter("error", BackendFallbackWarning)
        with load(folder, profile="generic/x86-64") as chosen:
            assert chosen.notes == ()
        with load(folder, backend="onnxruntime") as chosen:
            assert chosen.notes == ()


def test_notes_are_empty_for_a_known_profile_and_hold_a_fallback(x86_split) -> None:  # type: ignore[no-untyped-def]
    from edgefuse.runtime import BackendFallbackWarning

    with load(x86_split) as session:
        assert session.notes == ()
    with pytest.warns(BackendFallbackWarning) as record:
        session = load(x86_split, profile="generic/smartwatch")
    (warning,) = record
    assert session.notes == (str(warning.message),)
    session.close()


def test_coreml_artifact_unavailable_off_macos(x86_split, rt, tmp_path) -> None:  # type: ignore[no-untyped-def]
    if sys.platform == "darwin":
        pytest.skip("checks the reason given off macOS")
    folder = rt.copy_artifact(x86_split, tmp_path / "a")
    path = folder / "manifest.json"
    data = json.loads(path.read_text())
    data["format"] = "coreml"
    path.write_text(json.dumps(data))
    with pytest.raises(
        BackendUnavailableError, match=r"(?s)- coreml: backend 'coreml'.*needs macOS; this is linux"
    ):
        load(folder, backend=["onnxruntime", "coreml"])


def test_bad_threads_and_closed_session(x86_split, rt) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError, match="threads must be a positive int"):
        load(x86_split, threads=0)
    session = load(x86_split, threads=1)
    assert session.threads == 1
    assert "onnxruntime" in repr(session)
    session.close()
    session.close()
    with pytest.raises(BackendStateError, match="closed"):
        session.predict(rt.make_inputs(1, seed=0))
    assert isinstance(BackendStateError("x"), EdgeFuseError)


def test_manifest_is_exposed(x86_split) -> None:  # type: ignore[no-untyped-def]
    session = load(x86_split)
    assert session.manifest.data == read_manifest(x86_split).data
    assert session.label_names == [f"digit{i}" for i in range(10)]
    assert session.artifact_modalities == ("audio", "image")
    spec = session.graph_backend("encoder_audio").io_spec()
    assert spec.inputs[0].name == "audio"
    assert spec.inputs[0].shape[1:] == (1, 32, 61)
