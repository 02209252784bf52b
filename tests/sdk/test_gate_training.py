"""The gate+moddrop / gate+masd interventions: gated model, corrupted copies, reliability target."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402, N812
from edgefuse.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from edgefuse.errors import ContractError  # noqa: E402
from edgefuse.interventions import (  # noqa: E402
    AUGMENT_SEED_BASE,
    augmentation_kinds,
    gate_params,
    make_loss,
    reliability_loss,
)
from edgefuse.models.contract import add_gates, build_model  # noqa: E402
from edgefuse.models.reference import reference_architecture  # noqa: E402
from edgefuse.train import TrainConfig, _augmented_copies, train  # noqa: E402

AI = ("audio", "image")


def _cfg(iv: str = "gate+moddrop", **params: float) -> TrainConfig:
    return TrainConfig(
        modalities=AI,
        epochs=2,
        batch_size=32,
        intervention=iv,
        intervention_params={"copies": 2, "warmup": 1, **params},
    )


@pytest.fixture(scope="module")
def gated_result(toy_dataset):  # type: ignore[no-untyped-def]
    return train(toy_dataset, _cfg(hidden=8), threads=1)


def test_gate_training_gives_a_gated_model_that_round_trips(gated_result, toy_dataset, tmp_path) -> None:  # type: ignore[no-untyped-def]
    model = gated_result.model
    assert model.fusion.gated
    assert model.fusion.gate_hidden == 8
    assert model.architecture["fusion"]["gate_hidden"] == 8
    folder = save_checkpoint(model, tmp_path / "ckpt", recipe=gated_result.config.to_dict())
    loaded = load_checkpoint(folder).model
    assert loaded.fusion.gated
    x = {k: torch.from_numpy(v[:16]) for k, v in toy_dataset.split("test").inputs.items()}
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)


def test_gate_training_is_deterministic(toy_dataset, gated_result) -> None:  # type: ignore[no-untyped-def]
    again = train(toy_dataset, _cfg(hidden=8), threads=1)
    for k, v in gated_result.model.state_dict().items():
        assert torch.equal(v, again.model.state_dict()[k]), k


def test_corrupted_copies_and_their_quality_targets(toy_dataset) -> None:  # type: ignore[no-untyped-def]
    cfg = _cfg(corrupt_p=0.5)
    gate = gate_params(cfg)
    assert gate == {"hidden": 32, "corrupt_p": 0.5, "copies": 2, "warmup": 1, "target_power": 1.0}
    copies = _augmented_copies(toy_dataset, AI, cfg, gate)
    assert len(copies) == 2
    clean = toy_dataset.split("train").inputs
    for inputs, quality in copies:
        for m in AI:
            q = quality[m].numpy()
            assert set(np.round(q.astype(np.float64), 6).tolist()) <= {1.0, 0.8, 0.6, 0.4, 0.2, 0.0}
            changed = ~np.all(inputs[m].numpy().reshape(len(q), -1) == clean[m].reshape(len(q), -1), axis=1)
            assert np.array_equal(changed, q < 1.0)  # exactly the corrupted rows target less than 1
            assert 0.3 < (q < 1).mean() < 0.7  # corrupt_p = 0.5
    assert not torch.equal(copies[0][0]["audio"], copies[1][0]["audio"])  # two different copies
    assert AUGMENT_SEED_BASE > 10**6  # augmentation never draws an evaluation seed's corruptions


def test_augmentation_kinds_follow_what_the_dataset_can_corrupt(toy_dataset) -> None:  # type: ignore[no-untyped-def]
    kinds = augmentation_kinds(toy_dataset, ("audio", "image", "imu"))
    assert ("audio", "eq") not in kinds
    assert ("audio", "noise") in kinds
    assert {k for m, k in kinds if m == "image"} == {"noise", "blur", "occlusion", "contrast", "brightness"}
    assert all(m != "imu" for m, _ in kinds)


def test_reliability_loss_is_bce_against_the_quality(toy_dataset) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    model = build_model(
        reference_architecture(toy_dataset.modalities, 16), toy_dataset.modalities, ("a", "b", "c", "d")
    )
    add_gates(model, 4)
    batch = {k: torch.from_numpy(toy_dataset.split("train").inputs[k][:6]) for k in AI}
    emb = model.encode(batch)
    quality = {"audio": torch.tensor([1.0, 0.8, 0.0, 1.0, 0.4, 0.2])}
    loss = reliability_loss(model, emb, [0, 1], quality)
    want = (
        F.binary_cross_entropy(model.fusion.reliability(0, emb[0]), quality["audio"][:, None])
        + F.binary_cross_entropy(model.fusion.reliability(1, emb[1]), torch.ones(6, 1))
    ) / 2
    torch.testing.assert_close(loss, want)
    loss.backward()
    assert all(p.grad is None for p in model.encoders.parameters())  # it trains the gates only


def test_gated_loss_needs_gates(toy_dataset) -> None:  # type: ignore[no-untyped-def]
    model = build_model(
        reference_architecture(toy_dataset.modalities, 16), toy_dataset.modalities, ("a", "b", "c", "d")
    )
    batch = {k: torch.from_numpy(toy_dataset.split("train").inputs[k][:4]) for k in AI}
    with pytest.raises(ContractError, match="reliability gates"):
        make_loss(_cfg())(model, batch, torch.zeros(4, dtype=torch.long), torch.Generator())


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"hidden": 0}, "hidden"),
        ({"copies": 1.5}, "copies"),
        ({"corrupt_p": 2}, "corrupt_p"),
        ({"K": 2}, "no parameter"),
    ],
)
def test_bad_gate_parameters(params: dict, match: str) -> None:
    cfg = replace(_cfg(), intervention_params=params)
    with pytest.raises(ContractError, match=match):
        gate_params(cfg)
