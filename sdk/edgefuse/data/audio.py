"""WAV reading and log-mel features in NumPy only (the ``logmel-v1`` preprocessing).

This module is shared by training and the on-device runtime, so it imports only NumPy at module level
(SciPy is imported lazily, and only when a recording has to be resampled).

The ``logmel-v1`` recipe, step by step (a device reproduces it from :class:`AudioFeatureConfig`):

1. Per-utterance waveform normalisation: subtract the mean (removes a DC offset), then divide by
   ``max(rms, rms_floor)`` so every utterance has unit RMS while digital silence stays silent.
2. Pad with zeros or crop to exactly ``sample_rate * duration_s`` samples, both **centred** (padding puts
   ``(n - len) // 2`` zeros before the signal and the rest after; cropping keeps the middle, dropping
   ``(len - n) // 2`` samples at the start).
3. STFT without centring: frames of ``n_fft`` samples every ``hop`` samples
   (``frames = 1 + (n - n_fft) // hop``), a periodic Hann window ``0.5 - 0.5 cos(2 pi k / n_fft)``,
   power ``|rfft|^2``.
4. Mel filterbank with the **HTK** mel scale ``mel = 2595 log10(1 + f / 700)``: ``n_mels`` triangles with
   peak 1 (no area normalisation), their corners evenly spaced in mel between ``fmin`` and ``fmax``,
   evaluated at the exact FFT bin frequencies ``k * sample_rate / n_fft``.
5. ``log(mel_power + log_eps)`` (natural log).
6. Per-utterance standardisation: subtract the mean and divide by ``std + 1e-5`` over the whole
   ``(n_mels, frames)`` map.

The output is float32 ``(1, n_mels, frames)``; with the defaults ``(1, 32, 61)``.
"""

from __future__ import annotations

import io
import logging
import math
import struct
import wave
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from edgefuse.errors import DataError

__all__ = [
    "EXPECTED_SAMPLE_RATE",
    "AudioFeatureConfig",
    "logmel",
    "logmel_batch",
    "mel_filterbank",
    "normalize_waveform",
    "parse_wav_bytes",
    "read_wav",
    "resample",
]

logger = logging.getLogger(__name__)

#: The sample rate of FSDD and of the default features.
EXPECTED_SAMPLE_RATE = 8000

#: Added to the per-utterance standard deviation of the log-mel map before dividing.
STD_EPS = 1e-5

# Number of utterances framed and transformed at once in :func:`logmel_batch` (bounds peak memory).
_CHUNK = 256


@dataclass(frozen=True)
class AudioFeatureConfig:
    """Parameters of the ``logmel-v1`` features (see the module docstring for the recipe).

    Attributes:
        sample_rate: Rate the waveform must have (Hz); others are resampled by the reader.
        duration_s: Every utterance is padded/cropped (centred) to ``round(sample_rate * duration_s)``
            samples.
        n_fft: STFT frame length and FFT size (samples).
        hop: STFT hop (samples).
        n_mels: Number of mel bands.
        fmin: Lowest mel corner frequency (Hz).
        fmax: Highest mel corner frequency (Hz), at most ``sample_rate / 2``.
        log_eps: Added to the mel power before the natural log.
        rms_floor: Floor of the waveform RMS used for normalisation (waveform in [-1, 1]); keeps silence
            from being amplified into noise.

    Raises:
        DataError: When a value is out of range (the message names the field and the allowed range).
    """

    sample_rate: int = EXPECTED_SAMPLE_RATE
    duration_s: float = 1.0
    n_fft: int = 256
    hop: int = 128
    n_mels: int = 32
    fmin: float = 20.0
    fmax: float = 4000.0
    log_eps: float = 1e-6
    rms_floor: float = 1e-3

    def __post_init__(self) -> None:
        problems = []
        if self.sample_rate < 1:
            problems.append(f"sample_rate={self.sample_rate} must be >= 1")
        if self.duration_s <= 0:
            problems.append(f"duration_s={self.duration_s} must be > 0")
        if self.n_fft < 2:
            problems.append(f"n_fft={self.n_fft} must be >= 2")
        if self.hop < 1:
            problems.append(f"hop={self.hop} must be >= 1")
        if self.n_mels < 1:
            problems.append(f"n_mels={self.n_mels} must be >= 1")
        if not 0 <= self.fmin < self.fmax <= self.sample_rate / 2:
            problems.append(
                f"fmin={self.fmin}, fmax={self.fmax} must satisfy 0 <= fmin < fmax <= sample_rate/2 "
                f"({self.sample_rate / 2})"
            )
        if self.log_eps <= 0:
            problems.append(f"log_eps={self.log_eps} must be > 0")
        if self.rms_floor <= 0:
            problems.append(f"rms_floor={self.rms_floor} must be > 0")
        if not problems and self.n_samples < self.n_fft:
            problems.append(
                f"duration_s={self.duration_s} gives {self.n_samples} samples, fewer than n_fft={self.n_fft}"
            )
        if problems:
            raise DataError("invalid AudioFeatureConfig: " + "; ".join(problems))

    @property
    def n_samples(self) -> int:
        """Samples per utterance after padding/cropping."""
        return round(self.sample_rate * self.duration_s)

    @property
    def frames(self) -> int:
        """Number of STFT frames (no centring): ``1 + (n_samples - n_fft) // hop``."""
        return 1 + (self.n_samples - self.n_fft) // self.hop

    @property
    def shape(self) -> tuple[int, int, int]:
        """Feature shape without the batch dimension: ``(1, n_mels, frames)``."""
        return (1, self.n_mels, self.frames)

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a JSON-serialisable dict (inverse of :meth:`from_dict`)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AudioFeatureConfig:
        """Build a config from :meth:`to_dict` output.

        Raises:
            DataError: When a key is unknown (the message lists the allowed keys) or a value is invalid.
        """
        allowed = {f.name for f in fields(cls)}
        unknown = set(data) - allowed
        if unknown:
            raise DataError(
                f"audio feature config has unknown keys {sorted(unknown)}; allowed: {sorted(allowed)}"
            )
        return cls(**data)


