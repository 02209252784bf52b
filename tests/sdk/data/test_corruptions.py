"""Sensor corruptions (edgefuse.data.corruptions): table, parsing, determinism, isolation, NaN rows,
waveform path (a tiny fake FSDD, and the real one when ``$EDGEFUSE_FSDD`` or ../shared/data/fsdd exists),
feature-domain labelling, image corruption before the PCA degradation, augmentation.
"""

from __future__ import annotations

import os
import wave
from pathlib import Path

import numpy as np
import pytest
from edgefuse.data import corruptions
from edgefuse.data.audio import logmel_batch
from edgefuse.data.avdigits import load_av_digits, load_av_digits_synthetic_audio
from edgefuse.data.corruptions import (
    CORRUPTIONS,
    CorruptedSplit,
    Corruption,
    augment,
    augment_split,
    corrupt_array,
    corrupt_split,
    corrupt_waveforms,
    parse_corruptions,
    parse_severities,
    split_waveforms,
)
from edgefuse.data.synthetic import make_synthetic
from edgefuse.errors import DataError

_REAL = Path(
    os.environ.get("EDGEFUSE_FSDD") or Path(__file__).resolve().parents[4] / "shared" / "data" / "fsdd"
)
needs_fsdd = pytest.mark.skipif(
    not _REAL.is_dir(),
    reason=f"FSDD not found at {_REAL} (set EDGEFUSE_FSDD to the Free Spoken Digit Dataset folder)",
)

WAVE_KINDS = ("noise", "gain", "eq", "shift", "clip")
IMAGE_KINDS = ("noise", "blur", "occlusion", "contrast", "brightness")


def _tone(digit: int, take: int, n: int = 2400) -> np.ndarray:
    t = np.arange(n) / 8000
    x = np.sin(2 * np.pi * (300 + 150 * digit) * t) * np.hanning(n) + 0.05 * np.sin(2 * np.pi * 1900 * t)
    return np.round(3000 * x + 40 * take).astype(np.int16)


def _make_fsdd(root: Path, takes: int = 2) -> Path:
    rec = root / "recordings"
    rec.mkdir(parents=True)
    for spk in ("ann", "bob", "cid"):
        for d in range(10):
            for k in range(takes):
                with wave.open(str(rec / f"{d}_{spk}_{k}.wav"), "wb") as w:
                    w.setnchannels(1)
                    w.setsampwidth(2)
                    w.setframerate(8000)
                    w.writeframes(_tone(d, k).astype("<i2").tobytes())
    return root


@pytest.fixture
def fake_av(tmp_path: Path):
    root = _make_fsdd(tmp_path / "fsdd")
    ds = load_av_digits(
        root,
        train_speakers=("ann",),
        val_speakers=("bob",),
        test_speakers=("cid",),
        degrade_image=4,
        use_cache=False,
    )
    return root, ds


@pytest.fixture(scope="module")
def synth_audio():
    return load_av_digits_synthetic_audio(degrade_image=4)


@pytest.fixture(scope="module")
def synth():
    return make_synthetic(60, 20, 40)


@pytest.fixture(scope="module")
def real_av(tmp_path_factory: pytest.TempPathFactory):
    if not _REAL.is_dir():
        pytest.skip(f"FSDD not found at {_REAL}")
    return load_av_digits(_REAL, cache_dir=tmp_path_factory.mktemp("corrcache"))


def _dist(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(((a - b) ** 2).reshape(len(a), -1).sum(1)).mean())


def _snapshot(ds) -> dict:
    return {
        s: {m: a.copy() for m, a in sp.inputs.items()} | {"y": sp.labels.copy()}
        for s, sp in ds.splits.items()
    }


def _unchanged(ds, snap) -> bool:
    return all(
        np.array_equal(sp.inputs[m], snap[s][m]) for s, sp in ds.splits.items() for m in sp.inputs
    ) and all(np.array_equal(sp.labels, snap[s]["y"]) for s, sp in ds.splits.items())


# ------------------------------------------------------------------------------------- table and parsing


