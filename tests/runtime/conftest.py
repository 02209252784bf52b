"""Fixtures for runtime tests: artifacts exported once per session from the reference-shaped model.

Exporting needs torch (the runtime itself never does); fixtures that export skip with the reason when
torch or a format's converter package is missing. The TFLite artifact is skipped only when a package it
needs is not installed; a TFLite exporter that is broken (any other import error) or an export that
fails (e.g. parity) fails the tests that use it, never skips them.
"""

from __future__ import annotations

import importlib
import shutil
from pathlib import Path

import numpy as np
import pytest

REFERENCE_SHAPES = {"audio": (1, 32, 61), "image": (1, 8, 8)}
MODALITIES = ("audio", "image")
PATTERNS = (("audio", "image"), ("audio",), ("image",))
ATOL = 1e-4
#: Optional packages whose absence skips the TFLite cases (with the reason); any other error fails them.
TFLITE_PACKAGES = frozenset({"litert_torch", "ai_edge_litert", "tensorflow", "torch"})


def _reference_checkpoint(path: Path) -> Path:
    torch = pytest.importorskip("torch")
    from edgefuse.checkpoint import save_checkpoint
    from edgefuse.models.contract import build_model
    from edgefuse.models.reference import reference_architecture
    from edgefuse.specs import ModalitySpec

    specs = (
        ModalitySpec("audio", REFERENCE_SHAPES["audio"], preprocessing="logmel-v1"),
        ModalitySpec("image", REFERENCE_SHAPES["image"]),
    )
    torch.manual_seed(0)
    model = build_model(reference_architecture(specs, 64), specs, [f"digit{i}" for i in range(10)])
    with torch.no_grad():  # a non-trivial LayerNorm and fusion weights, as after training
        model.fusion.norm.weight.uniform_(0.5, 1.5)
        model.fusion.norm.bias.uniform_(-0.5, 0.5)
        model.fusion.log_weights.copy_(torch.linspace(-0.5, 0.5, len(specs)))
    return save_checkpoint(model.eval(), path)


def _export(ckpt: Path, profile: str, fmt: str, out: Path, **kwargs: object) -> Path:
    """Export one format into ``out``; skip when its converter is not installed, fail when it fails."""
    pytest.importorskip("onnx")
    from edgefuse.errors import BackendUnavailableError
    from edgefuse.export import export

    kwargs.setdefault("precision", "fp32")  # the runtime tests compare with PyTorch to fp32 tolerances
    try:
        report = export(ckpt, profile, fmt, out, **kwargs)
    except BackendUnavailableError as exc:  # a converter package is not installed: said, not hidden
        pytest.skip(f"{fmt} export unavailable here: {exc}")
    report.raise_for_failures()  # a failed export (conversion, parity) is an error of the fixture
    return out


@pytest.fixture(scope="session")
def reference_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint of the reference-shaped model (audio (1, 32, 61) + image (1, 8, 8), 10 classes)."""
    return _reference_checkpoint(tmp_path_factory.mktemp("ckpt") / "reference")


@pytest.fixture(scope="session")
def torch_model(reference_checkpoint: Path):  # type: ignore[no-untyped-def]
    """The PyTorch model of :func:`reference_checkpoint` (eval mode), the reference for parity."""
    from edgefuse.checkpoint import load_checkpoint

    return load_checkpoint(reference_checkpoint).model.eval()


@pytest.fixture(scope="session")
def x86_split(reference_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Split ONNX artifact for generic/x86-64: encoder_audio, encoder_image, head."""
    return _export(reference_checkpoint, "generic/x86-64", "onnx", tmp_path_factory.mktemp("art") / "x86")


@pytest.fixture(scope="session")
def speaker_split(reference_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Split ONNX artifact for generic/smart-speaker: encoder_audio and head only."""
    return _export(
        reference_checkpoint, "generic/smart-speaker", "onnx", tmp_path_factory.mktemp("art") / "speaker"
    )


@pytest.fixture(scope="session")
def x86_mono(reference_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Monolithic ONNX artifact for generic/x86-64: one graph with a bool presence input."""
    return _export(
        reference_checkpoint,
        "generic/x86-64",
        "onnx",
        tmp_path_factory.mktemp("art") / "mono",
        monolithic=True,
    )


@pytest.fixture(scope="session")
def tflite_split(reference_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Split TFLite artifact for generic/video-doorbell (camera + microphone; backends: litert).

    Skipped, with the reason, when a package of :data:`TFLITE_PACKAGES` is not installed. Fixed batch
    sizes 1 and 8 where a graph needs them (the head), so other batch sizes exercise the backend's
    split-and-pad path.
    """
    try:
        importlib.import_module("edgefuse.export.formats.tflite")
    except ModuleNotFoundError as exc:  # only a missing optional package skips; a broken exporter fails
        if (exc.name or "").split(".")[0] not in TFLITE_PACKAGES:
            raise
        pytest.skip(f"edgefuse.export.formats.tflite needs {exc.name!r}, which is not installed: {exc}")
    from edgefuse.export.formats.base import BatchPlan

    return _export(
        reference_checkpoint,
        "generic/video-doorbell",
        "tflite",
        tmp_path_factory.mktemp("art") / "tflite",
        batch=BatchPlan(fixed=(1, 8)),
    )


ARTIFACTS = ("x86_split", "x86_mono", "tflite_split")


@pytest.fixture(params=ARTIFACTS)
def artifact(request: pytest.FixtureRequest) -> Path:
    """Each artifact kind in turn (split ONNX, monolithic ONNX, split TFLite when available)."""
    return request.getfixturevalue(request.param)


def copy_artifact(src: Path, dst: Path) -> Path:
    """A private copy of an artifact to tamper with."""
    shutil.copytree(src, dst)
    return dst


def make_inputs(batch: int, seed: int, modalities: tuple[str, ...] = MODALITIES) -> dict[str, np.ndarray]:
    """Random float32 inputs of the reference shapes."""
    rng = np.random.default_rng(seed)
    return {m: rng.standard_normal((batch, *REFERENCE_SHAPES[m])).astype(np.float32) for m in modalities}


def torch_logits(model, inputs: dict[str, np.ndarray], mask: np.ndarray | None = None) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Logits of the PyTorch model (``mask`` columns in the model's modality order)."""
    import torch

    with torch.no_grad():
        t = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in inputs.items()}
        m = None if mask is None else torch.from_numpy(np.asarray(mask, dtype=bool))
        return model(t, m).numpy()


@pytest.fixture(scope="session")
def rt():  # type: ignore[no-untyped-def]
    """Helpers shared by the runtime tests (conftest modules are not importable by name)."""
    from types import SimpleNamespace

    return SimpleNamespace(
        make_inputs=make_inputs,
        torch_logits=torch_logits,
        copy_artifact=copy_artifact,
        PATTERNS=PATTERNS,
        MODALITIES=MODALITIES,
        SHAPES=REFERENCE_SHAPES,
        ATOL=ATOL,
    )
