"""Hostile command lines: every bad value ends in a non-zero exit with a message naming it, never a traceback.

Bad numbers are refused while the arguments are parsed (exit 2, ``argument --NAME: ...`` with the allowed
range) without importing torch; bad paths and inputs are refused before anything heavy runs. Every case
runs ``python -m edgefuse`` in its own process under the harness's memory limit and timeout.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from _harness import expect_cli_error, expect_ok

INT_RANGE = "allowed: an integer"
POSITIVE = "allowed: a finite number > 0"
SEED_RANGE = "0..4294967295"
TRAIN = ("train", "--data", "synthetic", "--out", "never-written")
WISEFT = ("wise-ft", "--theta0", "a", "--theta1", "b", "--out", "never-written")

# id -> (arguments, fragments of the message); all refused by argparse (exit 2)
ARGUMENTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "train-seed-negative": ((*TRAIN, "--seed", "-1"), ("argument --seed", "-1 is out of range", SEED_RANGE)),
    "train-seed-huge": ((*TRAIN, "--seed", str(2**64)), ("argument --seed", SEED_RANGE)),
    "train-lr-negative": ((*TRAIN, "--lr", "-1"), ("argument --lr", "-1 is out of range", POSITIVE)),
    "train-lr-zero": ((*TRAIN, "--lr", "0"), ("argument --lr", "0 is out of range", POSITIVE)),
    "train-lr-nan": ((*TRAIN, "--lr", "nan"), ("argument --lr", "'nan' is not a finite number", POSITIVE)),
    "train-lr-inf": ((*TRAIN, "--lr", "inf"), ("argument --lr", "'inf' is not a finite number")),
    "train-epochs-zero": ((*TRAIN, "--epochs", "0"), ("argument --epochs", "an integer in 1..10000")),
    "train-epochs-negative": (
        (*TRAIN, "--epochs", "-3"),
        ("argument --epochs", "-3", "an integer in 1..10000"),
    ),
    "train-epochs-huge": ((*TRAIN, "--epochs", "1000000000000"), ("argument --epochs", "in 1..10000")),
    "train-pretrain-negative": (
        (*TRAIN, "--pretrain-epochs", "-1"),
        ("--pretrain-epochs", "an integer in 0..10000"),
    ),
    "train-data-seed-negative": ((*TRAIN, "--data-seed", "-1"), ("argument --data-seed", SEED_RANGE)),
    "train-degrade-image-zero": ((*TRAIN, "--degrade-image", "0"), ("--degrade-image", "1..64")),
    "train-degrade-image-65": ((*TRAIN, "--degrade-image", "65"), ("--degrade-image", "1..64")),
    "train-param-nan": ((*TRAIN, "--param", "p=nan"), ("argument --param", "not a finite number")),
    "train-param-malformed": ((*TRAIN, "--param", "p"), ("argument --param", "NAME=NUMBER")),
    "wiseft-alphas-inf-stop": ((*WISEFT, "--alphas", "0:inf:1"), ("--alphas", "stop = inf", "[0, 1]")),
    "wiseft-alphas-tiny-step": ((*WISEFT, "--alphas", "0:1:1e-9"), ("--alphas", "more than 1001")),
    "wiseft-alphas-zero-step": ((*WISEFT, "--alphas", "0:1:0"), ("--alphas", "step", "finite number > 0")),
    "wiseft-alphas-reversed": (
        (*WISEFT, "--alphas", "1:0:0.1"),
        ("--alphas", "below start", "start <= stop"),
    ),
    "wiseft-alphas-nan": ((*WISEFT, "--alphas", "nan"), ("--alphas", "alpha = nan", "[0, 1]")),
    "wiseft-alphas-negative": ((*WISEFT, "--alphas", "-0.5"), ("--alphas", "alpha = -0.5", "[0, 1]")),
    "wiseft-alphas-two": ((*WISEFT, "--alphas", "2"), ("--alphas", "alpha = 2.0", "[0, 1]")),
    "wiseft-alphas-malformed": ((*WISEFT, "--alphas", "0:1"), ("--alphas", "start:stop:step")),
    "wiseft-tolerance-nan": ((*WISEFT, "--tolerance", "nan"), ("argument --tolerance", "[0, 1]")),
    "wiseft-tolerance-negative": ((*WISEFT, "--tolerance", "-0.1"), ("argument --tolerance", "[0, 1]")),
    "robustness-seed-negative": (("robustness", "--seeds", "0,-1"), ("--seeds", "seed -1", SEED_RANGE)),
    "robustness-seeds-billion": (("robustness", "--seeds", "1000000000"), ("--seeds", "1..1000")),
    "robustness-seeds-zero": (("robustness", "--seeds", "0"), ("--seeds", "1..1000")),
    "robustness-alphas-inf": (("robustness", "--alphas", "0:1:inf"), ("--alphas", "step = inf")),
    "robustness-epochs-zero": (
        ("robustness", "--epochs", "0"),
        ("argument --epochs", "an integer in 1..10000"),
    ),
    "bench-iters-zero": (("bench", "x.onnx", "--iters", "0"), ("argument --iters", "1..1000000")),
    "bench-iters-huge": (("bench", "x.onnx", "--iters", str(10**12)), ("argument --iters", "1..1000000")),
    "bench-warmup-negative": (("bench", "x.onnx", "--warmup", "-1"), ("argument --warmup", "0..1000000")),
    "bench-threads-zero": (("bench", "x.onnx", "--threads", "0"), ("argument --threads", "1..256")),
    "demo-epochs-zero": (("demo", "--epochs", "0"), ("argument --epochs", "an integer in 1..10000")),
    "demo-seed-negative": (("demo", "--seed", "-1"), ("argument --seed", SEED_RANGE)),
    "demo-iters-zero": (("demo", "--iters", "0"), ("argument --iters", "1..1000000")),
}


@pytest.mark.parametrize("case", list(ARGUMENTS))
def test_bad_number_is_refused_at_parsing(tmp_path: Path, case: str) -> None:
    args, fragments = ARGUMENTS[case]
    proc = expect_cli_error(*args, fragments=fragments, cwd=str(tmp_path))
    assert proc.returncode == 2
    assert not (tmp_path / "never-written").exists()


def test_argument_errors_do_not_import_torch() -> None:
    code = """
