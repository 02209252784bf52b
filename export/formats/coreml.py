"""Core ML (coremltools): one ``<graph>.mlpackage`` (ML program) per graph, with a ranged batch.

The module is traced with ``torch.jit.trace`` and converted with ``ct.convert(convert_to="mlprogram")``:
every input is a ``TensorType`` named as in the graph spec whose batch dimension is one shared
``RangeDim(BatchPlan.min_batch, BatchPlan.max_batch)``; outputs are named as in the spec and kept
float32; ``compute_precision`` is FLOAT32 or FLOAT16 (fp16 weights and compute, float32 I/O).

Two lowering fixes are applied for the duration of a conversion (the coremltools registry is restored
afterwards), both found on the monolithic graph's ``torch.where`` fusion with a ranged batch:

* ``zeros_like(x)`` with a symbolic shape lowers to ``x - x`` in coremltools 9, which is NaN wherever
  ``x`` is NaN, so NaN in an absent modality would leak through ``where``. It is lowered to
  ``fill(shape(x), 0)`` instead (:meth:`CoreMLExporter.inspect` rejects any ``sub(x, x)``).
* ``where(cond, a, b)`` with symbolic shapes is not broadcast by coremltools, and MIL ``select``
  infers its shape from ``a`` and ``b`` only (the conversion then fails in a later reduction). The three
  operands are broadcast explicitly (adding zeros of the other operands' shapes, never multiplying).

Users' own models (issue #12: a ``TransformerEncoderLayer``, ``AdaptiveAvgPool1d(1)``) need more:

* Tracing runs with PyTorch's fused MHA/transformer fast path off (``torch.backends.mha``, restored
  afterwards): in eval mode under ``no_grad`` an ``nn.TransformerEncoderLayer`` traces to the one fused
  op ``_transformer_encoder_layer_fwd``, which coremltools cannot convert; with the fast path off it
  traces to the composable ops (linear, bmm, softmax, layer_norm).
* ``int``/``bool`` of a constant (``aten::Int``, e.g. the head size ``int(16.0)`` inside
  ``F.multi_head_attention_forward``) folds in coremltools 9's ``frontend/torch/ops.py:_cast`` with
  ``int(x.val)``, where ``x.val`` is a length-1 array (``array([16.])``); numpy 2 (deprecated since
  1.25, a ``TypeError`` in the 2.4 used here) converts only 0-d arrays to Python scalars ("only
  0-dimensional arrays can be converted to Python scalars"). Such a constant is folded through
  ``.item()`` instead; every other case keeps the original lowering.
* ``adaptive_avg_pool1d``/``adaptive_max_pool1d`` (``ops.py:_adaptive_pool1d``) slice the input with
  ``end=[x.shape[0], x.shape[1], n]``, a constant that cannot hold the symbolic batch ("Cannot add
  const [batch, 64, 64]"). Output size 1 is lowered to ``reduce_mean``/``reduce_max`` over the last
  axis with ``keep_dims`` (exact, and free of the batch); ``adaptive_avg_pool2d`` with output ``(1, 1)``
  already lowers to such a reduction in coremltools 9.

Every conversion is isolated (:func:`_isolated_conversion`): coremltools registers each
``RangeDim(symbol="batch")`` in the process-wide ``k_used_symbols``
(``converters/mil/mil/program.py:Symbol.__init__``, "Symbol `batch` is used already") and clears it in
``converters/mil/converter.py:_reset_conversion_state`` only after a *successful* conversion, so one
failed conversion broke every later one in the process. The state is reset before and after each
conversion, the whole torch-op registry and the builder/scope stacks are restored, and the fast-path
flag is put back, on success and failure alike. A conversion that still fails raises
:class:`ExportError` naming the graph and, where coremltools got that far, the torch op, its node
and the module path that failed (read from coremltools' ``convert_single_node`` frame), with a hint.

Core ML has no bool inputs: a bool input (the monolithic ``presence`` mask) is a float32 input where
1.0 means present; the graph compares it with ``> 0.5`` to get the bool mask ``torch.where`` uses.

Prediction needs macOS (Core ML itself); elsewhere the package is validated from its saved spec.

int8 (:meth:`CoreMLExporter.quantize`): ``coremltools.optimize.coreml.linear_quantize_weights`` stores
every float weight of rank >= 2 (conv kernels, linear matrices, whatever their size) as int8
(``OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8")``, per output channel unless
``per_channel=False``) behind ``constexpr_affine_dequantize`` ops; biases and LayerNorm parameters stay
float32, compute stays float32 (the conversion's precision). Activation quantization
(``linear_quantize_activations``) calibrates by running Core ML prediction on the calibration data, which
needs macOS: it runs there first (int8 activations, then int8 weights); elsewhere the package is
weights-only and records ``"activations": "float (activation calibration needs macOS Core ML
prediction)"``. Either way the package is validated from its saved spec here.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import sys
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from edgefuse.export.errors import ExportError, ExportValidationError, QuantizationError
from edgefuse.export.formats.base import BatchPlan, Converted, FormatExporter, Runner, missing_package
from edgefuse.export.graphs import GraphSpec

if TYPE_CHECKING:
    from edgefuse.export.quantize import QuantOptions

__all__ = ["MINIMUM_DEPLOYMENT_TARGET", "CoreMLExporter"]

logger = logging.getLogger(__name__)

#: The oldest OS the packages target (ML programs need iOS 15 / macOS 12; 16 adds fp16 I/O and ops).
MINIMUM_DEPLOYMENT_TARGET = "iOS16"
#: graph-spec dtype -> the Core ML input dtype (bool becomes float32, see the module docstring)
_INPUT_DTYPES = {"float32": np.float32, "float16": np.float16, "bool": np.float32, "int64": np.int32}
#: graph-spec dtype -> ArrayFeatureType name in the saved spec
_SPEC_DTYPES = {"float32": "FLOAT32", "float16": "FLOAT16", "bool": "FLOAT32", "int64": "INT32"}
_FLOAT_TENSOR_TYPES = {"FLOAT16", "FLOAT32", "FLOAT64"}
#: ML program ops that hold compressed weights (iOS16: affine dequantize; iOS18: blockwise shift-scale)
_QUANTIZED_WEIGHT_OPS = {"constexpr_affine_dequantize", "constexpr_blockwise_shift_scale"}
#: Weights-only note recorded where activation calibration cannot run.
WEIGHTS_ONLY_ACTIVATIONS = "float (activation calibration needs macOS Core ML prediction)"


def _bool_from_float(graph: GraphSpec) -> Any:
    """``graph.module`` behind a forward that takes float 0/1 where it takes bool (``x > 0.5``)."""
    from torch import Tensor, nn

    flags = [s.dtype == "bool" for s in graph.inputs]

    class BoolFromFloat(nn.Module):
        def __init__(self, inner: nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *args: Tensor) -> Any:
            return self.inner(*[a > 0.5 if f else a for a, f in zip(args, flags, strict=True)])

    return BoolFromFloat(graph.module).eval()


@contextlib.contextmanager
def _nan_safe_lowering() -> Iterator[list[str]]:
    """Replace coremltools' torch ``zeros_like`` and ``where`` lowerings for one conversion.

    Yields a list that collects which fixes fired (recorded in the manifest details).
    """
    from coremltools.converters.mil import Builder as mb  # noqa: N813 - the name coremltools documents
    from coremltools.converters.mil.frontend.torch import ops
    from coremltools.converters.mil.frontend.torch.torch_op_registry import _TORCH_OPS_REGISTRY
    from coremltools.converters.mil.mil import types
    from coremltools.converters.mil.mil.types.symbolic import any_symbolic
    from coremltools.converters.mil.mil.types.type_mapping import builtin_to_string

    fired: list[str] = []
    original = {n: _TORCH_OPS_REGISTRY.get_func(n) for n in ("zeros_like", "where", "where.self")}

    def zeros_like(context: Any, node: Any) -> None:
        inputs = ops._get_inputs(context, node, min_expected=1)
        x = inputs[0]
        if not any_symbolic(x.shape):
            original["zeros_like"](context, node)  # folded to a constant: no arithmetic on x
            return
        dst = types.nptype_from_builtin(x.dtype)
        if len(inputs) > 1 and inputs[1] is not None and inputs[1].val is not None:
            dst = ops.NUM_TO_NUMPY_DTYPE[inputs[1].val]
        if np.issubdtype(dst, np.bool_):
            zeros = mb.fill(shape=mb.shape(x=x), value=False, name=node.name)
        elif np.issubdtype(dst, np.integer):
            zeros = mb.fill(shape=mb.shape(x=x), value=np.int32(0), name=node.name)
        elif np.dtype(dst) == np.float16:
            zeros = mb.cast(x=mb.fill(shape=mb.shape(x=x), value=0.0), dtype="fp16", name=node.name)
        else:
            zeros = mb.fill(shape=mb.shape(x=x), value=0.0, name=node.name)
        fired.append("zeros_like: fill(shape(x), 0) instead of x - x")
        context.add(zeros)

    def where(context: Any, node: Any) -> None:
        inputs = ops._get_inputs(context, node)
        if (
            len(inputs) != 3
            or not any(any_symbolic(v.shape) for v in inputs)
            or len({tuple(v.shape) for v in inputs}) == 1
            or not (types.is_float(inputs[1].dtype) or types.is_float(inputs[2].dtype))
        ):
            original["where"](context, node)
            return
        cond, a, b = inputs
        a, b = ops.promote_input_dtypes([a, b])
        dtype = builtin_to_string(a.dtype)
        zero = mb.add(
            x=mb.add(x=mb.fill(shape=mb.shape(x=cond), value=0.0), y=mb.fill(shape=mb.shape(x=a), value=0.0)),
            y=mb.fill(shape=mb.shape(x=b), value=0.0),
        )
        if dtype != "fp32":
            zero = mb.cast(x=zero, dtype=dtype)
        flag = cond if types.is_bool(cond.dtype) else mb.cast(x=cond, dtype="bool")
        flag = mb.cast(x=mb.add(x=mb.cast(x=flag, dtype=dtype), y=zero), dtype="bool")
        fired.append("where: operands broadcast explicitly for a symbolic batch")
        context.add(mb.select(cond=flag, a=mb.add(x=a, y=zero), b=mb.add(x=b, y=zero), name=node.name))

    zeros_like.__name__ = "zeros_like"
    where.__name__ = "where"
    try:
        _TORCH_OPS_REGISTRY.set_func_by_name(zeros_like, "zeros_like")
        _TORCH_OPS_REGISTRY.set_func_by_name(where, "where")
        _TORCH_OPS_REGISTRY.set_func_by_name(where, "where.self")
        yield fired
    finally:
        for name, func in original.items():
            _TORCH_OPS_REGISTRY.set_func_by_name(func, name)


@contextlib.contextmanager
def _compat_lowering() -> Iterator[list[str]]:
    """Replace coremltools 9's torch ``int``/``bool`` and 1-d adaptive pooling lowerings for one conversion.

    See the module docstring (numpy 2 scalar conversion; a ranged batch in adaptive pooling). A cast
    changes only when its constant is a length-1 array (which the original cannot fold); pooling to
    size 1 is always the (exact) reduction; other cases keep the original lowering. Yields a list that
    collects which fixes fired (recorded in the manifest details).
    """
    from coremltools.converters.mil import Builder as mb  # noqa: N813 - the name coremltools documents
    from coremltools.converters.mil.frontend.torch import ops
    from coremltools.converters.mil.frontend.torch.torch_op_registry import _TORCH_OPS_REGISTRY

    fired: list[str] = []
    casts = {"int": int, "_int": int, "bool": bool, "_bool": bool}
    pools = {"adaptive_avg_pool1d": mb.reduce_mean, "adaptive_max_pool1d": mb.reduce_max}
    original = {n: _TORCH_OPS_REGISTRY.get_func(n) for n in (*casts, *pools)}

    def scalar_cast(name: str) -> Any:
        def cast(context: Any, node: Any) -> None:
            x = ops._get_inputs(context, node, expected=1)[0]
            val = x.val
            if not (isinstance(val, np.ndarray) and val.ndim > 0 and val.size == 1):
                original[name](context, node)
                return
            fired.append(f"{name.lstrip('_')}: a constant length-1 tensor is folded with .item() (numpy 2)")
            context.add(mb.const(val=casts[name](val.reshape(()).item()), name=node.name))

        cast.__name__ = name
        return cast

    def adaptive_pool1d(name: str) -> Any:
        def pool(context: Any, node: Any) -> None:
            x, size = ops._get_inputs(context, node, expected=2)
            if size.val is None or np.asarray(size.val).reshape(-1).tolist() != [1]:
                original[name](context, node)
                return
            fired.append(f"{name}(1): a reduction over the last axis (keep dims), free of the batch")
            context.add(pools[name](x=x, axes=[-1], keep_dims=True, name=node.name))

        pool.__name__ = name
        return pool

    try:
        for name in casts:
            _TORCH_OPS_REGISTRY.set_func_by_name(scalar_cast(name), name)
        for name in pools:
            _TORCH_OPS_REGISTRY.set_func_by_name(adaptive_pool1d(name), name)
        yield fired
    finally:
        for name, func in original.items():
            _TORCH_OPS_REGISTRY.set_func_by_name(func, name)


def _reset_coremltools_state() -> None:
    """What coremltools resets after a successful conversion: used symbols (``RangeDim`` names), op names."""
    from coremltools.converters.mil import converter

    reset = getattr(converter, "_reset_conversion_state", None)
    if reset is not None:
        reset()
        return
    from coremltools.converters.mil import Builder as mb  # noqa: N813 - the name coremltools documents
    from coremltools.converters.mil.mil.types.symbolic import k_used_symbols

    k_used_symbols.clear()
    mb.name_count.clear()


@contextlib.contextmanager
def _isolated_conversion() -> Iterator[None]:
    """One trace + conversion that leaves no torch or coremltools state behind, on success or failure.

    The MHA fast path is off inside (restored after); coremltools' conversion state (the ``batch``
    symbol) is reset before and after; the whole torch-op registry and the MIL builder's block and
    scope stacks are put back as they were.
    """
    from coremltools.converters.mil.frontend.torch.torch_op_registry import _TORCH_OPS_REGISTRY
    from coremltools.converters.mil.mil import block as mil_block
    from coremltools.converters.mil.mil import scope as mil_scope
    from edgefuse.programs import no_fastpath

    registry = dict(_TORCH_OPS_REGISTRY.name_to_func_mapping)
    blocks = list(mil_block.BLOCK_STACK)
    scopes = {k: list(v) for k, v in mil_scope.SCOPE_STACK.items()}
    _reset_coremltools_state()
    try:
        with no_fastpath():
            yield
    finally:
        _TORCH_OPS_REGISTRY.name_to_func_mapping.clear()
        _TORCH_OPS_REGISTRY.name_to_func_mapping.update(registry)
        mil_block.BLOCK_STACK = blocks
        mil_scope.SCOPE_STACK.clear()
        mil_scope.SCOPE_STACK.update(scopes)
        _reset_coremltools_state()


def _failing_node(exc: BaseException) -> tuple[str, str, str] | None:
    """(torch op kind, node name, layer) of the node coremltools was converting when ``exc`` rose.

    Read from the innermost ``convert_single_node`` frame of coremltools' torch frontend in the
    traceback; the layer is the module path in the graph with its class (``encoder.pool (AvgPool)``).
    None when the failure came from elsewhere (a MIL pass, the backend).
    """
    node = None
    tb = exc.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        if code.co_name == "convert_single_node" and "coremltools" in code.co_filename:
            node = tb.tb_frame.f_locals.get("node", node)
        tb = tb.tb_next
    if node is None:
        return None
    layer = ""
    with contextlib.suppress(Exception):  # names/types end with the node itself (name, op kind)
        names, kinds = node.get_scope_info()
        layer = ".".join(str(n) for n in names[:-1])
        if layer and len(kinds) > 1:
            layer += f" ({kinds[-2]})"
    return str(getattr(node, "kind", "?")), str(getattr(node, "name", "?")), layer


def _conversion_error(graph: GraphSpec, version: str, exc: BaseException) -> ExportError:
    """The typed error of a failed conversion: the graph, the failing torch op/layer and a hint."""
    message = " ".join(str(exc).split()).rstrip(".")
    if len(message) > 600:
        message = message[:600] + " ..."
    node = _failing_node(exc)
    op = None
    where = ""
    if node is not None:
        op, name, layer = node
        where = f" at torch op {op!r} (node {name!r}" + (f", in layer {layer})" if layer else ")")
    if isinstance(exc, NotImplementedError) or "not implemented" in message:
        if op is None and (found := re.search(r"op '([^']+)' not implemented", message)):
            op = found.group(1)
            where = f" at torch op {op!r}"
        hint = (
            f"coremltools has no conversion for {op or 'this op'}: rewrite that layer with common ops, or "
            "register a lowering with coremltools.converters.mil.frontend.torch.register_torch_op before "
            "exporting"
        )
    elif "symbolic" in message:
        hint = (
            "this op cannot take the ranged batch dimension: avoid shapes computed from the batch size "
            "(x.size(0), x.view(B, ...)) in that layer, or use ops that keep the batch implicit"
        )
    else:
        hint = (
            "the layer named above is the one to rewrite; the coremltools message says what it could not do"
        )
    return ExportError(
        f"coremltools {version} could not convert graph {graph.name!r}{where}: {type(exc).__name__}: "
        f"{message}. Hint: {hint}"
    )


class _QuietConvert:
    """Capture coremltools' tqdm bars and warnings for one conversion (logged at DEBUG)."""

    def __enter__(self) -> None:
        self._buffer = io.StringIO()
        self._stack = contextlib.ExitStack()
        self._stack.enter_context(warnings.catch_warnings())
        warnings.simplefilter("ignore")
        self._stack.enter_context(contextlib.redirect_stderr(self._buffer))
        self._stack.enter_context(contextlib.redirect_stdout(self._buffer))
        self._ct_logger = logging.getLogger("coremltools")
        self._level = self._ct_logger.level
        self._ct_logger.setLevel(logging.ERROR)

    def __exit__(self, *exc: object) -> None:
        self._ct_logger.setLevel(self._level)
        self._stack.close()
        if self._buffer.getvalue().strip():
            logger.debug("coremltools output:\n%s", self._buffer.getvalue().strip()[-4000:])


