"""Core ML exporter: saved-spec inspection everywhere, the NaN-safe lowering, prediction on macOS."""

from __future__ import annotations

import dataclasses
import sys
import warnings

import numpy as np
import pytest

ct = pytest.importorskip("coremltools")
torch = pytest.importorskip("torch")

from edgefuse.errors import BackendUnavailableError  # noqa: E402
from edgefuse.export.errors import ExportError, ExportValidationError  # noqa: E402
from edgefuse.export.formats.base import BatchPlan, Converted  # noqa: E402
from edgefuse.export.formats.coreml import CoreMLExporter, _mil_operations, _nan_safe_lowering  # noqa: E402
from edgefuse.export.graphs import IOSpec, build_graphs  # noqa: E402
from edgefuse.models.contract import build_model  # noqa: E402
from edgefuse.models.reference import reference_architecture  # noqa: E402
from edgefuse.specs import ModalitySpec  # noqa: E402

SPECS = (ModalitySpec("audio", (1, 32, 61), preprocessing="logmel-v1"), ModalitySpec("image", (1, 8, 8)))
THREE = (*SPECS, ModalitySpec("imu", (1, 6, 32)))
PLAN = BatchPlan(min_batch=1, max_batch=64, fixed=(1, 8))


def _model(specs):  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    model = build_model(reference_architecture(specs, embed_dim=16), specs, [str(i) for i in range(10)])
    with torch.no_grad():
        model.fusion.norm.weight.uniform_(0.5, 1.5)
        model.fusion.norm.bias.uniform_(-0.5, 0.5)
        model.fusion.log_weights.copy_(torch.linspace(-0.5, 0.5, len(specs)))
    return model.eval()


@pytest.fixture(scope="module")
def split(tmp_path_factory):  # type: ignore[no-untyped-def]
    """Encoders and head of the reference model, converted fp32 and fp16."""
    exporter = CoreMLExporter()
    graphs = {g.name: g for g in build_graphs(_model(SPECS), ["audio", "image"], monolithic=False)}
    out = {}
    for precision in ("fp32", "fp16"):
        folder = tmp_path_factory.mktemp(f"coreml_{precision}")
        out[precision] = (
            folder,
            {n: exporter.convert(g, folder, precision, PLAN) for n, g in graphs.items()},
        )
    return exporter, graphs, out


@pytest.fixture(scope="module")
def mono(tmp_path_factory):  # type: ignore[no-untyped-def]
    exporter = CoreMLExporter()
    folder = tmp_path_factory.mktemp("coreml_mono")
    (graph,) = build_graphs(_model(THREE), ["audio", "image", "imu"], monolithic=True)
    return exporter, folder, graph, exporter.convert(graph, folder, "fp16", PLAN)


def _spec(folder, converted):  # type: ignore[no-untyped-def]
    return ct.models.MLModel(str(folder / converted.files[0]), skip_model_load=True).get_spec()


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_packages_with_ranged_batch_and_names(split, precision: str) -> None:  # type: ignore[no-untyped-def]
    exporter, graphs, out = split
    folder, converted = out[precision]
    for name, graph in graphs.items():
        c = converted[name]
        assert c.files == [f"{name}.mlpackage"]
        assert (folder / c.files[0]).is_dir()
        assert c.batch == {"dynamic": True, "min": 1, "max": 64}
        spec = _spec(folder, c)
        (inp,) = spec.description.input
        assert inp.name == graph.inputs[0].name
        ranges = [(r.lowerBound, r.upperBound) for r in inp.type.multiArrayType.shapeRange.sizeRanges]
        assert ranges == [(1, 64), *((d, d) for d in graph.inputs[0].shape)]
        assert [o.name for o in spec.description.output] == [graph.outputs[0].name]
        info = exporter.inspect(folder, c, graph)
        assert info["batch_range"] == [1, 64]
        assert "linear" in info["ops"]
        # fp16: every float weight is FLOAT16 (and the I/O stays float32); fp32: none is.
        assert set(info["weights"]) == {"FLOAT16" if precision == "fp16" else "FLOAT32"}
    assert "conv" in exporter.inspect(folder, converted["encoder_audio"], graphs["encoder_audio"])["ops"]


