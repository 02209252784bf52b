"""Checkpoints of a user's own model: saved as torch.export programs, loaded without the user's code."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from edgefuse.checkpoint import load_checkpoint, read_checkpoint_info, save_checkpoint, weights_sha256  # noqa: E402
from edgefuse.errors import ContractError  # noqa: E402
from edgefuse.factory import FactoryError, FactoryRef  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def byom():
    sys.path.insert(0, str(EXAMPLES))
    try:
        import byom_modules

        yield byom_modules
    finally:
        sys.path.remove(str(EXAMPLES))


@pytest.fixture(scope="module")
def saved(byom, tmp_path_factory: pytest.TempPathFactory):
    torch.manual_seed(0)
    model = byom.build().eval()
    model.factory = FactoryRef("byom_modules:build", {"embed_dim": 32})
    return model, save_checkpoint(model, tmp_path_factory.mktemp("byom") / "ckpt")


def _inputs(model, batch: int = 3) -> dict:
    g = torch.Generator().manual_seed(1)
    return {s.name: torch.randn(batch, *s.shape, generator=g) for s in model.modalities}


def test_program_checkpoint_records_programs_weights_and_factory(saved) -> None:
    model, folder = saved
    info = read_checkpoint_info(folder)
    assert info["kind"] == "program"
    assert info["schema_version"] == 2
    assert sorted(info["programs"]) == ["encoder_audio", "encoder_image", "encoder_imu", "head"]
    assert info["fusion"] == {"dim": 32, "eps": 1e-5, "learn_weights": True, "affine": True}
    assert info["factory"] == {"callable": "byom_modules:build", "kwargs": {"embed_dim": 32}}
    assert info["weights_sha256"] == weights_sha256(model)
    text = (folder / "programs" / "encoder_audio.json").read_text()
    assert "stack_trace" not in text
    assert "byom_modules.py" not in text


def test_programs_reproduce_the_model_on_every_presence_pattern(saved) -> None:
    model, folder = saved
    ckpt = load_checkpoint(folder)
    assert not ckpt.trainable
    x = _inputs(model)
    with torch.no_grad():
        for keep in (["image", "audio", "imu"], ["audio"], ["image", "imu"]):
            sub = {k: v for k, v in x.items() if k in keep}
            torch.testing.assert_close(ckpt.model(sub), model(sub), atol=1e-5, rtol=1e-5)
        mask = torch.tensor([[1, 0, 1], [0, 1, 0], [1, 1, 1]], dtype=torch.bool)
        torch.testing.assert_close(ckpt.model(x, mask), model(x, mask), atol=1e-5, rtol=1e-5)


def test_programs_cannot_be_trained_by_mistake(saved) -> None:
    ckpt = load_checkpoint(saved[1])
    ckpt.model.eval()  # a no-op, allowed
    with pytest.raises(ContractError, match="fixed in eval mode"):
        ckpt.model.train()


def test_trust_code_rebuilds_the_users_modules_from_the_factory(saved, byom) -> None:
    model, folder = saved
    ckpt = load_checkpoint(folder, trust_code=True)
    assert ckpt.trainable
    assert isinstance(ckpt.model.encoders["image"], byom.ImageEncoder)
    assert ckpt.model.factory == FactoryRef("byom_modules:build", {"embed_dim": 32})
    x = _inputs(model)
    with torch.no_grad():
        torch.testing.assert_close(ckpt.model(x), model(x))
    ckpt.model.train()  # real modules: trainable


def test_a_fresh_process_without_the_users_code_exports_and_runs_it(saved, tmp_path: Path) -> None:
    """The done-when of issue 12 in miniature: no PYTHONPATH to examples/, a clean cwd."""
    model, folder = saved
    code = textwrap.dedent(
        f"""
        import importlib.util, json, sys
        assert importlib.util.find_spec("byom_modules") is None
        import numpy as np, edgefuse
        from edgefuse.factory import FactoryError
        session = edgefuse.load({str(folder)!r})
        report = session.verify()
        out = session.predict({{"imu": np.ones((2, 6, 128), np.float32)}})
        try:
            edgefuse.load_checkpoint({str(folder)!r}, trust_code=True)
            factory = "imported?"
        except FactoryError as exc:
            factory = str(exc)
        print(json.dumps({{"passed": report.passed, "labels": list(out.labels), "factory": factory}}))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=240
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["passed"] is True
    assert len(result["labels"]) == 2
    assert set(result["labels"]) <= set(model.label_names)
    assert "cannot import 'byom_modules'" in result["factory"]


