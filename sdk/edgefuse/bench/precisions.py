"""Precisions and accuracy for ``edgefuse bench``: fp32 / fp16 / int8 side by side per presence pattern.

A checkpoint is benchmarked, per backend of the profile, at **every precision the profile lists that the
backend's format implements** (:data:`~edgefuse.export.selection.FORMAT_PRECISIONS`), in the profile's
order. int8 needs calibration data: a labelled dataset (its ``train`` split calibrates, its ``test`` split
validates the export and measures accuracy). With such a dataset every row (backend x precision x pattern)
also gets the top-1 ``accuracy`` of the session on the test split with only the pattern's modalities given.

Nothing here imports :mod:`edgefuse.bench` (it imports this module); heavy imports happen inside functions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgefuse.errors import ContractError

__all__ = [
    "ACCURACY_BATCH",
    "INT8_NEEDS_DATA",
    "accuracy_source",
    "export_precisions",
    "format_precisions",
    "int8_settings",
    "labelled_split",
    "load_bench_data",
    "pattern_accuracy",
    "side_by_side",
]

#: Rows per ``predict`` call when measuring accuracy.
ACCURACY_BATCH = 256

#: Why int8 is not benchmarked without data (the ``unavailable`` reason).
INT8_NEEDS_DATA = "int8 needs calibration data: pass --data NAME (the checkpoint's training data)"


def format_precisions(profile: Any, fmt: str) -> tuple[list[str], list[str]]:
    """The precisions to benchmark ``fmt`` at for ``profile``, and those the profile lists that it lacks.

    Returns:
        ``(implemented, not_implemented)``: the profile's precisions in its order, split by whether
        EdgeFuse exports ``fmt`` at that precision (:data:`~edgefuse.export.selection.FORMAT_PRECISIONS`).
    """
    from edgefuse.export.selection import FORMAT_PRECISIONS

    implemented = FORMAT_PRECISIONS.get(fmt, ())
    listed = list(dict.fromkeys(str(p) for p in profile.precisions))
    return [p for p in listed if p in implemented], [p for p in listed if p not in implemented]


def int8_settings(data: Any, max_drop: float = 1.0) -> Any:
    """:class:`~edgefuse.export.int8.Int8Settings` from a dataset: calibration on ``train``, validation on ``test``."""
    from edgefuse.export.int8 import Int8Settings

    return Int8Settings.from_dataset(data, max_drop=float(max_drop))


def export_precisions(
    checkpoint: Path,
    profile: Any,
    backend: str,
    fmt: str,
    base: Path,
    *,
    data: Any = None,
    max_int8_drop: float = 1.0,
    say: Callable[[str], None] = lambda _msg: None,
) -> tuple[list[tuple[str, Path]], list[dict[str, str]]]:
    """Export (or reuse from the cache) ``fmt`` at every precision ``profile`` lists that ``fmt`` implements.

    Each precision goes to ``base/<fmt>-<precision>`` through :func:`edgefuse.export.export_cached`
    (reused while the checkpoint, and for int8 the calibration settings, are unchanged). fp16 is checked
    for top-1 agreement on ``data``'s test split when ``data`` is given; int8 is calibrated on its train
    split and validated on its test split (a drop above ``max_int8_drop`` points on a pattern fails it).

    Args:
        checkpoint: The checkpoint folder.
        profile: The :class:`~edgefuse.profiles.DeviceProfile`.
        backend: The backend the artifacts are for (named in ``unavailable``).
        fmt: Its format.
        base: The cache folder of this checkpoint and profile.
        data: A labelled :class:`~edgefuse.data.base.MultimodalDataset`, or ``None`` (then int8 is listed
            as unavailable with :data:`INT8_NEEDS_DATA`).
        max_int8_drop: Largest accuracy drop (points) an int8 export may show on any pattern.
        say: Progress callback.

    Returns:
        ``(exported, unavailable)``: ``[(precision, artifact folder)]`` in the profile's order, and
        ``[{"backend", "precision", "reason"}]`` for precisions not exported (not implemented for the
        format, no data for int8, or an export that failed or is unavailable here).

    Raises:
        EdgeFuseError: As :func:`~edgefuse.export.export_cached` raises it (bad options, a cache folder
            that may not be replaced).
    """
    from edgefuse.export import export_cached

    todo, lacking = format_precisions(profile, fmt)
    unavailable = [
        {
            "backend": backend,
            "precision": p,
            "reason": f"EdgeFuse does not export {fmt} at {p} (it implements {', '.join(_implemented(fmt))})",
        }
        for p in lacking
    ]
    exported: list[tuple[str, Path]] = []
    for precision in todo:
        if precision == "int8" and data is None:
            unavailable.append({"backend": backend, "precision": precision, "reason": INT8_NEEDS_DATA})
            continue
        say(f"{backend}: exporting {fmt} ({precision}) for {profile.id}")
        result, reused = export_cached(
            checkpoint,
            profile,
            fmt,
            base / f"{fmt}-{precision}",
            precision=precision,
            agreement_split=data.split("test") if data is not None and precision == "fp16" else None,
            int8=int8_settings(data, max_int8_drop) if precision == "int8" else None,
        )
        if result.status != "ok" or result.folder is None:
            unavailable.append({"backend": backend, "precision": precision, "reason": str(result.reason)})
            continue
        say(f"{backend}: {'reusing' if reused else 'exported'} {result.folder}")
        exported.append((precision, Path(result.folder)))
    return exported, unavailable


def _implemented(fmt: str) -> tuple[str, ...]:
    from edgefuse.export.selection import FORMAT_PRECISIONS

    return FORMAT_PRECISIONS.get(fmt, ())


def load_bench_data(
    name: str,
    *,
    recorded: Mapping[str, Any] | None = None,
    modalities: Sequence[str] | None = None,
    fsdd: str | Path | None = None,
) -> Any:
    """Load the labelled dataset ``name`` (:func:`edgefuse.data.registry.load_dataset`) for a benchmark.

    Args:
        name: A dataset name of :data:`~edgefuse.data.registry.DATASETS`.
        recorded: The checkpoint's recorded training data (``model.json``'s ``dataset``); when its name is
            ``name``, its ``degrade_image`` and ``seed`` are used so the splits are the ones it was
            trained and tested on.
        modalities: The model's modalities (for the synthetic dataset).
        fsdd: The FSDD folder for ``av-digits`` (default ``$EDGEFUSE_FSDD``).

    Raises:
        DataError: An unknown name (with the closest match), or data that cannot be loaded here; the
            message names the fix.
    """
    from edgefuse.data.registry import load_dataset
    from edgefuse.errors import DataError

    rec = dict(recorded) if isinstance(recorded, Mapping) else {}
    same = rec.get("name") == name
    try:
        return load_dataset(
            name,
            fsdd=fsdd,
            degrade_image=rec.get("degrade_image") if same else None,
            seed=int(rec.get("seed", 0) or 0) if same else 0,
            modalities=list(modalities) if modalities else None,
        )
    except DataError as exc:
        hint = " (for av-digits give the FSDD recordings with --fsdd PATH or $EDGEFUSE_FSDD)"
        raise DataError(
            f"--data {name}: {exc}{hint if name == 'av-digits' else ''}; or benchmark without --data "
            "(no accuracy, no int8)"
        ) from None


def labelled_split(data: Any, modalities: Sequence[str], label_names: Sequence[str]) -> Any:
    """The labelled split accuracy is measured on (a dataset's ``test`` split, or a split itself), checked.

    Args:
        data: A :class:`~edgefuse.data.base.MultimodalDataset` (its ``test`` split) or a
            :class:`~edgefuse.data.base.Split` with labels.
        modalities: The modalities the session takes.
        label_names: The session's label names; the data's labels must be the same names (a dataset's
            labels in another order are remapped).

    Returns:
        A :class:`~edgefuse.data.base.Split` whose labels index ``label_names``.

    Raises:
        ContractError: The data lacks a modality or labels, or its label names differ from the model's.
    """
    from edgefuse.data.base import Split

    split = data if hasattr(data, "labels") else data.split("test")
    if split.labels is None or len(split) == 0:
        raise ContractError("the accuracy data has no labelled rows; give a labelled dataset with --data")
    missing = [m for m in modalities if m not in split.inputs]
    if missing:
        raise ContractError(
            f"the accuracy data lacks modalit{'y' if len(missing) == 1 else 'ies'} {missing} of this model "
            f"(it has {sorted(split.inputs)}); give the model's own data with --data"
        )
    names = list(getattr(data, "label_names", None) or label_names)
    wanted = [str(n) for n in label_names]
    if [str(n) for n in names] == wanted:
        return split
    if sorted(map(str, names)) != sorted(wanted):
        raise ContractError(
            f"the accuracy data's labels {names} are not this model's {wanted}; give the model's own data "
            "with --data"
        )
    index = {n: i for i, n in enumerate(wanted)}
    remap = np.asarray([index[str(n)] for n in names], dtype=np.int64)
    return Split(dict(split.inputs), remap[np.asarray(split.labels, dtype=np.int64)])


def pattern_accuracy(session: Any, split: Any, pattern: Sequence[str], batch: int = ACCURACY_BATCH) -> float:
    """Top-1 accuracy (0..1) of ``session.predict`` on ``split`` with only ``pattern``'s modalities given."""
    labels = np.asarray(split.labels, dtype=np.int64)
    correct = 0
    for start in range(0, len(labels), batch):
        inputs = {
            m: np.ascontiguousarray(split.inputs[m][start : start + batch], dtype=_dtype(session, m))
            for m in pattern
        }
        pred = session.predict(inputs)
        correct += int((np.asarray(pred.label_ids) == labels[start : start + batch]).sum())
    return correct / len(labels)


def _dtype(session: Any, modality: str) -> np.dtype:
    for spec in session.manifest.data["modalities"]:
        if spec["name"] == modality:
            return np.dtype(spec.get("dtype", "float32"))
    return np.dtype(np.float32)


def accuracy_source(data: Any) -> str:
    """``name:test (N rows)`` for the report (``split (N rows)`` for a bare split)."""
    if hasattr(data, "labels"):
        return f"given split ({len(data)} rows)"
    return f"{data.name}:test ({len(data.split('test'))} rows)"


def side_by_side(
    rows: Sequence[dict[str, Any]], precisions: Sequence[str] = ("fp32", "fp16", "int8")
) -> list[dict[str, Any]]:
    """``rows`` ordered by backend, then pattern (each in first-seen order), then precision.

    So the same backend and pattern at fp32 / fp16 / int8 sit next to each other; precisions not in
    ``precisions`` come last (stable otherwise).
    """
    backends = {b: i for i, b in enumerate(dict.fromkeys(r["backend"] for r in rows))}
    patterns = {p: i for i, p in enumerate(dict.fromkeys(r["pattern"] for r in rows))}
    order = {p: i for i, p in enumerate(precisions)}
    return sorted(
        rows,
        key=lambda r: (
            backends[r["backend"]],
            patterns[r["pattern"]],
            order.get(str(r.get("precision")), len(order)),
        ),
    )
