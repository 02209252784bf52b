"""Hostile WAV files: every one gives a DataError naming the file, the field, the value and what is allowed.

The WAVs are built by hand with ``struct`` in ``tmp_path`` (no ``.wav`` is committed). Each case runs in
its own interpreter under the harness's memory limit and timeout: before these checks a 4 GHz or 1 Hz
header made the resampler allocate until memory ran out, and a FIFO named ``*.wav`` blocked the reader.
"""

from __future__ import annotations

import math
import os
import struct
from pathlib import Path

import pytest
from _harness import expect_error, expect_ok

MAX_WAV_BYTES = 64 << 20  # edgefuse.data.audio.MAX_WAV_BYTES (not imported: the parent stays light)


def wav_bytes(
    *,
    rate: int = 8000,
    channels: int = 1,
    bits: int = 16,
    samples: int = 2400,
    declared: int | None = None,
) -> bytes:
    """A RIFF/WAVE file written field by field; ``declared`` overrides the data chunk's size field."""
    period = b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * i / 16))) for i in range(16))
    payload = (period * (samples // 16 + 1))[: 2 * samples]  # a 500 Hz tone at 8 kHz
    size = len(payload) if declared is None else declared
    align = channels * ((bits + 7) // 8)
    fmt = struct.pack("<HHIIHH", 1, channels, rate, (rate * align) & 0xFFFFFFFF, align & 0xFFFF, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", size) + payload
    return b"RIFF" + struct.pack("<I", len(body)) + body


READ = """
from edgefuse.data.audio import read_wav
wave_, rate = read_wav({path!r})
RESULT["shape"] = list(wave_.shape)
RESULT["rate"] = rate
"""

# name -> (header fields, message fragments: the file's name is added to every case)
HEADERS: dict[str, tuple[dict[str, int], tuple[str, ...]]] = {
    "rate-4ghz": ({"rate": 4_294_967_295}, ("'sample rate'", "4294967295 Hz", "1000..384000 Hz")),
    "rate-1hz": ({"rate": 1, "samples": 200_000}, ("'sample rate'", "is 1 Hz", "1000..384000 Hz")),
    "rate-just-below": ({"rate": 999}, ("'sample rate'", "999 Hz", "1000..384000")),
    "rate-just-above": ({"rate": 384_001}, ("'sample rate'", "384001 Hz", "1000..384000")),
    "more-frames-than-file": ({"declared": 0xFFFF_FFF0}, ("truncated", "4294967280 bytes", "re-export")),
    "zero-channels": ({"channels": 0}, ("'channels' is 0", "allowed: 1 (mono)")),
    "65535-channels": ({"channels": 65535}, ("65535 channels", "mono required", "must be 1")),
    "zero-bits": ({"bits": 0}, ("'bits per sample' = 0", "only 16-bit")),
    "absurd-bits": ({"bits": 65535}, ("'bits per sample' = 65535", "only 16-bit")),
    "too-long": ({"rate": 1000, "samples": 601_000}, ("lasts 601 s", "at most 600 s")),
}


@pytest.mark.parametrize("case", list(HEADERS))
def test_hostile_header_is_refused(tmp_path: Path, case: str) -> None:
    fields, fragments = HEADERS[case]
    path = tmp_path / f"{case}.wav"
    path.write_bytes(wav_bytes(**fields))
    expect_error(READ.format(path=str(path)), "DataError", f"{case}.wav", *fragments)


@pytest.mark.parametrize("rate", [1000, 384_000])
def test_rates_at_the_bounds_are_read(tmp_path: Path, rate: int) -> None:
    path = tmp_path / f"r{rate}.wav"
    path.write_bytes(wav_bytes(rate=rate, samples=rate // 10))  # 0.1 s
    res = expect_ok(READ.format(path=str(path)))
    assert res.result == {"shape": [800], "rate": 8000}  # resampled to 8 kHz


def test_fifo_named_wav_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)
    expect_error(
        READ.format(path=str(fifo)), "DataError", "pipe.wav", "FIFO", "not a regular file", timeout=30
    )


def test_symlink_to_dev_zero_is_refused(tmp_path: Path) -> None:
    link = tmp_path / "zero.wav"
    link.symlink_to("/dev/zero")
    expect_error(READ.format(path=str(link)), "DataError", "zero.wav", "character device", "regular file")


def test_file_over_the_size_cap_is_refused_before_reading(tmp_path: Path) -> None:
    big = tmp_path / "big.wav"
    with big.open("wb") as fh:  # sparse: no disk used
        fh.write(wav_bytes(samples=10))
        fh.truncate(MAX_WAV_BYTES + 1)
    expect_error(
        READ.format(path=str(big)), "DataError", "big.wav", str(MAX_WAV_BYTES + 1), str(MAX_WAV_BYTES)
    )


# an artifact's manifest carries the feature parameters: hostile ones must not allocate without bound
CONFIGS: dict[str, tuple[str, tuple[str, ...]]] = {
    "sample-rate-1ghz": ("sample_rate=10**9", ("sample_rate=1000000000", "1000..384000")),
    "duration-nan": ("duration_s=float('nan')", ("duration_s=nan", "finite number")),
    "duration-day": ("duration_s=86400.0", ("duration_s=86400.0", "(0, 600]")),
    "stft-too-big": ("duration_s=600.0, hop=1", ("4799745 frames", "larger hop")),
    "n-fft-huge": ("n_fft=2**30", ("n_fft=1073741824", "2..65536")),
    "n-mels-string": ("n_mels='32'", ("n_mels='32'", "must be an integer")),
}


@pytest.mark.parametrize("case", list(CONFIGS))
def test_hostile_feature_config_is_refused(case: str) -> None:
    kwargs, fragments = CONFIGS[case]
    code = f"from edgefuse.data.audio import AudioFeatureConfig\nAudioFeatureConfig({kwargs})\n"
    expect_error(code, "DataError", "invalid AudioFeatureConfig", *fragments)


# --------------------------------------------------------------------------------------- FSDD folders

SPEAKERS = ("ann", "bob", "cid")

LOAD = """
import warnings
from edgefuse.data.avdigits import load_av_digits
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    ds = load_av_digits({root!r}, cache_dir={cache!r}, skip_bad={skip_bad}, train_speakers=("ann",),
                        val_speakers=("bob",), test_speakers=("cid",))
RESULT["skipped"] = sorted(s["file"] for s in ds.meta["skipped"])
RESULT["reasons"] = {{s["file"]: s["reason"] for s in ds.meta["skipped"]}}
RESULT["warnings"] = [str(w.message) for w in caught if "unusable" in str(w.message)]
RESULT["kept"] = sum(ds.meta["counts"].values())
"""


def _fsdd(root: Path, *, special: bool = True) -> Path:
    """A tiny FSDD-like folder (3 speakers x 10 digits x 1 take) plus hostile recordings."""
    rec = root / "recordings"
    rec.mkdir(parents=True)
    for spk in SPEAKERS:
        for d in range(10):
            (rec / f"{d}_{spk}_0.wav").write_bytes(wav_bytes())
    (rec / "1_ann_7.wav").write_bytes(wav_bytes(rate=4_294_967_295))
    (rec / "2_bob_7.wav").write_bytes(wav_bytes(declared=0xFFFF_FFF0))
    (rec / "3_cid_7.wav").write_bytes(wav_bytes(channels=0))
    if special:  # a FIFO and a device named like recordings: refused when read, never opened
        os.mkfifo(rec / "4_ann_7.wav")
        (rec / "5_bob_7.wav").symlink_to("/dev/zero")
    return root


HOSTILE = ["1_ann_7.wav", "2_bob_7.wav", "3_cid_7.wav", "4_ann_7.wav", "5_bob_7.wav"]


def test_fsdd_skip_bad_skips_and_counts_hostile_files(tmp_path: Path) -> None:
    root = _fsdd(tmp_path / "fsdd")
    code = LOAD.format(root=str(root), cache=str(tmp_path / "cache"), skip_bad=True)
    res = expect_ok(code, timeout=60)
    assert res.result["skipped"] == HOSTILE
    assert res.result["kept"] == 30
    reasons = res.result["reasons"]
    assert "'sample rate'" in reasons["1_ann_7.wav"]
    assert "truncated" in reasons["2_bob_7.wav"]
    assert "'channels' is 0" in reasons["3_cid_7.wav"]
    assert "FIFO" in reasons["4_ann_7.wav"]
    assert "character device" in reasons["5_bob_7.wav"]
    (warning,) = res.result["warnings"]
    assert "skipped 5 unusable file(s)" in warning


def test_fsdd_without_skip_bad_names_the_hostile_header(tmp_path: Path) -> None:
    root = _fsdd(tmp_path / "fsdd", special=False)
    code = LOAD.format(root=str(root), cache=str(tmp_path / "cache"), skip_bad=False)
    expect_error(code, "DataError", "1_ann_7.wav", "'sample rate'", "4294967295", "1000..384000", timeout=60)


def test_fsdd_without_skip_bad_refuses_a_fifo_recording(tmp_path: Path) -> None:
    root = _fsdd(tmp_path / "fsdd")  # files are read (bounded) before any is decoded: the FIFO comes first
    code = LOAD.format(root=str(root), cache=str(tmp_path / "cache"), skip_bad=False)
    expect_error(code, "DataError", "4_ann_7.wav", "FIFO", "not a regular file", timeout=60)
