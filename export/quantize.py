"""int8 post-training quantization: options, the ONNX quantizer (static QDQ) and SQNR.

The ONNX path (used by the ONNX exporter, and by the TensorRT exporter for its explicit-quantization
engine) is ONNX Runtime's static quantizer:

1. ``onnxruntime.quantization.quant_pre_process`` (symbolic + ONNX shape inference and ORT's basic graph
   optimisations, which fold e.g. ``MatMul + Add`` into ``Gemm`` so a layer gets one QDQ pair); when it
   raises, the raw model is quantized instead and the reason is logged (``details["preprocessed"]`` says
   which);
2. ``quantize_static`` in the QDQ format (``QuantizeLinear``/``DequantizeLinear`` around every
   quantized tensor, the format ONNX Runtime's CPU kernels and TensorRT both fuse), calibrated with a
   ``CalibrationDataReader`` over the given feeds (one feed dict per batch), weights ``QInt8``
   (symmetric; per output channel unless ``per_channel=False``) and activations:

   * ``QUInt8`` (asymmetric) by default: ONNX Runtime's recommendation for x86/x64 CPUs, where its
     u8s8 integer kernels are the fast path, and the more accurate choice after ReLUs (a non-negative
     tensor gets all 256 levels instead of 128). It runs on onnxruntime's CPU provider everywhere
     (ARM included);
   * ``QInt8`` symmetric (zero point 0) with ``symmetric_activations=True``: what TensorRT's explicit
     quantization requires (it only takes zero points of 0).

The written file is one self-contained ``.onnx`` (no external data) that passes ``onnx.checker``;
graph inputs and outputs keep their names and float dtypes (float in, float out), so the exporters'
``inspect`` and the runtime's runners work unchanged.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from edgefuse.export.errors import QuantizationError

__all__ = [
    "METHODS",
    "MIN_CALIBRATION_SAMPLES",
    "QuantOptions",
    "quantize_onnx",
    "quiet_quantizer",
    "sqnr_db",
]

logger = logging.getLogger(__name__)

#: Calibration methods (ONNX Runtime's ``CalibrationMethod`` MinMax, Percentile, Entropy).
METHODS = ("minmax", "percentile", "entropy")
#: Fewest calibration rows accepted (``--calibration-samples``).
MIN_CALIBRATION_SAMPLES = 16
#: Percentile kept by the "percentile" method (ONNX Runtime's default, per side).
PERCENTILE = 99.999
#: Histogram bins of the "entropy" method (searched for the KL-optimal threshold, 128 quantized bins).
#: ``quantize_static`` builds its entropy calibrator with 128 bins for 128 quantized bins, which makes
#: the threshold search empty (entropy = min/max); the calibrator is therefore run here with this many.
ENTROPY_BINS = 512


@dataclass(frozen=True)
class QuantOptions:
    """How int8 post-training quantization is calibrated.

    Attributes:
        method: Activation range estimation: ``"minmax"`` (the observed range), ``"percentile"``
            (clips the outer 0.001 %) or ``"entropy"`` (the KL-divergence threshold). Formats whose
            quantizer has a single method (TFLite: min/max; Core ML: weights only) record what they used.
        per_channel: One scale per output channel of each weight (else one per tensor).
        samples: Calibration rows (at least :data:`MIN_CALIBRATION_SAMPLES`).
        seed: Seed of the calibration row sampling.

    Raises:
        QuantizationError: For a method not in :data:`METHODS`, fewer than 16 samples or a negative seed.
    """

    method: str = "minmax"
    per_channel: bool = True
    samples: int = 256
    seed: int = 0

    def __post_init__(self) -> None:
        from edgefuse.errors import did_you_mean

        if self.method not in METHODS:
            raise QuantizationError(
                f"calibration method {self.method!r} is not one of {list(METHODS)}"
                f"{did_you_mean(str(self.method), METHODS)}"
            )
        if not isinstance(self.per_channel, bool):
            raise QuantizationError(f"per_channel must be True or False; got {self.per_channel!r}")
        if (
            isinstance(self.samples, bool)
            or not isinstance(self.samples, int)
            or self.samples < MIN_CALIBRATION_SAMPLES
        ):
            raise QuantizationError(
                f"--calibration-samples must be an integer >= {MIN_CALIBRATION_SAMPLES}; got {self.samples!r}"
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise QuantizationError(f"the calibration seed must be an integer >= 0; got {self.seed!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON form for the manifest."""
        return {
            "method": self.method,
            "per_channel": self.per_channel,
            "samples": self.samples,
            "seed": self.seed,
        }


