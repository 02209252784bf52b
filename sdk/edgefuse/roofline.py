"""Roofline estimates: FLOPs and bytes counted in ONNX graphs, turned into a latency for a device profile.

An **estimate**, not a measurement: ``max(FLOPs / peak compute, bytes / memory bandwidth)`` with the
profile's figures. Used by :mod:`edgefuse.bench` (which re-exports these names) and the demo. ``onnx`` is
imported inside :func:`count_onnx`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgefuse.errors import ContractError

__all__ = ["GraphCost", "count_onnx", "roofline_estimate"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GraphCost:
    """FLOPs and bytes of one ONNX graph at a given batch size (an estimate).

    Attributes:
        flops: Floating-point operations: Conv ``2*N*Cout*Cin/groups*kh*kw*Hout*Wout``, Gemm/MatMul
            ``2*M*N*K`` (times the broadcast batch), any other op one per output element.
        bytes: Initializer (weight) bytes + bytes of every graph input read + every node output written.
        unknown_ops: Op types whose output shapes could not be inferred (counted as 0).
    """

    flops: int
    bytes: int
    unknown_ops: tuple[str, ...] = ()

    def __add__(self, other: GraphCost) -> GraphCost:
        return GraphCost(
            self.flops + other.flops,
            self.bytes + other.bytes,
            tuple(sorted(set(self.unknown_ops) | set(other.unknown_ops))),
        )


def _fix_dims(model: Any, batch: int) -> None:
    """Set every dynamic (symbolic or non-positive) dimension of the graph inputs to ``batch``."""
    for value in model.graph.input:
        for dim in value.type.tensor_type.shape.dim:
            if dim.HasField("dim_param") or dim.dim_value <= 0:
                dim.Clear()
                dim.dim_value = batch
    for value in model.graph.output:  # stale symbolic shapes: re-inferred from the fixed inputs
        value.type.tensor_type.ClearField("shape")
    del model.graph.value_info[:]


def count_onnx(path: str | Path | Any, batch: int = 1) -> GraphCost:
    """Count the FLOPs and bytes of an ONNX model at ``batch`` (dynamic dimensions set to ``batch``).

    Args:
        path: A ``.onnx`` file or a loaded ``onnx.ModelProto``.
        batch: The value of every dynamic dimension of the inputs.

    Returns:
        A :class:`GraphCost`.

    Raises:
        ContractError: When the file cannot be read as ONNX.
    """
    import onnx
    from onnx import numpy_helper, shape_inference

    if isinstance(path, str | os.PathLike):
        try:
            model = onnx.load(str(path))
        except Exception as exc:
            raise ContractError(f"{path}: cannot read it as ONNX ({type(exc).__name__}: {exc})") from exc
    else:
        model = onnx.ModelProto()
        model.CopyFrom(path)
    _fix_dims(model, batch)
    try:
        model = shape_inference.infer_shapes(model, data_prop=True)
    except Exception as exc:  # partial shapes still give a partial count
        _log.info("ONNX shape inference failed (%s); counting with the shapes known", exc)
    graph = model.graph
    itemsize: dict[str, int] = {}
    shapes: dict[str, tuple[int, ...] | None] = {}
    for value in [*graph.input, *graph.output, *graph.value_info]:
        tt = value.type.tensor_type
        dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in tt.shape.dim)
        shapes[value.name] = None if (not tt.HasField("shape") or any(d < 0 for d in dims)) else dims
        try:
            itemsize[value.name] = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type)).itemsize
        except Exception:
            itemsize[value.name] = 4
    weight_bytes = 0
    inits: set[str] = set()
    for init in graph.initializer:
        arr = numpy_helper.to_array(init)
        shapes[init.name] = tuple(int(d) for d in arr.shape)
        itemsize[init.name] = arr.dtype.itemsize
        weight_bytes += int(arr.nbytes)
        inits.add(init.name)
    for node in graph.node:  # Constant nodes hold weights too
        if node.op_type == "Constant" and node.output:
            for attr in node.attribute:
                if attr.name == "value":
                    arr = numpy_helper.to_array(attr.t)
                    shapes[node.output[0]] = tuple(int(d) for d in arr.shape)
                    itemsize[node.output[0]] = arr.dtype.itemsize
                    weight_bytes += int(arr.nbytes)
                    inits.add(node.output[0])

    def numel(name: str) -> int | None:
        shape = shapes.get(name)
        return None if shape is None else int(np.prod(shape, dtype=np.int64))

    flops = 0
    act_bytes = 0
    unknown: set[str] = set()
    graph_inputs = {v.name for v in graph.input} - inits
    for name in graph_inputs:
        n = numel(name)
        act_bytes += 0 if n is None else n * itemsize.get(name, 4)
    for node in graph.node:
        if node.op_type == "Constant":
            continue
        out = node.output[0] if node.output else ""
        out_shape = shapes.get(out)
        if out_shape is None:
            unknown.add(node.op_type)
            continue
        for o in node.output:
            n = numel(o)
            act_bytes += 0 if n is None else n * itemsize.get(o, 4)
        flops += _node_flops(node, out_shape, shapes)
    return GraphCost(int(flops), int(weight_bytes + act_bytes), tuple(sorted(unknown)))


def _node_flops(node: Any, out_shape: tuple[int, ...], shapes: Mapping[str, tuple[int, ...] | None]) -> int:
    """FLOPs of one node given its (first) output shape (one per output element for other ops)."""
    out_numel = int(np.prod(out_shape, dtype=np.int64))
    op = node.op_type
    flops = out_numel
    if op in ("Conv", "ConvTranspose"):
        w = shapes.get(node.input[1])
        if w is not None and len(w) >= 3:
            group = next((a.i for a in node.attribute if a.name == "group"), 1) or 1
            # Conv W: (Cout, Cin/groups, k...); ConvTranspose W: (Cin, Cout/groups, k...)
            cin_per_group = w[1] if op == "Conv" else w[0] // group
            flops = 2 * out_numel * cin_per_group * int(np.prod(w[2:], dtype=np.int64))
    elif op == "Gemm":
        a = shapes.get(node.input[0])
        if a is not None and len(a) == 2:
            trans_a = next((x.i for x in node.attribute if x.name == "transA"), 0)
            flops = 2 * out_numel * (a[0] if trans_a else a[1])
    elif op == "MatMul":
        a = shapes.get(node.input[0])
        if a is not None and a:
            flops = 2 * out_numel * a[-1]
    return int(flops)


def roofline_estimate(
    flops: float, nbytes: float, peak_gflops: float | None, bandwidth_gbs: float | None
) -> dict[str, Any]:
    """Roofline time ``max(flops / peak, bytes / bandwidth)``; always labelled an estimate.

    Args:
        flops: Operations of one inference.
        nbytes: Bytes moved by one inference.
        peak_gflops: The target's peak GFLOP/s for the artifact's precision (``None``: unknown).
        bandwidth_gbs: The target's memory bandwidth in GB/s (``None``: unknown).

    Returns:
        ``{"kind": "estimate", "ms", "compute_ms", "memory_ms", "bound", "flops", "bytes", ...}``.
    """
    compute_s = flops / (peak_gflops * 1e9) if peak_gflops else None
    memory_s = nbytes / (bandwidth_gbs * 1e9) if bandwidth_gbs else None
    known = [t for t in (compute_s, memory_s) if t is not None]
    ms = max(known) * 1e3 if known else None
    bound = None
    if compute_s is not None and memory_s is not None:
        bound = "compute" if compute_s >= memory_s else "memory"
    return {
        "kind": "estimate",
        "ms": ms,
        "compute_ms": None if compute_s is None else compute_s * 1e3,
        "memory_ms": None if memory_s is None else memory_s * 1e3,
        "bound": bound,
        "flops": int(flops),
        "bytes": int(nbytes),
        "peak_gflops": peak_gflops,
        "bandwidth_gbs": bandwidth_gbs,
    }
