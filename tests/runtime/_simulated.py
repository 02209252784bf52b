"""Simulated libraries for backends that cannot run here (coremltools on Linux, TensorRT + CUDA).

Shared by the backend tests: a module installed in ``sys.modules`` for the test, and a CUDA runtime
whose device memory is host memory (every allocation is tracked in ``mem``, so a test can check that
buffers are reused and freed).
"""

from __future__ import annotations

import ctypes
import importlib.machinery
import sys
import types
from collections.abc import Callable
from typing import Any

import numpy as np


def fake_module(monkeypatch: Any, name: str, **attrs: Any) -> types.ModuleType:
    """Install a module ``name`` with ``attrs`` in ``sys.modules`` for this test (monkeypatch undoes it)."""
    module = types.ModuleType(name)
    module.__spec__ = importlib.machinery.ModuleSpec(name, None)
    for key, value in attrs.items():
        setattr(module, key, value)
    monkeypatch.setitem(sys.modules, name, module)
    return module


class SimulatedCudart:
    """The slice of ``cuda.cudart`` the TensorRT backend calls; device pointers are host buffers."""

    cudaError_t = types.SimpleNamespace(cudaSuccess=0)  # noqa: N815
    cudaMemcpyKind = types.SimpleNamespace(cudaMemcpyHostToDevice=1, cudaMemcpyDeviceToHost=2)  # noqa: N815

    def __init__(self) -> None:
        self.mem: dict[int, ctypes.Array] = {}

    def cudaGetDeviceCount(self):  # type: ignore[no-untyped-def]  # noqa: N802
        return 0, 1

    def cudaGetErrorString(self, err):  # type: ignore[no-untyped-def]  # noqa: N802
        return 0, b"simulated error"

    def cudaStreamCreate(self):  # type: ignore[no-untyped-def]  # noqa: N802
        return 0, 7

    def cudaStreamSynchronize(self, stream):  # type: ignore[no-untyped-def]  # noqa: N802
        return (0,)

    def cudaStreamDestroy(self, stream):  # type: ignore[no-untyped-def]  # noqa: N802
        return (0,)

    def cudaMalloc(self, nbytes):  # type: ignore[no-untyped-def]  # noqa: N802
        buf = ctypes.create_string_buffer(nbytes)
        self.mem[ctypes.addressof(buf)] = buf
        return 0, ctypes.addressof(buf)

    def cudaFree(self, ptr):  # type: ignore[no-untyped-def]  # noqa: N802
        del self.mem[ptr]
        return (0,)

    def cudaMemcpyAsync(self, dst, src, nbytes, kind, stream):  # type: ignore[no-untyped-def]  # noqa: N802
        assert (dst in self.mem) if kind == 1 else (src in self.mem)  # the device side is ours
        ctypes.memmove(dst, src, nbytes)
        return (0,)


def simulated_tensorrt(
    monkeypatch: Any,
    inputs: dict[str, int],
    outputs: dict[str, int],
    compute: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]],
    max_rows: int = 4,
) -> tuple[SimulatedCudart, list[int]]:
    """Install a ``tensorrt`` module whose engines run ``compute`` on float32 ``(rows, width)`` tensors.

    Every engine file holding ``b"engine"`` deserializes (anything else does not), with one optimisation
    profile of 1..``max_rows`` rows; inputs and outputs are named with their widths. The backend's CUDA
    runtime is a :class:`SimulatedCudart` and its requirement check is skipped.

    Returns:
        The simulated CUDA runtime (its ``mem`` shows live buffers) and the row count of every execution.
    """
    from edgefuse.runtime.backends import tensorrt as trt_backend

    widths = {**inputs, **outputs}
    cudart = SimulatedCudart()
    executed: list[int] = []

    class Context:
        def __init__(self) -> None:
            self.rows = 0
            self.addresses: dict[str, int] = {}

        def set_input_shape(self, name, shape):  # type: ignore[no-untyped-def]
            self.rows = shape[0]
            return 1 <= shape[0] <= max_rows

        def get_tensor_shape(self, name):  # type: ignore[no-untyped-def]
            return (self.rows, widths[name])

        def set_tensor_address(self, name, ptr):  # type: ignore[no-untyped-def]
            self.addresses[name] = ptr

        def execute_async_v3(self, stream):  # type: ignore[no-untyped-def]
            got = {
                name: np.frombuffer(
                    ctypes.string_at(self.addresses[name], self.rows * w * 4), np.float32
                ).reshape(self.rows, w)
                for name, w in inputs.items()
            }
            for name, value in compute(got).items():
                out = np.ascontiguousarray(value, dtype=np.float32)
                ctypes.memmove(self.addresses[name], out.ctypes.data, out.nbytes)
            executed.append(self.rows)
            return True

    class Engine:
        num_io_tensors = len(widths)

        def get_tensor_name(self, i):  # type: ignore[no-untyped-def]
            return list(widths)[i]

        def get_tensor_mode(self, name):  # type: ignore[no-untyped-def]
            return "INPUT" if name in inputs else "OUTPUT"

        def get_tensor_dtype(self, name):  # type: ignore[no-untyped-def]
            return "float32"

        def get_tensor_shape(self, name):  # type: ignore[no-untyped-def]
            return (-1, widths[name])

        def get_tensor_profile_shape(self, name, index):  # type: ignore[no-untyped-def]
            w = widths[name]
            return (1, w), (max_rows, w), (max_rows, w)

        def create_execution_context(self):  # type: ignore[no-untyped-def]
            return Context()

    class Runtime:
        def __init__(self, logger) -> None:  # type: ignore[no-untyped-def]
            pass

        def deserialize_cuda_engine(self, data):  # type: ignore[no-untyped-def]
            return Engine() if data == b"engine" else None

    fake_module(
        monkeypatch,
        "tensorrt",
        Logger=type("Logger", (), {"WARNING": 2, "__init__": lambda self, level: None}),
        Runtime=Runtime,
        TensorIOMode=types.SimpleNamespace(INPUT="INPUT", OUTPUT="OUTPUT"),
        nptype=lambda dtype: np.float32,
    )
    monkeypatch.setattr(trt_backend, "_cudart", lambda: cudart)
    monkeypatch.setattr(trt_backend.TensorRTBackend, "_requirements", classmethod(lambda cls: []))
    return cudart, executed


def simulated_coremltools(monkeypatch: Any, ml_model: type) -> None:
    """Install a ``coremltools`` whose ``models.MLModel`` is ``ml_model``; skip the backend's requirement check."""
    from edgefuse.runtime.backends.coreml import CoreMLBackend

    fake_module(
        monkeypatch,
        "coremltools",
        models=types.SimpleNamespace(MLModel=ml_model),
        ComputeUnit=types.SimpleNamespace(ALL="ALL"),
    )
    monkeypatch.setattr(CoreMLBackend, "_requirements", classmethod(lambda cls: []))
