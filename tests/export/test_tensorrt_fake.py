"""TensorRT exporter's engine path against a simulated TensorRT 10 (no TensorRT and no GPU are needed).

The fake follows TensorRT 10's Python API as the exporter calls it (``Builder``, ``create_network``,
``OnnxParser.parse_from_file``/``num_errors``/``get_error``, ``create_builder_config``,
``set_memory_pool_limit``, ``set_flag``, optimisation profiles, ``build_serialized_network`` returning
a buffer or ``None``, ``Runtime.deserialize_cuda_engine`` and the engine's name-based tensor queries),
in the style of the runtime backend's fake in ``tests/runtime/test_backends.py``. Its parser reads the
real ONNX the exporter wrote, and its "engine" records the network, profile and flags it was built
with, so inspection checks what the build actually set. It proves the exporter's own control flow
(profile shapes, flags, files written, errors), not TensorRT: the ``gpu`` test in
``test_formats_tensorrt.py`` builds real engines where TensorRT and a GPU exist.
"""

from __future__ import annotations

import functools
import importlib.machinery
import json
import shutil
import subprocess
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxscript")

from edgefuse.errors import BackendUnavailableError  # noqa: E402
from edgefuse.export.errors import ExportError, ExportValidationError  # noqa: E402
from edgefuse.export.formats import tensorrt as trt_export  # noqa: E402
from edgefuse.export.formats.base import BatchPlan, Converted  # noqa: E402
from edgefuse.export.formats.tensorrt import TensorRTExporter, optimisation_profile  # noqa: E402
from edgefuse.export.graphs import GraphSpec, IOSpec  # noqa: E402

PLAN = BatchPlan(min_batch=1, max_batch=64, fixed=(1, 8))
VERSION = "10.3.0"
ENGINE_MAGIC = b"simulated-tensorrt-engine\n"
GPU = {"gpu": "Simulated GPU", "compute_capability": [8, 9]}
INSTALL = (
    "`pip install 'edgefuse[tensorrt]'`; the wheels come from NVIDIA's index https://pypi.nvidia.com, "
    "PyPI holds only a stub that downloads from there"
)
NO_TENSORRT = f"the Python package 'tensorrt' is not installed ({INSTALL})"

# ---- the simulated TensorRT 10 --------------------------------------------------------------------------

_ONNX_TO_TRT = {1: "FLOAT", 7: "INT64", 9: "BOOL", 10: "HALF"}
_TRT_TO_NUMPY = {"FLOAT": np.float32, "INT64": np.int64, "BOOL": np.bool_, "HALF": np.float16}


@dataclass
class Sim:
    """Knobs of the simulation and everything the exporter created through it."""

    parser_errors: list[tuple[int, str, str, str]] = field(default_factory=list)  # (node, func, code, desc)
    extra_input: str | None = None  # a network input the graph spec does not have
    build_fails: bool = False  # build_serialized_network returns None
    fast_fp16: bool = True  # Builder.platform_has_fast_fp16 (deprecated in TensorRT 10.5)
    builders: list[Builder] = field(default_factory=list)
    parsers: list[OnnxParser] = field(default_factory=list)
    loggers: list[Logger] = field(default_factory=list)


class Logger:
    WARNING = "WARNING"

    def __init__(self, sim: Sim, min_severity: str) -> None:
        self.min_severity = min_severity
        sim.loggers.append(self)


@dataclass
class Tensor:
    name: str
    shape: tuple[int, ...]
    dtype: str


class Network:
    def __init__(self, flags: int) -> None:
        self.flags = flags
        self.inputs: list[Tensor] = []
        self.outputs: list[Tensor] = []
        self.num_layers = 0

    @property
    def num_inputs(self) -> int:
        return len(self.inputs)

    def get_input(self, index: int) -> Tensor:
        return self.inputs[index]

    @property
    def num_outputs(self) -> int:
        return len(self.outputs)

    def get_output(self, index: int) -> Tensor:
        return self.outputs[index]


class ParserError:
    """``trt.ParserError``: methods, and ``str()`` as the bindings format it."""

    def __init__(self, node: int, func: str, code: str, desc: str) -> None:
        self._node, self._func, self._code, self._desc = node, func, code, desc

    def node(self) -> int:
        return self._node

    def func(self) -> str:
        return self._func

    def code(self) -> str:
        return self._code

    def desc(self) -> str:
        return self._desc

    def __str__(self) -> str:
        return f"In node {self._node} ({self._func}): {self._code}: {self._desc}"


