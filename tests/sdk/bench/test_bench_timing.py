"""Timed blocks, spread, host load warnings and budget checks of ``edgefuse.bench``."""

from __future__ import annotations

import itertools
import tomllib

import pytest
from edgefuse.bench.artifact import ESTIMATE_MARGIN, budget_check
from edgefuse.bench.timing import CV_WARN, latency_figures, noise_warnings, time_blocks
from edgefuse.profiles import parse_profile


def test_time_blocks_counts_every_call_and_reports_spread() -> None:
    calls = itertools.count()
    out = time_blocks(lambda: next(calls), warmup=3, iters=23, blocks=5)
    assert next(calls) == 26  # 3 warm-up + 23 timed
    assert out["calls"] == 23
    assert len(out["times"]) == 23
    assert out["blocks"] == 5
    assert out["p50_ms"] <= out["p90_ms"] <= out["p99_ms"]
    assert out["iqr_ms"] >= 0
    assert out["cv"] is not None
    assert out["cv"] >= 0
    assert time_blocks(lambda: None, 0, 1)["cv"] is None  # one call: one block, no spread


def test_batch8_is_timed_with_as_many_calls_as_batch1() -> None:
    n1, n8 = itertools.count(), itertools.count()
    out = latency_figures(lambda: next(n1), lambda: next(n8), warmup=4, iters=40)
    assert next(n1) == 44
    assert next(n8) == 41  # warmup // 4 + the same 40 calls
    assert out["b8_calls"] == 40
    assert out["throughput_b8"] > 0
    assert latency_figures(lambda: None, None, 0, 5)["throughput_b8"] is None


def test_noise_warnings_name_the_noisy_rows_and_a_busy_host() -> None:
    rows = [
        {"backend": "onnxruntime", "pattern": "audio", "cv": CV_WARN * 3},
        {"backend": "onnxruntime", "pattern": "image", "cv": CV_WARN / 2},
    ]
    quiet = {"load_average": 0.5, "cpus": 2, "busy": False}
    (warning,) = noise_warnings(rows, quiet)
    assert "onnxruntime audio" in warning
    assert "image" not in warning
    assert "30%" in warning
    busy = {"load_average": 5.0, "cpus": 2, "busy": True}
    assert any("host busy" in w and "5.0 > 2" in w for w in noise_warnings(rows[1:], busy))
    assert noise_warnings(rows[1:], quiet) == []


BUDGETED = """
schema_version = 1
id = "test/budget"
name = "budget"
backends = ["litert"]
precisions = ["fp32"]
threads = 1
ram_mb = 1024
[[sensors]]
kind = "microphone"
[budgets]
latency_ms = 100.0
memory_mb = 64
[compute]
peak_gflops = { fp32 = 10.0 }
peak_gflops_source = "test"
memory_bandwidth_gbs = 1.0
memory_bandwidth_source = "test"
"""


@pytest.mark.parametrize(
    ("ms", "verdict"),
    [(10.0, "pass"), (50.0, "pass"), (60.0, "uncertain"), (199.0, "uncertain"), (201.0, "fail")],
)
def test_budget_verdict_uses_the_estimate_margin(ms: float, verdict: str) -> None:
    prof = parse_profile(tomllib.loads(BUDGETED), source="b.toml")
    out = budget_check(prof, {"ms": ms, "max_op_bytes": 1 << 20}, model_bytes=2 << 20)
    assert ESTIMATE_MARGIN == 2.0
    assert out["latency"] == verdict
    assert out["memory_mb"] == pytest.approx(3.0)
    assert out["memory"] == "pass"
    assert out["ok"] is (verdict != "fail")


def test_budget_memory_fails_and_missing_figures_give_none() -> None:
    prof = parse_profile(tomllib.loads(BUDGETED), source="b.toml")
    out = budget_check(prof, {"ms": 1.0, "max_op_bytes": 0}, model_bytes=200 << 20)
    assert out["memory"] == "fail"
    assert not out["ok"]
    none = budget_check(prof, {"ms": None}, model_bytes=1)
    assert none["latency"] is None
    assert none["memory"] is None
    assert none["ok"]


def test_model_bytes_reads_the_manifest_sizes_and_scales_precision() -> None:
    from types import SimpleNamespace

    from edgefuse.bench.artifact import model_bytes

    manifest = SimpleNamespace(
        data={
            "precision": "fp32",
            "files": [
                {"path": "encoder_audio.onnx", "size": 4000},
                {"path": "head.onnx", "size": 1000},
                {"path": "encoder_image.onnx", "size": 10**6},
            ],
            "graphs": {
                "encoder_audio": {"files": ["encoder_audio.onnx"]},
                "head": {"files": ["head.onnx"]},
                "encoder_image": {"files": ["encoder_image.onnx"]},
            },
        }
    )
    assert model_bytes(manifest, ["encoder_audio", "head"]) == 5000  # the image encoder is not counted
    assert model_bytes(manifest, ["encoder_audio", "head"], "int8") == 1250
