"""``edgefuse verify``; ``--threads`` on ``run``/``verify``; commands that need torch refuse without it.

The device installs themselves (only ``edgefuse[onnxruntime]``, only ``edgefuse[litert]``) running
``edgefuse run`` and ``edgefuse verify`` are tested in ``tests/runtime/test_no_torch.py``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from edgefuse.cli import main


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small split ONNX artifact (audio + image) for generic/x86-64, with its reference cases."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from edgefuse.checkpoint import save_checkpoint
    from edgefuse.export import export
    from edgefuse.models.contract import build_model
    from edgefuse.models.reference import reference_architecture
    from edgefuse.specs import ModalitySpec

    specs = (ModalitySpec("audio", (1, 32, 61), preprocessing="logmel-v1"), ModalitySpec("image", (1, 8, 8)))
    torch.manual_seed(0)
    model = build_model(reference_architecture(specs, 16), specs, [f"digit{i}" for i in range(10)])
    root = tmp_path_factory.mktemp("verify")
    ckpt = save_checkpoint(model.eval(), root / "ckpt")
    export(ckpt, "generic/x86-64", "onnx", root / "art", precision="fp32").raise_for_failures()
    return root / "art"


def _err(capsys: pytest.CaptureFixture[str]) -> str:
    """Captured stderr with rich's line wrapping undone."""
    return " ".join(capsys.readouterr().err.split())


def _verify_json(args: list[str], capsys: pytest.CaptureFixture[str], code: int = 0) -> dict:
    assert main(["verify", *args, "--json"]) == code
    return json.loads(capsys.readouterr().out)