def test_table_has_five_increasing_levels() -> None:
    # Direction in which each parameter gets more severe: +1 grows, -1 shrinks.
    direction = {
        ("audio", "noise"): -1,
        ("audio", "gain"): -1,
        ("audio", "shift"): 1,
        ("audio", "clip"): -1,
        ("image", "noise"): 1,
        ("image", "blur"): 1,
        ("image", "occlusion"): 1,
        ("image", "contrast"): -1,
        ("image", "brightness"): 1,
    }
    for modality, kinds in CORRUPTIONS.items():
        for kind, spec in kinds.items():
            assert len(spec.levels) == 5, (modality, kind)
            if kind == "eq":
                low, high, bell = (np.array(v) for v in zip(*spec.levels, strict=True))
                assert (np.diff(low) > 0).all()
                assert (np.diff(high) < 0).all()
                assert (np.diff(bell) > 0).all()
            elif modality == corruptions.ANY:
                assert list(spec.levels) == [0.2, 0.4, 0.6, 0.8, 1.0]
            else:
                assert (direction[modality, kind] * np.diff(spec.levels) > 0).all(), (modality, kind)
    for kind, (_, levels) in corruptions.FEATURE_LEVELS.items():
        assert len(set(levels)) == len(levels) == 5, kind
    assert Corruption("audio", "noise", 3).params == {"snr_db": 10.0}
    assert Corruption("audio", "eq", 5, seed=2).params == {
        "low_hz": 600.0,
        "high_hz": 1800.0,
        "bell_db": 15.0,
    }
    assert Corruption("imu", "nan", 1).params == {"row_fraction": 0.2}
    assert Corruption("audio", "shift", 2).feature_params() == {"shift_frames": 3}


def test_parse_corruptions_and_severities() -> None:
    assert parse_corruptions("audio:noise, image:blur,audio:noise") == [("audio", "noise"), ("image", "blur")]
    assert parse_corruptions(["imu:zeros"]) == [("imu", "zeros")]
    assert parse_severities("5,1,3,3") == (1, 3, 5)
    assert parse_severities([2]) == (2,)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("audio:nosie", "did you mean 'noise'"),
        ("image:blurr", "did you mean 'blur'"),
        ("audoi:noise", "did you mean 'audio'"),
        ("audio", "not modality:kind"),
        ("", "no corruption given"),
        ("image:clip", "allowed for image"),
    ],
)
def test_parse_errors_name_the_problem(text: str, needle: str) -> None:
    with pytest.raises(DataError, match=needle):
        parse_corruptions(text, modalities=("audio", "image"))


def test_unknown_modality_lists_the_dataset_modalities() -> None:
    with pytest.raises(DataError, match=r"dataset's modalities are \['audio', 'image'\]"):
        parse_corruptions("imu:zeros", modalities=("audio", "image"))
    with pytest.raises(DataError, match="any modality takes"):
        parse_corruptions("imu:noise")


@pytest.mark.parametrize("bad", [0, 6, -1, 2.0, True, "3", None])
def test_bad_severity(bad, synth) -> None:
    with pytest.raises(DataError, match="severity"):
        Corruption("audio", "noise", bad)
    with pytest.raises(DataError, match="severity"):
        corrupt_split(synth, "test", "image", "blur", bad)


def test_bad_inputs(synth) -> None:
    with pytest.raises(DataError, match="severity"):
        parse_severities("1,7")
    with pytest.raises(DataError, match="not an int"):
        parse_severities("1,x")
    with pytest.raises(DataError, match="seed"):
        corrupt_split(synth, "test", "image", "blur", 1, seed=-1)
    with pytest.raises(DataError, match="no split 'tset'"):
        corrupt_split(synth, "tset", "image", "blur", 1)
    with pytest.raises(DataError, match="did you mean 'image'"):
        corrupt_split(synth, "test", "imgae", "blur", 1)
    with pytest.raises(DataError, match="domain"):
        corrupt_split(synth, "test", "audio", "noise", 1, domain="wave")
    with pytest.raises(DataError, match="audio: noise, gain"):
        corrupt_split(synth, "test", "imu", "blur", 1)


# ------------------------------------------------------------------------- determinism and isolation


