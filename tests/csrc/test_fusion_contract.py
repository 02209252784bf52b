"""The kernel's numerical and argument contract, in-process (fast; the isolated cases are in tests/security).

* eps, weights, gamma, beta are checked as the float32 values the kernel uses;
* eps and threads are converted by the bindings (typed EdgeFuse errors, NumPy scalars accepted);
* out= must not overlap any input, whatever the strides;
* finite inputs never give NaN, however large (float32 statistics that overflow are redone in double).
"""

from __future__ import annotations

import numpy as np
import pytest
from edgefuse import _fusion
from edgefuse.errors import FusionInputError, FusionTypeError

TINY = float(np.finfo(np.float32).tiny)
FMAX = float(np.finfo(np.float32).max)
rng = np.random.default_rng(11)
X = rng.standard_normal((5, 12)).astype(np.float32)
Y = rng.standard_normal((5, 12)).astype(np.float32)


def _layernorm64(fused: np.ndarray, eps: float) -> np.ndarray:
    f = fused.astype(np.float64)
    c = f - f.mean(axis=1, keepdims=True)
    return c / np.sqrt((c * c).mean(axis=1, keepdims=True) + np.float64(np.float32(eps)))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"eps": 1e-50}, FusionInputError, r"eps = 1e-50 becomes 0 in float32"),
        ({"eps": 1e-45}, FusionInputError, r"denormal"),
        ({"eps": 1e39}, FusionInputError, r"inf in float32"),
        ({"eps": "1e-5"}, FusionTypeError, r"eps must be a float > 0.*got str '1e-5'"),
        ({"eps": False}, FusionTypeError, r"got bool False"),
        (
            {"threads": 2**40},
            FusionInputError,
            r"threads = 1099511627776; threads must be an int in \[1, 1024\]",
        ),
        ({"threads": 1025}, FusionInputError, r"\[1, 1024\]"),
        ({"threads": np.True_}, FusionTypeError, r"threads must be an int"),
        ({"threads": 1.0}, FusionTypeError, r"got float 1.0"),
        (
            {"weights": np.array([1e-40, 1], np.float32)},
            FusionInputError,
            r"weights\[0\] = 1e-40 is denormal",
        ),
        ({"weights": np.array([2e38, 2e38], np.float32)}, FusionInputError, r"weights sum to inf"),
        ({"gamma": np.r_[np.ones(11), np.inf].astype(np.float32)}, FusionInputError, r"gamma\[11\] = inf"),
        ({"beta": np.r_[np.nan, np.ones(11)].astype(np.float32)}, FusionInputError, r"beta\[0\] = nan"),
    ],
)
def test_bad_values_are_refused(kwargs: dict, error: type, match: str) -> None:
    for fn in (_fusion.fuse, _fusion.fuse_with_counts):
        with pytest.raises(error, match=match):
            fn([X, Y], **kwargs)


def test_pybind_generic_type_error_never_escapes() -> None:
    for kwargs in ({"eps": "x"}, {"threads": "x"}, {"threads": 2**70}, {"eps": [1e-5]}, {"threads": None}):
        with pytest.raises(FusionInputError) as info:
            _fusion.fuse([X], **kwargs)
        assert "incompatible function arguments" not in str(info.value)


def test_numpy_scalars_and_limits_are_accepted() -> None:
    ref = _fusion.fuse([X, Y])
    np.testing.assert_array_equal(_fusion.fuse([X, Y], eps=np.float32(1e-5), threads=np.int64(2)), ref)
    np.testing.assert_array_equal(
        _fusion.fuse([X, Y], eps=np.float64(1e-5), threads=_fusion.MAX_THREADS), ref
    )
    assert _fusion.MAX_THREADS == 1024
    assert np.isfinite(_fusion.fuse([X, Y], eps=TINY)).all()
    assert np.isfinite(_fusion.fuse([X, Y], eps=FMAX)).all()
    w = np.array([FMAX / 2, TINY], np.float32)
    assert np.isfinite(_fusion.fuse([X, Y], weights=w)).all()


