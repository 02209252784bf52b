"""TensorRT exporter: an honest 'unavailable' here, the ONNX it would consume, and engines where possible."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxscript")

from edgefuse.errors import BackendUnavailableError  # noqa: E402
from edgefuse.export.errors import ExportError  # noqa: E402
from edgefuse.export.formats import get_exporter  # noqa: E402
from edgefuse.export.formats.base import BatchPlan  # noqa: E402
from edgefuse.export.formats.onnx import OnnxExporter  # noqa: E402
from edgefuse.export.formats.tensorrt import TensorRTExporter, gpu_unavailable_reason, optimisation_profile  # noqa: E402
from edgefuse.export.graphs import build_graphs  # noqa: E402
from edgefuse.models.contract import build_model  # noqa: E402
from edgefuse.models.reference import reference_architecture  # noqa: E402
from edgefuse.specs import ModalitySpec  # noqa: E402

SPECS = (ModalitySpec("audio", (1, 32, 61), preprocessing="logmel-v1"), ModalitySpec("image", (1, 8, 8)))
THREE = (*SPECS, ModalitySpec("imu", (1, 6, 32)))
PLAN = BatchPlan(min_batch=1, max_batch=64, fixed=(1, 8))
HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None
HAS_GPU = gpu_unavailable_reason() is None


def _model(specs):  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    return build_model(reference_architecture(specs, embed_dim=16), specs, [str(i) for i in range(10)]).eval()


@pytest.fixture(scope="module")
def graphs():  # type: ignore[no-untyped-def]
    split = {g.name: g for g in build_graphs(_model(SPECS), ["audio", "image"], monolithic=False)}
    (mono,) = build_graphs(_model(THREE), ["audio", "image", "imu"], monolithic=True)
    return {**split, "model": mono}


def test_registered_as_the_tensorrt_format() -> None:
    exporter = get_exporter("tensorrt")
    assert isinstance(exporter, TensorRTExporter)
    assert exporter.backend == "tensorrt"


@pytest.mark.skipif(HAS_TENSORRT and HAS_GPU, reason="TensorRT and a GPU are available here")
def test_unavailable_reason_names_what_is_missing() -> None:
    reason = TensorRTExporter().unavailable_reason()
    assert reason is not None
    if not HAS_TENSORRT:
        assert "'tensorrt'" in reason
        assert "pip install 'edgefuse[tensorrt]'" in reason
        assert "pypi.nvidia.com" in reason
    if not HAS_GPU:
        assert "GPU" in reason
        assert "nvidia-smi" in reason or "torch.cuda" in reason
    assert TensorRTExporter().runner_unavailable_reason() == reason


@pytest.mark.skipif(HAS_TENSORRT and HAS_GPU, reason="TensorRT and a GPU are available here")
def test_convert_raises_backend_unavailable(graphs, tmp_path) -> None:  # type: ignore[no-untyped-def]
    exporter = TensorRTExporter()
    with pytest.raises(BackendUnavailableError, match="TensorRT is unavailable here") as info:
        exporter.convert(graphs["head"], tmp_path, "fp32", PLAN)
    assert isinstance(info.value, ImportError)  # also catchable as ImportError
    assert list(tmp_path.iterdir()) == []  # nothing half-written
    with pytest.raises(BackendUnavailableError):
        exporter.load_runner(tmp_path, None, graphs["head"])  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["encoder_audio", "head", "model"])
def test_write_onnx_for_tensorrt(graphs, tmp_path, name: str) -> None:  # type: ignore[no-untyped-def]
    graph = graphs[name]
    converted = TensorRTExporter().write_onnx_for_tensorrt(graph, tmp_path, PLAN)
    assert converted.files == [f"{name}.onnx"]
    assert converted.batch["dynamic"] is True
    assert converted.details["consumer"] == "tensorrt"
    assert converted.details["tensorrt_profile"] == {"min": 1, "opt": 8, "max": 64}
    model = onnx.load(str(tmp_path / converted.files[0]))
    onnx.checker.check_model(model, full_check=True)
    assert [i.name for i in model.graph.input] == [s.name for s in graph.inputs]
    assert [o.name for o in model.graph.output] == [o.name for o in graph.outputs]
    OnnxExporter().inspect(tmp_path, converted, graph)  # what the pipeline runs on it


@pytest.mark.parametrize(
    ("plan", "profile"),
    [
        (BatchPlan(1, 64, (1, 8)), {"min": 1, "opt": 8, "max": 64}),
        (BatchPlan(1, 4, (1, 8)), {"min": 1, "opt": 1, "max": 4}),
        (BatchPlan(2, 16, ()), {"min": 2, "opt": 2, "max": 16}),
    ],
)
def test_optimisation_profile(plan: BatchPlan, profile: dict[str, int]) -> None:
    assert optimisation_profile(plan) == profile


def test_optimisation_profile_rejects_bad_range() -> None:
    with pytest.raises(ExportError, match="min_batch <= max_batch"):
        optimisation_profile(BatchPlan(min_batch=8, max_batch=4))
    with pytest.raises(ExportError, match="min_batch <= max_batch"):
        optimisation_profile(BatchPlan(min_batch=0, max_batch=4))


@pytest.mark.gpu
@pytest.mark.backend("tensorrt")
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_engine_builds_and_matches_torch(graphs, tmp_path, precision: str) -> None:  # type: ignore[no-untyped-def]
    exporter = TensorRTExporter()
    atol = 1e-3 if precision == "fp32" else 5e-2
    for name in ("encoder_audio", "head", "model"):
        graph = graphs[name]
        folder = tmp_path / name
        folder.mkdir()
        converted = exporter.convert(graph, folder, precision, PLAN)
        assert converted.files == [f"{name}.engine", f"{name}.onnx"]
        info = exporter.inspect(folder, converted, graph)
        assert info["profile"] == [1, 64]
        run = exporter.load_runner(folder, converted, graph)
        rng = np.random.default_rng(0)
        for batch in (1, 7):
            feeds = {
                s.name: rng.random((batch, *s.shape)) < 0.5
                if s.dtype == "bool"
                else rng.standard_normal((batch, *s.shape)).astype(np.float32)
                for s in graph.inputs
            }
            with torch.no_grad():
                want = graph.module(*[torch.from_numpy(feeds[s.name]) for s in graph.inputs]).numpy()
            got = run(feeds)[graph.outputs[0].name]
            assert np.abs(got - want).max() <= atol