class CoreMLExporter(FormatExporter):
    """ML program packages converted by coremltools (on any OS) and run by Core ML (macOS only)."""

    name = "coreml"
    backend = "coreml"
    int8_methods = ("minmax",)

    def _unavailable_reason(self) -> str | None:
        return missing_package("coremltools", "coreml", "Core ML export")

    def _runner_unavailable_reason(self) -> str | None:
        if sys.platform != "darwin":
            return (
                f"Core ML prediction needs macOS; on this platform ({sys.platform}) the artifact is "
                "validated from its saved spec"
            )
        return missing_package("coremltools", "coreml", "running Core ML")

    def _convert(self, graph: GraphSpec, folder: Path, precision: str, batch: BatchPlan) -> Converted:
        if precision not in ("fp32", "fp16"):
            raise ExportError(f"Core ML precision {precision!r} is not one of ['fp32', 'fp16']")
        if not 1 <= batch.min_batch <= batch.max_batch:
            raise ExportError(
                f"Core ML batch range [{batch.min_batch}, {batch.max_batch}] needs 1 <= min_batch <= max_batch"
            )
        import coremltools as ct
        import torch
        from edgefuse.programs import jit_traceable

        has_bool = any(s.dtype == "bool" for s in graph.inputs)
        module = _bool_from_float(graph) if has_bool else graph.module
        # stored torch.export programs (checkpoints of a user's model) read the batch through SymInts,
        # which jit.trace would bake in as constants: trace a copy that reads them dynamically
        module = jit_traceable(module)
        example = tuple(
            x.float() if s.dtype == "bool" else x
            for s, x in zip(graph.inputs, graph.example(max(2, batch.min_batch)), strict=True)
        )
        compute = ct.precision.FLOAT16 if precision == "fp16" else ct.precision.FLOAT32
        with _isolated_conversion():
            try:
                with torch.no_grad(), warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # TracerWarnings of the *args forward
                    traced = torch.jit.trace(module, example)
            except Exception as exc:
                raise ExportError(
                    f"torch.jit.trace could not trace graph {graph.name!r} for Core ML: {type(exc).__name__}: "
                    f"{str(exc)[:600]}"
                ) from exc
            dim = ct.RangeDim(
                lower_bound=batch.min_batch,
                upper_bound=batch.max_batch,
                default=batch.min_batch,
                symbol="batch",
            )
            inputs = [
                ct.TensorType(name=s.name, shape=ct.Shape((dim, *s.shape)), dtype=_INPUT_DTYPES[s.dtype])
                for s in graph.inputs
            ]
            outputs = [ct.TensorType(name=o.name, dtype=np.float32) for o in graph.outputs]
            try:
                with _nan_safe_lowering() as fired, _compat_lowering() as compat, _QuietConvert():
                    model = ct.convert(
                        traced,
                        convert_to="mlprogram",
                        inputs=inputs,
                        outputs=outputs,
                        compute_precision=compute,
                        minimum_deployment_target=getattr(ct.target, MINIMUM_DEPLOYMENT_TARGET),
                    )
            except Exception as exc:
                raise _conversion_error(graph, ct.__version__, exc) from exc
        rel = f"{graph.name}.mlpackage"
        model.save(str(folder / rel))
        details: dict[str, Any] = {
            "converter": f"coremltools {ct.__version__}",
            "precision": precision,
            "compute_precision": "FLOAT16" if precision == "fp16" else "FLOAT32",
            "minimum_deployment_target": MINIMUM_DEPLOYMENT_TARGET,
            "lowering_fixes": sorted(set(fired) | set(compat)),
        }
        if has_bool:
            details["bool_inputs_as_float32"] = [s.name for s in graph.inputs if s.dtype == "bool"]
            details["presence"] = (
                "float32 input (1.0 = present); compared > 0.5 in the graph, then torch.where"
            )
        return Converted(
            files=[rel],
            batch={"dynamic": True, "min": batch.min_batch, "max": batch.max_batch},
            details=details,
        )

    def _int8_unavailable_reason(self) -> str | None:
        return missing_package("coremltools", "coreml", "int8 Core ML (coremltools.optimize)")

    def _quantize(
        self,
        folder: Path,
        converted: Converted,
        graph: GraphSpec,
        calibration: Sequence[Mapping[str, np.ndarray]],
        options: QuantOptions,
    ) -> Converted:
        """int8 weights (and int8 activations on macOS); see the module docstring."""
        import shutil
        import tempfile

        import coremltools as ct
        import coremltools.optimize.coreml as cto

        rel = converted.files[0]
        granularity = "per_channel" if options.per_channel else "per_tensor"
        with _QuietConvert():
            model = ct.models.MLModel(str(folder / rel), skip_model_load=sys.platform != "darwin")
            weights = _float_weight_names(rel, model.get_spec())
        if not weights:
            raise QuantizationError(
                f"{rel}: the ML program has no float weight of rank >= 2 to quantize; keep {graph.name} in fp32"
            )
        weight_config = cto.OptimizationConfig(
            op_name_configs={
                name: cto.OpLinearQuantizerConfig(
                    mode="linear_symmetric", dtype="int8", granularity=granularity, weight_threshold=0
                )
                for name in weights
            }
        )
        activations = WEIGHTS_ONLY_ACTIVATIONS
        try:
            with _QuietConvert():
                if sys.platform == "darwin":
                    samples = _coreml_samples(graph, calibration)
                    activation_config = cto.OptimizationConfig(
                        global_config=cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8")
                    )
                    model = cto.experimental.linear_quantize_activations(model, activation_config, samples)
                    activations = (
                        f"int8 (linear_symmetric, coremltools linear_quantize_activations on {len(samples)} "
                        "calibration rows)"
                    )
                quantized = cto.linear_quantize_weights(model, weight_config)
                with tempfile.TemporaryDirectory(dir=folder, prefix=".int8-") as tmp:
                    staged = Path(tmp) / Path(rel).name
                    quantized.save(str(staged))
                    shutil.rmtree(folder / rel)
                    shutil.move(str(staged), str(folder / rel))
        except Exception as exc:
            raise QuantizationError(
                f"{rel}: int8 quantization with coremltools {ct.__version__} failed: {type(exc).__name__}: "
                f"{str(exc).strip()[:300]}. Use --keep-fp32 {graph.name} or --precision fp16 for Core ML"
            ) from exc
        details = {
            **converted.details,
            "precision": "int8",
            "weights": f"int8 (linear_symmetric, {granularity.replace('_', ' ')}; biases and norms float32)",
            "activations": activations,
            "quantization": {
                "quantizer": "coremltools.optimize.coreml",
                "version": ct.__version__,
                "method": "minmax",
                "per_channel": options.per_channel,
                "weight_type": "int8 (symmetric)",
                "activation_type": activations,
                "quantized_weights": len(weights),
                "calibration_rows": int(sum(_rows(feed) for feed in calibration))
                if sys.platform == "darwin"
                else 0,
            },
        }
        return Converted(files=list(converted.files), batch=dict(converted.batch), details=details)

    def _load_runner(self, folder: Path, converted: Converted, graph: GraphSpec) -> Runner:
        """Predict with the runtime's Core ML backend (macOS only): the exact device code path."""
        return self._runtime_runner(folder, converted, graph)

    def _inspect(self, folder: Path, converted: Converted, graph: GraphSpec) -> dict[str, Any]:
        from edgefuse.errors import BackendUnavailableError

        reason = missing_package("coremltools", "coreml", "inspecting a Core ML package")
        if reason:
            raise BackendUnavailableError(reason)
        import coremltools as ct

        rel = converted.files[0]
        try:
            with _QuietConvert():
                spec = ct.models.MLModel(str(folder / rel), skip_model_load=True).get_spec()
        except Exception as exc:
            raise ExportValidationError(f"{rel} cannot be read by coremltools: {exc}") from None
        if spec.WhichOneof("Type") != "mlProgram":
            raise ExportValidationError(f"{rel} is a {spec.WhichOneof('Type')} model; expected an mlProgram")
        lower, upper = converted.batch.get("min"), converted.batch.get("max")
        _check_inputs(rel, spec, graph, lower, upper)
        outs = [o.name for o in spec.description.output]
        if outs != [o.name for o in graph.outputs]:
            raise ExportValidationError(f"{rel}: outputs {outs}; expected {[o.name for o in graph.outputs]}")
        for o in spec.description.output:
            dtype = _array_dtype_name(o.type.multiArrayType.dataType)
            if dtype != "FLOAT32":
                raise ExportValidationError(f"{rel}: output {o.name!r} is {dtype}; expected FLOAT32")
        ops = _mil_operations(rel, spec)
        _check_output_shapes(rel, ops, graph)
        weights = _weight_dtypes(ops)
        precision = converted.details.get("precision", "fp32")
        if precision == "fp16" and (not weights.get("FLOAT16") or weights.get("FLOAT32")):
            raise ExportValidationError(
                f"{rel}: precision fp16 was asked but the weights are {weights} (expected FLOAT16 only)"
            )
        if precision == "fp32" and weights.get("FLOAT16"):
            raise ExportValidationError(f"{rel}: precision fp32 was asked but the weights are {weights}")
        int8_weights = _int8_weight_count(spec)
        if precision == "int8" and not int8_weights:
            raise ExportValidationError(
                f"{rel}: precision int8 was asked but no weight is stored as int8 (float weights: {weights})"
            )
        for op in ops:  # x - x is NaN for NaN x: a NaN-unsafe zeros_like (see the module docstring)
            if (
                op["type"] == "sub"
                and op["inputs"].get("x")
                and op["inputs"].get("x") == op["inputs"].get("y")
            ):
                raise ExportValidationError(
                    f"{rel}: op {op['outputs'][0]} computes x - x (NaN for NaN inputs); it must be fill(0)"
                )
        return {
            "spec_version": int(spec.specificationVersion),
            "batch_range": [lower, upper],
            "weights": weights,
            "int8_weights": int8_weights,
            "ops": sorted({op["type"] for op in ops} - {"const"}),
            "num_ops": sum(1 for op in ops if op["type"] != "const"),
        }


