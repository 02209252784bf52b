"""ONNX: the dynamo exporter (needs onnxscript) with a dynamic batch; the legacy exporter as fallback.

Every file passes ``onnx.checker`` (full check); graph inputs that no node consumes are removed (the
dynamo exporter keeps them and ONNX Runtime would then demand them); the opset and the exporter used
are recorded. fp32 only: fp16 engines are built from this fp32 ONNX by TensorRT.

int8: :meth:`OnnxExporter.quantize` replaces the fp32 file in place by a static QDQ int8 one
(:func:`edgefuse.export.quantize.quantize_onnx`: onnxruntime.quantization, uint8 activations, int8
weights per channel, float inputs and outputs), keeping its file name.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgefuse.export.errors import ExportError, ExportValidationError
from edgefuse.export.formats.base import BatchPlan, Converted, FormatExporter, Runner, missing_package
from edgefuse.export.graphs import GraphSpec

if TYPE_CHECKING:
    import numpy as np
    from edgefuse.export.quantize import QuantOptions

__all__ = ["OPSET", "OnnxExporter", "export_onnx"]

logger = logging.getLogger(__name__)

OPSET = 18
_ONNX_DTYPES = {"float32": 1, "bool": 9, "float16": 10, "int64": 7}


class _QuietTorchOnnx:
    """Silence torch.onnx's informational warnings (e.g. 'torchvision is not installed') for one export."""

    def __enter__(self) -> None:
        self._logger = logging.getLogger("torch.onnx")
        self._level = self._logger.level
        self._logger.setLevel(logging.ERROR)

    def __exit__(self, *exc: object) -> None:
        self._logger.setLevel(self._level)


def export_onnx(graph: GraphSpec, path: Path, batch: BatchPlan, exporter: str = "dynamo") -> str:
    """Export ``graph`` to ``path`` with a dynamic batch; returns the exporter that succeeded.

    ``exporter="dynamo"`` tries torch.export + onnxscript first and falls back to the legacy
    TorchScript exporter when it fails (the reason is logged); ``"legacy"`` uses the legacy one only.
    """
    import torch

    names_in = [i.name for i in graph.inputs]
    names_out = [o.name for o in graph.outputs]
    example = graph.example(max(2, batch.min_batch))
    common = {"input_names": names_in, "output_names": names_out, "opset_version": OPSET}
    if exporter == "dynamo":
        try:
            dim = torch.export.Dim("batch", min=batch.min_batch, max=max(batch.max_batch, 2))
            per_input = tuple({0: dim} for _ in graph.inputs)
            # A *args forward (the monolithic graph) nests its inputs one level deeper.
            shapes = (per_input,) if graph.role == "monolithic" else per_input
            with warnings.catch_warnings(), _QuietTorchOnnx():
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    graph.module,
                    example,
                    str(path),
                    dynamo=True,
                    dynamic_shapes=shapes,
                    verbose=False,
                    external_data=False,  # one self-contained file per graph (hashed in the manifest)
                    **common,
                )
            return "dynamo"
        except Exception as exc:
            logger.warning("dynamo ONNX export of %s failed (%s); using the legacy exporter", graph.name, exc)
    axes = {n: {0: "batch"} for n in [*names_in, *names_out]}
    with warnings.catch_warnings(), _QuietTorchOnnx():
        warnings.simplefilter("ignore")
        torch.onnx.export(graph.module, example, str(path), dynamo=False, dynamic_axes=axes, **common)
    return "legacy"


def _remove_unused_inputs(path: Path) -> list[str]:
    """Drop graph inputs no node consumes; the file is saved self-contained (no external data)."""
    import onnx

    model = onnx.load(str(path))
    sidecar = path.with_name(path.name + ".data")
    if sidecar.exists():  # an exporter that wrote external data anyway: fold it back into one file
        onnx.save(model, str(path), save_as_external_data=False)
        sidecar.unlink()
    used = {name for node in model.graph.node for name in node.input}
    used |= {o.name for o in model.graph.output}
    unused = [i for i in model.graph.input if i.name not in used]
    for i in unused:
        model.graph.input.remove(i)
    if unused:
        onnx.save(model, str(path))
    return [i.name for i in unused]