def test_fp16_ops_compute_in_fp16(split) -> None:  # type: ignore[no-untyped-def]
    _, _, out = split
    folder, converted = out["fp16"]
    ops = _mil_operations("head", _spec(folder, converted["head"]))
    linear_types = {
        ct.proto.MIL_pb2.DataType.Name(t.dataType)
        for op in ops
        if op["type"] == "linear"
        for t in op["types"]
    }
    assert linear_types == {"FLOAT16"}
    assert any(op["type"] == "cast" for op in ops)  # float32 input -> fp16 compute -> float32 output


def test_inspect_catches_mismatches(split) -> None:  # type: ignore[no-untyped-def]
    exporter, graphs, out = split
    folder, converted = out["fp32"]
    image = graphs["encoder_image"]
    c = converted["encoder_image"]
    renamed = dataclasses.replace(image, inputs=(IOSpec("camera", image.inputs[0].shape),))
    with pytest.raises(ExportValidationError, match="camera"):
        exporter.inspect(folder, c, renamed)
    reshaped = dataclasses.replace(image, inputs=(IOSpec("image", (3, 8, 8)),))
    with pytest.raises(ExportValidationError, match="image"):
        exporter.inspect(folder, c, reshaped)
    with pytest.raises(ExportValidationError, match=r"\(1, 32\)"):
        exporter.inspect(folder, Converted(c.files, {"dynamic": True, "min": 1, "max": 32}, c.details), image)
    with pytest.raises(ExportValidationError, match="fp16 was asked"):
        exporter.inspect(folder, Converted(c.files, c.batch, {**c.details, "precision": "fp16"}), image)
    wrong_out = dataclasses.replace(image, outputs=(IOSpec("features", image.outputs[0].shape),))
    with pytest.raises(ExportValidationError, match="features"):
        exporter.inspect(folder, c, wrong_out)


def test_monolithic_presence_is_float_and_lowering_is_nan_safe(mono) -> None:  # type: ignore[no-untyped-def]
    exporter, folder, graph, converted = mono
    assert converted.details["bool_inputs_as_float32"] == ["presence"]
    assert len(converted.details["lowering_fixes"]) == 2
    info = exporter.inspect(folder, converted, graph)  # includes the sub(x, x) check
    assert "select" in info["ops"]
    assert set(info["weights"]) == {"FLOAT16"}
    spec = _spec(folder, converted)
    presence = next(i for i in spec.description.input if i.name == "presence")
    ranges = [(r.lowerBound, r.upperBound) for r in presence.type.multiArrayType.shapeRange.sizeRanges]
    assert ranges == [(1, 64), (3, 3)]
    ops = _mil_operations("model", spec)
    assert not any(op["type"] == "sub" and op["inputs"]["x"] == op["inputs"]["y"] for op in ops)


def test_lowering_fixes_are_scoped_to_one_conversion() -> None:
    from coremltools.converters.mil.frontend.torch.torch_op_registry import _TORCH_OPS_REGISTRY

    before = {n: _TORCH_OPS_REGISTRY.get_func(n) for n in ("zeros_like", "where", "where.self")}
    with _nan_safe_lowering():
        assert _TORCH_OPS_REGISTRY.get_func("zeros_like") is not before["zeros_like"]
    assert {n: _TORCH_OPS_REGISTRY.get_func(n) for n in before} == before


