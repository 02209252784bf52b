"""The PyTorch reference backend: a checkpoint runs through the split path (encoders -> kernel -> head)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from edgefuse.errors import BackendUnavailableError, CheckpointError
from edgefuse.runtime import InputError, load

pytest.importorskip("torch")


def test_checkpoint_session_matches_the_model(reference_checkpoint: Path, torch_model, rt) -> None:  # type: ignore[no-untyped-def]
    session = load(reference_checkpoint)
    assert session.backend == "torch"
    assert session.manifest.format == "checkpoint"
    assert session.loaded_graphs == ("encoder_audio", "encoder_image", "head")
    inputs = rt.make_inputs(5, seed=3)
    mask = np.array([[1, 1], [1, 0], [0, 1], [1, 0], [0, 1]], bool)
    pred = session.predict(inputs, mask)
    np.testing.assert_allclose(pred.logits, rt.torch_logits(torch_model, inputs, mask), atol=rt.ATOL)
    assert pred.backend == "torch"
    assert pred.present.tolist() == mask.tolist()
    for pattern in rt.PATTERNS:
        x = rt.make_inputs(2, seed=4, modalities=pattern)
        np.testing.assert_allclose(
            session.predict(x).logits, rt.torch_logits(torch_model, x), atol=rt.ATOL, err_msg=str(pattern)
        )


def test_checkpoint_verify_runs_every_pattern(reference_checkpoint: Path) -> None:
    report = load(reference_checkpoint).verify(raise_on_failure=True)
    assert report.passed
    assert [c.pattern for c in report.checks] == [("audio", "image"), ("audio",), ("image",)]
    assert all(c.max_abs is not None and c.max_abs < 1e-5 for c in report.checks)


def test_profile_without_camera_loads_no_image_encoder(reference_checkpoint: Path) -> None:
    session = load(reference_checkpoint, profile="generic/smart-speaker")
    assert session.loaded_graphs == ("encoder_audio", "head")
    with pytest.raises(InputError, match="no sensor providing it"):
        session.predict({"image": np.zeros((1, 1, 8, 8), np.float32)})


def test_checkpoint_only_runs_on_torch(reference_checkpoint: Path) -> None:
    with pytest.raises(BackendUnavailableError) as info:
        load(reference_checkpoint, backend="onnxruntime")
    assert "run on backend 'torch'" in str(info.value)


def test_modified_checkpoint_is_refused(reference_checkpoint: Path, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(reference_checkpoint, tmp_path / "ckpt"))
    weights = copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256"):
        load(copy)
