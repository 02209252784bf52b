"""TFLite (LiteRT): litert-torch converts, ai-edge-litert runs.

Batch handling. litert-torch is asked for a dynamic batch first; the file is kept only when
ai-edge-litert really runs it at batch 1 and 7 and matches PyTorch (max abs/rel difference 1e-4).
Where that fails (litert-torch's dynamic batch breaks wherever the graph reshapes, unsqueezes or runs a
``Linear`` on a symbolic batch: the head and the monolithic graph), the file holds one fixed-batch
signature per size of :attr:`BatchPlan.fixed` (``b1``, ``b8``...) in one ``.tflite``; the runner
returned by :meth:`TFLiteExporter.load_runner` splits any batch onto those signatures and pads the
last chunk with zeros (padded rows are dropped from the outputs).

Names. Each signature's input and output keys are the graph spec's names (``audio``, ``presence``,
``embedding``, ``logits``): the module is wrapped so that its forward has one keyword parameter per
input and returns a dict. A name that is not a Python identifier gets a stand-in key; the mapping is
recorded in ``details["signature_keys"]``.

Precision. fp16 stores weights as float16 (``DEQUANTIZE`` to float32 at load) with float32 inputs,
outputs and compute: the float-casting weight-only recipe of ai-edge-quantizer (the quantizer
litert-torch itself uses) applied to the converted fp32 flatbuffer.

int8 (:meth:`TFLiteExporter.quantize`): full-integer post-training quantization of the converted fp32
flatbuffer with ai-edge-quantizer's static recipe (``static_wi8_ai8``: int8 weights, symmetric, per
output channel unless ``per_channel=False``; int8 activations, asymmetric per tensor, min/max
calibrated by running the fp32 file on the calibration rows), with the virtual ``INPUT``/``OUTPUT`` ops
left unquantized so the file keeps float32 inputs and outputs (a ``QUANTIZE`` after each input, a
``DEQUANTIZE`` before each output) and the runtime feeds it unchanged. Each signature is calibrated on
every calibration row, in chunks of its own batch size (fixed-batch signatures: the last chunk is
completed with rows from the start, never with made-up values). This path was chosen over litert-torch's
PT2E quantizer because it needs nothing beyond what fp16 already uses here (ai-edge-quantizer works on
the saved flatbuffer; no torch re-export, no torchao/PT2E quantizer and no second conversion per
signature) and it quantizes exactly the file that was validated in fp32, dynamic and fixed-batch
layouts alike. ai-edge-quantizer's static recipe calibrates min/max only: other methods are refused.

The monolithic graph's bool ``presence`` input stays bool: LiteRT takes bool tensors, and the fusion
keeps its ``torch.where`` (NaN in an absent input cannot leak; checked by the tests).
"""

from __future__ import annotations

import contextlib
import io
import keyword
import logging
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from edgefuse.export.errors import ExportError, ExportValidationError, QuantizationError
from edgefuse.export.formats.base import BatchPlan, Converted, FormatExporter, Runner, missing_package
from edgefuse.export.graphs import GraphSpec

if TYPE_CHECKING:
    from edgefuse.export.quantize import QuantOptions

__all__ = ["TFLiteExporter"]

logger = logging.getLogger(__name__)

#: Signature name litert-torch gives a single (dynamic-batch) signature.
DYNAMIC_SIGNATURE = "serving_default"
#: Batch sizes at which a dynamic-batch file must run (and match PyTorch) to be kept.
DYNAMIC_CHECK_BATCHES = (1, 7)
#: Tolerance of that check (fp32 graph before any fp16 weight casting).
DYNAMIC_CHECK_TOL = 1e-4
#: dtype names of the graph spec -> the dtype LiteRT stores (int64 is downcast by litert-torch).
_TFLITE_DTYPES = {"float32": np.float32, "float16": np.float16, "bool": np.bool_, "int64": np.int32}


