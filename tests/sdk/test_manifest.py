"""The artifact manifest schema: validated on read, newer schemas refused, paths confined to the folder."""

from __future__ import annotations

import copy

import pytest
from edgefuse.manifest import Manifest, ManifestError

_IO = {"name": "x", "dtype": "float32"}
VALID = {
    "schema_version": 1,
    "edgefuse_version": "0.1.0",
    "toolchain": {},
    "profile": "generic/x86-64",
    "format": "onnx",
    "precision": "fp32",
    "layout": "split",
    "modalities": [{"name": "audio", "shape": [1, 32, 61], "dtype": "float32", "graph": "encoder_audio"}],
    "model_modalities": ["audio"],
    "label_names": ["0", "1"],
    "fusion": {"weights": [1.0], "eps": 1e-5, "dim": 4, "gamma": None, "beta": None},
    "graphs": {
        "encoder_audio": {
            "files": ["encoder_audio.onnx"],
            "inputs": [{**_IO, "name": "audio", "shape": [-1, 1, 32, 61]}],
            "outputs": [{**_IO, "name": "embedding", "shape": [-1, 4]}],
        },
        "head": {
            "files": ["head.onnx"],
            "inputs": [{**_IO, "name": "fused", "shape": [-1, 4]}],
            "outputs": [{**_IO, "name": "logits", "shape": [-1, 2]}],
        },
    },
    "files": [
        {"path": "encoder_audio.onnx", "role": "encoder", "sha256": "0" * 64, "size": 1},
        {"path": "head.onnx", "role": "head", "sha256": "0" * 64, "size": 1},
        {"path": "reference.npz", "role": "reference", "sha256": "0" * 64, "size": 1},
    ],
    "parity": [],
    "reference": {"file": "reference.npz", "cases": [{"pattern": ["audio"], "batch": 3}]},
    "checkpoint": {},
}


def _with(**changes):  # type: ignore[no-untyped-def]
    data = copy.deepcopy(VALID)
    for key, value in changes.items():
        if value is None:
            data.pop(key)
        else:
            data[key] = value
    return data


def test_valid_manifest() -> None:
    assert Manifest(VALID).modality_names == ["audio"]


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"schema_version": 3}, r"schema_version 3, newer than this EdgeFuse supports \(2\); upgrade"),
        ({"format": "onnnx"}, r"format 'onnnx' is not one of"),
        ({"layout": "mono"}, r"layout 'mono'"),
        ({"fusion": {"weights": [1.0]}}, r"fusion is missing 'eps'"),
        ({"graphs": []}, r"'graphs' must be dict; got list"),
        ({"label_names": None}, r"missing 'label_names'"),
        ({"surprise": 1}, r"unknown keys \['surprise'\]"),
        (
            {"files": [{"path": "../../etc/passwd", "role": "x", "sha256": "0", "size": 1}]},
            r"must stay inside",
        ),
        ({"files": [{"path": "/abs", "role": "x", "sha256": "0", "size": 1}]}, r"must stay inside"),
        ({"modalities": [{"name": "audio"}]}, r"modalities\[0\] needs name, shape and dtype"),
        ({"schema_version": True}, r"'schema_version' must be int"),
    ],
)
def test_invalid_manifests(changes: dict, match: str) -> None:
    with pytest.raises(ManifestError, match=match):
        Manifest(_with(**changes))
