"""Accuracy under degraded sensors: corruption retention and fusion regret (``edgefuse.degraded``)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from edgefuse.data.avdigits import load_av_digits_synthetic_audio  # noqa: E402
from edgefuse.degraded import corruption_curves, fusion_regret  # noqa: E402
from edgefuse.errors import ContractError  # noqa: E402
from edgefuse.train import TrainConfig, accuracy, train  # noqa: E402


@pytest.fixture(scope="module")
def trained():  # type: ignore[no-untyped-def]
    data = load_av_digits_synthetic_audio(degrade_image=4)
    model = train(data, TrainConfig(modalities=("audio", "image"), epochs=12), threads=1).model
    return data, model


def test_fusion_regret_is_best_single_minus_fused() -> None:
    assert fusion_regret(0.72, {"audio": 0.5, "image": 0.79}) == pytest.approx(0.07)
    assert fusion_regret(0.9, {"audio": 0.6, "image": 0.8}) == pytest.approx(-0.1)
    with pytest.raises(ContractError):
        fusion_regret(0.5, {})


def test_curves_match_plain_accuracy_and_degrade_with_severity(trained) -> None:  # type: ignore[no-untyped-def]
    data, model = trained
    out = corruption_curves(model, data, [("image", "noise"), ("audio", "nan")], severities=(1, 5))
    test = data.split("test")
    clean = out["clean"]
    # the clean figures are the grid's: the model with every modality, and with each alone
    assert clean["fused"] == pytest.approx(accuracy(model, test, ["audio", "image"]))
    assert clean["single"]["image"] == pytest.approx(accuracy(model, test, ["image"]))
    assert clean["regret"] == pytest.approx(max(clean["single"].values()) - clean["fused"])
    rows = {(c["modality"], c["kind"], c["severity"]): c for c in out["curves"]}
    assert set(rows) == {
        ("image", "noise", 1),
        ("image", "noise", 5),
        ("audio", "nan", 1),
        ("audio", "nan", 5),
    }
    for row in out["curves"]:
        assert row["regret"] == pytest.approx(max(row["single"].values()) - row["fused"])
        assert row["retention"] == pytest.approx(row["fused"] / clean["fused"])
    # the uncorrupted modality alone is unaffected by the other's corruption
    assert rows[("image", "noise", 5)]["single"]["audio"] == pytest.approx(clean["single"]["audio"])
    # severe image noise hurts the image alone more than mild noise does
    assert rows[("image", "noise", 5)]["single"]["image"] < rows[("image", "noise", 1)]["single"]["image"]
    # NaN audio rows are marked absent, never fused: at severity 5 every audio row is NaN, so the fused
    # model is the image alone and the audio alone predicts nothing
    nan5 = rows[("audio", "nan", 5)]
    assert nan5["invalid_rows"] == len(test.labels)
    assert nan5["fused"] == pytest.approx(clean["single"]["image"])
    assert nan5["single"]["audio"] == 0.0


def test_model_and_data_must_match(trained) -> None:  # type: ignore[no-untyped-def]
    from edgefuse.data.synthetic import make_synthetic

    _, model = trained
    with pytest.raises(ContractError, match="must match"):
        corruption_curves(model, make_synthetic(30, 10, 20), [("audio", "noise")])
