"""Benchmark a plain ``.onnx`` or ``.tflite`` file, like ``onnxruntime_perf_test`` / ``benchmark_model``."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgefuse.bench.artifact import budget_check
from edgefuse.bench.report import DEFINITIONS
from edgefuse.bench.timing import (
    check_counts,
    host_load,
    latency_figures,
    noise_warnings,
    peak_rss_subprocess,
    ru_maxrss_mb,
)
from edgefuse.emulation import mark as mark_emulated
from edgefuse.errors import ContractError

__all__ = ["MAX_MODEL_BYTES", "ModelRunner", "bench_model"]

_MODEL_SUFFIXES = (".onnx", ".tflite")

#: Largest plain model file ``edgefuse bench model.onnx`` reads.
MAX_MODEL_BYTES = 4 << 30


class ModelRunner:
    """Runs a plain ``.onnx`` (onnxruntime) or ``.tflite`` (LiteRT) file with generated inputs."""

    def __init__(self, path: Path, threads: int | None, data: bytes) -> None:
        """Load the model from ``data`` (the file's bytes, read once through :mod:`edgefuse.trust`)."""
        self.path = path
        self.suffix = path.suffix.lower()
        if self.suffix == ".onnx":
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.intra_op_num_threads = threads or 0
            opts.log_severity_level = 3
            self.backend = "onnxruntime"
            self._sess = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
            self._inputs = [(i.name, list(i.shape), i.type) for i in self._sess.get_inputs()]
        else:
            from ai_edge_litert.interpreter import Interpreter

            self.backend = "litert"
            self._interp = Interpreter(model_content=data, num_threads=threads)
            self._details = self._interp.get_input_details()
            self._inputs = [(d["name"], list(d["shape_signature"]), str(d["dtype"])) for d in self._details]
            self._batch: int | None = None
        self._feeds: dict[int, list[np.ndarray]] = {}

    def _make(self, batch: int) -> list[np.ndarray]:
        rng = np.random.default_rng(0)
        arrays = []
        for i, (_, shape, typ) in enumerate(self._inputs):
            dims = [d if isinstance(d, int) and d > 0 else 1 for d in shape]
            if dims and (not isinstance(shape[0], int) or shape[0] <= 0):
                dims[0] = batch
            dtype = self._dtype(i, typ)
            if np.issubdtype(dtype, np.floating):
                arrays.append(rng.standard_normal(dims).astype(dtype))
            else:
                arrays.append(np.zeros(dims, dtype=dtype))
        return arrays

    def _dtype(self, i: int, typ: str) -> np.dtype:
        if self.suffix != ".onnx":
            return np.dtype(self._details[i]["dtype"])
        table = {"float": np.float32, "float16": np.float16, "double": np.float64, "bool": np.bool_}
        inner = typ.removeprefix("tensor(").removesuffix(")")
        return np.dtype(table.get(inner, inner))

    def run(self, batch: int) -> None:
        """One inference at ``batch`` on seeded random inputs (resizing a LiteRT model's inputs once)."""
        feeds = self._feeds.get(batch)
        if feeds is None:
            feeds = self._feeds[batch] = self._make(batch)
        if self.suffix == ".onnx":
            self._sess.run(None, {n: a for (n, _, _), a in zip(self._inputs, feeds, strict=True)})
            return
        if self._batch != batch:
            for d, a in zip(self._details, feeds, strict=True):
                self._interp.resize_tensor_input(d["index"], list(a.shape))
            self._interp.allocate_tensors()
            self._batch = batch
        for d, a in zip(self._details, feeds, strict=True):
            self._interp.set_tensor(d["index"], a)
        self._interp.invoke()

    @property
    def batch_dynamic(self) -> bool:
        """Whether the leading dimension of every input is dynamic (batch 8 can run)."""
        return any(shape and (not isinstance(shape[0], int) or shape[0] <= 0) for _, shape, _ in self._inputs)


def bench_model(
    path: str | Path,
    *,
    profile: str | None = None,
    warmup: int = 10,
    iters: int = 100,
    threads: int | None = None,
    rss: bool = True,
) -> dict[str, Any]:
    """Benchmark a plain ``.onnx`` or ``.tflite`` file with random float32 inputs (ints as zeros).

    Dynamic dimensions are 1 (the leading one is the batch: 1, then 8 for the batch-8 throughput; a
    model with a fixed batch reports ``throughput_b8`` as ``None``).

    Args:
        path: The model file.
        profile: Device profile id for the estimate (``None``: no estimate).
        warmup: Warm-up calls.
        iters: Timed calls at batch 1.
        threads: Intra-op threads (``None``: the runtime's default, or the profile's threads).
        rss: Measure peak RSS in a fresh subprocess.

    Returns:
        ``{"kind": "model", "results": [one row], ...}`` like :func:`bench_artifact` (pattern ``-``).

    Raises:
        ContractError: A missing file, an unsupported suffix, or bad counts.
    """
    from edgefuse.errors import EdgeFuseError
    from edgefuse.runtime.errors import BackendError
    from edgefuse.trust import read_bounded

    check_counts(warmup, iters)
    p = Path(path)
    if not os.path.lexists(p):
        raise ContractError(f"{p} does not exist; give an artifact folder or a .onnx / .tflite file")
    if p.suffix.lower() not in _MODEL_SUFFIXES:
        raise ContractError(f"{p}: unsupported model file {p.suffix!r}; supported: {list(_MODEL_SUFFIXES)}")
    try:  # a regular file of bounded size: a FIFO or /dev/zero is refused before it is read
        data = read_bounded(p, max_bytes=MAX_MODEL_BYTES, what="model file")
    except EdgeFuseError as exc:
        raise ContractError(str(exc)) from None
    load = host_load()
    prof = None
    if profile is not None:
        from edgefuse.profiles import get_profile

        prof = get_profile(profile)
        if threads is None:
            threads = max(1, min(int(prof.threads), os.cpu_count() or 1))
    t0 = time.perf_counter()
    try:
        runner = ModelRunner(p, threads, data)
    except Exception as exc:  # the library's own parse error: say which file and that it is not loadable
        backend = "onnxruntime" if p.suffix.lower() == ".onnx" else "litert"
        raise BackendError(
            f"{p}: {backend} cannot load it ({type(exc).__name__}: {str(exc)[:300]}); is it a valid "
            f"{p.suffix} model?"
        ) from None
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    runner.run(1)
    first_s = time.perf_counter() - t0
    figures = latency_figures(
        lambda: runner.run(1), (lambda: runner.run(8)) if runner.batch_dynamic else None, warmup, iters
    )
    estimate = _model_estimate(p, runner, prof)
    row: dict[str, Any] = {
        "backend": runner.backend,
        "pattern": "-",
        "size_bytes": p.stat().st_size,
        "load_ms": load_s * 1e3,
        "first_ms": first_s * 1e3,
        **figures,
        "threads": threads,
        "estimate": estimate,
        "budget": None
        if prof is None
        else budget_check(prof, {**estimate, "max_op_bytes": 0}, p.stat().st_size),
    }
    if rss:
        row.update(peak_rss_subprocess("model", {"path": str(p), "threads": threads}))
    else:
        row.update({"peak_rss_mb": ru_maxrss_mb(), "rss_scope": "process peak"})
    return mark_emulated(
        {
            "kind": "model",
            "artifact": str(p),
            "profile": None if prof is None else str(prof.id),
            "format": p.suffix.lower().lstrip("."),
            "layout": "model file",
            "precision": None,
            "warmup": warmup,
            "iters": iters,
            "rss": rss,
            "results": [row],
            "host": load,
            "warnings": noise_warnings([row], load),
            "definitions": dict(DEFINITIONS),
        }
    )


def _onnx_is_fp16(path: Path) -> bool:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return any(i.data_type == onnx.TensorProto.FLOAT16 for i in model.graph.initializer)


def _model_estimate(path: Path, runner: ModelRunner, prof: Any) -> dict[str, Any]:
    """Roofline estimate of a plain model file (ONNX only: its operations are counted from the graph)."""
    if runner.suffix != ".onnx":
        return {
            "kind": "estimate",
            "ms": None,
            "note": "estimate unavailable for a plain .tflite file (operations are counted from ONNX graphs "
            "or recorded in an artifact's manifest at export)",
        }
    from edgefuse.roofline import count_onnx, estimate_ops

    try:
        cost = count_onnx(path, 1)
    except ImportError:
        return {"kind": "estimate", "ms": None, "note": "estimate unavailable: onnx is not installed"}
    if prof is None:
        return {
            "kind": "estimate",
            "ms": None,
            "flops": cost.flops,
            "bytes": cost.bytes,
            "note": "estimate unavailable (no --profile given: no peak compute or bandwidth)",
        }
    precision = "fp16" if _onnx_is_fp16(path) else "fp32"
    return estimate_ops(cost, prof, precision, runner.backend, calls=1)
