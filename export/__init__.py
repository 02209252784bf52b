"""Exporters from PyTorch to ONNX, TFLite (LiteRT), Core ML and TensorRT (imports torch lazily)."""

from __future__ import annotations

__all__: list[str] = []
