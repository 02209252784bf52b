"""``edgefuse eval``: accuracy per presence pattern of a checkpoint or artifact on a labelled dataset."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from edgefuse.cli import main

SYN = ["--data", "synthetic"]


def _checkpoint(root: Path, specs: Sequence[tuple[str, tuple[int, ...]]], labels: Sequence[str]) -> Path:
    """An untrained reference-architecture checkpoint (seeded) over ``specs`` with ``labels``."""
    torch = pytest.importorskip("torch")
    from edgefuse.checkpoint import save_checkpoint
    from edgefuse.models.contract import build_model
    from edgefuse.models.reference import reference_architecture
    from edgefuse.specs import ModalitySpec

    mods = tuple(ModalitySpec(name, shape) for name, shape in specs)
    torch.manual_seed(0)
    model = build_model(reference_architecture(mods, 16), mods, list(labels))
    return save_checkpoint(model.eval(), root)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint over the synthetic dataset's audio and image (the dataset also has imu)."""
    from edgefuse.data.synthetic import SYNTHETIC_SHAPES

    specs = [(m, SYNTHETIC_SHAPES[m]) for m in ("audio", "image")]
    return _checkpoint(tmp_path_factory.mktemp("eval") / "ckpt", specs, [str(i) for i in range(10)])


def _err(capsys: pytest.CaptureFixture[str]) -> str:
    """Captured stderr with rich's line wrapping undone."""
    return " ".join(capsys.readouterr().err.split())


def test_eval_json_matches_torch_accuracy(ckpt: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from edgefuse.checkpoint import load_checkpoint
    from edgefuse.data.registry import load_dataset
    from edgefuse.train import accuracy

    assert main(["eval", str(ckpt), *SYN, "--json", "-", "--batch-size", "64"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)  # nothing but the JSON on stdout
    test = load_dataset("synthetic").split("test")
    model = load_checkpoint(ckpt).model
    expected = {
        "audio+image": accuracy(model, test, ("audio", "image")),
        "audio": accuracy(model, test, ("audio",)),
        "image": accuracy(model, test, ("image",)),
    }
    assert report["artifact"] == str(ckpt)
    assert report["data"] == "synthetic"
    assert report["split"] == "test"
    assert report["rows"] == len(test)
    assert list(report["accuracy"]) == list(expected)
    for pattern, value in expected.items():
        assert report["accuracy"][pattern] == pytest.approx(value, abs=1e-9), pattern


def test_eval_table_and_json_file(ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", str(ckpt), *SYN, "--split", "val"]) == 0
    out = capsys.readouterr().out
    assert "synthetic/val" in out
    for pattern in ("audio+image", "audio", "image"):
        assert pattern in out
    assert not out.lstrip().startswith("{")

    path = tmp_path / "report.json"
    assert main(["eval", str(ckpt), *SYN, "--split", "val", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"wrote {path}" in " ".join(out.split())
    assert "audio+image" in out  # the table is printed too
    report = json.loads(path.read_text())
    assert report["split"] == "val"
    assert set(report["accuracy"]) == {"audio+image", "audio", "image"}
    assert all(0.0 <= v <= 1.0 for v in report["accuracy"].values())
    assert not list(tmp_path.glob(".*edgefuse-tmp*"))  # written atomically, nothing left behind


def test_eval_errors(ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from edgefuse.data.synthetic import SYNTHETIC_SHAPES

    assert main(["eval", str(ckpt), *SYN, "--split", "nope"]) == 2
    err = _err(capsys)
    assert "error: DataError" in err
    assert "no split 'nope'" in err
    assert "'test'" in err

    assert main(["eval", str(ckpt), "--data", "no-such-data"]) == 2
    assert "error: DataError" in _err(capsys)

    assert main(["eval", str(tmp_path / "missing"), *SYN]) == 2
    assert "no such artifact folder" in _err(capsys)

    with pytest.raises(SystemExit) as refused:  # a folder is refused while the arguments are parsed
        main(["eval", str(ckpt), *SYN, "--json", str(tmp_path)])
    assert refused.value.code == 2
    assert "argument --json:" in _err(capsys)
    assert main(["eval", str(ckpt), *SYN, "--json", str(ckpt / "r.json")]) == 2
    assert "is inside the artifact folder" in _err(capsys)

    digits = _checkpoint(
        tmp_path / "digits", [("image", SYNTHETIC_SHAPES["image"])], [f"digit{i}" for i in range(10)]
    )
    assert main(["eval", str(digits), *SYN]) == 2
    err = _err(capsys)
    assert "error: ContractError" in err
    assert "'digit0'" in err
    assert "'0'" in err
    assert "'synthetic'" in err

    depth = _checkpoint(
        tmp_path / "depth", [("image", SYNTHETIC_SHAPES["image"]), ("depth", (1, 8, 8))], list("0123456789")
    )
    assert main(["eval", str(depth), *SYN, "--json", "-"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    err = " ".join(captured.err.split())
    assert "error: ContractError" in err
    assert "has no ['depth']" in err


def test_eval_onnx_artifact_matches_checkpoint(
    ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from edgefuse.export import export

    art = tmp_path / "art"
    export(ckpt, "generic/x86-64", "onnx", art, precision="fp32").raise_for_failures()
    reports = []
    for folder in (ckpt, art):
        assert main(["eval", str(folder), *SYN, "--json", "-", "--threads", "1"]) == 0
        reports.append(json.loads(capsys.readouterr().out))
    assert reports[1]["backend"] == "onnxruntime"
    rows = reports[0]["rows"]
    for pattern, value in reports[0]["accuracy"].items():  # fp32 ONNX vs torch: at most a near-tie flips
        assert reports[1]["accuracy"][pattern] == pytest.approx(value, abs=1.5 / rows), pattern
