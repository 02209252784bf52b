"""Shared test configuration: the one hook that turns an unmet marker into a skip with its reason."""

from __future__ import annotations

import importlib.util
import shutil
import sys

import pytest

# Python package each runtime backend needs (the runtime registry gives the full reason once it exists).
_BACKEND_PACKAGES = {
    "onnxruntime": "onnxruntime",
    "litert": "ai_edge_litert",
    "coreml": "coremltools",
    "tensorrt": "tensorrt",
    "torch": "torch",
}


def _gpu_reason() -> str | None:
    if shutil.which("nvidia-smi") is None:
        return "needs an NVIDIA GPU (nvidia-smi not found)"
    return None


def _backend_reason(name: str) -> str | None:
    package = _BACKEND_PACKAGES.get(name)
    if package is None:
        return f"unknown backend {name!r} in a backend() marker; known: {sorted(_BACKEND_PACKAGES)}"
    if importlib.util.find_spec(package) is None:
        return f"backend {name!r} unavailable: Python package {package!r} is not installed"
    return None


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip, with the reason, tests whose `gpu`, `macos` or `backend(name)` requirement is not met here."""
    if item.get_closest_marker("macos") and sys.platform != "darwin":
        pytest.skip(f"needs macOS (Core ML prediction); this is {sys.platform}")
    if item.get_closest_marker("gpu"):
        reason = _gpu_reason()
        if reason:
            pytest.skip(reason)
    for marker in item.iter_markers("backend"):
        for name in marker.args:
            reason = _backend_reason(name)
            if reason:
                pytest.skip(reason)
