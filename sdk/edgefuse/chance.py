"""Chance level: when an accuracy says the model learned nothing.

A classifier that learned nothing still scores the accuracy of its best constant guess: the share of the
most frequent class in the rows it is evaluated on (1/K on a balanced split of K classes). EdgeFuse calls
that the **chance level** of the split and treats an accuracy within :data:`CHANCE_MARGIN` (5 points) of
it as "did not learn": training warns, the robustness grid reports no retention, drop or improvement
factor for such a model (a ratio of two chance-level accuracies measures noise, not robustness) and says
so in its verdicts (docs/metrics.md, "Chance level").

NumPy only; no torch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "CHANCE_MARGIN",
    "NearChanceWarning",
    "chance_accuracy",
    "near_chance",
    "not_learned_message",
    "not_learned_row_message",
]

#: An accuracy at most this far above the chance level (absolute, 0.05 = 5 points) counts as not learned.
CHANCE_MARGIN = 0.05


class NearChanceWarning(UserWarning):
    """A trained model's accuracy is within :data:`CHANCE_MARGIN` of chance: it did not learn.

    Typical causes: too few epochs (the quickstart's old 3), a learning rate too high or too low, a heavy
    intervention on a small dataset. The model is still returned and saved; nothing is changed silently.
    """


def chance_accuracy(labels: Sequence[int] | np.ndarray) -> float:
    """The accuracy of the best constant prediction on ``labels``: the most frequent class's share.

    Args:
        labels: Integer class labels of the evaluated rows.

    Returns:
        A value in (0, 1]; ``nan`` for no rows.
    """
    arr = np.asarray(labels).reshape(-1)
    if arr.size == 0:
        return float("nan")
    _, counts = np.unique(arr, return_counts=True)
    return float(counts.max() / arr.size)


def near_chance(accuracy: float, chance: float | None, margin: float = CHANCE_MARGIN) -> bool:
    """True when ``accuracy`` is at most ``margin`` above ``chance`` (False when chance is unknown)."""
    if chance is None or not np.isfinite(chance):
        return False
    return bool(accuracy - chance <= margin + 1e-12)  # at the margin counts (float rounding aside)


def not_learned_message(what: str, accuracy: float, chance: float, split: str = "validation") -> str:
    """One sentence for a model at chance: what, its accuracy, the chance level and what to try."""
    where = "below" if accuracy < chance else f"within {100 * CHANCE_MARGIN:.0f} points of"
    return (
        f"{what} did not learn: {split} accuracy {accuracy:.3f} is {where} chance ({chance:.3f}, the most "
        "frequent class's share); train longer (more epochs), check the learning rate and the labels"
    )


def not_learned_row_message(row: Mapping[str, Any], split: str = "test") -> str:
    """:func:`not_learned_message` for a row of ``GridResult.not_learned()``, saying what is not reported."""
    what = f"{row['method']} S={row['train']}"
    return (
        not_learned_message(what, row["accuracy"], row["chance"], split)
        + f" (mean P(S→S) over seeds {row['seeds']}); its retention, drop and gains are not reported"
    )
