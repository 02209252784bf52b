"""Calibration data for int8 post-training quantization that knows about missing modalities.

Each graph of an artifact sees, at run time, a different distribution, and is calibrated on that one:

* an **encoder** graph (role ``encoder:<modality>``) runs only when its modality is present, on that
  modality's data: it is calibrated on its own modality's rows;
* the **head** graph (input ``fused``) sees the fused embedding of whatever subset of modalities is
  present on the device. It is calibrated on fused embeddings computed with the PyTorch model (its
  encoders, then ``model.fusion``, the kernel's math) for **every presence pattern** given, in equal
  shares: the sampled rows are split into one disjoint slice per pattern (each pattern gets a different
  subset of the seeded sample, shares differing by at most one row), so the head sees as many rows as
  each encoder and no pattern dominates its activation ranges. The empty pattern (no sensor present)
  is allowed: its fused embedding is the LayerNorm bias, as in the kernel;
* the **monolithic** graph (inputs: the modalities and a bool ``presence`` mask) is calibrated on the
  same per-pattern slices, absent modalities zero-filled and the mask set accordingly.

Rows are sampled with a seeded generator: ``samples`` rows without replacement when the data has at
least that many, else every row (repeating rows would add nothing to the ranges). Calling with
``patterns=[all exported modalities]`` (or :func:`build_calibration_all_present`) gives the
"all-present only" calibration to compare against.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from edgefuse.export.errors import CalibrationError
from edgefuse.export.graphs import GraphSpec
from edgefuse.export.quantize import MIN_CALIBRATION_SAMPLES

__all__ = ["CalibrationData", "build_calibration", "build_calibration_all_present", "pattern_label"]

logger = logging.getLogger(__name__)


def pattern_label(pattern: Sequence[str]) -> str:
    """``"audio+image"`` for a presence pattern; ``"none"`` for the empty one."""
    return "+".join(pattern) if pattern else "none"


@dataclass
class CalibrationData:
    """Calibration feeds per graph.

    Attributes:
        feeds: Graph name -> batches, each a feed dict keyed by the graph's input names (float32
            arrays; the monolithic ``presence`` mask is bool), at most ``batch`` rows each.
        rows: Rows sampled from the data (each encoder sees all of them; head and monolithic graphs see
            them split over the patterns).
        patterns: The presence patterns (modality names in export order) the head/monolithic graphs were
            calibrated on.
        source: Where the rows came from (e.g. ``"av-digits:train"``).
        seed: The sampling seed.
        shares: Pattern label (:func:`pattern_label`) -> rows of that pattern.
    """

    feeds: dict[str, list[dict[str, np.ndarray]]]
    rows: int
    patterns: list[tuple[str, ...]]
    source: str
    seed: int = 0
    shares: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON summary for the manifest (no arrays): rows per graph, patterns, shares, source, seed."""
        return {
            "source": self.source,
            "seed": self.seed,
            "rows": self.rows,
            "rows_per_graph": {
                name: int(sum(_batch_rows(feed) for feed in batches)) for name, batches in self.feeds.items()
            },
            "batches_per_graph": {name: len(batches) for name, batches in self.feeds.items()},
            "patterns": [list(p) for p in self.patterns],
            "shares": dict(self.shares),
        }


def _batch_rows(feed: Mapping[str, np.ndarray]) -> int:
    return int(np.asarray(next(iter(feed.values()))).shape[0])


def build_calibration_all_present(
    model: Any,
    inputs: Mapping[str, np.ndarray],
    graphs: Sequence[GraphSpec],
    exported: Sequence[str],
    *,
    samples: int = 256,
    seed: int = 0,
    batch: int = 32,
    source: str = "",
) -> CalibrationData:
    """:func:`build_calibration` with the single pattern "every exported modality present".

    The baseline a missing-modality-aware calibration is compared with.
    """
    return build_calibration(
        model,
        inputs,
        graphs,
        exported,
        [tuple(exported)],
        samples=samples,
        seed=seed,
        batch=batch,
        source=source,
    )


