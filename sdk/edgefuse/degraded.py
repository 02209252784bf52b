"""Accuracy when a sensor is degraded, not missing: corruption retention and fusion regret.

For a trained contract model, a labelled split and a corruption (:mod:`edgefuse.data.corruptions`) of one
modality at a severity, every modality stays present (rows a corruption makes invalid, NaN rows, are marked
absent, as the runtime requires) and:

* **fused accuracy**: the model with every modality, the corrupted one included;
* **single-modality accuracy**: the same model with only that modality present, on the same (corrupted)
  rows, for each modality;
* **corruption retention** = fused accuracy under the corruption / clean fused accuracy;
* **fusion regret** = (best single-modality accuracy on the same rows) - (fused accuracy). Zero or below
  is good: fusing never loses to the best sensor alone. Above zero the model would do better by ignoring
  the degraded sensor, which a fusion with one constant weight per modality cannot do.

Definitions in docs/metrics.md. This module evaluates; the robustness grid's corruption axis and a fusion
that weighs each row's sensors by their reliability are later parts of the same issue (#16).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from edgefuse.errors import ContractError

__all__ = ["corruption_curves", "fusion_regret"]


def fusion_regret(fused: float, singles: dict[str, float]) -> float:
    """``max(singles) - fused``: how much better the best single modality does on the same rows."""
    if not singles:
        raise ContractError("fusion regret needs at least one single-modality accuracy")
    return float(max(singles.values()) - fused)


def _accuracy(model: Any, split: Any, present: Sequence[str], valid: dict[str, np.ndarray] | None) -> float:
    """Top-1 accuracy with only ``present`` modalities; rows flagged invalid are marked absent per row."""
    import torch

    names = list(model.modality_names)
    inputs = {m: torch.from_numpy(np.ascontiguousarray(split.inputs[m])) for m in names}
    n = len(split.labels)
    mask = np.zeros((n, len(names)), dtype=bool)
    for j, m in enumerate(names):
        if m in present:
            mask[:, j] = True if valid is None or m not in valid else valid[m]
    correct = 0
    with torch.no_grad():
        for start in range(0, n, 1024):
            sl = slice(start, start + 1024)
            rows_mask = torch.from_numpy(mask[sl])
            batch = {m: x[sl] for m, x in inputs.items()}  # absent rows (NaN ones) are never read
            logits = model(batch, rows_mask)
            # a row with nothing present has no prediction: it counts as wrong
            pred = logits.argmax(1).numpy()
            ok = (pred == split.labels[sl]) & mask[sl].any(1)
            correct += int(ok.sum())
    return correct / max(1, n)


def corruption_curves(
    model: Any,
    data: Any,
    corruptions: Sequence[tuple[str, str]],
    severities: Sequence[int] = (1, 2, 3, 4, 5),
    split: str = "test",
    seed: int = 0,
) -> dict[str, Any]:
    """Fused and single-modality accuracy of ``model`` under each corruption at each severity.

    Args:
        model: A contract model (:class:`~edgefuse.models.contract.MultimodalModel`) over every modality
            of ``data``.
        data: A labelled :class:`~edgefuse.data.base.MultimodalDataset`.
        corruptions: ``(modality, kind)`` pairs (see :func:`edgefuse.data.corruptions.parse_corruptions`).
        severities: Severities 1..5.
        split: The split evaluated.
        seed: Corruption seed.

    Returns:
        ``{"clean": {"fused", "single": {m: acc}, "regret"}, "curves": [{"modality", "kind", "severity",
        "domain", "fused", "single": {m: acc}, "best_single", "regret", "retention", "invalid_rows"}],
        "split", "seed", "rows"}``.

    Raises:
        ContractError: A model whose modalities are not the dataset's.
        DataError: A bad corruption, severity, seed or split (from :mod:`edgefuse.data.corruptions`).
    """
    from edgefuse.data.corruptions import corrupt_split, parse_severities

    names = list(model.modality_names)
    if sorted(names) != sorted(data.modality_names):
        raise ContractError(
            f"the model has modalities {names} and the dataset {list(data.modality_names)}; they must match"
        )
    sevs = parse_severities(list(severities))
    clean_split = data.split(split)
    clean_single = {m: _accuracy(model, clean_split, [m], None) for m in names}
    clean_fused = _accuracy(model, clean_split, names, None)
    curves = []
    for modality, kind in corruptions:
        for severity in sevs:
            corrupted = corrupt_split(data, split, modality, kind, severity, seed)
            valid = {m: np.asarray(v, bool) for m, v in corrupted.valid.items()}
            fused = _accuracy(model, corrupted, names, valid)
            single = {m: _accuracy(model, corrupted, [m], valid) for m in names}
            curves.append(
                {
                    "modality": modality,
                    "kind": kind,
                    "severity": severity,
                    "domain": corrupted.record.get("domain"),
                    "fused": fused,
                    "single": single,
                    "best_single": max(single, key=single.get),
                    "regret": fusion_regret(fused, single),
                    "retention": fused / clean_fused if clean_fused > 0 else None,
                    "invalid_rows": int(sum((~v).sum() for v in valid.values())),
                }
            )
    return {
        "split": split,
        "seed": seed,
        "rows": len(clean_split.labels),
        "clean": {
            "fused": clean_fused,
            "single": clean_single,
            "regret": fusion_regret(clean_fused, clean_single),
        },
        "curves": curves,
    }