class OnnxExporter(FormatExporter):
    """ONNX files run by ONNX Runtime here (and consumed by TensorRT elsewhere)."""

    name = "onnx"
    backend = "onnxruntime"

    def __init__(self, exporter: str = "dynamo") -> None:
        if exporter not in ("dynamo", "legacy"):
            raise ExportError(f"ONNX exporter {exporter!r} is not one of ['dynamo', 'legacy']")
        self.exporter = exporter

    def _unavailable_reason(self) -> str | None:
        return missing_package("onnx", "export", "ONNX export") or (
            missing_package("onnxscript", "export", "the dynamo ONNX exporter")
            if self.exporter == "dynamo"
            else None
        )

    def _runner_unavailable_reason(self) -> str | None:
        return missing_package("onnxruntime", "onnxruntime", "running ONNX")

    def _convert(self, graph: GraphSpec, folder: Path, precision: str, batch: BatchPlan) -> Converted:
        import onnx

        if precision != "fp32":
            raise ExportError(
                f"ONNX export writes fp32 graphs; got precision {precision!r}. Use --precision fp32 "
                "(TensorRT builds its fp16 engine from the fp32 ONNX)"
            )
        rel = f"{graph.name}.onnx"
        used = export_onnx(graph, folder / rel, batch, self.exporter)
        removed = _remove_unused_inputs(folder / rel)
        try:
            onnx.checker.check_model(onnx.load(str(folder / rel)), full_check=True)
        except onnx.checker.ValidationError as exc:
            raise ExportValidationError(f"{rel} fails onnx.checker: {exc}") from None
        return Converted(
            files=[rel],
            batch={"dynamic": True, "min": batch.min_batch, "max": None},
            details={"opset": OPSET, "exporter": used, "removed_unused_inputs": removed},
        )

    def _int8_unavailable_reason(self) -> str | None:
        return missing_package("onnx", "export", "int8 ONNX") or missing_package(
            "onnxruntime", "onnxruntime", "int8 ONNX (onnxruntime.quantization calibrates and quantizes)"
        )

    def _quantize(
        self,
        folder: Path,
        converted: Converted,
        graph: GraphSpec,
        calibration: Sequence[Mapping[str, np.ndarray]],
        options: QuantOptions,
    ) -> Converted:
        """Static QDQ int8 in place of the fp32 file (same name); see :func:`quantize_onnx`."""
        from edgefuse.export.quantize import quantize_onnx

        rel = converted.files[0]
        details = quantize_onnx(folder / rel, folder / rel, calibration, options)
        return Converted(
            files=list(converted.files),
            batch=dict(converted.batch),
            details={**converted.details, "precision": "int8", "quantization": details},
        )

    def _load_runner(self, folder: Path, converted: Converted, graph: GraphSpec) -> Runner:
        return self._runtime_runner(folder, converted, graph)

    def _inspect(self, folder: Path, converted: Converted, graph: GraphSpec) -> dict[str, Any]:
        import onnx

        model = onnx.load(str(folder / converted.files[0]))
        found = {i.name: i for i in model.graph.input}
        for spec in graph.inputs:
            if spec.name not in found:
                raise ExportValidationError(f"{converted.files[0]}: input {spec.name!r} is missing")
            t = found[spec.name].type.tensor_type
            dims = [d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim]
            if dims[1:] != list(spec.shape) or t.elem_type != _ONNX_DTYPES[spec.dtype]:
                raise ExportValidationError(
                    f"{converted.files[0]}: input {spec.name!r} is {dims} (type {t.elem_type}); expected "
                    f"[batch, {', '.join(map(str, spec.shape))}] {spec.dtype}"
                )
        outs = [o.name for o in model.graph.output]
        if outs != [o.name for o in graph.outputs]:
            raise ExportValidationError(
                f"{converted.files[0]}: outputs {outs}; expected {[o.name for o in graph.outputs]}"
            )
        report: dict[str, Any] = {
            "opset": max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")),
            "nodes": len(model.graph.node),
        }
        if converted.details.get("precision") == "int8":
            qdq = sum(1 for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear"))
            weights = sum(1 for t in model.graph.initializer if t.data_type == 3 and len(t.dims) >= 2)
            if not qdq or not weights:
                raise ExportValidationError(
                    f"{converted.files[0]}: precision int8 was asked but the file holds {qdq} "
                    f"QuantizeLinear/DequantizeLinear nodes and {weights} int8 weight tensors"
                )
            report.update({"qdq_nodes": qdq, "int8_weights": weights})
        return report
