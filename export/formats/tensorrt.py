"""TensorRT: a serialized engine built from the graph's ONNX, with an optimisation profile over the batch.

Written against the TensorRT 10 Python API (``tensorrt>=10``; NVIDIA publishes the wheels on its own
index, https://pypi.nvidia.com, which PyPI's ``tensorrt`` stub downloads from):

* the ONNX is written first (:func:`edgefuse.export.formats.onnx.export_onnx`, dynamic batch, unused
  inputs removed, ``onnx.checker``) and kept beside the engine: an engine only runs on the GPU
  architecture and TensorRT version that built it, the ONNX lets a device rebuild one;
* ``trt.Builder`` -> explicit-batch network (the only kind TensorRT 10 has) -> ``trt.OnnxParser`` (its
  errors are reported) -> builder config with one optimisation profile giving every input
  ``min = BatchPlan.min_batch``, ``opt`` = the largest of ``BatchPlan.fixed`` within the range (the batch
  the device profile runs), ``max = BatchPlan.max_batch`` (a plan with ``min_batch == max_batch`` gives a
  static profile, ``min = opt = max``); ``BuilderFlag.FP16`` for fp16 (weakly typed build: the flag lets
  TensorRT choose fp16 kernels where they are faster, on a GPU without fast fp16 it keeps fp32 ones, so
  that is no error; TensorRT 11 removed the flag, and fp16 is then refused with the reason before
  anything is written) -> ``build_serialized_network`` -> ``<graph>.engine``.

Building needs only the ``tensorrt`` package (plus ``onnx`` for the ONNX) and a visible NVIDIA GPU, which
TensorRT times kernels on: neither CUDA in torch (a CPU-only torch exports the ONNX) nor cuda-python. The
GPU's name and compute capability go to the manifest, read with cuda-python where it is installed, else
with ``nvidia-smi``.

Parity runs the engine with the runtime's TensorRT backend (:mod:`edgefuse.runtime.backends.tensorrt`,
the exact code a device runs), which also needs cuda-python for device buffers:
:meth:`TensorRTExporter.runner_unavailable_reason` says so where it is missing.

int8 (:meth:`TensorRTExporter.quantize`): explicit quantization. The graph's ONNX is quantized to a QDQ
ONNX (:func:`edgefuse.export.quantize.quantize_onnx`, symmetric int8 activations and weights, calibrated
on the given data) and the engine is rebuilt from it with ``BuilderFlag.INT8``; no TensorRT calibrator
(implicit quantization, deprecated in TensorRT 10) is used.

Where TensorRT or a GPU is unavailable, :meth:`TensorRTExporter.convert` raises
``BackendUnavailableError`` (naming the missing package and/or GPU) and the pipeline can still write the
ONNX TensorRT would consume with :meth:`TensorRTExporter.write_onnx_for_tensorrt`.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from edgefuse.export.errors import ExportError, ExportValidationError, QuantizationError
from edgefuse.export.formats.base import BatchPlan, Converted, FormatExporter, Runner, missing_package
from edgefuse.export.graphs import GraphSpec

if TYPE_CHECKING:
    from edgefuse.export.quantize import QuantOptions

__all__ = [
    "WORKSPACE_BYTES",
    "TensorRTExporter",
    "gpu_identity",
    "gpu_unavailable_reason",
    "optimisation_profile",
]

logger = logging.getLogger(__name__)

#: Builder workspace memory pool limit (the small graphs here need far less).
WORKSPACE_BYTES = 1 << 30
_INSTALL = (
    "`pip install 'edgefuse[tensorrt]'`; the wheels come from NVIDIA's index https://pypi.nvidia.com, "
    "PyPI holds only a stub that downloads from there"
)


def gpu_unavailable_reason() -> str | None:
    """``None`` when an NVIDIA GPU is visible here (a device node or ``nvidia-smi``), else why not.

    The runtime TensorRT backend's check; CUDA in torch is not needed, the build uses TensorRT alone.
    """
    from edgefuse.runtime.backends.tensorrt import _gpu_reason

    return _gpu_reason()


def gpu_identity() -> dict[str, Any]:
    """``{"gpu": name, "compute_capability": [major, minor]}`` of GPU 0, for the manifest.

    Read with cuda-python (``cudaGetDeviceProperties``) where it is installed, else with ``nvidia-smi``;
    both values are ``None`` where neither answers (the engine is built all the same).
    """
    try:
        from edgefuse.runtime.backends.tensorrt import _cudart

        cudart = _cudart()
        err, prop = cudart.cudaGetDeviceProperties(0)
        if err == cudart.cudaError_t.cudaSuccess:
            name = prop.name.decode(errors="replace") if isinstance(prop.name, bytes) else str(prop.name)
            return {
                "gpu": name.rstrip("\x00").strip(),
                "compute_capability": [int(prop.major), int(prop.minor)],
            }
    except (ImportError, RuntimeError, AttributeError, TypeError, ValueError) as exc:
        logger.debug("cuda-python cannot describe GPU 0: %s", exc)
    smi = shutil.which("nvidia-smi")
    if smi is not None:
        try:
            out = subprocess.run(
                [smi, "--query-gpu=name,compute_cap", "--format=csv,noheader", "--id=0"],
                capture_output=True,
                text=True,
                timeout=30,
                check=True,
            ).stdout
            name, capability = out.strip().splitlines()[0].rsplit(",", 1)
            major, minor = capability.strip().split(".")
            return {"gpu": name.strip(), "compute_capability": [int(major), int(minor)]}
        except (OSError, subprocess.SubprocessError, ValueError, IndexError) as exc:
            logger.debug("nvidia-smi cannot describe GPU 0: %s", exc)
    return {"gpu": None, "compute_capability": None}


def optimisation_profile(batch: BatchPlan) -> dict[str, int]:
    """``{"min", "opt", "max"}`` batch sizes of the engine's optimisation profile.

    Raises:
        ExportError: When ``min_batch`` is below 1 or above ``max_batch``.
    """
    if not 1 <= batch.min_batch <= batch.max_batch:
        raise ExportError(
            f"TensorRT batch range [{batch.min_batch}, {batch.max_batch}] needs 1 <= min_batch <= max_batch"
        )
    inside = [b for b in batch.fixed if batch.min_batch <= b <= batch.max_batch]
    return {"min": batch.min_batch, "opt": max(inside) if inside else batch.min_batch, "max": batch.max_batch}


class TensorRTExporter(FormatExporter):
    """TensorRT engines built from the ONNX of each graph (needs the ``tensorrt`` package and a GPU)."""

    name = "tensorrt"
    backend = "tensorrt"
    extra = "tensorrt"

    def _unavailable_reason(self) -> str | None:
        from edgefuse.runtime.backends.base import module_found

        missing = []
        if not module_found("tensorrt"):
            missing.append(f"the Python package 'tensorrt' is not installed ({_INSTALL})")
        gpu = gpu_unavailable_reason()
        if gpu:
            missing.append(gpu)
        if not module_found("onnx"):
            missing.append("the Python package 'onnx' is not installed (`pip install 'edgefuse[export]'`)")
        if missing:
            return f"TensorRT is unavailable here: {'; and '.join(missing)}"
        return None

    def _runner_unavailable_reason(self) -> str | None:
        from edgefuse.runtime.registry import availability

        # Parity runs through the runtime's TensorRT backend, which needs cuda-python too (building does not).
        return self._unavailable_reason() or availability(self.backend)[1]

    def write_onnx_for_tensorrt(self, graph: GraphSpec, folder: Path, batch: BatchPlan) -> Converted:
        """Write (and check with ``onnx.checker``) the ONNX a TensorRT engine of ``graph`` is built from.

        Works without TensorRT or a GPU. The result describes ``<graph>.onnx`` like the ONNX exporter's
        (so :class:`~edgefuse.export.formats.onnx.OnnxExporter` can inspect it) plus the optimisation
        profile an engine would get.

        Raises:
            BackendUnavailableError: When the ONNX exporter's packages are missing.
            ExportValidationError: When the file fails ``onnx.checker``.
        """
        from edgefuse.export.formats.onnx import OnnxExporter

        converted = OnnxExporter().convert(graph, folder, "fp32", batch)
        converted.details["consumer"] = "tensorrt"
        converted.details["tensorrt_profile"] = optimisation_profile(batch)
        return converted

    def _convert(self, graph: GraphSpec, folder: Path, precision: str, batch: BatchPlan) -> Converted:
        if precision not in ("fp32", "fp16"):
            raise ExportError(f"TensorRT precision {precision!r} is not one of ['fp32', 'fp16']")
        import tensorrt as trt

        fp16_flag = None
        if precision == "fp16":
            fp16_flag = getattr(trt.BuilderFlag, "FP16", None)
            if fp16_flag is None:
                raise ExportError(
                    f"TensorRT {trt.__version__} has no BuilderFlag.FP16 (removed in TensorRT 11 with weak "
                    "typing): an fp16 engine there must be built from an fp16 ONNX (strong typing). Export "
                    "fp32, or use TensorRT 10.x for --precision fp16"
                )
        profile_batch = optimisation_profile(batch)
        onnx_converted = self.write_onnx_for_tensorrt(graph, folder, batch)
        flags = [fp16_flag] if fp16_flag is not None else []
        return self._build_engine(graph, folder, onnx_converted, profile_batch, flags, precision)

    def _build_engine(
        self,
        graph: GraphSpec,
        folder: Path,
        onnx_converted: Converted,
        profile_batch: dict[str, int],
        flags: list[Any],
        precision: str,
    ) -> Converted:
        """Parse ``onnx_converted``'s ONNX, build an engine with ``flags`` and write ``<graph>.engine``."""
        import tensorrt as trt

        onnx_rel = onnx_converted.files[0]
        trt_logger = trt.Logger(trt.Logger.WARNING)
        builder = trt.Builder(trt_logger)
        network = builder.create_network(0)  # TensorRT 10: every network is explicit-batch
        parser = trt.OnnxParser(network, trt_logger)
        if not parser.parse_from_file(str(folder / onnx_rel)):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise ExportError(f"TensorRT's ONNX parser rejected {onnx_rel}: {errors}")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
        for flag in flags:
            config.set_flag(flag)
        profile = builder.create_optimization_profile()
        specs = {s.name: s for s in graph.inputs}
        inputs = [network.get_input(i) for i in range(network.num_inputs)]
        for tensor in inputs:
            spec = specs.get(tensor.name)
            if spec is None:
                raise ExportValidationError(f"{onnx_rel}: TensorRT sees an unknown input {tensor.name!r}")
            shapes = [(profile_batch[k], *spec.shape) for k in ("min", "opt", "max")]
            profile.set_shape(tensor.name, *shapes)
        config.add_optimization_profile(profile)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise ExportError(
                f"TensorRT {trt.__version__} could not build an engine for {graph.name} "
                f"(precision {precision}, batch {profile_batch}); see the TensorRT log above"
            )
        rel = f"{graph.name}.engine"
        (folder / rel).write_bytes(bytes(serialized))
        return Converted(
            files=[rel, onnx_rel],
            batch={"dynamic": True, "min": profile_batch["min"], "max": profile_batch["max"]},
            details={
                "converter": f"tensorrt {trt.__version__}",
                "precision": precision,
                "profile": profile_batch,
                "onnx": onnx_converted.details,
                **gpu_identity(),
                "note": "an engine runs only on this GPU architecture and TensorRT version; rebuild it "
                "from the ONNX beside it elsewhere",
            },
        )

    def _int8_unavailable_reason(self) -> str | None:
        return self.unavailable_reason() or missing_package(
            "onnxruntime", "onnxruntime", "int8 TensorRT (onnxruntime.quantization writes the QDQ ONNX)"
        )

    def _quantize(
        self,
        folder: Path,
        converted: Converted,
        graph: GraphSpec,
        calibration: Sequence[Mapping[str, np.ndarray]],
        options: QuantOptions,
    ) -> Converted:
        """An int8 engine built from a QDQ ONNX (explicit quantization), replacing the fp32 engine.

        The QDQ ONNX (:func:`~edgefuse.export.quantize.quantize_onnx` with symmetric int8 activations:
        TensorRT takes zero points of 0 only) is staged beside the fp32 files and replaces the fp32 ONNX
        once the engine is built, so a device can rebuild the same int8 engine from it; on any failure
        the fp32 engine and ONNX are left as they were. The engine is built
        weakly typed with ``BuilderFlag.INT8`` where the flag exists (TensorRT 10): the Q/DQ layers then
        run in int8 and the rest stays fp32. Where the flag is absent (a strongly typed TensorRT) the Q/DQ
        layers alone set the precision, and the manifest says no flag was set. The optimisation profile
        is the fp32 engine's.
        """
        import tensorrt as trt
        from edgefuse.export.quantize import quantize_onnx

        onnx_rel = next((f for f in converted.files if f.endswith(".onnx")), None)
        if onnx_rel is None or not (folder / onnx_rel).is_file():
            raise QuantizationError(
                f"{graph.name}: the fp32 TensorRT conversion has no ONNX beside its engine ({converted.files}); "
                "convert with precision fp32 first"
            )
        profile_batch = dict(converted.details.get("profile") or {})
        if set(profile_batch) != {"min", "opt", "max"}:
            raise QuantizationError(
                f"{graph.name}: the fp32 TensorRT conversion records no optimisation profile "
                f"({converted.details.get('profile')!r}); convert with precision fp32 first"
            )
        # staged beside the fp32 files: on any failure the fp32 engine and its ONNX stay as they were
        staged = f"{graph.name}.int8.onnx"
        try:
            details = quantize_onnx(
                folder / onnx_rel, folder / staged, calibration, options, symmetric_activations=True
            )
            onnx_details = {
                **dict(converted.details.get("onnx") or {}),
                "precision": "int8",
                "quantization": details,
            }
            int8_flag = getattr(trt.BuilderFlag, "INT8", None)
            built = self._build_engine(
                graph,
                folder,
                Converted([staged], dict(converted.batch), onnx_details),
                profile_batch,
                [int8_flag] if int8_flag is not None else [],
                "int8",
            )
            (folder / staged).replace(folder / onnx_rel)
        finally:
            (folder / staged).unlink(missing_ok=True)
        built.files = [built.files[0], onnx_rel]
        built.details["quantization"] = {
            **details,
            "explicit_quantization": "QDQ ONNX",
            "builder_flag": "INT8" if int8_flag is not None else "none (TensorRT without BuilderFlag.INT8)",
        }
        return built

    def _load_runner(self, folder: Path, converted: Converted, graph: GraphSpec) -> Runner:
        """Run the engine with the runtime's TensorRT backend: the exact device code path."""
        return self._runtime_runner(folder, converted, graph)

    def _inspect(self, folder: Path, converted: Converted, graph: GraphSpec) -> dict[str, Any]:
        from edgefuse.errors import BackendUnavailableError
        from edgefuse.export.formats.onnx import OnnxExporter

        engine_rel = converted.files[0]
        onnx_rel = next((f for f in converted.files if f.endswith(".onnx")), None)
        report: dict[str, Any] = {}
        if onnx_rel is not None:
            report["onnx"] = OnnxExporter().inspect(folder, Converted([onnx_rel], converted.batch), graph)
        if not engine_rel.endswith(".engine"):
            return report
        reason = self.unavailable_reason()
        if reason:
            raise BackendUnavailableError(f"inspecting {engine_rel}: {reason}")
        import tensorrt as trt

        engine = _deserialize(folder / engine_rel)
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if sorted(inputs) != sorted(s.name for s in graph.inputs):
            raise ExportValidationError(
                f"{engine_rel}: inputs {inputs}; expected {[s.name for s in graph.inputs]}"
            )
        if outputs != [o.name for o in graph.outputs]:
            raise ExportValidationError(
                f"{engine_rel}: outputs {outputs}; expected {[o.name for o in graph.outputs]}"
            )
        lo, hi = converted.batch.get("min"), converted.batch.get("max")
        for spec in (*graph.inputs, *graph.outputs):
            shape = list(engine.get_tensor_shape(spec.name))
            dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(spec.name)))
            if shape != [-1, *spec.shape] or dtype != np.dtype(spec.dtype):
                raise ExportValidationError(
                    f"{engine_rel}: {spec.name!r} is {shape} {dtype}; expected [-1, "
                    f"{', '.join(map(str, spec.shape))}] {spec.dtype}"
                )
        for spec in graph.inputs:
            mins, _opt, maxs = engine.get_tensor_profile_shape(spec.name, 0)
            if mins[0] != lo or maxs[0] != hi:
                raise ExportValidationError(
                    f"{engine_rel}: input {spec.name!r} profile batch [{mins[0]}, {maxs[0]}]; expected [{lo}, {hi}]"
                )
        report.update({"io_tensors": names, "layers": engine.num_layers, "profile": [lo, hi]})
        return report


def _deserialize(path: Path) -> Any:
    import tensorrt as trt

    runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    engine = runtime.deserialize_cuda_engine(path.read_bytes())
    if engine is None:
        raise ExportValidationError(
            f"{path.name} does not deserialize with TensorRT {trt.__version__} on this GPU (engines are "
            "specific to the GPU architecture and TensorRT version that built them)"
        )
    return engine
