"""The clearly labelled synthetic multimodal dataset."""

from __future__ import annotations

import numpy as np
import pytest
from edgefuse.data.synthetic import SYNTHETIC_SHAPES, make_synthetic
from edgefuse.errors import DataError


def test_shapes_dtypes_and_meta() -> None:
    ds = make_synthetic()
    assert ds.name == "synthetic"
    assert ds.meta["synthetic"] is True
    assert ds.modality_names == ("audio", "image", "imu")
    assert {m.name: m.shape for m in ds.modalities} == {
        "audio": (1, 32, 61),
        "image": (1, 8, 8),
        "imu": (1, 6, 32),
    }
    assert {s: len(ds.splits[s]) for s in ("train", "val", "test")} == {"train": 600, "val": 200, "test": 200}
    for split in ds.splits.values():
        assert split.labels.dtype == np.int64
        assert split.labels.min() >= 0
        assert split.labels.max() < 10
        for name, arr in split.inputs.items():
            assert arr.dtype == np.float32
            assert arr.shape[1:] == SYNTHETIC_SHAPES[name]
            assert np.isfinite(arr).all()


def test_deterministic_per_seed() -> None:
    a, b, c = make_synthetic(seed=5), make_synthetic(seed=5), make_synthetic(seed=6)
    for s in ("train", "val", "test"):
        np.testing.assert_array_equal(a.splits[s].labels, b.splits[s].labels)
        for m in a.modality_names:
            np.testing.assert_array_equal(a.splits[s].inputs[m], b.splits[s].inputs[m])
    assert not np.array_equal(a.splits["train"].inputs["audio"], c.splits["train"].inputs["audio"])


def test_requested_modality_subset() -> None:
    full = make_synthetic(n_train=50, n_val=10, n_test=10)
    sub = make_synthetic(n_train=50, n_val=10, n_test=10, modalities=("image", "audio"))
    assert sub.modality_names == ("image", "audio")
    assert set(sub.splits["train"].inputs) == {"audio", "image"}
    # a modality's data does not depend on which other modalities were requested
    for s in ("train", "val", "test"):
        np.testing.assert_array_equal(full.splits[s].labels, sub.splits[s].labels)
        np.testing.assert_array_equal(full.splits[s].inputs["audio"], sub.splits[s].inputs["audio"])
    only_imu = make_synthetic(modalities=("imu",), n_train=5, n_val=0, n_test=0)
    assert only_imu.modality_names == ("imu",)
    assert len(only_imu.splits["val"]) == 0


def test_bad_arguments() -> None:
    with pytest.raises(DataError, match=r"unknown synthetic modality 'imgae'.*did you mean 'image'"):
        make_synthetic(modalities=("imgae",))
    with pytest.raises(DataError, match="at least one modality"):
        make_synthetic(modalities=())
    with pytest.raises(DataError, match="twice"):
        make_synthetic(modalities=("audio", "audio"))
    with pytest.raises(DataError, match="num_classes"):
        make_synthetic(num_classes=1)


def _centroid_accuracy(ds: object, mods: tuple[str, ...]) -> float:
    """Late fusion of nearest-class-mean classifiers (sum of per-modality negative squared distances)."""
    tr, te = ds.splits["train"], ds.splits["test"]
    score = 0.0
    for m in mods:
        x, xt = tr.inputs[m].reshape(len(tr), -1), te.inputs[m].reshape(len(te), -1)
        means = np.stack([x[tr.labels == c].mean(axis=0) for c in range(10)])
        d = ((xt[:, None, :] - means[None]) ** 2).sum(-1)
        score = score - d / d.std()
    return float((np.argmax(score, axis=1) == te.labels).mean())


def test_each_modality_informative_but_all_together_better() -> None:
    ds = make_synthetic(seed=0)
    alone = {m: _centroid_accuracy(ds, (m,)) for m in ds.modality_names}
    together = _centroid_accuracy(ds, ds.modality_names)
    for m, acc in alone.items():
        assert acc > 0.3, (m, acc)  # chance is 0.1
        assert together > acc + 0.1, (m, acc, together)
