"""Corrupting a dataset split, and training augmentation."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgefuse.data.base import MultimodalDataset, Split
from edgefuse.data.corruptions.signals import (
    _check_waveforms,
    _draw_microphone,
    corrupt_array,
    corrupt_audio_features,
    split_waveforms,
)
from edgefuse.data.corruptions.specs import (
    _DOMAINS,
    ANY,
    FEATURE_LEVELS,
    SEVERITIES,
    _check_seed,
    _check_severity,
    _lookup,
    _params,
    _split_rng,
    parse_corruptions,
    parse_severities,
)
from edgefuse.errors import DataError, did_you_mean

# --------------------------------------------------------------------------------------------------
# Splits
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CorruptedSplit(Split):
    """A :class:`Split` with one modality corrupted, the per-row validity and what was done.

    Attributes:
        valid: Modality -> bool ``(N,)``: ``False`` where the row holds NaN/Inf and must be marked absent
            (the runtime rejects non-finite present rows). Every modality is listed.
        record: JSON-serialisable description: dataset, split, modality, kind, severity, seed, ``domain``
            (``waveform``, ``features``, ``pixels``, ``model-input``), params, seconds...
    """

    valid: Mapping[str, np.ndarray] = field(default_factory=dict)
    record: Mapping[str, Any] = field(default_factory=dict)

    def subset(self, index: np.ndarray) -> CorruptedSplit:
        """The rows ``index`` of every modality, the labels and the validity flags."""
        return CorruptedSplit(
            {k: v[index] for k, v in self.inputs.items()},
            self.labels[index],
            {k: v[index] for k, v in self.valid.items()},
            dict(self.record),
        )

    @property
    def present(self) -> dict[str, np.ndarray]:
        """``valid`` as a presence mask to feed the model/runtime (a NaN row is absent, never fused)."""
        return {k: v.copy() for k, v in self.valid.items()}


def _raw_images(data: MultimodalDataset, split: str, name: str) -> tuple[np.ndarray, Any] | None:
    """Raw AV-digits pixels of a split's image rows and a function mapping raw rows to model inputs.

    ``None`` when the dataset has no recoverable raw 8x8 digits (then images are corrupted as stored).
    """
    spec = next(m for m in data.modalities if m.name == name)
    if spec.preprocessing != "digits8x8-v1":
        return None
    meta = data.meta
    if data.name == "av-digits":
        index = (meta.get("image_index") or {}).get(split)
    else:
        index = (meta.get("image_rows") or {}).get(split)
    train_rows = (meta.get("image_rows") or {}).get("train")
    if index is None or train_rows is None:
        return None
    from edgefuse.data import avdigits as _av  # read-only use of the loader's own image functions

    images, _ = _av._load_digit_images()
    index = np.asarray(index, dtype=np.int64)
    k = meta.get("degrade_image")
    stored = data.split(split).inputs[name]

    def to_input(raw_rows: np.ndarray) -> np.ndarray:
        flat = raw_rows.reshape(len(raw_rows), -1)
        if k is not None:
            both, _ = _av._pca_degrade(np.concatenate([images, flat]), np.asarray(train_rows), int(k))
            flat = both[len(images) :]
        return flat.reshape(-1, *spec.shape).astype(np.float32)

    raw = images[index].reshape(-1, *spec.shape)
    if len(raw) != len(stored) or not np.allclose(to_input(raw), stored, atol=1e-5):
        warnings.warn(
            f"{data.name}: the raw digit images do not reproduce the stored image rows of split {split!r}; "
            "corrupting the stored (model-input) images instead",
            UserWarning,
            stacklevel=3,
        )
        return None
    return raw, to_input


def _corrupt_rows(
    data: MultimodalDataset,
    split: str,
    modality: str,
    kind: str,
    severity: int,
    seed: int,
    rows: np.ndarray,
    domain: str,
    value: float | None,
    microphone: str = "per-seed",
) -> tuple[np.ndarray, dict[str, Any]]:
    """Corrupted model inputs for ``rows`` of one split's modality, and the record.

    ``microphone`` (audio ``eq`` on waveforms): ``per-seed`` (one microphone for every row: a device)
    or ``per-row`` (training augmentation: every row another microphone).
    """
    spec = _lookup(modality, kind, data.modality_names)
    arr = data.split(split).inputs[modality]
    if spec.modality == ANY:
        raise AssertionError("any-modality kinds are handled by corrupt_array")  # pragma: no cover
    if spec.modality == "audio":
        if modality != "audio":
            raise DataError(
                f"audio corruption {kind!r} applies to the modality named 'audio', not {modality!r}"
            )
        use_wave = domain == "waveform" or (domain == "auto" and "audio_files" in data.meta)
        if use_wave:
            waves, cfg = split_waveforms(data, split)
            _check_waveforms(data, split, waves, cfg, modality)
            feats = corrupt_audio_features(
                [waves[i] for i in rows], cfg, kind, severity, seed, row_ids=rows, microphone=microphone
            )
            rec: dict[str, Any] = {
                "domain": "waveform",
                "params": _params(spec, severity),
                "pipeline": "recording -> corruption -> logmel-v1 (the dataset's audio_config)",
            }
            if kind == "eq" and microphone == "per-seed":  # the concrete microphone of this seed
                rec["microphone"] = _draw_microphone(_split_rng(seed, "audio", kind), **rec["params"])
            return feats, rec
        out, _, frec = corrupt_array(arr[rows], modality, kind, severity, seed, row_ids=rows)
        return out, {k: frec[k] for k in ("domain", "params", "note")}
    # image kinds
    raw = _raw_images(data, split, modality)
    if raw is not None:
        images, to_input = raw
        corrupted, _, rec = corrupt_array(
            images[rows], "image", kind, severity, seed, row_ids=rows, value_range=(0.0, 1.0)
        )
        k = data.meta.get("degrade_image")
        extra = (
            {"pca_components": k, "note": "raw pixels corrupted, then the dataset's PCA (clean train fit)"}
            if k is not None
            else {}
        )
        return to_input(corrupted), {
            "domain": "pixels",
            "params": rec["params"],
            "value_range": [0.0, 1.0],
            **extra,
        }
    full_scale = None
    finite = arr[np.isfinite(arr)]
    if finite.size:
        lo, hi = np.percentile(finite, [1, 99])
        full_scale = float(hi - lo) or 1.0
    out, _, rec = corrupt_array(arr[rows], modality, kind, severity, seed, row_ids=rows, scale=full_scale)
    return out, {"domain": "model-input", "params": rec["params"], "scale": full_scale}


def corrupt_split(
    data: MultimodalDataset,
    split: str,
    modality: str,
    kind: str,
    severity: int,
    seed: int = 0,
    *,
    domain: str = "auto",
    value: float | None = None,
) -> CorruptedSplit:
    """Return a copy of a split with one modality corrupted (the dataset is never modified).

    The other modalities are the same arrays, the labels are unchanged; the same seed gives the same
    result. See the module docstring for where each kind is applied.

    Args:
        data: The dataset.
        split: ``train``, ``val`` or ``test``.
        modality: One of the dataset's modalities.
        kind: See :data:`CORRUPTIONS` (``audio``/``image`` kinds, or ``zeros``/``const``/``nan`` for any).
        severity: 1..5.
        seed: Seeds the draws.
        domain: Audio only: ``auto`` (the waveform when the dataset records its recordings, else the
            feature-domain variant), ``waveform`` (raise when impossible) or ``features``.
        value: ``const`` only: the constant (default the clean split's maximum of the modality).

    Returns:
        A :class:`CorruptedSplit` (a :class:`Split`) with ``valid`` and ``record``.

    Raises:
        DataError: For an unknown split, modality or kind (with the closest name and the allowed ones), a
            severity outside 1..5, a bad seed or domain, ``eq``/``clip`` without a waveform, or
            ``domain="waveform"`` on a dataset without recordings.
    """
    import time

    t0 = time.perf_counter()
    spec = _lookup(modality, kind, data.modality_names)
    severity, seed = _check_severity(severity), _check_seed(seed)
    if domain not in _DOMAINS:
        raise DataError(
            f"domain={domain!r}; expected one of {list(_DOMAINS)}{did_you_mean(str(domain), _DOMAINS)}"
        )
    src = data.split(split)
    n = len(src)
    record: dict[str, Any] = {
        "dataset": data.name,
        "split": split,
        "modality": modality,
        "kind": kind,
        "severity": severity,
        "seed": seed,
    }
    if spec.modality == ANY:
        out, _, rec = corrupt_array(src.inputs[modality], modality, kind, severity, seed, value=value)
        record.update({k: v for k, v in rec.items() if k not in record})
    else:
        out, rec = _corrupt_rows(data, split, modality, kind, severity, seed, np.arange(n), domain, value)
        record.update(rec, rows=n)
    inputs = dict(src.inputs)
    inputs[modality] = out
    valid = {
        m: np.isfinite(a.reshape(n, -1)).all(axis=1) if n else np.ones(0, dtype=bool)
        for m, a in inputs.items()
    }
    record["invalid_rows"] = int((~valid[modality]).sum())
    record["seconds"] = round(time.perf_counter() - t0, 4)
    return CorruptedSplit(inputs, src.labels.copy(), valid, record)


# --------------------------------------------------------------------------------------------------
# Training augmentation
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Augmented:
    """The result of :func:`augment`.

    Attributes:
        inputs: Modality -> the (possibly) corrupted batch (new arrays; the input batch is not modified).
        valid: Modality -> bool ``(B,)``, ``False`` for NaN rows (mark them absent).
        applied: Modality -> ``(B,)`` strings ``kind@severity`` (``""`` for an untouched row).
    """

    inputs: dict[str, np.ndarray]
    valid: dict[str, np.ndarray]
    applied: dict[str, np.ndarray]


def _as_pairs(kinds: str | Iterable[str] | Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    if isinstance(kinds, str):
        return parse_corruptions(kinds)
    items = list(kinds)
    if items and all(isinstance(k, tuple) for k in items):
        for m, k in items:
            _lookup(m, k)
        return list(dict.fromkeys(items))  # type: ignore[arg-type]
    return parse_corruptions(items)  # type: ignore[arg-type]


def _check_p(p: object) -> float:
    """A probability in [0, 1]; :class:`DataError` otherwise."""
    if not isinstance(p, int | float) or isinstance(p, bool) or not 0.0 <= p <= 1.0:
        raise DataError(f"p={p!r} must be a probability in [0, 1]")
    return float(p)


def _row_groups(
    rng: np.random.Generator, n: int, kinds: Sequence[str], severities: Sequence[int], p: float
) -> list[tuple[str, int, np.ndarray]]:
    """Which rows get which kind at which severity: ``(kind, severity, rows)`` per non-empty group.

    Each row is hit with probability ``p``, then a kind and a severity are drawn uniformly.
    """
    hit = rng.random(n) < p
    which = rng.integers(0, len(kinds), n)
    level = np.asarray(severities)[rng.integers(0, len(severities), n)]
    groups = []
    for ki, k in enumerate(kinds):
        for s in severities:
            rows = np.flatnonzero(hit & (which == ki) & (level == s))
            if len(rows):
                groups.append((k, int(s), rows))
    return groups


def _any_fill(kind: str, x: np.ndarray) -> float:
    """The value an any-modality kind writes: 0 (zeros), NaN (nan) or the array's maximum (const)."""
    return 0.0 if kind == "zeros" else np.nan if kind == "nan" else float(np.nanmax(x))


def augment(
    batch_inputs: Mapping[str, np.ndarray],
    rng: np.random.Generator,
    kinds: str | Iterable[str] | Iterable[tuple[str, str]],
    p: float = 0.5,
    severities: Sequence[int] = SEVERITIES,
    *,
    value_ranges: Mapping[str, tuple[float, float]] | None = None,
) -> Augmented:
    """Training augmentation on a batch of model inputs (random kind and severity per row).

    Each row of each listed modality is corrupted with probability ``p`` by one kind drawn uniformly from
    that modality's ``kinds``, at a severity drawn uniformly from ``severities``.

    Works on model inputs: audio kinds use their feature-domain variant (``eq``/``clip`` raise; for
    waveform-level augmentation precompute with :func:`augment_split`); image kinds work on the given
    arrays (clipped to ``value_ranges[modality]`` when given); the any-modality kinds replace the whole row
    (``nan`` rows come back ``valid=False``).

    Raises:
        DataError: For an unknown kind, a modality not in the batch, ``p`` outside [0, 1], a bad severity,
            or an audio kind without a feature-domain variant.
    """
    pairs = _as_pairs(kinds)
    sev = parse_severities(list(severities))
    _check_p(p)
    names = list(batch_inputs)
    by_mod: dict[str, list[str]] = {}
    for m, k in pairs:
        _lookup(m, k, names)
        if _lookup(m, k).modality == "audio" and k not in FEATURE_LEVELS:
            raise DataError(
                f"audio:{k} needs the waveform; augment() sees features only (feature-domain kinds: "
                f"{list(FEATURE_LEVELS)}); use augment_split() for waveform-level augmentation"
            )
        by_mod.setdefault(m, []).append(k)
    inputs = {m: np.asarray(a) for m, a in batch_inputs.items()}
    applied = {m: np.full(len(a), "", dtype=object) for m, a in inputs.items()}
    for m, ks in by_mod.items():
        x = inputs[m]
        groups = _row_groups(rng, len(x), ks, sev, p)
        call_seed = int(rng.integers(0, 2**62))
        out = x.astype(np.float32, copy=True)
        for k, s, rows in groups:
            if _lookup(m, k).modality == ANY:
                out[rows] = _any_fill(k, x)
            else:
                vr = (value_ranges or {}).get(m)
                out[rows], _, _ = corrupt_array(
                    x[rows], m, k, int(s), call_seed, row_ids=rows, value_range=vr
                )
            applied[m][rows] = f"{k}@{s}"
        inputs[m] = out
    valid = {m: np.isfinite(a.reshape(len(a), -1)).all(axis=1) for m, a in inputs.items()}
    return Augmented(inputs, valid, applied)


def augment_split(
    data: MultimodalDataset,
    split: str,
    kinds: str | Iterable[str] | Iterable[tuple[str, str]],
    p: float = 0.5,
    seed: int = 0,
    severities: Sequence[int] = SEVERITIES,
) -> CorruptedSplit:
    """A corrupted copy of a split for training (random kind and severity per row, like :func:`augment`).

    Each kind is applied where :func:`corrupt_split` applies it (audio on the waveform when the recordings are known, images before the
    PCA degradation). The any-modality kinds replace the chosen rows whole.

    ``record["applied"]`` maps each modality to its per-row ``kind@severity`` (``""`` untouched). Audio
    ``eq`` on waveforms draws another microphone for every row (training should see many devices; an
    evaluation with :func:`corrupt_split` uses one microphone per seed, as one device would).
    """
    pairs = _as_pairs(kinds)
    sev = parse_severities(list(severities))
    seed = _check_seed(seed)
    _check_p(p)
    src = data.split(split)
    n = len(src)
    rng = np.random.default_rng([seed, 0xA06])
    by_mod: dict[str, list[str]] = {}
    for m, k in pairs:
        _lookup(m, k, data.modality_names)
        by_mod.setdefault(m, []).append(k)
    inputs = dict(src.inputs)
    applied: dict[str, list[str]] = {}
    for m, ks in by_mod.items():
        groups = _row_groups(rng, n, ks, sev, p)
        out = src.inputs[m].astype(np.float32, copy=True)
        tags = np.full(n, "", dtype=object)
        for k, s, rows in groups:
            if _lookup(m, k).modality == ANY:
                out[rows] = _any_fill(k, src.inputs[m])
            else:
                out[rows], _ = _corrupt_rows(data, split, m, k, int(s), seed, rows, "auto", None, "per-row")
            tags[rows] = f"{k}@{s}"
        inputs[m] = out
        applied[m] = tags.tolist()
    valid = {
        m: np.isfinite(a.reshape(n, -1)).all(axis=1) if n else np.ones(0, dtype=bool)
        for m, a in inputs.items()
    }
    record = {
        "dataset": data.name,
        "split": split,
        "augment": [f"{m}:{k}" for m, k in pairs],
        "p": p,
        "seed": seed,
        "severities": list(sev),
        "applied": applied,
    }
    return CorruptedSplit(inputs, src.labels.copy(), valid, record)
