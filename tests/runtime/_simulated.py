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
from typing import Any


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
