"""WAV reading and logmel-v1 features (NumPy only)."""

from __future__ import annotations

import logging
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
from edgefuse.data.audio import (
    AudioFeatureConfig,
    logmel,
    logmel_batch,
    mel_filterbank,
    normalize_waveform,
    read_wav,
)
from edgefuse.errors import DataError


def write_wav(
    path: Path, samples: np.ndarray, rate: int = 8000, *, channels: int = 1, width: int = 2
) -> Path:
    """Write integer samples (already in the target width's range) as a PCM WAV."""
    dtype = {1: np.uint8, 2: "<i2", 4: "<i4"}
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        if width == 3:
            s = np.asarray(samples, dtype="<i4").reshape(-1)
            raw = np.stack([s & 0xFF, (s >> 8) & 0xFF, (s >> 16) & 0xFF], axis=-1).astype(np.uint8).tobytes()
        else:
            raw = np.asarray(samples).astype(dtype[width]).tobytes()
        w.writeframes(raw)
    return path


def speechlike(n: int = 6000, rate: int = 8000, seed: int = 0) -> np.ndarray:
    """A float waveform in [-1, 1] with some harmonic structure and an envelope (not real speech)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / rate
    f0 = 120 + 60 * t
    x = sum(np.sin(2 * np.pi * k * np.cumsum(f0) / rate) / k for k in range(1, 8))
    x = x * np.hanning(n) + 0.01 * rng.standard_normal(n)
    return (0.5 * x / np.abs(x).max()).astype(np.float32)


def to_int16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x * 32767), -32768, 32767).astype(np.int16)


# ------------------------------------------------------------------------------------------- read_wav


def test_read_wav_returns_float32_in_range(tmp_path: Path) -> None:
    x = speechlike()
    path = write_wav(tmp_path / "3_jackson_0.wav", to_int16(x))
    wave_, rate = read_wav(path)
    assert rate == 8000
    assert wave_.dtype == np.float32
    assert wave_.shape == (len(x),)
    assert np.abs(wave_).max() <= 1.0
    np.testing.assert_allclose(wave_, x, atol=1e-4)


def test_read_wav_stereo_names_file_and_says_mono_required(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "stereo_take.wav", np.zeros(200, dtype=np.int16), channels=2)
    with pytest.raises(DataError, match=r"stereo_take\.wav.*2 channels; mono required") as info:
        read_wav(path)
    assert "sox" in str(info.value)


@pytest.mark.parametrize(("width", "bits"), [(1, 8), (3, 24), (4, 32)])
def test_read_wav_rejects_other_sample_widths(tmp_path: Path, width: int, bits: int) -> None:
    path = write_wav(
        tmp_path / f"w{bits}.wav", np.zeros(100, dtype=np.int32) + (128 if width == 1 else 0), width=width
    )
    with pytest.raises(DataError, match=rf"w{bits}\.wav.*{bits}-bit.*only 16-bit"):
        read_wav(path)


def test_read_wav_truncated_data(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "cut.wav", to_int16(speechlike()))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 1001])
    with pytest.raises(DataError, match=r"cut\.wav.*truncated"):
        read_wav(path)


def test_read_wav_truncated_header(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "head.wav", to_int16(speechlike()))
    path.write_bytes(path.read_bytes()[:30])
    with pytest.raises(DataError, match=r"head\.wav.*not a readable WAV"):
        read_wav(path)


def test_read_wav_not_a_wav_empty_and_missing(tmp_path: Path) -> None:
    text = tmp_path / "notes.wav"
    text.write_text("this is not audio at all, just text\n" * 10)
    with pytest.raises(DataError, match=r"notes\.wav.*not a readable WAV"):
        read_wav(text)
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match=r"empty\.wav.*empty"):
        read_wav(empty)
    with pytest.raises(DataError, match=r"missing\.wav.*cannot read"):
        read_wav(tmp_path / "missing.wav")


def test_read_wav_header_only_has_no_samples(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "nothing.wav", np.zeros(0, dtype=np.int16))
    with pytest.raises(DataError, match=r"nothing\.wav.*no samples"):
        read_wav(path)


def test_read_wav_resamples_16k_to_8k(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    n = 16000
    tone = 0.5 * np.sin(2 * np.pi * 440 * np.arange(n) / 16000)
    path = write_wav(tmp_path / "hi_rate.wav", to_int16(tone), rate=16000)
    with caplog.at_level(logging.INFO, logger="edgefuse.data.audio"):
        wave_, rate = read_wav(path)
    assert rate == 8000
    assert wave_.shape == (8000,)
    assert wave_.dtype == np.float32
    assert any("hi_rate.wav" in r.getMessage() and "16000" in r.getMessage() for r in caplog.records)
    spectrum = np.abs(np.fft.rfft(wave_))
    assert abs(np.argmax(spectrum) * 8000 / len(wave_) - 440) <= 1.0  # the tone keeps its pitch


def test_read_wav_resamples_44k1(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "cd.wav", to_int16(0.1 * np.ones(4410)), rate=44100)
    wave_, rate = read_wav(path)
    assert (rate, wave_.shape) == (8000, (800,))


def test_read_wav_resample_false_raises(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "hi_rate.wav", np.zeros(1600, dtype=np.int16), rate=16000)
    with pytest.raises(DataError, match=r"hi_rate\.wav.*16000 Hz.*8000 Hz required"):
        read_wav(path, resample=False)
    wave_, rate = read_wav(path, sample_rate=None)
    assert (rate, wave_.shape) == (16000, (1600,))


# ------------------------------------------------------------------------------------------- features


def test_config_defaults_and_roundtrip() -> None:
    cfg = AudioFeatureConfig()
    assert cfg.frames == 61
    assert cfg.shape == (1, 32, 61)
    assert AudioFeatureConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(DataError, match="unknown keys"):
        AudioFeatureConfig.from_dict({**cfg.to_dict(), "n_ftt": 512})
    with pytest.raises(DataError, match="fmax"):
        AudioFeatureConfig(fmax=6000.0)
    with pytest.raises(DataError, match="n_fft"):
        AudioFeatureConfig(duration_s=0.01)


def test_logmel_shape_dtype_finite_deterministic() -> None:
    x = speechlike()
    a = logmel(x)
    b = logmel(x.copy())
    assert a.shape == (1, 32, 61)
    assert a.dtype == np.float32
    assert np.isfinite(a).all()
    np.testing.assert_array_equal(a, b)
    assert abs(float(a.mean())) < 1e-4
    assert abs(float(a.std()) - 1) < 1e-3


@pytest.mark.parametrize("n", [300, 8000, 18000])
def test_logmel_any_length(n: int) -> None:
    out = logmel(speechlike(n))
    assert out.shape == (1, 32, 61)
    assert np.isfinite(out).all()


def test_logmel_batch_matches_single_and_silence_is_finite() -> None:
    waves = [speechlike(5000, seed=1), np.zeros(4000, np.float32), speechlike(12000, seed=2), np.zeros(0)]
    batch = logmel_batch(waves)
    assert batch.shape == (4, 1, 32, 61)
    for w, row in zip(waves, batch, strict=True):
        np.testing.assert_array_equal(logmel(w), row)
    assert np.isfinite(batch).all()
    np.testing.assert_array_equal(batch[1], 0)
    assert logmel_batch([]).shape == (0, 1, 32, 61)


def test_logmel_rejects_stereo_array() -> None:
    with pytest.raises(DataError, match="1-D"):
        logmel(np.zeros((2, 800), np.float32))


def test_normalisation_removes_dc_offset_and_gain() -> None:
    x = speechlike()
    quiet = 0.1 * x  # one FSDD speaker is ~10x quieter
    offset = x + 230 / 32768  # another has a DC offset of ~230 (int16 units)
    for variant in (quiet, offset, 0.1 * x + 230 / 32768):
        np.testing.assert_allclose(normalize_waveform(variant), normalize_waveform(x), atol=1e-4)
        assert np.abs(logmel(variant) - logmel(x)).max() < 0.05
    # without the normalisation the offset would move the lowest band a lot: check it is the recipe at work
    n = normalize_waveform(offset)
    assert abs(float(n.mean())) < 1e-6
    assert abs(float(np.sqrt(np.mean(n.astype(np.float64) ** 2))) - 1) < 1e-5


def test_normalisation_floor_keeps_near_silence_quiet() -> None:
    hiss = np.full(4000, 1 / 32768, np.float32)
    hiss[::2] *= -1
    out = normalize_waveform(hiss, rms_floor=1e-3)
    assert np.abs(out).max() < 0.05  # floored: not blown up to unit RMS


def test_mel_filterbank_sanity() -> None:
    cfg = AudioFeatureConfig()
    fb = mel_filterbank(cfg)
    assert fb.shape == (32, 129)
    assert fb.dtype == np.float32
    assert fb.min() >= 0
    assert fb.max() <= 1
    assert (fb.max(axis=1) > 0.3).all()  # no empty filter
    peaks = fb.argmax(axis=1)
    assert (np.diff(peaks) >= 0).all()  # centres increase with the band index
    bin_hz = np.arange(129) * cfg.sample_rate / cfg.n_fft
    assert bin_hz[peaks[0]] < 100
    assert bin_hz[peaks[-1]] > 3000
    low_widths = (fb[:4] > 0).sum(axis=1)
    high_widths = (fb[-4:] > 0).sum(axis=1)
    assert high_widths.mean() > low_widths.mean()  # mel: wider bands at high frequencies
    assert fb[:, bin_hz > cfg.fmax].sum() == 0
    assert fb[:, bin_hz < cfg.fmin].sum() == 0
    assert mel_filterbank(AudioFeatureConfig()) is fb  # built once per config
    assert not fb.flags.writeable
    other = mel_filterbank(AudioFeatureConfig(n_mels=40))
    assert other.shape == (40, 129)


def test_audio_module_imports_numpy_only() -> None:
    code = (
        "import sys, edgefuse.data.audio as a; import numpy as np;"
        "a.logmel(np.zeros(800, np.float32));"
        "bad = [m for m in ('scipy', 'torch', 'sklearn', 'librosa', 'torchaudio') if m in sys.modules];"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
