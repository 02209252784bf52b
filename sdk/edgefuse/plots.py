"""Matplotlib helpers shared by the reports (headless: the Agg backend, never a window)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["pyplot", "save_figure"]


def pyplot() -> Any:
    """Return ``matplotlib.pyplot`` on the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str | Path, dpi: int = 120) -> Path:
    """Save ``fig`` as ``path`` (parents created), close it, and return the path.

    The image replaces whatever is at ``path`` (a new file renamed into place), never writes through a
    hard link or symlink there.
    """
    import io

    from edgefuse.outputs import write_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    fig.savefig(buf, dpi=dpi, bbox_inches="tight", format=path.suffix.lstrip(".") or "png")
    pyplot().close(fig)
    return write_file(path, buf.getvalue())
