"""Per-row fusion weights (B, M) in the kernel and the NumPy reference (issue 16, item 3).

The rules, identical for (M,) and (B, M) weights:

* each row's weights are renormalised over the modalities present there;
* a weight of 0 acts as absent: that (row, modality)'s data is never read, and it is not counted;
* a row whose present modalities all weigh 0 is an all-absent row (fuses to zeros: output beta / zeros,
  count 0);
* negative, NaN, Inf and denormal weights are refused, the element named (``weights[b, m]``).
"""

from __future__ import annotations

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
TINY = float(np.finfo(np.float32).tiny)


@st.composite
def row_weight_cases(draw: st.DrawFn) -> dict:
    rng, clean, mask, _, b, m, d = draw_embeddings(draw)
    # Per-row weights with zeros (about a third), sometimes a whole row of zeros, at a random scale.
    scale = np.float32(draw(st.sampled_from([1.0, 1e-30, 1e30])))
    weights = ((rng.random((b, m)) * 3 + 0.1) * scale).astype(np.float32)
    weights[rng.random((b, m)) < draw(st.sampled_from([0.0, 0.3, 0.6]))] = 0
    if draw(st.booleans()):
        weights[rng.integers(0, b)] = 0  # a row whose present weights are all zero
    used = mask & (weights > 0)
    # NaN wherever the data must not be read: absent slots and 0-weighted slots.
    embeddings = [None if e is None else e.copy() for e in clean]
    for j, e in enumerate(embeddings):
        if e is not None:
            e[~used[:, j]] = np.nan
    affine = draw(st.booleans())
    return {
        "embeddings": embeddings,
        "mask": mask.astype(draw(st.sampled_from([np.bool_, np.uint8]))),
        "weights": weights,
        "gamma": _rand(rng, d) if affine else None,
        "beta": _rand(rng, d) if affine else None,
        "eps": draw(st.sampled_from([1e-5, 1e-3])),
        "threads": draw(st.sampled_from([1, 1, 2, 4])),
        "dim": d,
        "used": used,
    }


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(row_weight_cases())
def test_row_weights_kernel_matches_reference(case: dict) -> None:
    """Kernel == reference, with NaN in absent and 0-weighted slots, zero rows, counts = used."""
    embeddings = case["embeddings"]
    assume(any(e is not None for e in embeddings) or case["gamma"] is not None)
    kwargs = {k: case[k] for k in ("mask", "weights", "gamma", "beta", "eps")}
    ref, ref_counts = fuse_reference(embeddings, dim=case["dim"], **kwargs)
    out, counts = _fusion.fuse_with_counts(embeddings, threads=case["threads"], **kwargs)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, ref, rtol=RTOL, atol=ATOL)
    np.testing.assert_array_equal(counts, case["used"].sum(axis=1))
    np.testing.assert_array_equal(ref_counts, counts)
    np.testing.assert_array_equal(_fusion.fuse(embeddings, threads=case["threads"], **kwargs), out)
    if all(e is not None for e in embeddings):
        stacked = np.ascontiguousarray(np.stack(embeddings, axis=1))
        np.testing.assert_array_equal(_fusion.fuse(stacked, threads=case["threads"], **kwargs), out)


@pytest.mark.parametrize("threads", [1, 3])
def test_broadcast_row_weights_equal_fixed_weights(threads: int) -> None:
    """The same weights given as (M,) or as (B, M) rows (copied, broadcast, strided) give identical bits."""
    rng = np.random.default_rng(0)
    b, m, d = 37, 3, 48
    e = [_rand(rng, b, d) for _ in range(m)]
    mask = rng.random((b, m)) < 0.7
    w = np.array([1.0, 2.0, 0.5], np.float32)
    fixed, fixed_counts = _fusion.fuse_with_counts(e, mask, w, threads=threads)
    big = np.zeros((2 * b, m + 2), np.float32)
    big[::2, 1 : 1 + m] = w
    for rows in (
        np.tile(w, (b, 1)),  # C-contiguous
        np.broadcast_to(w, (b, m)),  # row stride 0
        np.asfortranarray(np.tile(w, (b, 1))),  # last axis strided: copied
        np.tile(w, (b, 1))[::-1],  # negative row stride
        big[::2, 1 : 1 + m],  # row stride 2 * (m + 2)
    ):
        out, counts = _fusion.fuse_with_counts(e, mask, rows, threads=threads)
        np.testing.assert_array_equal(out, fixed)
        np.testing.assert_array_equal(counts, fixed_counts)
        ref, ref_counts = fuse_reference(e, mask, rows)
        np.testing.assert_allclose(out, ref, rtol=RTOL, atol=ATOL)
        np.testing.assert_array_equal(ref_counts, counts)