@pytest.mark.parametrize(
    ("modality", "kind"),
    [("audio", k) for k in ("noise", "gain", "shift")]
    + [("image", k) for k in IMAGE_KINDS]
    + [("imu", "zeros"), ("imu", "const"), ("audio", "nan")],
)
def test_deterministic_and_isolated(synth, modality: str, kind: str) -> None:
    snap = _snapshot(synth)
    a = corrupt_split(synth, "test", modality, kind, 3, seed=1)
    b = corrupt_split(synth, "test", modality, kind, 3, seed=1)
    c = corrupt_split(synth, "test", modality, kind, 3, seed=2)
    assert isinstance(a, CorruptedSplit)
    assert len(a) == len(synth.split("test"))
    np.testing.assert_array_equal(a.inputs[modality], b.inputs[modality])
    if kind not in ("gain", "blur", "contrast", "brightness"):  # these draw nothing random
        assert not np.array_equal(a.inputs[modality], c.inputs[modality], equal_nan=True)
    clean = synth.split("test")
    assert not np.array_equal(a.inputs[modality], clean.inputs[modality], equal_nan=True)
    for m in synth.modality_names:
        assert a.inputs[m].dtype == np.float32
        assert a.inputs[m].shape == clean.inputs[m].shape
        if m != modality:
            assert a.inputs[m] is clean.inputs[m]
    np.testing.assert_array_equal(a.labels, clean.labels)
    assert _unchanged(synth, snap)
    assert a.record["modality"] == modality
    assert a.record["kind"] == kind
    assert a.record["severity"] == 3


def test_waveform_kinds_deterministic_isolated(fake_av) -> None:
    _, ds = fake_av
    snap = _snapshot(ds)
    clean = ds.split("test")
    for kind in WAVE_KINDS:
        a = corrupt_split(ds, "test", "audio", kind, 4, seed=3)
        b = corrupt_split(ds, "test", "audio", kind, 4, seed=3)
        assert a.record["domain"] == "waveform", kind
        np.testing.assert_array_equal(a.inputs["audio"], b.inputs["audio"])
        assert _dist(a.inputs["audio"], clean.inputs["audio"]) > 0.1, kind
        assert a.inputs["image"] is clean.inputs["image"]
        assert a.valid["audio"].all()
        assert a.valid["image"].all()
    assert _unchanged(ds, snap)


def test_row_draws_do_not_depend_on_the_batch() -> None:
    rng = np.random.default_rng(0)
    waves = [rng.standard_normal(n).astype(np.float32) * 0.1 for n in (500, 900, 1300)]
    whole = corrupt_waveforms(waves, "noise", 2, seed=5)
    alone = corrupt_waveforms(waves[2:], "noise", 2, seed=5, row_ids=[2])
    np.testing.assert_array_equal(whole[2], alone[0])


# ------------------------------------------------------------------------------------------ NaN rows


def test_nan_rows_flagged_invalid_and_nested(synth) -> None:
    n = len(synth.split("test"))
    prev = np.zeros(n, dtype=bool)
    for sev, frac in zip(range(1, 6), (0.2, 0.4, 0.6, 0.8, 1.0), strict=True):
        cs = corrupt_split(synth, "test", "imu", "nan", sev, seed=0)
        bad = ~cs.valid["imu"]
        assert bad.sum() == round(frac * n) == cs.record["invalid_rows"]
        assert np.isnan(cs.inputs["imu"][bad]).all()
        assert np.isfinite(cs.inputs["imu"][~bad]).all()
        assert (bad >= prev).all()  # the rows of a lower severity stay corrupted
        assert cs.valid["audio"].all()
        assert cs.valid["image"].all()
        np.testing.assert_array_equal(cs.present["imu"], ~bad)
        prev = bad
    sub = cs.subset(np.arange(5))
    assert isinstance(sub, CorruptedSplit)
    assert len(sub.valid["imu"]) == 5


def test_zeros_and_const_stay_valid(synth) -> None:
    z = corrupt_split(synth, "test", "audio", "zeros", 5)
    assert (z.inputs["audio"] == 0).all()
    assert z.valid["audio"].all()
    k = corrupt_split(synth, "test", "image", "const", 5, value=0.5)
    assert (k.inputs["image"] == 0.5).all()
    assert k.record["value"] == 0.5


# -------------------------------------------------------------------------------- feature domain