def sqnr_db(reference: np.ndarray, quantized: np.ndarray) -> float:
    """Signal-to-quantization-noise ratio in dB: ``10 log10(sum ref² / sum (ref - q)²)``.

    Args:
        reference: The float (fp32) outputs.
        quantized: The quantized model's outputs for the same inputs (same shape).

    Returns:
        The ratio in dB; ``inf`` when both are identical, ``-inf`` when the reference is all zeros and
        the quantized outputs are not.

    Raises:
        QuantizationError: When the shapes differ, an array is empty, or either holds NaN or inf.
    """
    ref = np.asarray(reference, dtype=np.float64)
    q = np.asarray(quantized, dtype=np.float64)
    if ref.shape != q.shape:
        raise QuantizationError(f"SQNR needs arrays of one shape; got {ref.shape} and {q.shape}")
    if ref.size == 0:
        raise QuantizationError("SQNR of empty arrays is undefined; give at least one output row")
    for label, arr in (("reference", ref), ("quantized", q)):
        bad = int(np.count_nonzero(~np.isfinite(arr)))
        if bad:
            raise QuantizationError(
                f"SQNR: the {label} outputs hold {bad} NaN/inf values of {arr.size}; the graph is not "
                "numerically sound on these inputs (check the inputs, or keep this graph in fp32)"
            )
    noise = float(np.sum((ref - q) ** 2))
    if noise == 0.0:
        return math.inf
    signal = float(np.sum(ref**2))
    if signal == 0.0:
        return -math.inf
    return 10.0 * math.log10(signal / noise)


# --------------------------------------------------------------------------------------- quiet