@pytest.mark.parametrize("shape", ["fixed", "rows"])
@pytest.mark.parametrize("poison", [np.nan, np.inf])
def test_zero_weight_is_absent(shape: str, poison: float) -> None:
    """A weight of 0 == that modality absent (mask 0): same bits, same counts, its data never read."""
    rng = np.random.default_rng(1)
    b, d = 16, 32
    e = [_rand(rng, b, d) for _ in range(3)]
    if shape == "fixed":
        w = np.array([2.0, 0.0, 1.0], np.float32)
        zero = np.zeros((b, 3), bool)
        zero[:, 1] = True
    else:
        w = (rng.random((b, 3)) + 0.5).astype(np.float32)
        zero = rng.random((b, 3)) < 0.4
        w[zero] = 0
    as_absent = ~zero
    poisoned = [x.copy() for x in e]
    for j in range(3):
        poisoned[j][zero[:, j]] = poison
    expected, expected_counts = _fusion.fuse_with_counts(
        e, as_absent, np.where(zero, 1, w).astype(np.float32)
    )
    gamma, beta = _rand(rng, d), _rand(rng, d)
    for threads in (1, 4):
        out, counts = _fusion.fuse_with_counts(poisoned, None, w, threads=threads)
        np.testing.assert_array_equal(out, expected)
        np.testing.assert_array_equal(counts, expected_counts)
        np.testing.assert_array_equal(counts, (~zero).sum(axis=1))
    ref, ref_counts = fuse_reference(poisoned, None, w)
    np.testing.assert_allclose(ref, expected, rtol=RTOL, atol=ATOL)
    np.testing.assert_array_equal(ref_counts, expected_counts)
    # With LayerNorm affine parameters too.
    np.testing.assert_array_equal(
        _fusion.fuse(poisoned, None, w, gamma, beta),
        _fusion.fuse(e, as_absent, np.where(zero, 1, w).astype(np.float32), gamma, beta),
    )


@pytest.mark.parametrize("affine", [False, True])
def test_all_zero_present_weights_row_is_an_all_absent_row(affine: bool) -> None:
    """A row whose present modalities all weigh 0 fuses exactly like a row with none present."""
    rng = np.random.default_rng(2)
    b, d = 5, 24
    e = [_rand(rng, b, d) for _ in range(3)]
    beta = _rand(rng, d) if affine else None
    gamma = _rand(rng, d) if affine else None
    mask = np.array([[1, 1, 1], [1, 0, 1], [0, 0, 0], [1, 1, 0], [0, 1, 0]], bool)
    w = (rng.random((b, 3)) + 0.5).astype(np.float32)
    w[1] = [0, 3, 0]  # the only nonzero weight is on the absent modality
    w[3] = 0  # every weight 0
    e[0][[1, 3]] = np.nan
    e[2][1] = np.nan
    e[1][3] = np.nan
    out, counts = _fusion.fuse_with_counts(e, mask, w, gamma, beta, threads=2)
    all_absent = _fusion.fuse([x[2:3] for x in e], mask[2:3], w[2:3], gamma, beta)[0]
    expected_row = beta if affine else np.zeros(d, np.float32)
    for row in (1, 2, 3):
        np.testing.assert_array_equal(out[row], all_absent)
        np.testing.assert_array_equal(out[row], expected_row)
    np.testing.assert_array_equal(counts, [3, 0, 0, 0, 1])
    ref, ref_counts = fuse_reference(e, mask, w, gamma, beta)
    np.testing.assert_array_equal(ref[[1, 2, 3]], np.stack([expected_row] * 3))
    np.testing.assert_allclose(ref, out, rtol=RTOL, atol=ATOL)
    np.testing.assert_array_equal(ref_counts, counts)


