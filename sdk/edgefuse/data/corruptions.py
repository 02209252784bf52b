"""Seeded, parameterised sensor corruptions with a severity 1-5 (NumPy only).

A sensor is more often *degraded* than absent: another microphone, background noise, a smudged lens, low
light. This module corrupts one modality of a split (for evaluation) or of a batch (for training
augmentation) following the ImageNet-C convention: every corruption *kind* has five fixed parameter levels,
severity 1 (mild) to 5 (severe), increasing; :data:`CORRUPTIONS` holds them and
:meth:`Corruption.params` gives the concrete parameter of a severity.

Where a corruption is applied (the ``domain`` of its record; never silently another one):

* ``waveform``: **audio** kinds on a dataset whose rows come from recordings (``av-digits``: ``meta``
  records, per split, the FSDD file of each row in ``audio_files`` and the folder in ``recordings``). The
  recordings are re-read, corrupted as waveforms and re-featurised with the dataset's own ``logmel-v1``
  pipeline (:func:`edgefuse.data.audio.logmel_batch` with ``meta["audio_config"]``). Before corrupting, a few
  rows are re-featurised clean and compared with the stored features, so a changed folder is caught.
* ``features``: audio ``noise``, ``gain`` and ``shift`` on datasets that only hold features
  (``av-digits-synthetic-audio``, ``synthetic``), or when asked for with ``domain="features"``: an
  *approximation* in the standardised log-mel domain (see the table below). ``eq`` and ``clip`` have no
  feature-domain variant and raise.
* ``pixels``: image kinds on the raw 8x8 digits (pixels / 16, in 0..1) of AV-digits, clipped to 0..1. When
  the dataset is PCA-degraded (``degrade_image=k``), the *raw* image is corrupted and then projected with
  the dataset's PCA (fitted on the clean train image rows, as the loader does), i.e. the corruption happens
  at the sensor, before the dataset's degradation; the record says ``pca_components``.
* ``model-input``: image kinds on datasets without raw pixels (``synthetic``: the values are not a 0..1
  image; noise and brightness are then scaled by the clean split's 1st-99th percentile spread and nothing is
  clipped), and the any-modality kinds (``zeros``, ``const``, ``nan``), which replace whole rows of the
  model input.

The any-modality kinds corrupt a *fraction of the rows* given by the severity (the rows of a lower severity
are a subset of those of a higher one). ``nan`` rows must never be fused: the runtime rejects NaN in a
present row (``edgefuse.runtime`` raises ``InputError``), so every result carries a per-row ``valid`` flag
per modality (``False`` where a row holds NaN/Inf) and callers mark those rows absent.

Determinism: the same ``seed`` gives the same corruption. Each row's random draws come from its own stream
keyed by ``(seed, modality, kind, row)`` and not by the severity, so the severities of a seed share the same
noise (only its scale changes) and a row's corruption does not depend on the other rows. The random
microphone of ``eq`` is one filter per seed for a whole split (one device, one microphone); ``augment``
draws one per row.

Parameter table (``CORRUPTIONS[modality][kind].levels[severity - 1]``):

=========  ==========  ================================================  =====================================
modality   kind        parameter                                         severity 1 .. 5
=========  ==========  ================================================  =====================================
audio      noise       white Gaussian noise at an SNR (dB)               20, 15, 10, 5, 0
audio      gain        attenuation (dB), then 16-bit re-quantisation     -10, -20, -30, -40, -50
audio      eq          band (Hz) and a random bell (+-dB): another mic   100-3600/3, 200-3200/6, 300-2800/9,
                                                                         450-2300/12, 600-1800/15
audio      shift       time shift (ms) within the feature window         25, 50, 100, 200, 300
audio      clip        clip at a fraction of the peak                    0.5, 0.3, 0.2, 0.1, 0.05
image      noise       Gaussian noise, sigma (fraction of the range)      0.08, 0.12, 0.18, 0.26, 0.38
image      blur        Gaussian blur, sigma (pixels)                     0.5, 0.75, 1.0, 1.25, 1.5
image      occlusion   square of zeros, side (fraction of min(H, W))      0.25, 0.375, 0.5, 0.625, 0.75
image      contrast    contrast factor around the image mean             0.4, 0.3, 0.2, 0.1, 0.05
image      brightness  offset (fraction of the range)                    0.1, 0.2, 0.3, 0.4, 0.5
any        zeros       fraction of rows set to 0                         0.2, 0.4, 0.6, 0.8, 1.0
any        const       fraction of rows set to a constant                0.2, 0.4, 0.6, 0.8, 1.0
any        nan         fraction of rows set to NaN (valid=False)         0.2, 0.4, 0.6, 0.8, 1.0
=========  ==========  ================================================  =====================================

Audio feature-domain variants (``domain: "features"``, an approximation, labelled as such; the
noise and gain levels are calibrated so that on AV-digits' test split (speaker theo) the mean L2 distance
from the clean features is within 5 % of the waveform kind's at each severity; shift's is within 17 %;
only the distance is matched: feature noise is i.i.d. over the map, waveform noise mostly fills quiet bins):
``noise``: Gaussian noise of sigma = 0.1, 0.135, 0.17, 0.2, 0.225 times the row's standard deviation, then
the row is re-standardised (to its own clean mean and standard deviation: 0 and 1 for ``logmel-v1``);
``gain``: values below the row's q-quantile (q = 0.19, 0.35, 0.44, 0.53, 0.68) are raised to it (a quieter
recording sinks under the log floor), then re-standardised; ``shift``: the map moves by 2, 3, 6, 12, 19
frames (about 25-300 ms at hop 16 ms), the vacated frames filled with the row's minimum (silence).

Waveform details: SNR is relative to the power of the whole recording after removing its mean (silent
recordings stay silent). ``gain`` multiplies and re-quantises to 16 bits (a pure gain would be a no-op:
``logmel-v1`` normalises every utterance; the quieter signal loses resolution and falls under the RMS floor
and the log floor). ``eq`` is a zero-phase filter applied with the FFT (order-4 Butterworth magnitude
high-pass and low-pass at the band edges, jittered by up to +-15 % per seed, times a Gaussian bell in
log-frequency, sigma half an octave, of +-the level's dB at a log-uniform centre in 300-3000 Hz). ``shift`` is **padded, not circular**: the
utterance moves by d samples (direction drawn per row) inside the centred feature window, zeros come in
and what passes the window's edge is lost; it is done by zero-padding 2d samples on one side of the
recording, which the centred pad/crop of ``logmel-v1`` turns into a d-sample shift. ``clip`` clips
symmetrically at the fraction of the recording's peak ``max|x|``.
"""