def _array_dtype_name(value: int) -> str:
    from coremltools.proto import FeatureTypes_pb2

    return FeatureTypes_pb2.ArrayFeatureType.ArrayDataType.Name(value)


def _check_inputs(rel: str, spec: Any, graph: GraphSpec, lower: int | None, upper: int | None) -> None:
    """Names (in order), rank, ranged batch bounds, fixed dims and dtypes of every input."""
    found = {i.name: i for i in spec.description.input}
    if list(found) != [s.name for s in graph.inputs]:
        raise ExportValidationError(f"{rel}: inputs {list(found)}; expected {[s.name for s in graph.inputs]}")
    for s in graph.inputs:
        arr = found[s.name].type.multiArrayType
        ranges = [(r.lowerBound, r.upperBound) for r in arr.shapeRange.sizeRanges]
        dims = [tuple(r) for r in ranges] if ranges else [(d, d) for d in arr.shape]
        want = [(lower, upper), *((d, d) for d in s.shape)]
        dtype = _array_dtype_name(arr.dataType)
        if dims != want or dtype != _SPEC_DTYPES[s.dtype]:
            raise ExportValidationError(
                f"{rel}: input {s.name!r} has dims (lower, upper) {dims} and type {dtype}; expected {want} "
                f"{_SPEC_DTYPES[s.dtype]}"
            )


