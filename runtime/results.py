"""What a :class:`~edgefuse.runtime.Session` returns: a prediction, and the report of its self-check."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

__all__ = ["Prediction", "ReferenceCheck", "VerifyReport"]


@dataclass(frozen=True, eq=False)
class Prediction:
    """The result of :meth:`Session.predict` for a batch of B rows.

    Attributes:
        logits: ``(B, C)`` float32 logits of the head.
        probabilities: ``(B, C)`` float32 softmax of the logits.
        label_ids: ``(B,)`` int64 argmax of the logits.
        labels: The B label names of ``label_ids``.
        present: ``(B, M)`` bool, read-only: which modalities were used for each row (columns in
            ``modalities``).
        backend: The backend that actually ran the graphs (e.g. ``onnxruntime``).
        modalities: The M modality names of the session, in fusion order.

    ``probabilities``, ``label_ids`` and ``labels`` are computed from the logits on first access (and
    cached), so a caller that only needs the logits does not pay for them.
    """

    logits: np.ndarray
    present: np.ndarray
    backend: str
    modalities: tuple[str, ...]
    label_names: tuple[str, ...] = field(repr=False, default=())

    @cached_property
    def probabilities(self) -> np.ndarray:
        """``(B, C)`` float32 softmax of the logits."""
        p = self.logits - self.logits.max(axis=1, keepdims=True)
        np.exp(p, out=p)
        p /= p.sum(axis=1, keepdims=True)
        return p

    @cached_property
    def label_ids(self) -> np.ndarray:
        """``(B,)`` int64 argmax of the logits."""
        return self.logits.argmax(axis=1).astype(np.int64, copy=False)

    @cached_property
    def labels(self) -> list[str]:
        """The B label names of :attr:`label_ids`."""
        return [self.label_names[i] for i in self.label_ids.tolist()]


@dataclass(frozen=True)
class ReferenceCheck:
    """One bundled reference case run by :meth:`Session.verify`.

    Attributes:
        pattern: The modalities present in the case.
        batch: Its rows.
        max_abs: Largest absolute difference of the logits from the bundled ones (``None`` if not run).
        max_rel: Largest relative difference (``|a - e| / max(|e|, 1e-12)``).
        atol: Absolute tolerance (from the manifest's ``reference.tolerance``).
        rtol: Relative tolerance; a case passes when ``|a - e| <= atol + rtol * |e|`` everywhere.
        passed: Whether it passed (``False`` when it could not run; ``None`` when skipped).
        note: Why it was skipped or could not run, else ``None``.
    """

    pattern: tuple[str, ...]
    batch: int
    max_abs: float | None
    max_rel: float | None
    atol: float
    rtol: float
    passed: bool | None
    note: str | None = None


@dataclass(frozen=True)
class VerifyReport:
    """What :meth:`Session.verify` found.

    Attributes:
        backend: The backend that ran the cases.
        artifact: The artifact folder.
        checks: One :class:`ReferenceCheck` per bundled case, in the manifest's order.
    """

    backend: str
    artifact: str
    checks: tuple[ReferenceCheck, ...]

    @property
    def passed(self) -> bool:
        """True when at least one case ran and every case that ran passed (skipped cases do not count)."""
        ran = [c for c in self.checks if c.passed is not None]
        return bool(ran) and all(c.passed for c in ran)

    def failures(self) -> list[ReferenceCheck]:
        """The cases that ran and failed."""
        return [c for c in self.checks if c.passed is False]

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "backend": self.backend,
            "artifact": self.artifact,
            "passed": self.passed,
            "checks": [{**asdict(c), "pattern": list(c.pattern)} for c in self.checks],
        }
