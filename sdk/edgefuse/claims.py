"""Claims decided by confidence intervals: paired per-seed differences, 95% intervals, and the rule.

The rule (docs/metrics.md): a condition is **established** only when its whole 95% interval meets it,
**refuted** when its whole interval fails it, and **undecided** otherwise; a claim holds only when every
condition is established. A point estimate never decides a claim, so seed noise cannot flip a verdict:
with more noise the interval widens and the verdict becomes "undecided", never the opposite one.

Intervals, both over seeds paired with the baseline (same seed, same splits):

* **cost** (points of full-modality accuracy, baseline − intervention, per seed): Student t interval
  of the mean of the paired differences (``n − 1`` degrees of freedom);
* **drop factor** (baseline mean drop / intervention mean drop, a ratio of means): percentile bootstrap
  over seeds (the same resampled seeds for both rows), :data:`BOOTSTRAP_RESAMPLES` resamples drawn
  from ``numpy.random.default_rng(BOOTSTRAP_SEED)``: the interval is a pure function of the scores.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

__all__ = [
    "BOOTSTRAP_RESAMPLES",
    "BOOTSTRAP_SEED",
    "CONFIDENCE",
    "Interval",
    "bootstrap_ratio",
    "decide",
    "t_interval",
]

#: Confidence level of every interval.
CONFIDENCE = 0.95
#: Bootstrap resamples of the drop-factor interval.
BOOTSTRAP_RESAMPLES = 10_000
#: Seed of the bootstrap generator (fixed: the same scores give the same interval).
BOOTSTRAP_SEED = 0


@dataclass(frozen=True)
class Interval:
    """A point estimate with its two-sided interval.

    Attributes:
        estimate: The point estimate (mean, or ratio of means).
        low: Lower bound.
        high: Upper bound.
        n: Number of seeds (pairs).
        method: ``t`` or ``bootstrap``.
    """

    estimate: float
    low: float
    high: float
    n: int
    method: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return asdict(self)

    def text(self, fmt: str = "+.1f", unit: str = "") -> str:
        """``+0.4 [−0.6, +1.3]`` (estimate and interval)."""
        return f"{self.estimate:{fmt}}{unit} [{self.low:{fmt}}, {self.high:{fmt}}]{unit and ''}"


def _t_quantile(p: float, df: int) -> float:
    from scipy.stats import t

    return float(t.ppf(p, df))


def t_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> Interval:
    """Student t interval of the mean of ``values`` (e.g. per-seed paired differences).

    Args:
        values: At least two finite numbers.
        confidence: Two-sided level.

    Returns:
        The :class:`Interval` (``method="t"``).

    Raises:
        ValueError: Fewer than two values, or a non-finite one.
    """
    vals = [float(v) for v in values]
    if len(vals) < 2 or not all(math.isfinite(v) for v in vals):
        raise ValueError(f"a t interval needs at least two finite values; got {vals}")
    mean = statistics.fmean(vals)
    half = _t_quantile(0.5 + confidence / 2, len(vals) - 1) * statistics.stdev(vals) / math.sqrt(len(vals))
    return Interval(mean, mean - half, mean + half, len(vals), "t")


def bootstrap_ratio(
    numerators: Sequence[float],
    denominators: Sequence[float],
    confidence: float = CONFIDENCE,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> Interval:
    """Percentile bootstrap interval of ``mean(numerators) / mean(denominators)``, resampling pairs.

    Pair ``i`` (e.g. seed ``i``'s baseline drop and intervention drop) is resampled as a unit. A resample
    whose denominator mean is ``<= 0`` gives ``+inf`` (no drop left: an unbounded factor).

    Args:
        numerators: Per-pair numerators (baseline drops).
        denominators: Per-pair denominators (intervention drops), as many.
        confidence: Two-sided level.
        resamples: Bootstrap resamples.
        seed: Seed of ``numpy.random.default_rng``.

    Returns:
        The :class:`Interval` (``method="bootstrap"``); ``estimate`` is the ratio of the plain means.

    Raises:
        ValueError: Lengths differ or fewer than two pairs.
    """
    import numpy as np

    num = np.asarray(numerators, dtype=np.float64)
    den = np.asarray(denominators, dtype=np.float64)
    if num.shape != den.shape or num.ndim != 1 or len(num) < 2:
        raise ValueError(f"need two equal-length sequences of >= 2 pairs; got {num.shape} and {den.shape}")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(num), size=(resamples, len(num)))
    n_mean, d_mean = num[idx].mean(axis=1), den[idx].mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.where(d_mean > 0, n_mean / np.where(d_mean > 0, d_mean, 1.0), np.inf)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(ratios, [alpha, 1 - alpha], method="inverted_cdf")  # no inf - inf
    estimate = float(num.mean() / den.mean()) if den.mean() > 0 else math.inf
    return Interval(estimate, float(low), float(high), len(num), "bootstrap")


def decide(interval: Interval, *, at_least: float | None = None, at_most: float | None = None) -> str:
    """``established``, ``refuted`` or ``undecided``: whether the whole interval meets one bound.

    Args:
        interval: The interval.
        at_least: The condition ``value >= at_least`` (give exactly one of the two bounds).
        at_most: The condition ``value <= at_most``.

    Raises:
        ValueError: Not exactly one bound given.
    """
    if (at_least is None) == (at_most is None):
        raise ValueError("give exactly one of at_least= and at_most=")
    if at_least is not None:
        if interval.low >= at_least:
            return "established"
        return "refuted" if interval.high < at_least else "undecided"
    assert at_most is not None
    if interval.high <= at_most:
        return "established"
    return "refuted" if interval.low > at_most else "undecided"