from __future__ import annotations

import math
import warnings
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgefuse.data import audio as _audio
from edgefuse.data.audio import AudioFeatureConfig
from edgefuse.data.base import MultimodalDataset, Split
from edgefuse.errors import DataError, did_you_mean

__all__ = [
    "ANY",
    "CORRUPTIONS",
    "FEATURE_LEVELS",
    "SEVERITIES",
    "Augmented",
    "CorruptedSplit",
    "Corruption",
    "CorruptionSpec",
    "augment",
    "augment_split",
    "corrupt_array",
    "corrupt_audio_features",
    "corrupt_split",
    "corrupt_waveforms",
    "parse_corruptions",
    "parse_severities",
    "split_waveforms",
]

#: The severities, mild to severe.
SEVERITIES: tuple[int, ...] = (1, 2, 3, 4, 5)
#: Key of :data:`CORRUPTIONS` for the kinds that apply to any modality.
ANY = "*"


@dataclass(frozen=True)
class CorruptionSpec:
    """One corruption kind: what it does and its parameter at each severity.

    Attributes:
        modality: ``audio``, ``image`` or :data:`ANY`.
        kind: Its name (``noise``, ``blur``...).
        param: The parameter's name (the key in :meth:`Corruption.params`).
        unit: The parameter's unit.
        levels: The parameter at severities 1..5.
        description: One line.
    """

    modality: str
    kind: str
    param: str
    unit: str
    levels: tuple[Any, ...]
    description: str


def _spec(
    modality: str, kind: str, param: str, unit: str, levels: tuple[Any, ...], text: str
) -> CorruptionSpec:
    return CorruptionSpec(modality, kind, param, unit, levels, text)


_ROW_FRACTIONS = (0.2, 0.4, 0.6, 0.8, 1.0)

