"""Checkpoints and artifacts get the user's umask, all the way down (not mkdtemp's 0700).

The umask is process-wide, so each case saves and exports in its own interpreter with the umask set
(through the hostile-input harness: memory limit and timeout). Both paths of the swap are covered: a new
output and one replacing an existing output of the same kind.
"""

from __future__ import annotations

import pytest
from _harness import expect_ok

pytest.importorskip("torch")
pytest.importorskip("onnx")

CASE = """
import os, stat
from pathlib import Path

os.umask({umask})
import torch
from edgefuse.checkpoint import save_checkpoint
from edgefuse.export import export
from edgefuse.models.contract import build_model
from edgefuse.models.reference import reference_architecture
from edgefuse.specs import ModalitySpec

root = Path({root!r})
specs = (ModalitySpec("image", (1, 8, 8)),)
torch.manual_seed(0)
model = build_model(reference_architecture(specs, 8), specs, ["a", "b"]).eval()
ckpt = save_checkpoint(model, root / "new" / "ckpt")  # parent folders created too
save_checkpoint(model, root / "replaced" / "ckpt")
save_checkpoint(model, root / "replaced" / "ckpt", overwrite=True)
export(ckpt, "generic/dashcam", {formats!r}, root / "new" / "art", precision="fp32", any_format=True)
export(ckpt, "generic/dashcam", {formats!r}, root / "replaced" / "art", precision="fp32", any_format=True)
export(ckpt, "generic/dashcam", {formats!r}, root / "replaced" / "art", overwrite=True, precision="fp32", any_format=True)
modes = {{}}
for dirpath, dirnames, filenames in os.walk(root):
    for name in [*dirnames, *filenames]:
        path = os.path.join(dirpath, name)
        kind = "dir" if os.path.isdir(path) else "file"
        modes[os.path.relpath(path, root)] = [kind, stat.S_IMODE(os.lstat(path).st_mode)]
RESULT["modes"] = modes
"""


def _check(tmp_path, umask: int, formats: object) -> dict[str, list]:  # type: ignore[no-untyped-def]
    root = tmp_path / "work"
    root.mkdir(mode=0o777)
    root.chmod(0o777 & ~umask)
    res = expect_ok(CASE.format(umask=umask, root=str(root), formats=formats), timeout=300)
    modes = res.result["modes"]
    wrong = {
        path: oct(mode)
        for path, (kind, mode) in modes.items()
        if mode != (0o777 if kind == "dir" else 0o666) & ~umask
    }
    assert not wrong, f"under umask {umask:04o}: {wrong}"
    # nothing but the outputs: no temporary folder left, every expected output present
    assert not [p for p in modes if ".edgefuse-" in p], sorted(modes)
    for where in ("new", "replaced"):
        assert modes[f"{where}/ckpt/model.safetensors"][0] == "file"
    return modes


@pytest.mark.parametrize("umask", [0o022, 0o077], ids=["umask022", "umask077"])
def test_onnx_artifact_and_checkpoint_follow_the_umask(tmp_path, umask: int) -> None:  # type: ignore[no-untyped-def]
    modes = _check(tmp_path, umask, "onnx")
    for where in ("new", "replaced"):
        assert modes[f"{where}/art/manifest.json"][0] == "file"
        assert modes[f"{where}/art/encoder_image.onnx"][0] == "file"
    if umask == 0o022:
        assert modes["new/ckpt"] == ["dir", 0o755]
        assert modes["new/ckpt/model.safetensors"] == ["file", 0o644]
        assert modes["replaced/art/head.onnx"] == ["file", 0o644]
    else:
        assert modes["new/ckpt"] == ["dir", 0o700]
        assert modes["new/ckpt/model.safetensors"] == ["file", 0o600]
        assert modes["replaced/art/head.onnx"] == ["file", 0o600]


@pytest.mark.slow
def test_every_format_follows_the_umask(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """TFLite, Core ML packages (nested folders) and TensorRT's ONNX too, under an unusual umask."""
    modes = _check(tmp_path, 0o027, ["onnx", "tflite", "coreml", "tensorrt"])
    formats = {p.split("/")[2] for p in modes if p.startswith("new/art/") and p.count("/") >= 2}
    assert "onnx" in formats
    assert modes["new/art"] == ["dir", 0o750]
