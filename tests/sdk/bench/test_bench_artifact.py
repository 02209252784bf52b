"""``edgefuse.bench`` and ``edgefuse bench``: every figure for every pattern, estimates, FLOP counting."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from edgefuse.bench import (
    DEFINITIONS,
    bench_artifact,
    bench_checkpoint,
    render_markdown,
)
from edgefuse.cli import main
from edgefuse.errors import ContractError

FIGURES = (
    "size_bytes",
    "load_ms",
    "first_ms",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "mean_ms",
    "iqr_ms",
    "cv",
    "throughput_b1",
    "throughput_b8",
    "peak_rss_mb",
    "estimate",
)


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small split ONNX artifact (audio + image) for generic/x86-64."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from edgefuse.checkpoint import save_checkpoint
    from edgefuse.export import export
    from edgefuse.models.contract import build_model
    from edgefuse.models.reference import reference_architecture
    from edgefuse.specs import ModalitySpec

    specs = (
        ModalitySpec("audio", (1, 32, 61), preprocessing="logmel-v1"),
        ModalitySpec("image", (1, 8, 8)),
    )
    torch.manual_seed(0)
    model = build_model(reference_architecture(specs, 16), specs, [str(i) for i in range(10)])
    root = tmp_path_factory.mktemp("bench")
    ckpt = save_checkpoint(model.eval(), root / "ckpt")
    export(ckpt, "generic/x86-64", "onnx", root / "art")
    return root / "art"


def test_cli_bench_json_has_every_figure_for_every_pattern(artifact: Path, tmp_path: Path) -> None:
    out = tmp_path / "b.json"
    report_dir = tmp_path / "report"
    code = main(
        [
            "bench",
            str(artifact),
            "--iters",
            "20",
            "--warmup",
            "2",
            "--json",
            str(out),
            "--report",
            str(report_dir),
        ]
    )
    assert code == 0
    data = json.loads(out.read_text())
    assert {r["pattern"] for r in data["results"]} == {"audio+image", "audio", "image"}
    for row in data["results"]:
        for key in FIGURES:
            assert row[key] is not None, (row["pattern"], key)
        assert row["backend"] == "onnxruntime"
        assert row["rss_scope"] == "fresh subprocess"
        assert row["estimate"]["kind"] == "estimate"
        assert row["estimate"]["ms"] > 0
        assert row["estimate"]["flops"] > 0
        assert row["p50_ms"] <= row["p99_ms"]
        assert row["blocks"] == 5
        assert row["b8_calls"] == 20
        # the operations were counted at export and recorded in the manifest: no ONNX recount
        assert row["estimate"]["calls"] == len(row["pattern"].split("+")) + 1
        assert row["estimate"]["efficiency_source"]
        assert row["estimate"]["call_overhead_source"]
        assert row["budget"]["latency"] is None  # generic/x86-64 has no budgets
    assert isinstance(data["warnings"], list)
    assert "load_average" in data["host"]
    by = {r["pattern"]: r for r in data["results"]}
    assert by["image"]["estimate"]["flops"] < by["audio+image"]["estimate"]["flops"]
    assert set(data["definitions"]) == set(DEFINITIONS)
    assert (report_dir / "latency.png").stat().st_size > 0
    markdown = (report_dir / "bench.md").read_text()
    assert "estimate" in markdown
    assert "## Definitions" in markdown
    assert markdown.count("| onnxruntime |") == 3


def test_cli_bench_checkpoint_runs_torch_and_the_profiles_backends(artifact: Path, tmp_path: Path) -> None:
    ckpt = artifact.parent / "ckpt"
    out = tmp_path / "b.json"
    args = ["bench", str(ckpt), "--profile", "generic/x86-64", "--iters", "5", "--warmup", "1", "--no-rss"]
    args += [
        "--backend",
        "torch,onnxruntime,tensorrt",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--json",
        str(out),
    ]
    assert main(args) == 0
    data = json.loads(out.read_text())
    assert data["kind"] == "checkpoint"
    rows = {(r["backend"], r["pattern"]): r for r in data["results"]}
    patterns = ("audio+image", "audio", "image")
    assert set(rows) == {(b, p) for b in ("torch", "onnxruntime") for p in patterns}
    for (backend, pattern), row in rows.items():
        assert row["format"] == ("checkpoint" if backend == "torch" else "onnx")
        assert row["p50_ms"] > 0
        assert row["throughput_b8"] > 0
        # the estimate describes the model on the target, counted from the ONNX export, for every row
        assert row["estimate"]["ms"] == rows[("onnxruntime", pattern)]["estimate"]["ms"] > 0
    # tensorrt cannot run here; the profile's int8 needs calibration data (--data), not given
    assert [(u["backend"], u.get("precision")) for u in data["unavailable"]] == [
        ("onnxruntime", "int8"),
        ("tensorrt", None),
    ]
    assert "--data" in data["unavailable"][0]["reason"]
    assert "tensorrt" in data["unavailable"][1]["reason"]
    assert {r["precision"] for r in data["results"]} == {"fp32"}
    # the export is cached by checkpoint sha256 and profile, and reused while the checkpoint is unchanged
    manifest = Path(rows[("onnxruntime", "audio")]["artifact"]) / "manifest.json"
    assert manifest.is_relative_to(tmp_path / "cache")
    before = manifest.stat().st_mtime_ns
    report = bench_checkpoint(
        ckpt,
        profile="generic/x86-64",
        patterns="audio",
        iters=2,
        warmup=0,
        rss=False,
        cache_dir=tmp_path / "cache",
    )
    assert manifest.stat().st_mtime_ns == before
    assert {r["backend"] for r in report["results"]} == {"torch", "onnxruntime"}
    # without an ONNX backend in the list, an ONNX export is made (cached) only to count FLOPs
    report = bench_checkpoint(
        ckpt,
        profile="google/pixel-8",
        backends=["torch"],
        patterns="image",
        iters=2,
        warmup=0,
        rss=False,
        cache_dir=tmp_path / "cache",
    )
    (row,) = report["results"]
    assert row["estimate"]["ms"] > 0
    assert "same checkpoint" in row["estimate"]["note"]
    with pytest.raises(ContractError, match="unknown backend 'onnx'"):
        bench_checkpoint(ckpt, backends=["onnx"], iters=2, rss=False, cache_dir=tmp_path / "cache")


def test_bench_patterns_and_errors(artifact: Path) -> None:
    report = bench_artifact(artifact, patterns="all,image", iters=3, warmup=0, rss=False)
    assert [r["pattern"] for r in report["results"]] == ["audio+image", "image"]
    assert report["results"][0]["rss_scope"] == "process peak"
    assert "| onnxruntime | fp32 | image |" in render_markdown(report)
    with pytest.raises(ContractError, match=r"unknown modality .imgae.*image"):
        bench_artifact(artifact, patterns="imgae", iters=3, rss=False)
    with pytest.raises(ContractError, match="iters"):
        bench_artifact(artifact, iters=0, rss=False)


def test_cli_bench_plain_onnx_file(artifact: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.json"
    code = main(
        [
            "bench",
            str(artifact / "encoder_image.onnx"),
            "--iters",
            "20",
            "--json",
            str(out),
            "--profile",
            "generic/x86-64",
        ]
    )
    assert code == 0
    data = json.loads(out.read_text())
    (row,) = data["results"]
    assert data["kind"] == "model"
    assert row["pattern"] == "-"
    for key in FIGURES:
        assert row[key] is not None, key
    assert row["estimate"]["kind"] == "estimate"
    assert row["estimate"]["ms"] > 0


def test_cli_bench_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", str(tmp_path / "missing")]) == 2
    assert "does not exist" in _err(capsys)
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"x")
    assert main(["bench", str(bad)]) == 2
    assert "unsupported model file" in _err(capsys)


def _err(capsys: pytest.CaptureFixture[str]) -> str:
    """Captured stderr with rich's line wrapping undone."""
    return " ".join(capsys.readouterr().err.split())
