"""``edgefuse.bench`` and ``edgefuse bench``: every figure for every pattern, estimates, FLOP counting."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from edgefuse.bench import (
    DEFINITIONS,
    bench_artifact,
    bench_checkpoint,
    count_onnx,
    render_markdown,
    roofline_estimate,
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
    assert "ONNX export" in row["estimate"]["note"]
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


def _small_graph(path: Path) -> tuple[int, int]:
    """Conv(3->8, 3x3, pad 1, groups 1) on 1x3x10x10 -> Relu -> Flatten -> Gemm(800->5). FLOPs by hand."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "w")
    g = numpy_helper.from_array(rng.standard_normal((800, 5)).astype(np.float32), "g")
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Flatten", ["r"], ["f"]),
        helper.make_node("Gemm", ["f", "g"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "small",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 10, 10])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5])],
        [w, g],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.save(model, str(path))
    conv = 2 * 8 * 3 * 3 * 3 * 10 * 10  # 2 * Cout * Cin/groups * kh * kw * Hout * Wout
    gemm = 2 * 1 * 5 * 800  # 2 * M * N * K
    relu = flatten = 800  # one per output element
    return conv + relu + flatten + gemm, conv


def test_count_onnx_matches_hand_count(tmp_path: Path) -> None:
    path = tmp_path / "small.onnx"
    expected, _ = _small_graph(path)
    cost = count_onnx(path)
    assert cost.flops == expected
    assert cost.unknown_ops == ()
    weights = (8 * 3 * 3 * 3 + 800 * 5) * 4
    activations = (300 + 800 + 800 + 800 + 5) * 4
    assert cost.bytes == weights + activations
    assert count_onnx(path, batch=4).flops == 4 * expected


def test_roofline_is_labelled_estimate() -> None:
    est = roofline_estimate(2e9, 1e9, peak_gflops=100.0, bandwidth_gbs=10.0)
    assert est["kind"] == "estimate"
    assert est["ms"] == pytest.approx(100.0)  # memory: 1e9 B / 10 GB/s = 0.1 s
    assert est["bound"] == "memory"
    assert roofline_estimate(1, 1, None, None)["ms"] is None
