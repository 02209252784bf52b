"""The multimodal model contract: absent encoders are not run, absent data is never read, typed errors."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from edgefuse.errors import ContractError  # noqa: E402
from edgefuse.models.contract import build_model  # noqa: E402
from edgefuse.models.reference import reference_architecture  # noqa: E402
from edgefuse.specs import ModalitySpec  # noqa: E402

SPECS = (ModalitySpec("audio", (1, 12, 16)), ModalitySpec("image", (1, 8, 8)), ModalitySpec("imu", (12,)))


def _model():  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    model = build_model(reference_architecture(SPECS, embed_dim=16), SPECS, ["a", "b", "c"])
    return model.eval()


def _inputs(b: int = 5) -> dict:
    g = torch.Generator().manual_seed(1)
    return {s.name: torch.randn(b, *s.shape, generator=g) for s in SPECS}


def test_shapes_and_encoder_types() -> None:
    model = _model()
    assert type(model.encoders["imu"]).__name__ == "MLPEncoder"
    assert type(model.encoders["audio"]).__name__ == "Conv2dEncoder"
    assert model(_inputs()).shape == (5, 3)
    assert model({"image": _inputs()["image"]}).shape == (5, 3)


def test_absent_encoder_is_not_run_and_partial_rows_only() -> None:
    model = _model()
    seen: dict[str, list[int]] = {}
    for name, enc in model.encoders.items():
        enc.register_forward_pre_hook(
            lambda _m, args, name=name: seen.setdefault(name, []).append(args[0].shape[0])
        )
    x = _inputs(4)
    mask = torch.tensor([[1, 0, 1], [1, 0, 0], [0, 0, 1], [1, 0, 1]], dtype=torch.bool)
    model(x, mask)
    assert "image" not in seen  # column all absent: never run
    assert seen["audio"] == [3]  # only the three rows where audio is present
    assert seen["imu"] == [3]
    seen.clear()
    model({"audio": x["audio"], "image": None})
    assert set(seen) == {"audio"}


def test_nan_in_absent_inputs_changes_nothing() -> None:
    model = _model()
    x = _inputs(6)
    mask = torch.tensor([[1, 1, 1], [1, 0, 1], [0, 1, 0], [0, 0, 1], [1, 1, 0], [0, 0, 0]], dtype=torch.bool)
    clean = model(x, mask)
    poisoned = {k: v.clone() for k, v in x.items()}
    for m, spec in enumerate(SPECS):
        poisoned[spec.name][~mask[:, m]] = float("nan")
    assert torch.equal(model(poisoned, mask), clean)
    assert torch.isfinite(clean).all()
    # A whole modality absent: None and NaN + mask 0 agree.
    only_audio = model({"audio": x["audio"]})
    nan_rest = {
        **x,
        "image": torch.full_like(x["image"], float("nan")),
        "imu": torch.full_like(x["imu"], float("inf")),
    }
    col = torch.tensor([True, False, False]).expand(6, 3)
    torch.testing.assert_close(model(nan_rest, col), only_audio, rtol=0, atol=0)


def test_training_mode_gradients_ignore_absent_rows() -> None:
    model = _model().train()
    x = _inputs(4)
    x["audio"][1] = float("nan")
    mask = torch.tensor([[1, 1, 1], [0, 1, 1], [1, 1, 0], [1, 0, 1]], dtype=torch.bool)
    loss = torch.nn.functional.cross_entropy(model(x, mask), torch.tensor([0, 1, 2, 0]))
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda m, x: m({"lidar": x["audio"]}), r"unknown modalities \['lidar'\]"),
        (
            lambda m, x: m({"audio": x["image"]}),
            r"input 'audio' has shape \(5, 1, 8, 8\); expected \(B, 1, 12, 16\)",
        ),
        (
            lambda m, x: m({"audio": x["audio"], "image": x["image"][:3]}),
            r"disagree on the batch size: \[3, 5\]",
        ),
        (
            lambda m, x: m({"audio": x["audio"]}, torch.ones(5, 3, dtype=torch.bool)),
            r"mask says 'image' is present",
        ),
        (
            lambda m, x: m({"audio": x["audio"]}, torch.ones(5, 2, dtype=torch.bool)),
            r"mask has shape \(5, 2\)",
        ),
        (lambda m, x: m({}), r"no mask gives the batch size"),
    ],
)
def test_bad_inputs(call, match: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ContractError, match=match):
        call(_model(), _inputs())


@pytest.mark.parametrize(
    ("arch", "match"),
    [
        ({"embed_dim": 8, "encoders": {}, "oops": 1}, r"unknown keys \['oops'\]"),
        ({"encoders": {}}, r"missing 'embed_dim'"),
        (
            {"embed_dim": 8, "encoders": {"audio": {"type": "conv2d", "channels": [4]}}},
            r"encoders for \['audio'\]",
        ),
        (
            {"embed_dim": 8, "encoders": {s.name: {"type": "transformer"} for s in SPECS}},
            r"type 'transformer'; supported types: \['conv2d', 'mlp'\]",
        ),
        (
            {
                "embed_dim": 8,
                "encoders": {**{s.name: {"type": "mlp"} for s in SPECS}, "audio": {"type": "conv2d"}},
            },
            r"encoder 'audio' \(conv2d\) is missing 'channels'",
        ),
        (
            {
                "embed_dim": 8,
                "encoders": {
                    **{s.name: {"type": "mlp"} for s in SPECS},
                    "imu": {"type": "conv2d", "channels": [4]},
                },
            },
            r"input shape \(C, H, W\); got \(12,\)",
        ),
    ],
)
def test_build_model_errors(arch: dict, match: str) -> None:
    with pytest.raises(ContractError, match=match):
        build_model(arch, SPECS, ["a"])