def _tensor(value: onnx.ValueInfoProto) -> Tensor:
    t = value.type.tensor_type
    dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim)
    return Tensor(value.name, dims, _ONNX_TO_TRT[t.elem_type])


class OnnxParser:
    def __init__(self, sim: Sim, network: Network, logger: Logger) -> None:
        self.sim, self.network, self.logger = sim, network, logger
        self.files: list[str] = []
        self.errors: list[ParserError] = []
        sim.parsers.append(self)

    def parse_from_file(self, model: str) -> bool:
        self.files.append(model)
        if self.sim.parser_errors:
            self.errors = [ParserError(*e) for e in self.sim.parser_errors]
            return False
        graph = onnx.load(model).graph
        self.network.inputs = [_tensor(v) for v in graph.input]
        if self.sim.extra_input:
            self.network.inputs.append(Tensor(self.sim.extra_input, (-1, 1), "FLOAT"))
        self.network.outputs = [_tensor(v) for v in graph.output]
        self.network.num_layers = len(graph.node)
        return True

    @property
    def num_errors(self) -> int:
        return len(self.errors)

    def get_error(self, index: int) -> ParserError:
        return self.errors[index]


class OptimizationProfile:
    def __init__(self) -> None:
        self.shapes: dict[str, tuple[tuple[int, ...], ...]] = {}

    def set_shape(self, input: str, min: tuple, opt: tuple, max: tuple) -> None:
        self.shapes[input] = (tuple(min), tuple(opt), tuple(max))


class BuilderConfig:
    def __init__(self) -> None:
        self.pool_limits: dict[str, int] = {}
        self.flags: list[str] = []
        self.profiles: list[OptimizationProfile] = []

    def set_memory_pool_limit(self, pool: str, pool_size: int) -> None:
        self.pool_limits[pool] = pool_size

    def set_flag(self, flag: str) -> None:
        self.flags.append(flag)

    def add_optimization_profile(self, profile: OptimizationProfile) -> int:
        self.profiles.append(profile)
        return len(self.profiles) - 1


class Builder:
    def __init__(self, sim: Sim, logger: Logger) -> None:
        self.sim, self.logger = sim, logger
        self.networks: list[Network] = []
        self.configs: list[BuilderConfig] = []
        self.profiles: list[OptimizationProfile] = []
        self.built: list[tuple[Network, BuilderConfig]] = []
        sim.builders.append(self)

    @property
    def platform_has_fast_fp16(self) -> bool:
        return self.sim.fast_fp16

    def create_network(self, flags: int = 0) -> Network:
        self.networks.append(Network(flags))
        return self.networks[-1]

    def create_builder_config(self) -> BuilderConfig:
        self.configs.append(BuilderConfig())
        return self.configs[-1]

    def create_optimization_profile(self) -> OptimizationProfile:
        self.profiles.append(OptimizationProfile())
        return self.profiles[-1]

    def build_serialized_network(self, network: Network, config: BuilderConfig) -> memoryview | None:
        """An ``IHostMemory`` stand-in (a buffer) describing the engine, or ``None`` as on a failed build."""
        self.built.append((network, config))
        if self.sim.build_fails:
            return None
        io = [[t.name, "INPUT", list(t.shape), t.dtype] for t in network.inputs]
        io += [[t.name, "OUTPUT", list(t.shape), t.dtype] for t in network.outputs]
        profiles = [{k: [list(s) for s in v] for k, v in p.shapes.items()} for p in config.profiles]
        engine = {"io": io, "profiles": profiles, "flags": config.flags, "layers": network.num_layers}
        return memoryview(ENGINE_MAGIC + json.dumps(engine).encode())


class Engine:
    def __init__(self, description: dict) -> None:
        self.io = {name: (mode, tuple(shape), dtype) for name, mode, shape, dtype in description["io"]}
        self.names = [row[0] for row in description["io"]]
        self.profiles = description["profiles"]
        self.flags = description["flags"]
        self.num_layers = description["layers"]

    @property
    def num_io_tensors(self) -> int:
        return len(self.names)

    def get_tensor_name(self, index: int) -> str:
        return self.names[index]

    def get_tensor_mode(self, name: str) -> str:
        return self.io[name][0]

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        return self.io[name][1]

    def get_tensor_dtype(self, name: str) -> str:
        return self.io[name][2]

    def get_tensor_profile_shape(self, name: str, profile_index: int) -> list[tuple[int, ...]]:
        return [tuple(s) for s in self.profiles[profile_index][name]]


