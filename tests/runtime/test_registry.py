"""The lazy backend registry: availability with reasons, choice from an ordered list, cheap imports."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from typing import ClassVar

import pytest
from edgefuse.errors import BackendUnavailableError
from edgefuse.runtime import InputError, availability, available_backends, choose
from edgefuse.runtime.backends.base import Backend, module_found
from edgefuse.runtime.backends.onnxruntime import OnnxRuntimeBackend
from edgefuse.runtime.registry import BACKENDS, backend_class, choose_with_reasons

# Whatever the platform, formats per backend are fixed.
FORMATS = {
    "onnxruntime": ("onnx",),
    "litert": ("tflite",),
    "coreml": ("coreml",),
    "tensorrt": ("tensorrt",),
    "torch": ("checkpoint",),
}
EXTRAS = {"torch": "train"}


def test_registered_backends_and_their_attributes() -> None:
    assert list(BACKENDS) == ["onnxruntime", "litert", "coreml", "tensorrt", "torch"]
    for name, formats in FORMATS.items():
        cls = backend_class(name)
        assert issubclass(cls, Backend)
        assert cls.name == name
        assert cls.formats == formats
        assert cls.package
        assert cls.module
        assert cls.extra == EXTRAS.get(name, name)
    assert backend_class("litert").package == "ai-edge-litert"
    with pytest.raises(InputError, match=r"unknown backend 'onxruntime' \(did you mean 'onnxruntime'\?\)"):
        backend_class("onxruntime")


def test_onnxruntime_available_here() -> None:
    assert availability("onnxruntime") == (True, None)
    assert "onnxruntime" in available_backends()


@pytest.mark.skipif(sys.platform == "darwin", reason="checks the reason given off macOS")
def test_coreml_unavailable_off_macos_with_reason() -> None:
    ok, reason = availability("coreml")
    assert not ok
    assert reason is not None
    assert "macOS" in reason
    assert sys.platform in reason
    assert "coreml" not in available_backends()


def test_tensorrt_reason_names_package_extra_and_gpu() -> None:
    ok, reason = availability("tensorrt")
    if importlib.util.find_spec("tensorrt") is not None and ok:
        pytest.skip("TensorRT is installed and usable here")
    assert not ok
    assert reason is not None
    if importlib.util.find_spec("tensorrt") is None:
        assert "the Python package 'tensorrt' is not installed" in reason
        assert "pip install 'edgefuse[tensorrt]'" in reason
    if importlib.util.find_spec("cuda") is None:
        assert "cuda-python" in reason


def test_missing_package_reason_names_package_and_extra() -> None:
    class Fake(Backend):
        name: ClassVar[str] = "fake"
        formats: ClassVar[tuple[str, ...]] = ("onnx",)
        package: ClassVar[str] = "fake-runtime-pkg"
        module: ClassVar[str] = "edgefuse_no_such_module_xyz"
        extra: ClassVar[str] = "fakeextra"

    reason = Fake.unavailable_reason()
    assert reason == (
        "backend 'fake': the Python package 'fake-runtime-pkg' is not installed; "
        "install it with `pip install 'edgefuse[fakeextra]'`"
    )
    with pytest.raises(BackendUnavailableError, match="fake-runtime-pkg"):
        Fake().load(__file__, [], [])


def test_broken_install_reason(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "edgefuse_broken_runtime_pkg.py").write_text("raise RuntimeError('numpy ABI mismatch')\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    class Broken(Backend):
        name: ClassVar[str] = "broken"
        package: ClassVar[str] = "broken-pkg"
        module: ClassVar[str] = "edgefuse_broken_runtime_pkg"
        extra: ClassVar[str] = "broken"

    reason = Broken.unavailable_reason() or ""
    assert "importing 'edgefuse_broken_runtime_pkg' failed (RuntimeError: numpy ABI mismatch)" in reason
    assert "edgefuse[broken]" in reason


def test_unknown_names_and_the_torch_reference_backend() -> None:
    from edgefuse.runtime.backends.torch import TorchBackend

    assert TorchBackend.formats == ("checkpoint",)
    ok, reason = availability("torch")
    assert ok == (module_found("torch")), reason
    ok, reason = availability("tensorflow")
    assert not ok
    assert "unknown backend 'tensorflow'" in (reason or "")


def test_choose_walks_the_list_in_order() -> None:
    assert choose(["litert", "onnxruntime"], "onnx") is OnnxRuntimeBackend
    assert choose("onnxruntime", "onnx") is OnnxRuntimeBackend
    cls, skipped = choose_with_reasons(["torch", "tensorrt", "onnxruntime", "litert"], "onnx")
    assert cls is OnnxRuntimeBackend
    assert [name for name, _ in skipped] == ["torch", "tensorrt"]
    assert "runs ['checkpoint'] artifacts, not 'onnx'" in dict(skipped)["torch"]


def test_choose_never_leaves_the_list() -> None:
    with pytest.raises(BackendUnavailableError) as info:
        choose(["litert", "torch", "nope"], "onnx")
    message = str(info.value)
    for name in ("litert", "torch", "nope"):
        assert f"- {name}: " in message
    assert "run on backend 'onnxruntime'; add it to the list" in message
    with pytest.raises(InputError, match="empty"):
        choose([], "onnx")


@pytest.mark.skipif(sys.platform == "darwin", reason="checks the reason given off macOS")
def test_choose_coreml_on_linux_names_the_platform() -> None:
    with pytest.raises(
        BackendUnavailableError, match=r"(?s)\['coreml'\].*- coreml: backend 'coreml': .*macOS"
    ):
        choose(["coreml"], "coreml")


def test_import_runtime_is_cheap_and_lazy() -> None:
    code = (
        "import sys\n"
        "import edgefuse.runtime as rt\n"
        "heavy = {'onnxruntime', 'ai_edge_litert', 'coremltools', 'tensorrt', 'torch', 'cuda'}\n"
        "def loaded():\n"
        "    return sorted(m for m in sys.modules if m.split('.')[0] in heavy or m.startswith('edgefuse.runtime.'))\n"
        "print(loaded())\n"
        "rt.availability('coreml'); rt.availability('tensorrt')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
        "assert callable(rt.load) and 'load' in dir(rt)\n"
        "try:\n"
        "    rt.nothing\n"
        "except AttributeError as e:\n"
        "    print('ok' if 'nothing' in str(e) else 'bad')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    first, second, third = result.stdout.strip().splitlines()
    assert first == "[]"  # no submodule, no backend package at import time
    if sys.platform != "darwin":
        assert "coremltools" not in second  # platform checked before importing the package
    assert third == "ok"
