"""``overwrite`` replaces only an EdgeFuse output of the same kind, never the input or the user's files.

Each refusal is checked through the Python API (the typed error and that nothing was touched or
started) and through the CLI (exit code 2, the reason, no traceback).
"""

from __future__ import annotations

import functools
import json
import shutil
from pathlib import Path

import pytest
from _harness import expect_cli_error, run_cli

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from edgefuse import outputs  # noqa: E402
from edgefuse.checkpoint import load_checkpoint, read_checkpoint_info, save_checkpoint  # noqa: E402
from edgefuse.errors import CheckpointError  # noqa: E402
from edgefuse.export import export as _export  # noqa: E402
from edgefuse.export import pipeline as export_pipeline  # noqa: E402
from edgefuse.export.errors import ExportError  # noqa: E402
from edgefuse.manifest import read_manifest  # noqa: E402
from edgefuse.models.contract import build_model  # noqa: E402
from edgefuse.models.reference import reference_architecture  # noqa: E402
from edgefuse.specs import ModalitySpec  # noqa: E402

SPECS = (ModalitySpec("image", (1, 8, 8)),)
PROFILE = "generic/dashcam"  # its camera provides the image modality
#: the dashcam prefers int8 (which needs calibration data); these tests are about outputs, so fp32
export = functools.partial(_export, precision="fp32")


