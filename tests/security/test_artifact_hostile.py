"""Hostile artifacts: every file the runtime opens is inside the folder, regular, listed, size+hash checked.

Each case tampers with a private copy of a small ONNX artifact and loads it in its own interpreter (a
hang, crash or runaway allocation fails the case instead of the session); the error must be the typed
EdgeFuse one, naming the file or field and the rule.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _harness import expect_error, expect_ok
from _tamper import LOAD, PREDICT, edit, rehash

pytestmark = pytest.mark.backend("onnxruntime")


def _head_file(data: dict[str, Any]) -> str:
    return data["graphs"]["head"]["files"][0]


# ---- 1. integrity covers every file, not only what the manifest chooses to list ----------------------


def test_pristine_artifact_loads_and_predicts(artifact_copy: Path) -> None:
    res = expect_ok(PREDICT.format(folder=str(artifact_copy)))
    assert res.result["finite"] is True


def test_graph_file_outside_folder_is_refused(artifact_copy: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "head.onnx").write_bytes((artifact_copy / "head.onnx").read_bytes())

    def change(d: dict[str, Any]) -> None:
        d["graphs"]["head"]["files"] = ["../other/head.onnx"]
        d["files"].append(
            {**next(f for f in d["files"] if f["path"] == "head.onnx"), "path": "../other/head.onnx"}
        )

    edit(artifact_copy, change)
    expect_error(LOAD.format(folder=str(artifact_copy)), "ManifestError", "../other/head.onnx", "inside")


def test_absolute_graph_path_is_refused(artifact_copy: Path) -> None:
    absolute = str(artifact_copy / "head.onnx")
    edit(artifact_copy, lambda d: d["graphs"]["head"].__setitem__("files", [absolute]))
    expect_error(LOAD.format(folder=str(artifact_copy)), "ManifestError", "graphs['head']", "not listed")


def test_graph_file_missing_from_files_is_refused(artifact_copy: Path) -> None:
    edit(artifact_copy, lambda d: d.__setitem__("files", [f for f in d["files"] if f["path"] != "head.onnx"]))
    expect_error(LOAD.format(folder=str(artifact_copy)), "ManifestError", "head.onnx", "not listed", "sha256")


def test_empty_files_list_is_refused(artifact_copy: Path) -> None:
    edit(artifact_copy, lambda d: d.__setitem__("files", []))
    expect_error(LOAD.format(folder=str(artifact_copy)), "ManifestError", "not listed")


def test_files_given_as_string_is_refused(artifact_copy: Path) -> None:
    edit(artifact_copy, lambda d: d.__setitem__("files", "head.onnx"))
    expect_error(LOAD.format(folder=str(artifact_copy)), "ManifestError", "'files' must be list", "str")


def test_symlink_escaping_the_folder_is_refused(artifact_copy: Path, tmp_path: Path) -> None:
    outside = tmp_path / "evil.onnx"
    outside.write_bytes((artifact_copy / "head.onnx").read_bytes())  # same bytes, same hash
    (artifact_copy / "head.onnx").unlink()
    (artifact_copy / "head.onnx").symlink_to(outside)
    expect_error(LOAD.format(folder=str(artifact_copy)), "UnsafeFileError", "outside the folder", "head.onnx")


def test_symlink_inside_the_folder_is_accepted(artifact_copy: Path) -> None:
    (artifact_copy / "real").mkdir()
    os.replace(artifact_copy / "head.onnx", artifact_copy / "real" / "head.onnx")
    (artifact_copy / "head.onnx").symlink_to(Path("real") / "head.onnx")
    expect_ok(PREDICT.format(folder=str(artifact_copy)))


def test_swapped_graph_with_matching_manifest_is_caught_by_the_pin(artifact_copy: Path) -> None:
    pinned = hashlib.sha256((artifact_copy / "manifest.json").read_bytes()).hexdigest()
    raw = bytearray((artifact_copy / "head.onnx").read_bytes())
    raw[-8] ^= 0x01
    (artifact_copy / "head.onnx").write_bytes(bytes(raw))
    rehash(artifact_copy, "head.onnx")  # a forger also rewrote the manifest's hashes
    code = f"import edgefuse; edgefuse.load({str(artifact_copy)!r}, manifest_sha256={pinned!r})"
    expect_error(code, "ManifestError", "pinned", pinned)


def test_pinned_manifest_loads(artifact_copy: Path) -> None:
    pinned = hashlib.sha256((artifact_copy / "manifest.json").read_bytes()).hexdigest()
    expect_ok(f"import edgefuse; edgefuse.load({str(artifact_copy)!r}, manifest_sha256={pinned.upper()!r})")


@pytest.mark.parametrize("pin", ["abc", "z" * 64, 12])
def test_malformed_pin_is_refused(artifact_copy: Path, pin: object) -> None:
    code = f"import edgefuse; edgefuse.load({str(artifact_copy)!r}, manifest_sha256={pin!r})"
    expect_error(code, "ManifestError", "64 hex digits")


# ---- 2. hangs: non-regular files are refused before they are opened -------------------------------


def test_listed_file_linked_to_dev_zero_is_refused(artifact_copy: Path) -> None:
    (artifact_copy / "head.onnx").unlink()
    (artifact_copy / "head.onnx").symlink_to("/dev/zero")
    expect_error(LOAD.format(folder=str(artifact_copy)), "UnsafeFileError", "head.onnx", timeout=30)


def test_listed_file_that_is_a_fifo_is_refused(artifact_copy: Path) -> None:
    (artifact_copy / "head.onnx").unlink()
    os.mkfifo(artifact_copy / "head.onnx")
    expect_error(LOAD.format(folder=str(artifact_copy)), "UnsafeFileError", "FIFO", "head.onnx", timeout=30)


def test_manifest_that_is_a_fifo_is_refused(artifact_copy: Path) -> None:
    (artifact_copy / "manifest.json").unlink()
    os.mkfifo(artifact_copy / "manifest.json")
    expect_error(LOAD.format(folder=str(artifact_copy)), "UnsafeFileError", "FIFO", timeout=30)


def test_manifest_linked_to_dev_zero_is_refused(artifact_copy: Path) -> None:
    (artifact_copy / "manifest.json").unlink()
    (artifact_copy / "manifest.json").symlink_to("/dev/zero")
    expect_error(LOAD.format(folder=str(artifact_copy)), "UnsafeFileError", "outside the folder", timeout=30)


def test_manifest_linked_outside_the_folder_is_refused(artifact_copy: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.json"
    os.replace(artifact_copy / "manifest.json", outside)
    (artifact_copy / "manifest.json").symlink_to(outside)
    expect_error(LOAD.format(folder=str(artifact_copy)), "UnsafeFileError", "outside the folder")


def test_manifest_profile_is_an_id_never_a_path(artifact_copy: Path, tmp_path: Path) -> None:
    """A manifest naming a profile *file* (outside the artifact) is not read: default order, still loads."""
    spy = tmp_path / "spy.toml"
    spy.write_text("not toml at all [[[")
    edit(artifact_copy, lambda d: d.__setitem__("profile", str(spy)))
    res = expect_ok(LOAD.format(folder=str(artifact_copy)) + "RESULT['profile'] = s.profile")
    assert res.result["profile"] is None


def test_renamed_graph_output_is_caught_at_load(artifact_copy: Path) -> None:
    edit(artifact_copy, lambda d: d["graphs"]["head"]["outputs"][0].__setitem__("name", "scores"))
    expect_error(LOAD.format(folder=str(artifact_copy)), "ManifestError", "no output 'scores'")


def test_manifest_with_a_5000_digit_integer_is_refused(artifact_copy: Path) -> None:
    text = (artifact_copy / "manifest.json").read_text()
    (artifact_copy / "manifest.json").write_text(text[:-1] + ', "notes": ' + "9" * 5000 + "}")
    expect_error(LOAD.format(folder=str(artifact_copy)), "ManifestError", "not valid JSON")


@pytest.mark.parametrize("key", ["weights", "gamma"])
def test_fusion_integer_too_large_for_a_float_is_refused(artifact_copy: Path, key: str) -> None:
    def change(d: dict[str, Any]) -> None:
        n = len(d["fusion"]["weights"]) if key == "weights" else d["fusion"]["dim"]
        d["fusion"][key] = [10**400] * n

    edit(artifact_copy, change)
    expect_error(LOAD.format(folder=str(artifact_copy)), "ManifestError", f"fusion.{key}[0]")


def test_huge_manifest_is_refused_without_reading_it(artifact_copy: Path) -> None:
    with open(artifact_copy / "manifest.json", "r+b") as f:
        f.truncate(1 << 40)  # sparse: 1 TiB declared, nothing on disk
    expect_error(LOAD.format(folder=str(artifact_copy)), "UnsafeFileError", "bytes", "allowed", timeout=30)


def test_listed_file_grown_beyond_its_size_is_refused_by_size(artifact_copy: Path) -> None:
    with open(artifact_copy / "head.onnx", "r+b") as f:
        f.truncate(1 << 40)
    expect_error(
        LOAD.format(folder=str(artifact_copy)), "ArtifactIntegrityError", "bytes", "record", timeout=30
    )


def test_deeply_nested_manifest_is_refused(artifact_copy: Path) -> None:
    text = (artifact_copy / "manifest.json").read_text()
    deep = "[" * 200_000 + "]" * 200_000
    (artifact_copy / "manifest.json").write_text(text[:-1] + f', "notes": {deep}}}')
    expect_error(LOAD.format(folder=str(artifact_copy)), "ManifestError", "nested")


def test_coreml_package_with_escaping_symlink_is_refused(artifact_copy: Path) -> None:
    pkg = artifact_copy / "model.mlpackage"
    pkg.mkdir()
    (pkg / "Manifest.json").write_text("{}")
    (pkg / "weights.bin").symlink_to("/etc/hostname")
    edit(
        artifact_copy,
        lambda d: d["files"].append({"path": "model.mlpackage", "role": "x", "sha256": "0" * 64, "size": 2}),
    )
    expect_error(LOAD.format(folder=str(artifact_copy)), "UnsafeFileError", "outside", timeout=30)


def test_coreml_package_holding_a_fifo_is_refused(artifact_copy: Path) -> None:
    pkg = artifact_copy / "model.mlpackage"
    pkg.mkdir()
    os.mkfifo(pkg / "weights.bin")
    edit(
        artifact_copy,
        lambda d: d["files"].append({"path": "model.mlpackage", "role": "x", "sha256": "0" * 64, "size": 0}),
    )
    expect_error(LOAD.format(folder=str(artifact_copy)), "UnsafeFileError", "FIFO", timeout=30)


# ---- 3. values that pass a shallow check but break later --------------------------------------------


def _fusion(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda d: d["fusion"].__setitem__(key, value)


FUSION_CASES = {
    "eps-zero-in-float32": (_fusion("eps", 1e-50), "fusion.eps"),
    "eps-negative": (_fusion("eps", -1e-5), "fusion.eps"),
    "eps-string": (_fusion("eps", "1e-5"), "fusion.eps"),
    "weight-denormal": (_fusion("weights", [1e-40, 1.0]), "normal float32"),
    "weights-sum-overflow": (_fusion("weights", [3e38, 3e38]), "float32 can hold"),
    "weight-above-float32": (_fusion("weights", [1e39, 1.0]), "finite float32"),
    "weight-count": (_fusion("weights", [1.0]), "list of 2 numbers"),
    "gamma-nan": (
        lambda d: d["fusion"].__setitem__("gamma", [float("nan")] * d["fusion"]["dim"]),
        "gamma[0]",
    ),
    "beta-inf": (lambda d: d["fusion"].__setitem__("beta", [float("inf")] * d["fusion"]["dim"]), "beta[0]"),
    "gamma-length": (_fusion("gamma", [1.0]), "fusion.gamma"),
    "dim-mismatch": (
        lambda d: d["fusion"].update(dim=d["fusion"]["dim"] + 1, gamma=None, beta=None),
        "but fusion.dim is 9",
    ),
    "dim-huge": (_fusion("dim", 10**12), "fusion.dim"),
}


@pytest.mark.parametrize("case", sorted(FUSION_CASES))
def test_bad_fusion_parameters_are_refused_at_load(artifact_copy: Path, case: str) -> None:
    change, fragment = FUSION_CASES[case]
    edit(artifact_copy, change)
    expect_error(LOAD.format(folder=str(artifact_copy)), "ManifestError", fragment)


def _modality(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda d: d["modalities"][0].__setitem__(key, value)


SCHEMA_CASES = {
    "labels-vs-head": (lambda d: d.__setitem__("label_names", ["a", "b"]), "2 labels"),
    "labels-empty": (lambda d: d.__setitem__("label_names", []), "label_names"),
    "modality-shape-vs-graph": (_modality("shape", [1, 8, 13]), "declares [1, 8, 13]"),
    "modality-dtype-vs-graph": (_modality("dtype", "int64"), "int64"),
    "modality-dtype-unknown": (_modality("dtype", "object"), "'object' is not one of"),
    "modality-shape-huge": (_modality("shape", [100000, 100000, 100000]), "elements per row"),
    "modality-shape-negative": (_modality("shape", [-1, 8, 12]), "positive ints"),
    "schema-version-zero": (lambda d: d.__setitem__("schema_version", 0), "not a valid version"),
    "size-negative": (lambda d: d["files"][0].__setitem__("size", -1), "size must be an int >= 0"),
    "size-string": (lambda d: d["files"][0].__setitem__("size", "12"), "size must be an int"),
    "sha-malformed": (lambda d: d["files"][0].__setitem__("sha256", "xyz"), "64 lowercase hex"),
    "path-nul": (lambda d: d["files"][0].__setitem__("path", "a\x00b"), "non-empty string"),
    "path-twice": (lambda d: d["files"].append(dict(d["files"][0])), "lists a path twice"),
    "graph-missing": (lambda d: d["graphs"].pop("head"), "needs a 'head' graph"),
    "graph-io-not-list": (lambda d: d["graphs"]["head"].__setitem__("inputs", "fused"), "inputs must be"),
    "reference-unlisted": (lambda d: d["reference"].__setitem__("file", "other.npz"), "reference.file"),
    "reference-batch-huge": (
        lambda d: d["reference"]["cases"][0].__setitem__("batch", 10**9),
        "reference.cases[0].batch",
    ),
    "reference-pattern-unknown": (
        lambda d: d["reference"]["cases"][0].__setitem__("pattern", ["lidar"]),
        "outside",
    ),
    "modalities-not-objects": (lambda d: d.__setitem__("modalities", ["audio"]), "modalities[0]"),
}


@pytest.mark.parametrize("case", sorted(SCHEMA_CASES))
def test_inconsistent_manifest_is_refused_at_load(artifact_copy: Path, case: str) -> None:
    change, fragment = SCHEMA_CASES[case]
    edit(artifact_copy, change)
    expect_error(LOAD.format(folder=str(artifact_copy)), "ManifestError", fragment)


def test_manifest_consistent_with_itself_but_not_with_the_graph_is_refused(artifact_copy: Path) -> None:
    """Every manifest field agrees, but the ONNX file takes another shape: caught at load, naming both."""

    def change(d: dict[str, Any]) -> None:
        d["modalities"][0]["shape"] = [1, 8, 13]
        graph = d["modalities"][0]["graph"]
        d["graphs"][graph]["inputs"][0]["shape"] = [-1, 1, 8, 13]
        d["reference"]["cases"] = [
            c for c in d["reference"]["cases"] if d["modalities"][0]["name"] not in c["pattern"]
        ]

    edit(artifact_copy, change)
    expect_error(LOAD.format(folder=str(artifact_copy)), "ManifestError", "in the file", "manifest declares")


# ---- 8. files that hash right but were written broken ----------------------------------------------


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_broken_graph_with_matching_hash_says_written_broken(artifact_copy: Path, damage: str) -> None:
    path = artifact_copy / "head.onnx"
    raw = path.read_bytes()
    path.write_bytes(
        {"garbage": os.urandom(len(raw)), "truncated": raw[: len(raw) // 3], "empty": b""}[damage]
    )
    rehash(artifact_copy, "head.onnx")
    expect_error(
        LOAD.format(folder=str(artifact_copy)),
        "BrokenArtifactError",
        "head.onnx",
        "written broken",
        "re-export",
    )


def _rewrite_reference(folder: Path, writer: Callable[[Path], None]) -> None:
    writer(folder / "reference.npz")
    rehash(folder, "reference.npz")


def test_reference_with_pickled_object_is_refused(artifact_copy: Path) -> None:
    _rewrite_reference(
        artifact_copy, lambda p: np.savez(p, **{"audio/logits": np.array([{"x": 1}], dtype=object)})
    )
    code = LOAD.format(folder=str(artifact_copy)) + "s.verify()"
    expect_error(code, "ArtifactIntegrityError", "reference.npz", "pickle", "never unpickles")


def test_reference_declaring_a_trillion_elements_is_refused(artifact_copy: Path) -> None:
    import io
    import zipfile

    def write(p: Path) -> None:
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(
            header, {"descr": "<f4", "fortran_order": False, "shape": (10**12,)}
        )
        with zipfile.ZipFile(p, "w") as z:
            z.writestr("audio/logits.npy", header.getvalue() + b"\0" * 64)

    _rewrite_reference(artifact_copy, write)
    code = LOAD.format(folder=str(artifact_copy)) + "s.verify()"
    expect_error(code, "ArtifactIntegrityError", "declares", "holds 64 bytes")


@pytest.mark.parametrize("dtype", ["U3", "V4", "f4,f4"])
def test_reference_with_non_numeric_arrays_is_refused(artifact_copy: Path, dtype: str) -> None:
    _rewrite_reference(artifact_copy, lambda p: np.savez(p, **{"audio/logits": np.zeros(3, dtype=dtype)}))
    code = LOAD.format(folder=str(artifact_copy)) + "s.verify()"
    expect_error(code, "ArtifactIntegrityError", "only plain bool, integer and float")


def test_reference_that_is_not_a_zip_is_refused(artifact_copy: Path) -> None:
    _rewrite_reference(artifact_copy, lambda p: p.write_bytes(b"not a zip at all"))
    code = LOAD.format(folder=str(artifact_copy)) + "s.verify()"
    expect_error(code, "ArtifactIntegrityError", "not an .npz")


def test_nan_weights_inside_a_graph_never_give_nan_logits(artifact_copy: Path) -> None:
    """A graph whose initializers hold NaN loads (its hash matches) but predict refuses NaN logits."""
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper

    path = artifact_copy / "head.onnx"
    model = onnx.load(str(path))
    init = model.graph.initializer[0]
    arr = numpy_helper.to_array(init).copy()
    arr.flat[0] = np.nan
    init.CopyFrom(numpy_helper.from_array(arr, init.name))
    onnx.save(model, str(path))
    rehash(artifact_copy, "head.onnx")
    expect_error(
        PREDICT.format(folder=str(artifact_copy)), "NonFiniteOutputError", "NaN or Inf logits", "verify"
    )


def test_cli_pins_the_manifest(artifact_copy: Path, tmp_path: Path) -> None:
    from _harness import expect_cli_error, run_cli

    npz = tmp_path / "in.npz"
    np.savez(npz, audio=np.ones((1, 1, 8, 12), np.float32))
    good = hashlib.sha256((artifact_copy / "manifest.json").read_bytes()).hexdigest()
    ok = run_cli("run", str(artifact_copy), "--npz", str(npz), "--manifest-sha256", good, "--json")
    assert ok.returncode == 0, ok.stderr
    bad = ("0" if good[0] != "0" else "1") + good[1:]
    expect_cli_error(
        "run", str(artifact_copy), "--npz", str(npz), "--manifest-sha256", bad, fragments=("pinned", bad)
    )
    expect_cli_error(
        "bench",
        str(artifact_copy),
        "--iters",
        "3",
        "--no-rss",
        "--manifest-sha256",
        bad,
        fragments=("pinned",),
    )
