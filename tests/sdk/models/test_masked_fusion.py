"""MaskedFusion (torch) has exactly the kernel's math: kernel == NumPy == torch to 1e-5."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

from edgefuse import _fusion  # noqa: E402
from edgefuse.errors import FusionInputError  # noqa: E402
from edgefuse.fusion import fuse_reference  # noqa: E402
from edgefuse.models.fusion import MaskedFusion  # noqa: E402


def _module(m: int, d: int, rng: np.random.Generator, weights: np.ndarray | None) -> MaskedFusion:
    mod = MaskedFusion(m, d, weights=None if weights is None else weights.tolist(), learn_weights=True)
    with torch.no_grad():
        mod.norm.weight.copy_(torch.from_numpy(rng.standard_normal(d).astype(np.float32)))
        mod.norm.bias.copy_(torch.from_numpy(rng.standard_normal(d).astype(np.float32)))
    return mod


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    b=st.integers(1, 8),
    m=st.integers(1, 4),
    d=st.integers(2, 48),
    with_weights=st.booleans(),
    none_first=st.booleans(),
)
def test_kernel_numpy_torch_agree(
    seed: int, b: int, m: int, d: int, with_weights: bool, none_first: bool
) -> None:
    rng = np.random.default_rng(seed)
    weights = (rng.random(m) * 3 + 0.1).astype(np.float32) if with_weights else None
    mod = _module(m, d, rng, weights)
    params = mod.fusion_parameters()
    embeddings: list[np.ndarray | None] = [rng.standard_normal((b, d)).astype(np.float32) for _ in range(m)]
    mask = rng.random((b, m)) < 0.6
    mask[0] = False  # an all-absent row
    if none_first and m > 1:
        embeddings[0] = None
        mask[:, 0] = False

    kernel = _fusion.fuse(embeddings, mask, params["weights"], params["gamma"], params["beta"], params["eps"])
    ref, _ = fuse_reference(
        embeddings, mask, params["weights"], params["gamma"], params["beta"], params["eps"]
    )
    with torch.no_grad():
        t_list = mod([None if e is None else torch.from_numpy(e) for e in embeddings], torch.from_numpy(mask))
        stacked = np.stack([np.zeros((b, d), np.float32) if e is None else e for e in embeddings], axis=1)
        t_stacked = mod(torch.from_numpy(stacked), torch.from_numpy(mask))
    np.testing.assert_allclose(kernel, ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(t_list.numpy(), kernel, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(t_stacked.numpy(), kernel, rtol=1e-5, atol=1e-5)


def test_nan_in_absent_input_reaches_neither_output_nor_gradient() -> None:
    rng = np.random.default_rng(0)
    mod = _module(2, 8, rng, None)
    x = torch.from_numpy(rng.standard_normal((4, 2, 8)).astype(np.float32))
    mask = torch.tensor([[1, 1], [1, 0], [0, 1], [0, 0]], dtype=torch.bool)
    x[~mask] = float("nan")
    x.requires_grad_(True)
    out = mod(x, mask)
    assert torch.isfinite(out).all()
    out.sum().backward()
    assert torch.isfinite(x.grad).all()
    assert torch.isfinite(mod.log_weights.grad).all()
    np.testing.assert_allclose(out[3].detach().numpy(), mod.norm.bias.detach().numpy(), atol=0)


def test_list_form_without_mask_and_all_absent_with_mask() -> None:
    rng = np.random.default_rng(1)
    mod = MaskedFusion(3, 5)
    a = torch.from_numpy(rng.standard_normal((2, 5)).astype(np.float32))
    out = mod([a, None, a])
    np.testing.assert_allclose(out.detach().numpy(), _fusion.fuse([a.numpy(), None, a.numpy()]), atol=1e-6)
    zeros = mod([None, None, None], torch.zeros(2, 3, dtype=torch.bool))
    assert torch.equal(zeros, torch.zeros(2, 5))


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: MaskedFusion(0, 4), "at least 1 modality"),
        (lambda: MaskedFusion(2, 0), "embedding size"),
        (lambda: MaskedFusion(2, 4, eps=0.0), "eps"),
        (lambda: MaskedFusion(2, 4, weights=[1.0, -1.0]), "finite positive"),
        (lambda: MaskedFusion(2, 4, weights=[1.0]), "finite positive"),
    ],
)
def test_bad_construction(build, match: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(FusionInputError, match=match):
        build()


def test_bad_forward_inputs() -> None:
    mod = MaskedFusion(2, 4)
    x = torch.zeros(3, 4)
    with pytest.raises(FusionInputError, match="got 1 embeddings"):
        mod([x])
    with pytest.raises(FusionInputError, match=r"embeddings\[1\] has shape \(3, 5\)"):
        mod([x, torch.zeros(3, 5)])
    with pytest.raises(FusionInputError, match=r"mask says modality 1 is present"):
        mod([x, None], torch.ones(3, 2, dtype=torch.bool))
    with pytest.raises(FusionInputError, match=r"mask has shape \(3, 3\)"):
        mod([x, x], torch.ones(3, 3, dtype=torch.bool))
    with pytest.raises(FusionInputError, match=r"expected \(B, 2, 4\)"):
        mod(torch.zeros(3, 3, 4))
    with pytest.raises(FusionInputError, match="no mask"):
        mod([None, None])
