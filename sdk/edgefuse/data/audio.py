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

WAV files come from outside and are untrusted. :func:`read_wav` opens them only through
:func:`edgefuse.trust.read_bounded` (regular files of at most :data:`MAX_WAV_BYTES`; a FIFO or a device is
refused before it is read), and :func:`parse_wav_bytes` checks the header before decoding anything: one
channel, 16 bits per sample, a sample rate in ``MIN_SAMPLE_RATE..MAX_SAMPLE_RATE``, a ``data`` chunk no
longer than the file and at most :data:`MAX_WAV_SECONDS` of audio. So a hostile header can neither make
the reader allocate more than the file holds nor make the resampler build a gigantic filter.
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
from edgefuse.trust import ArtifactIntegrityError, UnsafeFileError, read_bounded

__all__ = [
    "EXPECTED_SAMPLE_RATE",
    "MAX_SAMPLE_RATE",
    "MAX_WAV_BYTES",
    "MAX_WAV_SECONDS",
    "MIN_SAMPLE_RATE",
    "AudioFeatureConfig",
    "logmel",
    "logmel_batch",
    "mel_filterbank",
    "normalize_waveform",
    "parse_wav_bytes",
    "read_wav",
    "read_wav_file",
    "resample",
]

logger = logging.getLogger(__name__)

#: The sample rate of FSDD and of the default features.
EXPECTED_SAMPLE_RATE = 8000

#: Largest WAV file read (64 MiB: over 11 minutes of 16-bit mono at 48 kHz; an FSDD recording is ~15 KB).
MAX_WAV_BYTES = 64 << 20
#: Lowest sample rate a WAV header may declare (Hz); lower rates are corrupt headers, not speech.
MIN_SAMPLE_RATE = 1_000
#: Highest sample rate a WAV header may declare (Hz): the highest rate of professional audio interfaces.
MAX_SAMPLE_RATE = 384_000
#: Longest recording read (seconds): bounds the samples produced by resampling whatever the rate.
MAX_WAV_SECONDS = 600.0

_SOX_HINT = "e.g. `sox in.wav -c 1 -b 16 -e signed-integer -r 8000 out.wav`"

#: Added to the per-utterance standard deviation of the log-mel map before dividing.
STD_EPS = 1e-5

# Number of utterances framed and transformed at once in :func:`logmel_batch` (bounds peak memory).
_CHUNK = 256
# Bounds of AudioFeatureConfig: largest FFT, most mel bands, most STFT values (frames x bins) of one
# utterance (the defaults use 61 x 129); logmel_batch transforms fewer utterances at once when they are big.
_MAX_N_FFT = 1 << 16
_MAX_N_MELS = 1024
_MAX_STFT_VALUES = 1 << 24


