"""AV-digits: FSDD discovery, bad files, speaker-disjoint splits, pairing, PCA degradation, feature cache.

Bad-input tests build small fake FSDD folders under tmp_path. Tests on the real recordings read
``$EDGEFUSE_FSDD`` (the Makefile sets it when ../shared/data/fsdd exists) or that folder directly.
"""

from __future__ import annotations

import os
import wave
from pathlib import Path

import numpy as np
import pytest
from edgefuse.data import avdigits
from edgefuse.data.avdigits import load_av_digits, resolve_fsdd
from edgefuse.errors import DataError

_REAL = Path(
    os.environ.get("EDGEFUSE_FSDD") or Path(__file__).resolve().parents[4] / "shared" / "data" / "fsdd"
)
needs_fsdd = pytest.mark.skipif(
    not _REAL.is_dir(),
    reason=f"FSDD not found at {_REAL} (set EDGEFUSE_FSDD to the Free Spoken Digit Dataset folder)",
)


def write_wav(
    path: Path, samples: np.ndarray, rate: int = 8000, *, channels: int = 1, width: int = 2
) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(np.asarray(samples).astype({1: np.uint8, 2: "<i2", 4: "<i4"}[width]).tobytes())
    return path


def tone(digit: int, take: int, n: int = 2400) -> np.ndarray:
    t = np.arange(n) / 8000
    x = np.sin(2 * np.pi * (300 + 150 * digit) * t) * np.hanning(n) + 0.01 * np.sin(take * t * 50)
    return np.round(8000 * x).astype(np.int16)


def make_fsdd(root: Path, speakers: tuple[str, ...] = ("ann", "bob", "cid"), takes: int = 2) -> Path:
    """A tiny FSDD-like folder: ``root/recordings/{digit}_{speaker}_{take}.wav`` plus a README."""
    rec = root / "recordings"
    rec.mkdir(parents=True)
    for spk in speakers:
        for d in range(10):
            for k in range(takes):
                write_wav(rec / f"{d}_{spk}_{k}.wav", tone(d, k))
    (root / "README.md").write_text("fake FSDD for tests\n")
    (rec / "manifest.csv").write_text("file,digit\n")
    return root


SMALL = {"train_speakers": ("ann",), "val_speakers": ("bob",), "test_speakers": ("cid",)}


@pytest.fixture
def fake(tmp_path: Path) -> Path:
    return make_fsdd(tmp_path / "fsdd")


@pytest.fixture(scope="module")
def real_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("avcache")


@pytest.fixture(scope="module")
def real_ds(real_cache: Path) -> object:
    if not _REAL.is_dir():
        pytest.skip(f"FSDD not found at {_REAL}")
    return load_av_digits(_REAL, cache_dir=real_cache)


# ------------------------------------------------------------------------------------------- discovery


