"""Backends like Polygraphy runners: checked state and inputs; LiteRT fixed-batch split and pad."""

from __future__ import annotations

import threading
import warnings

import numpy as np
import pytest
from _simulated import simulated_coremltools, simulated_tensorrt
from edgefuse.runtime import InputError
from edgefuse.runtime.backends.base import TensorSpec, plan_chunks, run_chunked
from edgefuse.runtime.backends.onnxruntime import OnnxRuntimeBackend
from edgefuse.runtime.errors import BackendError, BackendStateError

AUDIO_IN = [{"name": "audio", "shape": [-1, 1, 32, 61], "dtype": "float32"}]
EMB_OUT = [{"name": "embedding", "shape": [-1, 64], "dtype": "float32"}]


def test_plan_chunks() -> None:
    assert plan_chunks(5) == [(0, 5, 5)]
    assert plan_chunks(5, max_batch=2) == [(0, 2, 2), (2, 2, 2), (4, 1, 1)]
    assert plan_chunks(1, fixed=[1, 8]) == [(0, 1, 1)]
    assert plan_chunks(7, fixed=[8, 1]) == [(0, 7, 8)]
    assert plan_chunks(13, fixed=[1, 8]) == [(0, 8, 8), (8, 5, 8)]
    assert plan_chunks(3, fixed=[1]) == [(0, 1, 1), (1, 1, 1), (2, 1, 1)]
    assert plan_chunks(17, fixed=[4, 8]) == [(0, 8, 8), (8, 8, 8), (16, 1, 4)]


def test_run_chunked_pads_and_drops_padding() -> None:
    seen = []

    def call(part, size):  # type: ignore[no-untyped-def]
        seen.append((size, part["x"].shape[0]))
        return {"y": part["x"] * 2}

    x = np.arange(13, dtype=np.float32)[:, None]
    out = run_chunked({"x": x}, plan_chunks(13, fixed=[1, 8]), call)
    assert seen == [(8, 8), (8, 8)]
    assert np.array_equal(out["y"], x * 2)


def test_backend_state_machine_and_input_checks(x86_split) -> None:  # type: ignore[no-untyped-def]
    backend = OnnxRuntimeBackend()
    assert backend.state == "new"
    with pytest.raises(BackendStateError, match=r"run\(\) before load\(\)"):
        backend.run({"audio": np.zeros((1, 1, 32, 61), np.float32)})
    with pytest.raises(BackendStateError, match="before load"):
        backend.io_spec()
    with pytest.raises(BackendError, match="does not exist"):
        OnnxRuntimeBackend().load(x86_split / "nope.onnx", AUDIO_IN, EMB_OUT)
    backend.load(x86_split / "encoder_audio.onnx", AUDIO_IN, EMB_OUT, threads=1)
    assert backend.providers[-1] == "CPUExecutionProvider"
    with pytest.raises(BackendStateError, match=r"load\(\) is allowed once"):
        backend.load(x86_split / "encoder_audio.onnx", AUDIO_IN, EMB_OUT)
    out = backend.run({"audio": np.zeros((3, 1, 32, 61), np.float32)})
    assert out["embedding"].shape == (3, 64)
    assert out["embedding"].dtype == np.float32
    spec = backend.io_spec()
    assert spec.inputs == (TensorSpec("audio", (None, 1, 32, 61), "float32"),)
    assert spec.outputs[0].name == "embedding"
    bad = [
        ({}, r"input 'audio' is missing"),
        (
            {"audio": np.zeros((1, 1, 32, 61), np.float32), "audoi": 1},
            r"unknown input 'audoi' \(did you mean 'audio'\?\)",
        ),
        (
            {"audio": np.zeros((1, 1, 32, 61), np.float64)},
            r"dtype float64; expected audio \[B, 1, 32, 61\] float32",
        ),
        (
            {"audio": np.zeros((1, 32, 61), np.float32)},
            r"shape \(1, 32, 61\); expected audio \[B, 1, 32, 61\]",
        ),
        ({"audio": np.zeros((1, 1, 32, 62), np.float32)}, r"shape \(1, 1, 32, 62\)"),
        ({"audio": np.zeros((0, 1, 32, 61), np.float32)}, r"empty batch"),
        ({"audio": [[0.0]]}, r"must be a np.ndarray"),
    ]
    for feeds, pattern in bad:
        with pytest.raises(InputError, match=pattern):
            backend.run(feeds)
    with pytest.raises(InputError, match="threads"):
        OnnxRuntimeBackend().load(x86_split / "encoder_audio.onnx", AUDIO_IN, EMB_OUT, threads=0)
    with backend:
        pass
    assert backend.state == "closed"
    backend.close()
    with pytest.raises(BackendStateError, match=r"run\(\) after close\(\)"):
        backend.run({"audio": np.zeros((1, 1, 32, 61), np.float32)})
    with pytest.raises(BackendStateError, match="after close"):
        backend.io_spec()


