"""Runtime backends, one module per backend; :mod:`edgefuse.runtime.registry` imports them lazily.

Importing this package imports only :mod:`edgefuse.runtime.backends.base` (numpy); no backend package.
"""

from __future__ import annotations

from edgefuse.runtime.backends.base import Backend, IOSpec, TensorSpec

__all__ = ["Backend", "IOSpec", "TensorSpec"]