class _Quiet:
    """Keep litert-torch and ai-edge-quantizer from writing to the console during one conversion.

    litert-torch prints a rich progress tree unless ``LITERT_TORCH_SHOW_PROGRESS`` is off (restored on
    exit); ai-edge-quantizer prints a size report and tqdm bars and logs through the root logger (which
    would install a stderr handler via ``logging.basicConfig``). What they print is logged at DEBUG here.
    """

    def __init__(self, capture_stdio: bool = False) -> None:
        self.capture_stdio = capture_stdio

    def __enter__(self) -> None:
        self._env = os.environ.get("LITERT_TORCH_SHOW_PROGRESS")
        os.environ["LITERT_TORCH_SHOW_PROGRESS"] = "n"
        self._warnings = warnings.catch_warnings()
        self._warnings.__enter__()
        warnings.simplefilter("ignore")
        root = logging.getLogger()
        self._null = logging.NullHandler() if not root.handlers else None
        if self._null is not None:
            root.addHandler(self._null)  # no basicConfig from a library's logging.warning()
        self._filter = _ToDebug()
        root.addFilter(self._filter)
        self._stack = contextlib.ExitStack()
        if self.capture_stdio:
            self._buffer = io.StringIO()
            self._stack.enter_context(contextlib.redirect_stdout(self._buffer))
            self._stack.enter_context(contextlib.redirect_stderr(self._buffer))

    def __exit__(self, *exc: object) -> None:
        self._stack.close()
        root = logging.getLogger()
        root.removeFilter(self._filter)
        if self._null is not None:
            root.removeHandler(self._null)
        self._warnings.__exit__(None, None, None)
        if self._env is None:
            os.environ.pop("LITERT_TORCH_SHOW_PROGRESS", None)
        else:
            os.environ["LITERT_TORCH_SHOW_PROGRESS"] = self._env
        if self.capture_stdio and self._buffer.getvalue().strip():
            logger.debug("converter output:\n%s", self._buffer.getvalue().strip())


class _ToDebug(logging.Filter):
    """A root-logger filter that re-logs third-party root messages at DEBUG under this module."""

    def filter(self, record: logging.LogRecord) -> bool:
        logger.debug("converter log (%s): %s", record.levelname, record.getMessage())
        return False


# --------------------------------------------------------------------------------------- naming


def _signature_keys(names: Sequence[str], prefix: str) -> dict[str, str]:
    """Graph-spec name -> signature key: the name itself when it can be a Python parameter name."""
    keys: dict[str, str] = {}
    for i, name in enumerate(names):
        ok = name.isidentifier() and not keyword.iskeyword(name) and name != "self"
        keys[name] = name if ok and not name.startswith("_") else f"{prefix}_{i}"
    return keys


def _named_module(graph: GraphSpec, in_keys: Mapping[str, str], out_keys: Mapping[str, str]) -> Any:
    """Wrap ``graph.module`` so that litert-torch names the signature's tensors after the graph spec.

    litert-torch names inputs after the keyword arguments of the traced call and outputs after the keys
    of a returned dict. ``torch.export`` binds keyword arguments and dynamic shapes through
    ``inspect.signature(forward)``, so the wrapper's ``forward(**inputs)`` carries an explicit
    ``__signature__`` with one parameter per input (each key is a checked identifier, see
    :func:`_signature_keys`).
    """
    import inspect

    from torch import nn

    params = [in_keys[s.name] for s in graph.inputs]
    outputs = [out_keys[o.name] for o in graph.outputs]

    class _NamedIO(nn.Module):
        def __init__(self, inner: nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, **inputs: Any) -> dict[str, Any]:
            out = self.inner(*[inputs[p] for p in params])
            outs = out if isinstance(out, tuple | list) else (out,)
            return dict(zip(outputs, outs, strict=True))

    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    _NamedIO.forward.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter("self", kind), *(inspect.Parameter(p, kind) for p in params)]
    )
    return _NamedIO(graph.module).eval()


# --------------------------------------------------------------------------------------- checks


