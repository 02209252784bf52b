"""Exporters from PyTorch to ONNX, TFLite (LiteRT), Core ML and TensorRT, per device profile.

``edgefuse.export.export(checkpoint, profile, formats, out, ...)`` runs the staged pipeline
(:mod:`edgefuse.export.pipeline`); importing this package is light (torch is imported when exporting).
"""

from __future__ import annotations

from typing import Any

__all__ = ["export", "export_cached"]


def export(*args: Any, **kwargs: Any) -> Any:
    """Export a checkpoint for a device profile; see :func:`edgefuse.export.pipeline.export`."""
    from edgefuse.export.pipeline import export as run

    return run(*args, **kwargs)


def export_cached(*args: Any, **kwargs: Any) -> Any:
    """Export one format, or reuse an up-to-date artifact; see :func:`edgefuse.export.pipeline.export_cached`."""
    from edgefuse.export.pipeline import export_cached as run

    return run(*args, **kwargs)
