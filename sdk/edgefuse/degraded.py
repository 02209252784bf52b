"""Accuracy when a sensor is degraded, not missing: corruption retention and fusion regret.

For a trained contract model, a labelled split, a test set ``T`` (the modalities present; default every
modality) and a corruption (:mod:`edgefuse.data.corruptions`) of one modality of ``T`` at a severity,
every modality of ``T`` stays present (rows a corruption makes invalid, NaN rows, are marked absent for
that modality, as the runtime requires) and:

* **fused accuracy**: the model with every modality of ``T``, the corrupted one included;
* **single-modality accuracy**: the same model with only that modality present, on the same (corrupted)
  rows, for each modality of ``T``;
* **corruption retention** = fused accuracy under the corruption / clean fused accuracy (same ``T``);
* **fusion regret** = (best single-modality accuracy on the same rows) - (fused accuracy), for ``|T| ≥ 2``
  (None for one modality: there is nothing to fuse). Zero or below is good: fusing never loses to the
  best sensor alone. Above zero the model would do better by ignoring the degraded sensor, which a
  fusion with one constant weight per modality cannot do.

Definitions in docs/metrics.md. The robustness grid's corruption axis (:mod:`edgefuse.grid_corruptions`)
evaluates every grid model this way, for every ``T`` that contains the corrupted modality.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from edgefuse.errors import ContractError
from edgefuse.modality_sets import format_set

__all__ = [
    "corruption_curves",
    "corruption_metrics",
    "evaluate_corrupted",
    "fused_and_single",
    "fusion_regret",
]


def fusion_regret(fused: float, singles: Mapping[str, float]) -> float:
    """``max(singles) - fused``: how much better the best single modality does on the same rows."""
    if not singles:
        raise ContractError("fusion regret needs at least one single-modality accuracy")
    return float(max(singles.values()) - fused)


def corruption_metrics(
    fused: float, singles: Mapping[str, float], clean_fused: float | None = None
) -> dict[str, Any]:
    """The metrics of one test set ``T`` on (corrupted) rows.

    Args:
        fused: Accuracy with every modality of ``T`` present.
        singles: Accuracy of each modality of ``T`` alone, on the same rows (its keys are ``T``).
        clean_fused: The clean fused accuracy of the same ``T`` (None: no retention).

    Returns:
        ``{"fused", "single", "best_single", "regret", "retention"}``: ``regret`` is
        :func:`fusion_regret` for ``|T| ≥ 2`` and None for one modality; ``retention`` is
        ``fused / clean_fused``, None when ``clean_fused`` is None or 0.

    Raises:
        ContractError: ``singles`` is empty.
    """
    if not singles:
        raise ContractError("the metrics of a test set need the accuracy of each of its modalities alone")
    return {
        "fused": float(fused),
        "single": {m: float(v) for m, v in singles.items()},
        "best_single": max(singles, key=lambda m: singles[m]),
        "regret": fusion_regret(fused, singles) if len(singles) > 1 else None,
        "retention": float(fused) / clean_fused if clean_fused else None,
    }


def _accuracy(
    model: Any, split: Any, present: Sequence[str], valid: Mapping[str, np.ndarray] | None
) -> float:
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


def fused_and_single(
    model: Any,
    split: Any,
    test_sets: Sequence[Sequence[str]],
    valid: Mapping[str, np.ndarray] | None = None,
) -> dict[str, dict[str, float]]:
    """Accuracy of ``model`` on ``split`` with each test set present, and with each of their modalities alone.

    Args:
        model: A contract model over every modality of ``split``.
        split: A :class:`~edgefuse.data.base.Split` (e.g. a
            :class:`~edgefuse.data.corruptions.CorruptedSplit`) holding every modality of the model.
        test_sets: The ``T`` evaluated (each non-empty, modalities of the model).
        valid: Modality -> bool ``(N,)``: rows flagged False are marked absent for that modality (the
            NaN rows of a corruption); None: every row is valid.

    Returns:
        ``{"fused": {"a+b": acc for each T}, "single": {m: acc for each modality of any T}}``; a row with
        no modality present counts as wrong.

    Raises:
        ContractError: An empty test set or a modality the model does not have.
    """
    return _fused_and_single(model, split, test_sets, valid)


def _fused_and_single(
    model: Any,
    split: Any,
    test_sets: Sequence[Sequence[str]],
    valid: Mapping[str, np.ndarray] | None,
    known: Mapping[str, float] | None = None,
) -> dict[str, dict[str, float]]:
    """:func:`fused_and_single`, given ``known`` single-modality accuracies.

    ``known`` were measured on the very same inputs and rows, so they are not measured again; a
    one-modality ``T`` is its single-modality accuracy (the same computation).
    """
    names = list(model.modality_names)
    sets = [tuple(t) for t in test_sets]
    bad = [t for t in sets if not t or any(m not in names for m in t)]
    if bad:
        raise ContractError(f"test sets {bad} are not non-empty sets of the model's modalities {names}")
    model.eval()
    wanted = [m for m in names if any(m in t for t in sets)]
    single = {m: known[m] if known and m in known else _accuracy(model, split, [m], valid) for m in wanted}
    fused = {format_set(t): single[t[0]] if len(t) == 1 else _accuracy(model, split, t, valid) for t in sets}
    return {"fused": fused, "single": single}


def _same(
    clean: Any, split: Any, valid: Mapping[str, np.ndarray], measured: Mapping[str, Any]
) -> dict[str, float]:
    """The clean single-modality accuracies (``measured["single"]``) that ``split`` leaves as they are.

    Those of the modalities whose inputs are the very same arrays as ``clean``'s, every row valid: the
    same computation, nothing to measure again.
    """
    return {
        k: v
        for k, v in measured["single"].items()
        if split.inputs[k] is clean.inputs[k] and (k not in valid or bool(np.all(valid[k])))
    }


def corruption_curves(
    model: Any,
    data: Any,
    corruptions: Sequence[tuple[str, str]],
    severities: Sequence[int] = (1, 2, 3, 4, 5),
    split: str = "test",
    seed: int = 0,
    *,
    test_set: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Fused and single-modality accuracy of ``model`` with ``T`` present under each corruption and severity.

    Args:
        model: A contract model (:class:`~edgefuse.models.contract.MultimodalModel`) over every modality
            of ``data``.
        data: A labelled :class:`~edgefuse.data.base.MultimodalDataset`.
        corruptions: ``(modality, kind)`` pairs (see :func:`edgefuse.data.corruptions.parse_corruptions`),
            each of a modality of ``T``.
        severities: Severities 1..5.
        split: The split evaluated.
        seed: Corruption seed.
        test_set: ``T``, the modalities present (default: every modality of the model).

    Returns:
        ``{"test_set": [...], "clean": {"fused", "single": {m: acc}, "regret"}, "curves": [{"modality",
        "kind", "severity", "domain", "fused", "single": {m: acc}, "best_single", "regret", "retention",
        "invalid_rows"}], "split", "seed", "rows"}``; ``single`` has the modalities of ``T``, ``regret``
        is None when ``|T| = 1`` (see :func:`corruption_metrics`).

    Raises:
        ContractError: A model whose modalities are not the dataset's, a ``T`` that is empty or not of
            the model's modalities, or a corruption of a modality outside ``T``.
        DataError: A bad corruption, severity, seed or split (from :mod:`edgefuse.data.corruptions`).
    """
    from edgefuse.data.corruptions import corrupt_split, parse_severities

    names = list(model.modality_names)
    if sorted(names) != sorted(data.modality_names):
        raise ContractError(
            f"the model has modalities {names} and the dataset {list(data.modality_names)}; they must match"
        )
    t = tuple(names) if test_set is None else tuple(m for m in names if m in test_set)
    if test_set is not None and (not t or len(t) != len(set(test_set))):
        raise ContractError(f"test_set {list(test_set)} must be a non-empty set of the modalities {names}")
    outside = [f"{m}:{k}" for m, k in corruptions if m not in t]
    if outside:
        raise ContractError(
            f"corruptions {outside} are of modalities outside the test set {format_set(t)}; a corruption "
            "of an absent modality changes nothing: corrupt a modality of the test set"
        )
    sevs = parse_severities(list(severities))
    clean_split = data.split(split)
    clean = fused_and_single(model, clean_split, [t])
    clean_fused = clean["fused"][format_set(t)]
    curves = []
    for modality, kind in corruptions:
        for severity in sevs:
            corrupted = corrupt_split(data, split, modality, kind, severity, seed)
            valid = {m: np.asarray(v, bool) for m, v in corrupted.valid.items()}
            acc = _fused_and_single(model, corrupted, [t], valid, _same(clean_split, corrupted, valid, clean))
            row = corruption_metrics(acc["fused"][format_set(t)], acc["single"], clean_fused)
            curves.append(
                {
                    "modality": modality,
                    "kind": kind,
                    "severity": severity,
                    "domain": corrupted.record.get("domain"),
                    **row,
                    "invalid_rows": int(sum((~v).sum() for v in valid.values())),
                }
            )
    clean_row = corruption_metrics(clean_fused, clean["single"])
    return {
        "test_set": list(t),
        "split": split,
        "seed": seed,
        "rows": len(clean_split.labels),
        "clean": {k: clean_row[k] for k in ("fused", "single", "regret")},
        "curves": curves,
    }


