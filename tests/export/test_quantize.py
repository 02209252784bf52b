"""int8 post-training quantization: options, SQNR, the ONNX QDQ quantizer and each format's quantize()."""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxscript")

from edgefuse.export.calibration import build_calibration  # noqa: E402
from edgefuse.export.errors import ExportError, QuantizationError  # noqa: E402
from edgefuse.export.formats.base import BatchPlan, Converted, FormatExporter  # noqa: E402
from edgefuse.export.formats.onnx import OnnxExporter  # noqa: E402
from edgefuse.export.graphs import GraphSpec, IOSpec, build_graphs  # noqa: E402
from edgefuse.export.quantize import METHODS, QuantOptions, quantize_onnx, sqnr_db  # noqa: E402
from edgefuse.models.contract import build_model  # noqa: E402
from edgefuse.models.reference import reference_architecture  # noqa: E402

PLAN = BatchPlan(min_batch=1, max_batch=64, fixed=(1, 8))
MODALITIES = ("audio", "imu")
PATTERNS = [("audio", "imu"), ("audio",), ("imu",)]


def _ort(path, feeds):  # type: ignore[no-untyped-def]
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)[0]


# ---- options and SQNR ---------------------------------------------------------------------------------


def test_options_defaults_and_validation() -> None:
    options = QuantOptions()
    assert options.to_dict() == {"method": "minmax", "per_channel": True, "samples": 256, "seed": 0}
    with pytest.raises(QuantizationError) as info:
        QuantOptions(method="entropic")
    message = str(info.value)
    assert "'entropic'" in message
    assert all(m in message for m in METHODS)
    assert "did you mean 'entropy'" in message
    assert isinstance(info.value, ExportError)
    assert isinstance(info.value, ValueError)
    with pytest.raises(QuantizationError, match=r"--calibration-samples must be an integer >= 16; got 8"):
        QuantOptions(samples=8)
    with pytest.raises(QuantizationError, match="per_channel"):
        QuantOptions(per_channel="yes")  # type: ignore[arg-type]
    with pytest.raises(QuantizationError, match="seed"):
        QuantOptions(seed=-1)


def test_sqnr_db() -> None:
    ref = np.array([1.0, -1.0], dtype=np.float32)
    assert sqnr_db(ref, ref) == math.inf
    assert sqnr_db(ref, np.array([1.1, -0.9])) == pytest.approx(20.0)  # 2 / 0.02 = 100
    assert sqnr_db(np.zeros(2), np.ones(2)) == -math.inf
    with pytest.raises(QuantizationError, match="NaN/inf"):
        sqnr_db(ref, np.array([np.nan, 1.0]))
    with pytest.raises(QuantizationError, match="one shape"):
        sqnr_db(ref, np.ones(3))
    with pytest.raises(QuantizationError, match="empty"):
        sqnr_db(np.zeros(0), np.zeros(0))


# ---- quantize_onnx on a weights-dominated graph ------------------------------------------------------


