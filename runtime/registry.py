"""The lazy backend registry: which backends exist, which can run here (and why not), and which to use.

Backends are registered by ``"module:Class"`` strings and imported only when asked about; a backend
module never imports its package at import time, so a missing package makes that backend *unavailable,
with the reason* (which package, which ``edgefuse`` extra, which platform or GPU), and never breaks
``import edgefuse.runtime``.

Choosing follows the lesson ONNX Runtime learned: the caller (or the device profile) gives an ordered
list; :func:`choose` walks it and returns the first backend that runs the artifact's format and is
available here. Nothing outside the list is ever used; when nothing fits, the error lists every
candidate and why it was skipped.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Sequence

from edgefuse.errors import BackendUnavailableError, did_you_mean
from edgefuse.runtime.backends.base import Backend
from edgefuse.runtime.errors import InputError

__all__ = [
    "BACKENDS",
    "BACKEND_FORMATS",
    "availability",
    "available_backends",
    "backend_class",
    "choose",
    "choose_with_reasons",
]

_log = logging.getLogger(__name__)

#: backend name -> "module:Class" (imported on first use). The order is the default preference.
BACKENDS: dict[str, str] = {
    "onnxruntime": "edgefuse.runtime.backends.onnxruntime:OnnxRuntimeBackend",
    "litert": "edgefuse.runtime.backends.litert:LiteRTBackend",
    "coreml": "edgefuse.runtime.backends.coreml:CoreMLBackend",
    "tensorrt": "edgefuse.runtime.backends.tensorrt:TensorRTBackend",
    "torch": "edgefuse.runtime.backends.torch:TorchBackend",
}


#: The artifact format each backend runs (``torch`` runs checkpoints, which are not exported).
BACKEND_FORMATS: dict[str, str] = {
    "onnxruntime": "onnx",
    "litert": "tflite",
    "coreml": "coreml",
    "tensorrt": "tensorrt",
    "torch": "checkpoint",
}
_FORMATS: dict[str, str] = {fmt: name for name, fmt in BACKEND_FORMATS.items()}


def _unknown(name: str) -> str:
    return f"unknown backend {name!r}{did_you_mean(name, BACKENDS)}; known backends: {list(BACKENDS)}"


def backend_class(name: str) -> type[Backend]:
    """Import and return the :class:`Backend` subclass registered as ``name``.

    Importing a backend module never imports the backend's package.

    Raises:
        InputError: For a name that is not a registered backend (with the closest match).
    """
    if name not in BACKENDS:
        raise InputError(_unknown(name))
    module, cls = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def availability(name: str) -> tuple[bool, str | None]:
    """Whether backend ``name`` can run here, and if not, why.

    Args:
        name: A backend name (``onnxruntime``, ``litert``, ``coreml``, ``tensorrt``).

    Returns:
        ``(True, None)``, or ``(False, reason)`` where the reason names what is missing (the package and
        the ``pip install 'edgefuse[<extra>]'`` command, the platform, the GPU), or says that the name is
        not a runtime backend.
    """
    if name not in BACKENDS:
        return False, _unknown(name)
    reason = backend_class(name).unavailable_reason()
    return reason is None, reason


def available_backends() -> list[str]:
    """The names of the backends that can run here, in the default preference order."""
    return [name for name in BACKENDS if availability(name)[0]]


def choose_with_reasons(
    order: str | Sequence[str], artifact_format: str
) -> tuple[type[Backend], list[tuple[str, str]]]:
    """Like :func:`choose`, also returning the ``(name, reason)`` of every candidate skipped before it."""
    names = [order] if isinstance(order, str) else list(order)
    if not names:
        raise InputError("the backend list is empty; name at least one of " + str(list(BACKENDS)))
    skipped: list[tuple[str, str]] = []
    for name in names:
        if name not in BACKENDS:
            skipped.append((name, _unknown(name)))
            continue
        cls = backend_class(name)
        reason = cls.unavailable_reason()
        if artifact_format not in cls.formats:
            why = f"backend {name!r} runs {list(cls.formats)} artifacts, not {artifact_format!r}"
            if reason:
                why += f"; it is also unavailable here ({reason})"
            skipped.append((name, why))
            continue
        if reason:
            skipped.append((name, reason))
            continue
        for other, why in skipped:
            _log.info("backend %s skipped: %s", other, why)
        return cls, skipped
    lines = "\n".join(f"  - {name}: {why}" for name, why in skipped)
    runs = _FORMATS.get(artifact_format)
    hint = (
        f"artifacts of format {artifact_format!r} run on backend {runs!r}; "
        + ("add it to the list" if runs not in names else "make it available (see its reason)")
        if runs
        else f"{artifact_format!r} is not an artifact format ({list(_FORMATS)})"
    )
    raise BackendUnavailableError(
        f"no backend of {names} can run this {artifact_format!r} artifact here; no other backend is tried:\n"
        f"{lines}\n{hint}"
    )


def choose(order: str | Sequence[str], artifact_format: str) -> type[Backend]:
    """Return the first backend of ``order`` that runs ``artifact_format`` and is available here.

    Args:
        order: Backend names in order of preference (a device profile's ``backends``, or the caller's).
        artifact_format: The artifact's format (``onnx``, ``tflite``, ``coreml``, ``tensorrt``).

    Returns:
        The :class:`Backend` subclass (not loaded).

    Raises:
        InputError: When ``order`` is empty.
        BackendUnavailableError: When no listed backend fits; the message lists every candidate with
            the reason it was skipped (wrong format, package missing and the extra to install,
            platform, GPU, not a runtime backend). Backends outside ``order`` are never used.
    """
    return choose_with_reasons(order, artifact_format)[0]