class _ToList(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class _Swallow(logging.Filter):
    """A root-logger filter that keeps third-party root records (``logging.warning(...)``) for DEBUG."""

    def __init__(self, sink: _ToList) -> None:
        super().__init__()
        self.sink = sink

    def filter(self, record: logging.LogRecord) -> bool:
        self.sink.records.append(record)
        return False


@contextlib.contextmanager
def quiet_quantizer(*names: str) -> Iterator[list[logging.LogRecord]]:
    """Keep a quantizer's chatter off the console for one call; yields the log records it emitted.

    ``print``/tqdm output is captured, warnings are ignored, records on the root logger (modules that
    call ``logging.warning`` directly, which would otherwise install a stderr handler through
    ``logging.basicConfig``) and on the named loggers (default ``"onnxruntime"``) are collected instead
    of propagated. Everything is re-logged at DEBUG under this module on exit, and all state is
    restored (no global side effect).
    """
    sink = _ToList()
    root = logging.getLogger()
    null = logging.NullHandler() if not root.handlers else None
    swallow = _Swallow(sink)
    named = [logging.getLogger(n) for n in (names or ("onnxruntime",))]
    saved = [(lg, lg.propagate) for lg in named]
    buffer = io.StringIO()
    with contextlib.ExitStack() as stack:
        stack.enter_context(warnings.catch_warnings())
        warnings.simplefilter("ignore")
        stack.enter_context(contextlib.redirect_stdout(buffer))
        stack.enter_context(contextlib.redirect_stderr(buffer))
        if null is not None:
            root.addHandler(null)
        root.addFilter(swallow)
        for lg in named:
            lg.addHandler(sink)
            lg.propagate = False
        try:
            yield sink.records
        finally:
            for lg, propagate in saved:
                lg.removeHandler(sink)
                lg.propagate = propagate
            root.removeFilter(swallow)
            if null is not None:
                root.removeHandler(null)
    for record in sink.records:
        logger.debug("quantizer log (%s %s): %s", record.name, record.levelname, record.getMessage())
    if buffer.getvalue().strip():
        logger.debug("quantizer output:\n%s", buffer.getvalue().strip()[-4000:])


# --------------------------------------------------------------------------------------- ONNX


def _calibration_feeds(
    model: Any, calibration: Sequence[Mapping[str, np.ndarray]], name: str
) -> list[dict[str, np.ndarray]]:
    """The feeds cast to the model's input dtypes, after checking names, ranks and finiteness."""
    import onnx

    if not calibration:
        raise QuantizationError(
            f"{name}: no calibration batches were given; int8 needs calibration data (--calibration)"
        )
    inputs = {i.name: i.type.tensor_type for i in model.graph.input}
    feeds = []
    for index, feed in enumerate(calibration):
        missing = sorted(set(inputs) - set(feed))
        if missing:
            raise QuantizationError(
                f"{name}: calibration batch {index} lacks inputs {missing} (it has {sorted(feed)}); every "
                "batch must feed every graph input"
            )
        row: dict[str, np.ndarray] = {}
        for key, tensor_type in inputs.items():
            dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor_type.elem_type)
            arr = np.ascontiguousarray(feed[key], dtype=dtype)
            if arr.ndim != len(tensor_type.shape.dim):
                raise QuantizationError(
                    f"{name}: calibration input {key!r} of batch {index} has shape {arr.shape}; the graph "
                    f"takes rank {len(tensor_type.shape.dim)}"
                )
            if arr.dtype.kind == "f" and not np.isfinite(arr).all():
                raise QuantizationError(
                    f"{name}: calibration input {key!r} of batch {index} holds NaN/inf; calibrate on "
                    "finite data (absent modalities must be zero-filled, not NaN)"
                )
            row[key] = arr
        feeds.append(row)
    return feeds


def _io_signature(model: Any) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    inputs = [(i.name, i.type.tensor_type.elem_type) for i in model.graph.input]
    outputs = [(o.name, o.type.tensor_type.elem_type) for o in model.graph.output]
    return inputs, outputs


