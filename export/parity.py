"""Parity against PyTorch: per output, per backend, per precision, per presence pattern and batch size.

For every comparison: max absolute and relative difference, the tolerance used, the smallest absolute
tolerance that would have passed (with the same relative term), and pass/fail. The tolerances are per
backend and precision (:data:`TOLERANCES`); a failure raises :class:`~edgefuse.export.errors.ParityError`
listing every failing comparison.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from edgefuse.export.errors import ParityError

__all__ = ["TOLERANCES", "Comparison", "compare", "raise_on_failures", "tolerance"]

#: (backend, precision) -> (atol, rtol). fp32 backends reorder float sums (~1e-6 relative); fp16 keeps
#: ~3 significant digits, so logits of size ~10 differ by ~1e-2.
TOLERANCES: dict[tuple[str, str], tuple[float, float]] = {
    ("onnxruntime", "fp32"): (1e-4, 1e-4),
    ("litert", "fp32"): (1e-4, 1e-4),
    ("coreml", "fp32"): (1e-3, 1e-3),
    ("tensorrt", "fp32"): (1e-3, 1e-3),
    ("litert", "fp16"): (5e-2, 1e-2),
    ("coreml", "fp16"): (5e-2, 1e-2),
    ("tensorrt", "fp16"): (5e-2, 1e-2),
}


def tolerance(backend: str, precision: str) -> tuple[float, float]:
    """The (atol, rtol) of a backend and precision (fp32 defaults of 1e-4 when not listed)."""
    return TOLERANCES.get((backend, precision), (1e-4, 1e-4) if precision == "fp32" else (5e-2, 1e-2))


@dataclass(frozen=True)
class Comparison:
    """One output compared with PyTorch."""

    backend: str
    precision: str
    graph: str
    output: str
    pattern: str
    batch: int
    max_abs: float
    max_rel: float
    atol: float
    rtol: float
    min_passing_atol: float
    passed: bool

    def to_dict(self) -> dict:
        """JSON form."""
        return asdict(self)


def compare(
    actual: np.ndarray,
    expected: np.ndarray,
    *,
    backend: str,
    precision: str,
    graph: str,
    output: str,
    pattern: str,
    batch: int,
) -> Comparison:
    """Compare one output; pass when ``|a - e| <= atol + rtol * |e|`` everywhere (and shapes agree)."""
    atol, rtol = tolerance(backend, precision)
    where = {
        "backend": backend,
        "precision": precision,
        "graph": graph,
        "output": output,
        "pattern": pattern,
        "batch": batch,
        "atol": atol,
        "rtol": rtol,
    }
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    if a.shape != e.shape or not np.isfinite(a).all():
        inf = float("inf")
        return Comparison(**where, max_abs=inf, max_rel=inf, min_passing_atol=inf, passed=False)
    diff = np.abs(a - e)
    max_abs = float(diff.max(initial=0.0))
    max_rel = float((diff / np.maximum(np.abs(e), 1e-12)).max(initial=0.0))
    needed = float(np.maximum(diff - rtol * np.abs(e), 0.0).max(initial=0.0))
    return Comparison(
        **where, max_abs=max_abs, max_rel=max_rel, min_passing_atol=needed, passed=needed <= atol
    )


def raise_on_failures(results: list[Comparison], what: str) -> None:
    """Raise :class:`ParityError` listing every failed comparison of ``results``."""
    failed = [r for r in results if not r.passed]
    if failed:
        lines = [
            f"{r.backend}/{r.precision} {r.graph}.{r.output} pattern={r.pattern} batch={r.batch}: max abs {r.max_abs:.3g} "
            f"(max rel {r.max_rel:.3g}) > atol {r.atol:g} + rtol {r.rtol:g}; would pass with atol >= {r.min_passing_atol:.3g}"
            for r in failed
        ]
        raise ParityError(
            f"{what}: {len(failed)} of {len(results)} comparisons failed:\n  " + "\n  ".join(lines),
            [r.to_dict() for r in failed],
        )