class _Dense(torch.nn.Module):
    """Conv + three linear layers: ~90k weights, so the file size is the weights'."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 16, 3, padding=1)
        self.mlp = torch.nn.Sequential(
            torch.nn.Linear(16, 256),
            torch.nn.ReLU(),
            torch.nn.Linear(256, 256),
            torch.nn.ReLU(),
            torch.nn.Linear(256, 64),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(torch.relu(self.conv(x)).mean(dim=(2, 3)))


@pytest.fixture(scope="module")
def dense(tmp_path_factory):  # type: ignore[no-untyped-def]
    """The fp32 ONNX of ``_Dense``, calibration batches and held-out data of the same distribution."""
    torch.manual_seed(0)
    graph = GraphSpec(
        "dense", "encoder:x", _Dense().eval(), (IOSpec("x", (1, 8, 8)),), (IOSpec("embedding", (64,)),)
    )
    folder = tmp_path_factory.mktemp("dense")
    converted = OnnxExporter().convert(graph, folder, "fp32", PLAN)
    rng = np.random.default_rng(0)
    calibration = [{"x": rng.standard_normal((32, 1, 8, 8)).astype(np.float32)} for _ in range(4)]
    held_out = {"x": rng.standard_normal((64, 1, 8, 8)).astype(np.float32)}
    return folder / converted.files[0], calibration, held_out


@pytest.mark.backend("onnxruntime")
@pytest.mark.parametrize("method", METHODS)
def test_quantize_onnx_is_qdq_int8_smaller_and_close(dense, tmp_path, method: str) -> None:
    src, calibration, held_out = dense
    dst = tmp_path / "dense.onnx"
    details = quantize_onnx(src, dst, calibration, QuantOptions(method=method))

    model = onnx.load(str(dst))
    onnx.checker.check_model(model, full_check=True)
    assert not list(tmp_path.glob("*.data"))  # one self-contained file
    ops = {n.op_type for n in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    weights = [t for t in model.graph.initializer if len(t.dims) >= 2]
    assert weights
    assert {t.data_type for t in weights} == {onnx.TensorProto.INT8}
    ratio = src.stat().st_size / dst.stat().st_size
    assert ratio >= 3.0, ratio
    fp32 = onnx.load(str(src))
    for a, b in ((fp32.graph.input, model.graph.input), (fp32.graph.output, model.graph.output)):
        assert [(v.name, v.type.tensor_type.elem_type) for v in a] == [
            (v.name, v.type.tensor_type.elem_type) for v in b
        ]
    sqnr = sqnr_db(_ort(src, held_out), _ort(dst, held_out))
    assert sqnr > 20.0, sqnr
    assert details["quantizer"] == "onnxruntime.quantization"
    assert details["format"] == "QDQ"
    assert details["method"] == method
    assert details["per_channel"] is True
    assert details["activation_type"] == "uint8 (asymmetric)"
    assert details["weight_type"] == "int8 (symmetric)"
    assert details["calibration_rows"] == 128
    assert details["preprocessed"] is True
    json.dumps(details)


@pytest.mark.backend("onnxruntime")
def test_quantize_onnx_per_tensor_and_symmetric_activations(dense, tmp_path) -> None:
    from onnx import numpy_helper

    src, calibration, held_out = dense
    dst = tmp_path / "dense.onnx"
    details = quantize_onnx(
        src, dst, calibration, QuantOptions(per_channel=False), symmetric_activations=True
    )
    model = onnx.load(str(dst))
    init = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "QuantizeLinear":  # activations: symmetric int8, zero point 0 (TensorRT)
            zero = init[node.input[2]]
            assert zero.dtype == np.int8
            assert not zero.any()
        weight = init.get(node.input[0])
        if node.op_type == "DequantizeLinear" and weight is not None and weight.ndim >= 2:
            assert init[node.input[1]].size == 1  # a weight: one scale per tensor
    assert details["activation_type"] == "int8 (symmetric)"
    assert details["per_channel"] is False
    assert sqnr_db(_ort(src, held_out), _ort(dst, held_out)) > 20.0


@pytest.mark.backend("onnxruntime")
def test_quantize_onnx_refuses_bad_calibration(dense, tmp_path) -> None:
    src, calibration, _ = dense
    with pytest.raises(QuantizationError, match="no calibration batches"):
        quantize_onnx(src, tmp_path / "a.onnx", [], QuantOptions())
    with pytest.raises(QuantizationError, match=r"lacks inputs \['x'\]"):
        quantize_onnx(src, tmp_path / "a.onnx", [{"y": calibration[0]["x"]}], QuantOptions())
    bad = calibration[0]["x"].copy()
    bad[3, 0, 0, 0] = np.nan
    with pytest.raises(QuantizationError, match="NaN/inf"):
        quantize_onnx(src, tmp_path / "a.onnx", [{"x": bad}], QuantOptions())
    assert not (tmp_path / "a.onnx").exists()


# ---- a contract model, its calibration, and the format exporters -------------------------------------


@pytest.fixture(scope="module")
def toy(toy_dataset_factory):  # type: ignore[no-untyped-def]
    """A two-modality contract model, its graphs, and calibration built for every presence pattern."""
    data = toy_dataset_factory(modalities=MODALITIES, n=(96, 16, 48))
    torch.manual_seed(0)
    specs = data.modalities
    model = build_model(reference_architecture(specs, embed_dim=16), specs, list(data.label_names)).eval()
    graphs = {g.name: g for g in build_graphs(model, MODALITIES, monolithic=False)}
    graphs["model"] = build_graphs(model, MODALITIES, monolithic=True)[0]
    calibration = build_calibration(
        model, data.splits["train"].inputs, list(graphs.values()), MODALITIES, PATTERNS, samples=96, batch=16
    )
    test = build_calibration(
        model, data.splits["test"].inputs, list(graphs.values()), MODALITIES, PATTERNS, samples=48, batch=48
    )
    return graphs, calibration, test


def _held_out(test, name: str) -> dict[str, np.ndarray]:  # type: ignore[no-untyped-def]
    batches = test.feeds[name]
    return {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}


def _run_rows(runner, feeds, size: int) -> np.ndarray:  # type: ignore[no-untyped-def]
    """The runner's first output on the first ``size`` rows."""
    out = runner({k: v[:size] for k, v in feeds.items()})
    return next(iter(out.values()))


