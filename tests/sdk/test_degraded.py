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


def test_curves_for_a_test_set(trained) -> None:  # type: ignore[no-untyped-def]
    data, model = trained
    test = data.split("test")
    alone = corruption_curves(model, data, [("image", "noise")], severities=(3,), test_set=["image"])
    assert alone["test_set"] == ["image"]
    assert alone["clean"]["fused"] == pytest.approx(accuracy(model, test, ["image"]))
    assert alone["clean"]["regret"] is None  # one modality: nothing is fused
    (row,) = alone["curves"]
    assert set(row["single"]) == {"image"}
    assert row["fused"] == row["single"]["image"]
    assert row["regret"] is None
    assert row["retention"] == pytest.approx(row["fused"] / alone["clean"]["fused"])
    both = corruption_curves(model, data, [("image", "noise")], severities=(3,))
    assert both["curves"][0]["single"]["image"] == row["fused"]  # the same rows, the same model
    with pytest.raises(ContractError, match="outside the test set"):
        corruption_curves(model, data, [("audio", "noise")], test_set=["image"])
    with pytest.raises(ContractError, match="non-empty set"):
        corruption_curves(model, data, [("image", "noise")], test_set=["image", "gps"])


def test_evaluate_corrupted_is_what_the_curves_measure(trained) -> None:  # type: ignore[no-untyped-def]
    from edgefuse.data.corruptions import corrupt_split
    from edgefuse.degraded import evaluate_corrupted

    data, model = trained
    parts = [
        corrupt_split(data, "test", "audio", "nan", 2, 0),
        corrupt_split(data, "test", "image", "noise", 4, 0),
    ]
    out = evaluate_corrupted(model, data.split("test"), parts)
    curves = corruption_curves(model, data, [("audio", "nan"), ("image", "noise")], severities=(2, 4))
    by = {(c["modality"], c["severity"]): c for c in curves["curves"]}
    assert set(out["clean"]["fused"]) == {"audio+image", "audio", "image"}
    assert out["clean"]["fused"]["audio+image"] == curves["clean"]["fused"]
    assert out["clean"]["single"] == curves["clean"]["single"]
    for c in out["curves"]:
        ref = by[(c["modality"], c["severity"])]
        assert set(c["fused"]) == {"audio+image", c["modality"]}  # every T with the corrupted modality
        assert c["fused"]["audio+image"] == ref["fused"]
        assert c["single"] == ref["single"]
        assert c["fused"][c["modality"]] == c["single"][c["modality"]]
    assert evaluate_corrupted(model, data.split("test"), []) == {"clean": {}, "curves": []}
