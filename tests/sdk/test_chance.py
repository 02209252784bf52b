"""Chance level (edgefuse.chance), the training warning and the grid's "did not learn" verdicts."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
from edgefuse.chance import (
    CHANCE_MARGIN,
    NearChanceWarning,
    chance_accuracy,
    near_chance,
    not_learned_message,
)
from edgefuse.robustness import GridResult

AI, A, IM = ("audio", "image"), ("audio",), ("image",)


def test_chance_is_the_most_frequent_class_share() -> None:
    assert chance_accuracy([0, 1, 2, 3]) == 0.25
    assert chance_accuracy(np.array([1, 1, 1, 0])) == 0.75  # imbalanced: the constant guess "1"
    assert math.isnan(chance_accuracy([]))


def test_near_chance_margin() -> None:
    assert near_chance(0.10, 0.10)
    assert near_chance(0.10 + CHANCE_MARGIN, 0.10)  # at the margin: not learned
    assert not near_chance(0.16, 0.10)
    assert near_chance(0.02, 0.10)  # below chance is not learned either
    assert not near_chance(0.10, None)  # unknown chance: never claimed
    assert not near_chance(0.10, float("nan"))


def test_message_says_below_or_within() -> None:
    assert "below chance (0.338" in not_learned_message("m", 0.25, 0.338)
    msg = not_learned_message("supervised S=audio", 0.12, 0.10)
    assert "within 5 points of chance (0.100" in msg
    assert "more epochs" in msg


def _grid(collapsed: float | None, seeds: int = 2, chance: float | None = 0.1) -> GridResult:
    """A learned baseline and a moddrop row; ``collapsed``: the moddrop row's accuracy everywhere."""
    scores = {}
    for k in range(seeds):
        scores[("supervised", AI, k)] = {AI: 0.90 - 0.02 * k, A: 0.40, IM: 0.50}
        scores[("supervised", A, k)] = {AI: 0.55, A: 0.60, IM: 0.10}
        scores[("supervised", IM, k)] = {AI: 0.70, A: 0.10, IM: 0.75}
        v = collapsed if collapsed is not None else 0.88
        scores[("supervised+moddrop", AI, k)] = {AI: v, A: collapsed or 0.70, IM: collapsed or 0.65}
    return GridResult(modalities=AI, scores=scores, chance=chance)


def test_a_collapsed_row_gets_no_retention_and_a_did_not_learn_verdict() -> None:
    g = _grid(collapsed=0.103)
    assert g.learned("supervised", AI)
    assert not g.learned("supervised+moddrop", AI)
    [row] = g.not_learned()
    assert row["method"] == "supervised+moddrop"
    assert row["train"] == "audio+image"
    assert row["accuracy"] == pytest.approx(0.103)
    assert row["chance"] == 0.1
    cell = g.cell("supervised+moddrop", AI, A)
    assert cell["learned"] is False
    assert cell["retention"] is None
    assert cell["drop"] is None
    assert cell["accuracy"]["mean"] == pytest.approx(0.103)  # the accuracy itself is still reported
    assert g.mean_retention("supervised+moddrop", AI) is None
    verdicts = [r for r in g.all_improvements() if r["intervention"] == "supervised+moddrop"]
    assert verdicts
    assert all(r["factor"] is None for r in verdicts)
    assert all(
        "intervention supervised+moddrop did not learn (P(S→S) 0.103)" in r["verdict"] for r in verdicts
    )
    md = g.markdown()
    assert (
        "**Warning:** supervised+moddrop S=audio+image did not learn: test accuracy 0.103 is within 5" in md
    )
    assert "its retention, drop and gains are not reported" in md
    assert "| did not learn |" in md
    assert "no measurable drop" not in md
    doc = json.loads(json.dumps(g.to_dict()))
    assert doc["chance"] == 0.1
    assert doc["not_learned"][0]["method"] == "supervised+moddrop"
    again = GridResult.from_dict(doc)
    assert again.chance == 0.1
    assert again.not_learned() == g.not_learned()


def test_learned_rows_keep_their_factor() -> None:
    g = _grid(collapsed=None)
    assert g.not_learned() == []
    missing = [r for r in g.all_improvements() if r["scenario"] == "missing"]
    assert all(r["factor"] is not None for r in missing)
    assert "did not learn" not in g.markdown()


def test_unknown_chance_never_claims_not_learned() -> None:
    g = _grid(collapsed=0.103, chance=None)  # e.g. a document written before the chance level existed
    assert g.not_learned() == []
    assert g.cell("supervised+moddrop", AI, A)["retention"] is not None


def test_one_seed_shows_no_spread() -> None:
    md = _grid(collapsed=None, seeds=1).markdown()
    assert "± 0.000" not in md
    assert "one seed (0): no spread" in md
    assert "0.900 (same)" in md
    two = _grid(collapsed=None, seeds=2).markdown()
    assert "0.890 ± 0.014 (same)" in two


def test_evaluate_grid_records_the_split_chance(toy_dataset) -> None:  # type: ignore[no-untyped-def]
    from edgefuse.robustness import evaluate_grid
    from edgefuse.train import TrainConfig, train

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = train(toy_dataset, TrainConfig(modalities=toy_dataset.modality_names, epochs=0)).model
    assert any(issubclass(w.category, NearChanceWarning) for w in caught)  # 0 epochs: an untrained model
    g = evaluate_grid({("supervised", toy_dataset.modality_names, 0): model}, toy_dataset)
    assert g.chance == pytest.approx(chance_accuracy(toy_dataset.split("test").labels))


def test_training_warns_when_it_lands_at_chance(toy_dataset) -> None:  # type: ignore[no-untyped-def]
    from edgefuse.train import TrainConfig, train

    u = toy_dataset.modality_names
    with pytest.warns(NearChanceWarning, match="did not learn"):
        bad = train(toy_dataset, TrainConfig(modalities=u, epochs=1, lr=1e-7))
    assert bad.metrics["chance"] == pytest.approx(chance_accuracy(toy_dataset.split("val").labels))
    with warnings.catch_warnings():
        warnings.simplefilter("error", NearChanceWarning)  # a model that learns: no warning
        good = train(toy_dataset, TrainConfig(modalities=u, epochs=15))
    assert good.metrics["val_accuracy"] > good.metrics["chance"] + CHANCE_MARGIN


def test_dataset_repr_is_short(toy_dataset) -> None:  # type: ignore[no-untyped-def]
    text = repr(toy_dataset)
    assert len(text.splitlines()) == 5
    assert len(text) < 1000
    assert "splits (rows): train" in text
    assert "array(" not in text
    split = toy_dataset.split("test")
    assert repr(split).startswith(f"Split({len(split)} rows; ")
