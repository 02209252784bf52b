"""Corrupting arrays: waveforms (re-featurised), audio features, images, and any modality's rows."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgefuse.data import audio as _audio
from edgefuse.data.audio import AudioFeatureConfig
from edgefuse.data.base import MultimodalDataset
from edgefuse.data.corruptions.specs import (
    ANY,
    CORRUPTIONS,
    FEATURE_LEVELS,
    _check_seed,
    _check_severity,
    _lookup,
    _params,
    _row_ids,
    _row_rng,
    _split_rng,
)
from edgefuse.errors import DataError

# --------------------------------------------------------------------------------------------------
# Audio: waveforms
# --------------------------------------------------------------------------------------------------


def _butter_mag(f: np.ndarray, fc: float, order: int, high: bool) -> np.ndarray:
    with np.errstate(divide="ignore"):
        ratio = fc / np.maximum(f, 1e-9) if high else f / fc
    return 1.0 / np.sqrt(1.0 + ratio ** (2 * order))


def _draw_microphone(
    rng: np.random.Generator, low_hz: float, high_hz: float, bell_db: float
) -> dict[str, float]:
    """A random microphone: jittered band edges and a bell of +-``bell_db`` at a log-uniform centre."""
    jitter = np.exp(rng.uniform(-0.15, 0.15, 2))
    return {
        "low_hz": float(low_hz * jitter[0]),
        "high_hz": float(high_hz * jitter[1]),
        "bell_hz": float(np.exp(rng.uniform(np.log(300.0), np.log(3000.0)))),
        "bell_db": float(bell_db * (1.0 if rng.random() < 0.5 else -1.0)),
        "bell_octaves": 1.0,
    }


def _apply_microphone(x: np.ndarray, mic: Mapping[str, float], sample_rate: int) -> np.ndarray:
    """Zero-phase FFT filter: Butterworth-4 magnitude high-pass and low-pass times a Gaussian bell (octaves)."""
    pad = max(1024, sample_rate // 4)  # > the filter's effective impulse response: no wrap-around
    n = 1 << (len(x) + pad - 1).bit_length()  # a power of two: fast FFT whatever the length
    f = np.fft.rfftfreq(n, 1.0 / sample_rate)
    nyq = sample_rate / 2
    h = _butter_mag(f, min(mic["low_hz"], 0.45 * sample_rate), 4, True)
    h = h * _butter_mag(f, min(mic["high_hz"], 0.98 * nyq), 4, False)
    octaves = np.log2(np.maximum(f, 1.0) / mic["bell_hz"])
    h = h * 10.0 ** (mic["bell_db"] * np.exp(-0.5 * (octaves / (mic["bell_octaves"] / 2)) ** 2) / 20.0)
    return np.fft.irfft(np.fft.rfft(x, n) * h, n)[: len(x)]


def corrupt_waveforms(
    waves: Sequence[np.ndarray],
    kind: str,
    severity: int,
    seed: int = 0,
    *,
    sample_rate: int = _audio.EXPECTED_SAMPLE_RATE,
    row_ids: Sequence[int] | np.ndarray | None = None,
    microphone: str = "per-seed",
) -> list[np.ndarray]:
    """Corrupt raw waveforms (float samples in [-1, 1], as :func:`edgefuse.data.audio.read_wav` returns them).

    Args:
        waves: 1-D waveforms (any lengths); they are not modified.
        kind: ``noise``, ``gain``, ``eq``, ``shift`` or ``clip`` (see the module docstring).
        severity: 1..5.
        seed: Seeds the draws; row ``i`` draws from the stream ``(seed, "audio", kind, row_ids[i])``.
        sample_rate: Their rate (Hz): converts ``shift`` ms to samples and places the ``eq`` band.
        row_ids: Stable ids of the rows (default ``0..n-1``), so a row gets the same draws in any batch.
        microphone: ``eq`` only: ``per-seed`` (one random microphone for all rows) or ``per-row``.

    Returns:
        float32 waveforms; ``shift`` makes them longer (zero padding), the others keep their length.

    Raises:
        DataError: For an unknown kind (or one that is not an audio waveform kind), a bad severity or seed.
    """
    spec = _lookup("audio", kind)
    if spec.modality != "audio":
        raise DataError(
            f"{kind!r} is an any-modality kind; corrupt_waveforms takes {list(CORRUPTIONS['audio'])}"
        )
    severity, seed = _check_severity(severity), _check_seed(seed)
    if microphone not in ("per-seed", "per-row"):
        raise DataError(f"microphone={microphone!r}; expected 'per-seed' or 'per-row'")
    params = _params(spec, severity)
    ids = _row_ids(len(waves), row_ids)
    mic = None
    if kind == "eq" and microphone == "per-seed":
        mic = _draw_microphone(_split_rng(seed, "audio", kind), **params)
    out: list[np.ndarray] = []
    for w, rid in zip(waves, ids, strict=True):
        x = np.asarray(w, dtype=np.float64)
        if x.ndim != 1:
            raise DataError(f"waveform of row {rid} has shape {x.shape}; expected 1-D mono samples")
        rng = _row_rng(seed, "audio", kind, rid)
        if kind == "noise":
            centred = x - x.mean() if x.size else x
            power = float(np.mean(centred**2)) if x.size else 0.0
            sigma = math.sqrt(power / 10.0 ** (params["snr_db"] / 10.0))
            y = x + sigma * rng.standard_normal(x.shape)
        elif kind == "gain":
            y = x * 10.0 ** (params["gain_db"] / 20.0)
            y = np.clip(np.round(y * 32768.0), -32768, 32767) / 32768.0
        elif kind == "eq":
            y = _apply_microphone(x, mic or _draw_microphone(rng, **params), sample_rate) if x.size else x
        elif kind == "shift":
            d = round(params["shift_ms"] * sample_rate / 1000.0)
            zeros = np.zeros(2 * d)
            y = np.concatenate([zeros, x]) if rng.random() < 0.5 else np.concatenate([x, zeros])
        else:  # clip
            c = params["clip_fraction"] * (float(np.abs(x).max()) if x.size else 0.0)
            y = np.clip(x, -c, c)
        out.append(y.astype(np.float32))
    return out


def corrupt_audio_features(
    waves: Sequence[np.ndarray],
    cfg: AudioFeatureConfig,
    kind: str,
    severity: int,
    seed: int = 0,
    *,
    row_ids: Sequence[int] | np.ndarray | None = None,
    microphone: str = "per-seed",
) -> np.ndarray:
    """Corrupt waveforms and featurise them with ``logmel-v1`` (:func:`edgefuse.data.audio.logmel_batch`).

    The waveforms must be at ``cfg.sample_rate`` (as the dataset's reader returns them).

    Returns:
        float32 ``(len(waves), *cfg.shape)``.
    """
    corrupted = corrupt_waveforms(
        waves, kind, severity, seed, sample_rate=cfg.sample_rate, row_ids=row_ids, microphone=microphone
    )
    return _audio.logmel_batch(corrupted, cfg)


# A few splits' waveforms, keyed by (folder, file names, rate): the grid corrupts one split many times.
_WAVE_CACHE: dict[tuple[Any, ...], list[np.ndarray]] = {}
_WAVE_CACHE_SIZE = 4


def split_waveforms(data: MultimodalDataset, split: str) -> tuple[list[np.ndarray], AudioFeatureConfig]:
    """The recordings behind a split's audio rows, decoded as the loader decodes them, and the feature config.

    Reads ``meta["audio_files"][split]`` (row ``i``'s file name) from ``meta["recordings"]``, with the same
    reader and rate conversion as :mod:`edgefuse.data.avdigits`; read-only.

    Raises:
        DataError: When the dataset does not record its recordings (no waveform path), or a file is gone.
    """
    meta = data.meta
    files = meta.get("audio_files")
    if (
        not isinstance(files, Mapping)
        or split not in files
        or not meta.get("recordings")
        or not meta.get("audio_config")
    ):
        raise DataError(
            f"dataset {data.name!r} does not record the recording behind each audio row (meta needs "
            "'recordings', 'audio_files' and 'audio_config', as av-digits has); only feature-domain audio "
            "corruptions apply (domain='features')"
        )
    cfg = AudioFeatureConfig.from_dict(dict(meta["audio_config"]))
    folder = Path(meta["recordings"])
    names = tuple(str(n) for n in files[split])
    try:  # size and mtime of every file: a changed recording is re-read, not served from the cache
        stamps = tuple((st.st_size, st.st_mtime_ns) for st in ((folder / n).stat() for n in names))
    except OSError as exc:
        raise DataError(
            f"cannot read the recordings of split {split!r} of {data.name!r} in {folder} ({exc}); the waveform "
            "corruptions re-read them: point the dataset at its FSDD folder again (reload it)"
        ) from None
    key = (str(folder), names, stamps, cfg.sample_rate)
    if key not in _WAVE_CACHE:
        waves = []
        for name in names:
            samples, rate = _audio.parse_wav_bytes(_audio.read_wav_file(folder / name), name)
            samples, _ = _audio._conform_rate(samples, rate, name, cfg.sample_rate, resample_=True)
            samples = np.asarray(samples, dtype=np.float32)
            samples.setflags(write=False)
            waves.append(samples)
        while len(_WAVE_CACHE) >= _WAVE_CACHE_SIZE:
            _WAVE_CACHE.pop(next(iter(_WAVE_CACHE)))
        _WAVE_CACHE[key] = waves
    return list(_WAVE_CACHE[key]), cfg


def _check_waveforms(
    data: MultimodalDataset, split: str, waves: list[np.ndarray], cfg: AudioFeatureConfig, name: str
) -> None:
    """Re-featurise a few rows clean and compare with the stored features (catches a changed folder)."""
    stored = data.split(split).inputs[name]
    n = len(waves)
    if n == 0:
        return
    probe = sorted({0, n // 2, n - 1})
    clean = _audio.logmel_batch([waves[i] for i in probe], cfg)
    if not np.allclose(clean, stored[probe], atol=1e-4):
        raise DataError(
            f"the recordings in {data.meta.get('recordings')} no longer give the stored audio features of "
            f"split {split!r} (rows {probe}); reload the dataset"
        )


# --------------------------------------------------------------------------------------------------
# Arrays: audio features, images, any modality
# --------------------------------------------------------------------------------------------------


def _restandardise(x: np.ndarray, like: np.ndarray) -> np.ndarray:
    """``x`` rescaled to the mean and standard deviation of ``like`` (``logmel-v1`` rows: 0 and 1)."""
    std = x.std()
    return (x - x.mean()) / (std + _audio.STD_EPS) * like.std() + like.mean()


def _audio_feature_rows(
    x: np.ndarray, kind: str, severity: int, seed: int, ids: np.ndarray, modality: str
) -> np.ndarray:
    if kind not in FEATURE_LEVELS:
        raise DataError(
            f"audio corruption {kind!r} needs the waveform and has no feature-domain variant; this input "
            f"holds only features (feature-domain kinds: {list(FEATURE_LEVELS)}; {kind!r} needs a dataset "
            "that records its recordings, like av-digits with FSDD)"
        )
    value = FEATURE_LEVELS[kind][1][severity - 1]
    out = np.empty_like(x, dtype=np.float64)
    for i, rid in enumerate(ids):
        row = x[i].astype(np.float64)
        rng = _row_rng(seed, modality, f"features:{kind}", rid)
        if kind == "noise":  # sigma relative to the row's own standard deviation (1 for logmel-v1 rows)
            sigma = float(row.std()) * value
            row = _restandardise(row + sigma * rng.standard_normal(row.shape), like=row)
        elif kind == "gain":
            row = _restandardise(np.maximum(row, np.quantile(row, value)), like=row)
        else:  # shift along the last (time) axis, padded with the row's minimum
            d = min(int(value), row.shape[-1])
            fill = row.min()
            shifted = np.full_like(row, fill)
            if rng.random() < 0.5:
                shifted[..., d:] = row[..., : row.shape[-1] - d]
            else:
                shifted[..., : row.shape[-1] - d] = row[..., d:]
            row = shifted
        out[i] = row
    return out


def _gauss_kernel(sigma: float) -> np.ndarray:
    radius = max(1, math.ceil(3 * sigma))
    t = np.arange(-radius, radius + 1)
    k = np.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def _blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur over the last two axes, edge ('nearest') padding."""
    k = _gauss_kernel(sigma)
    r = len(k) // 2
    out = img
    for axis in (-2, -1):
        pad = [(0, 0)] * out.ndim
        pad[axis] = (r, r)
        padded = np.pad(out, pad, mode="edge")
        n = out.shape[axis]
        out = sum(k[j] * np.take(padded, np.arange(j, j + n), axis=axis) for j in range(len(k)))
    return out


def _image_rows(
    x: np.ndarray,
    kind: str,
    severity: int,
    seed: int,
    ids: np.ndarray,
    modality: str,
    scale: float,
    value_range: tuple[float, float] | None,
) -> np.ndarray:
    value = CORRUPTIONS["image"][kind].levels[severity - 1]
    out = x.astype(np.float64).copy()
    if out.ndim < 3:
        raise DataError(f"image corruption {kind!r} needs rows shaped (C, H, W); got {x.shape[1:]}")
    h, w = out.shape[-2:]
    if kind == "blur":  # the same kernel for every row: one pass over the batch
        out = _blur(out, value)
        return np.clip(out, *value_range) if value_range is not None else out
    for i, rid in enumerate(ids):
        rng = _row_rng(seed, modality, kind, rid)
        row = out[i]
        if kind == "noise":
            row = row + value * scale * rng.standard_normal(row.shape)
        elif kind == "occlusion":
            side = max(1, min(h, w, round(value * min(h, w))))
            top = int(rng.integers(0, h - side + 1))
            left = int(rng.integers(0, w - side + 1))
            row = row.copy()
            row[..., top : top + side, left : left + side] = 0.0
        elif kind == "contrast":
            mean = row.mean()
            row = (row - mean) * value + mean
        else:  # brightness
            row = row + value * scale
        if value_range is not None:
            row = np.clip(row, *value_range)
        out[i] = row
    return out


def corrupt_array(
    x: np.ndarray,
    modality: str,
    kind: str,
    severity: int,
    seed: int = 0,
    *,
    row_ids: Sequence[int] | np.ndarray | None = None,
    value_range: tuple[float, float] | None = None,
    scale: float | None = None,
    value: float | None = None,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Corrupt an array of model inputs ``(N, *shape)`` directly (no waveform, no raw image).

    Audio kinds use their feature-domain variant (``domain: "features"``; ``eq`` and ``clip`` raise),
    image kinds work on ``(N, C, H, W)`` rows (``domain: "pixels"`` when ``value_range`` is given, else
    ``"model-input"``), the any-modality kinds replace a severity-dependent fraction of the rows.

    Args:
        x: The inputs; not modified.
        modality: The modality's name (``audio``/``image`` select the kind family; any name takes the
            any-modality kinds).
        kind: See :data:`CORRUPTIONS`.
        severity: 1..5.
        seed: Seeds the draws.
        row_ids: Stable row ids (default ``0..N-1``) keying each row's random stream.
        value_range: Image kinds: clip to it (``(0, 1)`` for AV-digits pixels); ``None`` clips nothing.
        scale: Image ``noise``/``brightness``: what the fractions are of; default the range's width, else
            the 1st-99th percentile spread of ``x``.
        value: ``const``: the constant (default the maximum of ``x``).

    Returns:
        ``(corrupted float32 array, valid (N,) bool: the row is finite, record dict)``.

    Raises:
        DataError: For an unknown kind, a bad severity or seed, or a kind with no variant for this input.
    """
    spec = _lookup(modality, kind)
    severity, seed = _check_severity(severity), _check_seed(seed)
    x = np.asarray(x)
    n = len(x)
    ids = _row_ids(n, row_ids)
    record: dict[str, Any] = {"modality": modality, "kind": kind, "severity": severity, "seed": seed}
    if spec.modality == ANY:
        fraction = spec.levels[severity - 1]
        order = _split_rng(seed, modality, kind).permutation(n)
        rows = np.sort(order[: round(fraction * n)])
        out = x.astype(np.float32, copy=True)
        if kind == "zeros":
            fill = 0.0
        elif kind == "nan":
            fill = float("nan")
        else:
            finite = x[np.isfinite(x)] if n else np.zeros(1)
            fill = float(value) if value is not None else float(finite.max()) if finite.size else 0.0
            record["value"] = fill
        out[rows] = fill
        record.update(domain="model-input", params={"row_fraction": fraction}, rows=len(rows))
    elif spec.modality == "audio":
        out = _audio_feature_rows(x, kind, severity, seed, ids, modality).astype(np.float32)
        name, levels = FEATURE_LEVELS[kind]
        record.update(
            domain="features",
            params={name: levels[severity - 1]},
            rows=n,
            note="feature-domain approximation of an audio corruption (no waveform available)",
        )
    else:
        if scale is None:
            if value_range is not None:
                scale = float(value_range[1] - value_range[0])
            else:
                finite = x[np.isfinite(x)]
                lo, hi = np.percentile(finite, [1, 99]) if finite.size else (0.0, 1.0)
                scale = float(hi - lo) or 1.0
        out = _image_rows(x, kind, severity, seed, ids, modality, scale, value_range).astype(np.float32)
        record.update(
            domain="pixels" if value_range is not None else "model-input",
            params=_params(spec, severity),
            rows=n,
            scale=scale,
            value_range=list(value_range) if value_range is not None else None,
        )
    valid = np.isfinite(out.reshape(n, -1)).all(axis=1) if n else np.ones(0, dtype=bool)
    return out, valid, record