def _mil_operations(rel: str, spec: Any) -> list[dict[str, Any]]:
    """The ops of the ML program's ``main`` function: type, named inputs and output names/types."""
    program = spec.mlProgram
    if "main" not in program.functions:
        raise ExportValidationError(f"{rel}: the ML program has no 'main' function")
    function = program.functions["main"]
    block = function.block_specializations[function.opset]
    return [
        {
            "type": op.type,
            "inputs": {k: ",".join(a.name for a in v.arguments) for k, v in op.inputs.items()},
            "outputs": [o.name for o in op.outputs],
            "types": [o.type.tensorType for o in op.outputs],
        }
        for op in block.operations
    ]


def _check_output_shapes(rel: str, ops: list[dict[str, Any]], graph: GraphSpec) -> None:
    from coremltools.proto import MIL_pb2

    produced = {name: t for op in ops for name, t in zip(op["outputs"], op["types"], strict=True)}
    for o in graph.outputs:
        t = produced.get(o.name)
        if t is None:
            raise ExportValidationError(f"{rel}: no op of the ML program produces output {o.name!r}")
        dims = [d.constant.size if d.WhichOneof("dimension") == "constant" else -1 for d in t.dimensions]
        if t.rank != 1 + len(o.shape) or dims[1:] != list(o.shape):
            raise ExportValidationError(
                f"{rel}: output {o.name!r} has rank {t.rank} dims {dims}; expected [batch, "
                f"{', '.join(map(str, o.shape))}]"
            )
        if MIL_pb2.DataType.Name(t.dataType) != "FLOAT32":
            raise ExportValidationError(f"{rel}: output {o.name!r} is {MIL_pb2.DataType.Name(t.dataType)}")