def evaluate_corrupted(model: Any, clean: Any, corrupted: Sequence[Any]) -> dict[str, Any]:
    """Accuracy of ``model`` for every test set containing the corrupted modality, clean and corrupted.

    What one job of the robustness grid's corruption axis computes (:mod:`edgefuse.grid_corruptions`);
    the metrics (retention, regret) are derived from it per seed by the grid.

    Args:
        model: A contract model over every modality of ``clean``.
        clean: The clean split.
        corrupted: :class:`~edgefuse.data.corruptions.CorruptedSplit` s of the same rows, each with
            ``record["modality"]``, ``["kind"]`` and ``["severity"]``, and ``valid`` for (at least) the
            corrupted modality; a modality missing from its ``inputs`` is the clean split's.

    Returns:
        ``{"clean": {"fused": {T: acc}, "single": {m: acc}}, "curves": [{"modality", "kind", "severity",
        "fused": {T: acc}, "single": {m: acc}, "invalid_rows"}]}`` with ``T`` (``a+b``) every subset of
        the model's modalities that contains the corrupted modality (``clean``: any corrupted modality),
        ``single`` every modality of the model, ``invalid_rows`` the rows marked absent.

    Raises:
        ContractError: A corrupted split whose rows or labels are not the clean split's.
    """
    from edgefuse.modality_sets import subsets

    names = list(model.modality_names)
    parts = list(corrupted)
    if not parts:
        return {"clean": {}, "curves": []}
    sets_of = {m: [t for t in subsets(names) if m in t] for m in names}
    touched = {str(c.record["modality"]) for c in parts}
    clean_sets = [t for t in subsets(names) if touched & set(t)]
    base = _fused_and_single(model, clean, [*clean_sets, *((m,) for m in names)], None)
    base["fused"] = {format_set(t): base["fused"][format_set(t)] for t in clean_sets}
    out: dict[str, Any] = {"clean": base, "curves": []}
    for c in parts:
        m = str(c.record["modality"])
        if len(c.labels) != len(clean.labels) or not np.array_equal(c.labels, clean.labels):
            raise ContractError(
                f"the corrupted split {dict(c.record)} does not hold the rows of the clean split"
            )
        split = type(c)({**clean.inputs, **c.inputs}, c.labels, c.valid, c.record)
        valid = {k: np.asarray(v, bool) for k, v in c.valid.items()}
        acc = _fused_and_single(model, split, sets_of[m], valid, _same(clean, split, valid, base))
        out["curves"].append(
            {
                "modality": m,
                "kind": str(c.record["kind"]),
                "severity": int(c.record["severity"]),
                **acc,
                "invalid_rows": int(sum((~v).sum() for v in valid.values())),
            }
        )
    return out
