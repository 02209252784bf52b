"""The lazy backend registry: which backends exist, which can run here (and why not), and which to use.

Backends are registered by ``"module:Class"`` strings and imported only when asked about; a backend
module never imports its package at import time, so a missing package makes that backend *unavailable,
with the reason* (which package, which ``edgefuse`` extra, which platform or GPU), and never breaks
``import edgefuse.runtime``.

Choosing follows the lesson ONNX Runtime learned: the caller (or the device profile) gives an ordered
list; :func:`choose` walks it and returns the first backend that runs the artifact's format and is
available here. Nothing outside the list is ever used; when nothing fits, the error lists every
candidate and why it was skipped.

One exception, for a device profile's list only (never the caller's): when *no* backend the profile
lists runs the artifact's format (a TFLite artifact exported for ``generic/x86-64``, whose profile lists
``onnxruntime`` and ``torch``), :func:`choose_for_profile` falls back to the installed backend that runs
that format and says so with a :class:`BackendFallbackWarning`. An artifact whose manifest names a
profile that is not known here has no profile list to follow: every backend is allowed, and
:func:`unknown_profile_fallback` says so with an :class:`UnknownProfileWarning` (a kind of
:class:`BackendFallbackWarning`).
"""

from __future__ import annotations

import importlib
import logging
import warnings
from collections.abc import Sequence
from typing import NamedTuple

from edgefuse.errors import BackendUnavailableError, did_you_mean
from edgefuse.runtime.backends.base import Backend
from edgefuse.runtime.errors import InputError

