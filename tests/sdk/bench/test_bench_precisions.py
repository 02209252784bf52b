"""``edgefuse bench`` of a checkpoint at every precision of the profile: fp32 / int8 side by side, accuracy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from edgefuse.bench import bench_artifact, bench_checkpoint
from edgefuse.bench.precisions import INT8_NEEDS_DATA, labelled_split, side_by_side
from edgefuse.bench.report import columns, render_markdown
from edgefuse.cli import main
from edgefuse.errors import ContractError

pytestmark = pytest.mark.backend("onnxruntime", "torch")

PROFILE = "generic/x86-64"  # backends onnxruntime, torch; precisions fp32, int8
FAST: dict[str, Any] = {"iters": 3, "warmup": 0, "rss": False}


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory, toy_dataset_factory: Any) -> tuple[Path, Any, Path]:
    """An (untrained) audio + image checkpoint, its labelled toy data, and a cache folder shared by the tests."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from edgefuse.checkpoint import save_checkpoint
    from edgefuse.models.contract import build_model
    from edgefuse.models.reference import reference_architecture

    data = toy_dataset_factory(modalities=("audio", "image"), n=(96, 16, 48))
    torch.manual_seed(0)
    model = build_model(reference_architecture(data.modalities, 16), data.modalities, list(data.label_names))
    root = tmp_path_factory.mktemp("bench_precisions")
    return save_checkpoint(model.eval(), root / "ckpt"), data, root / "cache"


def test_checkpoint_fp32_and_int8_side_by_side_with_accuracy(toy: tuple[Path, Any, Path]) -> None:
    ckpt, data, cache = toy
    report = bench_checkpoint(ckpt, profile=PROFILE, patterns="all,image", data=data, cache_dir=cache, **FAST)
    keys = [(r["backend"], r["pattern"], r["precision"]) for r in report["results"]]
    assert keys == [
        ("torch", "audio+image", "fp32"),
        ("torch", "image", "fp32"),
        ("onnxruntime", "audio+image", "fp32"),
        ("onnxruntime", "audio+image", "int8"),
        ("onnxruntime", "image", "fp32"),
        ("onnxruntime", "image", "int8"),
    ]
    assert report["unavailable"] == []
    assert report["accuracy_data"] == "toy:test (48 rows)"
    rows = {k: r for k, r in zip(keys, report["results"], strict=True)}
    for (backend, pattern, precision), row in rows.items():
        assert 0.0 <= row["accuracy"] <= 1.0
        assert row["p50_ms"] > 0
        assert Path(row["artifact"]).name == ("ckpt" if backend == "torch" else f"onnx-{precision}")
        torch_row = rows[("torch", pattern, "fp32")]
        if precision == "fp32":  # the same fp32 model through two backends classifies alike
            assert row["accuracy"] == pytest.approx(torch_row["accuracy"])
        else:  # the export validated the int8 artifact: at most 1 point below fp32 on every pattern
            assert row["accuracy"] >= torch_row["accuracy"] - 0.01
            fp32 = rows[(backend, pattern, "fp32")]
            assert row["size_bytes"] < fp32["size_bytes"] / 2
            assert row["estimate"]["precision"] == "int8"
            assert row["estimate"]["ms"] < fp32["estimate"]["ms"]
    markdown = render_markdown(report)
    assert "| onnxruntime | int8 | image |" in markdown
    assert "accuracy %" in markdown
    assert "peak RSS" not in markdown  # rss=False: no column, no note

    # the int8 artifact on its own, with the labelled data: accuracy only, no export
    alone = bench_artifact(
        rows[("onnxruntime", "image", "int8")]["artifact"], patterns="image", data=data, **FAST
    )
    (row,) = alone["results"]
    assert row["precision"] == "int8"
    assert row["accuracy"] == pytest.approx(rows[("onnxruntime", "image", "int8")]["accuracy"])


def test_checkpoint_without_data_lists_int8_unavailable(toy: tuple[Path, Any, Path]) -> None:
    ckpt, _, cache = toy
    report = bench_checkpoint(
        ckpt, profile=PROFILE, backends=["onnxruntime"], patterns="image", cache_dir=cache, **FAST
    )
    assert [(r["precision"], "accuracy" in r) for r in report["results"]] == [("fp32", False)]
    assert report["unavailable"] == [
        {"backend": "onnxruntime", "precision": "int8", "reason": INT8_NEEDS_DATA}
    ]
    assert [k for k, _ in columns(report)][:3] == ["backend", "precision", "pattern"]
    assert "accuracy" not in dict(columns(report))


def test_data_that_is_not_the_models_is_refused(
    toy: tuple[Path, Any, Path], toy_dataset_factory: Any
) -> None:
    ckpt, data, cache = toy
    with pytest.raises(ContractError, match=r"lacks modality \['image'\].*--data"):
        bench_checkpoint(
            ckpt, profile=PROFILE, data=toy_dataset_factory(modalities=("audio",)), cache_dir=cache, **FAST
        )
    relabelled = type(data)(data.name, data.modalities, ("x", "y", "z", "w"), data.splits, data.meta)
    with pytest.raises(ContractError, match="are not this model's"):
        bench_checkpoint(ckpt, profile=PROFILE, data=relabelled, cache_dir=cache, **FAST)
    # the same names in another order are remapped
    reordered = type(data)(data.name, data.modalities, ("b", "a", "c", "d"), data.splits, data.meta)
    split = labelled_split(reordered, ("audio", "image"), ("a", "b", "c", "d"))
    original = data.split("test").labels
    assert ((split.labels == 1) == (original == 0)).all()


def test_side_by_side_orders_precisions_within_backend_and_pattern() -> None:
    rows = [
        {"backend": b, "pattern": p, "precision": q}
        for q in ("int8", "fp16", "fp32")
        for b in ("litert", "onnxruntime")
        for p in ("all", "audio")
    ]
    ordered = [(r["backend"], r["pattern"], r["precision"]) for r in side_by_side(rows)]
    assert ordered[:3] == [("litert", "all", p) for p in ("fp32", "fp16", "int8")]
    assert ordered[3:6] == [("litert", "audio", p) for p in ("fp32", "fp16", "int8")]


def test_cli_table_has_precision_and_no_rss_column(
    toy: tuple[Path, Any, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ckpt, _, cache = toy
    out = tmp_path / "b.json"
    args = ["bench", str(ckpt), "--profile", PROFILE, "--backend", "onnxruntime", "--patterns", "image"]
    args += ["--iters", "3", "--warmup", "0", "--no-rss", "--cache-dir", str(cache), "--json", str(out)]
    assert main(args) == 0
    text = capsys.readouterr().out
    header = next(line for line in text.splitlines() if "backend" in line and "pattern" in line)
    assert "precision" in header
    assert "RSS" not in text
    assert "accuracy" not in header
    assert "onnxruntime int8 not benchmarked: int8 needs calibration data: pass --data NAME" in " ".join(
        text.split()
    )
    data = json.loads(out.read_text())
    assert data["rss"] is False
    assert [r["precision"] for r in data["results"]] == ["fp32"]
    # --data applies to folders only; --fsdd only with --data
    model = Path(data["results"][0]["artifact"]) / "encoder_image.onnx"
    assert main(["bench", str(model), "--data", "synthetic"]) == 2
    assert "--data applies to artifact and checkpoint folders" in " ".join(capsys.readouterr().err.split())
    assert main(["bench", str(ckpt), "--fsdd", str(tmp_path), "--cache-dir", str(cache)]) == 2
    assert "--fsdd applies with --data av-digits" in " ".join(capsys.readouterr().err.split())
