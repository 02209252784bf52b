"""The contract is checked when a model is wrapped: errors name the module and the shapes."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from edgefuse import MaskedFusion, ModalitySpec, MultimodalModel  # noqa: E402
from edgefuse.errors import ContractError  # noqa: E402
from torch import nn  # noqa: E402

SPECS = (ModalitySpec("audio", (4, 10)), ModalitySpec("imu", (6, 16)))


def _encoders(dim: int = 8) -> dict[str, nn.Module]:
    return {
        "audio": nn.Sequential(nn.Flatten(), nn.Linear(40, dim)),
        "imu": nn.Sequential(
            nn.Conv1d(6, 4, 3), nn.BatchNorm1d(4), nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(4, dim)
        ),
    }


def test_a_valid_model_passes_and_keeps_its_state() -> None:
    encoders = _encoders()
    bn = encoders["imu"][1]
    model = MultimodalModel(encoders, MaskedFusion(2, 8), nn.Linear(8, 3), SPECS, ["a", "b", "c"])
    assert model.training
    assert bn.training
    assert int(bn.num_batches_tracked) == 0
    assert torch.equal(bn.running_mean, torch.zeros(4))


def test_an_encoder_that_fails_on_the_dummy_batch_is_named_with_its_input_shape() -> None:
    encoders = _encoders()
    encoders["audio"] = nn.Linear(10, 8)  # forgets to flatten: [2, 4, 10] -> [2, 4, 8]
    with pytest.raises(
        ContractError,
        match=r"encoders\['audio'\] \(Linear\) maps \[2, 4, 10\] to a tensor of shape \(2, 4, 8\)",
    ):
        MultimodalModel(encoders, MaskedFusion(2, 8), nn.Linear(8, 3), SPECS, ["a", "b", "c"])


def test_an_encoder_that_raises_is_named() -> None:
    encoders = _encoders()
    encoders["imu"] = nn.Linear(3, 8)
    with pytest.raises(
        ContractError, match=r"encoders\['imu'\] \(Linear\) failed on a dummy input of shape \[2, 6, 16\]"
    ):
        MultimodalModel(encoders, MaskedFusion(2, 8), nn.Linear(8, 3), SPECS, ["a", "b", "c"])


def test_a_head_with_the_wrong_class_count_is_named() -> None:
    with pytest.raises(ContractError, match=r"head \(Linear\) maps \[2, 8\] .*\(2, 4\).*\[B, C\] = \[2, 3\]"):
        MultimodalModel(_encoders(), MaskedFusion(2, 8), nn.Linear(8, 4), SPECS, ["a", "b", "c"])


def test_an_embedding_size_that_differs_from_the_fusion_is_named() -> None:
    with pytest.raises(ContractError, match=r"\[B, D\] = \[2, 16\]"):
        MultimodalModel(_encoders(8), MaskedFusion(2, 16), nn.Linear(16, 3), SPECS, ["a", "b", "c"])


def test_an_encoder_returning_a_tuple_is_told_to_return_one_tensor() -> None:
    class Pair(nn.Module):
        def forward(self, x):
            return x.flatten(1)[:, :8], x

    encoders = _encoders()
    encoders["audio"] = Pair()
    with pytest.raises(ContractError, match="tuple of 2 items"):
        MultimodalModel(encoders, MaskedFusion(2, 8), nn.Linear(8, 3), SPECS, ["a", "b", "c"])
