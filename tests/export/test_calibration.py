"""Calibration data per graph: encoders on their own modality, head/monolithic per presence pattern."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgefuse.export.calibration import (  # noqa: E402
    CalibrationData,
    build_calibration,
    build_calibration_all_present,
    pattern_label,
)
from edgefuse.export.errors import CalibrationError, ExportError  # noqa: E402
from edgefuse.export.graphs import build_graphs  # noqa: E402
from edgefuse.models.contract import build_model  # noqa: E402
from edgefuse.models.reference import reference_architecture  # noqa: E402

MODALITIES = ("audio", "image", "imu")
PATTERNS = [("audio", "image", "imu"), ("audio",), ("image", "imu")]


@pytest.fixture(scope="module")
def setup(toy_dataset):  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    specs = toy_dataset.modalities
    model = build_model(reference_architecture(specs, embed_dim=16), specs, list(toy_dataset.label_names))
    split = build_graphs(model.eval(), MODALITIES, monolithic=False)
    mono = build_graphs(model, MODALITIES, monolithic=True)
    return model, toy_dataset.splits["train"].inputs, split, mono


def _rows(batches) -> int:  # type: ignore[no-untyped-def]
    return sum(next(iter(b.values())).shape[0] for b in batches)


def test_encoders_on_their_modality_head_on_every_pattern_in_equal_shares(setup) -> None:
    model, inputs, graphs, _ = setup
    data = build_calibration(
        model, inputs, graphs, MODALITIES, PATTERNS, samples=64, batch=16, source="toy:train"
    )
    assert isinstance(data, CalibrationData)
    assert data.rows == 64
    assert data.patterns == PATTERNS
    assert data.shares == {"audio+image+imu": 22, "audio": 21, "image+imu": 21}  # equal up to one row
    assert sorted(data.feeds) == ["encoder_audio", "encoder_image", "encoder_imu", "head"]
    for m in MODALITIES:
        batches = data.feeds[f"encoder_{m}"]
        assert all(list(b) == [m] for b in batches)
        assert all(b[m].dtype == np.float32 and b[m].shape[0] <= 16 for b in batches)
        assert _rows(batches) == 64
        stacked = np.concatenate([b[m] for b in batches])
        assert any(np.array_equal(stacked[0], row) for row in inputs[m])  # rows of the data itself
    head = data.feeds["head"]
    assert all(list(b) == ["fused"] and b["fused"].shape[1:] == (16,) for b in head)
    assert all(b["fused"].dtype == np.float32 and b["fused"].shape[0] <= 16 for b in head)
    assert _rows(head) == 64
    summary = data.to_dict()
    json.dumps(summary)
    assert summary["source"] == "toy:train"
    assert summary["rows_per_graph"] == {
        "encoder_audio": 64,
        "encoder_image": 64,
        "encoder_imu": 64,
        "head": 64,
    }
    assert summary["shares"] == data.shares
    assert summary["patterns"] == [list(p) for p in PATTERNS]
    assert summary["seed"] == 0


def test_head_feeds_are_the_models_fused_embeddings_per_pattern(setup) -> None:
    model, inputs, graphs, _ = setup
    # one pattern: the head rows are model.fuse of the sampled rows with only audio present (shuffled)
    data = build_calibration(model, inputs, graphs, MODALITIES, [("audio",)], samples=20, batch=64)
    audio = data.feeds["encoder_audio"][0]["audio"]
    fused = data.feeds["head"][0]["fused"]
    with torch.no_grad():
        want = model.fuse({"audio": torch.from_numpy(audio)}).numpy()
    distance = np.abs(fused[:, None, :] - want[None, :, :]).max(axis=2)
    assert sorted(distance.argmin(axis=1).tolist()) == list(range(20))  # each sampled row exactly once
    assert distance.min(axis=1).max() < 1e-5
    # every pattern's fused rows differ: the head sees each presence pattern
    data = build_calibration(model, inputs, graphs, MODALITIES, PATTERNS, samples=30, batch=64)
    means = [b["fused"].mean(axis=0) for b in data.feeds["head"]]
    assert len(means) == 3
    assert not np.allclose(means[0], means[1])
    assert not np.allclose(means[1], means[2])


def test_empty_pattern_and_all_present_baseline(setup) -> None:
    model, inputs, graphs, _ = setup
    data = build_calibration(model, inputs, graphs, MODALITIES, [(), ("imu", "audio")], samples=16)
    assert data.patterns == [(), ("audio", "imu")]  # export order
    assert data.shares == {"none": 8, "audio+imu": 8}
    bias = model.fusion.norm.bias.detach().numpy()
    none = data.feeds["head"][0]["fused"]
    np.testing.assert_allclose(none, np.broadcast_to(bias, none.shape), atol=1e-6)  # LayerNorm(0) = bias
    baseline = build_calibration_all_present(model, inputs, graphs, MODALITIES, samples=16)
    assert baseline.patterns == [MODALITIES]
    assert baseline.shares == {pattern_label(MODALITIES): 16}
    same = build_calibration(model, inputs, graphs, MODALITIES, [MODALITIES], samples=16)
    np.testing.assert_array_equal(baseline.feeds["head"][0]["fused"], same.feeds["head"][0]["fused"])


def test_monolithic_feeds_zero_fill_absent_modalities_and_set_the_mask(setup) -> None:
    model, inputs, _, mono = setup
    data = build_calibration(model, inputs, mono, MODALITIES, PATTERNS, samples=48, batch=8)
    batches = data.feeds["model"]
    assert _rows(batches) == 48
    seen = {}
    for b in batches:
        assert list(b) == [*MODALITIES, "presence"]
        mask = b["presence"]
        assert mask.dtype == np.bool_
        assert mask.shape == (b["audio"].shape[0], 3)
        assert (mask == mask[0]).all()  # one pattern per batch
        for i, m in enumerate(MODALITIES):
            if not mask[0, i]:
                assert not b[m].any()
        key = tuple(m for i, m in enumerate(MODALITIES) if mask[0, i])
        seen[key] = seen.get(key, 0) + b["audio"].shape[0]
    assert seen == {p: 16 for p in PATTERNS}


def test_seeded_and_fewer_rows_than_samples(setup) -> None:
    model, inputs, graphs, _ = setup
    a = build_calibration(model, inputs, graphs[:1], MODALITIES, PATTERNS, samples=32, seed=1)
    b = build_calibration(model, inputs, graphs[:1], MODALITIES, PATTERNS, samples=32, seed=1)
    c = build_calibration(model, inputs, graphs[:1], MODALITIES, PATTERNS, samples=32, seed=2)
    np.testing.assert_array_equal(a.feeds["encoder_audio"][0]["audio"], b.feeds["encoder_audio"][0]["audio"])
    assert not np.array_equal(a.feeds["encoder_audio"][0]["audio"], c.feeds["encoder_audio"][0]["audio"])
    small = {m: v[:20] for m, v in inputs.items()}
    data = build_calibration(model, small, graphs, MODALITIES, PATTERNS, samples=256)
    assert data.rows == 20  # every row once, not 256 with repeats
    assert _rows(data.feeds["encoder_imu"]) == 20
    assert sum(data.shares.values()) == 20


def test_errors_name_the_fix(setup) -> None:
    model, inputs, graphs, _ = setup
    no_imu = {m: v for m, v in inputs.items() if m != "imu"}
    with pytest.raises(CalibrationError) as info:
        build_calibration(model, no_imu, graphs, MODALITIES, PATTERNS)
    message = str(info.value)
    assert "lacks modalities ['imu']" in message
    assert "['audio', 'image']" in message
    assert "--calibration" in message
    assert isinstance(info.value, ExportError)
    assert isinstance(info.value, ValueError)
    # only the exported modalities are needed
    audio_graphs = build_graphs(model, ["audio"], monolithic=False)
    build_calibration(model, {"audio": inputs["audio"]}, audio_graphs, ["audio"], [("audio",)], samples=16)

    with pytest.raises(CalibrationError, match=r"--calibration-samples must be >= 16; got 8"):
        build_calibration(model, inputs, graphs, MODALITIES, PATTERNS, samples=8)
    few = {m: v[:10] for m, v in inputs.items()}
    with pytest.raises(CalibrationError, match=r"only 10 rows; --calibration-samples must be >= 16"):
        build_calibration(model, few, graphs, MODALITIES, PATTERNS)
    bad = dict(inputs)
    bad["image"] = inputs["image"].copy()
    bad["image"][[3, 7], 0, 0, 0] = [np.nan, np.inf]
    with pytest.raises(CalibrationError, match=r"'image' has NaN/inf in 2 of 240 rows"):
        build_calibration(model, bad, graphs, MODALITIES, PATTERNS)
    with pytest.raises(CalibrationError, match=r"names \['gps'\], which the artifact does not export"):
        build_calibration(model, inputs, graphs, MODALITIES, [("audio", "gps")])
    with pytest.raises(CalibrationError, match="no presence pattern"):
        build_calibration(model, inputs, graphs, MODALITIES, [])
    wrong = dict(inputs)
    wrong["imu"] = inputs["imu"][:, :6]
    with pytest.raises(CalibrationError, match=r"'imu' has shape \(240, 6\); the model takes \[N, 12\]"):
        build_calibration(model, wrong, graphs, MODALITIES, PATTERNS)