@pytest.mark.parametrize("scale", [1e10, 1e19, 1e25, 1e36, 3e38])
def test_large_finite_embeddings_keep_layernorm_exact(scale: float) -> None:
    """LayerNorm is scale-invariant (eps aside): fuse(s * x) == LayerNorm(x) up to float32 rounding."""
    unit = X / np.abs(X).max()
    big = (unit * np.float32(scale)).astype(np.float32)
    out, counts = _fusion.fuse_with_counts([big, None, big])
    assert not np.isnan(out).any()
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, _layernorm64(big.astype(np.float64) / scale, 0.0), rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(counts, 2)


def test_float32_overflow_of_the_weighted_sum_is_handled() -> None:
    """Weights renormalised in float32 may sum to 1 + ulp: FLT_MAX * that overflows, the double path not."""
    e = [np.full((3, 4), FMAX, np.float32) for _ in range(3)]
    e[0][:, 0] = -FMAX
    w = np.array([1, 2, 3], np.float32) / np.float32(3)
    out = _fusion.fuse(e, weights=w)
    assert np.isfinite(out).all()
    fused = sum(
        (wk / w.sum()) * ek.astype(np.float64) for wk, ek in zip(w.astype(np.float64), e, strict=True)
    )
    np.testing.assert_allclose(out, _layernorm64(fused / FMAX, 0.0), rtol=1e-4, atol=1e-4)


def test_absent_rows_stay_unread_on_the_wide_path() -> None:
    big = np.full((4, 8), 1e30, np.float32)
    big[:, ::2] = -1e30
    poisoned = big.copy()
    poisoned[1] = np.nan
    mask = np.array([[1, 1], [1, 0], [0, 1], [1, 1]], bool)
    out = _fusion.fuse([big, poisoned], mask)
    assert np.isfinite(out).all()
    np.testing.assert_array_equal(out[1], _fusion.fuse([big[1:2]])[0])


@pytest.mark.parametrize("alias", ["gamma", "beta", "weights", "reversed", "mask"])
def test_out_overlapping_any_input_is_refused(alias: str) -> None:
    mem = np.ones(64, np.float32)
    out = mem[:24].reshape(2, 12)
    kwargs: dict = {}
    embeddings = [X[:2], Y[:2]]
    if alias == "gamma":
        kwargs["gamma"] = mem[20:32]
    elif alias == "beta":
        kwargs["beta"] = mem[12:24]
    elif alias == "weights":
        kwargs["weights"] = mem[23:25]
    elif alias == "reversed":
        embeddings = [mem[24:48].reshape(2, 12)[::-1], mem[:24].reshape(2, 12)[::-1]]
    else:
        raw = mem.view(np.uint8)
        raw[:4] = 1
        kwargs["mask"] = raw[:4].reshape(2, 2)
    with pytest.raises(FusionInputError, match="out overlaps an input"):
        _fusion.fuse(embeddings, out=out, **kwargs)


def test_negative_stride_inputs_disjoint_from_out_are_accepted() -> None:
    mem = rng.standard_normal(96).astype(np.float32)
    inp = mem[:24].reshape(2, 12)[::-1]
    out = mem[48:72].reshape(2, 12)
    expected = _fusion.fuse([inp.copy()], gamma=mem[24:36].copy())
    np.testing.assert_array_equal(_fusion.fuse([inp], gamma=mem[24:36], out=out), expected)


def test_unaligned_float_views_are_refused() -> None:
    raw = bytearray(4 * 61)
    un = np.frombuffer(raw, np.float32, count=60, offset=1).reshape(5, 12)
    with pytest.raises(FusionInputError, match=r"embeddings\[0\] is not aligned"):
        _fusion.fuse([un])


def test_zero_feature_size() -> None:
    out, counts = _fusion.fuse_with_counts([np.zeros((3, 0), np.float32)], threads=3)
    assert out.shape == (3, 0)
    np.testing.assert_array_equal(counts, 1)
