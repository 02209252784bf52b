"""AV-digits without FSDD: real digit images + a clearly labelled synthetic audio modality."""

from __future__ import annotations

import numpy as np
import pytest
from edgefuse.data.avdigits import load_av_digits_synthetic_audio, synthesize_spectrograms
from edgefuse.data.registry import load_dataset
from edgefuse.errors import DataError

pytest.importorskip("sklearn")


def test_labelled_synthetic_and_shaped_like_av_digits() -> None:
    data = load_dataset("av-digits-synthetic-audio", degrade_image=4)
    assert data.name == "av-digits-synthetic-audio"
    assert data.meta["synthetic_audio"] is True
    assert "SYNTHETIC" in data.meta["description"]
    specs = {m.name: m for m in data.modalities}
    assert specs["audio"].shape == (1, 32, 61)
    assert specs["audio"].preprocessing == "synthetic-logmel"  # never mistaken for log-mels of a WAV
    assert specs["image"].shape == (1, 8, 8)
    counts = data.meta["counts"]
    assert sum(counts.values()) == 1797
    rows = data.meta["image_rows"]
    assert not set(rows["train"]) & set(rows["test"])
    for split in ("train", "val", "test"):
        part = data.split(split)
        audio = part.inputs["audio"]
        assert audio.dtype == np.float32
        np.testing.assert_allclose(audio.mean(axis=(1, 2, 3)), 0, atol=1e-4)  # standardised per sample
        np.testing.assert_allclose(audio.std(axis=(1, 2, 3)), 1, atol=1e-3)
        assert set(np.unique(part.labels)) == set(range(10))


def test_deterministic_per_seed() -> None:
    a = load_av_digits_synthetic_audio(seed=3).split("train")
    b = load_av_digits_synthetic_audio(seed=3).split("train")
    c = load_av_digits_synthetic_audio(seed=4).split("train")
    np.testing.assert_array_equal(a.inputs["audio"], b.inputs["audio"])
    assert not np.array_equal(a.inputs["audio"], c.inputs["audio"])


def test_audio_is_informative_but_confuses_digit_pairs() -> None:
    labels = {"train": np.repeat(np.arange(10), 60), "test": np.repeat(np.arange(10), 30)}
    audio, pairing = synthesize_spectrograms(labels, seed=0, noise=5.0)
    # nearest class mean of the time-averaged spectral profile
    feats = {s: x[:, 0].mean(axis=2) for s, x in audio.items()}
    means = np.stack([feats["train"][labels["train"] == c].mean(axis=0) for c in range(10)])
    pred = np.argmin(((feats["test"][:, None, :] - means[None]) ** 2).sum(axis=2), axis=1)
    acc = (pred == labels["test"]).mean()
    assert 0.3 < acc < 0.98, acc  # far above chance (0.1), not trivially perfect
    pair = np.array(pairing)
    wrong = pred != labels["test"]
    same_pair = (pair[pred[wrong]] == pair[labels["test"][wrong]]).mean()
    assert same_pair > 0.3, same_pair  # mistakes concentrate on the other digit of the pair (chance: 1/9)


def test_bad_degrade_image() -> None:
    with pytest.raises(DataError, match="degrade_image"):
        load_av_digits_synthetic_audio(degrade_image=0)