def test_importing_a_factory_needs_an_explicit_opt_in(byom) -> None:
    from edgefuse.factory import import_factory

    with pytest.raises(
        FactoryError, match=r"pass allow_import=True \(or trust_code=True to load_checkpoint\)"
    ):
        import_factory("byom_modules:build")
    built = import_factory("byom_modules:build", allow_import=True)(byom.MODALITIES[1:], byom.LABELS)
    assert built.modality_names == ("audio", "imu")
    assert isinstance(built.encoders["audio"], byom.AudioEncoder)


def test_a_factory_that_builds_the_wrong_model_is_named(byom) -> None:
    from edgefuse.factory import build_with

    with pytest.raises(FactoryError, match=r"over \['image', 'audio', 'imu'\]; it was asked for \['imu'\]"):
        build_with(lambda mods, labels: byom.build(byom.MODALITIES, labels), byom.MODALITIES[2:], byom.LABELS)


def test_untraceable_modules_are_refused_before_anything_is_written(byom, tmp_path: Path) -> None:
    from torch import nn

    class DataDependent(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj = nn.Linear(6 * 128, 32)

        def forward(self, x):
            if x.sum() > 0:  # data-dependent Python control flow: torch.export cannot trace it
                return self.proj(x.flatten(1))
            return -self.proj(x.flatten(1))

    model = byom.build(byom.MODALITIES[2:], byom.LABELS)
    model.encoders["imu"] = DataDependent()
    from edgefuse.errors import CheckpointError

    with pytest.raises(CheckpointError, match=r"encoders\['imu'\].*DataDependent"):
        save_checkpoint(model, tmp_path / "ckpt")
    assert not (tmp_path / "ckpt").exists()


def test_copies_stay_untrainable_and_a_wiseft_result_keeps_the_graphs(saved, byom, tmp_path: Path) -> None:
    import copy

    from edgefuse.interventions import interpolate_state
    from edgefuse.wiseft import check_same_architecture

    model, folder = saved
    torch.manual_seed(5)
    other = byom.build().eval()
    other.factory = model.factory
    c0, c1 = load_checkpoint(folder), load_checkpoint(save_checkpoint(other, tmp_path / "theta1"))
    check_same_architecture(c0.model, c1.model)
    mixed = copy.deepcopy(c1.model)
    with pytest.raises(ContractError, match="fixed in eval mode"):
        mixed.train()  # a deep copy keeps the guard (torch's own is lost on copy)
    mixed.load_state_dict(interpolate_state(c0.model.state_dict(), c1.model.state_dict(), 0.5))
    out = save_checkpoint(mixed, tmp_path / "mixed")
    assert read_checkpoint_info(out)["programs"] == read_checkpoint_info(folder)["programs"]
    assert read_checkpoint_info(out)["factory"] == read_checkpoint_info(folder)["factory"]
    x = _inputs(model)
    with torch.no_grad():
        torch.testing.assert_close(load_checkpoint(out).model(x), mixed(x))


def test_jit_traceable_copies_keep_the_batch_dynamic(saved) -> None:
    """Core ML traces with torch.jit: a program traced at batch 2 must still be right at 1 and 5."""
    import warnings

    from edgefuse.programs import jit_traceable

    model, folder = saved
    ckpt = load_checkpoint(folder)
    for spec in model.modalities:
        module = ckpt.model.encoders[spec.name]
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(jit_traceable(module), (torch.randn(2, *spec.shape),))
            for batch in (1, 5):
                x = torch.randn(batch, *spec.shape)
                torch.testing.assert_close(traced(x), model.encoders[spec.name](x), atol=1e-5, rtol=1e-5)