# --------------------------------------------------------------------------------------------------
# WAV reading
# --------------------------------------------------------------------------------------------------


def parse_wav_bytes(data: bytes, name: str) -> tuple[np.ndarray, int]:
    """Decode a mono 16-bit PCM WAV held in memory.

    Args:
        data: The file's bytes.
        name: The file name, used in error messages.

    Returns:
        ``(wave, sample_rate)``: float32 ``(n,)`` samples in [-1, 1) (int16 / 32768) and the file's rate.

    Raises:
        DataError: When the bytes are empty, not a WAV, truncated or corrupt, not mono, not 16-bit, or hold
            no samples. The message names the file.
    """
    if not data:
        raise DataError(
            f"{name}: the file is empty (0 bytes); expected a mono 16-bit PCM WAV; replace the file"
        )
    try:
        with wave.open(io.BytesIO(data), "rb") as reader:
            channels = reader.getnchannels()
            width = reader.getsampwidth()
            rate = reader.getframerate()
            n_frames = reader.getnframes()
            payload = reader.readframes(n_frames)
    except (wave.Error, EOFError, struct.error) as exc:
        raise DataError(
            f"{name}: not a readable WAV file ({type(exc).__name__}: {exc}); expected mono 16-bit PCM "
            "(RIFF/WAVE, format 1); the file may be truncated or corrupt: re-download or re-export it, "
            "e.g. `sox in.wav -c 1 -b 16 -e signed-integer out.wav`"
        ) from exc
    if channels != 1:
        raise DataError(
            f"{name}: has {channels} channels; mono required (1 channel); "
            f"convert it, e.g. `sox {name} -c 1 out.wav`"
        )
    if width != 2:
        raise DataError(
            f"{name}: sample width is {width * 8}-bit ({width} bytes); only 16-bit PCM is supported; "
            f"convert it, e.g. `sox {name} -b 16 -e signed-integer out.wav`"
        )
    if rate < 1:
        raise DataError(f"{name}: header says sample rate {rate} Hz; the file is corrupt: re-export it")
    expected = n_frames * channels * width
    if len(payload) != expected or n_frames == 0:
        what = (
            "holds no samples" if n_frames == 0 else f"is truncated ({len(payload)} of {expected} data bytes)"
        )
        raise DataError(
            f"{name}: {what}; expected a complete mono 16-bit PCM WAV; re-download or re-export it"
        )
    samples = np.frombuffer(payload, dtype="<i2").astype(np.float32) / np.float32(32768.0)
    return samples, rate