#: Modality (``audio``, ``image``, :data:`ANY`) -> kind -> :class:`CorruptionSpec`.
CORRUPTIONS: dict[str, dict[str, CorruptionSpec]] = {
    "audio": {
        "noise": _spec(
            "audio",
            "noise",
            "snr_db",
            "dB",
            (20.0, 15.0, 10.0, 5.0, 0.0),
            "additive white Gaussian noise at an SNR",
        ),
        "gain": _spec(
            "audio",
            "gain",
            "gain_db",
            "dB",
            (-10.0, -20.0, -30.0, -40.0, -50.0),
            "attenuation, then 16-bit re-quantisation (a quiet or distant microphone)",
        ),
        "eq": _spec(
            "audio",
            "eq",
            "band_hz_bell_db",
            "(Hz, Hz, dB)",
            (
                (100.0, 3600.0, 3.0),
                (200.0, 3200.0, 6.0),
                (300.0, 2800.0, 9.0),
                (450.0, 2300.0, 12.0),
                (600.0, 1800.0, 15.0),
            ),
            "another microphone: a seeded band limit and a random bell boost/cut",
        ),
        "shift": _spec(
            "audio",
            "shift",
            "shift_ms",
            "ms",
            (25.0, 50.0, 100.0, 200.0, 300.0),
            "time shift within the feature window (zero-padded, not circular)",
        ),
        "clip": _spec(
            "audio",
            "clip",
            "clip_fraction",
            "fraction of peak",
            (0.5, 0.3, 0.2, 0.1, 0.05),
            "clipping at a fraction of the recording's peak",
        ),
    },
    "image": {
        "noise": _spec(
            "image",
            "noise",
            "sigma",
            "fraction of the value range",
            (0.08, 0.12, 0.18, 0.26, 0.38),
            "additive Gaussian noise",
        ),
        "blur": _spec("image", "blur", "sigma_px", "pixels", (0.5, 0.75, 1.0, 1.25, 1.5), "Gaussian blur"),
        "occlusion": _spec(
            "image",
            "occlusion",
            "side_fraction",
            "fraction of min(H, W)",
            (0.25, 0.375, 0.5, 0.625, 0.75),
            "a seeded square patch of zeros",
        ),
        "contrast": _spec(
            "image",
            "contrast",
            "factor",
            "x",
            (0.4, 0.3, 0.2, 0.1, 0.05),
            "contrast reduced around the image mean",
        ),
        "brightness": _spec(
            "image",
            "brightness",
            "offset",
            "fraction of the value range",
            (0.1, 0.2, 0.3, 0.4, 0.5),
            "brightness offset (a washed-out image)",
        ),
    },
    ANY: {
        "zeros": _spec(
            ANY,
            "zeros",
            "row_fraction",
            "fraction of rows",
            _ROW_FRACTIONS,
            "rows set to 0 (a dead sensor that still reports)",
        ),
        "const": _spec(
            ANY,
            "const",
            "row_fraction",
            "fraction of rows",
            _ROW_FRACTIONS,
            "rows set to one constant, default the clean split's maximum (a stuck sensor)",
        ),
        "nan": _spec(
            ANY,
            "nan",
            "row_fraction",
            "fraction of rows",
            _ROW_FRACTIONS,
            "rows set to NaN (flagged valid=False: mark them absent, never fuse them)",
        ),
    },
}

#: Audio kinds with a feature-domain variant -> (parameter name, levels at severities 1..5).
FEATURE_LEVELS: dict[str, tuple[str, tuple[float, ...]]] = {
    "noise": ("sigma", (0.1, 0.135, 0.17, 0.2, 0.225)),
    "gain": ("floor_quantile", (0.19, 0.35, 0.44, 0.53, 0.68)),
    "shift": ("shift_frames", (2, 3, 6, 12, 19)),
}

_DOMAINS = ("auto", "waveform", "features")


# --------------------------------------------------------------------------------------------------
# Names, severities, parsing
# --------------------------------------------------------------------------------------------------


def _allowed_text() -> str:
    parts = [f"{m}: {', '.join(CORRUPTIONS[m])}" for m in ("audio", "image")]
    parts.append(f"any modality: {', '.join(CORRUPTIONS[ANY])}")
    return "; ".join(parts)


