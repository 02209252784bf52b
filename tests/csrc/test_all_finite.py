"""``edgefuse._fusion.all_finite``: the runtime's NaN/Inf check of present sensor inputs."""

from __future__ import annotations

import numpy as np
import pytest
from edgefuse import _fusion
from edgefuse.errors import FusionInputError, FusionTypeError
from hypothesis import given
from hypothesis import strategies as st


@pytest.mark.parametrize("n", [0, 1, 7, 1023, 1024, 1025, 70_000])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_finds_any_nonfinite_value(n: int, bad: float) -> None:
    x = np.random.default_rng(n).standard_normal(n).astype(np.float32) * 1e30  # large but finite
    assert _fusion.all_finite(x)
    for pos in {0, n // 2, n - 1} if n else set():
        y = x.copy()
        y[pos] = bad
        assert not _fusion.all_finite(y), (n, pos, bad)


@given(st.lists(st.floats(width=32, allow_nan=True, allow_infinity=True), max_size=300))
def test_matches_numpy(values: list[float]) -> None:
    x = np.asarray(values, dtype=np.float32).reshape(-1)
    assert _fusion.all_finite(x) == bool(np.isfinite(x).all())


def test_any_shape_and_float32_max() -> None:
    x = np.full((2, 1, 32, 61), np.finfo(np.float32).max, np.float32)
    assert _fusion.all_finite(x)
    x[1, 0, 31, 60] = np.nan
    assert not _fusion.all_finite(x)


def test_bad_input_is_typed() -> None:
    with pytest.raises(FusionInputError, match="float32"):
        _fusion.all_finite(np.zeros(4, np.float64))
    with pytest.raises(FusionInputError, match="C-contiguous"):
        _fusion.all_finite(np.zeros((4, 4), np.float32)[:, ::2])
    with pytest.raises(FusionTypeError, match=r"numpy\.ndarray"):
        _fusion.all_finite([1.0, 2.0])
