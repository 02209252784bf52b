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
    # GPU tests run engines through the runtime's TensorRT backend, whose buffers need cuda-python.
    try:
        cuda_python = importlib.util.find_spec("cuda") is not None
    except (ImportError, ValueError):
        cuda_python = False
    if not cuda_python:
        return "needs cuda-python for GPU buffers (module 'cuda' not found; `pip install cuda-python`)"
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


def make_toy_dataset(
    modalities: tuple[str, ...] = ("audio", "image", "imu"),
    n: tuple[int, int, int] = (240, 80, 80),
    seed: int = 0,
):  # type: ignore[no-untyped-def]
    """A small dataset of three differently shaped modalities (the second contract model of the tests).

    audio (1, 12, 16) and image (1, 8, 8) go to Conv2d encoders, imu (12,) to an MLP encoder; each
    modality carries noisy evidence of the label.
    """
    import numpy as np
    from edgefuse.data.base import MultimodalDataset, Split
    from edgefuse.specs import ModalitySpec

    shapes = {"audio": (1, 12, 16), "image": (1, 8, 8), "imu": (12,)}
    noise = {"audio": 2.0, "image": 1.5, "imu": 1.0}
    rng = np.random.default_rng(seed)
    protos = {m: rng.standard_normal((4, *shapes[m])).astype(np.float32) for m in modalities}

    def split(count: int) -> Split:
        y = rng.integers(0, 4, count)
        inputs = {
            m: (protos[m][y] + noise[m] * rng.standard_normal((count, *shapes[m]))).astype(np.float32)
            for m in modalities
        }
        return Split(inputs, y.astype(np.int64))

    return MultimodalDataset(
        "toy",
        tuple(ModalitySpec(m, shapes[m]) for m in modalities),
        ("a", "b", "c", "d"),
        {"train": split(n[0]), "val": split(n[1]), "test": split(n[2])},
        {"synthetic": True},
    )


@pytest.fixture(scope="session")
def toy_dataset_factory():  # type: ignore[no-untyped-def]
    """:func:`make_toy_dataset` itself, for tests that need other modalities or sizes."""
    return make_toy_dataset


@pytest.fixture(scope="session")
def toy_dataset():  # type: ignore[no-untyped-def]
    """Three-modality toy dataset (session-scoped, read-only)."""
    return make_toy_dataset()


#: Packages no device install has: torch and the converters. A device has one runtime extra on top.
_NOT_ON_DEVICE = ("torch", "onnx", "coremltools", "tensorrt")
#: Every optional package whose import the device tests look for (the device's own runtime excluded).
_HEAVY_MODULES = ("torch", "onnx", "coremltools", "tensorrt", "ai_edge_litert", "onnxruntime", "litert_torch")
#: The runtime package of each device variant of :func:`run_cli_on_device`.
DEVICE_RUNTIMES = {"onnxruntime": "onnxruntime", "litert": "ai_edge_litert"}


def _blocker(blocked: tuple[str, ...]) -> str:
    """Code of a meta-path finder that makes ``import NAME`` of each blocked package fail, as when it is
    not installed (``ModuleNotFoundError`` naming the package, what a real missing package raises)."""
    return (
        "import sys\n"
        "class _Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name.split('.')[0] in {set(blocked)!r}:\n"
        "            raise ModuleNotFoundError(f'blocked for the test: {name}', name=name)\n"
        "sys.meta_path.insert(0, _Block())\n"
    )


# A meta-path finder that makes `import torch` (and the converters, and LiteRT) fail: a device with only
# numpy + onnxruntime.
_BLOCK_HEAVY = _blocker((*_NOT_ON_DEVICE, "ai_edge_litert"))


@pytest.fixture(scope="session")
def run_without_torch():  # type: ignore[no-untyped-def]
    """``run(code) -> CompletedProcess``: Python ``code`` in a fresh interpreter without torch.

    torch, onnx, coremltools, ai_edge_litert and tensorrt cannot be imported there; stdout and stderr
    are captured as text.
    """
    import subprocess

    def run(code: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", _BLOCK_HEAVY + code], capture_output=True, text=True, timeout=120
        )

    return run


@pytest.fixture(scope="session")
def run_cli_on_device():  # type: ignore[no-untyped-def]
    """``run(runtime, args) -> CompletedProcess``: ``edgefuse ARGS`` on a simulated device install.

    ``runtime`` is ``"onnxruntime"`` (``pip install 'edgefuse[onnxruntime]'``) or ``"litert"``
    (``pip install 'edgefuse[litert]'``): in a fresh interpreter, torch, onnx, coremltools, tensorrt
    and the other runtime's package cannot be imported. The CLI runs through :func:`edgefuse.cli.main`;
    its exit status is the process's. The last line of stderr is always
    ``imported-heavy: [...]``: the optional packages (the device's own runtime excluded) and
    ``edgefuse.export`` modules that were imported, ``[]`` when none.
    """
    import subprocess

    def run(runtime: str, args: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
        own = DEVICE_RUNTIMES[runtime]
        other = tuple(m for m in DEVICE_RUNTIMES.values() if m != own)
        watched = tuple(m for m in _HEAVY_MODULES if m != own)
        code = _blocker((*_NOT_ON_DEVICE, *other)) + (
            "from edgefuse.cli import main\n"
            "try:\n"
            f"    code = main({[str(a) for a in args]!r})\n"
            "finally:\n"
            f"    heavy = sorted(m for m in sys.modules if m.split('.')[0] in {set(watched)!r}\n"
            "                   or m.startswith('edgefuse.export'))\n"
            "    print('imported-heavy:', heavy, file=sys.stderr)\n"
            "sys.exit(code)\n"
        )
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)

    return run