def _lookup(modality: str, kind: str, modalities: Sequence[str] | None = None) -> CorruptionSpec:
    """The spec of ``modality:kind``; raises :class:`DataError` naming what is wrong and what is allowed."""
    if not isinstance(modality, str) or not isinstance(kind, str):
        raise DataError(f"a corruption is named by strings modality:kind; got {modality!r}:{kind!r}")
    if modalities is not None and modality not in modalities:
        raise DataError(
            f"unknown modality {modality!r} in corruption {modality}:{kind}; the dataset's modalities are "
            f"{list(modalities)}{did_you_mean(modality, modalities)}"
        )
    if kind in CORRUPTIONS[ANY]:
        return CORRUPTIONS[ANY][kind]
    if modality not in CORRUPTIONS:
        known = [m for m in CORRUPTIONS if m != ANY]
        raise DataError(
            f"modality {modality!r} has no corruption {kind!r}: modality-specific kinds exist for "
            f"{known}{did_you_mean(modality, known)}; any modality takes {list(CORRUPTIONS[ANY])}. "
            f"Allowed: {_allowed_text()}"
        )
    kinds = [*CORRUPTIONS[modality], *CORRUPTIONS[ANY]]
    if kind not in CORRUPTIONS[modality]:
        raise DataError(
            f"unknown {modality} corruption {kind!r}{did_you_mean(kind, kinds)}; allowed for {modality}: "
            f"{kinds}"
        )
    return CORRUPTIONS[modality][kind]


def _check_severity(severity: object) -> int:
    if isinstance(severity, bool) or not isinstance(severity, int | np.integer) or not 1 <= severity <= 5:
        raise DataError(f"severity={severity!r} is not allowed; use an int in 1..5 (1 mild, 5 severe)")
    return int(severity)


def _check_seed(seed: object) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise DataError(f"seed={seed!r} is not allowed; use a non-negative int")
    return int(seed)


def parse_corruptions(
    text: str | Iterable[str], modalities: Sequence[str] | None = None
) -> list[tuple[str, str]]:
    """Parse ``"audio:noise,image:blur"`` into ``[("audio", "noise"), ("image", "blur")]``.

    Args:
        text: Comma-separated ``modality:kind`` items (or an iterable of them); duplicates are dropped.
        modalities: When given, the modality names must be among them (a dataset's modalities).

    Raises:
        DataError: For an empty list, an item without ``:``, or an unknown modality or kind; the message
            names it, suggests the closest name and lists the allowed ones.
    """
    items = [s.strip() for s in (text.split(",") if isinstance(text, str) else text)]
    items = [s for s in items if s]
    if not items:
        raise DataError(
            f"no corruption given; expected modality:kind items like audio:noise. {_allowed_text()}"
        )
    out: list[tuple[str, str]] = []
    for item in items:
        modality, sep, kind = item.partition(":")
        if not sep or not modality.strip() or not kind.strip():
            raise DataError(f"corruption {item!r} is not modality:kind (e.g. audio:noise). {_allowed_text()}")
        pair = (modality.strip(), kind.strip())
        _lookup(*pair, modalities)
        if pair not in out:
            out.append(pair)
    return out


def parse_severities(text: str | Iterable[int]) -> tuple[int, ...]:
    """Parse ``"1,3,5"`` (or an iterable of ints) into sorted unique severities in 1..5.

    Raises:
        DataError: For an empty list or a value that is not an int in 1..5.
    """
    raw: list[object] = []
    if isinstance(text, str):
        for s in (p.strip() for p in text.split(",")):
            if not s:
                continue
            try:
                raw.append(int(s))
            except ValueError:
                raise DataError(
                    f"severity {s!r} is not an int; use a list like 1,3,5 (each in 1..5)"
                ) from None
    else:
        raw = list(text)
    if not raw:
        raise DataError("no severity given; use a list like 1,3,5 (each in 1..5)")
    return tuple(sorted({_check_severity(v) for v in raw}))