def resample(wave_: np.ndarray, orig_rate: int, target_rate: int) -> np.ndarray:
    """Resample a 1-D waveform with a polyphase filter (``scipy.signal.resample_poly``).

    The rational factor is ``target/gcd`` up and ``orig/gcd`` down. SciPy is imported here only.

    Args:
        wave_: float ``(n,)`` samples.
        orig_rate: Its rate (Hz).
        target_rate: The wanted rate (Hz).

    Returns:
        float32 ``(ceil(n * target / orig),)`` samples; the input itself (as float32) when the rates match.

    Raises:
        DataError: When SciPy is missing (the message says how to install it).
    """
    if orig_rate == target_rate:
        return np.asarray(wave_, dtype=np.float32)
    try:
        from scipy.signal import resample_poly
    except ImportError as exc:  # pragma: no cover - scipy ships with the train extra
        raise DataError(
            f"resampling {orig_rate} Hz audio to {target_rate} Hz needs SciPy, which is not installed; "
            "install it with `pip install scipy` (or `pip install 'edgefuse[train]'`), or provide "
            f"{target_rate} Hz recordings"
        ) from exc
    g = math.gcd(int(orig_rate), int(target_rate))
    return resample_poly(np.asarray(wave_, dtype=np.float64), target_rate // g, orig_rate // g).astype(
        np.float32
    )


def _conform_rate(
    samples: np.ndarray, rate: int, name: str, sample_rate: int | None, *, resample_: bool
) -> tuple[np.ndarray, int]:
    if sample_rate is None or rate == sample_rate:
        return samples, rate
    if not resample_:
        raise DataError(
            f"{name}: sample rate is {rate} Hz; {sample_rate} Hz required (resample=False); "
            f"pass resample=True or convert it, e.g. `sox {name} -r {sample_rate} out.wav`"
        )
    logger.info("resampling %s from %d Hz to %d Hz", name, rate, sample_rate)
    return resample(samples, rate, sample_rate), sample_rate