def quantize_onnx(
    src: Path,
    dst: Path,
    calibration: Sequence[Mapping[str, np.ndarray]],
    options: QuantOptions,
    *,
    symmetric_activations: bool = False,
) -> dict[str, Any]:
    """Quantize the fp32 ONNX ``src`` to a static int8 QDQ ONNX ``dst`` (``dst`` may be ``src``).

    See the module docstring for the recipe. Activations are ``QUInt8`` (asymmetric, ONNX Runtime's CPU
    recommendation) unless ``symmetric_activations`` (``QInt8`` with zero point 0, for TensorRT);
    weights are symmetric ``QInt8``, per channel when ``options.per_channel``.

    Args:
        src: The fp32 ONNX file.
        dst: Where the int8 file is written (one self-contained file).
        calibration: Feed dicts keyed by the graph's input names, one per batch (cast to the inputs'
            dtypes; float inputs must be finite).
        options: Calibration method and weight granularity.
        symmetric_activations: Quantize activations symmetrically to ``QInt8`` (TensorRT).

    Returns:
        Details for the manifest: quantizer, version, format, method, per_channel, activation_type,
        weight_type, calibration_rows (sum of the batches' rows), calibration_batches, preprocessed
        (and preprocess_error where pre-processing failed).

    Raises:
        QuantizationError: No or malformed calibration data, a quantizer failure, a result that fails
            ``onnx.checker`` or whose inputs/outputs changed.
    """
    import onnx
    import onnxruntime
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_static,
    )

    src, dst = Path(src), Path(dst)
    name = src.name
    original = onnx.load(str(src))
    feeds = _calibration_feeds(original, calibration, name)
    io_before = _io_signature(original)

    class _Reader(CalibrationDataReader):
        """One feed dict per ``get_next``; restartable (entropy/percentile calibrators iterate once)."""

        def __init__(self, batches: list[dict[str, np.ndarray]]) -> None:
            self.batches = batches
            self.start, self.end = 0, len(batches)
            self.position = 0

        def get_next(self) -> dict[str, np.ndarray] | None:
            if self.position >= self.end:
                return None
            self.position += 1
            return self.batches[self.position - 1]

        def __len__(self) -> int:
            return len(self.batches)

        def set_range(self, start_index: int, end_index: int) -> None:
            self.start, self.end = start_index, min(end_index, len(self.batches))
            self.position = start_index

    method = {
        "minmax": CalibrationMethod.MinMax,
        "percentile": CalibrationMethod.Percentile,
        "entropy": CalibrationMethod.Entropy,
    }[options.method]
    activation = QuantType.QInt8 if symmetric_activations else QuantType.QUInt8
    extra: dict[str, Any] = {"ActivationSymmetric": symmetric_activations, "WeightSymmetric": True}
    if options.method == "percentile":
        extra["CalibPercentile"] = PERCENTILE
    details: dict[str, Any] = {
        "quantizer": "onnxruntime.quantization",
        "version": onnxruntime.__version__,
        "format": "QDQ",
        "method": options.method,
        "per_channel": options.per_channel,
        "activation_type": "int8 (symmetric)" if symmetric_activations else "uint8 (asymmetric)",
        "weight_type": "int8 (symmetric)",
        "calibration_rows": int(sum(next(iter(f.values())).shape[0] for f in feeds)),
        "calibration_batches": len(feeds),
    }
    with tempfile.TemporaryDirectory(prefix="edgefuse-quant-") as tmp:
        pre = Path(tmp) / "preprocessed.onnx"
        model_input = Path(tmp) / "fp32.onnx"
        onnx.save(original, str(model_input))
        try:
            with quiet_quantizer() as records:
                quant_pre_process(str(model_input), str(pre), skip_symbolic_shape=False)
            failed = [r.getMessage().splitlines()[0] for r in records if r.levelno >= logging.ERROR]
            details["preprocessed"] = True
            if failed:  # quant_pre_process logs an optimiser failure and goes on with shape inference
                details["preprocess_note"] = failed[0][:300]
            model_input = pre
        except Exception as exc:  # any pre-processing failure: quantize the raw model
            details["preprocessed"] = False
            details["preprocess_error"] = f"{type(exc).__name__}: {_first_line(exc)}"
            logger.warning(
                "%s: quant_pre_process failed (%s); quantizing the model without pre-processing",
                name,
                details["preprocess_error"],
            )
        out = Path(tmp) / "int8.onnx"
        try:
            with quiet_quantizer():
                reader: _Reader | None = _Reader(feeds)
                cache = None
                if options.method == "entropy":
                    cache = Path(tmp) / "ranges.json"
                    _entropy_ranges(model_input, reader, cache, Path(tmp) / "augmented.onnx")
                    reader = None
                quantize_static(
                    str(model_input),
                    str(out),
                    reader,
                    quant_format=QuantFormat.QDQ,
                    per_channel=options.per_channel,
                    reduce_range=False,
                    activation_type=activation,
                    weight_type=QuantType.QInt8,
                    calibrate_method=method,
                    use_external_data_format=False,
                    extra_options=extra,
                    calibration_cache_path=cache,
                )
            quantized = onnx.load(str(out))  # folds any external data back in
        except Exception as exc:
            raise QuantizationError(
                f"{name}: onnxruntime.quantization ({options.method}, per_channel={options.per_channel}) "
                f"failed: {type(exc).__name__}: {_first_line(exc)}. Try another --calibration-method, "
                "--keep-fp32 for this graph, or precision fp32/fp16"
            ) from exc
    _strip_debug_info(quantized)
    _compact_names(quantized)
    try:
        onnx.checker.check_model(quantized, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise QuantizationError(
            f"{name}: the int8 model fails onnx.checker: {_first_line(exc)}; keep this graph in fp32"
        ) from None
    if _io_signature(quantized) != io_before:
        raise QuantizationError(
            f"{name}: quantization changed the graph inputs/outputs from {io_before} to "
            f"{_io_signature(quantized)}; keep this graph in fp32"
        )
    ops = {n.op_type for n in quantized.graph.node}
    if "QuantizeLinear" not in ops and "DequantizeLinear" not in ops:
        raise QuantizationError(
            f"{name}: onnxruntime.quantization quantized no operator (no QuantizeLinear/DequantizeLinear); "
            "the graph has no quantizable op, keep it in fp32"
        )
    dst.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(quantized, str(dst), save_as_external_data=False)
    details["stripped"] = "per-node torch debug metadata (stack traces, module paths) and value_info"
    details["qdq_nodes"] = sum(1 for n in quantized.graph.node if n.op_type.endswith("QuantizeLinear"))
    return details


def _strip_debug_info(model: Any) -> None:
    """Drop per-node torch debug metadata and intermediate ``value_info`` from a quantized model.

    The metadata (stack traces, module paths, FX names) describes the torch source, not the int8 graph,
    and is most of a small file; ``value_info`` is re-inferred by every consumer.
    """
    for node in model.graph.node:
        keep = [
            p for p in node.metadata_props if not (p.key.startswith("pkg.torch.") or p.key == "namespace")
        ]
        del node.metadata_props[:]
        node.metadata_props.extend(keep)
        node.doc_string = ""
    del model.graph.value_info[:]


def _compact_names(model: Any) -> None:
    """Rename every intermediate value, initializer and node to a short name (graph inputs/outputs keep theirs).

    The quantizer's names (``/features/features.0/Conv_output_0_QuantizeLinear_Output``...) are a tenth
    of a small int8 file; nothing reads them but a human with Netron, and the mapping is deterministic
    (``v<i>`` in order of first appearance), so the same model gives the same file.
    """
    graph = model.graph
    keep = {i.name for i in graph.input} | {o.name for o in graph.output} | {""}
    mapping: dict[str, str] = {}

    def short(name: str) -> str:
        if name in keep:
            return name
        if name not in mapping:
            mapping[name] = f"v{len(mapping)}"
        return mapping[name]

    for init in graph.initializer:
        init.name = short(init.name)
    for i, node in enumerate(graph.node):
        node.name = f"n{i}"
        node.input[:] = [short(x) for x in node.input]
        node.output[:] = [short(x) for x in node.output]


def _entropy_ranges(model: Path, reader: Any, cache: Path, augmented: Path) -> None:
    """KL-divergence (entropy) activation ranges over :data:`ENTROPY_BINS` bins, saved as a range cache.

    The calibrator is the one ``quantize_static`` would create for ``CalibrationMethod.Entropy`` (same
    op types), with a histogram fine enough for the threshold search to mean something.
    """
    from onnxruntime.quantization import CalibrationMethod, create_calibrator, save_tensors_data
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    calibrator = create_calibrator(
        model,
        sorted(set(QLinearOpsRegistry) | set(QDQRegistry)),
        augmented_model_path=str(augmented),
        calibrate_method=CalibrationMethod.Entropy,
        use_external_data_format=False,
        extra_options={"num_bins": ENTROPY_BINS, "num_quantized_bins": 128},
    )
    calibrator.collect_data(reader)
    save_tensors_data(calibrator.compute_data(), cache)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else repr(exc)