def test_verify_table_passes(artifact: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", str(artifact)]) == 0
    out = capsys.readouterr().out
    assert f"verify {artifact} (profile generic/x86-64)" in out
    assert "passed: 3 of 3 case(s) passed on onnxruntime" in " ".join(out.split())
    for column in ("pattern", "status", "max abs error", "tolerance"):
        assert column in out
    for pattern in ("audio+image", "audio", "image"):
        assert pattern in out
    assert out.count(" pass ") == 3


def test_verify_json_and_threads(artifact: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = _verify_json([str(artifact), "--threads", "1"], capsys)
    assert report["passed"] is True
    assert report["threads"] == 1  # the session's threads: what each backend was given
    assert report["backend"] == "onnxruntime"
    assert report["profile"] == "generic/x86-64"
    assert [c["pattern"] for c in report["checks"]] == [["audio", "image"], ["audio"], ["image"]]
    for check in report["checks"]:
        assert check["passed"] is True
        assert 0 <= check["max_abs"] <= check["atol"] + 1e-3
    assert main(["verify", str(artifact), "--threads", "1"]) == 0
    assert "on onnxruntime (1 thread)" in " ".join(capsys.readouterr().out.split())
    assert _verify_json([str(artifact), "--threads", "3"], capsys)["threads"] == 3  # overrides the profile's


@pytest.mark.parametrize("command", ["run", "verify"])
@pytest.mark.parametrize(
    ("value", "message"),
    [("0", "0 is out of range"), ("x", "'x' is not an integer"), ("257", "257 is out of range")],
)
def test_a_bad_threads_value_exits_2_naming_the_range(
    command: str, value: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main([command, "any-artifact", "--threads", value])
    assert exc.value.code == 2
    err = _err(capsys)
    assert f"argument --threads: {message}; allowed: an integer in 1..256" in err
    assert "Traceback" not in err


def test_run_threads_reach_the_session(
    artifact: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import edgefuse.runtime

    seen: list[int | None] = []
    real = edgefuse.runtime.load

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        session = real(*args, **kwargs)
        seen.append(session.threads)
        return session

    monkeypatch.setattr(edgefuse.runtime, "load", spy)
    npz = tmp_path / "x.npz"
    np.savez(npz, audio=np.zeros((1, 32, 61), np.float32))
    assert main(["run", str(artifact), "--npz", str(npz), "--threads", "1", "--json"]) == 0
    assert main(["run", str(artifact), "--npz", str(npz), "--json"]) == 0
    capsys.readouterr()
    assert seen[0] == 1
    assert seen[1] is not None  # the profile's threads (capped at this machine's cores)


def test_max_runtime_threads_is_the_runtimes() -> None:
    from edgefuse.cli._common import MAX_RUNTIME_THREADS
    from edgefuse.runtime.backends.base import MAX_THREADS

    assert MAX_RUNTIME_THREADS == MAX_THREADS


def test_verify_skips_cases_a_profile_cannot_run(artifact: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = _verify_json([str(artifact), "--profile", "generic/smart-speaker"], capsys)
    assert report["passed"] is True
    assert [c["passed"] for c in report["checks"]] == [None, True, None]
    assert "does not accept" in report["checks"][0]["note"]


def test_verify_a_failing_case_exits_1(
    artifact: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Reference logits that the graphs do not reproduce (the manifest's hash updated to match)."""
    bad = Path(shutil.copytree(artifact, tmp_path / "bad"))
    with np.load(bad / "reference.npz") as z:
        arrays = {k: z[k] for k in z.files}
    arrays["audio/logits"] = arrays["audio/logits"] + 1.0
    np.savez(bad / "reference.npz", **arrays)
    manifest = json.loads((bad / "manifest.json").read_text())
    raw = (bad / "reference.npz").read_bytes()
    for entry in manifest["files"]:
        if entry["path"] == "reference.npz":
            entry.update(sha256=hashlib.sha256(raw).hexdigest(), size=len(raw))
    (bad / "manifest.json").write_text(json.dumps(manifest))

    report = _verify_json([str(bad)], capsys, code=1)
    assert [c["passed"] for c in report["checks"]] == [True, False, True]
    assert report["checks"][1]["max_abs"] == pytest.approx(1.0, abs=1e-3)
    assert main(["verify", str(bad)]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out
    assert "FAILED: 2 of 3 case(s) passed" in " ".join(out.split())


def test_verify_bad_input_exits_2(artifact: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", str(tmp_path / "nope")]) == 2
    assert "no such artifact folder" in _err(capsys)
    assert main(["verify", str(artifact), "--manifest-sha256", "0" * 64]) == 2
    assert "sha256" in _err(capsys)
    tampered = Path(shutil.copytree(artifact, tmp_path / "tampered"))
    with (tampered / "reference.npz").open("ab") as f:
        f.write(b"x")
    assert main(["verify", str(tampered)]) == 2
    assert "reference.npz" in _err(capsys)
    assert main(["verify", str(artifact), "--backend", "onnxruntme"]) == 2
    assert "onnxruntime" in _err(capsys)


# ---- commands that need torch, on a device without it ----------------------------------------------

NEEDS_TORCH = [
    ("train", ["train", "--data", "synthetic", "--epochs", "1", "--out", "{out}"], "train"),
    ("robustness", ["robustness", "--data", "synthetic", "--epochs", "1", "--report", "{out}"], "train"),
    ("wise-ft", ["wise-ft", "--theta0", "{ckpt}", "--theta1", "{ckpt}", "--out", "{out}"], "train"),
    ("export", ["export", "{ckpt}", "--profile", "generic/x86-64", "--out", "{out}"], "export"),
    ("demo", ["demo", "--out", "{out}"], "export"),
]


@pytest.mark.parametrize("runtime", ["onnxruntime", "litert"])
def test_commands_that_need_torch_name_the_extra(runtime: str, run_cli_on_device, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Exit 2 with one line naming the extra, before anything is imported or written."""
    for name, template, extra in NEEDS_TORCH:
        out = tmp_path / f"out-{name}"
        args = [a.format(out=out, ckpt=tmp_path / "ckpt") for a in template]
        result = run_cli_on_device(runtime, args)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2, (name, result.stderr)
        assert "Traceback" not in result.stderr, result.stderr
        assert len(lines) == 2, (name, lines)  # the error, then the harness's imported-heavy line
        assert lines[0] == (
            f"error: BackendUnavailableError: edgefuse {name} needs PyTorch (torch), which is not installed "
            f"here: pip install 'edgefuse[{extra}]'"
        )
        assert lines[1] == "imported-heavy: []"
        assert not out.exists(), f"{name} wrote {out} before refusing"


def test_a_missing_optional_module_found_late_is_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A command whose up-front check missed a package still says which extra, without a traceback."""
    import edgefuse.cli.train

    def run(args):  # type: ignore[no-untyped-def]
        raise ModuleNotFoundError("No module named 'sklearn'", name="sklearn")

    monkeypatch.setattr(edgefuse.cli.train, "run", run)
    assert main(["train", "--out", str(tmp_path / "o")]) == 2
    err = _err(capsys)
    assert err == (
        "error: BackendUnavailableError: edgefuse train needs scikit-learn (sklearn), which is not installed "
        "here: pip install 'edgefuse[train]'"
    )

    def broken(args):  # type: ignore[no-untyped-def]
        raise ModuleNotFoundError("No module named 'edgefuse.nothing'", name="edgefuse.nothing")

    monkeypatch.setattr(edgefuse.cli.train, "run", broken)
    with pytest.raises(ModuleNotFoundError):  # not an optional package: a bug, raised as is
        main(["train", "--out", str(tmp_path / "o")])


def test_require_extra_lists_every_missing_module(monkeypatch: pytest.MonkeyPatch) -> None:
    from edgefuse.cli import _common
    from edgefuse.errors import BackendUnavailableError

    monkeypatch.setattr(_common, "module_available", lambda name: name == "safetensors")
    with pytest.raises(BackendUnavailableError) as exc:
        _common.require_extra("wise-ft", "train", ("torch", "safetensors", "matplotlib"))
    assert str(exc.value) == (
        "edgefuse wise-ft needs PyTorch (torch) and matplotlib, which are not installed here: "
        "pip install 'edgefuse[train]'"
    )
    _common.require_extra("x", "train", ("safetensors",))  # present: nothing raised


def test_verify_help_is_light() -> None:
    """``edgefuse verify --help`` imports no backend, torch or rich."""
    import subprocess
    import sys

    code = (
        "import sys, contextlib, io\n"
        "from edgefuse.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()) as buf:\n"
        "    try:\n"
        "        main(['verify', '--help'])\n"
        "    except SystemExit as e:\n"
        "        assert e.code == 0\n"
        "assert '--threads' in buf.getvalue() and '--manifest-sha256' in buf.getvalue()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'torch', 'onnx', 'onnxruntime', 'ai_edge_litert', 'rich'}))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_run_image_without_an_image_decoder_names_what_to_install(
    artifact: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A device with only a runtime extra has neither Pillow nor matplotlib: one line, exit 2."""
    import sys

    import edgefuse.cli.run

    png = tmp_path / "x.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)  # never decoded
    monkeypatch.setitem(sys.modules, "PIL", None)  # `from PIL import Image` raises ImportError
    monkeypatch.setattr(edgefuse.cli.run, "module_available", lambda name: name != "matplotlib")
    assert main(["run", str(artifact), "--image", str(png)]) == 2
    err = _err(capsys)
    assert (
        "decoding an image needs Pillow or matplotlib, and neither is installed here: pip install pillow"
        in err
    )
    assert "Traceback" not in err
