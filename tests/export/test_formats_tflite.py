"""TFLite exporter: batch handling, names, inspection, runner parity, fp16 weights, NaN-safe presence."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

pytest.importorskip("litert_torch")
pytest.importorskip("ai_edge_litert")
torch = pytest.importorskip("torch")

from edgefuse.errors import BackendUnavailableError  # noqa: E402
from edgefuse.export.errors import ExportError, ExportValidationError  # noqa: E402
from edgefuse.export.formats.base import BatchPlan, Converted  # noqa: E402
from edgefuse.export.formats.tflite import TFLiteExporter  # noqa: E402
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
    with torch.no_grad():  # a non-trivial fusion, as after training
        model.fusion.norm.weight.uniform_(0.5, 1.5)
        model.fusion.norm.bias.uniform_(-0.5, 0.5)
        model.fusion.log_weights.copy_(torch.linspace(-0.5, 0.5, len(specs)))
    return model.eval()


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


@pytest.fixture(scope="module")
def split(tmp_path_factory):  # type: ignore[no-untyped-def]
    """The reference model's encoders and head, converted fp32 (plus the head in fp16)."""
    folder = tmp_path_factory.mktemp("tflite_split")
    exporter = TFLiteExporter()
    graphs = {g.name: g for g in build_graphs(_model(SPECS), ["audio", "image"], monolithic=False)}
    converted = {name: exporter.convert(g, folder, "fp32", PLAN) for name, g in graphs.items()}
    fp16_folder = folder / "fp16"
    fp16_folder.mkdir()
    head16 = exporter.convert(graphs["head"], fp16_folder, "fp16", PLAN)
    return exporter, folder, graphs, converted, fp16_folder, head16


@pytest.fixture(scope="module")
def mono(tmp_path_factory):  # type: ignore[no-untyped-def]
    """The three-modality model as one monolithic graph (bool presence input), fp32."""
    folder = tmp_path_factory.mktemp("tflite_mono")
    exporter = TFLiteExporter()
    (graph,) = build_graphs(_model(THREE), ["audio", "image", "imu"], monolithic=True)
    return exporter, folder, graph, exporter.convert(graph, folder, "fp32", PLAN)


def test_files_and_batch_handling(split) -> None:  # type: ignore[no-untyped-def]
    _, folder, graphs, converted, _, _ = split
    for name, c in converted.items():
        assert c.files == [f"{name}.tflite"]
        assert (folder / c.files[0]).stat().st_size > 0
        assert c.details["signature_keys"] == {
            "inputs": {s.name: s.name for s in graphs[name].inputs},
            "outputs": {o.name: o.name for o in graphs[name].outputs},
        }
    # Pure Conv2d encoders keep a dynamic batch (checked at batch 1 and 7 when converting).
    for name in ("encoder_audio", "encoder_image"):
        assert converted[name].batch == {
            "dynamic": True,
            "min": 1,
            "max": None,
            "signature": "serving_default",
        }
        assert converted[name].details["dynamic_batch_error"] is None
    # The head's Linear on a symbolic batch does not convert: one signature per fixed size, one file.
    head = converted["head"]
    assert head.batch == {"fixed": [1, 8], "signatures": {"1": "b1", "8": "b8"}}
    assert head.details["dynamic_batch_error"]


def test_inspect_reports_signatures_names_and_ops(split) -> None:  # type: ignore[no-untyped-def]
    exporter, folder, graphs, converted, _, _ = split
    head = exporter.inspect(folder, converted["head"], graphs["head"])
    assert head["signatures"]["b1"] == {"batch": 1, "inputs": ["fused"], "outputs": ["logits"]}
    assert head["signatures"]["b8"]["batch"] == 8
    assert "FULLY_CONNECTED" in head["ops"]
    assert head["float16_tensors"] == 0
    audio = exporter.inspect(folder, converted["encoder_audio"], graphs["encoder_audio"])
    assert audio["signatures"]["serving_default"] == {
        "batch": -1,
        "inputs": ["audio"],
        "outputs": ["embedding"],
    }
    assert "CONV_2D" in audio["ops"]


def test_inspect_catches_mismatches(split) -> None:  # type: ignore[no-untyped-def]
    exporter, folder, graphs, converted, _, _ = split
    audio = graphs["encoder_audio"]
    renamed = dataclasses.replace(audio, inputs=(IOSpec("microphone", audio.inputs[0].shape),))
    with pytest.raises(ExportValidationError, match="microphone"):
        exporter.inspect(folder, converted["encoder_audio"], renamed)
    reshaped = dataclasses.replace(audio, inputs=(IOSpec("audio", (1, 32, 60)),))
    with pytest.raises(ExportValidationError, match=r"\[batch, 1, 32, 60\]"):
        exporter.inspect(folder, converted["encoder_audio"], reshaped)
    head = converted["head"]
    wrong_sizes = Converted(head.files, {"fixed": [1, 4], "signatures": {"1": "b1", "4": "b4"}}, head.details)
    with pytest.raises(ExportValidationError, match="signatures"):
        exporter.inspect(folder, wrong_sizes, graphs["head"])
    claims_fp16 = Converted(head.files, head.batch, {**head.details, "precision": "fp16"})
    with pytest.raises(ExportValidationError, match="no float16 weights"):
        exporter.inspect(folder, claims_fp16, graphs["head"])


