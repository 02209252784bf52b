"""Errors of the runtime (all :class:`~edgefuse.errors.EdgeFuseError`).

:class:`~edgefuse.errors.BackendUnavailableError` (no backend of the ordered list can run an artifact here)
and the manifest errors (:class:`~edgefuse.manifest.ManifestError`,
:class:`~edgefuse.manifest.ArtifactIntegrityError`) live with the modules that define them; this module
adds what only the runtime raises.
"""

from __future__ import annotations

from edgefuse.errors import EdgeFuseError

__all__ = [
    "BackendError",
    "BackendStateError",
    "BadOutputError",
    "BrokenArtifactError",
    "InputError",
    "NonFiniteOutputError",
    "VerificationError",
]


class InputError(EdgeFuseError, ValueError):
    """An input given to the runtime is wrong.

    Unknown or unavailable modality, wrong type, dtype or shape, NaN/Inf in a present row, an empty batch,
    a row with every modality absent, a bad presence mask, or an argument outside its allowed values. The
    message says what was given, what is allowed and how to fix it.
    """


class BackendError(EdgeFuseError, RuntimeError):
    """A backend cannot load or run a graph of an artifact.

    The file does not match its manifest entry, or the backend library failed; the message names the file
    and what the backend said.
    """


class BrokenArtifactError(BackendError):
    """A graph file matches its recorded size and sha256 but its backend cannot load it: written broken."""


class BadOutputError(EdgeFuseError, ArithmeticError):
    """A graph produced output that breaks its contract (e.g. a reliability outside ``[0, 1]``): a broken graph."""


class NonFiniteOutputError(BadOutputError):
    """A model produced NaN/Inf logits (or reliabilities) from finite inputs (overflowing weights, a broken graph)."""


class BackendStateError(BackendError):
    """A backend was used out of order: run before load, load twice, or used after close."""


class VerificationError(EdgeFuseError, RuntimeError):
    """The bundled reference cases of an artifact do not reproduce here (``verify(raise_on_failure=True)``)."""
