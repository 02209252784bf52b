"""The interface every format exporter implements (one module per format).

An exporter converts one :class:`~edgefuse.export.graphs.GraphSpec` at a time into a file, describes
what it wrote (inputs, outputs, batch handling), and — where its runtime is installed here — returns a
runner that executes the file on NumPy inputs so the pipeline can check parity against PyTorch.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from edgefuse.export.graphs import GraphSpec

if TYPE_CHECKING:
    from edgefuse.export.quantize import QuantOptions

__all__ = ["BatchPlan", "Converted", "FormatExporter", "Runner"]

#: Runs a converted graph: {input name: array} -> {output name: array}.
Runner = Callable[[Mapping[str, np.ndarray]], dict[str, np.ndarray]]


@dataclass(frozen=True)
class BatchPlan:
    """How the batch dimension is handled.

    Attributes:
        min_batch: Smallest batch a dynamic-batch graph must accept.
        max_batch: Largest batch a dynamic-batch graph must accept (ranged formats: Core ML, TensorRT).
        fixed: Batch sizes for formats that need static shapes (one signature per size).
    """

    min_batch: int = 1
    max_batch: int = 64
    fixed: tuple[int, ...] = (1, 8)


@dataclass
class Converted:
    """What a conversion wrote.

    Attributes:
        files: Paths (relative to the artifact folder) of every file written for this graph.
        batch: ``{"dynamic": True, "min": .., "max": ..}`` or ``{"fixed": [sizes]}``.
        details: Format-specific facts for the manifest (opset, exporter used, op list...).
    """

    files: list[str]
    batch: dict[str, Any]
    details: dict[str, Any] = field(default_factory=dict)


class FormatExporter(ABC):
    """Base class: public methods check state; subclasses implement the ``_`` methods."""

    name: str = ""
    #: runtime backend that executes this format here ("onnxruntime", "litert", "coreml", "tensorrt")
    backend: str = ""
    #: extra to install for the converter
    extra: str = "export"
    #: calibration methods (:data:`edgefuse.export.quantize.METHODS`) this format's int8 quantizer implements
    int8_methods: tuple[str, ...] = ("minmax", "percentile", "entropy")

    def unavailable_reason(self) -> str | None:
        """Why this format cannot be converted here (a missing package), or ``None``."""
        return self._unavailable_reason()

    def runner_unavailable_reason(self) -> str | None:
        """Why converted files cannot be executed here (parity then runs from the saved spec), or ``None``."""
        return self._runner_unavailable_reason()

    def convert(self, graph: GraphSpec, folder: Path, precision: str, batch: BatchPlan) -> Converted:
        """Convert ``graph`` into files under ``folder``.

        Raises:
            BackendUnavailableError: When the converter is not installed.
        """
        from edgefuse.errors import BackendUnavailableError

        reason = self.unavailable_reason()
        if reason:
            raise BackendUnavailableError(reason)
        return self._convert(graph, folder, precision, batch)

    def load_runner(self, folder: Path, converted: Converted, graph: GraphSpec) -> Runner:
        """Return a runner for a converted graph.

        Raises:
            BackendUnavailableError: When the runtime is not installed here.
        """
        from edgefuse.errors import BackendUnavailableError

        reason = self.runner_unavailable_reason()
        if reason:
            raise BackendUnavailableError(reason)
        return self._load_runner(folder, converted, graph)

    def inspect(self, folder: Path, converted: Converted, graph: GraphSpec) -> dict[str, Any]:
        """Validate the saved file without running it: names, shapes, dtypes (and ops where known).

        Raises:
            ExportValidationError: When the saved file does not match the graph spec.
        """
        return self._inspect(folder, converted, graph)

    def int8_unavailable_reason(self) -> str | None:
        """Why this format cannot be quantized to int8 here (not implemented, a missing package), or ``None``."""
        return self._int8_unavailable_reason()

    def quantize(
        self,
        folder: Path,
        converted: Converted,
        graph: GraphSpec,
        calibration: Sequence[Mapping[str, np.ndarray]],
        options: QuantOptions,
    ) -> Converted:
        """Replace the fp32 file(s) of ``converted`` in ``folder`` by int8 ones calibrated on ``calibration``.

        ``converted`` must come from ``convert(graph, folder, "fp32", batch)``. The int8 file keeps the
        graph's input/output names, shapes and float dtypes (float in, float out), and the same relative
        file names, so :meth:`inspect`, the runtime's runners and the manifest need nothing new.

        Args:
            folder: The artifact folder holding ``converted.files``.
            converted: The fp32 conversion of ``graph``.
            graph: The graph spec.
            calibration: Feed dicts keyed by the graph's input names, one per batch (float32 arrays;
                the monolithic ``presence`` mask may be bool), e.g.
                :attr:`edgefuse.export.calibration.CalibrationData.feeds` of this graph.
            options: Calibration method, weight granularity, sample count and seed.

        Returns:
            The new :class:`Converted` (``details["precision"] == "int8"``; ``details["quantization"]``
            holds the quantizer's details).

        Raises:
            QuantizationError: When int8 is unavailable for this format here (the message names the reason
                and the fix), the method is not one of :attr:`int8_methods`, the file is not fp32, no
                calibration batch was given, or the quantizer fails.
        """
        from edgefuse.export.errors import QuantizationError

        reason = self.int8_unavailable_reason()
        if reason:
            raise QuantizationError(
                f"int8 for {graph.name} as {self.name} is unavailable here: {reason}. Use another format "
                "(--format onnx or tflite quantize to int8 here) or another precision (--precision fp32/fp16)"
            )
        if options.method not in self.int8_methods:
            raise QuantizationError(
                f"{self.name} int8 calibrates with {list(self.int8_methods)} only; got --calibration-method "
                f"{options.method!r}. Use --calibration-method {self.int8_methods[0]} for {self.name}, or "
                "--format onnx for percentile/entropy calibration"
            )
        precision = converted.details.get("precision", "fp32")
        if precision != "fp32":
            raise QuantizationError(
                f"int8 quantization of {graph.name} needs the fp32 conversion; got a {precision} one. "
                "Convert with precision fp32 first"
            )
        if not calibration:
            raise QuantizationError(
                f"no calibration batches for {graph.name}; int8 needs calibration data (--calibration)"
            )
        return self._quantize(folder, converted, graph, calibration, options)

    def _int8_unavailable_reason(self) -> str | None:
        return f"int8 is not implemented for {self.name} by EdgeFuse"

    def _quantize(
        self,
        folder: Path,
        converted: Converted,
        graph: GraphSpec,
        calibration: Sequence[Mapping[str, np.ndarray]],
        options: QuantOptions,
    ) -> Converted:
        from edgefuse.export.errors import QuantizationError

        raise QuantizationError(f"int8 is not implemented for {self.name} by EdgeFuse; export fp32 or fp16")

    def _runtime_runner(
        self, folder: Path, converted: Converted, graph: GraphSpec, threads: int = 1
    ) -> Runner:
        """A runner backed by the runtime backend of this format, i.e. the exact code a device runs.

        Parity through it validates the artifact *and* the runtime path (name mapping, fixed-batch
        splitting and padding) at once.
        """
        from edgefuse.runtime.registry import backend_class

        backend = backend_class(self.backend)().load(
            folder / converted.files[0],
            [spec.to_dict() for spec in graph.inputs],
            [spec.to_dict() for spec in graph.outputs],
            threads,
            batch=converted.batch,
            details=converted.details,
        )
        return backend.run

    @abstractmethod
    def _unavailable_reason(self) -> str | None: ...

    @abstractmethod
    def _runner_unavailable_reason(self) -> str | None: ...

    @abstractmethod
    def _convert(self, graph: GraphSpec, folder: Path, precision: str, batch: BatchPlan) -> Converted: ...

    @abstractmethod
    def _load_runner(self, folder: Path, converted: Converted, graph: GraphSpec) -> Runner: ...

    @abstractmethod
    def _inspect(self, folder: Path, converted: Converted, graph: GraphSpec) -> dict[str, Any]: ...


def missing_package(package: str, extra: str, what: str) -> str | None:
    """``None`` when ``package`` imports, else a reason naming the extra to install."""
    import importlib.util

    if importlib.util.find_spec(package) is None:
        return (
            f"{what} needs the Python package {package!r}; install it with `pip install 'edgefuse[{extra}]'`"
        )
    return None
