"""Fixtures for export tests: the reference AV-digits-shaped model and the three-modality model."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from edgefuse.checkpoint import save_checkpoint  # noqa: E402
from edgefuse.models.contract import build_model  # noqa: E402
from edgefuse.models.reference import reference_architecture  # noqa: E402
from edgefuse.specs import ModalitySpec  # noqa: E402

REFERENCE_SPECS = (
    ModalitySpec("audio", (1, 32, 61), preprocessing="logmel-v1"),
    ModalitySpec("image", (1, 8, 8)),
)
THREE_SPECS = (*REFERENCE_SPECS, ModalitySpec("imu", (1, 6, 32)))


def _checkpoint(path, specs, embed_dim: int = 64):  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    model = build_model(reference_architecture(specs, embed_dim), specs, [str(i) for i in range(10)])
    with torch.no_grad():  # non-trivial LayerNorm and weights, as after training
        model.fusion.norm.weight.uniform_(0.5, 1.5)
        model.fusion.norm.bias.uniform_(-0.5, 0.5)
        model.fusion.log_weights.copy_(torch.linspace(-0.5, 0.5, len(specs)))
    return save_checkpoint(model.eval(), path)


@pytest.fixture(scope="session")
def reference_ckpt(tmp_path_factory):  # type: ignore[no-untyped-def]
    return _checkpoint(tmp_path_factory.mktemp("ckpt") / "reference", REFERENCE_SPECS)


@pytest.fixture(scope="session")
def three_ckpt(tmp_path_factory):  # type: ignore[no-untyped-def]
    return _checkpoint(tmp_path_factory.mktemp("ckpt") / "three", THREE_SPECS, embed_dim=32)


@pytest.fixture(scope="session")
def imu_ckpt(tmp_path_factory):  # type: ignore[no-untyped-def]
    """A checkpoint of a model whose only modality is an IMU stream."""
    specs = (ModalitySpec("imu", (1, 6, 32)),)
    torch.manual_seed(0)
    model = build_model(reference_architecture(specs, 16), specs, ["a", "b"])
    return save_checkpoint(model, tmp_path_factory.mktemp("ckpt") / "imu")
