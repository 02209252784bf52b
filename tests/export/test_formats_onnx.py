"""ONNX exporter: the dynamo path, the legacy fallback (tested), unused inputs removed, checker, inspect."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from edgefuse.export.errors import ExportError, ExportValidationError  # noqa: E402
from edgefuse.export.formats.base import BatchPlan  # noqa: E402
from edgefuse.export.formats.onnx import OnnxExporter, _remove_unused_inputs  # noqa: E402
from edgefuse.export.graphs import GraphSpec, IOSpec, build_graphs  # noqa: E402
from edgefuse.models.contract import build_model  # noqa: E402
from edgefuse.models.reference import reference_architecture  # noqa: E402
from edgefuse.specs import ModalitySpec  # noqa: E402

SPECS = (ModalitySpec("audio", (1, 32, 61), preprocessing="logmel-v1"), ModalitySpec("image", (1, 8, 8)))


@pytest.fixture(scope="module")
def graphs():  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    model = build_model(reference_architecture(SPECS, 16), SPECS, ["a", "b", "c"]).eval()
    return build_graphs(model, ["audio", "image"], monolithic=False), build_graphs(
        model, ["audio", "image"], True
    )[0]


def _parity(exporter: OnnxExporter, graph: GraphSpec, folder) -> None:  # type: ignore[no-untyped-def]
    converted = exporter.convert(graph, folder, "fp32", BatchPlan())
    exporter.inspect(folder, converted, graph)
    run = exporter.load_runner(folder, converted, graph)
    for batch in (1, 7):
        example = graph.example(batch, seed=batch)
        with torch.no_grad():
            expected = graph.module(*example).numpy()
        got = run({spec.name: x.numpy() for spec, x in zip(graph.inputs, example, strict=True)})
        np.testing.assert_allclose(got[graph.outputs[0].name], expected, atol=1e-5, rtol=1e-5)
    return converted


@pytest.mark.backend("onnxruntime")
def test_legacy_exporter_is_a_working_fallback(graphs, tmp_path) -> None:  # type: ignore[no-untyped-def]
    split, mono = graphs
    for g in [*split, mono]:
        converted = _parity(OnnxExporter(exporter="legacy"), g, tmp_path)
        assert converted.details["exporter"] == "legacy"


@pytest.mark.backend("onnxruntime")
def test_dynamo_failure_falls_back_to_legacy(graphs, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    real = torch.onnx.export

    def dynamo_broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        if kwargs.get("dynamo"):
            raise RuntimeError("simulated torch.export failure")
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.onnx, "export", dynamo_broken)
    converted = _parity(OnnxExporter(), graphs[0][-1], tmp_path)
    assert converted.details["exporter"] == "legacy"


class _IgnoresSecond(torch.nn.Module):
    def forward(self, x, unused):  # type: ignore[no-untyped-def]
        return x * 2


@pytest.mark.parametrize(
    ("exporter", "removed"),
    [
        ("dynamo", ["unused"]),  # torch.export keeps the unused input: EdgeFuse removes it
        ("legacy", []),  # the TorchScript exporter drops it itself: nothing left to remove
    ],
)
def test_unused_inputs_are_removed(tmp_path, exporter: str, removed: list[str]) -> None:  # type: ignore[no-untyped-def]
    if exporter == "dynamo":
        pytest.importorskip("onnxscript")
    graph = GraphSpec(
        "g", "head", _IgnoresSecond(), (IOSpec("x", (3,)), IOSpec("unused", (2,))), (IOSpec("y", (3,)),)
    )
    converted = OnnxExporter(exporter=exporter).convert(graph, tmp_path, "fp32", BatchPlan())
    assert converted.details["exporter"] == exporter  # no fallback: each path is the one tested
    assert converted.details["removed_unused_inputs"] == removed
    model = onnx.load(str(tmp_path / converted.files[0]))
    assert [i.name for i in model.graph.input] == ["x"]
    assert _remove_unused_inputs(tmp_path / converted.files[0]) == []


def test_fp16_is_refused_with_the_reason(graphs, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ExportError, match="ONNX export writes fp32 graphs"):
        OnnxExporter().convert(graphs[0][-1], tmp_path, "fp16", BatchPlan())


def test_inspect_catches_a_spec_mismatch(graphs, tmp_path) -> None:  # type: ignore[no-untyped-def]
    head = graphs[0][-1]
    converted = OnnxExporter().convert(head, tmp_path, "fp32", BatchPlan())
    wrong = GraphSpec(head.name, head.role, head.module, (IOSpec("fused", (99,)),), head.outputs)
    with pytest.raises(ExportValidationError, match=r"input 'fused' is \[-1, 16\]"):
        OnnxExporter().inspect(tmp_path, converted, wrong)
    with pytest.raises(ExportError, match="ONNX exporter 'tracing'"):
        OnnxExporter(exporter="tracing")
