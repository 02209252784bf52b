"""A profile that lists no backend for the artifact's format: the installed one runs it, with a warning.

``generic/smartwatch`` lists only ``litert``; ``generic/x86-64`` lists ``onnxruntime`` and ``torch``. An
ONNX artifact loaded for the watch (or a TFLite artifact for the x86-64 host) falls back to the backend
that runs its format and says so with a :class:`BackendFallbackWarning`; ``backend=`` silences it; when
that backend is not installed, the error names the ``backend=`` to pass and what to install.
"""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from edgefuse.errors import BackendUnavailableError
from edgefuse.runtime import BackendFallbackWarning, load
from edgefuse.runtime.registry import choose_for_profile

WATCH = "generic/smartwatch"  # backends = ["litert"]; microphone + IMU


@pytest.fixture
def no_fallback_warning():  # type: ignore[no-untyped-def]
    """A BackendFallbackWarning fails the test."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", BackendFallbackWarning)
        yield


@pytest.mark.backend("onnxruntime")
def test_onnx_artifact_for_a_litert_only_profile_falls_back_with_a_warning(x86_split, rt) -> None:  # type: ignore[no-untyped-def]
    with pytest.warns(BackendFallbackWarning) as record:
        session = load(x86_split, profile=WATCH)
    (warning,) = [w for w in record if w.category is BackendFallbackWarning]
    message = str(warning.message)
    for fragment in (repr(WATCH), "['litert']", "'onnx' artifacts", "'onnxruntime'", "backend='onnxruntime'"):
        assert fragment in message
    assert warning.filename == __file__  # points at the caller's load(), not into EdgeFuse
    with session:
        assert session.backend == "onnxruntime"
        assert session.backend_order == ("litert", "onnxruntime")
        assert [name for name, _ in session.skipped_backends] == ["litert"]
        assert session.loaded_graphs == ("encoder_audio", "head")  # the watch has no camera
        pred = session.predict(rt.make_inputs(2, seed=0, modalities=("audio",)))
        assert pred.backend == "onnxruntime"


@pytest.mark.backend("onnxruntime")
def test_explicit_backend_gives_no_warning(x86_split, no_fallback_warning) -> None:  # type: ignore[no-untyped-def]
    with load(x86_split, profile=WATCH, backend="onnxruntime") as session:
        assert session.backend == "onnxruntime"
    with load(x86_split) as session:  # the manifest's own profile lists onnxruntime
        assert session.backend == "onnxruntime"


@pytest.mark.backend("onnxruntime")
def test_the_manifests_profile_falls_back_too(x86_split, rt, tmp_path) -> None:  # type: ignore[no-untyped-def]
    folder = rt.copy_artifact(x86_split, tmp_path / "a")
    path = folder / "manifest.json"
    data = json.loads(path.read_text())
    data["profile"] = WATCH
    path.write_text(json.dumps(data))
    with pytest.warns(BackendFallbackWarning, match="backend='onnxruntime'"), load(folder) as session:
        assert session.backend == "onnxruntime"


@pytest.mark.backend("litert")
def test_tflite_artifact_for_the_x86_profile_runs_on_litert(tflite_split, rt) -> None:  # type: ignore[no-untyped-def]
    """The case of the issue: a TFLite artifact and a profile that lists no LiteRT backend."""
    with pytest.warns(BackendFallbackWarning, match=r"'generic/x86-64'.*backend='litert'") as record:
        session = load(tflite_split, profile="generic/x86-64")
    assert "['onnxruntime', 'torch']" in str(record[0].message)
    with session:
        assert session.backend == "litert"
        assert session.verify().passed


def test_no_installed_backend_names_the_backend_to_pass_and_the_install(x86_split, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from edgefuse.runtime.backends.onnxruntime import OnnxRuntimeBackend

    reason = (
        "backend 'onnxruntime': the Python package 'onnxruntime' is not installed; install it with "
        "`pip install 'edgefuse[onnxruntime]'`"
    )
    monkeypatch.setattr(OnnxRuntimeBackend, "unavailable_reason", classmethod(lambda cls: reason))
    with pytest.raises(BackendUnavailableError) as info:
        load(x86_split, profile=WATCH)
    message = str(info.value)
    for fragment in (
        repr(WATCH),
        "['litert']",
        "backend='onnxruntime'",
        "pip install 'edgefuse[onnxruntime]'",
    ):
        assert fragment in message


def test_a_profile_backend_that_runs_the_format_is_never_bypassed(monkeypatch, no_fallback_warning) -> None:  # type: ignore[no-untyped-def]
    """The fallback is only for formats no listed backend runs, never for an uninstalled listed one."""
    from edgefuse.runtime.backends.onnxruntime import OnnxRuntimeBackend

    choice = choose_for_profile("generic/x86-64", ["onnxruntime", "torch"], "onnx")
    assert (choice.backend, choice.fallback, choice.order) == (
        OnnxRuntimeBackend,
        None,
        ("onnxruntime", "torch"),
    )
    monkeypatch.setattr(OnnxRuntimeBackend, "unavailable_reason", classmethod(lambda cls: "not here"))
    with pytest.raises(BackendUnavailableError, match=r"(?s)- onnxruntime: not here"):
        choose_for_profile("generic/x86-64", ["onnxruntime", "torch"], "onnx")
    with pytest.raises(BackendUnavailableError, match="'pickle' is not an artifact format"):
        choose_for_profile(WATCH, ["litert"], "pickle")


@pytest.mark.backend("onnxruntime")
def test_cli_run_prints_the_note(x86_split, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """``edgefuse run`` leaves the warning on stderr (in a fresh process: pytest captures warnings)."""
    npz = tmp_path / "x.npz"
    np.savez(npz, audio=np.zeros((1, 1, 32, 61), np.float32))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "edgefuse",
            "run",
            str(x86_split),
            "--profile",
            WATCH,
            "--npz",
            str(npz),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["backend"] == "onnxruntime"
    err = " ".join(proc.stderr.split())
    assert "BackendFallbackWarning" in err
    assert "backend='onnxruntime'" in err