def test_feature_domain_is_labelled(synth_audio) -> None:
    clean = synth_audio.split("test").inputs["audio"]
    prev = 0.0
    for sev in range(1, 6):
        cs = corrupt_split(synth_audio, "test", "audio", "noise", sev)
        assert cs.record["domain"] == "features"
        assert "approximation" in cs.record["note"]
        d = _dist(cs.inputs["audio"], clean)
        assert d > prev
        prev = d
        # logmel-like rows keep their statistics
        np.testing.assert_allclose(
            cs.inputs["audio"].mean(axis=(1, 2, 3)), clean.mean(axis=(1, 2, 3)), atol=1e-4
        )
    for kind in ("eq", "clip"):
        with pytest.raises(DataError, match="needs the waveform"):
            corrupt_split(synth_audio, "test", "audio", kind, 2)
    with pytest.raises(DataError, match="does not record the recording"):
        corrupt_split(synth_audio, "test", "audio", "noise", 2, domain="waveform")


def test_feature_domain_on_request(fake_av) -> None:
    _, ds = fake_av
    cs = corrupt_split(ds, "test", "audio", "shift", 3, domain="features")
    assert cs.record["domain"] == "features"


# ---------------------------------------------------------------------------------------- images


def test_image_corrupted_before_pca(synth_audio) -> None:
    clean = synth_audio.split("test").inputs["image"]
    for kind in IMAGE_KINDS:
        cs = corrupt_split(synth_audio, "test", "image", kind, 4)
        assert cs.record["domain"] == "pixels"
        assert cs.record["pca_components"] == 4
        x = cs.inputs["image"].reshape(len(cs), -1).astype(np.float64)
        # PCA reconstructions lie in the 4-dim affine subspace spanned by the clean images
        base = clean.reshape(len(clean), -1).astype(np.float64)
        mean = base.mean(0)
        _, _, vt = np.linalg.svd(base - mean, full_matrices=False)
        resid = (x - mean) - (x - mean) @ vt[:4].T @ vt[:4]
        assert np.abs(resid).max() < 1e-4, kind


def test_image_pixels_range_without_pca() -> None:
    ds = load_av_digits_synthetic_audio()
    prev = 0.0
    for sev in range(1, 6):
        cs = corrupt_split(ds, "test", "image", "noise", sev)
        assert cs.record["domain"] == "pixels"
        assert "pca_components" not in cs.record
        im = cs.inputs["image"]
        assert im.min() >= 0.0
        assert im.max() <= 1.0
        d = _dist(im, ds.split("test").inputs["image"])
        assert d > prev
        prev = d
    occ = corrupt_array(ds.split("test").inputs["image"][:3], "image", "occlusion", 3, value_range=(0, 1))[0]
    assert ((occ == 0).reshape(3, -1).sum(1) >= 16).all()  # a 4x4 patch of zeros (side 0.5 of 8)


# ---------------------------------------------------------------------------------------- waveforms


def test_waveform_unit_behaviour() -> None:
    rng = np.random.default_rng(1)
    x = (0.2 * np.sin(np.arange(4000) * 0.3) + 0.01 * rng.standard_normal(4000)).astype(np.float32)
    for sev, snr in enumerate((20, 15, 10, 5, 0), start=1):
        (y,) = corrupt_waveforms([x], "noise", sev)
        measured = 10 * np.log10(np.mean((x - x.mean()) ** 2) / np.mean((y - x) ** 2))
        assert abs(measured - snr) < 0.5
    (g,) = corrupt_waveforms([x], "gain", 1)
    assert np.allclose(g * 32768, np.round(g * 32768))
    assert abs(np.abs(g).max() - 10 ** (-10 / 20) * np.abs(x).max()) < 1e-3
    (s,) = corrupt_waveforms([x], "shift", 2)
    assert len(s) == len(x) + 2 * 400
    assert (s[:800] == 0).all() | (s[-800:] == 0).all()
    (c,) = corrupt_waveforms([x], "clip", 3)
    assert np.abs(c).max() <= 0.2 * np.abs(x).max() + 1e-7
    (e,) = corrupt_waveforms([x], "eq", 5)
    assert e.shape == x.shape
    assert not np.allclose(e, x)
    with pytest.raises(DataError, match="any-modality"):
        corrupt_waveforms([x], "zeros", 1)


