"""Roofline estimates: operation counts (ONNX graphs, torch modules) and the estimate's terms."""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pytest
from edgefuse.errors import ContractError
from edgefuse.profiles import get_profile, parse_profile
from edgefuse.roofline import (
    CALL_OVERHEAD_MS,
    EFFICIENCY,
    GraphCost,
    count_onnx,
    count_torch,
    estimate_ops,
)

PROFILE = """
schema_version = 1
id = "test/roof"
name = "roof"
backends = ["onnxruntime", "tensorrt"]
precisions = ["fp32"]
threads = 1
ram_mb = 1024
[[sensors]]
kind = "camera"
[compute]
peak_gflops = { fp32 = 100.0 }
peak_gflops_source = "test"
memory_bandwidth_gbs = 10.0
memory_bandwidth_source = "test"
"""


def _profile(extra: str = ""):  # type: ignore[no-untyped-def]
    return parse_profile(tomllib.loads(PROFILE + extra), source="test.toml")  # extra: in [compute]


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


def test_count_torch_matches_hand_count_and_skips_views() -> None:
    torch = pytest.importorskip("torch")
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(800, 5)
    ).eval()
    cost = count_torch(model, [torch.zeros(1, 3, 10, 10)])
    conv = 2 * 8 * 3 * 3 * 3 * 10 * 10
    gemm = 2 * 5 * 800
    relu = 800
    assert cost.flops == conv + relu + gemm  # Flatten and the Linear's transpose are views: not counted
    bn = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8)).eval()
    assert count_torch(bn, [torch.zeros(1, 3, 10, 10)]).ops[1][1] == 0  # inference BatchNorm: folded
    assert len(cost.ops) == 3
    conv_bytes = (300 + 8 * 27 + 8 + 800) * 4  # input + weight + bias read, output written
    assert cost.ops[0] == (conv, conv_bytes)
    assert cost.ops[1] == (relu, 0)  # element-wise: fused into the conv by every runtime, no memory pass
    assert GraphCost.from_dict(cost.to_dict()).ops == cost.ops


def test_estimate_is_per_operation_roofline_with_efficiency_and_overhead() -> None:
    prof = _profile()
    # one compute-bound op (1 GFLOP, 1 MB) and one memory-bound op (1 MFLOP, 100 MB)
    cost = GraphCost(10**9 + 10**6, 101 * 10**6, (), ((10**9, 10**6), (10**6, 100 * 10**6)))
    est = estimate_ops(cost, prof, "fp32", "onnxruntime", calls=3)
    eff = EFFICIENCY["cpu"]["*"].value
    compute_ms = 1e9 / (100e9 * eff) * 1e3
    memory_ms = 100e6 / 10e9 * 1e3
    overhead = 3 * CALL_OVERHEAD_MS["cpu"].value
    assert est["kind"] == "estimate"
    assert est["compute_ms"] == pytest.approx(compute_ms)
    assert est["memory_ms"] == pytest.approx(memory_ms)
    assert est["ms"] == pytest.approx(compute_ms + memory_ms + overhead)
    assert est["bound"] == "compute"
    assert est["backend_class"] == "cpu"
    assert "Pixel 4" in est["efficiency_source"]
    # a whole-graph roofline would say max(compute, memory): the per-operation sum is larger
    assert est["ms"] > max(compute_ms, memory_ms)
    # TensorRT is a gpu-class backend with its own factor and overhead
    gpu = estimate_ops(cost, prof, "fp32", "tensorrt", calls=1)
    assert gpu["backend_class"] == "gpu"
    assert gpu["efficiency"] == EFFICIENCY["gpu"]["*"].value
    # int8 bytes are a quarter of fp32's; without a peak at int8 only the memory time is estimated
    est8 = estimate_ops(cost, prof, "int8")
    assert est8["bytes"] == cost.bytes // 4
    assert "no peak compute for int8" in est8["note"]
    assert est8["ms"] == pytest.approx(est8["memory_ms"] + CALL_OVERHEAD_MS["cpu"].value)


def test_profile_overrides_efficiency_and_overhead_with_sources() -> None:
    prof = _profile(
        'efficiency = { cpu = 0.5 }\nefficiency_source = "measured on the device"\n'
        'call_overhead_ms = { onnxruntime = 1.0 }\ncall_overhead_source = "measured too"\n'
    )
    est = estimate_ops(GraphCost(10**9, 0, (), ((10**9, 0),)), prof, "fp32", "onnxruntime", calls=2)
    assert est["efficiency"] == 0.5
    assert est["efficiency_source"] == "measured on the device"
    assert est["ms"] == pytest.approx(1e9 / 50e9 * 1e3 + 2.0)
    assert est["call_overhead_source"] == "measured too"


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        ("efficiency = { cpu = 0.5 }\n", "efficiency_source"),
        ('efficiency = { cpu = 1.5 }\nefficiency_source = "x"\n', "must be <= 1"),
        ('efficiency = { tpu = 0.5 }\nefficiency_source = "x"\n', "backend class"),
        ('call_overhead_ms = { onnx = 0.1 }\ncall_overhead_source = "x"\n', "onnxruntime"),
        ('call_overhead_ms = { litert = -1 }\ncall_overhead_source = "x"\n', "call_overhead_ms.litert"),
    ],
)
def test_profile_rejects_bad_efficiency_and_overhead(extra: str, match: str) -> None:
    from edgefuse.errors import ProfileError

    with pytest.raises(ProfileError, match=match):
        _profile(extra)


def test_malformed_cost_record_is_a_typed_error() -> None:
    with pytest.raises(ContractError, match="malformed cost"):
        GraphCost.from_dict({"flops": "many"})
    with pytest.raises(ContractError, match="negative"):
        GraphCost.from_dict({"flops": 1, "bytes": 1, "ops": [[-1, 0]]})


def test_builtin_profiles_estimate_without_overrides() -> None:
    est = estimate_ops(GraphCost(10**9, 10**6), get_profile("generic/smart-speaker"), "int8", "litert")
    assert est["efficiency"] == EFFICIENCY["cpu"]["int8"].value
    assert est["ms"] > 0


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