def test_every_weight_zero_and_every_modality_none() -> None:
    """All-zero (M,) weights: every row all-absent; (B, M) weights with every embedding None: D from beta."""
    rng = np.random.default_rng(3)
    x = _rand(rng, 4, 8)
    beta = _rand(rng, 8)
    out, counts = _fusion.fuse_with_counts([x, x], weights=np.zeros(2, np.float32), beta=beta)
    np.testing.assert_array_equal(out, np.tile(beta, (4, 1)))
    np.testing.assert_array_equal(counts, 0)
    out, counts = _fusion.fuse_with_counts(
        [None, None], np.zeros((4, 2), bool), np.ones((4, 2), np.float32), beta=beta
    )
    np.testing.assert_array_equal(out, np.tile(beta, (4, 1)))
    np.testing.assert_array_equal(counts, 0)


def test_row_weights_are_renormalised_per_row() -> None:
    a = np.array([[0, 1, 2, 3], [0, 1, 2, 3]], np.float32)
    c = np.array([[3, 2, 1, 10], [3, 2, 1, 10]], np.float32)
    w = np.array([[3, 1], [1, 3]], np.float32)
    out = _fusion.fuse([a, c], weights=w)
    for row, (wa, wc) in enumerate([(0.75, 0.25), (0.25, 0.75)]):
        mixed = wa * a[row] + wc * c[row]
        expected = (mixed - mixed.mean()) / np.sqrt(mixed.var() + 1e-5)
        np.testing.assert_allclose(out[row], expected, rtol=1e-5, atol=1e-5)
    # Only ratios matter, per row: scaling one row's weights changes nothing.
    scaled = w * np.array([[1e-30], [1e30]], np.float32)
    np.testing.assert_allclose(_fusion.fuse([a, c], weights=scaled), out, rtol=1e-6, atol=1e-6)


def test_row_weights_extremes_and_threads() -> None:
    """Valid extremes (FLT_MIN next to FLT_MAX / M, one row summing to just below FLT_MAX), many threads."""
    rng = np.random.default_rng(4)
    b, m, d = 301, 3, 40
    e = [_rand(rng, b, d) for _ in range(m)]
    w = (rng.random((b, m)) + 0.1).astype(np.float32)
    w[0] = [TINY, 3e38 / 3, 0]
    w[1] = [1e38, 1e38, 1e38]
    w[5::7] = 0
    mask = rng.random((b, m)) < 0.8
    one = _fusion.fuse(e, mask, w)
    assert np.isfinite(one).all()
    for threads in (2, 7, 1024):
        np.testing.assert_array_equal(_fusion.fuse(e, mask, w, threads=threads), one)
    ref, _ = fuse_reference(e, mask, w)
    np.testing.assert_allclose(one, ref, rtol=1e-4, atol=1e-4)


def test_empty_batch_with_row_weights() -> None:
    out, counts = _fusion.fuse_with_counts(
        [np.zeros((0, 4), np.float32)] * 2, weights=np.zeros((0, 2), np.float32)
    )
    assert out.shape == (0, 4)
    assert counts.shape == (0,)


def test_out_overlapping_row_weights_is_refused() -> None:
    mem = np.ones(64, np.float32)
    x = np.ones((2, 8), np.float32)
    with pytest.raises(FusionInputError, match=r"out overlaps an input array \(weights\)"):
        _fusion.fuse([x, x], weights=mem[14:18].reshape(2, 2), out=mem[:16].reshape(2, 8))
    # Disjoint parts of one buffer are fine.
    res = _fusion.fuse([x, x], weights=mem[16:20].reshape(2, 2), out=mem[:16].reshape(2, 8))
    np.testing.assert_array_equal(res, _fusion.fuse([x, x]))


# --- bad weights: typed errors naming the element -------------------------------------------------------

X = np.random.default_rng(5).standard_normal((4, 8)).astype(np.float32)


