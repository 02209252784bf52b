"""Checkpoints: safetensors + JSON, round trip, and every mismatch named on load."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from edgefuse.checkpoint import load_checkpoint, read_checkpoint_info, save_checkpoint  # noqa: E402
from edgefuse.errors import CheckpointError  # noqa: E402
from edgefuse.models.contract import build_model  # noqa: E402
from edgefuse.models.reference import reference_architecture  # noqa: E402


@pytest.fixture
def saved(tmp_path, toy_dataset):  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    model = build_model(
        reference_architecture(toy_dataset.modalities, 16), toy_dataset.modalities, toy_dataset.label_names
    )
    path = save_checkpoint(
        model.eval(),
        tmp_path / "ckpt",
        recipe={"method": "supervised"},
        seed=3,
        metrics={"val_accuracy": 0.5},
    )
    return model, path


def test_round_trip(saved, toy_dataset) -> None:  # type: ignore[no-untyped-def]
    model, path = saved
    assert sorted(p.name for p in path.iterdir()) == ["model.json", "model.safetensors"]
    ckpt = load_checkpoint(path)
    x = {k: torch.from_numpy(v[:4]) for k, v in toy_dataset.split("test").inputs.items()}
    assert torch.equal(ckpt.model(x), model(x))
    assert ckpt.info["seed"] == 3
    assert ckpt.metrics == {"val_accuracy": 0.5}
    assert ckpt.model.modalities == toy_dataset.modalities
    assert ckpt.model.label_names == toy_dataset.label_names


def test_existing_folder_is_kept_without_overwrite(saved) -> None:  # type: ignore[no-untyped-def]
    model, path = saved
    before = (path / "model.json").read_text()
    with pytest.raises(CheckpointError, match="already exists; pass overwrite=True"):
        save_checkpoint(model, path)
    assert (path / "model.json").read_text() == before
    save_checkpoint(model, path, overwrite=True, seed=9)
    assert read_checkpoint_info(path)["seed"] == 9
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".ckpt")]  # no temp folder left


def test_modified_weights_are_detected(saved) -> None:  # type: ignore[no-untyped-def]
    _, path = saved
    data = bytearray((path / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (path / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"sha256 .* modified"):
        load_checkpoint(path)


def test_architecture_mismatch_names_tensors(saved) -> None:  # type: ignore[no-untyped-def]
    _, path = saved
    info = json.loads((path / "model.json").read_text())
    info["architecture"]["embed_dim"] = 8
    (path / "model.json").write_text(json.dumps(info))
    with pytest.raises(
        CheckpointError,
        match=r"wrong shapes \[.*encoders\.audio\.proj\.weight: file \(16, 64\) vs architecture \(8, 64\)",
    ):
        load_checkpoint(path)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda i: i.update(schema_version=99), r"schema_version 99 is not supported.*upgrade edgefuse"),
        (lambda i: i.update(format="other"), r"format is 'other'"),
        (lambda i: i.pop("label_names"), r"missing \['label_names'\]"),
        (lambda i: i.update(surprise=1), r"unknown keys \['surprise'\]"),
        (lambda i: i["modalities"][0].update(shape=[0]), r"invalid modality spec: .*shape \(0,\)"),
    ],
)
def test_bad_description(saved, edit, match: str) -> None:  # type: ignore[no-untyped-def]
    _, path = saved
    info = json.loads((path / "model.json").read_text())
    edit(info)
    (path / "model.json").write_text(json.dumps(info))
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(path)


def test_missing_and_corrupt(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(CheckpointError, match=r"does not exist"):
        load_checkpoint(tmp_path / "nope")
    (tmp_path / "x").mkdir()
    with pytest.raises(CheckpointError, match=r"model\.json is missing"):
        load_checkpoint(tmp_path / "x")
    (tmp_path / "x" / "model.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(tmp_path / "x")
