"""Core ML: runs ``.mlpackage`` / ``.mlmodel`` graphs with ``coremltools.models.MLModel.predict``.

Core ML prediction exists only on macOS (coremltools converts and inspects models on Linux, but cannot
run them), so elsewhere this backend is *unavailable* with that reason. A ranged batch
(``{"dynamic": True, "min": .., "max": ..}``) is split into chunks of at most ``max`` rows; fixed batch
sizes (``{"fixed": [...]}``) are split and zero-padded like LiteRT. Tensor names are mapped through the
graph ``details`` (``input_names``/``output_names``: dict graph name -> model name) when given, else the
graph's own names are used (as the Core ML exporter writes them). Core ML has no bool inputs: inputs the
graph ``details`` list in ``bool_inputs_as_float32`` (the monolithic ``presence`` mask) are fed as float32
1.0/0.0. Outputs are returned as float32 when the model returns float16. Compute units: ``ALL`` (Core ML
picks CPU, GPU or Neural Engine; the exporter's parity check ran on ``CPU_ONLY``).

Not verified in this repository's CI (Linux): the code follows coremltools 8/9's documented
``MLModel(path, compute_units=...)`` and ``predict(dict) -> dict`` API.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from edgefuse.runtime.backends.base import Backend, plan_chunks, run_chunked

__all__ = ["CoreMLBackend"]


class CoreMLBackend(Backend):
    """Core ML backend (``pip install 'edgefuse[coreml]'``, macOS only); compute units: ALL."""

    name: ClassVar[str] = "coreml"
    formats: ClassVar[tuple[str, ...]] = ("coreml",)
    package: ClassVar[str] = "coremltools"
    module: ClassVar[str] = "coremltools"
    extra: ClassVar[str] = "coreml"
    thread_safe: ClassVar[bool] = False

    def __init__(self) -> None:
        super().__init__()
        self._model: Any = None
        self._in_map: dict[str, str] = {}
        self._out_map: dict[str, str] = {}
        self._fixed: tuple[int, ...] | None = None
        self._max: int | None = None
        self._min = 1
        self._as_float: frozenset[str] = frozenset()

    @classmethod
    def _requirements(cls) -> list[str]:
        if sys.platform != "darwin":
            return [
                f"Core ML prediction needs macOS; this is {sys.platform} (coremltools converts and inspects "
                "models here but cannot run them): run the artifact on a Mac, or export ONNX/TFLite for this host"
            ]
        return []

    def _load(self, path: Path, threads: int | None, batch: dict[str, Any], details: dict[str, Any]) -> None:
        import coremltools as ct

        self._model = ct.models.MLModel(str(path), compute_units=ct.ComputeUnit.ALL)
        given_in = details.get("input_names") or {}
        given_out = details.get("output_names") or {}
        self._in_map = {s.name: str(given_in.get(s.name, s.name)) for s in self._inputs}
        self._out_map = {s.name: str(given_out.get(s.name, s.name)) for s in self._outputs}
        # Core ML has no bool inputs: the exporter declares such inputs (the monolithic presence mask)
        # as float32 where 1.0 means present.
        self._as_float = frozenset(details.get("bool_inputs_as_float32") or ())
        if batch.get("fixed"):
            self._fixed = tuple(sorted(int(s) for s in batch["fixed"]))
        else:
            self._max = int(batch["max"]) if batch.get("max") else None
            self._min = int(batch.get("min") or 1)

    def _call(self, part: dict[str, np.ndarray], size: int) -> dict[str, np.ndarray]:
        feeds = {
            self._in_map[n]: (v.astype(np.float32) if n in self._as_float else v) for n, v in part.items()
        }
        result = self._model.predict(feeds)
        out = {}
        for name, key in self._out_map.items():
            value = np.asarray(result[key])
            out[name] = value.astype(np.float32) if value.dtype == np.float16 else value
        return out

    def _run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        batch = next(iter(feeds.values())).shape[0]
        chunks = plan_chunks(batch, fixed=self._fixed, max_batch=self._max, min_batch=self._min)
        return run_chunked(feeds, chunks, self._call)

    def _close(self) -> None:
        self._model = None