@pytest.mark.backend("litert")
@pytest.mark.parametrize("name", ["encoder_audio", "encoder_image", "head"])
def test_runner_matches_torch(split, name: str) -> None:  # type: ignore[no-untyped-def]
    exporter, folder, graphs, converted, _, _ = split
    graph = graphs[name]
    run = exporter.load_runner(folder, converted[name], graph)
    output = graph.outputs[0].name
    for batch in (1, 7, 17):  # 7 and 17 also split/pad onto the head's b1/b8 signatures
        feeds = _feeds(graph, batch, seed=batch)
        got = run(feeds)[output]
        assert got.shape == (batch, *graph.outputs[0].shape)
        assert np.abs(got - _torch(graph, feeds)).max() <= 1e-4


def test_runner_rejects_missing_inputs(split) -> None:  # type: ignore[no-untyped-def]
    exporter, folder, graphs, converted, _, _ = split
    from edgefuse.runtime.errors import InputError

    run = exporter.load_runner(folder, converted["head"], graphs["head"])  # the runtime's LiteRT backend
    with pytest.raises(InputError, match="fused"):
        run({"wrong": np.zeros((1, 16), np.float32)})


@pytest.mark.backend("litert")
def test_fp16_weights_keep_top1(split) -> None:  # type: ignore[no-untyped-def]
    exporter, _, graphs, _, fp16_folder, head16 = split
    graph = graphs["head"]
    info = exporter.inspect(fp16_folder, head16, graph)
    assert info["float16_tensors"] > 0
    assert "DEQUANTIZE" in info["ops"]
    assert head16.details["precision"] == "fp16"
    run = exporter.load_runner(fp16_folder, head16, graph)
    feeds = _feeds(graph, 256, seed=3)
    got = run(feeds)["logits"]
    assert got.dtype == np.float32  # float32 I/O, fp16 weights
    want = _torch(graph, feeds)
    assert np.abs(got - want).max() <= 5e-2
    assert (got.argmax(1) == want.argmax(1)).mean() >= 0.99


def test_rejects_unknown_precision(split, tmp_path) -> None:  # type: ignore[no-untyped-def]
    exporter, _, graphs, _, _, _ = split
    with pytest.raises(ExportError, match="int8"):
        exporter.convert(graphs["head"], tmp_path, "int8", PLAN)


@pytest.mark.backend("litert")
def test_monolithic_fixed_signatures_and_parity(mono) -> None:  # type: ignore[no-untyped-def]
    exporter, folder, graph, converted = mono
    assert converted.batch == {"fixed": [1, 8], "signatures": {"1": "b1", "8": "b8"}}
    info = exporter.inspect(folder, converted, graph)
    assert info["signatures"]["b8"]["inputs"] == ["audio", "image", "imu", "presence"]
    assert "SELECT_V2" in info["ops"]  # torch.where survives as a select
    run = exporter.load_runner(folder, converted, graph)
    for batch in (1, 7):
        feeds = _feeds(graph, batch, seed=10 + batch)
        assert np.abs(run(feeds)["logits"] - _torch(graph, feeds)).max() <= 1e-4


@pytest.mark.backend("litert")
def test_monolithic_nan_in_absent_input_does_not_leak(mono) -> None:  # type: ignore[no-untyped-def]
    exporter, folder, graph, converted = mono
    run = exporter.load_runner(folder, converted, graph)
    clean = _feeds(graph, 7, seed=5)
    clean["image"] = np.zeros_like(clean["image"])
    clean["presence"] = np.array([[True, False, True]] * 7)
    poisoned = {**clean, "image": np.full_like(clean["image"], np.nan)}
    nan_out = run(poisoned)["logits"]
    assert np.isfinite(nan_out).all()
    np.testing.assert_array_equal(nan_out, run(clean)["logits"])
    assert np.abs(nan_out - _torch(graph, clean)).max() <= 1e-4


def test_unavailable_runner_raises_with_reason(monkeypatch, split) -> None:  # type: ignore[no-untyped-def]
    exporter, folder, graphs, converted, _, _ = split
    monkeypatch.setattr(
        TFLiteExporter, "_runner_unavailable_reason", lambda self: "ai-edge-litert is missing"
    )
    with pytest.raises(BackendUnavailableError, match="ai-edge-litert is missing"):
        exporter.load_runner(folder, converted["head"], graphs["head"])


def test_compact_names_keeps_files_with_offset_buffers() -> None:
    """ai-edge-quantizer stores large constant buffers by offset after the flatbuffer (EfficientNet-Lite0
    int8): rebuilding the flatbuffer to rename tensors would drop them, so such a file is left as it is."""
    import copy
    from pathlib import Path

    import edgefuse.bench
    from ai_edge_litert.tools import flatbuffer_utils
    from edgefuse.export.formats.tflite import _compact_names

    tiny = (Path(edgefuse.bench.__file__).parent / "data" / "tiny.tflite").read_bytes()
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(tiny))
    model.subgraphs[0].tensors.append(copy.deepcopy(model.subgraphs[0].tensors[0]))
    model.subgraphs[0].tensors[-1].name = b"a/very/long/module/path/name"
    plain = bytes(flatbuffer_utils.convert_object_to_bytearray(model))
    renamed = flatbuffer_utils.convert_bytearray_to_object(bytearray(_compact_names(plain)))
    assert renamed.subgraphs[0].tensors[-1].name == b"t2"  # inputs and outputs keep their names
    assert renamed.subgraphs[0].tensors[0].name == b"serving_default_args_0"
    model.buffers[-1].offset, model.buffers[-1].size = 1, 4  # stored by offset
    with_offset = bytes(flatbuffer_utils.convert_object_to_bytearray(model))
    assert _compact_names(with_offset) == with_offset