def _rows(value: float, b: int = 3, m: int = 1) -> np.ndarray:
    w = np.ones((4, 2), np.float32)
    w[b, m] = value
    return w


@pytest.mark.parametrize(
    ("weights", "error", "match"),
    [
        (_rows(np.nan), FusionInputError, r"weights\[3, 1\] = nan; fusion weights must be finite and >= 0"),
        (_rows(np.inf, 0, 0), FusionInputError, r"weights\[0, 0\] = inf"),
        (_rows(-np.inf, 2, 1), FusionInputError, r"weights\[2, 1\] = -inf"),
        (_rows(-1.0, 1, 0), FusionInputError, r"weights\[1, 0\] = -1; .*>= 0"),
        (_rows(1e-40, 3, 0), FusionInputError, r"weights\[3, 0\] = 1e-40 is denormal.*0 or >= 1.1754944e-38"),
        (
            np.array([[1, 1], [1, 1], [3e38, 3e38], [1, 1]], np.float32),
            FusionInputError,
            r"weights\[2, :\] sum to inf in float32",
        ),
        (
            np.ones((5, 2), np.float32),
            FusionInputError,
            r"weights must have shape \(B, M\) = \(4, 2\).*got shape \(5, 2\)",
        ),
        (
            np.ones((4, 3), np.float32),
            FusionInputError,
            r"weights must have shape \(B, M\) = \(4, 2\).*got shape \(4, 3\)",
        ),
        (np.ones((2, 4), np.float32), FusionInputError, r"got shape \(2, 4\)"),
        (
            np.ones((4, 2, 1), np.float32),
            FusionInputError,
            r"weights must have shape \(B, M\).*got shape \(4, 2, 1\)",
        ),
        (np.ones((1, 2), np.float32), FusionInputError, r"got shape \(1, 2\)"),  # no broadcasting of (1, M)
        (np.ones(3, np.float32), FusionInputError, r"weights must have shape \(2,\).*or \(B, M\) = \(4, 2\)"),
        (np.ones((4, 2)), FusionInputError, r"weights has dtype float64"),
        (np.ones((4, 2), ">f4"), FusionInputError, r"non-native byte order"),
        (
            np.frombuffer(bytearray(36), np.float32, count=8, offset=1).reshape(4, 2),
            FusionInputError,
            r"weights is not aligned",
        ),
        (
            [[1.0, 1.0]] * 4,
            FusionTypeError,
            r"weights must be a numpy.ndarray .*\(2,\) or \(B, M\) = \(4, 2\)",
        ),
    ],
)
def test_bad_row_weights_are_refused(weights: object, error: type, match: str) -> None:
    for fn in (_fusion.fuse, _fusion.fuse_with_counts):
        for threads in (1, 2):
            with pytest.raises(error, match=match) as info:
                fn([X, X], weights=weights, threads=threads)
            assert isinstance(info.value, EdgeFuseError)
            assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("weights", "match"),
    [
        (np.array([1, np.nan], np.float32), r"weights\[1\] = nan"),
        (np.array([-0.5, 1], np.float32), r"weights\[0\] = -0.5; fusion weights must be finite and >= 0"),
        (np.array([1, 1e-40], np.float32), r"weights\[1\] = 1e-40 is denormal"),
    ],
)
def test_fixed_weights_keep_their_messages(weights: np.ndarray, match: str) -> None:
    with pytest.raises(FusionInputError, match=match):
        _fusion.fuse([X, X], weights=weights)


def test_negative_zero_counts_as_zero() -> None:
    w = np.array([[1, -0.0]] * 4, np.float32)
    y = X.copy()
    y[:] = np.nan
    out, counts = _fusion.fuse_with_counts([X, y], weights=w)
    np.testing.assert_array_equal(out, _fusion.fuse([X, None]))
    np.testing.assert_array_equal(counts, 1)


def test_reference_refuses_a_bad_weights_shape() -> None:
    with pytest.raises(FusionInputError, match=r"weights must have shape \(2,\) or \(B, M\) = \(4, 2\)"):
        fuse_reference([X, X], weights=np.ones((3, 2), np.float32))