class Runtime:
    def __init__(self, sim: Sim, logger: Logger) -> None:
        self.logger = logger

    def deserialize_cuda_engine(self, serialized_engine: bytes) -> Engine | None:
        data = bytes(serialized_engine)
        if not data.startswith(ENGINE_MAGIC):
            return None  # TensorRT logs the reason and returns None
        return Engine(json.loads(data[len(ENGINE_MAGIC) :]))


def _fake_tensorrt(sim: Sim) -> types.ModuleType:
    module = types.ModuleType("tensorrt")
    module.__spec__ = importlib.machinery.ModuleSpec("tensorrt", None)
    logger = type("Logger", (Logger,), {"__init__": lambda self, level: Logger.__init__(self, sim, level)})
    attrs = {
        "__version__": VERSION,
        "Logger": logger,
        "Builder": functools.partial(Builder, sim),
        "OnnxParser": functools.partial(OnnxParser, sim),
        "Runtime": functools.partial(Runtime, sim),
        "MemoryPoolType": types.SimpleNamespace(WORKSPACE="WORKSPACE"),
        "BuilderFlag": types.SimpleNamespace(FP16="FP16", TF32="TF32", INT8="INT8"),
        "TensorIOMode": types.SimpleNamespace(INPUT="INPUT", OUTPUT="OUTPUT"),
        "DataType": types.SimpleNamespace(**{k: k for k in _TRT_TO_NUMPY}),
        "nptype": lambda dtype: _TRT_TO_NUMPY[dtype],
    }
    for key, value in attrs.items():
        setattr(module, key, value)
    return module


# ---- fixtures -------------------------------------------------------------------------------------------


