"""The interface every format exporter implements (one module per format).

An exporter converts one :class:`~edgefuse.export.graphs.GraphSpec` at a time into a file, describes
what it wrote (inputs, outputs, batch handling), and — where its runtime is installed here — returns a
runner that executes the file on NumPy inputs so the pipeline can check parity against PyTorch.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from edgefuse.export.graphs import GraphSpec

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
