"""Core ML export of a user's own model (issue #12) and isolation of failed conversions.

The user model (``examples/byom_modules.py``) has a ``TransformerEncoderLayer`` (fused fast path,
numpy-2 scalar folding), ``AdaptiveAvgPool1d(1)`` (a constant with the ranged batch) and
``AdaptiveAvgPool2d(1)``. A conversion that fails must name the graph and the torch op, and leave no
state behind (the ``batch`` symbol, the op registry, the MHA fast-path flag).
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

ct = pytest.importorskip("coremltools")
torch = pytest.importorskip("torch")

from coremltools.converters.mil.frontend.torch.torch_op_registry import _TORCH_OPS_REGISTRY  # noqa: E402
from coremltools.converters.mil.mil.types.symbolic import k_used_symbols  # noqa: E402
from edgefuse.export.errors import ExportError  # noqa: E402
from edgefuse.export.formats.base import BatchPlan  # noqa: E402
from edgefuse.export.formats.coreml import CoreMLExporter, _compat_lowering  # noqa: E402
from edgefuse.export.graphs import GraphSpec, IOSpec, build_graphs  # noqa: E402
from edgefuse.models.contract import build_model  # noqa: E402
from edgefuse.models.reference import reference_architecture  # noqa: E402
from edgefuse.specs import ModalitySpec  # noqa: E402
from torch import nn  # noqa: E402

pytestmark = pytest.mark.backend("coreml")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PLAN = BatchPlan(min_batch=1, max_batch=64, fixed=(1, 8))


class _Lgamma(nn.Module):
    def forward(self, x):  # type: ignore[no-untyped-def]
        return torch.lgamma(x.abs() + 1.0)


class _Unconvertible(nn.Module):
    """A linear layer, then ``lgamma``: an op coremltools 9 has no conversion for."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(4, 4)
        self.gamma = _Lgamma()

    def forward(self, x):  # type: ignore[no-untyped-def]
        return self.gamma(self.proj(x))


def _bad_graph() -> GraphSpec:
    return GraphSpec(
        "encoder_bad",
        "encoder:bad",
        _Unconvertible().eval(),
        (IOSpec("x", (4,)),),
        (IOSpec("embedding", (4,)),),
    )


def _reference_encoder() -> GraphSpec:
    specs = (ModalitySpec("image", (1, 8, 8)),)
    torch.manual_seed(0)
    model = build_model(reference_architecture(specs, embed_dim=16), specs, ["a", "b"]).eval()
    return build_graphs(model, ["image"], monolithic=False)[0]


def _state() -> tuple[bool, dict]:
    return torch.backends.mha.get_fastpath_enabled(), dict(_TORCH_OPS_REGISTRY.name_to_func_mapping)


@pytest.fixture(scope="module")
def byom_graphs():  # type: ignore[no-untyped-def]
    sys.path.insert(0, str(EXAMPLES))
    try:
        import byom_modules
    finally:
        sys.path.remove(str(EXAMPLES))
    torch.manual_seed(0)
    model = byom_modules.build().eval()
    return {g.name: g for g in build_graphs(model, model.modality_names, monolithic=False)}