class Toy(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(3, 2)

    def forward(self, x: torch.Tensor, presence: torch.Tensor) -> torch.Tensor:
        return self.linear(x) * presence.float()


@pytest.fixture(scope="module")
def graph() -> GraphSpec:
    torch.manual_seed(0)
    return GraphSpec(
        "toy",
        "head",
        Toy().eval(),
        (IOSpec("x", (3,)), IOSpec("presence", (1,), "bool")),
        (IOSpec("logits", (2,)),),
    )


@pytest.fixture(scope="module")
def toy_onnx(graph, tmp_path_factory) -> tuple[Path, Converted]:
    """The ONNX ``write_onnx_for_tensorrt`` writes for the toy graph, exported once for the module."""
    folder = tmp_path_factory.mktemp("toy_onnx")
    return folder, TensorRTExporter().write_onnx_for_tensorrt(graph, folder, PLAN)


@pytest.fixture
def sim(monkeypatch) -> Sim:
    """A simulated TensorRT 10 as ``tensorrt``, a visible GPU, and no cuda-python."""
    state = Sim()
    monkeypatch.setitem(sys.modules, "tensorrt", _fake_tensorrt(state))
    monkeypatch.setitem(sys.modules, "cuda", None)  # building must not need cuda-python
    monkeypatch.setattr(trt_export, "gpu_unavailable_reason", lambda: None)
    monkeypatch.setattr(trt_export, "gpu_identity", lambda: dict(GPU))
    return state


@pytest.fixture
def cached_onnx(monkeypatch, toy_onnx) -> list[BatchPlan]:
    """``write_onnx_for_tensorrt`` copies the module's ONNX (a second torch export would only cost time).

    Returns the batch plans it was called with.
    """
    source, converted = toy_onnx
    calls: list[BatchPlan] = []

    def write(self, graph, folder, batch):  # type: ignore[no-untyped-def]
        calls.append(batch)
        shutil.copy(source / converted.files[0], folder / converted.files[0])
        details = {**converted.details, "tensorrt_profile": optimisation_profile(batch)}
        return Converted(list(converted.files), dict(converted.batch), details)

    monkeypatch.setattr(TensorRTExporter, "write_onnx_for_tensorrt", write)
    return calls


def _only(items: list):  # type: ignore[no-untyped-def]
    assert len(items) == 1, items
    return items[0]


# ---- building -------------------------------------------------------------------------------------------


def test_build_end_to_end_writes_and_inspects_the_engine(sim, graph, tmp_path) -> None:
    exporter = TensorRTExporter()
    assert exporter.unavailable_reason() is None
    converted = exporter.convert(graph, tmp_path, "fp32", PLAN)

    assert converted.files == ["toy.engine", "toy.onnx"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["toy.engine", "toy.onnx"]
    builder = _only(sim.builders)
    assert builder.logger.min_severity == "WARNING"
    network = _only(builder.networks)
    assert network.flags == 0  # TensorRT 10: explicit batch is the only kind, no flag
    parser = _only(sim.parsers)
    assert parser.network is network
    assert parser.files == [str(tmp_path / "toy.onnx")]
    config = _only(builder.configs)
    assert config.pool_limits == {"WORKSPACE": trt_export.WORKSPACE_BYTES}
    assert trt_export.WORKSPACE_BYTES == 1 << 30
    assert config.flags == []  # fp32: no FP16 flag
    profile = _only(config.profiles)
    assert profile is _only(builder.profiles)
    assert profile.shapes == {
        "x": ((1, 3), (8, 3), (64, 3)),
        "presence": ((1, 1), (8, 1), (64, 1)),
    }
    assert builder.built == [(network, config)]
    engine_bytes = (tmp_path / "toy.engine").read_bytes()
    assert engine_bytes.startswith(ENGINE_MAGIC)

    assert converted.batch == {"dynamic": True, "min": 1, "max": 64}
    details = dict(converted.details)
    onnx_details = details.pop("onnx")
    assert onnx_details["consumer"] == "tensorrt"
    assert onnx_details["tensorrt_profile"] == {"min": 1, "opt": 8, "max": 64}
    assert details == {
        "converter": f"tensorrt {VERSION}",
        "precision": "fp32",
        "profile": {"min": 1, "opt": 8, "max": 64},
        "gpu": "Simulated GPU",
        "compute_capability": [8, 9],
        "note": "an engine runs only on this GPU architecture and TensorRT version; rebuild it from the "
        "ONNX beside it elsewhere",
    }

    report = exporter.inspect(tmp_path, converted, graph)
    nodes = len(onnx.load(str(tmp_path / "toy.onnx")).graph.node)
    assert report["io_tensors"] == ["x", "presence", "logits"]
    assert report["layers"] == nodes
    assert report["profile"] == [1, 64]
    assert report["onnx"]["nodes"] == nodes


@pytest.mark.parametrize("fast_fp16", [True, False])
def test_fp16_sets_the_builder_flag(sim, cached_onnx, graph, tmp_path, fast_fp16: bool) -> None:
    # Weakly typed fp16: the flag lets TensorRT choose fp16 kernels; on a GPU without fast fp16 it keeps
    # fp32 ones, so the exporter neither queries platform_has_fast_fp16 (deprecated) nor refuses.
    sim.fast_fp16 = fast_fp16
    converted = TensorRTExporter().convert(graph, tmp_path, "fp16", PLAN)
    config = _only(_only(sim.builders).configs)
    assert config.flags == ["FP16"]
    assert config.pool_limits == {"WORKSPACE": 1 << 30}
    assert converted.details["precision"] == "fp16"
    assert converted.files == ["toy.engine", "toy.onnx"]
    assert (tmp_path / "toy.engine").is_file()
    assert TensorRTExporter().inspect(tmp_path, converted, graph)["profile"] == [1, 64]


def test_fp16_is_refused_where_tensorrt_has_no_fp16_flag(
    sim, cached_onnx, graph, tmp_path, monkeypatch
) -> None:
    monkeypatch.setattr(sys.modules["tensorrt"], "__version__", "11.0.0")
    monkeypatch.delattr(sys.modules["tensorrt"].BuilderFlag, "FP16")
    with pytest.raises(ExportError) as info:
        TensorRTExporter().convert(graph, tmp_path, "fp16", PLAN)
    assert str(info.value) == (
        "TensorRT 11.0.0 has no BuilderFlag.FP16 (removed in TensorRT 11 with weak typing): an fp16 engine "
        "there must be built from an fp16 ONNX (strong typing). Export fp32, or use TensorRT 10.x for "
        "--precision fp16"
    )
    assert list(tmp_path.iterdir()) == []  # refused before the ONNX or a builder
    assert cached_onnx == []
    assert sim.builders == []
    # fp32 still builds there
    assert TensorRTExporter().convert(graph, tmp_path, "fp32", PLAN).files == ["toy.engine", "toy.onnx"]


def test_other_precisions_are_refused_before_anything_runs(sim, cached_onnx, graph, tmp_path) -> None:
    with pytest.raises(ExportError) as info:
        TensorRTExporter().convert(graph, tmp_path, "int8", PLAN)
    assert str(info.value) == "TensorRT precision 'int8' is not one of ['fp32', 'fp16']"
    assert list(tmp_path.iterdir()) == []
    assert sim.builders == []


@pytest.mark.parametrize(
    ("plan", "profile"),
    [
        (BatchPlan(1, 64, (1, 8)), (1, 8, 64)),
        (BatchPlan(1, 4, (1, 8)), (1, 1, 4)),  # no fixed size inside the range: opt = min
        (BatchPlan(2, 16, ()), (2, 2, 16)),
        (BatchPlan(8, 8, (8,)), (8, 8, 8)),  # a fixed batch: a static profile, min = opt = max
    ],
)
def test_optimisation_profile_shapes_follow_the_batch_plan(
    sim, cached_onnx, graph, tmp_path, plan: BatchPlan, profile: tuple[int, int, int]
) -> None:
    converted = TensorRTExporter().convert(graph, tmp_path, "fp32", plan)
    assert cached_onnx == [plan]
    shapes = _only(_only(_only(sim.builders).configs).profiles).shapes
    lo, opt, hi = profile
    assert shapes == {
        "x": ((lo, 3), (opt, 3), (hi, 3)),
        "presence": ((lo, 1), (opt, 1), (hi, 1)),
    }
    assert converted.batch == {"dynamic": True, "min": lo, "max": hi}
    assert converted.details["profile"] == {"min": lo, "opt": opt, "max": hi}
    assert TensorRTExporter().inspect(tmp_path, converted, graph)["profile"] == [lo, hi]


def test_bad_batch_range_is_refused_before_the_onnx(sim, cached_onnx, graph, tmp_path) -> None:
    with pytest.raises(ExportError) as info:
        TensorRTExporter().convert(graph, tmp_path, "fp32", BatchPlan(8, 4, ()))
    assert str(info.value) == "TensorRT batch range [8, 4] needs 1 <= min_batch <= max_batch"
    assert list(tmp_path.iterdir()) == []
    assert cached_onnx == []


def test_parser_errors_are_reported(sim, cached_onnx, graph, tmp_path) -> None:
    sim.parser_errors = [
        (3, "importGemm", "UNSUPPORTED_NODE", "Assertion failed: inputs.at(1).is_weights()"),
        (-1, "importModel", "INVALID_GRAPH", "Assertion failed: node outputs are missing"),
    ]
    with pytest.raises(ExportError) as info:
        TensorRTExporter().convert(graph, tmp_path, "fp32", PLAN)
    assert str(info.value) == (
        "TensorRT's ONNX parser rejected toy.onnx: "
        "In node 3 (importGemm): UNSUPPORTED_NODE: Assertion failed: inputs.at(1).is_weights(); "
        "In node -1 (importModel): INVALID_GRAPH: Assertion failed: node outputs are missing"
    )
    assert _only(sim.parsers).files == [str(tmp_path / "toy.onnx")]
    builder = _only(sim.builders)
    assert builder.configs == []  # nothing is configured or built after a failed parse
    assert builder.built == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["toy.onnx"]  # the ONNX stays for a rebuild


def test_a_failed_build_raises_and_writes_no_engine(sim, cached_onnx, graph, tmp_path) -> None:
    sim.build_fails = True
    with pytest.raises(ExportError) as info:
        TensorRTExporter().convert(graph, tmp_path, "fp16", PLAN)
    assert str(info.value) == (
        f"TensorRT {VERSION} could not build an engine for toy (precision fp16, batch "
        "{'min': 1, 'opt': 8, 'max': 64}); see the TensorRT log above"
    )
    assert len(_only(sim.builders).built) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["toy.onnx"]


def test_an_input_the_graph_does_not_have_is_refused(sim, cached_onnx, graph, tmp_path) -> None:
    sim.extra_input = "stray"
    with pytest.raises(ExportValidationError) as info:
        TensorRTExporter().convert(graph, tmp_path, "fp32", PLAN)
    assert str(info.value) == "toy.onnx: TensorRT sees an unknown input 'stray'"
    assert _only(_only(sim.builders).configs).profiles == []
    assert not (tmp_path / "toy.engine").exists()


# ---- int8: explicit quantization from a QDQ ONNX --------------------------------------------------------


def _calibration(batches: int = 4, rows: int = 16) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    return [
        {
            "x": rng.standard_normal((rows, 3)).astype(np.float32),
            "presence": rng.random((rows, 1)) < 0.7,
        }
        for _ in range(batches)
    ]


def test_int8_builds_from_a_qdq_onnx_with_the_int8_flag(sim, cached_onnx, graph, tmp_path) -> None:
    pytest.importorskip("onnxruntime")
    from edgefuse.export.quantize import QuantOptions

    exporter = TensorRTExporter()
    assert exporter.int8_unavailable_reason() is None
    fp32 = exporter.convert(graph, tmp_path, "fp32", PLAN)
    int8 = exporter.quantize(tmp_path, fp32, graph, _calibration(), QuantOptions())

    assert int8.files == ["toy.engine", "toy.onnx"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["toy.engine", "toy.onnx"]
    fp32_build, int8_build = _only(sim.builders[:1]), _only(sim.builders[1:])
    assert _only(fp32_build.configs).flags == []
    config = _only(int8_build.configs)
    assert config.flags == ["INT8"]  # weakly typed TensorRT 10: Q/DQ layers run in int8
    assert config.pool_limits == {"WORKSPACE": trt_export.WORKSPACE_BYTES}
    assert _only(config.profiles).shapes == {
        "x": ((1, 3), (8, 3), (64, 3)),
        "presence": ((1, 1), (8, 1), (64, 1)),
    }
    assert sim.parsers[-1].files == [str(tmp_path / "toy.int8.onnx")]  # staged, then renamed
    qdq = onnx.load(str(tmp_path / "toy.onnx"))  # the engine's source beside it is the QDQ ONNX
    ops = [n.op_type for n in qdq.graph.node]
    assert "QuantizeLinear" in ops
    assert "DequantizeLinear" in ops
    zero_points = {t.name: onnx.numpy_helper.to_array(t) for t in qdq.graph.initializer}
    activation_zero_points = [
        zero_points[n.input[2]] for n in qdq.graph.node if n.op_type == "QuantizeLinear"
    ]
    assert activation_zero_points
    for zero in activation_zero_points:  # TensorRT takes symmetric int8 only
        assert zero.dtype == np.int8
        assert not zero.any()
    assert [i.name for i in qdq.graph.input] == ["x", "presence"]
    assert int8.batch == fp32.batch
    assert int8.details["precision"] == "int8"
    assert int8.details["profile"] == {"min": 1, "opt": 8, "max": 64}
    quantization = int8.details["quantization"]
    assert quantization["format"] == "QDQ"
    assert quantization["activation_type"] == "int8 (symmetric)"
    assert quantization["explicit_quantization"] == "QDQ ONNX"
    assert quantization["builder_flag"] == "INT8"
    assert quantization["calibration_rows"] == 64
    assert int8.details["onnx"]["precision"] == "int8"
    report = exporter.inspect(tmp_path, int8, graph)
    assert report["layers"] == len(qdq.graph.node)
    assert report["profile"] == [1, 64]


def test_int8_without_the_int8_flag_builds_from_qdq_alone(
    sim, cached_onnx, graph, tmp_path, monkeypatch
) -> None:
    pytest.importorskip("onnxruntime")
    from edgefuse.export.quantize import QuantOptions

    fp32 = TensorRTExporter().convert(graph, tmp_path, "fp32", PLAN)
    monkeypatch.delattr(sys.modules["tensorrt"].BuilderFlag, "INT8")
    int8 = TensorRTExporter().quantize(tmp_path, fp32, graph, _calibration(), QuantOptions())
    assert _only(sim.builders[1].configs).flags == []
    assert int8.details["quantization"]["builder_flag"].startswith("none")


def test_a_failed_int8_build_keeps_the_fp32_files(sim, cached_onnx, graph, tmp_path) -> None:
    pytest.importorskip("onnxruntime")
    from edgefuse.export.quantize import QuantOptions

    fp32 = TensorRTExporter().convert(graph, tmp_path, "fp32", PLAN)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    sim.build_fails = True
    with pytest.raises(ExportError, match="could not build an engine for toy \\(precision int8"):
        TensorRTExporter().quantize(tmp_path, fp32, graph, _calibration(), QuantOptions())
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_int8_is_refused_where_tensorrt_is_unavailable(graph, tmp_path, monkeypatch) -> None:
    from edgefuse.export.errors import QuantizationError
    from edgefuse.export.quantize import QuantOptions

    monkeypatch.setitem(sys.modules, "tensorrt", None)
    monkeypatch.setattr(trt_export, "gpu_unavailable_reason", lambda: None)
    exporter = TensorRTExporter()
    assert exporter.int8_unavailable_reason() == f"TensorRT is unavailable here: {NO_TENSORRT}"
    fp32 = Converted(
        ["toy.engine", "toy.onnx"], {"dynamic": True, "min": 1, "max": 64}, {"precision": "fp32"}
    )
    with pytest.raises(QuantizationError) as info:
        exporter.quantize(tmp_path, fp32, graph, _calibration(), QuantOptions())
    assert str(info.value).startswith(
        f"int8 for toy as tensorrt is unavailable here: TensorRT is unavailable here: {NO_TENSORRT}. "
    )
    assert "--precision fp32/fp16" in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_int8_needs_the_fp32_onnx_and_profile(sim, graph, tmp_path) -> None:
    pytest.importorskip("onnxruntime")
    from edgefuse.export.errors import QuantizationError
    from edgefuse.export.quantize import QuantOptions

    engine_only = Converted(["toy.engine"], {"dynamic": True, "min": 1, "max": 64}, {"precision": "fp32"})
    with pytest.raises(QuantizationError, match="has no ONNX beside its engine"):
        TensorRTExporter().quantize(tmp_path, engine_only, graph, _calibration(), QuantOptions())
    assert sim.builders == []


# ---- what a build needs ---------------------------------------------------------------------------------

_real_gpu_unavailable_reason = trt_export.gpu_unavailable_reason
_real_gpu_identity = trt_export.gpu_identity


def test_missing_tensorrt_is_reported_and_nothing_is_written(graph, tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # find_spec -> None: not installed
    monkeypatch.setattr(trt_export, "gpu_unavailable_reason", lambda: None)
    exporter = TensorRTExporter()
    assert exporter.unavailable_reason() == f"TensorRT is unavailable here: {NO_TENSORRT}"
    with pytest.raises(BackendUnavailableError) as info:
        exporter.convert(graph, tmp_path, "fp32", PLAN)
    assert str(info.value) == f"TensorRT is unavailable here: {NO_TENSORRT}"
    assert isinstance(info.value, ImportError)
    assert list(tmp_path.iterdir()) == []
    no_gpu = "no NVIDIA GPU is visible here (simulated)"
    monkeypatch.setattr(trt_export, "gpu_unavailable_reason", lambda: no_gpu)
    assert exporter.unavailable_reason() == f"TensorRT is unavailable here: {NO_TENSORRT}; and {no_gpu}"


def test_a_tensorrt_import_blocked_by_a_finder_counts_as_missing(monkeypatch) -> None:
    class Block:
        def find_spec(self, name, path=None, target=None):  # type: ignore[no-untyped-def]
            if name == "tensorrt":
                raise ImportError("blocked for the test: tensorrt")

    monkeypatch.delitem(sys.modules, "tensorrt", raising=False)
    monkeypatch.setattr(sys, "meta_path", [Block(), *sys.meta_path])
    monkeypatch.setattr(trt_export, "gpu_unavailable_reason", lambda: None)
    assert TensorRTExporter().unavailable_reason() == f"TensorRT is unavailable here: {NO_TENSORRT}"


def test_cpu_only_torch_and_no_cuda_python_still_build(
    sim, cached_onnx, graph, tmp_path, monkeypatch
) -> None:
    """The build needs TensorRT and a visible GPU only: not CUDA in torch, not cuda-python."""
    monkeypatch.setattr(trt_export, "gpu_unavailable_reason", _real_gpu_unavailable_reason)
    monkeypatch.setattr(trt_export, "gpu_identity", _real_gpu_identity)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/nvidia-smi" if name == "nvidia-smi" else None)
    commands: list[list[str]] = []

    def run(args, **kwargs):  # type: ignore[no-untyped-def]
        commands.append(args)
        return subprocess.CompletedProcess(args, 0, stdout="NVIDIA GeForce RTX 4090, 8.9\n", stderr="")

    monkeypatch.setattr(subprocess, "run", run)
    exporter = TensorRTExporter()
    assert exporter.unavailable_reason() is None
    runner_reason = exporter.runner_unavailable_reason()
    assert runner_reason is not None
    assert "'cuda-python' is not installed" in runner_reason  # running (parity) needs it, building not
    converted = exporter.convert(graph, tmp_path, "fp32", PLAN)
    assert converted.files == ["toy.engine", "toy.onnx"]
    assert converted.details["gpu"] == "NVIDIA GeForce RTX 4090"
    assert converted.details["compute_capability"] == [8, 9]
    assert commands == [
        ["/usr/bin/nvidia-smi", "--query-gpu=name,compute_cap", "--format=csv,noheader", "--id=0"]
    ]
    with pytest.raises(BackendUnavailableError, match="cuda-python"):
        exporter.load_runner(tmp_path, converted, graph)


def test_gpu_unavailable_reason_does_not_ask_torch(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: pytest.fail("torch.cuda was asked"))
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/nvidia-smi" if name == "nvidia-smi" else None)
    assert trt_export.gpu_unavailable_reason() is None
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr("edgefuse.runtime.backends.tensorrt._GPU_NODES", ())
    reason = trt_export.gpu_unavailable_reason()
    assert reason is not None
    assert "nvidia-smi" in reason
    assert "torch" not in reason


def test_gpu_identity_from_cuda_python(monkeypatch) -> None:
    properties = types.SimpleNamespace(name=b"Orin (nvgpu)\x00\x00\x00", major=8, minor=7)
    cudart = types.SimpleNamespace(
        cudaError_t=types.SimpleNamespace(cudaSuccess=0),
        cudaGetDeviceProperties=lambda device: (0, properties) if device == 0 else (101, None),
    )
    bindings = types.ModuleType("cuda.bindings")
    bindings.runtime = cudart  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "cuda", types.ModuleType("cuda"))
    monkeypatch.setitem(sys.modules, "cuda.bindings", bindings)
    monkeypatch.setitem(sys.modules, "cuda.bindings.runtime", cudart)
    monkeypatch.setattr(shutil, "which", lambda name: pytest.fail("nvidia-smi was asked"))
    assert trt_export.gpu_identity() == {"gpu": "Orin (nvgpu)", "compute_capability": [8, 7]}


def test_gpu_identity_without_cuda_python_or_nvidia_smi(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "cuda", None)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert trt_export.gpu_identity() == {"gpu": None, "compute_capability": None}
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/nvidia-smi")

    def fails(args, **kwargs):  # type: ignore[no-untyped-def]
        raise subprocess.CalledProcessError(2, args, "", 'Field "compute_cap" is not a valid field to query.')

    monkeypatch.setattr(subprocess, "run", fails)
    assert trt_export.gpu_identity() == {"gpu": None, "compute_capability": None}


# ---- inspecting -----------------------------------------------------------------------------------------


@pytest.fixture
def built(sim, cached_onnx, graph, tmp_path) -> Converted:
    return TensorRTExporter().convert(graph, tmp_path, "fp32", PLAN)


def test_inspect_refuses_an_engine_that_does_not_deserialize(built, graph, tmp_path) -> None:
    (tmp_path / "toy.engine").write_bytes(b"built by another TensorRT")
    with pytest.raises(ExportValidationError) as info:
        TensorRTExporter().inspect(tmp_path, built, graph)
    assert str(info.value) == (
        f"toy.engine does not deserialize with TensorRT {VERSION} on this GPU (engines are specific to the "
        "GPU architecture and TensorRT version that built them)"
    )


def test_inspect_refuses_a_profile_other_than_the_manifests(built, graph, tmp_path) -> None:
    claimed = Converted(built.files, {"dynamic": True, "min": 2, "max": 64}, built.details)
    with pytest.raises(ExportValidationError) as info:
        TensorRTExporter().inspect(tmp_path, claimed, graph)
    assert str(info.value) == "toy.engine: input 'x' profile batch [1, 64]; expected [2, 64]"


def test_inspect_refuses_other_outputs_and_dtypes(built, graph, tmp_path) -> None:
    engine = tmp_path / "toy.engine"
    original = engine.read_bytes()
    engine.write_bytes(original.replace(b'"logits"', b'"output_0"'))
    with pytest.raises(ExportValidationError) as info:
        TensorRTExporter().inspect(tmp_path, built, graph)
    assert str(info.value) == "toy.engine: outputs ['output_0']; expected ['logits']"
    engine.write_bytes(original.replace(b'"BOOL"', b'"HALF"'))
    with pytest.raises(ExportValidationError) as info:
        TensorRTExporter().inspect(tmp_path, built, graph)
    assert str(info.value) == "toy.engine: 'presence' is [-1, 1] float16; expected [-1, 1] bool"


def test_inspect_without_tensorrt_says_why(built, graph, tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(BackendUnavailableError) as info:
        TensorRTExporter().inspect(tmp_path, built, graph)
    assert str(info.value) == f"inspecting toy.engine: TensorRT is unavailable here: {NO_TENSORRT}"
    # the ONNX beside it is still checked without TensorRT
    only_onnx = Converted(["toy.onnx"], built.batch)
    assert set(TensorRTExporter().inspect(tmp_path, only_onnx, graph)) == {"onnx"}