def _finite(value: object) -> bool:
    """``math.isfinite`` that reads an integer too large for a float as not finite (no OverflowError)."""
    try:
        return math.isfinite(value)  # type: ignore[arg-type]
    except OverflowError:
        return False


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
        # The config may come from an artifact's manifest (untrusted): every field is typed, finite and
        # bounded, so that no config can make the features allocate more than _MAX_STFT_VALUES per utterance.
        problems = []
        for name in ("sample_rate", "n_fft", "hop", "n_mels"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer):
                problems.append(f"{name}={value!r} must be an integer")
        for name in ("duration_s", "fmin", "fmax", "log_eps", "rms_floor"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float | np.number)
                or not _finite(value)
            ):
                problems.append(f"{name}={value!r} must be a finite number")
        if problems:
            raise DataError("invalid AudioFeatureConfig: " + "; ".join(problems))
        if not MIN_SAMPLE_RATE <= self.sample_rate <= MAX_SAMPLE_RATE:
            problems.append(
                f"sample_rate={self.sample_rate} must be in {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz"
            )
        if not 0 < self.duration_s <= MAX_WAV_SECONDS:
            problems.append(f"duration_s={self.duration_s} must be in (0, {MAX_WAV_SECONDS:g}]")
        if not 2 <= self.n_fft <= _MAX_N_FFT:
            problems.append(f"n_fft={self.n_fft} must be in 2..{_MAX_N_FFT}")
        if self.hop < 1:
            problems.append(f"hop={self.hop} must be >= 1")
        if not 1 <= self.n_mels <= _MAX_N_MELS:
            problems.append(f"n_mels={self.n_mels} must be in 1..{_MAX_N_MELS}")
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
        if not problems and self.frames * (self.n_fft // 2 + 1) > _MAX_STFT_VALUES:
            problems.append(
                f"the STFT of one utterance would hold {self.frames} frames x {self.n_fft // 2 + 1} bins, more "
                f"than {_MAX_STFT_VALUES} values; use a shorter duration_s, a larger hop or a smaller n_fft"
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


def _check_header(data: bytes, name: str) -> None:
    """Check the ``fmt `` and ``data`` chunks of a RIFF/WAVE header before anything is decoded.

    Walks the chunks within ``data`` only (never past its end). Bytes that are not a RIFF/WAVE file, or
    whose ``fmt `` chunk is missing or short, are left to :mod:`wave` to report.

    Raises:
        DataError: A header field is out of range (channels, bits per sample, sample rate), the ``data``
            chunk declares more bytes than the file holds, or the recording is longer than
            :data:`MAX_WAV_SECONDS`. The message names the file, the field, its value and what is allowed.
    """
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return
    fmt: tuple[int, ...] | None = None
    pos = 12
    while pos + 8 <= len(data):
        chunk_id = data[pos : pos + 4]
        (size,) = struct.unpack_from("<I", data, pos + 4)
        body = pos + 8
        if chunk_id == b"fmt ":
            if size < 16 or body + 16 > len(data):
                return  # wave reports the short fmt chunk
            fmt = struct.unpack_from("<HHIIHH", data, body)
        elif chunk_id == b"data":
            if fmt is None:
                return  # wave reports "data chunk before fmt chunk"
            _check_fmt(fmt, name)
            held = len(data) - body
            if size > held:
                raise DataError(
                    f"{name}: is truncated: its data chunk declares {size} bytes ({size // 2} samples) but "
                    f"the file holds {held} bytes after the header; re-download or re-export it"
                )
            seconds = (size // 2) / fmt[2]
            if seconds > MAX_WAV_SECONDS:
                raise DataError(
                    f"{name}: lasts {seconds:.0f} s ({size // 2} samples at {fmt[2]} Hz); at most "
                    f"{MAX_WAV_SECONDS:.0f} s of audio is read per file; cut it into shorter recordings"
                )
            return
        pos = body + size + (size & 1)
    if fmt is not None:
        _check_fmt(fmt, name)


def _check_fmt(fmt: tuple[int, ...], name: str) -> None:
    """Refuse channels, bits per sample and sample rates outside what EdgeFuse reads."""
    _tag, channels, rate, _byte_rate, _align, bits = fmt
    if channels == 0:
        raise DataError(
            f"{name}: header field 'channels' is 0; allowed: 1 (mono); the file is corrupt: re-export it, "
            f"{_SOX_HINT}"
        )
    if channels != 1:
        raise DataError(
            f"{name}: has {channels} channels; mono required (header field 'channels' must be 1); "
            f"convert it, e.g. `sox {name} -c 1 out.wav`"
        )
    if bits != 16:
        raise DataError(
            f"{name}: sample width is {bits}-bit (header field 'bits per sample' = {bits}); only 16-bit PCM "
            f"is supported; convert it, e.g. `sox {name} -b 16 -e signed-integer out.wav`"
        )
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise DataError(
            f"{name}: header field 'sample rate' is {rate} Hz, outside the allowed {MIN_SAMPLE_RATE}.."
            f"{MAX_SAMPLE_RATE} Hz; the header is corrupt or the file is not audio: re-export it at "
            f"{EXPECTED_SAMPLE_RATE} Hz, {_SOX_HINT}"
        )


def parse_wav_bytes(data: bytes, name: str) -> tuple[np.ndarray, int]:
    """Decode a mono 16-bit PCM WAV held in memory.

    The header is checked before anything is decoded (see the module docstring): the bytes must be at
    most :data:`MAX_WAV_BYTES`, and the header must declare one channel, 16 bits per sample, a sample rate
    in ``MIN_SAMPLE_RATE..MAX_SAMPLE_RATE`` Hz, no more data than the file holds and at most
    :data:`MAX_WAV_SECONDS` of audio.

    Args:
        data: The file's bytes.
        name: The file name, used in error messages.

    Returns:
        ``(wave, sample_rate)``: float32 ``(n,)`` samples in [-1, 1) (int16 / 32768) and the file's rate.

    Raises:
        DataError: When the bytes are empty, too large, not a WAV, truncated or corrupt, not mono, not
            16-bit, have a sample rate out of range, or hold no samples. The message names the file.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise DataError(f"{name}: WAV data must be bytes; got {type(data).__name__}")
    if not data:
        raise DataError(
            f"{name}: the file is empty (0 bytes); expected a mono 16-bit PCM WAV; replace the file"
        )
    if len(data) > MAX_WAV_BYTES:
        raise DataError(
            f"{name}: has {len(data)} bytes, more than the {MAX_WAV_BYTES} bytes (64 MiB) allowed per WAV "
            "file; cut it into shorter recordings"
        )
    _check_header(data, name)
    try:
        with wave.open(io.BytesIO(data), "rb") as reader:
            channels = reader.getnchannels()
            width = reader.getsampwidth()
            rate = reader.getframerate()
            n_frames = reader.getnframes()
            payload = reader.readframes(n_frames)
    except (wave.Error, EOFError, struct.error, RuntimeError, ValueError) as exc:
        raise DataError(
            f"{name}: not a readable WAV file ({type(exc).__name__}: {exc or 'a chunk runs past the end of the file'}); expected mono 16-bit PCM "
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
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:  # pragma: no cover - _check_header refuses it first
        raise DataError(
            f"{name}: header field 'sample rate' is {rate} Hz, outside the allowed {MIN_SAMPLE_RATE}.."
            f"{MAX_SAMPLE_RATE} Hz; re-export it"
        )
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


def read_wav_file(path: str | Path) -> bytes:
    """The bytes of a WAV file, read through :func:`edgefuse.trust.read_bounded` (at most :data:`MAX_WAV_BYTES`).

    Raises:
        DataError: The file is missing, is not a regular file (FIFO, device, folder...), cannot be opened,
            or is larger than :data:`MAX_WAV_BYTES`. The message names the file and the fix.
    """
    try:
        return read_bounded(path, max_bytes=MAX_WAV_BYTES, what="WAV file")
    except ArtifactIntegrityError:
        raise DataError(
            f"{path}: cannot read the file (no such file); expected a mono 16-bit PCM WAV"
        ) from None
    except UnsafeFileError as exc:
        raise DataError(
            f"{exc}. A WAV is read only from a regular file of at most {MAX_WAV_BYTES} bytes (64 MiB); "
            "give such a file (cut longer recordings)"
        ) from None


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
        DataError: When the file is missing, not a regular file (FIFO, device...), larger than
            :data:`MAX_WAV_BYTES`, empty, corrupt, truncated, not a WAV, not mono, not 16-bit, has a sample
            rate outside ``MIN_SAMPLE_RATE..MAX_SAMPLE_RATE`` or lasts more than :data:`MAX_WAV_SECONDS`, or
            has another rate with ``resample=False``. The message names the file.
    """
    path = Path(path)
    data = read_wav_file(path)
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
    step = max(1, min(_CHUNK, _MAX_STFT_VALUES // (cfg.frames * (cfg.n_fft // 2 + 1))))
    for start in range(0, len(waves), step):
        chunk = waves[start : start + step]
        batch = np.empty((len(chunk), n), dtype=np.float32)
        for i, item in enumerate(chunk):
            w = np.asarray(item)
            if w.ndim != 1:
                raise DataError(
                    f"waveform {start + i} has shape {w.shape}; logmel needs 1-D mono samples; "
                    "mix down to mono first"
                )
            if w.dtype.kind not in "biuf" or not np.isfinite(w).all():
                raise DataError(
                    f"waveform {start + i} holds NaN/Inf or is not numeric ({w.dtype}); logmel needs finite "
                    "samples: clean the recording"
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
