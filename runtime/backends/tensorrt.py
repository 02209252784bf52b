"""TensorRT 10: runs serialized engines (``.engine``/``.plan``) on an NVIDIA GPU, without torch.

Dependencies: the ``tensorrt`` Python package (TensorRT 10; ``pip install 'edgefuse[tensorrt]'``) and
``cuda-python`` (``pip install cuda-python``) for device buffers, copies and a stream, plus an NVIDIA GPU
with its driver. No torch, no pycuda.

How a batch runs (TensorRT 10 "name-based" API):

1. ``trt.Runtime(logger).deserialize_cuda_engine(bytes)`` and ``engine.create_execution_context()``;
   inputs/outputs are found with ``engine.num_io_tensors``, ``get_tensor_name`` and ``get_tensor_mode``.
2. The batch is split into chunks the engine accepts: at most the largest batch of optimization
   profile 0 (``engine.get_tensor_profile_shape(name, 0)``), zero-padded up to its smallest batch or to
   a static batch.
3. Per chunk: ``context.set_input_shape(name, shape)`` for each input, device buffers (grown on demand,
   reused between calls), ``cudaMemcpyAsync`` host -> device, ``context.set_tensor_address`` for every
   tensor, ``context.execute_async_v3(stream)``, ``cudaMemcpyAsync`` device -> host and
   ``cudaStreamSynchronize``.

An execution context is not thread-safe, so :meth:`Backend.run` serialises calls. Not verified in this
repository's CI (no TensorRT, no GPU): the code follows NVIDIA's documented TensorRT 10 Python API.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from edgefuse.runtime.backends.base import Backend, module_found, plan_chunks, run_chunked
from edgefuse.runtime.errors import BackendError

__all__ = ["TensorRTBackend"]

_GPU_NODES = ("/dev/nvidia0", "/dev/nvhost-ctrl-gpu", "/dev/nvgpu/igpu0/ctrl", "/dev/dxg")


def _gpu_reason() -> str | None:
    """Why no NVIDIA GPU is visible (device nodes or ``nvidia-smi``), without importing anything."""
    if any(os.path.exists(p) for p in _GPU_NODES) or shutil.which("nvidia-smi"):
        return None
    return "no NVIDIA GPU is visible here (no /dev/nvidia0 or Jetson GPU node, no nvidia-smi on PATH)"


def _cudart() -> Any:
    """The CUDA runtime bindings of cuda-python (``cuda.bindings.runtime``, or ``cuda.cudart`` before 12.6)."""
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        from cuda import cudart  # type: ignore[no-redef]
    return cudart


def _check(cudart: Any, result: Any, what: str) -> Any:
    """Unpack a cuda-python result tuple ``(err, *values)``; raise BackendError on an error code."""
    err, *values = result if isinstance(result, tuple) else (result,)
    if err != cudart.cudaError_t.cudaSuccess:
        _, text = cudart.cudaGetErrorString(err)
        raise BackendError(f"tensorrt: {what} failed: {text.decode() if isinstance(text, bytes) else text}")
    return values[0] if len(values) == 1 else values


class TensorRTBackend(Backend):
    """TensorRT backend (``pip install 'edgefuse[tensorrt]' cuda-python``; NVIDIA GPU)."""

    name: ClassVar[str] = "tensorrt"
    formats: ClassVar[tuple[str, ...]] = ("tensorrt",)
    package: ClassVar[str] = "tensorrt"
    module: ClassVar[str] = "tensorrt"
    extra: ClassVar[str] = "tensorrt"
    thread_safe: ClassVar[bool] = False

    def __init__(self) -> None:
        super().__init__()
        self._trt: Any = None
        self._cudart: Any = None
        self._logger: Any = None
        self._engine: Any = None
        self._context: Any = None
        self._stream: Any = None
        self._buffers: dict[str, tuple[int, int]] = {}  # tensor -> (device pointer, capacity in bytes)
        self._in_map: dict[str, str] = {}
        self._out_map: dict[str, str] = {}
        self._dtypes: dict[str, np.dtype] = {}
        self._fixed: tuple[int, ...] | None = None
        self._max: int | None = None
        self._min = 1

    @classmethod
    def _requirements(cls) -> list[str]:
        reasons = []
        if not module_found("cuda"):
            reasons.append(
                "the Python package 'cuda-python' is not installed (device buffers without torch); "
                "install it with `pip install cuda-python`"
            )
        gpu = _gpu_reason()
        if gpu:
            reasons.append(gpu)
        return reasons

    def _load(self, path: Path, threads: int | None, batch: dict[str, Any], details: dict[str, Any]) -> None:
        import tensorrt as trt

        self._trt, self._cudart = trt, _cudart()
        count = _check(self._cudart, self._cudart.cudaGetDeviceCount(), "cudaGetDeviceCount")
        if not count:
            raise BackendError("tensorrt: the CUDA runtime sees no GPU")
        self._logger = trt.Logger(trt.Logger.WARNING)
        runtime = trt.Runtime(self._logger)
        self._engine = runtime.deserialize_cuda_engine(path.read_bytes())
        if self._engine is None:
            raise BackendError(
                f"tensorrt: cannot deserialize {path} (built by another TensorRT version or for another GPU?); "
                "rebuild the engine on this device from the artifact's ONNX"
            )
        self._context = self._engine.create_execution_context()
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        inputs = [n for n in names if self._engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        given_in = details.get("input_names") or {}
        given_out = details.get("output_names") or {}
        self._in_map = {s.name: str(given_in.get(s.name, s.name)) for s in self._inputs}
        self._out_map = {s.name: str(given_out.get(s.name, s.name)) for s in self._outputs}
        for graph_name, engine_name in [*self._in_map.items(), *self._out_map.items()]:
            if engine_name not in names:
                raise BackendError(
                    f"tensorrt: {path} has no tensor {engine_name!r} for {graph_name!r}; it has {names}"
                )
        if set(inputs) - set(self._in_map.values()):
            raise BackendError(
                f"tensorrt: {path} needs inputs {sorted(set(inputs) - set(self._in_map.values()))}"
            )
        self._dtypes = {n: np.dtype(trt.nptype(self._engine.get_tensor_dtype(n))) for n in names}
        first = self._in_map[self._inputs[0].name]
        static = int(self._engine.get_tensor_shape(first)[0])
        if static > 0:
            self._fixed = (static,)
        else:
            smallest, _, largest = self._engine.get_tensor_profile_shape(first, 0)
            self._min, self._max = int(smallest[0]), int(largest[0])
        self._stream = _check(self._cudart, self._cudart.cudaStreamCreate(), "cudaStreamCreate")

    def _buffer(self, name: str, nbytes: int) -> int:
        ptr, capacity = self._buffers.get(name, (0, 0))
        if capacity < nbytes:
            if ptr:
                _check(self._cudart, self._cudart.cudaFree(ptr), "cudaFree")
            ptr = int(_check(self._cudart, self._cudart.cudaMalloc(max(nbytes, 1)), f"cudaMalloc({nbytes})"))
            self._buffers[name] = (ptr, nbytes)
        return ptr

    def _call(self, part: dict[str, np.ndarray], size: int) -> dict[str, np.ndarray]:
        cudart, ctx, stream = self._cudart, self._context, self._stream
        h2d = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        d2h = cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        keep = []  # host arrays must outlive the async copies
        for graph_name, engine_name in self._in_map.items():
            host = np.ascontiguousarray(part[graph_name], dtype=self._dtypes[engine_name])
            keep.append(host)
            if not ctx.set_input_shape(engine_name, tuple(host.shape)):
                raise BackendError(
                    f"tensorrt: the engine rejects shape {host.shape} for input {engine_name!r}"
                )
            ptr = self._buffer(engine_name, host.nbytes)
            _check(
                cudart, cudart.cudaMemcpyAsync(ptr, host.ctypes.data, host.nbytes, h2d, stream), "copy to GPU"
            )
            ctx.set_tensor_address(engine_name, ptr)
        results = {}
        for graph_name, engine_name in self._out_map.items():
            shape = tuple(int(d) for d in ctx.get_tensor_shape(engine_name))
            host = np.empty(shape, dtype=self._dtypes[engine_name])
            ctx.set_tensor_address(engine_name, self._buffer(engine_name, host.nbytes))
            results[graph_name] = host
        if not ctx.execute_async_v3(int(stream)):
            raise BackendError("tensorrt: execute_async_v3 failed (see the TensorRT log above)")
        for graph_name, engine_name in self._out_map.items():
            host = results[graph_name]
            ptr, _ = self._buffers[engine_name]
            _check(
                cudart,
                cudart.cudaMemcpyAsync(host.ctypes.data, ptr, host.nbytes, d2h, stream),
                "copy to host",
            )
        _check(cudart, cudart.cudaStreamSynchronize(stream), "cudaStreamSynchronize")
        del keep
        return {n: (v.astype(np.float32) if v.dtype == np.float16 else v) for n, v in results.items()}

    def _run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        batch = next(iter(feeds.values())).shape[0]
        chunks = plan_chunks(batch, fixed=self._fixed, max_batch=self._max, min_batch=self._min)
        return run_chunked(feeds, chunks, self._call)

    def _close(self) -> None:
        if self._cudart is not None:
            for ptr, _ in self._buffers.values():
                self._cudart.cudaFree(ptr)
            if self._stream is not None:
                self._cudart.cudaStreamDestroy(self._stream)
        self._buffers.clear()
        self._context = self._engine = self._stream = None