def _model(seed: int):  # type: ignore[no-untyped-def]
    torch.manual_seed(seed)
    return build_model(reference_architecture(SPECS, 8), SPECS, ["a", "b"]).eval()


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Checkpoints A and B and an ONNX artifact exported from A (copied by each test before use)."""
    root = tmp_path_factory.mktemp("origin")
    a = save_checkpoint(_model(1), root / "ckpt-a", seed=1)
    b = save_checkpoint(_model(2), root / "ckpt-b", seed=2)
    export(a, PROFILE, "onnx", root / "art-a")
    return {"a": a, "b": b, "art": root / "art-a"}


@pytest.fixture
def ckpt(origin: dict[str, Path], tmp_path: Path) -> Path:
    """A private copy of checkpoint A."""
    return Path(shutil.copytree(origin["a"], tmp_path / "ckpt"))


@pytest.fixture
def artifact(origin: dict[str, Path], tmp_path: Path) -> Path:
    """A private copy of the artifact exported from A."""
    return Path(shutil.copytree(origin["art"], tmp_path / "art"))


@pytest.fixture
def user_folder(tmp_path: Path) -> Path:
    """A folder of the user's own files."""
    folder = tmp_path / "mine"
    (folder / "sub").mkdir(parents=True)
    (folder / "notes.txt").write_text("my notes")
    (folder / "sub" / "data.bin").write_bytes(b"\x00\x01")
    return folder


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def no_conversion(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if an export gets past its checks (the checkpoint is loaded only after them)."""

    def loaded(_checkpoint: object) -> None:
        raise AssertionError("the export started although its output must be refused first")

    monkeypatch.setattr(export_pipeline, "_load_model", loaded)


# ---- Python API: save_checkpoint -----------------------------------------------------------------------


def test_checkpoint_refuses_a_user_folder(user_folder: Path) -> None:
    before = _snapshot(user_folder)
    with pytest.raises(CheckpointError, match=r"not an EdgeFuse output.*left untouched"):
        save_checkpoint(_model(2), user_folder, overwrite=True)
    assert _snapshot(user_folder) == before
    assert outputs.leftovers(user_folder.parent) == []


def test_checkpoint_refuses_an_artifact_folder(artifact: Path) -> None:
    before = _snapshot(artifact)
    with pytest.raises(
        CheckpointError, match=r"holds an EdgeFuse export artifact folder.*not an EdgeFuse checkpoint"
    ):
        save_checkpoint(_model(2), artifact, overwrite=True)
    assert _snapshot(artifact) == before


def test_checkpoint_refuses_a_regular_file_and_a_symlink(tmp_path: Path, ckpt: Path) -> None:
    file = tmp_path / "weights.bin"
    file.write_bytes(b"precious")
    with pytest.raises(CheckpointError, match="exists and is not a folder"):
        save_checkpoint(_model(2), file, overwrite=True)
    assert file.read_bytes() == b"precious"
    with pytest.raises(CheckpointError, match="is a file, not a folder"):
        save_checkpoint(_model(2), file / "ckpt", overwrite=True)
    link = tmp_path / "link"
    link.symlink_to(ckpt)
    with pytest.raises(CheckpointError, match="symbolic link"):
        save_checkpoint(_model(2), link, overwrite=True)
    assert link.is_symlink()
    assert read_checkpoint_info(ckpt)["seed"] == 1


def test_checkpoint_with_extra_user_files_is_refused(ckpt: Path) -> None:
    (ckpt / "README.md").write_text("how I trained this")
    with pytest.raises(CheckpointError, match=r"also holds \['README.md'\].*does not list"):
        save_checkpoint(_model(2), ckpt, overwrite=True)
    assert (ckpt / "README.md").read_text() == "how I trained this"
    assert read_checkpoint_info(ckpt)["seed"] == 1


def test_checkpoint_replaces_a_checkpoint_and_an_empty_folder(ckpt: Path, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="already exists; pass overwrite=True"):
        save_checkpoint(_model(2), ckpt, seed=2)
    save_checkpoint(_model(2), ckpt, seed=2, overwrite=True)
    assert load_checkpoint(ckpt).info["seed"] == 2
    assert sorted(p.name for p in ckpt.iterdir()) == ["model.json", "model.safetensors"]
    empty = tmp_path / "empty"
    empty.mkdir()
    save_checkpoint(_model(2), empty, overwrite=True)
    assert load_checkpoint(empty).info["seed"] is None
    assert outputs.leftovers(tmp_path) == []


# ---- Python API: export --------------------------------------------------------------------------------


def test_export_onto_its_own_checkpoint_is_refused(ckpt: Path, no_conversion: None) -> None:
    before = _snapshot(ckpt)
    with pytest.raises(ExportError, match="is the input of this command"):
        export(ckpt, PROFILE, "onnx", ckpt, overwrite=True)
    assert _snapshot(ckpt) == before
    # through another spelling of the same folder (resolved paths are compared)
    with pytest.raises(ExportError, match="is the input of this command"):
        export(ckpt, PROFILE, "onnx", ckpt.parent / "." / ckpt.name / ".." / ckpt.name, overwrite=True)
    assert outputs.leftovers(ckpt.parent) == []


def test_export_onto_the_folder_containing_its_checkpoint_is_refused(ckpt: Path, no_conversion: None) -> None:
    before = _snapshot(ckpt.parent)
    with pytest.raises(ExportError, match="contains the input of this command"):
        export(ckpt, PROFILE, "onnx", ckpt.parent, overwrite=True)
    with pytest.raises(ExportError, match="lies inside the input of this command"):
        export(ckpt, PROFILE, ["onnx", "tflite"], ckpt, overwrite=True)  # would write ckpt/onnx, ckpt/tflite
    assert _snapshot(ckpt.parent) == before


def test_export_refuses_a_regular_file(ckpt: Path, tmp_path: Path, no_conversion: None) -> None:
    file = tmp_path / "model.onnx"
    file.write_bytes(b"precious")
    for formats in ("onnx", ["onnx", "tflite"]):
        with pytest.raises(ExportError, match="not a folder"):
            export(ckpt, PROFILE, formats, file, overwrite=True)
    assert file.read_bytes() == b"precious"


def test_export_refuses_a_user_folder_and_a_checkpoint(
    ckpt: Path, user_folder: Path, origin: dict[str, Path], tmp_path: Path, no_conversion: None
) -> None:
    before = _snapshot(user_folder)
    with pytest.raises(ExportError, match=r"not an EdgeFuse output.*left untouched"):
        export(ckpt, PROFILE, "onnx", user_folder, overwrite=True)
    assert _snapshot(user_folder) == before
    other = Path(shutil.copytree(origin["b"], tmp_path / "other-ckpt"))
    with pytest.raises(
        ExportError, match=r"holds an EdgeFuse checkpoint folder.*not an EdgeFuse export artifact"
    ):
        export(ckpt, PROFILE, "onnx", other, overwrite=True)
    assert read_checkpoint_info(other)["seed"] == 2
    # a manifest that is not an EdgeFuse one (a JSON list, an unknown format) is not recognised either
    for doc in ([1, 2], {"schema_version": 1, "format": "pickle"}):
        fake = tmp_path / f"fake-{len(str(doc))}"
        fake.mkdir()
        (fake / "manifest.json").write_text(json.dumps(doc))
        with pytest.raises(ExportError, match="not an EdgeFuse output"):
            export(ckpt, PROFILE, "onnx", fake, overwrite=True)
        assert (fake / "manifest.json").is_file()
    assert outputs.leftovers(tmp_path) == []


def test_export_refuses_an_artifact_holding_unlisted_files(
    ckpt: Path, artifact: Path, no_conversion: None
) -> None:
    (artifact / "deploy-notes.txt").write_text("mine")
    before = _snapshot(artifact)
    with pytest.raises(ExportError, match=r"also holds \['deploy-notes.txt'\]"):
        export(ckpt, PROFILE, "onnx", artifact, overwrite=True)
    assert _snapshot(artifact) == before


def test_export_without_overwrite_keeps_an_artifact(ckpt: Path, artifact: Path, no_conversion: None) -> None:
    before = _snapshot(artifact)
    with pytest.raises(ExportError, match="already exists; pass overwrite=True"):
        export(ckpt, PROFILE, "onnx", artifact)
    assert _snapshot(artifact) == before


def test_export_replaces_an_artifact(origin: dict[str, Path], artifact: Path) -> None:
    assert (
        read_manifest(artifact).data["checkpoint"]["weights_sha256"]
        == read_checkpoint_info(origin["a"])["weights_sha256"]
    )
    export(origin["b"], PROFILE, "onnx", artifact, overwrite=True)
    manifest = read_manifest(artifact)
    manifest.verify_files()
    assert (
        manifest.data["checkpoint"]["weights_sha256"] == read_checkpoint_info(origin["b"])["weights_sha256"]
    )
    assert outputs.leftovers(artifact.parent) == []


def test_a_path_that_changed_during_the_export_is_not_replaced(
    origin: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The target is checked again right before the swap: a folder the user created meanwhile survives."""
    target = tmp_path / "art"
    real_write = export_pipeline._write_artifact

    def meanwhile(staging, *args, **kwargs):  # type: ignore[no-untyped-def]
        target.mkdir()
        (target / "mine.txt").write_text("created while the export ran")
        return real_write(staging, *args, **kwargs)

    monkeypatch.setattr(export_pipeline, "_write_artifact", meanwhile)
    with pytest.raises(ExportError, match="already exists"):
        export(origin["a"], PROFILE, "onnx", target)
    assert (target / "mine.txt").read_text() == "created while the export ran"
    assert outputs.leftovers(tmp_path) == []


# ---- CLI -----------------------------------------------------------------------------------------------


def test_cli_export_refusals(ckpt: Path, user_folder: Path, tmp_path: Path) -> None:
    base = ("export", "--profile", PROFILE, "--format", "onnx", "--precision", "fp32", "--overwrite")
    expect_cli_error(*base, str(ckpt), "--out", str(ckpt), fragments=("ExportError", "is the input"))
    assert load_checkpoint(ckpt).info["seed"] == 1  # the weights are still there and load
    expect_cli_error(*base, str(ckpt), "--out", str(tmp_path), fragments=("contains the input",))
    file = tmp_path / "out.onnx"
    file.write_bytes(b"precious")
    expect_cli_error(*base, str(ckpt), "--out", str(file), fragments=("not a folder",))
    assert file.read_bytes() == b"precious"
    before = _snapshot(user_folder)
    expect_cli_error(*base, str(ckpt), "--out", str(user_folder), fragments=("not an EdgeFuse output",))
    assert _snapshot(user_folder) == before
    assert outputs.leftovers(tmp_path) == []


def test_cli_train_refusals(ckpt: Path, artifact: Path, user_folder: Path, tmp_path: Path) -> None:
    base = ("train", "--data", "synthetic", "--epochs", "1", "--overwrite")
    before = _snapshot(user_folder)
    expect_cli_error(
        *base, "--out", str(user_folder), fragments=("CheckpointError", "not an EdgeFuse output")
    )
    assert _snapshot(user_folder) == before
    before = _snapshot(artifact)
    expect_cli_error(*base, "--out", str(artifact), fragments=("holds an EdgeFuse export artifact",))
    assert _snapshot(artifact) == before
    file = tmp_path / "ckpt.bin"
    file.write_bytes(b"precious")
    expect_cli_error(*base, "--out", str(file), fragments=("not a folder",))
    assert file.read_bytes() == b"precious"


def test_cli_export_replaces_an_artifact(origin: dict[str, Path], artifact: Path) -> None:
    proc = run_cli(
        "export", str(origin["b"]), "--profile", PROFILE, "--format", "onnx", "--precision", "fp32", "--out", str(artifact),
        "--overwrite", "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    manifest = read_manifest(artifact)
    manifest.verify_files()
    assert (
        manifest.data["checkpoint"]["weights_sha256"] == read_checkpoint_info(origin["b"])["weights_sha256"]
    )