def _weight_dtypes(ops: list[dict[str, Any]]) -> dict[str, int]:
    """How many float constants of rank >= 1 (weights, biases, tables) the program holds, per dtype."""
    from coremltools.proto import MIL_pb2

    counts: dict[str, int] = {}
    for op in ops:
        if op["type"] != "const":
            continue
        for t in op["types"]:
            name = MIL_pb2.DataType.Name(t.dataType)
            if name in _FLOAT_TENSOR_TYPES and t.rank >= 1:
                counts[name] = counts.get(name, 0) + 1
    return counts


def _rows(feed: Mapping[str, np.ndarray]) -> int:
    return int(np.asarray(next(iter(feed.values()))).shape[0])


def _float_weight_names(rel: str, spec: Any) -> list[str]:
    """Names of the float constants of rank >= 2 (conv kernels, linear matrices) of the ML program."""
    from coremltools.proto import MIL_pb2

    names = []
    for op in _mil_operations(rel, spec):
        if op["type"] != "const" or not op["types"]:
            continue
        t = op["types"][0]
        if MIL_pb2.DataType.Name(t.dataType) in _FLOAT_TENSOR_TYPES and t.rank >= 2:
            names.append(op["outputs"][0])
    return names


def _int8_weight_count(spec: Any) -> int:
    """How many compressed-weight ops of the program store their data as int8."""
    from coremltools.proto import MIL_pb2

    function = spec.mlProgram.functions["main"]
    count = 0
    for op in function.block_specializations[function.opset].operations:
        if op.type not in _QUANTIZED_WEIGHT_OPS:
            continue
        for key in ("quantized_data", "data"):
            value = op.attributes.get(key)
            if value is not None and MIL_pb2.DataType.Name(value.type.tensorType.dataType) == "INT8":
                count += 1
                break
    return count


def _coreml_samples(
    graph: GraphSpec, calibration: Sequence[Mapping[str, np.ndarray]]
) -> list[dict[str, Any]]:
    """Calibration rows as Core ML prediction inputs (bool inputs as float32 1.0/0.0, see the docstring)."""
    samples = []
    for feed in calibration:
        arrays = {s.name: np.asarray(feed[s.name]) for s in graph.inputs}
        for row in range(_rows(arrays)):
            samples.append(
                {s.name: arrays[s.name][row : row + 1].astype(_INPUT_DTYPES[s.dtype]) for s in graph.inputs}
            )
    return samples