def test_inspect_rejects_x_minus_x(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A package computing ``x - x`` (NaN for NaN x) is refused: that is how zeros_like used to leak."""

    class Leaky(torch.nn.Module):
        def forward(self, x):  # type: ignore[no-untyped-def]
            return x - x + 1.0

    exporter = CoreMLExporter()
    spec_in = IOSpec("x", (4,))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit.trace is deprecated in torch 2.13
        traced = torch.jit.trace(Leaky().eval(), (torch.randn(2, 4),))
    dim = ct.RangeDim(1, 8, 1)
    model = ct.convert(
        traced,
        convert_to="mlprogram",
        inputs=[ct.TensorType(name="x", shape=ct.Shape((dim, 4)), dtype=np.float32)],
        outputs=[ct.TensorType(name="y", dtype=np.float32)],
        minimum_deployment_target=ct.target.iOS16,
    )
    model.save(str(tmp_path / "leaky.mlpackage"))
    from edgefuse.export.graphs import GraphSpec

    graph = GraphSpec("leaky", "head", Leaky(), (spec_in,), (IOSpec("y", (4,)),))
    converted = Converted(["leaky.mlpackage"], {"dynamic": True, "min": 1, "max": 8}, {"precision": "fp32"})
    with pytest.raises(ExportValidationError, match="x - x"):
        exporter.inspect(tmp_path, converted, graph)


def test_rejects_bad_precision_and_batch_range(split, tmp_path) -> None:  # type: ignore[no-untyped-def]
    exporter, graphs, _ = split
    with pytest.raises(ExportError, match="int8"):
        exporter.convert(graphs["head"], tmp_path, "int8", PLAN)
    with pytest.raises(ExportError, match="min_batch <= max_batch"):
        exporter.convert(graphs["head"], tmp_path, "fp32", BatchPlan(min_batch=8, max_batch=4))


@pytest.mark.skipif(sys.platform == "darwin", reason="Core ML prediction works on macOS")
def test_runner_unavailable_off_macos(split) -> None:  # type: ignore[no-untyped-def]
    exporter, graphs, out = split
    reason = exporter.runner_unavailable_reason()
    assert reason is not None
    assert "macOS" in reason
    assert "saved spec" in reason
    folder, converted = out["fp32"]
    with pytest.raises(BackendUnavailableError, match="macOS"):
        exporter.load_runner(folder, converted["head"], graphs["head"])


def _feeds(graph, batch: int, seed: int) -> dict[str, np.ndarray]:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    return {
        s.name: rng.random((batch, *s.shape)) < 0.5
        if s.dtype == "bool"
        else rng.standard_normal((batch, *s.shape)).astype(np.float32)
        for s in graph.inputs
    }


def _torch(graph, feeds) -> np.ndarray:  # type: ignore[no-untyped-def]
    with torch.no_grad():
        return graph.module(*[torch.from_numpy(feeds[s.name]) for s in graph.inputs]).numpy()


@pytest.mark.macos
@pytest.mark.backend("coreml")
def test_prediction_matches_torch_on_macos(split, mono) -> None:  # type: ignore[no-untyped-def]
    exporter, graphs, out = split
    folder, converted = out["fp32"]
    for name, graph in graphs.items():
        run = exporter.load_runner(folder, converted[name], graph)
        for batch in (1, 7):
            feeds = _feeds(graph, batch, seed=batch)
            got = run(feeds)[graph.outputs[0].name]
            assert np.abs(got - _torch(graph, feeds)).max() <= 1e-3
    # Monolithic (fp16): NaN in an absent input stays out, and the result follows PyTorch.
    exporter, folder, graph, c = mono
    run = exporter.load_runner(folder, c, graph)
    clean = _feeds(graph, 7, seed=5)
    clean["image"] = np.zeros_like(clean["image"])
    clean["presence"] = np.array([[True, False, True]] * 7)
    nan_out = run({**clean, "image": np.full_like(clean["image"], np.nan)})["logits"]
    assert np.isfinite(nan_out).all()
    np.testing.assert_array_equal(nan_out, run(clean)["logits"])
    assert np.abs(nan_out - _torch(graph, clean)).max() <= 5e-2
