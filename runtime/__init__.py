"""The on-device runtime: backends, registry and the split-execution session.

Imports only numpy, the fusion kernel and the manifest schema; never torch, never ``edgefuse.export``.
"""

from __future__ import annotations

__all__: list[str] = []