def build_calibration(
    model: Any,
    inputs: Mapping[str, np.ndarray],
    graphs: Sequence[GraphSpec],
    exported: Sequence[str],
    patterns: Sequence[tuple[str, ...]],
    *,
    samples: int = 256,
    seed: int = 0,
    batch: int = 32,
    source: str = "",
) -> CalibrationData:
    """Calibration feeds for every graph of an artifact (see the module docstring).

    Args:
        model: The contract model (:class:`~edgefuse.models.contract.MultimodalModel`); run under
            ``no_grad`` in eval mode (its training flags are restored) to compute fused embeddings.
        inputs: Modality name -> array ``[N, *shape]`` (rows of a dataset split, e.g. ``split.inputs``).
        graphs: The artifact's graphs (:func:`~edgefuse.export.graphs.build_graphs`).
        exported: The exported modalities, in model order.
        patterns: Presence patterns (tuples of exported modality names) the device can produce; the head
            and monolithic graphs get one equal share per pattern.
        samples: Rows to sample (at least 16).
        seed: Sampling seed.
        batch: Rows per calibration batch.
        source: Where ``inputs`` came from, for the manifest.

    Returns:
        The feeds per graph name, with a summary (:meth:`CalibrationData.to_dict`).

    Raises:
        CalibrationError: ``samples`` < 16; a bad ``batch``; no or unknown patterns; a modality the
            export needs missing from ``inputs`` or shaped differently from the model's spec; fewer
            than 16 rows; modalities with different row counts; NaN/inf in the data (naming the
            modality and the number of bad rows); a graph role this module does not know.
    """
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < MIN_CALIBRATION_SAMPLES:
        raise CalibrationError(
            f"--calibration-samples must be >= {MIN_CALIBRATION_SAMPLES}; got {samples!r}. Calibrating on "
            "fewer rows gives activation ranges that do not hold on real data"
        )
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise CalibrationError(f"the calibration batch size must be an integer >= 1; got {batch!r}")
    exported = list(exported)
    specs = {m.name: m for m in model.modalities}
    unknown = [m for m in exported if m not in specs]
    if unknown:
        raise CalibrationError(
            f"exported modalities {unknown} are not modalities of the model ({list(specs)})"
        )
    patterns = _check_patterns(patterns, exported)
    needed = _needed_modalities(graphs, exported)
    arrays = _check_inputs(inputs, needed, specs)
    total = next(iter(arrays.values())).shape[0] if arrays else 0

    rng = np.random.default_rng(seed)
    if total >= samples:
        rows = np.sort(rng.choice(total, size=samples, replace=False))
    else:
        rows = rng.permutation(total)
        logger.info("calibration data has %d rows, fewer than the %d asked: using every row", total, samples)
    if len(rows) < len(patterns):
        raise CalibrationError(
            f"{len(rows)} calibration rows cannot be shared over {len(patterns)} presence patterns; raise "
            "--calibration-samples (and give a dataset with that many rows)"
        )
    # one disjoint slice of the (shuffled) sample per pattern, sizes differing by at most one row
    shuffled = rng.permutation(rows)
    slices = np.array_split(shuffled, len(patterns))
    shares = {pattern_label(p): len(s) for p, s in zip(patterns, slices, strict=True)}

    feeds: dict[str, list[dict[str, np.ndarray]]] = {}
    for graph in graphs:
        if graph.role.startswith("encoder"):
            name = graph.inputs[0].name
            feeds[graph.name] = [{name: arrays[name][chunk]} for chunk in _chunks(rows, batch)]
        elif graph.role == "head":
            key = graph.inputs[0].name
            feeds[graph.name] = [
                {key: fused}
                for pattern, part in zip(patterns, slices, strict=True)
                for fused in _fused(model, arrays, pattern, part, batch)
            ]
        elif graph.role == "monolithic":
            feeds[graph.name] = [
                feed
                for pattern, part in zip(patterns, slices, strict=True)
                for feed in _monolithic(graph, arrays, pattern, part, batch)
            ]
        else:
            raise CalibrationError(
                f"graph {graph.name!r} has role {graph.role!r}; calibration knows 'encoder:<modality>', "
                "'head' and 'monolithic'"
            )
    return CalibrationData(
        feeds=feeds, rows=len(rows), patterns=patterns, source=source, seed=seed, shares=shares
    )


def _check_patterns(patterns: Sequence[Sequence[str]], exported: list[str]) -> list[tuple[str, ...]]:
    """Patterns as tuples in export order, deduplicated; each may only name exported modalities."""
    if not patterns:
        raise CalibrationError(
            "no presence pattern was given; the head is calibrated per pattern the device can produce "
            f"(e.g. [{tuple(exported)!r}] for all present)"
        )
    out: list[tuple[str, ...]] = []
    for pattern in patterns:
        if isinstance(pattern, str):
            raise CalibrationError(
                f"presence pattern {pattern!r} is a string; give a tuple of modality names, e.g. ({pattern!r},)"
            )
        extra = [m for m in pattern if m not in exported]
        if extra:
            raise CalibrationError(
                f"presence pattern {tuple(pattern)} names {extra}, which the artifact does not export "
                f"(exported: {exported})"
            )
        normal = tuple(m for m in exported if m in set(pattern))
        if normal not in out:
            out.append(normal)
    return out


