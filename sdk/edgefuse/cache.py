"""Where EdgeFuse keeps caches (extracted features, exports made for benchmarking).

Order: an explicit folder, else ``$EDGEFUSE_CACHE_DIR``, else ``~/.cache/edgefuse``. Everything in it
can be deleted at any time; it is rebuilt on demand.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["CACHE_ENV", "cache_root"]

CACHE_ENV = "EDGEFUSE_CACHE_DIR"


def cache_root(cache_dir: str | Path | None = None, sub: str = "") -> Path:
    """The cache folder (not created), optionally a named subfolder of it.

    Args:
        cache_dir: An explicit cache root; ``None`` uses ``$EDGEFUSE_CACHE_DIR`` or ``~/.cache/edgefuse``.
        sub: A subfolder (``features``, ``exports``...).
    """
    if cache_dir is not None:
        base = Path(cache_dir)
    elif os.environ.get(CACHE_ENV):
        base = Path(os.environ[CACHE_ENV])
    else:
        base = Path.home() / ".cache" / "edgefuse"
    base = base.expanduser().resolve()
    return base / sub if sub else base
