"""Errors of the export pipeline (part of the one EdgeFuse hierarchy)."""

from __future__ import annotations

from edgefuse.errors import EdgeFuseError

__all__ = [
    "CalibrationError",
    "ExportError",
    "ExportValidationError",
    "ParityError",
    "QuantizationError",
]


class ExportError(EdgeFuseError, ValueError):
    """An export cannot be done with the given checkpoint, profile and options (the message says why)."""


class ExportValidationError(ExportError):
    """A converted file does not match what was asked (names, shapes, dtypes, checker failure)."""


class ParityError(ExportError):
    """An exported artifact's outputs differ from PyTorch beyond the tolerance (every failure is listed)."""

    def __init__(self, message: str, failures: list[dict] | None = None) -> None:
        super().__init__(message)
        self.failures = failures or []


class QuantizationError(ExportError):
    """int8 quantization cannot be done (a bad option, a format that cannot quantize here, a quantizer failure).

    The message names the graph, what failed and the fix (another method, format or precision).
    """


class CalibrationError(ExportError):
    """Calibration data cannot be used (a modality the export needs is missing, too few rows, NaN or inf).

    The message names the modality, what the data has and the fix (e.g. ``--calibration DATASET``).
    """
