"""The robustness grid: scenarios, hand-checked metrics, the API on any dataset, reports."""

from __future__ import annotations

import json

import pytest
from edgefuse.errors import ContractError
from edgefuse.robustness import GridResult, parse_sets, scenario, subsets

AI, A, IM = ("audio", "image"), ("audio",), ("image",)


def test_scenarios_and_subsets() -> None:
    assert subsets(["audio", "image", "imu"])[:2] == [("audio", "image", "imu"), ("audio", "image")]
    assert len(subsets(["a", "b", "c"])) == 7
    assert scenario(AI, AI) == "same"
    assert scenario(AI, A) == "missing"
    assert scenario(IM, AI) == "added"
    assert scenario(A, IM) == "transfer"


def test_parse_sets() -> None:
    assert parse_sets("image+audio,audio", ["audio", "image"]) == [AI, A]
    with pytest.raises(ContractError, match=r"unknown modality 'audoi'.*did you mean 'audio'"):
        parse_sets("audoi", ["audio", "image"])
    with pytest.raises(ContractError, match="given twice"):
        parse_sets("audio,audio", ["audio", "image"])
    with pytest.raises(ContractError, match="empty modality set"):
        parse_sets("audio,,image", ["audio", "image"])


def _grid() -> GridResult:
    # Two seeds of hand-picked scores.
    scores = {
        ("supervised", AI, 0): {AI: 0.90, A: 0.40, IM: 0.70},
        ("supervised", AI, 1): {AI: 0.80, A: 0.50, IM: 0.60},
        ("supervised", A, 0): {AI: 0.30, A: 0.50, IM: 0.10},
        ("supervised", A, 1): {AI: 0.30, A: 0.40, IM: 0.10},
        ("supervised", IM, 0): {AI: 0.75, A: 0.10, IM: 0.80},
        ("supervised", IM, 1): {AI: 0.85, A: 0.10, IM: 0.70},
    }
    return GridResult(modalities=AI, scores=scores)


def test_metrics_match_hand_computation() -> None:
    g = _grid()
    c = g.cell("supervised", AI, A)
    assert c["scenario"] == "missing"
    assert c["accuracy"]["mean"] == pytest.approx(0.45)
    assert c["drop"]["mean"] == pytest.approx(((0.9 - 0.4) + (0.8 - 0.5)) / 2)
    assert c["retention"]["mean"] == pytest.approx((0.4 / 0.9 + 0.5 / 0.8) / 2)
    assert c["gap_to_specialist"]["mean"] == pytest.approx(((0.4 - 0.5) + (0.5 - 0.4)) / 2)
    assert c["drop"]["std"] == pytest.approx(0.1414213, rel=1e-5)
    assert c["added_gain"] is None
    added = g.cell("supervised", IM, AI)
    assert added["scenario"] == "added"
    assert added["added_gain"]["mean"] == pytest.approx(((0.75 - 0.8) + (0.85 - 0.7)) / 2)
    mr = g.mean_retention("supervised", AI)
    assert mr["mean"] == pytest.approx(((0.4 / 0.9 + 0.7 / 0.9) / 2 + (0.5 / 0.8 + 0.6 / 0.8) / 2) / 2)
    assert g.mean_retention("supervised", A) is None


def test_reports(tmp_path) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("matplotlib")
    out = _grid().write_report(tmp_path / "r")
    data = json.loads(out["json"].read_text())
    assert data["train_sets"] == ["audio+image", "audio", "image"]
    assert {c["scenario"] for c in data["cells"]} == {"same", "missing", "added", "transfer"}
    assert len(data["cells"]) == 9
    md = out["markdown"].read_text()
    assert "0.850 ± 0.071 (same)" in md
    assert out["heatmap"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_run_grid_on_a_three_modality_dataset(toy_dataset) -> None:  # type: ignore[no-untyped-def]
    torch = pytest.importorskip("torch")
    from edgefuse.robustness import run_grid
    from edgefuse.train import TrainConfig

    cfg = TrainConfig(modalities=toy_dataset.modality_names, epochs=1, pretrain_epochs=1, batch_size=64)
    trained = {}
    g = run_grid(
        toy_dataset,
        [("audio", "image", "imu")],
        ["supervised", "contrastive"],
        [0],
        cfg,
        on_model=trained.__setitem__,
    )
    full = ("audio", "image", "imu")
    specialists = [t for t in subsets(toy_dataset.modality_names) if t != full]
    assert set(trained) == {(m, s, 0) for m in ("supervised", "contrastive") for s in [full, *specialists]}
    assert set(g.scores) == set(trained)  # every S = T specialist added: 2 x 7 rows
    assert g.test_sets == subsets(toy_dataset.modality_names)
    # Every score is the model's top-1 accuracy on the test split with only T present, recomputed here.
    test = toy_dataset.split("test")
    labels = torch.from_numpy(test.labels)
    for key, model in trained.items():
        model.eval()
        for t in g.test_sets:
            with torch.no_grad():
                pred = model({m: torch.from_numpy(test.inputs[m]) for m in t}).argmax(dim=1)
            assert g.scores[key][t] == int((pred == labels).sum()) / len(labels), (key, t)
    cell = g.cell("supervised", full, ("image",))
    specialist = g.scores[("supervised", ("image",), 0)][("image",)]
    assert cell["gap_to_specialist"] == {
        "mean": g.scores[("supervised", full, 0)][("image",)] - specialist,
        "std": 0.0,
        "n": 1,
    }


def test_from_dict_round_trip() -> None:
    g = _grid()
    again = GridResult.from_dict(json.loads(json.dumps(g.to_dict())))
    assert again.scores == g.scores
    assert again.markdown() == g.markdown()
    with pytest.raises(ContractError, match="not a robustness grid document"):
        GridResult.from_dict({"modalities": ["a"]})