__all__ = [
    "BACKENDS",
    "BACKEND_FORMATS",
    "BackendFallbackWarning",
    "ProfileChoice",
    "UnknownProfileWarning",
    "availability",
    "available_backends",
    "backend_class",
    "choose",
    "choose_for_profile",
    "choose_with_reasons",
    "unknown_profile_fallback",
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


class BackendFallbackWarning(UserWarning):
    """An artifact runs on an installed backend that its device profile does not list.

    Emitted by :func:`edgefuse.runtime.load` when no backend of the profile runs the artifact's format
    (e.g. a TFLite artifact loaded with the ``generic/x86-64`` profile, which lists ``onnxruntime`` and
    ``torch``). The message names the profile, its backends, the artifact's format and the backend used
    instead. Pass ``backend="<name>"`` to :func:`~edgefuse.runtime.load` to choose it explicitly (no
    warning), or filter this category with :mod:`warnings`.
    """


class UnknownProfileWarning(BackendFallbackWarning):
    """An artifact's manifest names a device profile that is not known here; every backend is allowed.

    Emitted by :func:`edgefuse.runtime.load` when neither ``profile=`` nor ``backend=`` is given and
    the manifest's profile is not a built-in profile id (an artifact exported with a custom ``.toml``
    profile, or by a newer EdgeFuse): without the profile's backend list, the registry's default order
    (every backend) is used. The message is also kept in the session's ``notes``. Pass ``profile=``
    (an id or the ``.toml`` path) or ``backend=`` to choose explicitly (no warning). A subclass of
    :class:`BackendFallbackWarning`, so filtering that category filters this one too.
    """


class ProfileChoice(NamedTuple):
    """The outcome of :func:`choose_for_profile`."""

    backend: type[Backend]
    """The chosen backend class (not loaded)."""
    skipped: list[tuple[str, str]]
    """``(name, reason)`` of each candidate skipped before it."""
    order: tuple[str, ...]
    """The candidates in the order they were tried (the profile's, then the fallback)."""
    fallback: str | None
    """The warning's message when the backend is not one the profile lists, else ``None``."""


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


def _runs(name: str, artifact_format: str) -> bool:
    return name in BACKENDS and artifact_format in backend_class(name).formats


def _skip_reason(name: str, artifact_format: str) -> str | None:
    """Why backend ``name`` cannot run an ``artifact_format`` artifact here (``None``: it can)."""
    if name not in BACKENDS:
        return _unknown(name)
    cls = backend_class(name)
    reason = cls.unavailable_reason()
    if artifact_format not in cls.formats:
        why = f"backend {name!r} runs {list(cls.formats)} artifacts, not {artifact_format!r}"
        return f"{why}; it is also unavailable here ({reason})" if reason else why
    return reason


def choose_with_reasons(
    order: str | Sequence[str], artifact_format: str
) -> tuple[type[Backend], list[tuple[str, str]]]:
    """Like :func:`choose`, also returning the ``(name, reason)`` of every candidate skipped before it."""
    names = [order] if isinstance(order, str) else list(order)
    if not names:
        raise InputError("the backend list is empty; name at least one of " + str(list(BACKENDS)))
    skipped: list[tuple[str, str]] = []
    for name in names:
        why = _skip_reason(name, artifact_format)
        if why is not None:
            skipped.append((name, why))
            continue
        for other, reason in skipped:
            _log.info("backend %s skipped: %s", other, reason)
        return backend_class(name), skipped
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


def unknown_profile_fallback(
    profile: object, artifact: object, reason: object, *, stacklevel: int = 1
) -> str:
    """Warn that ``artifact``'s manifest profile is not known here, so every backend is allowed.

    Args:
        profile: The profile named by the manifest.
        artifact: The artifact folder (named in the message).
        reason: Why the profile is not known (the :class:`~edgefuse.errors.ProfileError`).
        stacklevel: For :func:`warnings.warn`, counted from the caller (1: the caller's line).

    Returns:
        The message of the :class:`UnknownProfileWarning` that was emitted.
    """
    message = (
        f"the manifest of {artifact} names device profile {str(profile)!r:.80}, which is not known here "
        f"({reason}); without its backend list, every backend is allowed, in the default order "
        f"{list(BACKENDS)}. Pass profile= (a profile id or .toml path; `--profile` on the command line) "
        "or backend= to choose explicitly and silence this warning"
    )
    warnings.warn(message, UnknownProfileWarning, stacklevel=stacklevel + 1)
    return message


def choose_for_profile(
    profile: str, order: Sequence[str], artifact_format: str, *, stacklevel: int = 1
) -> ProfileChoice:
    """Choose from a device profile's backend list, falling back when none of them runs the format.

    When a backend of ``order`` runs ``artifact_format``, this is :func:`choose_with_reasons` (the
    first available one; if none is available, the usual error listing each). When *none* of them runs
    that format, the installed backends that do are tried instead: the first available one is used
    and a :class:`BackendFallbackWarning` is emitted (its message is also the result's ``fallback``).

    Args:
        profile: The device profile's id (named in the messages).
        order: The profile's ``backends``.
        artifact_format: The artifact's format.
        stacklevel: For :func:`warnings.warn`, counted from the caller (1: the caller's line).

    Returns:
        A :class:`ProfileChoice`.

    Raises:
        InputError: When ``order`` is empty.
        BackendUnavailableError: When nothing fits. Without a fallback: as :func:`choose`. When the
            profile lists no backend for the format and the one that runs it is not available here: the
            message names the profile, the ``backend=`` to pass, and what to install.
    """
    names = list(order)
    fallbacks = [name for name in BACKENDS if name not in names and _runs(name, artifact_format)]
    if any(_runs(name, artifact_format) for name in names) or not names or not fallbacks:
        cls, skipped = choose_with_reasons(names, artifact_format)
        return ProfileChoice(cls, skipped, tuple(names), None)
    skipped = [(name, _skip_reason(name, artifact_format) or "") for name in names]
    for name in fallbacks:
        reason = backend_class(name).unavailable_reason()
        if reason is None:
            message = (
                f"device profile {profile!r} lists backends {names}, none of which runs {artifact_format!r} "
                f"artifacts; this {artifact_format!r} artifact runs on the installed backend {name!r} instead. "
                f"Pass backend={name!r} (`--backend {name}` on the command line) to choose it explicitly and "
                "silence this warning"
            )
            warnings.warn(message, BackendFallbackWarning, stacklevel=stacklevel + 1)
            return ProfileChoice(backend_class(name), skipped, (*names, name), message)
        skipped.append((name, reason))
    lines = "\n".join(f"  - {name}: {why}" for name, why in skipped)
    first = fallbacks[0]
    raise BackendUnavailableError(
        f"device profile {profile!r} lists backends {names}, none of which runs {artifact_format!r} "
        f"artifacts, and the backend that runs them, {first!r}, is not available here:\n{lines}\n"
        f"Make {first!r} available (see its reason: the package and extra to install), then load with "
        f"backend={first!r} (`--backend {first}` on the command line), or export the artifact in a format "
        "the profile's backends run"
    )
