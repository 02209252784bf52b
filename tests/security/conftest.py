"""Fixtures of the hostile-input suite: one small checkpoint and its ONNX artifact per session.

Cases copy them into their own folder before tampering (the originals stay pristine).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

SHAPES = {"audio": (1, 8, 12), "image": (1, 8, 8)}


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-modality reference-architecture checkpoint (D=8, 4 classes), trained-looking fusion params."""
    torch = pytest.importorskip("torch")
    from edgefuse.checkpoint import save_checkpoint
    from edgefuse.models.contract import build_model
    from edgefuse.models.reference import reference_architecture
    from edgefuse.specs import ModalitySpec

    specs = tuple(ModalitySpec(m, s) for m, s in SHAPES.items())
    torch.manual_seed(0)
    model = build_model(reference_architecture(specs, 8), specs, ["a", "b", "c", "d"])
    with torch.no_grad():
        model.fusion.norm.weight.uniform_(0.5, 1.5)
        model.fusion.norm.bias.uniform_(-0.5, 0.5)
    return save_checkpoint(model.eval(), tmp_path_factory.mktemp("sec") / "ckpt")


@pytest.fixture(scope="session")
def tiny_program_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint of a user-written model (no JSON architecture): torch.export programs + safetensors."""
    torch = pytest.importorskip("torch")
    from edgefuse.checkpoint import save_checkpoint
    from edgefuse.models.contract import MultimodalModel
    from edgefuse.models.fusion import MaskedFusion
    from edgefuse.specs import ModalitySpec
    from torch import nn

    specs = tuple(ModalitySpec(m, s) for m, s in SHAPES.items())
    torch.manual_seed(0)
    encoders = {
        "audio": nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1),
            nn.BatchNorm2d(4),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(4, 8),
        ),
        "image": nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.Hardswish(), nn.Linear(16, 8)),
    }
    head = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Dropout(0.1), nn.Linear(8, 4))
    model = MultimodalModel(
        encoders, MaskedFusion(2, 8, learn_weights=True), head, specs, ["a", "b", "c", "d"]
    )
    return save_checkpoint(model.eval(), tmp_path_factory.mktemp("sec") / "prog")


@pytest.fixture
def program_copy(tiny_program_checkpoint: Path, tmp_path: Path) -> Path:
    """A private copy of :func:`tiny_program_checkpoint` to tamper with."""
    return Path(shutil.copytree(tiny_program_checkpoint, tmp_path / "prog"))


@pytest.fixture(scope="session")
def tiny_artifact(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The split ONNX artifact of :func:`tiny_checkpoint` for generic/x86-64."""
    pytest.importorskip("onnx")
    from edgefuse.export import export

    out = tmp_path_factory.mktemp("sec") / "art"
    export(tiny_checkpoint, "generic/x86-64", "onnx", out)
    return out


@pytest.fixture
def artifact_copy(tiny_artifact: Path, tmp_path: Path) -> Path:
    """A private copy of :func:`tiny_artifact` to tamper with."""
    return Path(shutil.copytree(tiny_artifact, tmp_path / "art"))


@pytest.fixture
def checkpoint_copy(tiny_checkpoint: Path, tmp_path: Path) -> Path:
    """A private copy of :func:`tiny_checkpoint` to tamper with."""
    return Path(shutil.copytree(tiny_checkpoint, tmp_path / "ckpt"))


@pytest.fixture(scope="session")
def tiny_gated_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The split ONNX artifact (generic/x86-64) of :func:`tiny_checkpoint`'s model with reliability gates."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from edgefuse.export import export
    from edgefuse.models.contract import add_gates, build_model
    from edgefuse.models.reference import reference_architecture
    from edgefuse.specs import ModalitySpec

    specs = tuple(ModalitySpec(m, s) for m, s in SHAPES.items())
    torch.manual_seed(0)
    model = add_gates(build_model(reference_architecture(specs, 8), specs, ["a", "b", "c", "d"]), 4)
    out = tmp_path_factory.mktemp("sec") / "gated"
    export(model.eval(), "generic/x86-64", "onnx", out, precision="fp32").raise_for_failures()
    return out


@pytest.fixture
def gated_copy(tiny_gated_artifact: Path, tmp_path: Path) -> Path:
    """A private copy of :func:`tiny_gated_artifact` to tamper with."""
    return Path(shutil.copytree(tiny_gated_artifact, tmp_path / "gated"))