def _example_feeds(graph: GraphSpec, batch: int, seed: int) -> dict[str, np.ndarray]:
    """Random inputs for ``graph`` (bool inputs get a random pattern, so ``where`` is exercised)."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for spec, x in zip(graph.inputs, graph.example(batch, seed=seed), strict=True):
        if spec.dtype == "bool":
            feeds[spec.name] = rng.random((batch, *spec.shape)) < 0.6
        else:
            feeds[spec.name] = x.numpy()
    return feeds


def _torch_outputs(graph: GraphSpec, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    import torch

    with torch.no_grad():
        out = graph.module(*[torch.from_numpy(np.ascontiguousarray(feeds[s.name])) for s in graph.inputs])
    outs = out if isinstance(out, tuple | list) else (out,)
    return {o.name: t.detach().numpy() for o, t in zip(graph.outputs, outs, strict=True)}


def _check_runs(
    content: bytes,
    graph: GraphSpec,
    keys: dict[str, dict[str, str]],
    runs: Sequence[tuple[str, int]],
    tol: float | None,
) -> str | None:
    """Run ``content`` with ai-edge-litert on each (signature, batch); ``None`` or what went wrong.

    With ``tol``, outputs must match PyTorch within it (abs and rel); without, be finite and shaped right.
    """
    from ai_edge_litert.interpreter import Interpreter

    try:
        interpreter = Interpreter(model_content=content)
        for signature, batch in runs:
            feeds = _example_feeds(graph, batch, seed=100 + batch)
            got = _run_signature(interpreter.get_signature_runner(signature), graph, keys, feeds)
            want = _torch_outputs(graph, feeds)
            for name, expected in want.items():
                actual = got[name]
                if actual.shape != expected.shape:
                    return f"{signature} at batch {batch}: {name} has shape {actual.shape}, PyTorch {expected.shape}"
                if tol is None:
                    if not np.isfinite(actual).all():
                        return f"{signature} at batch {batch}: {name} is not finite"
                elif not np.allclose(actual, expected, atol=tol, rtol=tol):
                    diff = float(np.max(np.abs(actual - expected)))
                    return (
                        f"{signature} at batch {batch}: {name} differs from PyTorch by {diff:.3g} (> {tol})"
                    )
    except Exception as exc:  # any runtime failure means: do not keep this file
        return f"{type(exc).__name__}: {_first_line(exc)}"
    return None


def _run_signature(
    runner: Any, graph: GraphSpec, keys: dict[str, dict[str, str]], feeds: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    details = runner.get_input_details()
    args = {}
    for spec in graph.inputs:
        key = keys["inputs"][spec.name]
        args[key] = np.ascontiguousarray(feeds[spec.name], dtype=details[key]["dtype"])
    out = runner(**args)
    return {o.name: np.asarray(out[keys["outputs"][o.name]]) for o in graph.outputs}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else repr(exc)


def _min_max_update(qsv: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Accumulate calibration ranges as the true min/max over every batch (not a moving average)."""
    if not qsv:
        return new
    return {**new, "min": np.minimum(qsv["min"], new["min"]), "max": np.maximum(qsv["max"], new["max"])}


def _compact_names(content: bytes) -> bytes:
    """The same flatbuffer with every tensor but the subgraphs' inputs and outputs named ``t<i>``.

    litert-torch names each tensor after the full module path of the exporter's wrappers (hundreds of
    bytes each, ~8% of an int8 encoder file). Signatures map their keys to tensor *indices*, and the
    runtime reads inputs and outputs through signatures, so nothing depends on these names.

    A file whose constant buffers are stored by offset after the flatbuffer (ai-edge-quantizer writes
    larger models that way, e.g. EfficientNet-Lite0) is returned unchanged: rebuilding the flatbuffer
    would drop that trailing data.
    """
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(content))
    if any(getattr(b, "offset", 0) for b in model.buffers or []):
        logger.info("constant buffers stored by offset: tensor names kept (renaming would drop them)")
        return content
    for subgraph in model.subgraphs:
        # numpy arrays after parsing: `array([0]) or []` would be [] (a one-element array of 0 is falsy)
        io = {int(i) for ids in (subgraph.inputs, subgraph.outputs) if ids is not None for i in ids}
        for i, tensor in enumerate(subgraph.tensors):
            if i not in io:
                tensor.name = f"t{i}".encode()
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _calibrate_min_max(q: Any, data: Mapping[str, Any]) -> dict[str, Any]:
    """Calibrate with ranges that are the min/max over **all** calibration batches.

    ``Quantizer.calibrate`` merges batches with a moving average (smoothing 0.95): the first batch
    dominates and later rows' extremes are mostly ignored, which clipped activations enough to cost the
    AV-digits audio encoder ~15 dB of SQNR and 3 points of accuracy against ONNX Runtime's true min/max.
    Its calibrator takes an update function, so it is driven directly with :func:`_min_max_update`; a
    quantizer version without that hook falls back to its own ``calibrate``.
    """
    from ai_edge_quantizer import calibrator

    buffer = getattr(q, "_float_model_buffer", None)
    recipe = getattr(q, "_recipe_manager", None)
    if buffer is None or recipe is None:  # another ai-edge-quantizer layout: its own (moving average)
        logger.warning(
            "ai-edge-quantizer without the calibrator hook: calibration ranges are a moving average"
        )
        return q.calibrate(data)
    calib = calibrator.Calibrator(buffer, num_threads=1, qsv_update_func=_min_max_update)
    calib.calibrate(data, recipe)
    return calib.get_model_qsvs()


