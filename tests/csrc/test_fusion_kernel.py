"""The C++ masked-fusion kernel: equality with the NumPy reference, absent data never read, every error."""

from __future__ import annotations

import threading

import edgefuse
import numpy as np
import pytest
from _cases import draw_embeddings
from _cases import rand as _rand
from edgefuse import _fusion
from edgefuse.errors import EdgeFuseError, FusionInputError, FusionTypeError
from edgefuse.fusion import fuse_reference
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

RTOL = ATOL = 1e-5


@st.composite
def fusion_cases(draw: st.DrawFn) -> dict:
    rng, embeddings, mask, kinds, b, m, d = draw_embeddings(draw)
    if draw(st.booleans()) and b > 1:
        mask[rng.integers(0, b), :] = False  # force an all-absent row
    use_mask = draw(st.booleans()) or any(k == "mixed" for k in kinds) or not mask.any(axis=1).all()
    weights = (rng.random(m).astype(np.float32) * 3 + 0.1) if draw(st.booleans()) else None
    affine = draw(st.booleans())
    gamma = _rand(rng, d) if affine else None
    beta = _rand(rng, d) if affine else None
    mask_dtype = draw(st.sampled_from([np.bool_, np.uint8]))
    return {
        "embeddings": embeddings,
        "mask": mask.astype(mask_dtype) if use_mask else None,
        "weights": weights,
        "gamma": gamma,
        "beta": beta,
        "eps": draw(st.sampled_from([1e-5, 1e-3])),
        "dim": d,
    }


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fusion_cases())
def test_kernel_matches_numpy_reference(case: dict) -> None:
    kwargs = {k: case[k] for k in ("mask", "weights", "gamma", "beta", "eps")}
    embeddings = case["embeddings"]
    # D cannot be inferred without data or gamma/beta (covered by the error tests).
    assume(any(e is not None for e in embeddings) or case["gamma"] is not None)
    ref, ref_counts = fuse_reference(embeddings, dim=case["dim"], **kwargs)
    out, counts = _fusion.fuse_with_counts(embeddings, **kwargs)
    np.testing.assert_allclose(out, ref, rtol=RTOL, atol=ATOL)
    np.testing.assert_array_equal(counts, ref_counts)
    np.testing.assert_array_equal(_fusion.fuse(embeddings, **kwargs), out)
    # The stacked (B, M, D) form gives the same result.
    if all(e is not None for e in embeddings):
        stacked = np.ascontiguousarray(np.stack(embeddings, axis=1))
        np.testing.assert_allclose(_fusion.fuse(stacked, **kwargs), out, rtol=RTOL, atol=ATOL)


def test_all_absent_row_is_beta_and_counted() -> None:
    rng = np.random.default_rng(0)
    e = [_rand(rng, 3, 8), _rand(rng, 3, 8)]
    mask = np.array([[1, 1], [0, 0], [1, 0]], bool)
    beta = _rand(rng, 8)
    out, counts = _fusion.fuse_with_counts(e, mask, beta=beta)
    np.testing.assert_array_equal(counts, [2, 0, 1])
    np.testing.assert_array_equal(out[1], beta)
    np.testing.assert_array_equal(_fusion.fuse(e, mask)[1], np.zeros(8, np.float32))
    assert np.isfinite(out).all()


