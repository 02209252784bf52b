"""EdgeFuse: ship multimodal models to devices whose sensors differ from the ones they were trained with.

The top-level import is deliberately light: it imports neither torch nor any runtime backend. Heavy
modules are imported by the functions that need them.
"""

from __future__ import annotations

from importlib import metadata as _metadata

from edgefuse.errors import (
    BackendUnavailableError,
    CheckpointError,
    ContractError,
    DataError,
    EdgeFuseError,
    FusionInputError,
    ProfileError,
)

try:
    __version__ = _metadata.version("edgefuse")
except _metadata.PackageNotFoundError:  # pragma: no cover - only when run from a bare source tree
    __version__ = "0+unknown"

__all__ = [
    "BackendUnavailableError",
    "CheckpointError",
    "ContractError",
    "DataError",
    "EdgeFuseError",
    "FusionInputError",
    "ProfileError",
    "__version__",
]