def test_backend_error_for_a_file_that_is_not_a_graph(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "junk.onnx").write_bytes(b"not an onnx file")
    with pytest.raises(BackendError, match=r"onnxruntime cannot load .*junk.onnx"):
        OnnxRuntimeBackend().load(tmp_path / "junk.onnx", AUDIO_IN, EMB_OUT)


@pytest.fixture(scope="module")
def fixed_batch_tflite(tmp_path_factory):  # type: ignore[no-untyped-def]
    """A tiny Conv2d+Linear graph as .tflite with fixed-batch signatures b2 and b4 (litert-torch names)."""
    torch = pytest.importorskip("torch")
    litert_torch = pytest.importorskip("litert_torch")
    pytest.importorskip("ai_edge_litert")

    class Tiny(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 4, 3)
            self.proj = torch.nn.Linear(4, 5)

        def forward(self, x):  # type: ignore[no-untyped-def]
            return self.proj(self.conv(x).mean(dim=(2, 3)))

    torch.manual_seed(0)
    model = Tiny().eval()
    with pytest.MonkeyPatch.context() as mp, warnings.catch_warnings():
        mp.setenv("LITERT_TORCH_SHOW_PROGRESS", "n")
        warnings.simplefilter("ignore")
        converter = litert_torch.signature("b2", model, (torch.randn(2, 1, 8, 8),))
        edge = converter.signature("b4", model, (torch.randn(4, 1, 8, 8),)).convert()
    path = tmp_path_factory.mktemp("tfl") / "tiny.tflite"
    edge.export(str(path))
    return path, model


@pytest.mark.parametrize("with_signatures", [True, False])
def test_litert_splits_and_pads_fixed_batches(fixed_batch_tflite, with_signatures) -> None:  # type: ignore[no-untyped-def]
    import torch
    from edgefuse.runtime.backends.litert import LiteRTBackend

    path, model = fixed_batch_tflite
    batch = {"fixed": [2, 4], **({"signatures": {"2": "b2", "4": "b4"}} if with_signatures else {})}
    inputs = [{"name": "x", "shape": [-1, 1, 8, 8], "dtype": "float32"}]
    outputs = [{"name": "y", "shape": [-1, 5], "dtype": "float32"}]
    backend = LiteRTBackend().load(path, inputs, outputs, threads=1, batch=batch)
    assert backend.batch_sizes == (2, 4)
    assert backend.io_spec().inputs[0] == TensorSpec("x", (None, 1, 8, 8), "float32")
    rng = np.random.default_rng(0)
    for n in (1, 2, 3, 4, 5, 11):
        x = rng.standard_normal((n, 1, 8, 8)).astype(np.float32)
        with torch.no_grad():
            expected = model(torch.from_numpy(x)).numpy()
        got = backend.run({"x": x})["y"]
        assert got.shape == (n, 5)
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-5)
    backend.close()


def test_litert_bad_manifest_entries(fixed_batch_tflite) -> None:  # type: ignore[no-untyped-def]
    from edgefuse.runtime.backends.litert import LiteRTBackend

    path, _ = fixed_batch_tflite
    inputs = [{"name": "x", "shape": [-1, 1, 8, 8], "dtype": "float32"}]
    outputs = [{"name": "y", "shape": [-1, 5], "dtype": "float32"}]
    with pytest.raises(BackendError, match=r"batch sizes \[1, 2\] but signatures for \[2, 4\]"):
        LiteRTBackend().load(path, inputs, outputs, batch={"fixed": [1, 2]})
    with pytest.raises(BackendError, match="signature to use is unclear"):
        LiteRTBackend().load(path, inputs, outputs, batch={"dynamic": True})
    wrong = [{"name": "x", "shape": [-1, 1, 8, 9], "dtype": "float32"}]
    with pytest.raises(BackendError, match=r"the manifest says x \[B, 1, 8, 9\] float32"):
        LiteRTBackend().load(path, wrong, outputs, batch={"fixed": [2, 4]})