def test_resolve_accepts_root_or_recordings_and_env(fake: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_fsdd(fake) == (fake / "recordings").resolve()
    assert resolve_fsdd(fake / "recordings") == (fake / "recordings").resolve()
    monkeypatch.setenv("EDGEFUSE_FSDD", str(fake))
    assert resolve_fsdd(None) == (fake / "recordings").resolve()


def test_missing_fsdd_explains_what_and_where(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDGEFUSE_FSDD", raising=False)
    with pytest.raises(DataError, match="EDGEFUSE_FSDD") as info:
        load_av_digits(None, cache_dir=tmp_path)
    msg = str(info.value)
    assert "https://github.com/Jakobovski/free-spoken-digit-dataset" in msg
    assert "Free Spoken Digit Dataset" in msg
    assert "--fsdd PATH" in msg
    with pytest.raises(DataError, match=r"nowhere.*does not exist.*free-spoken-digit-dataset.*EDGEFUSE_FSDD"):
        resolve_fsdd(tmp_path / "nowhere")


def test_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "README.md").write_text("no audio here")
    with pytest.raises(DataError, match=r"empty.*no \.wav recordings"):
        resolve_fsdd(tmp_path / "empty")


# ------------------------------------------------------------------------------------------- bad files


def _corrupt(rec: Path, kind: str) -> str:
    if kind == "truncated":
        good = (rec / "3_ann_0.wav").read_bytes()
        (rec / "3_ann_0.wav").write_bytes(good[: len(good) // 2])
        return "3_ann_0.wav"
    if kind == "stereo":
        write_wav(rec / "4_bob_1.wav", np.zeros(800, np.int16), channels=2)
        return "4_bob_1.wav"
    if kind == "24-bit":
        with wave.open(str(rec / "5_cid_0.wav"), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(3)
            w.setframerate(8000)
            w.writeframes(b"\x00\x00\x00" * 800)
        return "5_cid_0.wav"
    if kind == "not a WAV":
        (rec / "6_ann_1.wav").write_text("hello")
        return "6_ann_1.wav"
    if kind == "empty":
        (rec / "7_bob_0.wav").write_bytes(b"")
        return "7_bob_0.wav"
    if kind == "bad name":
        write_wav(rec / "seven_ann_3.wav", tone(7, 3))
        return "seven_ann_3.wav"
    if kind == "label 12":
        write_wav(rec / "12_jackson_0.wav", tone(1, 0))
        return "12_jackson_0.wav"
    raise AssertionError(kind)


_MATCH = {
    "truncated": "truncated",
    "stereo": "mono required",
    "24-bit": "24-bit",
    "not a WAV": "not a readable WAV",
    "empty": "empty",
    "bad name": r"does not follow the FSDD layout \{digit\}_\{speaker\}_\{index\}\.wav",
    "label 12": "label 12 is outside 0-9",
}


@pytest.mark.parametrize("kind", list(_MATCH))
def test_bad_file_raises_naming_it(fake: Path, tmp_path: Path, kind: str) -> None:
    name = _corrupt(fake / "recordings", kind)
    with pytest.raises(DataError, match=rf"{name.replace('.', '[.]')}.*{_MATCH[kind]}"):
        load_av_digits(fake, cache_dir=tmp_path / "cache", **SMALL)
    assert not (tmp_path / "cache" / "features").exists() or not list(
        (tmp_path / "cache" / "features").iterdir()
    )


def test_skip_bad_warns_once_with_count_and_records(fake: Path, tmp_path: Path) -> None:
    rec = fake / "recordings"
    names = sorted(_corrupt(rec, k) for k in _MATCH)
    with pytest.warns(UserWarning, match=r"skipped 7 unusable file\(s\)") as record:
        ds = load_av_digits(fake, cache_dir=tmp_path / "c", skip_bad=True, **SMALL)
    ours = [w for w in record if "unusable" in str(w.message)]
    assert len(ours) == 1
    assert names[0] in str(ours[0].message)
    assert "and 2 more" in str(ours[0].message)
    assert sorted(s["file"] for s in ds.meta["skipped"]) == names
    n_good = 3 * 10 * 2 - 5  # five of the corrupted files replaced good ones; two were extra
    assert sum(ds.meta["counts"].values()) == n_good
    # the same again comes from the cache, still warning and still listing the skipped files
    with pytest.warns(UserWarning, match="skipped 7"):
        again = load_av_digits(fake, cache_dir=tmp_path / "c", skip_bad=True, **SMALL)
    assert again.meta["audio_cache"]["hit"] is True
    assert again.meta["skipped"] == ds.meta["skipped"]


def test_non_wav_files_are_ignored(fake: Path, tmp_path: Path) -> None:
    (fake / "recordings" / "notes.txt").write_text("hello")
    ds = load_av_digits(fake, cache_dir=tmp_path / "c", **SMALL)
    assert ds.meta["counts"] == {"train": 20, "val": 20, "test": 20}
    assert ds.meta["skipped"] == []


def test_resampled_recording_is_used(fake: Path, tmp_path: Path) -> None:
    write_wav(fake / "recordings" / "9_cid_7.wav", np.repeat(tone(9, 7), 2), rate=16000)
    ds = load_av_digits(fake, cache_dir=tmp_path / "c", **SMALL)
    assert "9_cid_7.wav" in ds.meta["audio_files"]["test"]


# ------------------------------------------------------------------------------------------- speakers


def test_unknown_speaker_lists_found(fake: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"test speaker 'theo' has no recordings.*\['ann', 'bob', 'cid'\]"):
        load_av_digits(fake, cache_dir=tmp_path, train_speakers=("ann",), val_speakers=("bob",))


def test_overlapping_speakers_rejected(fake: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"'ann' is in both the train and test.*speaker-disjoint"):
        load_av_digits(
            fake, cache_dir=tmp_path, train_speakers=("ann",), val_speakers=("bob",), test_speakers=("ann",)
        )


def test_degrade_image_validated(fake: Path, tmp_path: Path) -> None:
    for bad in (0, 65, 2.5, True):
        with pytest.raises(DataError, match="degrade_image"):
            load_av_digits(fake, cache_dir=tmp_path, degrade_image=bad, **SMALL)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------- cache


def test_cache_hit_skips_recompute(fake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    first = load_av_digits(fake, cache_dir=cache, **SMALL)
    assert first.meta["audio_cache"]["hit"] is False
    path = Path(first.meta["audio_cache"]["path"])
    assert path.is_file()
    assert path.parent == (cache / "features").resolve()
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left behind

    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError("features recomputed despite a cache hit")

    monkeypatch.setattr(avdigits, "_compute_features", boom)
    second = load_av_digits(fake, cache_dir=cache, **SMALL)
    assert second.meta["audio_cache"] == {"path": str(path), "hit": True}
    for split in ("train", "val", "test"):
        np.testing.assert_array_equal(
            first.splits[split].inputs["audio"], second.splits[split].inputs["audio"]
        )
    # changing a recording's content changes the key: a miss (which here would recompute -> boom)
    write_wav(fake / "recordings" / "0_ann_0.wav", tone(0, 9))
    with pytest.raises(AssertionError, match="recomputed"):
        load_av_digits(fake, cache_dir=cache, **SMALL)


def test_cache_key_depends_on_config_and_env_default(
    fake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from edgefuse.data.audio import AudioFeatureConfig

    monkeypatch.setenv("EDGEFUSE_CACHE_DIR", str(tmp_path / "envcache"))
    a = load_av_digits(fake, **SMALL)
    b = load_av_digits(fake, audio=AudioFeatureConfig(n_mels=24), **SMALL)
    assert a.meta["audio_cache"]["path"].startswith(str((tmp_path / "envcache").resolve()))
    assert a.meta["audio_cache"]["path"] != b.meta["audio_cache"]["path"]
    assert b.splits["train"].inputs["audio"].shape[1:] == (1, 24, 61)
    assert b.modalities[0].shape == (1, 24, 61)


def test_use_cache_false_writes_nothing(fake: Path, tmp_path: Path) -> None:
    ds = load_av_digits(fake, cache_dir=tmp_path / "c", use_cache=False, **SMALL)
    assert ds.meta["audio_cache"] == {"path": None, "hit": False}
    assert not (tmp_path / "c").exists()


def test_cache_never_written_under_fsdd(fake: Path) -> None:
    with pytest.raises(DataError, match=r"inside the FSDD folder.*read-only"):
        load_av_digits(fake, cache_dir=fake / "cache", **SMALL)
    assert not (fake / "cache").exists()


def test_corrupt_cache_is_recomputed(fake: Path, tmp_path: Path) -> None:
    first = load_av_digits(fake, cache_dir=tmp_path, **SMALL)
    path = Path(first.meta["audio_cache"]["path"])
    path.write_bytes(b"garbage")
    second = load_av_digits(fake, cache_dir=tmp_path, **SMALL)
    assert second.meta["audio_cache"]["hit"] is False
    np.testing.assert_array_equal(first.splits["val"].inputs["audio"], second.splits["val"].inputs["audio"])


# ------------------------------------------------------------------------------------------- pairing


def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.images / 16.0).astype(np.float32), d.target


def test_images_match_sklearn_and_pair_by_label(fake: Path, tmp_path: Path) -> None:
    images, targets = _digits()
    ds = load_av_digits(fake, cache_dir=tmp_path, seed=3, **SMALL)
    for split in ("train", "val", "test"):
        s = ds.splits[split]
        rows = np.array(ds.meta["image_index"][split])
        np.testing.assert_array_equal(s.inputs["image"][:, 0], images[rows])
        np.testing.assert_array_equal(targets[rows], s.labels)
        assert set(rows.tolist()) <= set(ds.meta["image_rows"][split])
        names = ds.meta["audio_files"][split]
        assert names == sorted(names)
        assert [int(n.split("_")[0]) for n in names] == s.labels.tolist()


def test_determinism_and_seed(fake: Path, tmp_path: Path) -> None:
    a = load_av_digits(fake, cache_dir=tmp_path, seed=0, **SMALL)
    b = load_av_digits(fake, cache_dir=tmp_path, seed=0, **SMALL)
    c = load_av_digits(fake, cache_dir=tmp_path, seed=1, **SMALL)
    for split in ("train", "val", "test"):
        for m in ("audio", "image"):
            np.testing.assert_array_equal(a.splits[split].inputs[m], b.splits[split].inputs[m])
        np.testing.assert_array_equal(a.splits[split].inputs["audio"], c.splits[split].inputs["audio"])
        np.testing.assert_array_equal(a.splits[split].labels, c.splits[split].labels)
    assert a.meta["image_rows"] == b.meta["image_rows"]
    assert a.meta["image_rows"] == c.meta["image_rows"]  # blocks: the split is fixed, the pairing is seeded
    assert a.meta["image_index"] != c.meta["image_index"]
    d = load_av_digits(fake, cache_dir=tmp_path, seed=1, image_split="random", **SMALL)
    assert d.meta["image_rows"] != c.meta["image_rows"]
    assert not np.array_equal(a.splits["train"].inputs["image"], c.splits["train"].inputs["image"])


# ------------------------------------------------------------------------------------------- real FSDD


@needs_fsdd
def test_real_default_splits_are_speaker_disjoint(real_ds: object) -> None:
    ds = real_ds
    assert ds.name == "av-digits"
    assert ds.label_names == tuple("0123456789")
    assert ds.meta["counts"] == {"train": 1000, "val": 500, "test": 500}
    speakers = {s: {n.split("_")[1] for n in ds.meta["audio_files"][s]} for s in ("train", "val", "test")}
    assert speakers == {"train": {"jackson", "nicolas"}, "val": {"yweweler"}, "test": {"theo"}}
    assert ds.modalities[0].shape == (1, 32, 61)
    assert ds.modalities[0].preprocessing == "logmel-v1"
    assert ds.modalities[1].shape == (1, 8, 8)
    assert ds.splits["train"].inputs["audio"].shape == (1000, 1, 32, 61)
    assert ds.splits["test"].inputs["image"].dtype == np.float32
    assert np.isfinite(ds.splits["train"].inputs["audio"]).all()
    assert "CC BY-SA 4.0" in ds.meta["attribution"]
    assert "Zohar Jackson" in ds.meta["attribution"]
    for split in ("train", "val", "test"):
        assert (
            np.bincount(ds.splits[split].labels, minlength=10).tolist() == [len(ds.splits[split]) // 10] * 10
        )


@needs_fsdd
def test_real_image_rows_disjoint_and_blocked(real_ds: object) -> None:
    ds = real_ds
    rows = {s: set(v) for s, v in ds.meta["image_rows"].items()}
    assert ds.meta["image_split"] == "blocks"
    # Contiguous blocks of rows (load_digits is grouped by writer): every train row precedes every val row.
    assert max(rows["train"]) < min(rows["val"])
    assert max(rows["val"]) < min(rows["test"])
    assert not rows["train"] & rows["val"]
    assert not rows["train"] & rows["test"]
    assert not rows["val"] & rows["test"]
    assert len(rows["train"] | rows["val"] | rows["test"]) == 1797
    assert abs(len(rows["train"]) / 1797 - 0.6) < 0.01
    _, targets = _digits()
    for split in ("train", "val", "test"):
        idx = np.array(ds.meta["image_index"][split])
        assert set(idx.tolist()) <= rows[split]
        np.testing.assert_array_equal(targets[idx], ds.splits[split].labels)  # every pair shares its label


def test_image_split_modes() -> None:
    labels = np.repeat(np.arange(10), 20)
    rng = np.random.default_rng(0)
    random = avdigits._split_image_rows(labels, rng, "random")
    for split, idx in random.items():
        assert np.bincount(labels[idx], minlength=10).min() > 0, split
    with pytest.raises(DataError, match=r"image_split='writers'"):
        avdigits._split_image_rows(labels, rng, "writers")


@needs_fsdd
def test_real_cache_second_call_is_a_hit(
    real_ds: object, real_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # How long a cached load takes is measured by benchmarks/bench_data.py, not asserted here.
    assert real_ds.meta["audio_cache"]["hit"] is False  # the module's first load filled real_cache
    path = real_ds.meta["audio_cache"]["path"]
    assert Path(path).parent == (real_cache / "features").resolve()

    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError("features recomputed despite a cache hit")

    monkeypatch.setattr(avdigits, "_compute_features", boom)
    again = load_av_digits(_REAL, cache_dir=real_cache)
    assert again.meta["audio_cache"] == {"path": path, "hit": True}
    assert [p.name for p in Path(path).parent.iterdir()] == [Path(path).name]  # nothing new written
    for split in ("train", "val", "test"):
        np.testing.assert_array_equal(
            again.splits[split].inputs["audio"], real_ds.splits[split].inputs["audio"]
        )
        np.testing.assert_array_equal(again.splits[split].labels, real_ds.splits[split].labels)


@needs_fsdd
def test_real_degrade_image_pca_on_train_only(real_ds: object, real_cache: Path) -> None:
    k = 4
    ds = load_av_digits(_REAL, cache_dir=real_cache, degrade_image=k)
    images, _ = _digits()
    flat = images.reshape(-1, 64).astype(np.float64)
    train_rows = np.array(ds.meta["image_rows"]["train"])

    def reconstruct(fit_rows: np.ndarray) -> np.ndarray:
        mean = flat[fit_rows].mean(axis=0)
        _, _, vt = np.linalg.svd(flat[fit_rows] - mean, full_matrices=False)
        return mean + (flat - mean) @ vt[:k].T @ vt[:k]

    expected = reconstruct(train_rows)
    for split in ("train", "val", "test"):
        got = ds.splits[split].inputs["image"].reshape(-1, 64)
        idx = np.array(ds.meta["image_index"][split])
        np.testing.assert_allclose(got, expected[idx], atol=1e-5)
        assert not np.allclose(got, real_ds.splits[split].inputs["image"].reshape(-1, 64), atol=0.05)
    # fitting on all rows would give different images: the fit really used train rows only
    all_rows = reconstruct(np.arange(1797))
    idx = np.array(ds.meta["image_index"]["test"])
    assert np.abs(all_rows[idx] - ds.splits["test"].inputs["image"].reshape(-1, 64)).max() > 1e-3
    assert ds.meta["degrade_image"] == k
    assert 0.3 < ds.meta["explained_variance"] < 0.7
    assert ds.modalities[1].params["pca_components"] == k
    # the audio is untouched by the image degradation, and came from the cache
    assert ds.meta["audio_cache"]["hit"] is True
    np.testing.assert_array_equal(ds.splits["val"].inputs["audio"], real_ds.splits["val"].inputs["audio"])
