"""Confidence intervals and the claim rule of edgefuse.claims (docs/metrics.md)."""

from __future__ import annotations

import math

import pytest
from edgefuse.claims import Interval, bootstrap_ratio, decide, t_interval


def test_t_interval_matches_the_textbook_value() -> None:
    ci = t_interval([1.0, 2.0, 3.0, 4.0])
    # mean 2.5, sd 1.2910, t(0.975, 3) = 3.1824: half-width 2.0543
    assert ci.estimate == pytest.approx(2.5)
    assert ci.low == pytest.approx(2.5 - 2.0543, abs=1e-4)
    assert ci.high == pytest.approx(2.5 + 2.0543, abs=1e-4)
    assert (ci.n, ci.method) == (4, "t")


def test_t_interval_refuses_too_few_or_non_finite_values() -> None:
    with pytest.raises(ValueError, match="at least two"):
        t_interval([1.0])
    with pytest.raises(ValueError, match="finite"):
        t_interval([1.0, math.nan])


def test_bootstrap_ratio_is_a_pure_function_of_the_scores() -> None:
    base = [0.45, 0.40, 0.50, 0.42, 0.47, 0.44, 0.39, 0.48, 0.46, 0.43]
    iv = [0.15, 0.12, 0.20, 0.14, 0.16, 0.18, 0.11, 0.17, 0.13, 0.15]
    a, b = bootstrap_ratio(base, iv), bootstrap_ratio(base, iv)
    assert a == b
    assert a.estimate == pytest.approx(sum(base) / sum(iv))
    assert a.low < a.estimate < a.high
    assert a.method == "bootstrap"
    assert a.n == 10


def test_bootstrap_ratio_with_no_drop_left_is_unbounded_not_nan() -> None:
    ci = bootstrap_ratio([0.4, 0.5, 0.45], [0.0, 0.0, 0.0])
    assert ci.estimate == math.inf
    assert ci.low == math.inf
    assert ci.high == math.inf


def test_bootstrap_ratio_refuses_unpaired_input() -> None:
    with pytest.raises(ValueError, match="equal-length"):
        bootstrap_ratio([0.4, 0.5], [0.1])


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [(-0.8, 0.9, "established"), (-0.8, 2.1, "undecided"), (1.2, 3.0, "refuted"), (-1.0, 1.0, "established")],
)
def test_cost_is_claimed_only_when_the_upper_bound_is_at_most_one_point(
    low: float, high: float, expected: str
) -> None:
    assert decide(Interval(0.0, low, high, 10, "t"), at_most=1.0) == expected


@pytest.mark.parametrize(
    ("low", "high", "expected"), [(1.6, 4.0, "established"), (1.2, 3.0, "undecided"), (0.8, 1.4, "refuted")]
)
def test_factor_is_claimed_only_when_the_lower_bound_reaches_the_threshold(
    low: float, high: float, expected: str
) -> None:
    assert decide(Interval(2.0, low, high, 10, "bootstrap"), at_least=1.5) == expected


def test_decide_needs_exactly_one_bound() -> None:
    ci = Interval(0.0, -1.0, 1.0, 3, "t")
    with pytest.raises(ValueError, match="exactly one"):
        decide(ci)
    with pytest.raises(ValueError, match="exactly one"):
        decide(ci, at_least=1.0, at_most=2.0)