def test_litert_is_serialised_across_threads(fixed_batch_tflite) -> None:  # type: ignore[no-untyped-def]
    from edgefuse.runtime.backends.litert import LiteRTBackend

    path, _ = fixed_batch_tflite
    inputs = [{"name": "x", "shape": [-1, 1, 8, 8], "dtype": "float32"}]
    outputs = [{"name": "y", "shape": [-1, 5], "dtype": "float32"}]
    backend = LiteRTBackend().load(path, inputs, outputs, batch={"fixed": [2, 4]})
    rng = np.random.default_rng(1)
    xs = [rng.standard_normal((n, 1, 8, 8)).astype(np.float32) for n in (1, 3, 4, 6, 9)]
    serial = [backend.run({"x": x})["y"] for x in xs]
    errors: list[str] = []

    def work(k: int) -> None:
        for r in range(20):
            i = (k + r) % len(xs)
            if not np.array_equal(backend.run({"x": xs[i]})["y"], serial[i]):
                errors.append(f"thread {k} case {i}")

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_plan_chunks_pads_to_the_smallest_batch_of_a_range() -> None:
    assert plan_chunks(5, max_batch=4, min_batch=2) == [(0, 4, 4), (4, 1, 2)]
    assert plan_chunks(1, max_batch=64, min_batch=1) == [(0, 1, 1)]


# ---- Core ML and TensorRT cannot run here: their control flow runs against simulated libraries ---------
# These fakes follow the documented APIs (coremltools MLModel.predict; TensorRT 10 + cuda-python); they
# prove the backends' own logic (name mapping, dtype conversion, chunking, buffers), not the libraries.


def test_coreml_backend_logic_with_a_simulated_coremltools(monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]

    from edgefuse.runtime.backends.coreml import CoreMLBackend

    calls: list[dict[str, np.ndarray]] = []

    class MLModel:
        def __init__(self, path: str, compute_units: str) -> None:
            assert compute_units == "ALL"

        def predict(self, feeds):  # type: ignore[no-untyped-def]
            calls.append(feeds)
            x, presence = feeds["x"], feeds["presence"]
            return {"logits": (x.sum(axis=1, keepdims=True) * presence[:, :1]).astype(np.float16)}

    simulated_coremltools(monkeypatch, MLModel)
    (tmp_path / "model.mlpackage").mkdir()
    backend = CoreMLBackend().load(
        tmp_path / "model.mlpackage",
        [
            {"name": "x", "shape": [-1, 2], "dtype": "float32"},
            {"name": "presence", "shape": [-1, 1], "dtype": "bool"},
        ],
        [{"name": "logits", "shape": [-1, 1], "dtype": "float32"}],
        batch={"dynamic": True, "min": 1, "max": 3},
        details={"bool_inputs_as_float32": ["presence"]},
    )
    x = np.arange(14, dtype=np.float32).reshape(7, 2)
    presence = np.array([[True], [False], [True], [True], [True], [False], [True]])
    out = backend.run({"x": x, "presence": presence})["logits"]
    assert [len(c["x"]) for c in calls] == [3, 3, 1]
    assert all(c["presence"].dtype == np.float32 for c in calls)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, x.sum(axis=1, keepdims=True) * presence)


def test_tensorrt_backend_logic_with_simulated_tensorrt_and_cuda(monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from edgefuse.runtime.backends import tensorrt as trt_backend

    weights = np.arange(6, dtype=np.float32).reshape(3, 2)
    cudart, executed = simulated_tensorrt(
        monkeypatch, {"x": 3}, {"y": 2}, lambda got: {"y": got["x"] @ weights}
    )
    (tmp_path / "g.engine").write_bytes(b"engine")
    (tmp_path / "bad.engine").write_bytes(b"garbage")
    spec_in = [{"name": "x", "shape": [-1, 3], "dtype": "float32"}]
    spec_out = [{"name": "y", "shape": [-1, 2], "dtype": "float32"}]
    with pytest.raises(BackendError, match="cannot deserialize"):
        trt_backend.TensorRTBackend().load(tmp_path / "bad.engine", spec_in, spec_out)
    backend = trt_backend.TensorRTBackend().load(tmp_path / "g.engine", spec_in, spec_out)
    x = np.arange(18, dtype=np.float32).reshape(6, 3)
    np.testing.assert_array_equal(backend.run({"x": x})["y"], x @ weights)
    assert executed == [4, 2]  # the profile's max batch is 4
    np.testing.assert_array_equal(backend.run({"x": x[:1]})["y"], x[:1] @ weights)
    assert len(cudart.mem) == 2  # one buffer per tensor, reused
    backend.close()
    assert cudart.mem == {}