@pytest.mark.parametrize("name", ["encoder_image", "encoder_audio", "encoder_imu", "head"])
def test_user_model_graphs_convert_and_inspect(byom_graphs, name: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    exporter = CoreMLExporter()
    graph = byom_graphs[name]
    before = _state()
    converted = exporter.convert(graph, tmp_path, "fp32", PLAN)
    assert _state() == before
    assert converted.batch == {"dynamic": True, "min": 1, "max": 64}
    info = exporter.inspect(tmp_path, converted, graph)
    assert info["batch_range"] == [1, 64]
    fixes = converted.details["lowering_fixes"]
    if name == "encoder_audio":  # the composable attention ops, not the fused fast path
        assert {"softmax", "layer_norm", "matmul"} <= set(info["ops"])
        assert any(f.startswith("int:") for f in fixes)
    if name in ("encoder_image", "encoder_imu"):  # global pooling is a reduction, free of the batch
        assert "reduce_mean" in info["ops"]
        assert "slice_by_index" not in info["ops"]
    if name == "encoder_imu":
        assert any(f.startswith("adaptive_avg_pool1d(1)") for f in fixes)


def test_adaptive_pooling_to_one_survives_a_ranged_batch(tmp_path) -> None:  # type: ignore[no-untyped-def]
    class Pools(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.avg1, self.max1, self.avg2 = (
                nn.AdaptiveAvgPool1d(1),
                nn.AdaptiveMaxPool1d(1),
                nn.AdaptiveAvgPool2d(1),
            )

        def forward(self, x):  # type: ignore[no-untyped-def]
            flat = x.flatten(2)
            return torch.cat([self.avg1(flat), self.max1(flat), self.avg2(x).flatten(2)], dim=2).flatten(1)

    graph = GraphSpec("pools", "head", Pools().eval(), (IOSpec("x", (3, 4, 5)),), (IOSpec("y", (9,)),))
    exporter = CoreMLExporter()
    converted = exporter.convert(graph, tmp_path, "fp32", PLAN)
    info = exporter.inspect(tmp_path, converted, graph)
    assert {"reduce_mean", "reduce_max"} <= set(info["ops"])
    assert "slice_by_index" not in info["ops"]


def test_failed_conversion_is_typed_and_the_next_one_succeeds(tmp_path) -> None:  # type: ignore[no-untyped-def]
    exporter = CoreMLExporter()
    before = _state()
    with pytest.raises(ExportError, match="'encoder_bad'") as raised:
        exporter.convert(_bad_graph(), tmp_path, "fp32", PLAN)
    message = str(raised.value)
    assert "'lgamma'" in message
    assert "gamma (_Lgamma)" in message  # the layer: module path in the graph and its class
    assert "Hint:" in message
    assert _state() == before
    assert "batch" not in k_used_symbols
    graph = _reference_encoder()
    converted = exporter.convert(graph, tmp_path, "fp32", PLAN)
    assert exporter.inspect(tmp_path, converted, graph)["batch_range"] == [1, 64]


def test_state_leaked_by_an_outside_failed_conversion_is_cleared(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """coremltools keeps ``batch`` registered after any failed ``ct.convert``; EdgeFuse's next one still works."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(_Unconvertible().eval(), (torch.randn(2, 4),))
    dim = ct.RangeDim(1, 8, 1, symbol="batch")
    with pytest.raises(NotImplementedError, match="lgamma"):
        ct.convert(
            traced,
            convert_to="mlprogram",
            inputs=[ct.TensorType(name="x", shape=ct.Shape((dim, 4)), dtype=np.float32)],
            minimum_deployment_target=ct.target.iOS16,
        )
    # coremltools 9 keeps "batch" in k_used_symbols here (released only after a successful conversion)
    graph = _reference_encoder()
    exporter = CoreMLExporter()
    converted = exporter.convert(graph, tmp_path, "fp32", PLAN)
    assert exporter.inspect(tmp_path, converted, graph)["batch_range"] == [1, 64]
    assert "batch" not in k_used_symbols


@pytest.mark.parametrize("fastpath", [True, False])
def test_fastpath_and_registry_restored_on_success_and_failure(byom_graphs, tmp_path, fastpath: bool) -> None:  # type: ignore[no-untyped-def]
    original = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(fastpath)
    try:
        before = _state()
        exporter = CoreMLExporter()
        exporter.convert(byom_graphs["head"], tmp_path, "fp32", PLAN)
        assert _state() == before
        with pytest.raises(ExportError):
            exporter.convert(_bad_graph(), tmp_path, "fp32", PLAN)
        assert _state() == before
        assert torch.backends.mha.get_fastpath_enabled() is fastpath
    finally:
        torch.backends.mha.set_fastpath_enabled(original)


def test_compat_lowering_is_scoped() -> None:
    names = ("int", "_int", "bool", "_bool", "adaptive_avg_pool1d", "adaptive_max_pool1d")
    before = {n: _TORCH_OPS_REGISTRY.get_func(n) for n in names}
    with _compat_lowering():
        assert all(_TORCH_OPS_REGISTRY.get_func(n) is not before[n] for n in names)
    assert {n: _TORCH_OPS_REGISTRY.get_func(n) for n in names} == before
