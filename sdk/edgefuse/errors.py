"""The one error hierarchy of EdgeFuse.

Every error EdgeFuse raises on purpose is an :class:`EdgeFuseError`. Subclasses also inherit the
built-in exception a caller would naturally catch (``ValueError`` for bad input, ``ImportError`` for a
missing optional package), so ``except ValueError`` keeps working for code that does not know EdgeFuse.

Messages follow one rule: say what failed, what was given, what is allowed, and how to fix it.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "BackendUnavailableError",
    "CheckpointError",
    "ContractError",
    "DataError",
    "EdgeFuseError",
    "FusionInputError",
    "FusionResourceError",
    "FusionTypeError",
    "ProfileError",
    "closest_match",
    "did_you_mean",
]


class EdgeFuseError(Exception):
    """Base class of every error EdgeFuse raises on purpose."""


class FusionInputError(EdgeFuseError, ValueError):
    """An argument of the fusion kernel (or its references) has the wrong type, dtype, shape or value."""


class FusionTypeError(FusionInputError, TypeError):
    """An argument of the fusion kernel has the wrong Python type (e.g. a torch.Tensor, not an ndarray)."""


class ProfileError(EdgeFuseError, ValueError):
    """A device profile is missing, malformed or names values that are not allowed."""


class DataError(EdgeFuseError, ValueError):
    """A dataset is missing, malformed or has a file that cannot be used (the message names the file)."""


class CheckpointError(EdgeFuseError, ValueError):
    """A checkpoint is missing, corrupt, or does not match the model contract (the message says what)."""


class ContractError(EdgeFuseError, ValueError):
    """A model or its inputs break the multimodal model contract (unknown modality, wrong shape...)."""


class BackendUnavailableError(EdgeFuseError, ImportError):
    """A runtime or export backend cannot run here; the message says what is missing and how to get it."""


def closest_match(value: str, allowed: Iterable[str]) -> str | None:
    """Return the allowed value closest to ``value``, or ``None`` when nothing is reasonably close.

    Args:
        value: The value the user gave.
        allowed: The values that would have been accepted.

    Returns:
        The best match by ``difflib`` similarity (cutoff 0.6), or ``None``.
    """
    matches = difflib.get_close_matches(value, list(allowed), n=1, cutoff=0.6)
    return matches[0] if matches else None


def did_you_mean(value: str, allowed: Iterable[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest allowed value, or ``""`` when none is close."""
    hint = closest_match(value, allowed)
    return f" (did you mean {hint!r}?)" if hint else ""


class FusionResourceError(EdgeFuseError, RuntimeError):
    """The fusion kernel could not get what it needs from the process (e.g. start its worker threads).

    The input was valid; retrying with fewer threads (``threads=1`` starts none) or higher limits works.
    """