def test_waveform_path_matches_the_dataset_pipeline(fake_av) -> None:
    root, ds = fake_av
    waves, cfg = split_waveforms(ds, "test")
    np.testing.assert_allclose(logmel_batch(waves, cfg), ds.split("test").inputs["audio"], atol=1e-5)
    # a changed recording is caught instead of silently corrupting other audio
    victim = root / "recordings" / ds.meta["audio_files"]["test"][0]
    with wave.open(str(victim), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes((np.arange(3000) % 200 * 50).astype("<i2").tobytes())
    with pytest.raises(DataError, match="no longer give the stored audio features"):
        corrupt_split(ds, "test", "audio", "noise", 1)


@needs_fsdd
def test_real_fsdd_severity_monotonic(real_av) -> None:
    clean = real_av.split("test")
    rows = np.arange(0, len(clean), 5)  # 100 rows: fast
    sub_clean = clean.inputs["audio"][rows]
    waves, cfg = split_waveforms(real_av, "test")
    for kind in ("noise", "eq", "gain", "clip"):
        dists = []
        for sev in range(1, 6):
            feats = corruptions.corrupt_audio_features(
                [waves[i] for i in rows], cfg, kind, sev, seed=0, row_ids=rows
            )
            dists.append(_dist(feats, sub_clean))
        assert (np.diff(dists) > 0).all(), (kind, dists)
    cs = corrupt_split(real_av, "test", "audio", "noise", 3)
    assert cs.record["domain"] == "waveform"
    assert cs.inputs["image"] is clean.inputs["image"]
    np.testing.assert_array_equal(
        cs.inputs["audio"][rows],
        corruptions.corrupt_audio_features([waves[i] for i in rows], cfg, "noise", 3, seed=0, row_ids=rows),
    )


# -------------------------------------------------------------------------------------- augmentation


def test_augment_batch(synth) -> None:
    batch = {m: a[:32] for m, a in synth.split("train").inputs.items()}
    before = {m: a.copy() for m, a in batch.items()}
    kinds = "audio:noise,audio:shift,image:blur,imu:nan"
    a = augment(batch, np.random.default_rng(7), kinds, p=0.5)
    b = augment(batch, np.random.default_rng(7), kinds, p=0.5)
    for m, x in batch.items():
        np.testing.assert_array_equal(a.inputs[m], b.inputs[m])
        np.testing.assert_array_equal(x, before[m])
    touched = a.applied["audio"] != ""
    assert 0 < touched.sum() < 32
    assert set(a.applied["audio"][touched]) <= {f"{k}@{s}" for k in ("noise", "shift") for s in range(1, 6)}
    np.testing.assert_array_equal(a.inputs["audio"][~touched], batch["audio"][~touched])
    np.testing.assert_array_equal(~a.valid["imu"], a.applied["imu"] != "")
    none = augment(batch, np.random.default_rng(0), kinds, p=0.0)
    assert all((none.applied[m] == "").all() for m in batch)
    full = augment(batch, np.random.default_rng(0), [("image", "occlusion")], p=1.0, severities=(2,))
    assert (full.applied["image"] == "occlusion@2").all()
    with pytest.raises(DataError, match="augment_split"):
        augment(batch, np.random.default_rng(0), "audio:eq")
    with pytest.raises(DataError, match="probability"):
        augment(batch, np.random.default_rng(0), "audio:noise", p=1.5)


def test_augment_split_waveform(fake_av) -> None:
    _, ds = fake_av
    a = augment_split(ds, "train", "audio:noise,audio:eq,image:blur", p=0.6, seed=4)
    b = augment_split(ds, "train", "audio:noise,audio:eq,image:blur", p=0.6, seed=4)
    np.testing.assert_array_equal(a.inputs["audio"], b.inputs["audio"])
    tags = np.array(a.record["applied"]["audio"])
    assert (tags != "").any()
    assert (tags == "").any()
    clean = ds.split("train").inputs["audio"]
    np.testing.assert_array_equal(a.inputs["audio"][tags == ""], clean[tags == ""])
    assert not np.allclose(a.inputs["audio"][tags != ""], clean[tags != ""])
