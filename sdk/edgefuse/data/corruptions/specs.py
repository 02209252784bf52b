"""Corruption kinds, their five severity levels, parsing, and the per-row seeded streams."""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgefuse.errors import DataError, did_you_mean

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