@pytest.mark.backend("onnxruntime")
@pytest.mark.parametrize("name", ["encoder_audio", "model"])
def test_onnx_exporter_quantizes_in_place(toy, tmp_path, name: str) -> None:
    graphs, calibration, test = toy
    graph = graphs[name]
    exporter = OnnxExporter()
    assert exporter.int8_unavailable_reason() is None
    fp32 = exporter.convert(graph, tmp_path, "fp32", PLAN)
    fp32_runner = exporter.load_runner(tmp_path, fp32, graph)
    held_out = _held_out(test, name)
    reference = _run_rows(fp32_runner, held_out, 48)
    size = (tmp_path / fp32.files[0]).stat().st_size
    with pytest.raises(ExportError, match="precision int8 was asked"):
        exporter.inspect(tmp_path, Converted(fp32.files, fp32.batch, {"precision": "int8"}), graph)

    int8 = exporter.quantize(tmp_path, fp32, graph, calibration.feeds[name], QuantOptions())
    assert int8.files == fp32.files == [f"{name}.onnx"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{name}.onnx"]
    assert int8.batch == fp32.batch
    assert int8.details["precision"] == "int8"
    assert int8.details["quantization"]["calibration_rows"] == 96
    assert (tmp_path / int8.files[0]).stat().st_size < size
    report = exporter.inspect(tmp_path, int8, graph)
    assert report["qdq_nodes"] > 0
    assert report["int8_weights"] > 0
    runner = exporter.load_runner(tmp_path, int8, graph)
    for rows in (1, 7):
        assert _run_rows(runner, held_out, rows).shape == reference[:rows].shape
    assert sqnr_db(reference, _run_rows(runner, held_out, 48)) > 20.0


def test_quantize_checks_before_the_quantizer(toy, tmp_path) -> None:
    graphs, calibration, _ = toy
    graph = graphs["head"]
    fp16 = Converted(["head.onnx"], {"dynamic": True}, {"precision": "fp16"})
    with pytest.raises(QuantizationError, match="needs the fp32 conversion; got a fp16 one"):
        OnnxExporter().quantize(tmp_path, fp16, graph, calibration.feeds["head"], QuantOptions())
    fp32 = Converted(["head.onnx"], {"dynamic": True}, {"precision": "fp32"})
    with pytest.raises(QuantizationError, match="no calibration batches for head"):
        OnnxExporter().quantize(tmp_path, fp32, graph, [], QuantOptions())

    class Plain(FormatExporter):
        name = "plain"
        _unavailable_reason = _runner_unavailable_reason = lambda self: None
        _convert = _load_runner = _inspect = lambda self, *a: None

    plain = Plain()
    assert plain.int8_unavailable_reason() == "int8 is not implemented for plain by EdgeFuse"
    with pytest.raises(QuantizationError) as info:
        plain.quantize(tmp_path, fp32, graph, calibration.feeds["head"], QuantOptions())
    assert "int8 is not implemented for plain by EdgeFuse" in str(info.value)
    assert "--precision fp32/fp16" in str(info.value)


@pytest.mark.backend("litert")
def test_tflite_full_integer_with_float_io(toy, tmp_path) -> None:
    pytest.importorskip("litert_torch")
    pytest.importorskip("ai_edge_quantizer")
    from ai_edge_litert.interpreter import Interpreter
    from edgefuse.export.formats.tflite import TFLiteExporter

    graphs, calibration, test = toy
    exporter = TFLiteExporter()
    assert exporter.int8_unavailable_reason() is None
    with pytest.raises(QuantizationError, match="--calibration-method minmax for tflite"):
        exporter.quantize(tmp_path, Converted([], {}), graphs["head"], [{}], QuantOptions(method="entropy"))
    layouts = set()
    for name in ("encoder_audio", "head"):  # a dynamic-batch signature and fixed-batch ones (b1, b8)
        graph = graphs[name]
        fp32 = exporter.convert(graph, tmp_path, "fp32", PLAN)
        layouts.add("dynamic" if fp32.batch.get("dynamic") else "fixed")
        held_out = _held_out(test, name)
        reference = _run_rows(exporter.load_runner(tmp_path, fp32, graph), held_out, 48)
        size = (tmp_path / fp32.files[0]).stat().st_size

        int8 = exporter.quantize(tmp_path, fp32, graph, calibration.feeds[name], QuantOptions())
        assert int8.files == fp32.files
        assert int8.details["precision"] == "int8"
        assert int8.details["quantization"]["quantizer"] == "ai-edge-quantizer"
        if fp32.batch.get("dynamic"):  # (fixed signatures each carry their own quantization parameters,
            assert (tmp_path / int8.files[0]).stat().st_size < size  # more than this tiny head's weights)
        assert exporter.inspect(tmp_path, int8, graph)["int8_tensors"] > 0  # float I/O checked there too
        interpreter = Interpreter(model_path=str(tmp_path / int8.files[0]))
        tensors = interpreter.get_tensor_details()  # (the first signature's subgraph)
        floats = [t for t in tensors if np.dtype(t["dtype"]) == np.float32]
        assert len(floats) == len(graph.inputs) + len(graph.outputs)  # only the float boundary
        weights = [
            t for t in tensors if len(t["shape"]) >= 2 and len(t["quantization_parameters"]["scales"]) > 1
        ]
        assert weights  # per-channel quantized weights
        assert {np.dtype(t["dtype"]) for t in weights} == {np.dtype(np.int8)}
        for signature in interpreter.get_signature_list():
            runner = interpreter.get_signature_runner(signature)
            for io in (runner.get_input_details(), runner.get_output_details()):
                assert {np.dtype(d["dtype"]) for d in io.values()} == {np.dtype(np.float32)}
        runner = exporter.load_runner(tmp_path, int8, graph)  # the runtime's LiteRT backend
        for rows in (1, 7):
            assert _run_rows(runner, held_out, rows).shape == reference[:rows].shape
        assert sqnr_db(reference, _run_rows(runner, held_out, 48)) > 15.0
    assert layouts == {"dynamic", "fixed"}


@pytest.mark.backend("coreml")
def test_coreml_int8_weights_in_the_spec(toy, tmp_path) -> None:
    from edgefuse.export.formats.coreml import WEIGHTS_ONLY_ACTIVATIONS, CoreMLExporter

    graphs, calibration, _ = toy
    graph = graphs["encoder_audio"]
    exporter = CoreMLExporter()
    assert exporter.int8_unavailable_reason() is None
    fp32 = exporter.convert(graph, tmp_path, "fp32", PLAN)
    before = exporter.inspect(tmp_path, fp32, graph)
    assert before["int8_weights"] == 0
    int8 = exporter.quantize(tmp_path, fp32, graph, calibration.feeds[graph.name], QuantOptions())
    assert int8.files == fp32.files
    assert int8.details["precision"] == "int8"
    report = exporter.inspect(tmp_path, int8, graph)  # spec-validated: names, batch range, dtypes
    assert report["int8_weights"] == int8.details["quantization"]["quantized_weights"] > 0
    assert "constexpr_affine_dequantize" in report["ops"]
    assert report["weights"].get("FLOAT32", 0) < before["weights"]["FLOAT32"]  # biases stay float
    if sys.platform != "darwin":
        assert int8.details["activations"] == WEIGHTS_ONLY_ACTIVATIONS
        assert int8.details["quantization"]["calibration_rows"] == 0