class TFLiteExporter(FormatExporter):
    """``.tflite`` files converted by litert-torch and run by ai-edge-litert's interpreter."""

    name = "tflite"
    backend = "litert"
    int8_methods = ("minmax",)

    def _unavailable_reason(self) -> str | None:
        return missing_package("litert_torch", "export", "TFLite export") or missing_package(
            "ai_edge_litert", "litert", "TFLite export (checking the converted file)"
        )

    def _runner_unavailable_reason(self) -> str | None:
        return missing_package("ai_edge_litert", "litert", "running TFLite")

    def _convert(self, graph: GraphSpec, folder: Path, precision: str, batch: BatchPlan) -> Converted:
        if precision not in ("fp32", "fp16"):
            raise ExportError(f"TFLite precision {precision!r} is not one of ['fp32', 'fp16']")
        import litert_torch
        import torch

        keys = {
            "inputs": _signature_keys([s.name for s in graph.inputs], "input"),
            "outputs": _signature_keys([o.name for o in graph.outputs], "output"),
        }
        module = _named_module(graph, keys["inputs"], keys["outputs"])
        checks = sorted({max(b, batch.min_batch) for b in DYNAMIC_CHECK_BATCHES})
        content: bytes | None = None
        dynamic_error: str | None = None
        example_batch = min(max(2, batch.min_batch), max(batch.max_batch, 2))
        try:
            dim = torch.export.Dim("batch", min=batch.min_batch, max=max(batch.max_batch, 2))
            example = _kwargs(graph, keys, example_batch)
            with _Quiet():
                model = litert_torch.convert(
                    module, sample_kwargs=example, dynamic_shapes={k: {0: dim} for k in example}
                )
                candidate = bytes(model.model_content())
            dynamic_error = _check_runs(
                candidate, graph, keys, [(DYNAMIC_SIGNATURE, b) for b in checks], DYNAMIC_CHECK_TOL
            )
            if dynamic_error is None:
                content = candidate
        except Exception as exc:  # litert-torch raises many types here; the fallback is fixed sizes
            dynamic_error = f"{type(exc).__name__}: {_first_line(exc)}"
        if content is not None:
            batch_info: dict[str, Any] = {
                "dynamic": True,
                "min": batch.min_batch,
                "max": None,
                "signature": DYNAMIC_SIGNATURE,
            }
            runs = [(DYNAMIC_SIGNATURE, b) for b in checks]
        else:
            logger.info(
                "%s: dynamic-batch TFLite not usable (%s); writing fixed sizes", graph.name, dynamic_error
            )
            sizes = sorted(set(batch.fixed))
            if not sizes or sizes[0] < 1:
                raise ExportError(f"BatchPlan.fixed {list(batch.fixed)} must list positive batch sizes")
            converter = litert_torch.Converter()
            for size in sizes:
                converter.signature(f"b{size}", module, sample_kwargs=_kwargs(graph, keys, size))
            try:
                with _Quiet():
                    content = bytes(converter.convert().model_content())
            except Exception as exc:
                raise ExportError(
                    f"litert-torch could not convert {graph.name} with fixed batch sizes {sizes}: "
                    f"{type(exc).__name__}: {_first_line(exc)} (dynamic batch failed too: {dynamic_error})"
                ) from exc
            runs = [(f"b{s}", s) for s in sizes]
            problem = _check_runs(content, graph, keys, runs, DYNAMIC_CHECK_TOL)
            if problem:
                raise ExportValidationError(f"{graph.name}.tflite (fixed batch sizes {sizes}): {problem}")
            batch_info = {"fixed": sizes, "signatures": {str(s): f"b{s}" for s in sizes}}
        details: dict[str, Any] = {
            "converter": f"litert-torch {litert_torch.__version__}",
            "precision": precision,
            "signature_keys": keys,
            "dynamic_batch_error": dynamic_error,
        }
        if precision == "fp16":
            content = _fp16_weights(content, graph.name)
            problem = _check_runs(content, graph, keys, runs, None)
            if problem:
                raise ExportValidationError(f"{graph.name}.tflite after casting weights to fp16: {problem}")
            details["weights"] = "float16 (ai-edge-quantizer FLOAT_CASTING, weight-only)"
            details["compute"] = "float32 (DEQUANTIZE of the fp16 weights); float32 inputs and outputs"
        if graph.role == "monolithic":
            details["presence"] = "bool input (LiteRT takes bool tensors); fusion uses torch.where"
        rel = f"{graph.name}.tflite"
        (folder / rel).write_bytes(content)
        return Converted(files=[rel], batch=batch_info, details=details)

    def _int8_unavailable_reason(self) -> str | None:
        return missing_package("ai_edge_quantizer", "export", "int8 TFLite") or missing_package(
            "ai_edge_litert", "litert", "int8 TFLite (calibration runs the fp32 file)"
        )

    def _quantize(
        self,
        folder: Path,
        converted: Converted,
        graph: GraphSpec,
        calibration: Sequence[Mapping[str, np.ndarray]],
        options: QuantOptions,
    ) -> Converted:
        """Full-integer int8 with ai-edge-quantizer's static recipe (see the module docstring)."""
        from ai_edge_litert.interpreter import Interpreter
        from ai_edge_quantizer import qtyping, quantizer
        from ai_edge_quantizer.algorithm_manager import AlgorithmName

        rel = converted.files[0]
        content = (folder / rel).read_bytes()
        keys = converted.details.get("signature_keys") or _identity_keys(graph)
        if converted.batch.get("dynamic"):
            sizes: dict[str, int | None] = {converted.batch.get("signature", DYNAMIC_SIGNATURE): None}
        else:
            sizes = {name: int(size) for size, name in converted.batch["signatures"].items()}
        interpreter = Interpreter(model_content=content)
        data = {
            signature: _signature_batches(
                graph,
                keys,
                interpreter.get_signature_runner(signature).get_input_details(),
                calibration,
                size,
            )
            for signature, size in sizes.items()
        }
        granularity = (
            qtyping.QuantGranularity.CHANNELWISE
            if options.per_channel
            else qtyping.QuantGranularity.TENSORWISE
        )
        try:
            q = quantizer.Quantizer(content)
            # = recipe.static_wi8_ai8(), with the weight granularity of the options
            q.add_static_config(
                regex=".*",
                operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
                activation_num_bits=8,
                weight_num_bits=8,
                weight_granularity=granularity,
            )
            for io in (qtyping.TFLOperationName.INPUT, qtyping.TFLOperationName.OUTPUT):
                q.update_quantization_recipe(
                    regex=".*", operation_name=io, algorithm_key=AlgorithmName.NO_QUANTIZE
                )  # float32 inputs and outputs: QUANTIZE/DEQUANTIZE at the boundary
            with _Quiet(capture_stdio=True):
                ranges = _calibrate_min_max(q, data)
                result = q.quantize(ranges, enable_progress_bar=False, enable_progress_report=False)
            quantized = _compact_names(bytes(result.quantized_model))
        except Exception as exc:
            raise QuantizationError(
                f"{rel}: int8 quantization with ai-edge-quantizer failed: {type(exc).__name__}: "
                f"{_first_line(exc)}. Use --keep-fp32 {graph.name}, --format onnx, or --precision fp16"
            ) from exc
        lowest = int(converted.batch.get("min") or 1)
        dynamic_checks = sorted({max(b, lowest) for b in DYNAMIC_CHECK_BATCHES})
        runs = [(sig, b) for sig, size in sizes.items() for b in ((size,) if size else dynamic_checks)]
        problem = _check_runs(quantized, graph, keys, runs, None)
        if problem:
            raise QuantizationError(
                f"{rel} after int8 quantization does not run: {problem}. Use --keep-fp32 {graph.name}, "
                "--format onnx, or --precision fp16"
            )
        (folder / rel).write_bytes(quantized)
        details = {
            **converted.details,
            "precision": "int8",
            "weights": "int8 (symmetric, " + ("per channel)" if options.per_channel else "per tensor)"),
            "compute": "int8 activations (asymmetric, per tensor); float32 inputs and outputs",
            "quantization": {
                "quantizer": "ai-edge-quantizer",
                "version": _package_version("ai-edge-quantizer"),
                "recipe": "static_wi8_ai8 (INPUT/OUTPUT not quantized)",
                "method": "minmax",
                "per_channel": options.per_channel,
                "activation_type": "int8 (asymmetric)",
                "weight_type": "int8 (symmetric)",
                "calibration_rows": int(sum(_rows(feed) for feed in calibration)),
                "signatures": {sig: len(batches) for sig, batches in data.items()},
            },
        }
        return Converted(files=list(converted.files), batch=dict(converted.batch), details=details)

    def _load_runner(self, folder: Path, converted: Converted, graph: GraphSpec) -> Runner:
        # The runtime's LiteRT backend splits/pads any batch onto fixed-size signatures.
        return self._runtime_runner(folder, converted, graph)

    def _inspect(self, folder: Path, converted: Converted, graph: GraphSpec) -> dict[str, Any]:
        from edgefuse.errors import BackendUnavailableError

        reason = missing_package("ai_edge_litert", "litert", "inspecting a TFLite file")
        if reason:
            raise BackendUnavailableError(reason)
        from ai_edge_litert.interpreter import Interpreter

        rel = converted.files[0]
        try:
            interpreter = Interpreter(model_path=str(folder / rel))
        except Exception as exc:
            raise ExportValidationError(
                f"{rel} does not load in ai-edge-litert: {_first_line(exc)}"
            ) from None
        keys = converted.details.get("signature_keys") or _identity_keys(graph)
        found = interpreter.get_signature_list()
        if converted.batch.get("dynamic"):
            expected = {converted.batch.get("signature", DYNAMIC_SIGNATURE): -1}
        else:
            expected = {name: int(size) for size, name in converted.batch["signatures"].items()}
        if set(found) != set(expected):
            raise ExportValidationError(f"{rel}: signatures {sorted(found)}; expected {sorted(expected)}")
        report: dict[str, Any] = {"signatures": {}}
        for signature, size in expected.items():
            runner = interpreter.get_signature_runner(signature)
            _check_io(rel, signature, size, runner.get_input_details(), graph.inputs, keys["inputs"], True)
            _check_io(
                rel, signature, size, runner.get_output_details(), graph.outputs, keys["outputs"], False
            )
            report["signatures"][signature] = {"batch": size, **found[signature]}
        tensors = interpreter.get_tensor_details()
        fp16 = sum(1 for t in tensors if t["dtype"] == np.float16)
        precision = converted.details.get("precision", "fp32")
        if precision == "fp16" and fp16 == 0:
            raise ExportValidationError(
                f"{rel}: precision fp16 was asked but the file holds no float16 weights"
            )
        if precision == "fp32" and fp16:
            raise ExportValidationError(
                f"{rel}: precision fp32 was asked but the file holds {fp16} float16 tensors"
            )
        if precision == "int8":
            int8 = sum(1 for t in tensors if t["dtype"] == np.int8)
            if not int8:
                raise ExportValidationError(
                    f"{rel}: precision int8 was asked but the file holds no int8 tensors"
                )
            report["int8_tensors"] = int8
        report["float16_tensors"] = fp16
        ops_details = getattr(interpreter, "_get_ops_details", None)  # not public API: best effort
        if ops_details is not None:
            with contextlib.suppress(Exception):
                report["ops"] = sorted({op["op_name"] for op in ops_details()})
        return report


