"""Roofline estimates: FLOPs and bytes per operation, turned into a latency for a device profile.

An **estimate**, not a measurement. For the graphs one inference runs on a backend of class ``cpu``,
``gpu`` or ``npu`` (:data:`BACKEND_CLASS`)::

    ms = calls x call_overhead + sum over operations of max(FLOPs / (peak x efficiency), bytes / bandwidth)

* ``peak`` and ``bandwidth``: the profile's ``[compute]`` figures at the artifact's precision;
* ``efficiency``: the fraction of the peak a runtime of that class reaches on real networks
  (:data:`EFFICIENCY`, each with its source; a profile's ``compute.efficiency`` overrides it);
* ``call_overhead``: the fixed time of one graph call (:data:`CALL_OVERHEAD_MS`; a profile's
  ``compute.call_overhead_ms`` overrides it, ``edgefuse profiles calibrate-host`` measures it);
* ``calls``: graphs run (a split artifact: one per encoder present plus the head; monolithic: one).

Operation costs come from the graph itself: :func:`count_onnx` for ONNX files, :func:`count_torch` for a
PyTorch module at export time (stored in the manifest, so a device without torch or onnx can still
estimate). Used by :mod:`edgefuse.bench` and the demo; ``onnx`` and ``torch`` are imported inside the
functions that need them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgefuse.errors import ContractError

__all__ = [
    "BACKEND_CLASS",
    "CALL_OVERHEAD_MS",
    "EFFICIENCY",
    "Factor",
    "GraphCost",
    "count_onnx",
    "count_torch",
    "estimate_ops",
]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GraphCost:
    """FLOPs and bytes of one ONNX graph at a given batch size (an estimate).

    Attributes:
        flops: Floating-point operations: Conv ``2*N*Cout*Cin/groups*kh*kw*Hout*Wout``, Gemm/MatMul
            ``2*M*N*K`` (times the broadcast batch), any other op one per output element.
        bytes: Initializer (weight) bytes + bytes of every graph input read + every node output written.
        unknown_ops: Op types whose output shapes could not be inferred (counted as 0).
        ops: ``(flops, bytes)`` of every operation (weights read + inputs read + outputs written), for
            the per-operation roofline; empty when only totals are known.
    """

    flops: int
    bytes: int
    unknown_ops: tuple[str, ...] = ()
    ops: tuple[tuple[int, int], ...] = ()

    def __add__(self, other: GraphCost) -> GraphCost:
        return GraphCost(
            self.flops + other.flops,
            self.bytes + other.bytes,
            tuple(sorted(set(self.unknown_ops) | set(other.unknown_ops))),
            self.ops + other.ops,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON form (the manifest's ``graphs.<name>.cost``)."""
        return {"flops": self.flops, "bytes": self.bytes, "ops": [list(o) for o in self.ops]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GraphCost:
        """Inverse of :meth:`to_dict`; raises :class:`ContractError` on a malformed record."""
        try:
            ops = tuple((int(f), int(b)) for f, b in data.get("ops", ()))
            flops, nbytes = int(data["flops"]), int(data["bytes"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ContractError(f"malformed cost record ({type(exc).__name__}: {exc})") from None
        if flops < 0 or nbytes < 0 or any(f < 0 or b < 0 for f, b in ops):
            raise ContractError("malformed cost record: negative FLOPs or bytes")
        return cls(flops, nbytes, (), ops)


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

    def nbytes(name: str) -> int:
        n = numel(name)
        return 0 if n is None else n * itemsize.get(name, 4)

    flops = 0
    act_bytes = 0
    ops: list[tuple[int, int]] = []
    unknown: set[str] = set()
    graph_inputs = {v.name for v in graph.input} - inits
    for name in graph_inputs:
        act_bytes += nbytes(name)
    for node in graph.node:
        if node.op_type == "Constant":
            continue
        out = node.output[0] if node.output else ""
        out_shape = shapes.get(out)
        if out_shape is None:
            unknown.add(node.op_type)
            continue
        written = sum(nbytes(o) for o in node.output)
        act_bytes += written
        node_flops = _node_flops(node, out_shape, shapes)
        flops += node_flops
        ops.append((int(node_flops), int(written + sum(nbytes(i) for i in node.input if i))))
    return GraphCost(int(flops), int(weight_bytes + act_bytes), tuple(sorted(unknown)), tuple(ops))


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


#: Backend -> the class whose efficiency factor and call overhead apply.
BACKEND_CLASS: dict[str, str] = {
    "onnxruntime": "cpu",
    "litert": "cpu",
    "torch": "cpu",
    "tensorrt": "gpu",
    "coreml": "npu",
}


@dataclass(frozen=True)
class Factor:
    """A figure of the estimate and where it comes from."""

    value: float
    source: str


_LITE0 = (
    "EfficientNet-Lite0 (407M MACs = 0.814 GFLOP) on the Pixel 4 (tensorflow/tpu "
    "models/official/efficientnet/lite/README.md)"
)
_PIXEL4_BIG = "the 4 Cortex-A76 cores of the Snapdragon 855 (1x 2.84 + 3x 2.42 GHz)"

#: Backend class -> precision -> fraction of the peak reached on real networks ("*": any precision).
EFFICIENCY: dict[str, dict[str, Factor]] = {
    "cpu": {
        "*": Factor(
            0.42,
            f"published: {_LITE0}, CPU fp32 12 ms = 68 GFLOP/s against 162 GFLOP/s peak of {_PIXEL4_BIG} "
            "x 16 fp32 flop/cycle (assumes the benchmark used those 4 cores)",
        ),
        "int8": Factor(
            0.19,
            f"published: {_LITE0}, CPU int8 6.5 ms = 125 GOP/s against 646 GOP/s int8 (SDOT) peak of "
            f"{_PIXEL4_BIG} x 64 op/cycle",
        ),
    },
    "gpu": {
        "*": Factor(
            0.1,
            "assumption, not measured: batch-1 convolutional networks keep a GPU far from its peak; "
            "replace it with a figure measured on the device (compute.efficiency)",
        )
    },
    "npu": {
        "*": Factor(
            0.1,
            "assumption, not measured: Apple publishes no per-network Neural Engine efficiency; "
            "replace it with a figure measured on the device (compute.efficiency)",
        )
    },
}

#: Backend class -> fixed time of one graph call in ms (framework dispatch, input binding, output copy).
CALL_OVERHEAD_MS: dict[str, Factor] = {
    "cpu": Factor(
        0.02,
        "measured on an x86-64 Xeon (edgefuse profiles calibrate-host, 2026-11-30): one call of a "
        "one-operation graph takes 0.010 ms on onnxruntime and 0.003 ms on LiteRT; doubled for the slower "
        "cores of a device (an assumption, not measured there)",
    ),
    "gpu": Factor(
        0.1,
        "assumption: a kernel launch and a host-device synchronisation per call (tens of microseconds "
        "each on CUDA)",
    ),
    "npu": Factor(0.1, "assumption: a Core ML prediction call; not measured (needs macOS)"),
}


def _efficiency(profile: Any, klass: str, precision: str) -> Factor:
    given = getattr(profile.compute, "efficiency", {}) or {}
    if klass in given:
        return Factor(float(given[klass]), str(profile.compute.efficiency_source))
    table = EFFICIENCY.get(klass, EFFICIENCY["cpu"])
    return table.get(precision, table["*"])


def _overhead(profile: Any, backend: str, klass: str) -> Factor:
    given = getattr(profile.compute, "call_overhead_ms", {}) or {}
    if backend in given:
        return Factor(float(given[backend]), str(profile.compute.call_overhead_source))
    return CALL_OVERHEAD_MS.get(klass, CALL_OVERHEAD_MS["cpu"])


#: Bytes per element relative to fp32 (weights and activations stored at the artifact's precision).
_BYTES_SCALE = {"fp32": 1.0, "fp16": 0.5, "int8": 0.25}


def estimate_ops(
    cost: GraphCost, profile: Any, precision: str = "fp32", backend: str = "onnxruntime", calls: int = 1
) -> dict[str, Any]:
    """Roofline estimate (see the module docstring) of ``cost`` on ``profile``'s target.

    Args:
        cost: FLOPs and bytes of the graphs one inference runs (``ops`` for the per-operation sum; a cost
            with totals only is treated as one operation). Bytes are counted in fp32 and scaled to
            ``precision``.
        profile: A :class:`~edgefuse.profiles.DeviceProfile`.
        precision: ``fp32``, ``fp16`` or ``int8``: the profile's peak at it and the bytes' scale.
        backend: The backend that runs the graphs (its class picks the efficiency and call overhead).
        calls: Graph calls per inference.

    Returns:
        ``{"kind": "estimate", "ms", "compute_ms", "memory_ms", "overhead_ms", "bound", "flops", "bytes",
        "calls", "backend_class", "efficiency", "efficiency_source", "call_overhead_ms",
        "call_overhead_source", "peak_gflops", "bandwidth_gbs", "profile", "precision"}``; ``ms`` is
        ``None`` (with a ``note``) when the profile gives neither a peak at ``precision`` nor a bandwidth.
    """
    klass = BACKEND_CLASS.get(backend, "cpu")
    eff = _efficiency(profile, klass, precision)
    overhead = _overhead(profile, backend, klass)
    peak = profile.compute.peak(precision)
    bandwidth = profile.compute.memory_bandwidth_gbs
    scale = _BYTES_SCALE.get(precision, 1.0)
    ops = cost.ops or ((cost.flops, cost.bytes),)
    compute_s = memory_s = total_s = 0.0
    for flops, nbytes in ops:
        c = flops / (peak * 1e9 * eff.value) if peak else 0.0
        m = nbytes * scale / (bandwidth * 1e9) if bandwidth else 0.0
        compute_s += c if c >= m else 0.0
        memory_s += m if m > c else 0.0
        total_s += max(c, m)
    overhead_ms = calls * overhead.value
    out: dict[str, Any] = {
        "kind": "estimate",
        "ms": None if not (peak or bandwidth) else total_s * 1e3 + overhead_ms,
        "compute_ms": compute_s * 1e3,
        "memory_ms": memory_s * 1e3,
        "overhead_ms": overhead_ms,
        "bound": "compute" if compute_s >= memory_s else "memory",
        "flops": int(cost.flops),
        "bytes": int(cost.bytes * scale),
        "calls": int(calls),
        "backend_class": klass,
        "efficiency": eff.value,
        "efficiency_source": eff.source,
        "call_overhead_ms": overhead.value,
        "call_overhead_source": overhead.source,
        "peak_gflops": peak,
        "bandwidth_gbs": bandwidth,
        "profile": str(profile.id),
        "precision": precision,
    }
    if peak is None:
        out["note"] = f"profile {profile.id!r} gives no peak compute for {precision}; memory time only"
    if out["ms"] is None:
        out["note"] = f"estimate unavailable: profile {profile.id!r} gives no peak or bandwidth"
    return out


def count_torch(module: Any, inputs: Sequence[Any]) -> GraphCost:
    """Count FLOPs and bytes per ATen operation of ``module(*inputs)`` (run once, no gradient).

    FLOPs of matrix products, convolutions and attention come from ``torch.utils.flop_counter`` (2 per
    multiply-add); any other operation counts one per output element; views and tensor creation count
    nothing. Bytes per operation are its tensor inputs read (weights included) plus its outputs written,
    except for **fused** operations: element-wise ones (ATen's ``pointwise`` tag: activations, residual
    adds...) and inference BatchNorm are counted with their FLOPs but no bytes, because the runtimes
    EdgeFuse exports to (ONNX Runtime, XNNPACK/LiteRT, Core ML, TensorRT) fuse them into the operation
    that produces their input instead of making another pass over memory.

    Args:
        module: A ``torch.nn.Module`` (or any callable running torch operations).
        inputs: Its positional inputs (batch 1 for the manifest's figures).

    Returns:
        A :class:`GraphCost` with ``ops``.
    """
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten
    from torch.utils.flop_counter import flop_registry

    ops: list[tuple[int, int]] = []

    def tensor_bytes(values: Any) -> int:
        flat, _ = tree_flatten(values)
        return sum(t.numel() * t.element_size() for t in flat if isinstance(t, torch.Tensor))

    class _Counter(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]  # noqa: ANN001, ANN204
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            packet = func._overloadpacket
            read = tensor_bytes((args, kwargs))
            if _is_view(func) or not read:  # a view, or a creation op (empty, zeros...)
                return out
            fused = torch.Tag.pointwise in func.tags or packet.__name__ in _FUSED_OPS
            moved = 0 if fused else read + tensor_bytes(out)
            if packet in flop_registry:
                flops = int(flop_registry[packet](*args, **kwargs, out_val=out))
            else:
                flat, _ = tree_flatten(out)
                flops = sum(t.numel() for t in flat if isinstance(t, torch.Tensor))
            if flops or moved:
                ops.append((flops, moved))
            return out

    with torch.no_grad(), _Counter():
        module(*inputs)
    return GraphCost(sum(f for f, _ in ops), sum(b for _, b in ops), (), tuple(ops))


#: Inference normalisation ops that runtimes fold into the preceding convolution or matrix product.
_FUSED_OPS = frozenset({"native_batch_norm", "_native_batch_norm_legit_no_training", "batch_norm"})


def _is_view(func: Any) -> bool:
    """Whether an ATen op only reinterprets its input (no arithmetic, no copy)."""
    schema = getattr(func, "_schema", None)
    if schema is None:
        return False
    returns = schema.returns
    return bool(returns) and all(r.alias_info is not None and not r.alias_info.is_write for r in returns)
