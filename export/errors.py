"""Errors of the export pipeline (part of the one EdgeFuse hierarchy)."""

from __future__ import annotations

from edgefuse.errors import EdgeFuseError

__all__ = ["ExportError", "ExportValidationError", "ParityError"]


class ExportError(EdgeFuseError, ValueError):
    """An export cannot be done with the given checkpoint, profile and options (the message says why)."""


class ExportValidationError(ExportError):
    """A converted file does not match what was asked (names, shapes, dtypes, checker failure)."""


class ParityError(ExportError):
    """An exported artifact's outputs differ from PyTorch beyond the tolerance (every failure is listed)."""

    def __init__(self, message: str, failures: list[dict] | None = None) -> None:
        super().__init__(message)
        self.failures = failures or []