def _identity_keys(graph: GraphSpec) -> dict[str, dict[str, str]]:
    return {
        "inputs": {s.name: s.name for s in graph.inputs},
        "outputs": {o.name: o.name for o in graph.outputs},
    }


def _kwargs(graph: GraphSpec, keys: dict[str, dict[str, str]], batch: int) -> dict[str, Any]:
    return {keys["inputs"][s.name]: x for s, x in zip(graph.inputs, graph.example(batch), strict=True)}


def _check_io(
    rel: str,
    signature: str,
    size: int,
    details: Mapping[str, Mapping[str, Any]],
    specs: Sequence[Any],
    keys: Mapping[str, str],
    is_input: bool,
) -> None:
    """Names, shapes (batch -1 for dynamic inputs, ``size`` for fixed ones) and dtypes of one side."""
    side = "input" if is_input else "output"
    unknown = [s.name for s in specs if s.name not in keys]
    if unknown:
        raise ExportValidationError(
            f"{rel} signature {signature!r}: {side}s {unknown} of the graph spec are not in the file "
            f"(its {side}s: {sorted(details)})"
        )
    want = {keys[s.name] for s in specs}
    if set(details) != want:
        raise ExportValidationError(
            f"{rel} signature {signature!r}: {side}s {sorted(details)}; expected {sorted(want)}"
        )
    for spec in specs:
        d = details[keys[spec.name]]
        shape = [int(v) for v in d["shape_signature"]]
        dtype = np.dtype(d["dtype"])
        batch_ok = shape[:1] == [size] or (not is_input and size == -1)  # outputs carry the example batch
        if not batch_ok or shape[1:] != list(spec.shape) or dtype != np.dtype(_TFLITE_DTYPES[spec.dtype]):
            want_batch = "batch" if size == -1 else str(size)
            raise ExportValidationError(
                f"{rel} signature {signature!r}: {side} {spec.name!r} is {shape} {dtype}; expected "
                f"[{want_batch}, {', '.join(map(str, spec.shape))}] {np.dtype(_TFLITE_DTYPES[spec.dtype])}"
            )


