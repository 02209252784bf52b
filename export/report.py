"""What :func:`edgefuse.export.export` returns: one :class:`FormatResult` per requested format.

Every requested format gets a result, whatever happened to the others: ``ok`` (written and validated),
``unavailable`` (its converter cannot run here; the reason says what to install) or ``failed`` (its
conversion or validation raised; the reason keeps the exception's type name, e.g. ``ParityError: ...``).
:meth:`ExportReport.raise_for_failures` turns the failed ones into one exception for callers that want
one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgefuse.export.errors import ExportError, ParityError

__all__ = ["ExportReport", "FormatResult"]


@dataclass
class FormatResult:
    """What happened for one format.

    Attributes:
        format: The format name (``onnx``, ``tflite``, ``coreml``, ``tensorrt``).
        status: ``ok``, ``unavailable`` or ``failed``.
        folder: The artifact folder (``ok``; for an unavailable TensorRT, the ONNX it would consume).
        reason: Why it is unavailable or failed (a failure starts with the exception's type name), or,
            for ``ok``, why parity could not run here.
        parity: The parity comparisons (``ok``), or the failing ones (``failed`` with a ParityError).
        parity_ran: Whether parity against PyTorch ran (the format's runtime is installed here).
        seconds: Wall time spent on this format.
        agreement: fp16 top-1 agreement with PyTorch on the labelled split, when checked.
        error_type: For ``failed``: the exception's type name (``ParityError``, ``ExportValidationError``,
            ``ExportError``, or whatever the converter raised).
        precision: The precision this format was exported at (``fp32``, ``fp16``, ``int8``).
        int8: For int8 (``ok``): accuracy per presence pattern (fp32, int8, drop in points, agreement),
            SQNR per graph, the calibration and quantizer settings — as recorded in the manifest.
    """

    format: str
    status: str  # "ok" | "unavailable" | "failed"
    folder: Path | None = None
    reason: str | None = None
    parity: list[dict[str, Any]] = field(default_factory=list)
    parity_ran: bool = False
    seconds: float = 0.0
    agreement: float | None = None
    error_type: str | None = None
    precision: str | None = None
    int8: dict[str, Any] | None = None

    @property
    def worst_int8_drop(self) -> float | None:
        """The largest accuracy drop (points) over the presence patterns of an int8 artifact, if measured."""
        rows = (self.int8 or {}).get("accuracy") or []
        return max((float(r["drop_points"]) for r in rows), default=None)

    @classmethod
    def from_exception(cls, fmt: str, exc: BaseException, context: str | None = None) -> FormatResult:
        """A ``failed`` result whose reason is ``"<ExceptionType>: <message>"`` (after ``context``, if any)."""
        name = type(exc).__name__
        message = str(exc).strip()
        reason = f"{name}: {message}" if message else f"{name} (no message)"
        if context:
            reason = f"{context}: {reason}"
        failures = list(getattr(exc, "failures", None) or []) if isinstance(exc, ParityError) else []
        return cls(fmt, "failed", reason=reason, parity=failures, error_type=name)


@dataclass
class ExportReport:
    """The outcome of :func:`~edgefuse.export.export` for every requested format, in the requested order."""

    profile: str
    modalities: list[str]
    patterns: list[list[str]]
    results: list[FormatResult]
    #: What was chosen per format and why (:meth:`~edgefuse.export.selection.FormatChoice.to_dict`).
    choices: list[dict[str, Any]] = field(default_factory=list)

    @property
    def unavailable(self) -> list[FormatResult]:
        """The results with status ``unavailable`` (the converter cannot run here)."""
        return [r for r in self.results if r.status == "unavailable"]

    @property
    def ok(self) -> bool:
        """True when no format failed (unavailable ones are reported, not failures)."""
        return all(r.status != "failed" for r in self.results)

    @property
    def failed(self) -> list[FormatResult]:
        """The results with status ``failed``."""
        return [r for r in self.results if r.status == "failed"]

    def result(self, fmt: str) -> FormatResult:
        """The result of format ``fmt``.

        Raises:
            KeyError: When ``fmt`` was not requested.
        """
        for r in self.results:
            if r.format == fmt:
                return r
        raise KeyError(f"format {fmt!r} was not exported; this report has {[r.format for r in self.results]}")

    def raise_for_failures(self) -> None:
        """Raise when a format failed; return ``None`` otherwise (unavailable formats do not raise).

        Raises:
            ParityError: When every failed format failed parity against PyTorch; ``failures`` holds
                their failing comparisons.
            ExportError: Otherwise, when any format failed. The message lists each failed format with
                its reason, and the formats that were written.
        """
        failed = self.failed
        if not failed:
            return
        lines = "\n".join(f"  - {r.format}: {r.reason}" for r in failed)
        written = [f"{r.format} ({r.folder})" for r in self.results if r.status == "ok"]
        message = (
            f"export for {self.profile}: {len(failed)} of {len(self.results)} format(s) failed "
            f"({', '.join(r.format for r in failed)}):\n{lines}"
        )
        if written:
            message += f"\nwritten and validated: {', '.join(written)}"
        if all(r.error_type == "ParityError" for r in failed):
            raise ParityError(message, [c for r in failed for c in r.parity])
        raise ExportError(message)
