"""The on-device runtime: backends, registry and the split-execution session.

Imports only numpy, the fusion kernel, the error hierarchy, the manifest schema and the profiles loader;
never torch, never ``edgefuse.export``. Names are imported lazily (PEP 562), so ``import edgefuse.runtime``
is cheap and imports no backend package::

    from edgefuse.runtime import load

    session = load("out/export/x86")                 # backend from the manifest's device profile
    prediction = session.predict({"audio": x})       # x: float32 (B, 1, 32, 61); image absent
    session.verify().passed                          # bundled reference cases, torch-free

Public API: :func:`load`, :class:`Session`, :class:`Prediction`, :class:`VerifyReport`,
:class:`InputError`, :class:`BackendFallbackWarning`, :func:`available_backends`, :func:`availability`,
:func:`choose`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edgefuse.runtime.backends.base import Backend
    from edgefuse.runtime.errors import BackendError, BackendStateError, InputError, VerificationError
    from edgefuse.runtime.registry import (
        BackendFallbackWarning,
        availability,
        available_backends,
        choose,
    )
    from edgefuse.runtime.results import Prediction, ReferenceCheck, VerifyReport
    from edgefuse.runtime.session import Session, load

__all__ = [
    "Backend",
    "BackendError",
    "BackendFallbackWarning",
    "BackendStateError",
    "InputError",
    "Prediction",
    "ReferenceCheck",
    "Session",
    "VerificationError",
    "VerifyReport",
    "availability",
    "available_backends",
    "choose",
    "load",
]

_LAZY = {
    "Backend": "edgefuse.runtime.backends.base",
    "BackendError": "edgefuse.runtime.errors",
    "BackendFallbackWarning": "edgefuse.runtime.registry",
    "BackendStateError": "edgefuse.runtime.errors",
    "InputError": "edgefuse.runtime.errors",
    "VerificationError": "edgefuse.runtime.errors",
    "availability": "edgefuse.runtime.registry",
    "available_backends": "edgefuse.runtime.registry",
    "choose": "edgefuse.runtime.registry",
    "Prediction": "edgefuse.runtime.results",
    "ReferenceCheck": "edgefuse.runtime.results",
    "Session": "edgefuse.runtime.session",
    "VerifyReport": "edgefuse.runtime.results",
    "load": "edgefuse.runtime.session",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'edgefuse.runtime' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