import sys
from edgefuse.cli import main
codes = []
for argv in (["train", "--lr", "nan", "--out", "x"], ["wise-ft", "--alphas", "0:inf:1", "--theta0", "a",
             "--theta1", "b", "--out", "x"], ["bench", "m.onnx", "--iters", "0"], ["demo", "--epochs", "0"]):
    try:
        main(argv)
    except SystemExit as exc:
        codes.append(exc.code)
RESULT["codes"] = codes
RESULT["heavy"] = sorted(m for m in sys.modules if m.split(".")[0] in {"torch", "onnxruntime", "scipy"})
"""
    res = expect_ok(code, fresh=True)  # a new interpreter: the harness's fork server has imported torch
    assert res.result == {"codes": [2, 2, 2, 2], "heavy": []}


# ----------------------------------------------------------------------------- --out below a regular file

OUT_BELOW_FILE: dict[str, tuple[str, ...]] = {
    "train": ("train", "--data", "synthetic", "--out", "somefile.txt/art"),
    "export": ("export", "ckpt", "--profile", "generic/x86-64", "--out", "somefile.txt/art"),
    "wise-ft": ("wise-ft", "--theta0", "a", "--theta1", "b", "--out", "somefile.txt/deep/art"),
    "demo": ("demo", "--out", "somefile.txt/demo"),
    "bench-report": ("bench", "m.onnx", "--report", "somefile.txt/report"),
}


@pytest.mark.parametrize("case", list(OUT_BELOW_FILE))
def test_out_below_a_regular_file_names_the_file(tmp_path: Path, case: str) -> None:
    (tmp_path / "somefile.txt").write_text("not a folder\n")
    proc = expect_cli_error(
        *OUT_BELOW_FILE[case],
        fragments=("ContractError", "somefile.txt is a file, not a folder"),
        cwd=str(tmp_path),
    )
    assert proc.returncode == 2
    assert (tmp_path / "somefile.txt").read_text() == "not a folder\n"


# ----------------------------------------------------------------------------- export --precision


@pytest.fixture
def av_digits_checkpoint(checkpoint_copy: Path) -> Path:
    """A checkpoint whose model.json says it was trained on av-digits (FSDD), without needing FSDD."""
    info = json.loads((checkpoint_copy / "model.json").read_text())
    info["dataset"] = {"name": "av-digits", "degrade_image": 4, "seed": 0}  # the fp16 check would need FSDD
    (checkpoint_copy / "model.json").write_text(json.dumps(info))
    return checkpoint_copy


@pytest.fixture
def no_fsdd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDGEFUSE_FSDD", raising=False)


@pytest.mark.usefixtures("no_fsdd")
def test_export_precision_not_listed_says_so_not_fsdd(av_digits_checkpoint: Path, tmp_path: Path) -> None:
    proc = expect_cli_error(
        "export",
        str(av_digits_checkpoint),
        "--profile",
        "generic/smart-speaker",
        "--precision",
        "fp16",
        "--out",
        str(tmp_path / "art"),
        fragments=("--precision fp16", "generic/smart-speaker", "lists precisions", "--precision fp32"),
    )
    assert proc.returncode == 2
    assert "FSDD" not in proc.stderr
    assert not (tmp_path / "art").exists()


@pytest.mark.usefixtures("no_fsdd")
def test_export_fp16_agreement_without_fsdd_says_why(av_digits_checkpoint: Path, tmp_path: Path) -> None:
    proc = expect_cli_error(
        "export",
        str(av_digits_checkpoint),
        "--profile",
        "google/pixel-8",
        "--precision",
        "fp16",
        "--out",
        str(tmp_path / "art"),
        fragments=("DataError", "trained on av-digits", "top-1 agreement", "--fsdd PATH", "--precision fp32"),
    )
    assert proc.returncode == 2


# ----------------------------------------------------------------------------- edgefuse run --npz


def _npy(descr: str, shape: tuple[int, ...], body: bytes) -> bytes:
    from numpy.lib import format as npy

    head = io.BytesIO()
    npy.write_array_header_1_0(head, {"descr": descr, "fortran_order": False, "shape": shape})
    return head.getvalue() + body


def _npz(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _pickled_npz(path: Path) -> Path:
    import numpy as np

    np.savez(path, audio=np.array([{"a": 1}], dtype=object))
    return path


def _not_a_zip(path: Path) -> None:
    path.write_bytes(b"\x93NUMPY not an archive")


NPZ: dict[str, tuple[Callable[[Path], object], tuple[str, ...]]] = {
    "declares-1e12-elements": (
        lambda p: _npz(p, {"audio.npy": _npy("<f4", (10**6, 10**6), b"\0" * 64)}),
        ("'audio'", "(1000000, 1000000)", "4000000000000 bytes", "holds 64 bytes"),
    ),
    "pickled-object": (_pickled_npz, ("'audio'", "dtype object", "never unpickles")),
    "zero-itemsize-dtype": (
        lambda p: _npz(p, {"audio.npy": _npy("|S0", (10**12,), b"")}),
        ("--npz", "only plain bool, integer and float", "plain numeric arrays"),
    ),
    "not-a-zip": (_not_a_zip, ("not an .npz (zip) archive",)),
    "fifo": (os.mkfifo, ("FIFO", "not a regular file")),
}


@pytest.mark.parametrize("case", list(NPZ))
def test_run_hostile_npz_is_refused(tmp_path: Path, case: str) -> None:
    make, fragments = NPZ[case]
    path = tmp_path / f"{case}.npz"
    make(path)
    (tmp_path / "art").mkdir()  # the .npz is refused before the artifact is loaded
    proc = expect_cli_error(
        "run",
        str(tmp_path / "art"),
        "--npz",
        str(path),
        fragments=("ContractError", f"{case}.npz", *fragments),
    )
    assert proc.returncode == 2