def _needed_modalities(graphs: Sequence[GraphSpec], exported: list[str]) -> list[str]:
    """Modalities the graphs need data for (the head needs every exported one, through the encoders)."""
    needed = set()
    for graph in graphs:
        if graph.role.startswith("encoder"):
            needed.add(graph.inputs[0].name)
        elif graph.role in ("head", "monolithic"):
            needed.update(exported)
    return [m for m in exported if m in needed] + sorted(needed - set(exported))


def _check_inputs(
    inputs: Mapping[str, np.ndarray], needed: list[str], specs: Mapping[str, Any]
) -> dict[str, np.ndarray]:
    missing = [m for m in needed if m not in inputs or inputs[m] is None]
    if missing:
        have = sorted(k for k, v in inputs.items() if v is not None)
        raise CalibrationError(
            f"the calibration data lacks modalities {missing} that the export needs (it has {have}); give a "
            f"dataset with {', '.join(repr(m) for m in missing)} via --calibration DATASET[:SPLIT]"
        )
    arrays: dict[str, np.ndarray] = {}
    for m in needed:
        spec = specs.get(m)
        arr = np.asarray(inputs[m])
        shape = tuple(spec.shape) if spec is not None else tuple(arr.shape[1:])
        if arr.ndim != 1 + len(shape) or tuple(arr.shape[1:]) != shape:
            raise CalibrationError(
                f"calibration modality {m!r} has shape {tuple(arr.shape)}; the model takes "
                f"[N, {', '.join(map(str, shape))}]"
            )
        dtype = np.dtype(getattr(spec, "dtype", "float32"))
        if arr.dtype.kind in "fc":
            finite = np.isfinite(arr.reshape(arr.shape[0], -1)).all(axis=1)
            bad = int(arr.shape[0] - np.count_nonzero(finite))
            if bad:
                raise CalibrationError(
                    f"calibration modality {m!r} has NaN/inf in {bad} of {arr.shape[0]} rows; calibration "
                    "data must be finite (drop or repair those rows, or pick another --calibration split)"
                )
        arrays[m] = arr.astype(dtype, copy=False)
    counts = {m: a.shape[0] for m, a in arrays.items()}
    if len(set(counts.values())) > 1:
        raise CalibrationError(
            f"calibration modalities have different row counts {counts}; each row must hold every modality"
        )
    total = next(iter(counts.values()), 0)
    if total < MIN_CALIBRATION_SAMPLES:
        raise CalibrationError(
            f"the calibration data has only {total} rows; --calibration-samples must be >= "
            f"{MIN_CALIBRATION_SAMPLES} and the data must have that many rows (give a larger split via "
            "--calibration DATASET[:SPLIT])"
        )
    return arrays


def _chunks(rows: np.ndarray, batch: int) -> list[np.ndarray]:
    return [rows[i : i + batch] for i in range(0, len(rows), batch)]


def _fused(
    model: Any, arrays: Mapping[str, np.ndarray], pattern: tuple[str, ...], rows: np.ndarray, batch: int
) -> list[np.ndarray]:
    """Fused embeddings ``[b, D]`` (float32) of ``rows`` with only ``pattern``'s modalities present."""
    import torch

    flags = {m: m.training for m in model.modules()}
    model.eval()
    out = []
    try:
        with torch.no_grad():
            for chunk in _chunks(rows, batch):
                present = {m: torch.from_numpy(np.ascontiguousarray(arrays[m][chunk])) for m in pattern}
                mask = None
                if not pattern:  # no sensor present: the fusion needs the batch size from a mask
                    mask = torch.zeros(len(chunk), len(model.modalities), dtype=torch.bool)
                fused = model.fuse(present, mask)
                out.append(fused.detach().cpu().numpy().astype(np.float32))
    finally:
        for module, flag in flags.items():
            module.training = flag
    return out


def _monolithic(
    graph: GraphSpec,
    arrays: Mapping[str, np.ndarray],
    pattern: tuple[str, ...],
    rows: np.ndarray,
    batch: int,
) -> list[dict[str, np.ndarray]]:
    """Monolithic feeds: present modalities' rows, absent ones zero-filled, the presence mask set."""
    names = [s.name for s in graph.inputs if s.dtype != "bool"]
    mask_spec = next((s for s in graph.inputs if s.dtype == "bool"), None)
    feeds = []
    for chunk in _chunks(rows, batch):
        feed: dict[str, np.ndarray] = {}
        for spec in graph.inputs:
            if spec.dtype == "bool":
                continue
            data = arrays[spec.name][chunk]
            feed[spec.name] = data if spec.name in pattern else np.zeros_like(data)
        if mask_spec is not None:
            column = np.array([n in pattern for n in names], dtype=bool)
            feed[mask_spec.name] = np.broadcast_to(column, (len(chunk), len(names))).copy()
        feeds.append({s.name: feed[s.name] for s in graph.inputs})
    return feeds