def read_wav(
    path: str | Path, *, sample_rate: int | None = EXPECTED_SAMPLE_RATE, resample: bool = True
) -> tuple[np.ndarray, int]:
    """Read a mono 16-bit PCM WAV file with the standard library ``wave`` module.

    Args:
        path: The file.
        sample_rate: The rate to return (default 8000 Hz); ``None`` keeps the file's rate.
        resample: When the file's rate differs from ``sample_rate``: ``True`` resamples it (logged at INFO,
            ``scipy.signal.resample_poly``), ``False`` raises.

    Returns:
        ``(wave, rate)``: float32 ``(n,)`` samples in [-1, 1] and their rate (``sample_rate`` unless it is
        ``None``).

    Raises:
        DataError: When the file cannot be opened, is empty, corrupt, truncated, not a WAV, not mono, not
            16-bit, or has another rate with ``resample=False``. The message names the file.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(
            f"{path}: cannot read the file ({exc}); expected a readable mono 16-bit PCM WAV"
        ) from exc
    samples, rate = parse_wav_bytes(data, str(path))
    return _conform_rate(samples, rate, str(path), sample_rate, resample_=resample)


# --------------------------------------------------------------------------------------------------
# Features
# --------------------------------------------------------------------------------------------------


def _hz_to_mel(f: np.ndarray | float) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def _mel_to_hz(m: np.ndarray | float) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


@lru_cache(maxsize=16)
def _mel_filterbank_cached(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    bin_hz = np.arange(n_fft // 2 + 1, dtype=np.float64) * sample_rate / n_fft
    corners = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    lower, centre, upper = corners[:-2, None], corners[1:-1, None], corners[2:, None]
    rising = (bin_hz[None, :] - lower) / (centre - lower)
    falling = (upper - bin_hz[None, :]) / (upper - centre)
    fb = np.maximum(0.0, np.minimum(rising, falling)).astype(np.float32)
    fb.setflags(write=False)
    return fb


def mel_filterbank(cfg: AudioFeatureConfig) -> np.ndarray:
    """Return the HTK-scale triangular mel filterbank of ``cfg`` (built once per config, cached).

    Args:
        cfg: The feature configuration.

    Returns:
        Read-only float32 ``(n_mels, n_fft // 2 + 1)`` weights in [0, 1], each row one triangle with peak 1
        at its centre frequency (reached only if a bin falls exactly on it).
    """
    return _mel_filterbank_cached(cfg.sample_rate, cfg.n_fft, cfg.n_mels, float(cfg.fmin), float(cfg.fmax))


@lru_cache(maxsize=16)
def _hann(n: int) -> np.ndarray:
    w = (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)).astype(np.float32)
    w.setflags(write=False)
    return w


def normalize_waveform(wave_: np.ndarray, rms_floor: float = 1e-3) -> np.ndarray:
    """Remove the DC offset and scale to unit RMS (step 1 of ``logmel-v1``).

    Args:
        wave_: float ``(n,)`` samples.
        rms_floor: The RMS is floored at this value, so near-silence is not amplified into loud noise.

    Returns:
        float32 ``(n,)``: ``(x - mean(x)) / max(rms(x - mean(x)), rms_floor)``.
    """
    x = np.asarray(wave_, dtype=np.float64)
    if x.size == 0:
        return x.astype(np.float32)
    x = x - x.mean()
    rms = float(np.sqrt(np.mean(x * x)))
    return (x / max(rms, rms_floor)).astype(np.float32)


def _fit_length(x: np.ndarray, n: int) -> np.ndarray:
    """Centre-pad with zeros or centre-crop ``x`` to exactly ``n`` samples."""
    length = len(x)
    if length >= n:
        start = (length - n) // 2
        return x[start : start + n]
    out = np.zeros(n, dtype=np.float32)
    start = (n - length) // 2
    out[start : start + length] = x
    return out


def logmel_batch(waves: Sequence[np.ndarray], cfg: AudioFeatureConfig = AudioFeatureConfig()) -> np.ndarray:
    """Compute ``logmel-v1`` features of many utterances at once (vectorised STFT).

    Every waveform must already be at ``cfg.sample_rate`` (use :func:`read_wav`). Each utterance is
    normalised on its own, so the result for one utterance does not depend on the others in the batch.

    Args:
        waves: 1-D float waveforms (any lengths; empty ones give an all-zero map).
        cfg: The feature configuration.

    Returns:
        float32 ``(len(waves), 1, n_mels, frames)``, finite, each map with mean ~0 and std ~1 (all zeros for
        silence).

    Raises:
        DataError: When a waveform is not 1-D.
    """
    n = cfg.n_samples
    out = np.empty((len(waves), *cfg.shape), dtype=np.float32)
    if not len(waves):
        return out
    fb = mel_filterbank(cfg)
    window = _hann(cfg.n_fft)
    for start in range(0, len(waves), _CHUNK):
        chunk = waves[start : start + _CHUNK]
        batch = np.empty((len(chunk), n), dtype=np.float32)
        for i, item in enumerate(chunk):
            w = np.asarray(item)
            if w.ndim != 1:
                raise DataError(
                    f"waveform {start + i} has shape {w.shape}; logmel needs 1-D mono samples; "
                    "mix down to mono first"
                )
            batch[i] = _fit_length(normalize_waveform(w, cfg.rms_floor), n)
        frames = np.lib.stride_tricks.sliding_window_view(batch, cfg.n_fft, axis=-1)[:, :: cfg.hop]
        spec = np.fft.rfft(frames * window, axis=-1)  # (B, frames, bins)
        power = (spec.real**2 + spec.imag**2).astype(np.float32)
        mel = np.log(power @ fb.T + np.float32(cfg.log_eps))  # (B, frames, n_mels)
        mel = np.swapaxes(mel, 1, 2).astype(np.float64)  # float64 statistics: a constant map gives exactly 0
        mean = mel.mean(axis=(1, 2), keepdims=True)
        std = mel.std(axis=(1, 2), keepdims=True)
        out[start : start + len(chunk), 0] = (mel - mean) / (std + STD_EPS)
    return out


def logmel(wave_: np.ndarray, cfg: AudioFeatureConfig = AudioFeatureConfig()) -> np.ndarray:
    """Compute ``logmel-v1`` features of one utterance (see the module docstring for the recipe).

    Args:
        wave_: float ``(n,)`` samples at ``cfg.sample_rate``, any length.
        cfg: The feature configuration.

    Returns:
        float32 ``(1, n_mels, frames)``; deterministic and identical to the matching row of
        :func:`logmel_batch`.

    Raises:
        DataError: When ``wave_`` is not 1-D.
    """
    return logmel_batch([wave_], cfg)[0]
