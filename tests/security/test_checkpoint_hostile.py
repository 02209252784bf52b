"""Hostile checkpoints: bounded, confined reads; sizes checked before allocation; no NaN and no dtype games.

Each case forges a private copy of a small checkpoint the way an attacker who controls the whole folder
would (recomputing every recorded hash), then loads it in its own interpreter under a 4 GiB limit.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _harness import expect_error, expect_ok

pytestmark = pytest.mark.backend("torch")

LOAD = "from edgefuse.checkpoint import load_checkpoint; load_checkpoint({folder!r})\n"
RUN = (
    "import edgefuse, numpy as np; s = edgefuse.load({folder!r})\n"
    "p = s.predict({{'audio': np.ones((2, 1, 8, 12), np.float32)}}); RESULT['labels'] = p.labels\n"
)


def info(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "model.json").read_text())


def edit_info(folder: Path, change: Callable[[dict[str, Any]], None]) -> None:
    data = info(folder)
    change(data)
    (folder / "model.json").write_text(json.dumps(data))


def forge_weights(folder: Path, change: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    """Rewrite the tensors (``change`` maps the state dict) and record the new hash and size."""
    from safetensors.torch import load_file, save_file

    state = change(load_file(str(folder / "model.safetensors")))
    save_file(state, str(folder / "model.safetensors"))
    raw = (folder / "model.safetensors").read_bytes()

    def record(d: dict[str, Any]) -> None:
        d["weights_sha256"] = hashlib.sha256(raw).hexdigest()
        if "weights_size" in d:
            d["weights_size"] = len(raw)

    edit_info(folder, record)


def forge_raw_weights(folder: Path, raw: bytes) -> None:
    (folder / "model.safetensors").write_bytes(raw)

    def record(d: dict[str, Any]) -> None:
        d["weights_sha256"] = hashlib.sha256(raw).hexdigest()
        d.pop("weights_size", None)

    edit_info(folder, record)


def test_pristine_checkpoint_runs(checkpoint_copy: Path) -> None:
    res = expect_ok(RUN.format(folder=str(checkpoint_copy)))
    assert len(res.result["labels"]) == 2


def _first_float(state: dict[str, Any]) -> str:
    return next(k for k, v in state.items() if v.is_floating_point() and v.numel() > 1)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_weights_are_refused(checkpoint_copy: Path, value: str) -> None:
    def change(state: dict[str, Any]) -> dict[str, Any]:
        k = _first_float(state)
        state[k] = state[k].clone()
        state[k].view(-1)[0] = float(value)
        return state

    forge_weights(checkpoint_copy, change)
    expect_error(LOAD.format(folder=str(checkpoint_copy)), "CheckpointError", "NaN or Inf", "retrain")


def test_tensor_stored_with_another_dtype_is_refused(checkpoint_copy: Path) -> None:
    def change(state: dict[str, Any]) -> dict[str, Any]:
        import torch

        k = _first_float(state)
        state[k] = (state[k] * 1e9).to(torch.int32)  # int32 bits where float32 is expected
        return state

    forge_weights(checkpoint_copy, change)
    expect_error(
        LOAD.format(folder=str(checkpoint_copy)), "CheckpointError", "wrong dtypes", "int32", "float32"
    )


def test_relabelled_dtype_in_header_is_refused(checkpoint_copy: Path) -> None:
    """Same bytes, header says I32 instead of F32 (the data reinterpreted): named, not loaded."""
    raw = (checkpoint_copy / "model.safetensors").read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = raw[8 : 8 + n].replace(b'"F32"', b'"I32"', 1)
    forge_raw_weights(checkpoint_copy, raw[:8] + header + raw[8 + n :])
    expect_error(LOAD.format(folder=str(checkpoint_copy)), "CheckpointError", "wrong dtypes", "int32")


@pytest.mark.parametrize("dim", [10**12, 2**40, -5, 0, "64"])
def test_absurd_architecture_sizes_cost_no_memory(checkpoint_copy: Path, dim: object) -> None:
    edit_info(checkpoint_copy, lambda d: d["architecture"].__setitem__("embed_dim", dim))
    expect_error(LOAD.format(folder=str(checkpoint_copy)), "CheckpointError", "model.json", timeout=60)


def test_absurd_channel_count_costs_no_memory(checkpoint_copy: Path) -> None:
    def change(d: dict[str, Any]) -> None:
        d["architecture"]["encoders"]["image"]["channels"] = [10**9, 10**9]

    edit_info(checkpoint_copy, change)
    expect_error(
        LOAD.format(folder=str(checkpoint_copy)), "CheckpointError", "valid contract model", timeout=60
    )


@pytest.mark.parametrize(
    ("shape", "fragment"),
    [([10**6, 10**6], "elements per row"), ([1, -8, 8], "positive sizes"), ([1.5, 8, 8], "ints only")],
)
def test_absurd_modality_shape_is_refused(checkpoint_copy: Path, shape: list, fragment: str) -> None:
    edit_info(checkpoint_copy, lambda d: d["modalities"][1].__setitem__("shape", shape))
    expect_error(LOAD.format(folder=str(checkpoint_copy)), "CheckpointError", fragment, timeout=60)


def test_model_json_linked_to_dev_zero_is_refused(checkpoint_copy: Path) -> None:
    (checkpoint_copy / "model.json").unlink()
    (checkpoint_copy / "model.json").symlink_to("/dev/zero")
    expect_error(
        LOAD.format(folder=str(checkpoint_copy)), "CheckpointError", "outside the folder", timeout=30
    )


def test_weights_linked_to_dev_zero_are_refused(checkpoint_copy: Path) -> None:
    (checkpoint_copy / "model.safetensors").unlink()
    (checkpoint_copy / "model.safetensors").symlink_to("/dev/zero")
    expect_error(
        LOAD.format(folder=str(checkpoint_copy)), "CheckpointError", "outside the folder", timeout=30
    )


def test_weights_fifo_is_refused(checkpoint_copy: Path) -> None:
    (checkpoint_copy / "model.safetensors").unlink()
    os.mkfifo(checkpoint_copy / "model.safetensors")
    expect_error(LOAD.format(folder=str(checkpoint_copy)), "CheckpointError", "FIFO", timeout=30)


def test_weights_outside_the_folder_are_refused(checkpoint_copy: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.safetensors"
    os.replace(checkpoint_copy / "model.safetensors", outside)
    (checkpoint_copy / "model.safetensors").symlink_to(outside)
    expect_error(LOAD.format(folder=str(checkpoint_copy)), "CheckpointError", "outside the folder")


def test_deeply_nested_model_json_is_refused(checkpoint_copy: Path) -> None:
    text = (checkpoint_copy / "model.json").read_text()
    (checkpoint_copy / "model.json").write_text(
        text[:-1] + ', "metrics": ' + "[" * 100_000 + "]" * 100_000 + "}"
    )
    expect_error(LOAD.format(folder=str(checkpoint_copy)), "CheckpointError", "nested")


def test_garbage_weights_with_matching_hash_are_refused(checkpoint_copy: Path) -> None:
    forge_raw_weights(checkpoint_copy, os.urandom(4096))
    expect_error(LOAD.format(folder=str(checkpoint_copy)), "CheckpointError", "not a valid safetensors")


def test_safetensors_header_length_beyond_the_file_is_refused(checkpoint_copy: Path) -> None:
    raw = (checkpoint_copy / "model.safetensors").read_bytes()
    forge_raw_weights(checkpoint_copy, struct.pack("<Q", 1 << 62) + raw[8:])
    expect_error(LOAD.format(folder=str(checkpoint_copy)), "CheckpointError", "header declares")


def test_recorded_weights_size_mismatch_is_refused(checkpoint_copy: Path) -> None:
    size = (checkpoint_copy / "model.safetensors").stat().st_size
    edit_info(checkpoint_copy, lambda d: d.__setitem__("weights_size", size - 1))
    expect_error(LOAD.format(folder=str(checkpoint_copy)), "CheckpointError", "bytes")


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("label_names", "abcd", "label_names"),
        ("label_names", [], "label_names"),
        ("modalities", {"name": "audio"}, "modalities"),
        ("weights_sha256", 5, "weights_sha256"),
        ("schema_version", True, "schema_version"),
        ("architecture", [], "architecture"),
    ],
)
def test_mistyped_model_json_fields_are_refused(
    checkpoint_copy: Path, key: str, value: object, fragment: str
) -> None:
    edit_info(checkpoint_copy, lambda d: d.__setitem__(key, value))
    expect_error(LOAD.format(folder=str(checkpoint_copy)), "CheckpointError", fragment)


def test_pinned_checkpoint(checkpoint_copy: Path) -> None:
    good = hashlib.sha256((checkpoint_copy / "model.json").read_bytes()).hexdigest()
    code = "import edgefuse; edgefuse.load({folder!r}, manifest_sha256={pin!r})"
    expect_ok(code.format(folder=str(checkpoint_copy), pin=good))
    edit_info(checkpoint_copy, lambda d: d.__setitem__("seed", 12345))
    expect_error(code.format(folder=str(checkpoint_copy), pin=good), "CheckpointError", "pinned")