def test_single_modality_is_layernorm_of_it() -> None:
    rng = np.random.default_rng(1)
    x = _rand(rng, 5, 16)
    out = _fusion.fuse([x, None])
    expected = (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_weights_are_renormalised_over_present_modalities() -> None:
    a = np.zeros((1, 4), np.float32) + np.array([0, 1, 2, 3], np.float32)
    b = np.zeros((1, 4), np.float32) + np.array([3, 2, 1, 10], np.float32)
    w = np.array([3.0, 1.0], np.float32)
    mixed = 0.75 * a + 0.25 * b
    expected = (mixed - mixed.mean()) / np.sqrt(mixed.var() + 1e-5)
    np.testing.assert_allclose(_fusion.fuse([a, b], weights=w), expected, rtol=1e-5, atol=1e-5)
    # With b absent, a's weight is renormalised to 1: the weights' scale does not matter.
    only_a = _fusion.fuse([a, b], np.array([[1, 0]], np.uint8), weights=w)
    np.testing.assert_allclose(only_a, _fusion.fuse([a, None]), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("poison", [np.nan, np.inf, -np.inf])
def test_absent_data_is_never_read(poison: float) -> None:
    rng = np.random.default_rng(2)
    b, d = 6, 32
    e = [_rand(rng, b, d) for _ in range(3)]
    mask = rng.random((b, 3)) < 0.6
    mask[0] = False
    mask[1] = [True, False, False]
    clean = _fusion.fuse(e, mask)
    poisoned = [x.copy() for x in e]
    for j in range(3):
        poisoned[j][~mask[:, j]] = poison
    np.testing.assert_array_equal(_fusion.fuse(poisoned, mask), clean)
    stacked = np.stack(poisoned, axis=1)
    np.testing.assert_array_equal(_fusion.fuse(stacked, mask), clean)
    assert np.isfinite(clean).all()


def test_strided_rows_are_handled() -> None:
    rng = np.random.default_rng(3)
    big = _rand(rng, 10, 40)
    view = big[::2, 4:20]  # row stride 80 floats, contiguous rows
    other = _rand(rng, 5, 16)
    np.testing.assert_allclose(
        _fusion.fuse([view, other]), _fusion.fuse([np.ascontiguousarray(view), other]), rtol=0, atol=0
    )
    mask = np.asfortranarray(np.array([[1, 0], [1, 1], [0, 1], [1, 1], [0, 0]], bool))
    ref, _ = fuse_reference([np.ascontiguousarray(view), other], mask)
    np.testing.assert_allclose(_fusion.fuse([view, other], mask), ref, rtol=1e-5, atol=1e-5)


def test_empty_batch() -> None:
    out, counts = _fusion.fuse_with_counts([np.zeros((0, 4), np.float32)])
    assert out.shape == (0, 4)
    assert counts.shape == (0,)


def test_out_buffer_and_threads() -> None:
    rng = np.random.default_rng(4)
    e = [_rand(rng, 257, 64) for _ in range(3)]
    mask = rng.random((257, 3)) < 0.7
    expected = _fusion.fuse(e, mask)
    buf = np.empty((257, 64), np.float32)
    result = _fusion.fuse(e, mask, out=buf, threads=2)
    assert result is buf or np.shares_memory(result, buf)
    np.testing.assert_array_equal(buf, expected)
    np.testing.assert_array_equal(_fusion.fuse(e, mask, threads=8), expected)


def test_concurrent_calls_from_python_threads_agree() -> None:
    rng = np.random.default_rng(5)
    cases = [([_rand(rng, 64, 128) for _ in range(3)], rng.random((64, 3)) < 0.5) for _ in range(8)]
    expected = [_fusion.fuse(e, m) for e, m in cases]
    results: list[list[np.ndarray]] = [[] for _ in cases]

    def work(i: int) -> None:
        for _ in range(50):
            results[i].append(_fusion.fuse(*cases[i]))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(cases))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, outs in enumerate(results):
        assert len(outs) == 50
        for out in outs:
            np.testing.assert_array_equal(out, expected[i])


def test_version_comes_from_the_build() -> None:
    assert _fusion.__version__ == edgefuse.__version__
    assert isinstance(_fusion.NATIVE_BUILD, bool)


# --- every bad input gets a typed error naming the argument and the expected shape -------------------

X = np.zeros((4, 8), np.float32)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (
            lambda: _fusion.fuse([X.astype(np.float64)]),
            FusionInputError,
            r"embeddings\[0\] has dtype float64",
        ),
        (
            lambda: _fusion.fuse([X, np.zeros((4, 8, 1), np.float32)]),
            FusionInputError,
            r"embeddings\[1\] must have shape \(B, D\)",
        ),
        (
            lambda: _fusion.fuse([X, np.zeros((5, 8), np.float32)]),
            FusionInputError,
            r"embeddings\[1\] has shape \(5, 8\).*share B and D",
        ),
        (
            lambda: _fusion.fuse([X, np.zeros((4, 9), np.float32)]),
            FusionInputError,
            r"embeddings\[1\] has shape \(4, 9\)",
        ),
        (
            lambda: _fusion.fuse(np.zeros((4, 8), np.float32)),
            FusionInputError,
            r"shape \(B, M, D\); got shape \(4, 8\)",
        ),
        (lambda: _fusion.fuse(np.zeros((4, 0, 8), np.float32)), FusionInputError, r"M = 0"),
        (lambda: _fusion.fuse([]), FusionInputError, r"embeddings is empty"),
        (lambda: _fusion.fuse([None, None]), FusionInputError, r"batch size is unknown"),
        (
            lambda: _fusion.fuse([None], np.zeros((2, 1), bool)),
            FusionInputError,
            r"feature size D is unknown",
        ),
        (lambda: _fusion.fuse("abc"), FusionTypeError, r"embeddings must be a list"),
        (lambda: _fusion.fuse([X, [1.0, 2.0]]), FusionTypeError, r"embeddings\[1\] must be a numpy.ndarray"),
        (
            lambda: _fusion.fuse([X], np.ones((4, 2), bool)),
            FusionInputError,
            r"mask must have shape \(B, M\) = \(4, 1\); got shape \(4, 2\)",
        ),
        (lambda: _fusion.fuse([X], np.ones((4,), bool)), FusionInputError, r"mask must have shape \(B, M\)"),
        (
            lambda: _fusion.fuse([X], np.ones((4, 1), np.float32)),
            FusionInputError,
            r"mask has dtype float32; expected bool or uint8",
        ),
        (lambda: _fusion.fuse([X], np.full((4, 1), 2, np.uint8)), FusionInputError, r"mask\[0, 0\] = 2"),
        (
            lambda: _fusion.fuse([X, None], np.ones((4, 2), bool)),
            FusionInputError,
            r"mask\[0, 1\] says present but embeddings\[1\] is None",
        ),
        (lambda: _fusion.fuse([X], [[True]] * 4), FusionTypeError, r"mask must be a numpy.ndarray"),
        (
            lambda: _fusion.fuse([X, X], weights=np.ones(3, np.float32)),
            FusionInputError,
            r"weights must have shape \(2,\)",
        ),
        (
            lambda: _fusion.fuse([X, X], weights=np.array([1, -1], np.float32)),
            FusionInputError,
            r"weights\[1\] = -1.*>= 0",
        ),
        (
            lambda: _fusion.fuse([X, X], weights=np.array([1, np.nan], np.float32)),
            FusionInputError,
            r"weights\[1\] = nan",
        ),
        (lambda: _fusion.fuse([X, X], weights=np.ones(2)), FusionInputError, r"weights has dtype float64"),
        (
            lambda: _fusion.fuse([X], gamma=np.ones(7, np.float32)),
            FusionInputError,
            r"gamma must have shape \(8,\)",
        ),
        (
            lambda: _fusion.fuse([X], beta=np.ones((8, 1), np.float32)),
            FusionInputError,
            r"beta must have shape \(8,\)",
        ),
        (
            lambda: _fusion.fuse([X], gamma=np.ones(16, np.float32)[::2]),
            FusionInputError,
            r"gamma is not contiguous",
        ),
        (lambda: _fusion.fuse([X], eps=0.0), FusionInputError, r"eps = 0.*> 0"),
        (lambda: _fusion.fuse([X], eps=float("nan")), FusionInputError, r"eps = nan"),
        (
            lambda: _fusion.fuse([np.zeros((4, 16), np.float32)[:, ::2]]),
            FusionInputError,
            r"embeddings\[0\] is not contiguous along its last axis",
        ),
        (
            lambda: _fusion.fuse([X], out=np.empty((4, 7), np.float32)),
            FusionInputError,
            r"out must have shape \(B, D\) = \(4, 8\)",
        ),
        (
            lambda: _fusion.fuse([X], out=np.empty((4, 8), np.float64)),
            FusionInputError,
            r"out has dtype float64",
        ),
        (lambda: _fusion.fuse([X], out=X), FusionInputError, r"out overlaps an input"),
        (
            lambda: _fusion.fuse([X], out=np.empty((8, 4), np.float32).T),
            FusionInputError,
            r"out must be C-contiguous",
        ),
        (lambda: _fusion.fuse([X], threads=0), FusionInputError, r"threads = 0"),
        (lambda: _fusion.fuse([X] * 65), FusionInputError, r"at most 64"),
    ],
)
def test_bad_input_raises_typed_error(call, error, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error, match=match) as info:
        call()
    assert isinstance(info.value, EdgeFuseError)
    assert isinstance(info.value, ValueError)


def test_read_only_out_is_rejected() -> None:
    out = np.empty((4, 8), np.float32)
    out.flags.writeable = False
    with pytest.raises(FusionInputError, match="out is read-only"):
        _fusion.fuse([X], out=out)


def test_torch_tensor_gets_a_hint() -> None:
    torch = pytest.importorskip("torch")
    with pytest.raises(FusionTypeError, match=r"\.numpy\(\)"):
        _fusion.fuse([torch.zeros(4, 8)])