@dataclass(frozen=True)
class Corruption:
    """One corruption: a kind of one modality at one severity, with its seed.

    Attributes:
        modality: The modality it corrupts (``audio``, ``image``, or any modality name for the any-kinds).
        kind: See :data:`CORRUPTIONS`.
        severity: 1..5.
        seed: Seeds its random draws.

    Raises:
        DataError: For an unknown kind, a severity outside 1..5 or a negative seed.
    """

    modality: str
    kind: str
    severity: int
    seed: int = 0

    def __post_init__(self) -> None:
        _lookup(self.modality, self.kind)
        _check_severity(self.severity)
        _check_seed(self.seed)

    @property
    def spec(self) -> CorruptionSpec:
        """Its :class:`CorruptionSpec`."""
        return _lookup(self.modality, self.kind)

    @property
    def params(self) -> dict[str, Any]:
        """The concrete parameter(s) of this severity, e.g. ``{"snr_db": 10.0}``."""
        return _params(self.spec, self.severity)

    def feature_params(self) -> dict[str, Any]:
        """The parameter of the audio feature-domain variant (``{}`` for kinds without one)."""
        if self.spec.modality != "audio" or self.kind not in FEATURE_LEVELS:
            return {}
        name, levels = FEATURE_LEVELS[self.kind]
        return {name: levels[self.severity - 1]}

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable description (modality, kind, severity, seed, params)."""
        return {
            "modality": self.modality,
            "kind": self.kind,
            "severity": self.severity,
            "seed": self.seed,
            "params": self.params,
        }


def _params(spec: CorruptionSpec, severity: int) -> dict[str, Any]:
    value = spec.levels[severity - 1]
    if spec.kind == "eq":
        low, high, bell = value
        return {"low_hz": low, "high_hz": high, "bell_db": bell}
    return {spec.param: value}


# --------------------------------------------------------------------------------------------------
# Random streams
# --------------------------------------------------------------------------------------------------


def _key(name: str) -> int:
    return zlib.crc32(name.encode())


def _row_rng(seed: int, modality: str, kind: str, row: int) -> np.random.Generator:
    return np.random.default_rng([seed, _key(modality), _key(kind), int(row)])


def _split_rng(seed: int, modality: str, kind: str) -> np.random.Generator:
    return np.random.default_rng([seed, _key(modality), _key(kind), 0x5EED])


def _row_ids(n: int, row_ids: Sequence[int] | np.ndarray | None) -> np.ndarray:
    if row_ids is None:
        return np.arange(n)
    ids = np.asarray(row_ids, dtype=np.int64)
    if ids.shape != (n,) or (n and ids.min() < 0):
        raise DataError(f"row_ids must be {n} non-negative ints (one per row); got shape {ids.shape}")
    return ids


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
) -> tuple[np.ndarray, dict[str, Any]]:
    """Corrupted model inputs for ``rows`` of one split's modality, and the record."""
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
            feats = corrupt_audio_features([waves[i] for i in rows], cfg, kind, severity, seed, row_ids=rows)
            rec: dict[str, Any] = {
                "domain": "waveform",
                "params": _params(spec, severity),
                "pipeline": "recording -> corruption -> logmel-v1 (the dataset's audio_config)",
            }
            if kind == "eq":  # the concrete microphone of this seed
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
    if not isinstance(p, int | float) or isinstance(p, bool) or not 0.0 <= p <= 1.0:
        raise DataError(f"p={p!r} must be a probability in [0, 1]")
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
        b = len(x)
        hit = rng.random(b) < p
        which = rng.integers(0, len(ks), b)
        level = np.asarray(sev)[rng.integers(0, len(sev), b)]
        call_seed = int(rng.integers(0, 2**62))
        out = x.astype(np.float32, copy=True)
        for ki, k in enumerate(ks):
            for s in sev:
                rows = np.flatnonzero(hit & (which == ki) & (level == s))
                if not len(rows):
                    continue
                if _lookup(m, k).modality == ANY:
                    out[rows] = 0.0 if k == "zeros" else np.nan if k == "nan" else np.nanmax(x)
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

    ``record["applied"]`` maps each modality to its per-row ``kind@severity`` (``""`` untouched).
    """
    pairs = _as_pairs(kinds)
    sev = parse_severities(list(severities))
    seed = _check_seed(seed)
    if not isinstance(p, int | float) or isinstance(p, bool) or not 0.0 <= p <= 1.0:
        raise DataError(f"p={p!r} must be a probability in [0, 1]")
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
        hit = rng.random(n) < p
        which = rng.integers(0, len(ks), n)
        level = np.asarray(sev)[rng.integers(0, len(sev), n)]
        out = src.inputs[m].astype(np.float32, copy=True)
        tags = np.full(n, "", dtype=object)
        for ki, k in enumerate(ks):
            for s in sev:
                rows = np.flatnonzero(hit & (which == ki) & (level == s))
                if not len(rows):
                    continue
                if _lookup(m, k).modality == ANY:
                    out[rows] = 0.0 if k == "zeros" else np.nan if k == "nan" else np.nanmax(src.inputs[m])
                else:
                    out[rows], _ = _corrupt_rows(data, split, m, k, int(s), seed, rows, "auto", None)
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