def _rows(feed: Mapping[str, np.ndarray]) -> int:
    return int(np.asarray(next(iter(feed.values()))).shape[0])


def _package_version(name: str) -> str | None:
    import importlib.metadata

    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _signature_batches(
    graph: GraphSpec,
    keys: Mapping[str, Mapping[str, str]],
    details: Mapping[str, Mapping[str, Any]],
    calibration: Sequence[Mapping[str, np.ndarray]],
    size: int | None,
) -> list[dict[str, np.ndarray]]:
    """Calibration batches of one signature, keyed by its input keys and cast to its input dtypes.

    A dynamic signature (``size`` None) takes the batches as given; a fixed-batch one gets every row in
    chunks of ``size``, the last chunk completed with rows from the start (no made-up values).
    """
    names = [s.name for s in graph.inputs]
    for index, feed in enumerate(calibration):
        missing = [n for n in names if n not in feed]
        if missing:
            raise QuantizationError(
                f"{graph.name}: calibration batch {index} lacks inputs {missing} (it has {sorted(feed)})"
            )

    def cast(name: str, arr: np.ndarray) -> np.ndarray:
        key = keys["inputs"][name]
        return np.ascontiguousarray(arr, dtype=details[key]["dtype"])

    if size is None:
        return [{keys["inputs"][n]: cast(n, feed[n]) for n in names} for feed in calibration]
    stacked = {n: np.concatenate([np.asarray(feed[n]) for feed in calibration]) for n in names}
    total = stacked[names[0]].shape[0]
    chunks = max(1, -(-total // size))
    index = np.arange(chunks * size) % total
    return [
        {keys["inputs"][n]: cast(n, stacked[n][index[i * size : (i + 1) * size]]) for n in names}
        for i in range(chunks)
    ]


def _fp16_weights(content: bytes, name: str) -> bytes:
    """Cast every float weight of a converted flatbuffer to float16 (weight-only, float compute)."""
    from ai_edge_quantizer import qtyping, quantizer
    from ai_edge_quantizer.algorithm_manager import AlgorithmName

    try:
        q = quantizer.Quantizer(content)
        q.update_quantization_recipe(
            regex=".*",
            operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
            op_config=qtyping.OpQuantizationConfig(
                weight_tensor_config=qtyping.TensorQuantizationConfig(
                    num_bits=16, dtype=qtyping.TensorDataType.FLOAT
                ),
                compute_precision=qtyping.ComputePrecision.FLOAT,
                explicit_dequantize=True,
            ),
            algorithm_key=AlgorithmName.FLOAT_CASTING,
        )
        with _Quiet(capture_stdio=True):
            result = q.quantize(enable_progress_bar=False, enable_progress_report=False)
    except Exception as exc:
        raise ExportError(
            f"{name}.tflite: casting the weights to fp16 with ai-edge-quantizer failed: "
            f"{type(exc).__name__}: {_first_line(exc)}; export fp32 instead"
        ) from exc
    return bytes(result.quantized_model)
