"""EdgeFuse: ship multimodal models to devices whose sensors differ from the ones they were trained with.

The top-level import is deliberately light: it imports neither torch nor any runtime backend. Heavy
modules are imported by the functions that need them.
"""

from __future__ import annotations

from importlib import metadata as _metadata
from typing import Any

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
    "MaskedFusion",
    "ModalitySpec",
    "MultimodalModel",
    "ProfileError",
    "__version__",
    "export",
    "get_profile",
    "list_profiles",
    "load",
    "load_checkpoint",
    "save_checkpoint",
]

#: Public names imported on first use (torch is heavy; ``import edgefuse`` must stay fast).
_LAZY = {
    "MaskedFusion": "edgefuse.models.fusion",
    "ModalitySpec": "edgefuse.specs",
    "MultimodalModel": "edgefuse.models.contract",
    "load_checkpoint": "edgefuse.checkpoint",
    "save_checkpoint": "edgefuse.checkpoint",
}


def __getattr__(name: str) -> Any:
    """The contract classes and checkpoint functions, imported on first use."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'edgefuse' has no attribute {name!r}")


def load(
    artifact: Any,
    profile: Any = None,
    backend: Any = None,
    threads: int | None = None,
    *,
    manifest_sha256: str | None = None,
) -> Any:
    """Load an exported artifact (or a checkpoint, on the torch reference backend) for prediction.

    Needs numpy and one backend package only (never torch for an artifact). Every file is checked
    before a backend sees it; ``manifest_sha256`` pins the manifest itself. See
    :func:`edgefuse.runtime.load` for the arguments, the returned :class:`~edgefuse.runtime.Session`
    and the errors.
    """
    from edgefuse.runtime import load as _load

    return _load(artifact, profile=profile, backend=backend, threads=threads, manifest_sha256=manifest_sha256)


def export(*args: Any, **kwargs: Any) -> Any:
    """Export a checkpoint for a device profile (needs the ``export`` extra); see :func:`edgefuse.export.pipeline.export`."""
    from edgefuse.export.pipeline import export as _export

    return _export(*args, **kwargs)


def list_profiles() -> Any:
    """The built-in device profiles; see :func:`edgefuse.profiles.list_profiles`."""
    from edgefuse.profiles import list_profiles as _list

    return _list()


def get_profile(profile_id: str) -> Any:
    """One device profile by id or TOML path; see :func:`edgefuse.profiles.get_profile`."""
    from edgefuse.profiles import get_profile as _get

    return _get(profile_id)
