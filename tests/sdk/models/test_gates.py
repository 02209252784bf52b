"""Reliability gates: per-row fusion weights from each modality's embedding, same math as the kernel."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgefuse import _fusion  # noqa: E402
from edgefuse.errors import ContractError, FusionInputError  # noqa: E402
from edgefuse.fusion import fuse_reference  # noqa: E402
from edgefuse.models.contract import add_gates, build_model, gate_hidden_of  # noqa: E402
from edgefuse.models.fusion import GATE_FLOOR, MaskedFusion, ReliabilityGate  # noqa: E402
from edgefuse.models.reference import reference_architecture  # noqa: E402


def _gated(m: int, d: int, seed: int = 0) -> MaskedFusion:
    torch.manual_seed(seed)
    mod = MaskedFusion(m, d, weights=[0.5 + i for i in range(m)], gate_hidden=8)
    with torch.no_grad():
        for g in mod.gates:  # spread the reliabilities over (0, 1) so the rows really differ
            g.net[2].bias.zero_()
            g.net[2].weight.mul_(4.0)
        mod.norm.weight.uniform_(0.5, 1.5)
        mod.norm.bias.uniform_(-0.5, 0.5)
    return mod.eval()


def test_gate_output_is_bounded_and_starts_near_one() -> None:
    gate = ReliabilityGate(16, 4)
    x = torch.randn(64, 16)
    with torch.no_grad():
        r = gate(x)
    assert r.shape == (64, 1)
    assert float(r.min()) > 0.9  # the +3 bias: an untrained gate keeps the fixed weights
    with torch.no_grad():
        gate.net[2].bias.fill_(-100.0)
    assert torch.all(gate(x) == GATE_FLOOR)  # never 0: the kernel gets a normal float32


@pytest.mark.parametrize("b", [1, 7])
def test_gated_fusion_equals_the_kernel_with_row_weights(b: int) -> None:
    m, d = 3, 12
    mod = _gated(m, d)
    rng = np.random.default_rng(b)
    emb = rng.standard_normal((b, m, d)).astype(np.float32)
    mask = rng.random((b, m)) < 0.7
    mask[0] = [True, False, True]
    emb[~mask] = np.nan  # absent data must never be read, by the gates either
    params = mod.fusion_parameters()
    with torch.no_grad():
        stacked = mod(torch.from_numpy(emb), torch.from_numpy(mask))
        listed = mod(
            [torch.from_numpy(np.where(mask[:, [j]], emb[:, j], 0.0).astype(np.float32)) for j in range(m)],
            torch.from_numpy(mask),
        )
        rel = torch.cat(
            [mod.reliability(j, torch.from_numpy(np.nan_to_num(emb[:, j]))) for j in range(m)], dim=1
        ).numpy()
    weights = (params["weights"][None, :] * rel).astype(np.float32)  # (B, M): what the runtime passes
    assert weights.shape == (b, m)
    kernel = _fusion.fuse(
        list(np.nan_to_num(emb).transpose(1, 0, 2)),
        mask,
        weights,
        params["gamma"],
        params["beta"],
        params["eps"],
    )
    ref, _ = fuse_reference(emb, mask, weights, params["gamma"], params["beta"], params["eps"])
    assert np.isfinite(stacked.numpy()).all()
    np.testing.assert_allclose(stacked.numpy(), ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(listed.numpy(), ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(kernel, ref, rtol=1e-5, atol=1e-5)


def test_gates_change_the_fusion_per_row_and_gradients_stay_finite() -> None:
    m, d = 2, 8
    mod = _gated(m, d).train()
    e = torch.randn(16, m, d)
    e[3, 1] = float("nan")
    mask = torch.ones(16, m, dtype=torch.bool)
    mask[3, 1] = False
    out = mod(e, mask)
    out.sum().backward()
    for p in mod.parameters():
        assert p.grad is None or torch.isfinite(p.grad).all()
    # a gate that sees another embedding gives another weight: the fused row moves
    plain = MaskedFusion(m, d, weights=[0.5, 1.5])
    with torch.no_grad():
        plain.norm.load_state_dict(mod.norm.state_dict())
        clean = torch.nan_to_num(e)
        assert not torch.allclose(mod(clean, mask), plain(clean, mask), atol=1e-4)


def test_equal_reliabilities_fuse_exactly_like_the_fixed_weights() -> None:
    from edgefuse.specs import ModalitySpec

    torch.manual_seed(0)
    specs = (ModalitySpec("a", (4,)), ModalitySpec("b", (6,)))
    model = build_model(reference_architecture(specs, 8), specs, ("x", "y"))
    x = {"a": torch.randn(5, 4), "b": torch.randn(5, 6)}
    mask = torch.tensor([[1, 1], [1, 0], [0, 1], [1, 1], [0, 0]], dtype=torch.bool)
    with torch.no_grad():
        before = model(x, mask)
    add_gates(model, 4)
    with torch.no_grad():
        for g in model.fusion.gates:
            g.net[2].weight.zero_()  # every row and modality gets sigmoid(3): renormalised away
        after = model(x, mask)
    torch.testing.assert_close(after, before, rtol=1e-6, atol=1e-6)
    assert model.architecture["fusion"]["gate_hidden"] == 4
    assert gate_hidden_of(model.state_dict()) == 4
    assert gate_hidden_of(build_model(reference_architecture(specs, 8), specs, ("x", "y")).state_dict()) == 0
    # the recorded architecture rebuilds the gated model, so checkpoints load it
    rebuilt = build_model(model.architecture, specs, ("x", "y"))
    rebuilt.load_state_dict(model.state_dict())
    with pytest.raises(ContractError, match="already has reliability gates of 4"):
        add_gates(model, 5)
    assert add_gates(model, 4) is model


@pytest.mark.parametrize("bad", [-1, True, 1.5, 10**6])
def test_bad_gate_sizes_are_refused(bad: object) -> None:
    with pytest.raises(FusionInputError, match="gate"):
        MaskedFusion(2, 4, gate_hidden=bad)  # type: ignore[arg-type]


def test_unknown_fusion_keys_in_an_architecture_are_refused() -> None:
    from edgefuse.specs import ModalitySpec

    specs = (ModalitySpec("a", (4,)),)
    arch = reference_architecture(specs, 8)
    arch["fusion"]["gates"] = 3
    with pytest.raises(ContractError, match="unknown keys"):
        build_model(arch, specs, ("x", "y"))
