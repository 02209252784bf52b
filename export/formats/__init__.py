"""One module per export format; :data:`FORMATS` maps a format name to its exporter class (lazily)."""

from __future__ import annotations

import importlib

from edgefuse.errors import EdgeFuseError, did_you_mean

__all__ = ["FORMATS", "get_exporter"]

#: format name -> "module:Class" (imported only when used, so a missing converter never breaks import)
FORMATS: dict[str, str] = {
    "onnx": "edgefuse.export.formats.onnx:OnnxExporter",
    "tflite": "edgefuse.export.formats.tflite:TFLiteExporter",
    "coreml": "edgefuse.export.formats.coreml:CoreMLExporter",
    "tensorrt": "edgefuse.export.formats.tensorrt:TensorRTExporter",
}


class UnknownFormatError(EdgeFuseError, ValueError):
    """An export format name that does not exist."""


def get_exporter(name: str):  # noqa: ANN201 - returns a FormatExporter
    """Instantiate the exporter of format ``name``.

    Raises:
        UnknownFormatError: With the allowed formats and the closest match.
    """
    if name not in FORMATS:
        raise UnknownFormatError(
            f"unknown format {name!r}; allowed: {list(FORMATS)}{did_you_mean(name, FORMATS)}"
        )
    module, cls = FORMATS[name].split(":")
    return getattr(importlib.import_module(module), cls)()
