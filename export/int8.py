"""int8 exports: the settings, and validation by accuracy per presence pattern (not a float tolerance).

An int8 artifact is not expected to match PyTorch to 1e-4; what matters is whether it still classifies as
well. So an int8 export is validated on a **labelled split**, for every presence pattern the device can
produce: accuracy of the fp32 PyTorch model and of the artifact (run exactly as the runtime runs it), the
drop in points, and top-1 agreement. A drop larger than ``max_drop`` points on any pattern is a
:class:`~edgefuse.export.errors.ParityError` naming the pattern. Per graph, the signal-to-quantization-noise
ratio (SQNR, dB) of its output against PyTorch is recorded, so the graph that loses accuracy can be found
and kept in float (``keep_fp32``: a mixed-precision artifact).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from edgefuse.export.errors import ExportError, ParityError

__all__ = [
    "Int8Settings",
    "accuracy_per_pattern",
    "check_drops",
    "check_formats",
    "graph_sqnr",
    "manifest_record",
    "prepare",
    "reference_inputs",
    "settings_summary",
    "validate",
]

#: Rows of the labelled split used for the per-graph SQNR (accuracy uses the whole split).
SQNR_ROWS = 256


@dataclass(frozen=True)
class Int8Settings:
    """How an int8 export is calibrated and validated.

    Attributes:
        calibration: The rows calibration is drawn from (a :class:`~edgefuse.data.base.Split`).
        validation: A labelled split for the accuracy check (``None``: the calibration split, which the
            manifest then says).
        options: The quantizer's :class:`~edgefuse.export.quantize.QuantOptions` (method, per-channel,
            samples, seed); ``None`` for the defaults.
        max_drop: Largest accuracy drop in points (0-100 scale) allowed on any presence pattern.
        keep_fp32: Graphs left in float (``head``, ``encoder_<modality>``, ``model``).
        source: Where the calibration data came from (``av-digits:train``...), for the manifest.
        calibrate_patterns: ``"every"`` (default: the head, or the monolithic graph, is calibrated on
            every presence pattern the device can produce, in equal shares) or ``"all-present"`` (only
            rows with every modality present: what a calibration unaware of missing modalities does; for
            comparisons).
    """

    calibration: Any
    validation: Any = None
    options: Any = None
    max_drop: float = 1.0
    keep_fp32: tuple[str, ...] = field(default_factory=tuple)
    source: str = ""
    calibrate_patterns: str = "every"

    @classmethod
    def from_dataset(cls, data: Any, split: str = "train", **kwargs: Any) -> Int8Settings:
        """Calibration on ``data``'s ``split``, validation on its ``test`` split, source ``name:split``.

        Other fields (``options``, ``max_drop``, ``keep_fp32``...) are passed through ``kwargs``.
        """
        return cls(
            calibration=data.split(split),
            validation=data.split("test"),
            source=f"{data.name}:{split}",
            **kwargs,
        )

    @property
    def labelled(self) -> Any:
        """The labelled split int8 is validated on: ``validation``, else the calibration split."""
        return self.validation if self.validation is not None else self.calibration

    def checked(self, graph_names: Sequence[str], modalities: Sequence[str]) -> Int8Settings:
        """Check the settings against the graphs and modalities of this export; returns them.

        Raises:
            ExportError: No calibration data, a validation split lacking an exported modality (the
                calibration split is checked by ``build_calibration``), an unknown graph in ``keep_fp32`` (naming the graphs), every graph kept in float,
                or a negative ``max_drop``.
        """
        if self.calibration is None:
            raise ExportError(
                "int8 needs calibration data: pass calibration=<a Split or dataset> (CLI: --calibration "
                "DATASET[:SPLIT], default the checkpoint's training data), or export fp32"
            )
        missing = [m for m in modalities if self.validation is not None and m not in self.validation.inputs]
        if missing:  # the calibration split is checked where its rows are drawn (build_calibration)
            raise ExportError(
                f"the validation data lacks modalit{'y' if len(missing) == 1 else 'ies'} {missing} that this "
                f"export needs (the device's modalities are {list(modalities)}; the data has "
                f"{sorted(self.validation.inputs)}); give a dataset with them (--calibration DATASET[:SPLIT])"
            )
        unknown = [g for g in self.keep_fp32 if g not in graph_names]
        if unknown:
            raise ExportError(f"--keep-fp32 {unknown}: this export's graphs are {list(graph_names)}")
        if set(graph_names) <= set(self.keep_fp32):
            raise ExportError(
                f"--keep-fp32 keeps every graph ({list(graph_names)}) in float: nothing is left to quantize; "
                "export --precision fp32 instead"
            )
        if self.calibrate_patterns not in ("every", "all-present"):
            raise ExportError(
                f"calibrate_patterns {self.calibrate_patterns!r} is not one of ['every', 'all-present']"
            )
        if not (self.max_drop >= 0):
            raise ExportError(f"--max-int8-drop must be >= 0 points; got {self.max_drop}")
        return self


def split_of(data: Any, default: str = "train") -> Any:
    """A :class:`Split` from a Split or a dataset (its ``default`` split); ``None`` stays ``None``."""
    if data is None or hasattr(data, "labels"):
        return data
    return data.split(default)


def _batches(split: Any, pattern: Sequence[str], batch: int) -> Any:
    for start in range(0, len(split), batch):
        yield {m: np.ascontiguousarray(split.inputs[m][start : start + batch]) for m in pattern}


def accuracy_per_pattern(
    run: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]],
    model: Any,
    split: Any,
    patterns: Sequence[tuple[str, ...]],
    batch: int = 256,
) -> list[dict[str, Any]]:
    """Accuracy of PyTorch (fp32) and of the artifact per presence pattern on a labelled split.

    Returns:
        One dict per pattern: ``pattern`` (``audio+image``), ``rows``, ``fp32_accuracy``,
        ``int8_accuracy``, ``drop_points`` (fp32 − int8, in points), ``top1_agreement`` and the logits'
        ``sqnr_db``.

    Raises:
        ParityError: The artifact returned logits that are not finite or of the wrong shape (naming the
            pattern).
    """
    import torch
    from edgefuse.export.quantize import sqnr_db

    labels = np.asarray(split.labels)
    rows = []
    for pattern in patterns:
        label = "+".join(pattern)
        ref_all, got_all = [], []
        for inputs in _batches(split, pattern, batch):
            with torch.no_grad():
                ref = model({k: torch.from_numpy(v) for k, v in inputs.items()}).numpy()
            got = np.asarray(run(inputs)["logits"], dtype=np.float32)
            if got.shape != ref.shape or not np.isfinite(got).all():
                raise ParityError(
                    f"int8 artifact, pattern {label}: logits of shape {got.shape} "
                    f"({'finite' if np.isfinite(got).all() else 'not finite'}); expected {ref.shape}, finite"
                )
            ref_all.append(ref)
            got_all.append(got)
        ref, got = np.concatenate(ref_all), np.concatenate(got_all)
        fp32 = float((ref.argmax(1) == labels).mean())
        int8 = float((got.argmax(1) == labels).mean())
        rows.append(
            {
                "pattern": label,
                "rows": len(labels),
                "fp32_accuracy": fp32,
                "int8_accuracy": int8,
                "drop_points": round(100.0 * (fp32 - int8), 4),
                "top1_agreement": float((ref.argmax(1) == got.argmax(1)).mean()),
                "sqnr_db": _finite_or_none(sqnr_db(ref, got)),
            }
        )
    return rows


def check_drops(rows: Sequence[Mapping[str, Any]], max_drop: float, what: str) -> None:
    """Raise :class:`ParityError` naming every pattern whose accuracy dropped more than ``max_drop`` points.

    Raises:
        ParityError: With the failing patterns in the message and in ``failures``.
    """
    failed = [r for r in rows if r["drop_points"] > max_drop]
    if failed:
        lines = "; ".join(
            f"pattern {r['pattern']}: {100 * r['fp32_accuracy']:.1f}% fp32 -> {100 * r['int8_accuracy']:.1f}% int8 "
            f"(-{r['drop_points']:.1f} points)"
            for r in failed
        )
        raise ParityError(
            f"{what}: int8 accuracy drops more than {max_drop:g} point(s) on {len(failed)} presence pattern(s): "
            f"{lines}. Keep the sensitive graph in float (--keep-fp32 head or encoder_<modality>; the per-graph "
            "SQNR in the report shows which one loses most), calibrate on more rows (--calibration-samples) or "
            "with another method (--calibration-method percentile|entropy), or allow it with --max-int8-drop",
            [dict(r) for r in failed],
        )


def graph_sqnr(
    runners: Mapping[str, Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]],
    model: Any,
    split: Any,
    exported: Sequence[str],
    patterns: Sequence[tuple[str, ...]],
    fusion: Mapping[str, Any],
    monolithic: bool,
) -> dict[str, float | None]:
    """SQNR (dB) of each graph's output against PyTorch on the first rows of ``split``.

    Encoders are fed their modality's rows; the head is fed the fused embeddings PyTorch's encoders (and
    reliability gates, for a gated model) give for every presence pattern (so it is measured on its own,
    not through int8 encoders); the monolithic graph on every pattern. ``None`` where the output equals
    PyTorch exactly (infinite SQNR).
    """
    import torch
    from edgefuse import _fusion
    from edgefuse.export.quantize import sqnr_db
    from edgefuse.runtime.gating import RowWeights

    n = min(SQNR_ROWS, len(split))
    rows = {m: np.ascontiguousarray(split.inputs[m][:n], dtype=np.float32) for m in exported}
    out: dict[str, float | None] = {}
    with torch.no_grad():
        if monolithic:
            ref_all, got_all = [], []
            for pattern in patterns:
                feed = {m: rows[m] if m in pattern else np.zeros_like(rows[m]) for m in exported}
                feed["presence"] = np.array([[m in pattern for m in exported]] * n, dtype=bool)
                ref_all.append(model({m: torch.from_numpy(rows[m]) for m in pattern}).numpy())
                got_all.append(runners["model"](feed)["logits"])
            out["model"] = _finite_or_none(sqnr_db(np.concatenate(ref_all), np.concatenate(got_all)))
            return out
        emb = {m: model.encoders[m](torch.from_numpy(rows[m])).numpy() for m in exported}
        for m in exported:
            got = runners[f"encoder_{m}"]({m: rows[m]})["embedding"]
            out[f"encoder_{m}"] = _finite_or_none(sqnr_db(emb[m], np.asarray(got)))
        gate = RowWeights.from_manifest(fusion, fusion["weights"], exported)
        rel = {  # PyTorch's gates on PyTorch's embeddings, so the head is still measured on its own
            m: model.fusion.reliability(model.modality_names.index(m), torch.from_numpy(emb[m])).numpy()
            for m in (exported if gate is not None else ())
        }
        ref_all, got_all = [], []
        for pattern in patterns:
            parts = [np.ascontiguousarray(emb[m]) if m in pattern else None for m in exported]
            weights = fusion["weights"]
            if gate is not None:
                weights = gate.build([rel[m] if m in pattern else None for m in exported], parts, None, n)
            fused = _fusion.fuse(parts, None, weights, fusion["gamma"], fusion["beta"], fusion["eps"])
            ref_all.append(model.head(torch.from_numpy(np.asarray(fused))).numpy())
            got_all.append(runners["head"]({"fused": fused})["logits"])
        out["head"] = _finite_or_none(sqnr_db(np.concatenate(ref_all), np.concatenate(got_all)))
    return out


def _finite_or_none(value: float) -> float | None:
    return round(float(value), 3) if np.isfinite(value) else None


# --------------------------------------------------------------------------------------------------
# The pipeline's int8 stages (called by edgefuse.export.pipeline with its per-export job)
# --------------------------------------------------------------------------------------------------


def check_formats(choices: Sequence[Any], settings: Int8Settings | None) -> None:
    """Refuse int8 for a format that cannot do it here, before any conversion.

    A format whose converter runs here but cannot quantize, or whose quantizer does not implement the
    calibration method of ``settings``, is refused (a format whose converter is missing is reported as
    unavailable later, like at any precision).

    Raises:
        ExportError: Naming the format, why int8 is not possible for it here, and the fix.
    """
    from edgefuse.export.formats import get_exporter
    from edgefuse.export.quantize import QuantOptions

    method = ((settings.options if settings is not None else None) or QuantOptions()).method

    for c in choices:
        if c.precision != "int8":
            continue
        exporter = get_exporter(c.format)
        if exporter.unavailable_reason():
            continue  # reported as unavailable, like any precision
        why = exporter.int8_unavailable_reason()
        if why:
            raise ExportError(
                f"{c.format} at int8 cannot be exported here: {why}. Export {c.format} at another precision "
                "(--precision fp32), or int8 in another format"
            )
        methods = tuple(getattr(exporter, "int8_methods", ()))
        if method not in methods:
            raise ExportError(
                f"{c.format} int8: the {method} calibration method is not implemented for {c.format} (it "
                f"supports {list(methods)}); use --calibration-method {methods[0] if methods else 'minmax'}, "
                "or export only ONNX (--format onnx) for percentile/entropy calibration"
            )


def prepare(job: Any, settings: Int8Settings | None) -> None:
    """Check the int8 settings and build the calibration data once (every int8 format shares it).

    Sets ``job.int8`` (the checked settings, splits resolved, default options filled in) and
    ``job.calibration`` (:class:`~edgefuse.export.calibration.CalibrationData`).

    Raises:
        ExportError: See :meth:`Int8Settings.checked`; CalibrationError for unusable calibration rows.
    """
    from edgefuse.export.calibration import build_calibration
    from edgefuse.export.quantize import QuantOptions

    if settings is None:
        settings = Int8Settings(calibration=None)
    settings = Int8Settings(
        calibration=split_of(settings.calibration),
        validation=split_of(settings.validation, "test"),
        options=settings.options or QuantOptions(),
        max_drop=settings.max_drop,
        keep_fp32=tuple(settings.keep_fp32),
        source=settings.source,
        calibrate_patterns=settings.calibrate_patterns,
    ).checked([g.name for g in job.graphs], job.exported)
    job.say("int8: building calibration data")
    job.int8 = settings
    job.calibration = build_calibration(
        job.model,
        settings.calibration.inputs,
        job.graphs,
        job.exported,
        job.patterns if settings.calibrate_patterns == "every" else [tuple(job.exported)],
        samples=settings.options.samples,
        seed=settings.options.seed,
        source=settings.source,
    )


def validate(fmt: str, run: Any, runners: Mapping[str, Any], job: Any) -> dict[str, Any]:
    """Accuracy per presence pattern and per-graph SQNR of a converted int8 artifact.

    Raises:
        ParityError: A pattern's accuracy dropped more than ``job.int8.max_drop`` points (see
            :func:`check_drops`), or the artifact's logits are malformed.
    """
    settings = job.int8
    split = settings.labelled
    job.say(f"{fmt}: int8 accuracy per presence pattern on {len(split)} labelled rows")
    rows = accuracy_per_pattern(run, job.model, split, job.patterns)
    sqnr = graph_sqnr(runners, job.model, split, job.exported, job.patterns, job.fusion, job.monolithic)
    check_drops(rows, settings.max_drop, f"{fmt} int8 export for {job.profile.id}")
    return {
        "accuracy": rows,
        "sqnr_db": sqnr,
        "validated_on": "validation split"
        if settings.validation is not None
        else "calibration split (no separate labelled split was given)",
    }


def settings_summary(settings: Int8Settings | None) -> dict[str, Any] | None:
    """The int8 settings as the manifest records them (and ``export_cached`` compares them)."""
    if settings is None:
        return None
    from edgefuse.export.quantize import QuantOptions

    o = settings.options or QuantOptions()
    return {
        "method": o.method,
        "per_channel": bool(o.per_channel),
        "samples": int(o.samples),
        "seed": int(o.seed),
        "max_drop_points": float(settings.max_drop),
        "keep_fp32": sorted(settings.keep_fp32),
        "source": settings.source,
        "calibrate_patterns": settings.calibrate_patterns,
    }


def manifest_record(converted: Mapping[str, Any], job: Any) -> dict[str, Any]:
    """What the manifest records about an int8 artifact besides its validation."""
    return {
        "settings": settings_summary(job.int8),
        "calibration": job.calibration.to_dict(),
        "graphs": {
            g.name: "fp32 (kept in float)" if g.name in job.int8.keep_fp32 else "int8" for g in job.graphs
        },
        "quantizer": {
            name: c.details.get("quantization")
            for name, c in converted.items()
            if c.details.get("quantization")
        },
    }


def reference_inputs(job: Any, pattern: Sequence[str], batch: int, seed: int) -> dict[str, np.ndarray]:
    """``batch`` seeded rows of the labelled data for the bundled reference.

    int8 is calibrated for real inputs, not noise, so its reference cases are real rows.
    """
    split = job.int8.labelled
    rows = np.random.default_rng(seed).choice(len(split), size=min(batch, len(split)), replace=False)
    return {m: np.ascontiguousarray(split.inputs[m][np.sort(rows)], dtype=np.float32) for m in pattern}
