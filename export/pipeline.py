"""The staged export pipeline: prepare -> convert -> validate -> write.

* **prepare**: load and check the checkpoint (model contract), resolve the device profile, keep the
  modalities its sensors provide (the others are not exported at all), list the presence patterns the
  device can produce (every non-empty subset of those modalities), refuse an existing output folder
  without ``overwrite`` — all before any conversion starts.
* **convert**: one graph per exported encoder + the head (split) or one graph (monolithic), per format,
  into a temporary folder beside the output.
* **validate** (always): every file is inspected against its graph spec; where the format's runtime is
  installed here, parity against PyTorch runs for every presence pattern at batch sizes 1 and 7, per
  output (encoders' embeddings, the head's logits, and end-to-end logits through the C++ fusion
  kernel); fp16 also checks top-1 agreement on a labelled split when one is given.
* **write**: bundled reference inputs/outputs (``reference.npz``), the manifest with every file's sha256,
  then the temporary folder is fsync'ed and swapped onto the output in one atomic exchange
  (:mod:`edgefuse.outputs`): a failed or killed export leaves the old artifact (or nothing) behind, and
  ``overwrite`` replaces only an existing artifact folder, never the checkpoint or the user's files.

Formats are independent: convert, validate and write run per format, and a format that fails is
reported (:class:`~edgefuse.export.report.FormatResult` ``failed``, with the exception's type and message)
while the next one is still tried; the report lists every requested format.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from edgefuse import outputs
from edgefuse.errors import BackendUnavailableError
from edgefuse.export import int8 as int8_stages
from edgefuse.export.errors import ExportError, ParityError
from edgefuse.export.formats import get_exporter
from edgefuse.export.formats.base import BatchPlan, Converted, FormatExporter
from edgefuse.export.graphs import COST_COUNTER, GraphSpec, build_graphs, graph_cost
from edgefuse.export.parity import Comparison, compare, raise_on_failures
from edgefuse.export.report import ExportReport, FormatResult
from edgefuse.export.runner import ArtifactRunner, fusion_params
from edgefuse.export.selection import FormatChoice, plan_formats

__all__ = ["ExportReport", "FormatResult", "export"]

logger = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16", "int8")
PARITY_BATCHES = (1, 7)
REFERENCE_BATCH = 2
FP16_MIN_AGREEMENT = 0.995


#: (atol, rtol) of an int8 artifact's bundled reference: against its own logits computed here (a device
#: may round differently: a few quantization steps of the logits), or against PyTorch's fp32 logits when
#: it could not run here (the quantization error itself; verify then only catches gross corruption).
INT8_REFERENCE_TOLERANCE = {"artifact": (0.1, 0.05), "pytorch": (1.0, 0.1)}


@dataclass
class _Job:
    """Everything one export shares across formats (built once in the prepare stage)."""

    model: Any
    exported: list[str]
    patterns: list[tuple[str, ...]]
    graphs: list[GraphSpec]
    fusion: dict[str, Any]
    plan: BatchPlan
    precision: str
    monolithic: bool
    profile: Any
    checkpoint: dict[str, Any]
    overwrite: bool
    agreement_split: Any
    say: Callable[[str], None]
    protect: tuple[Path, ...] = ()
    choice: FormatChoice | None = None
    int8: Any = None  # Int8Settings (checked), when any format is exported at int8
    calibration: Any = None  # CalibrationData, built once for every int8 format


def _toolchain() -> dict[str, str]:
    out = {}
    for pkg in (
        "edgefuse",
        "torch",
        "numpy",
        "onnx",
        "onnxscript",
        "onnxruntime",
        "litert-torch",
        "ai-edge-litert",
        "coremltools",
        "tensorrt",
    ):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            continue
    return out


def _patterns(modalities: Sequence[str]) -> list[tuple[str, ...]]:
    return [c for k in range(len(modalities), 0, -1) for c in itertools.combinations(modalities, k)]


def _inputs(model: Any, pattern: Sequence[str], batch: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        m.name: rng.standard_normal((batch, *m.shape)).astype(np.float32)
        for m in model.modalities
        if m.name in pattern
    }


def _torch_reference(model: Any, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    import torch

    with torch.no_grad():
        t = {k: torch.from_numpy(v) for k, v in inputs.items()}
        out = {f"embedding:{k}": model.encoders[k](v).numpy() for k, v in t.items()}
        if model.fusion.gated:  # each gate on its own modality's embedding, as in the encoder graph
            for k in t:
                e = torch.from_numpy(out[f"embedding:{k}"])
                out[f"reliability:{k}"] = model.fusion.reliability(model.modality_names.index(k), e).numpy()
        out["logits"] = model(t).numpy()
    return out


def _parity(
    exporter: FormatExporter,
    run: ArtifactRunner,
    model: Any,
    patterns: list[tuple[str, ...]],
    precision: str,
    monolithic: bool,
) -> list[Comparison]:
    results = []
    for p_i, pattern in enumerate(patterns):
        for batch in PARITY_BATCHES:
            inputs = _inputs(model, pattern, batch, seed=1000 * p_i + batch)
            expected = _torch_reference(model, inputs)
            actual = run(inputs)
            label = "+".join(pattern)
            for key, value in actual.items():
                graph = (
                    "model"
                    if monolithic
                    else ("head+fusion" if key == "logits" else f"encoder_{key.split(':')[1]}")
                )
                results.append(
                    compare(
                        value,
                        expected[key],
                        backend=exporter.backend,
                        precision=precision,
                        graph=graph,
                        output=key.split(":")[0],
                        pattern=label,
                        batch=batch,
                    )
                )
    return results


def _agreement(run: ArtifactRunner, model: Any, split: Any, modalities: list[str], batch: int = 256) -> float:
    """Top-1 agreement between the artifact and PyTorch on a labelled split (all exported modalities)."""
    import torch

    agree = total = 0
    for start in range(0, len(split), batch):
        inputs = {m: np.ascontiguousarray(split.inputs[m][start : start + batch]) for m in modalities}
        with torch.no_grad():
            ref = model({k: torch.from_numpy(v) for k, v in inputs.items()}).numpy().argmax(1)
        got = run(inputs)["logits"].argmax(1)
        agree += int((ref == got).sum())
        total += len(ref)
    return agree / max(1, total)


def _load_model(checkpoint: Any) -> tuple[Any, dict[str, Any]]:
    from edgefuse.checkpoint import load_checkpoint, weights_sha256
    from edgefuse.models.contract import MultimodalModel

    if isinstance(checkpoint, MultimodalModel):
        # the sha256 save_checkpoint would record: the same model exported in memory or from its checkpoint
        # records the same weights
        return checkpoint.eval(), {"path": None, "weights_sha256": weights_sha256(checkpoint)}
    ckpt = load_checkpoint(checkpoint)
    return ckpt.model, {
        "path": str(ckpt.path),
        "weights_sha256": ckpt.info["weights_sha256"],
        "dataset": ckpt.info.get("dataset", {}).get("name"),
    }


def export(
    checkpoint: Any,
    profile: Any,
    formats: Sequence[str] | str | None = None,
    out: str | Path = "out/export",
    *,
    precision: str | None = None,
    monolithic: bool = False,
    overwrite: bool = False,
    batch: BatchPlan | None = None,
    agreement_split: Any = None,
    progress: Callable[[str], None] | None = None,
    any_format: bool = False,
    int8: Any = None,
) -> ExportReport:
    """Export a contract model for a device profile.

    Args:
        checkpoint: A checkpoint folder or a :class:`~edgefuse.models.contract.MultimodalModel`.
        profile: A profile id (``vendor/device``), a path to a profile TOML, or a DeviceProfile.
        formats: ``None`` (default: follow the profile, one format per backend in its order), ``"all"``
            (the formats of the profile's backends), one format name or several. With one format,
            ``out`` is the artifact folder; with several, each goes to ``out/<format>``. The rule is
            :func:`~edgefuse.export.selection.plan_formats`; each choice and its reason is recorded in the
            manifest (``selection``).
        out: Output folder.
        precision: ``None`` (default: per format, the profile's first precision that format implements),
            or ``fp32``, ``fp16``, ``int8`` for every format; it must be listed by the profile.
        monolithic: One graph with a bool presence input instead of the split layout.
        overwrite: Replace existing *artifact* folders (only after the new one is complete, in one atomic
            exchange), or empty folders. A folder that is not an EdgeFuse artifact (the user's files, a
            checkpoint — in particular the one being exported — or an artifact holding files its
            manifest does not list), a folder containing the checkpoint, a regular file or a symlink is
            refused with the reason before anything is converted.
        batch: Batch handling (default: dynamic 1..64; fixed sizes from the profile's ``batch_sizes``).
        agreement_split: A labelled split for the fp16 top-1 agreement check (>= 99.5%).
        progress: Callback with a short message per stage.
        any_format: Allow formats that none of the profile's backends runs.
        int8: :class:`~edgefuse.export.int8.Int8Settings` (calibration data, quantizer options,
            ``max_drop``, ``keep_fp32``); required when any format is exported at int8. Each encoder is
            calibrated on its own modality's rows, the head (or monolithic graph) on every presence
            pattern of the device in equal shares; validation is accuracy per pattern on
            ``int8.validation`` (or the calibration split), not a float tolerance.

    Every requested format is converted and validated on its own: a format whose conversion or
    validation raises (a converter error, :class:`ExportValidationError`, :class:`ParityError`, ...) is
    recorded as ``failed`` with ``"<ExceptionType>: <message>"`` as its reason (the traceback is logged
    at DEBUG on ``edgefuse.export.pipeline``), and the next format is tried; the artifacts of the other
    formats are written as usual (each one is committed atomically on its own). This holds for a single
    requested format too: its failure is in the report (``report.ok`` is False), not raised. Call
    :meth:`ExportReport.raise_for_failures` to get an exception instead.

    Returns:
        The :class:`ExportReport`, one :class:`FormatResult` per format, in order: ``ok``,
        ``unavailable`` (the converter cannot run here, with the reason; TensorRT still gets the
        validated ONNX it would consume, in ``<out>/tensorrt-onnx``) or ``failed`` (with the reason and
        ``error_type``).

    Raises:
        ExportError: Before any conversion: an unknown format/precision (with the closest match), a
            format none of the profile's backends runs (without ``any_format``), a precision the profile
            does not list or the format does not implement, int8 without calibration data or with a
            calibration set that lacks a modality, has fewer than 16 rows or non-finite values
            (:class:`~edgefuse.export.errors.CalibrationError`), int8 for a format that cannot be quantized
            here, a profile whose sensors provide none of the model's modalities, an existing output
            without ``overwrite``, or an output path that may not be replaced (see ``overwrite``). Also
            when an output folder is found changed right before a format's artifact is swapped in (the
            user's files are never replaced; the remaining formats are not tried).
        BackendUnavailableError: When exactly one format was requested and its converter cannot run here
            (nothing could be attempted; the reason says what to install). With several formats such a
            format is reported as ``unavailable`` instead.
    """
    from edgefuse.profiles import DeviceProfile, get_profile

    say = progress or (lambda _msg: None)
    # ---- prepare ---------------------------------------------------------------------------------------
    prof = profile if isinstance(profile, DeviceProfile) else get_profile(str(profile))
    choices = plan_formats(prof, formats, precision, any_format=any_format)
    names = [c.format for c in choices]
    int8_stages.check_formats(choices, int8)
    out = Path(out)
    targets = {f: (out if len(names) == 1 else out / f) for f in names}
    protect = tuple(_inputs_of(checkpoint, profile))
    if len(names) > 1 and os.path.lexists(out) and not out.is_dir():
        raise ExportError(f"{out} exists and is not a folder; choose another --out (it is left untouched)")
    for fmt, folder in targets.items():
        _check_target(folder, overwrite, protect)
        if fmt == "tensorrt" and get_exporter(fmt).unavailable_reason():  # it writes the ONNX it would use
            _check_target(_tensorrt_onnx_folder(folder), overwrite, protect)
    say("loading checkpoint")
    model, ckpt_info = _load_model(checkpoint)
    exported = [m for m in model.modality_names if m in prof.modalities]
    if not exported:
        raise ExportError(
            f"profile {prof.id!r} has sensors providing {list(prof.modalities)}, none of the model's modalities "
            f"{list(model.modality_names)}: nothing to export for this device"
        )
    patterns = _patterns(exported)
    plan = batch or BatchPlan(fixed=tuple(sorted(set(prof.batch_sizes) | {1})))
    graphs = build_graphs(model, exported, monolithic)
    fusion = fusion_params(model, exported)
    job = _Job(
        model,
        exported,
        patterns,
        graphs,
        fusion,
        plan,
        "fp32",
        monolithic,
        prof,
        ckpt_info,
        overwrite,
        agreement_split,
        say,
        protect,
    )
    if any(c.precision == "int8" for c in choices):
        int8_stages.prepare(job, int8)
    results = [_run_format(c, targets[c.format], job) for c in choices]
    report = ExportReport(
        prof.id, exported, [list(p) for p in patterns], results, [c.to_dict() for c in choices]
    )
    if len(names) == 1 and results[0].status == "unavailable":
        raise BackendUnavailableError(results[0].reason or "unavailable")
    return report


def export_cached(
    checkpoint: str | Path,
    profile: Any,
    fmt: str,
    out: str | Path,
    *,
    precision: str = "fp32",
    monolithic: bool = False,
    agreement_split: Any = None,
    progress: Callable[[str], None] | None = None,
    int8: Any = None,
) -> tuple[FormatResult, bool]:
    """Export one format of a checkpoint folder into ``out``, or reuse the artifact already there.

    The artifact in ``out`` is reused when its manifest is valid, every file still has its recorded
    sha256, and it was written by this EdgeFuse version from the same checkpoint weights (sha256) for
    the same profile, format, precision and layout, with reliability gates exactly when the checkpoint
    has them (``fusion.row_weights``). Otherwise it is exported again (replacing ``out``
    in one atomic exchange once the new artifact is complete). An ``out`` that is not an artifact folder
    (the user's files, a checkpoint, an artifact holding unlisted files) is refused as :func:`export`
    refuses it, never replaced.

    Args:
        checkpoint: A checkpoint folder (its ``model.json`` gives the weights' sha256).
        profile: A profile id, TOML path or DeviceProfile.
        fmt: One format (``onnx``, ``tflite``, ``coreml``, ``tensorrt``).
        out: The artifact folder.
        precision: ``fp32``, ``fp16`` or ``int8``.
        monolithic: Monolithic instead of split layout.
        agreement_split: See :func:`export`.
        progress: See :func:`export`.
        int8: See :func:`export` (an int8 artifact is reused only with the same calibration settings).

    The format is exported as asked even when none of the profile's backends runs it (``any_format``):
    callers name the format they need (e.g. the ONNX that counts FLOPs for an estimate).

    Returns:
        ``(result, reused)``: the format's :class:`FormatResult` (status ``ok`` with the folder, or
        ``unavailable``/``failed`` with the reason) and whether the existing artifact was reused.

    Raises:
        CheckpointError: When ``checkpoint`` is not a valid checkpoint folder.
        ExportError: As :func:`export` raises it (bad options, an output that may not be replaced); a
            failed conversion or validation (e.g. parity) is the ``failed`` result, not raised.
    """
    from edgefuse import __version__
    from edgefuse.checkpoint import read_checkpoint_info
    from edgefuse.manifest import ArtifactIntegrityError, ManifestError, read_manifest
    from edgefuse.profiles import DeviceProfile, get_profile
    from edgefuse.trust import UnsafeFileError

    prof = profile if isinstance(profile, DeviceProfile) else get_profile(str(profile))
    target = Path(out)
    info = read_checkpoint_info(checkpoint)
    sha = info["weights_sha256"]
    # an artifact of a gated model exported before gates were exported has the same weights sha256
    fusion_info = info.get("fusion") or (info.get("architecture") or {}).get("fusion") or {}
    gated = bool(fusion_info.get("gate_hidden"))
    if (target / "manifest.json").is_file():
        try:
            manifest = read_manifest(target)
            manifest.verify_files()
            data = manifest.data
            same = (
                data.get("edgefuse_version") == __version__
                and (data.get("checkpoint") or {}).get("weights_sha256") == sha
                and data.get("profile") == prof.id
                and data.get("format") == fmt
                and data.get("precision") == precision
                and data.get("layout") == ("monolithic" if monolithic else "split")
                and bool((data.get("fusion") or {}).get("row_weights")) == gated
                # counts made by this counter (older exports lack them or counted differently)
                and all(
                    (g.get("cost") or {}).get("counted_from") == COST_COUNTER
                    for g in data.get("graphs", {}).values()
                )
                and (
                    precision != "int8"
                    or (data.get("int8") or {}).get("settings") == int8_stages.settings_summary(int8)
                )
            )
        except (ManifestError, ArtifactIntegrityError, UnsafeFileError) as exc:
            logger.info("%s cannot be reused (%s); exporting again", target, exc)
            same = False
        if same:
            reused = FormatResult(
                fmt,
                "ok",
                folder=target,
                parity=list(data.get("parity") or []),
                precision=precision,
                int8=data.get("int8"),
            )
            return reused, True
    try:
        report = export(
            checkpoint,
            prof,
            [fmt],
            target,
            precision=precision,
            monolithic=monolithic,
            overwrite=True,
            agreement_split=agreement_split,
            progress=progress,
            any_format=True,
            int8=int8,
        )
    except BackendUnavailableError as exc:
        return FormatResult(fmt, "unavailable", reason=str(exc)), False
    return report.results[0], False


class _OutputRefusedError(ExportError):
    """An output folder refused by :mod:`edgefuse.outputs` while a format was staged or committed."""


def _run_format(choice: FormatChoice, target: Path, job: _Job) -> FormatResult:
    """Convert, validate and write one format; its failure is returned as a ``failed`` result, not raised.

    A refusal to write the output (the folder changed since the prepare stage) still raises, as
    :class:`ExportError`: the user's files are never replaced, and it is no failure of the format.
    """
    t0 = time.perf_counter()
    fmt = choice.format
    job = dataclasses.replace(job, precision=choice.precision, choice=choice)
    unavailable = None
    try:
        exporter = get_exporter(fmt)
        unavailable = exporter.unavailable_reason()
        if unavailable:
            result = _unavailable(fmt, unavailable, exporter, target, job)
        else:
            job.say(f"{fmt}: converting {len(job.graphs)} graph(s)")
            result = _export_one(exporter, fmt, target, job)
    except _OutputRefusedError as exc:
        raise ExportError(str(exc)) from None
    except Exception as exc:  # any converter's error: the format failed, the next one is still tried
        logger.debug("%s export for %s failed", fmt, job.profile.id, exc_info=True)
        context = f"{unavailable}; writing the ONNX it would consume failed" if unavailable else None
        result = FormatResult.from_exception(fmt, exc, context)
        job.say(f"{fmt}: failed ({type(exc).__name__})")
    result.seconds = time.perf_counter() - t0
    result.precision = choice.precision
    return result


def _unavailable(fmt: str, reason: str, exporter: FormatExporter, target: Path, job: _Job) -> FormatResult:
    """A format that cannot run here: TensorRT still gets the ONNX it would consume, validated."""
    if fmt != "tensorrt" or not hasattr(exporter, "write_onnx_for_tensorrt"):
        return FormatResult(fmt, "unavailable", reason=reason)
    from edgefuse.export.formats.onnx import OnnxExporter

    onnx_exporter = OnnxExporter()
    missing = onnx_exporter.unavailable_reason()
    if missing:
        return FormatResult(
            fmt, "unavailable", reason=f"{reason}; the ONNX for TensorRT was not written either: {missing}"
        )
    folder = _tensorrt_onnx_folder(target)
    with _stage(folder, job) as staging:
        job.say("tensorrt: unavailable here; writing the ONNX it would consume")
        tmp = staging.path
        converted = {g.name: exporter.write_onnx_for_tensorrt(g, tmp, job.plan) for g in job.graphs}
        run, int8_record = None, None
        if job.precision == "int8":  # TensorRT builds its int8 engine from the QDQ graph
            for g in job.graphs:
                if g.name not in job.int8.keep_fp32:
                    converted[g.name] = onnx_exporter.quantize(
                        tmp, converted[g.name], g, job.calibration.feeds[g.name], job.int8.options
                    )
        for g in job.graphs:
            onnx_exporter.inspect(tmp, converted[g.name], g)
        if job.precision == "int8":
            if onnx_exporter.runner_unavailable_reason() is None:
                runners = {g.name: onnx_exporter.load_runner(tmp, converted[g.name], g) for g in job.graphs}
                run = ArtifactRunner(runners, job.exported, job.fusion, job.monolithic)
                int8_record = int8_stages.validate("tensorrt (QDQ ONNX)", run, runners, job)
            int8_record = {**(int8_record or {}), **int8_stages.manifest_record(converted, job)}
        precision = "int8" if job.precision == "int8" else "fp32"
        note = f"{'QDQ ' if precision == 'int8' else ''}ONNX input for a TensorRT engine; the engine was not built here: {reason}"
        _write_artifact(
            staging,
            onnx_exporter,
            "onnx",
            converted,
            job,
            [],
            precision=precision,
            notes=note,
            run=run,
            int8_record=int8_record,
        )
    return FormatResult(
        fmt,
        "unavailable",
        folder=folder,
        reason=f"{reason}. The {'QDQ ' if precision == 'int8' else ''}ONNX TensorRT would consume is in {folder}.",
        int8=int8_record,
    )


def _tensorrt_onnx_folder(target: Path) -> Path:
    """Where TensorRT's ONNX goes when no engine can be built: out/tensorrt-onnx, or <out>-onnx."""
    return target.with_name(f"{target.name}-onnx")


def _inputs_of(checkpoint: Any, profile: Any) -> list[Path]:
    """The export's inputs on disk (the checkpoint folder, a profile TOML): never an output's place."""
    found = []
    for item in (checkpoint, profile):
        if isinstance(item, (str, os.PathLike)) and os.path.lexists(item):
            found.append(Path(item))
    return found


def _check_target(folder: Path, overwrite: bool, protect: Sequence[Path]) -> None:
    """Refuse (ExportError) an output folder that may not receive or be replaced by an artifact."""
    outputs.check_output(folder, outputs.ARTIFACT, overwrite=overwrite, protect=protect, error=ExportError)


def _stage(folder: Path, job: _Job) -> outputs.Staging:
    """The temporary folder beside ``folder`` (checked again), committed by :func:`_write_artifact`."""
    return outputs.stage(
        folder, outputs.ARTIFACT, overwrite=job.overwrite, protect=job.protect, error=_OutputRefusedError
    )


def _export_one(exporter: FormatExporter, fmt: str, target: Path, job: _Job) -> FormatResult:
    """Convert, validate (always) and write one format; nothing is left behind on failure."""
    with _stage(target, job) as staging:
        tmp = staging.path
        converted = _convert_all(exporter, tmp, job)
        job.say(f"{fmt}: validating")
        for g in job.graphs:
            exporter.inspect(tmp, converted[g.name], g)
        parity: list[Comparison] = []
        agreement = None
        int8_record = None
        run = None
        runner_reason = exporter.runner_unavailable_reason()
        if runner_reason is None:
            runners = {g.name: exporter.load_runner(tmp, converted[g.name], g) for g in job.graphs}
            run = ArtifactRunner(runners, job.exported, job.fusion, job.monolithic)
            if job.precision == "int8":
                int8_record = int8_stages.validate(fmt, run, runners, job)
            else:
                parity = _parity(exporter, run, job.model, job.patterns, job.precision, job.monolithic)
                raise_on_failures(parity, f"{fmt} ({job.precision}) export for {job.profile.id}")
            if job.precision == "fp16" and job.agreement_split is not None:
                agreement = _agreement(run, job.model, job.agreement_split, job.exported)
                if agreement < FP16_MIN_AGREEMENT:
                    raise ParityError(
                        f"{fmt} fp16: top-1 agreement with PyTorch is {agreement:.2%} on the labelled split; "
                        f"at least {FP16_MIN_AGREEMENT:.1%} is required (export fp32 instead)"
                    )
        else:
            job.say(f"{fmt}: {runner_reason}; validated from the saved files only")
        if job.precision == "int8":
            int8_record = {**(int8_record or {}), **int8_stages.manifest_record(converted, job)}
        records = [c.to_dict() for c in parity]
        _write_artifact(
            staging,
            exporter,
            fmt,
            converted,
            job,
            records,
            agreement=agreement,
            runner_reason=runner_reason,
            run=run,
            int8_record=int8_record,
        )
    return FormatResult(
        fmt,
        "ok",
        folder=target,
        parity=records,
        parity_ran=runner_reason is None,
        reason=runner_reason,
        agreement=agreement,
        int8=int8_record,
    )


def _convert_all(exporter: FormatExporter, tmp: Path, job: _Job) -> dict[str, Converted]:
    """Convert every graph; at int8, convert fp32 then quantize each graph not kept in float."""
    if job.precision != "int8":
        return {g.name: exporter.convert(g, tmp, job.precision, job.plan) for g in job.graphs}
    converted = {g.name: exporter.convert(g, tmp, "fp32", job.plan) for g in job.graphs}
    for g in job.graphs:
        if g.name in job.int8.keep_fp32:
            continue
        job.say(f"{exporter.name}: quantizing {g.name} to int8")
        converted[g.name] = exporter.quantize(
            tmp, converted[g.name], g, job.calibration.feeds[g.name], job.int8.options
        )
    return converted


def _write_artifact(
    staging: outputs.Staging,
    exporter: FormatExporter,
    fmt: str,
    converted: dict[str, Converted],
    job: _Job,
    parity: list[dict[str, Any]],
    *,
    precision: str | None = None,
    notes: str | None = None,
    agreement: float | None = None,
    runner_reason: str | None = None,
    run: ArtifactRunner | None = None,
    int8_record: dict[str, Any] | None = None,
) -> None:
    """Write reference.npz and the manifest into the staging folder, then swap it onto its target.

    The reference cases hold PyTorch's logits on random inputs; for int8 they hold rows of the labelled
    data and the artifact's own logits computed here (``run``), so that ``verify`` on a device checks the
    artifact reproduces itself, not a float tolerance it was never meant to meet (PyTorch's logits when
    the artifact cannot run here, with the looser tolerance that implies; ``reference.expected_from``
    says which).
    """
    from edgefuse import __version__
    from edgefuse.export.parity import tolerance
    from edgefuse.manifest import MANIFEST_SCHEMA_VERSION, Manifest, file_entry, schema_version_for

    tmp = staging.path
    model, graphs, fusion = job.model, job.graphs, job.fusion
    precision = precision or job.precision
    ref_cases = []
    arrays: dict[str, np.ndarray] = {}
    int8 = precision == "int8"
    expected_from = "pytorch"
    tol = tolerance(exporter.backend, precision)
    if int8:
        expected_from = "artifact" if run is not None else "pytorch"
        tol = INT8_REFERENCE_TOLERANCE[expected_from]
    for i, pattern in enumerate(job.patterns):
        label = "+".join(pattern)
        inputs = (
            int8_stages.reference_inputs(job, pattern, REFERENCE_BATCH, seed=7_000 + i)
            if int8
            else _inputs(model, pattern, REFERENCE_BATCH, seed=7_000 + i)
        )
        logits = (
            run(inputs)["logits"]
            if expected_from == "artifact"
            else _torch_reference(model, inputs)["logits"]
        )
        for k, v in inputs.items():
            arrays[f"{label}/input/{k}"] = v
        arrays[f"{label}/logits"] = np.asarray(logits, dtype=np.float32)
        ref_cases.append({"pattern": list(pattern), "batch": REFERENCE_BATCH})
    np.savez(tmp / "reference.npz", **arrays)
    specs = {m.name: m for m in model.modalities}
    files = [file_entry(tmp, rel, g.role) for g in graphs for rel in converted[g.name].files]
    files.append(file_entry(tmp, "reference.npz", "reference"))
    data = {
        "schema_version": MANIFEST_SCHEMA_VERSION,
        "edgefuse_version": __version__,
        "toolchain": _toolchain(),
        "profile": job.profile.id,
        "format": fmt,
        "precision": precision,
        "layout": "monolithic" if graphs[0].role == "monolithic" else "split",
        "modalities": [
            {**specs[m].to_dict(), "graph": "model" if graphs[0].role == "monolithic" else f"encoder_{m}"}
            for m in job.exported
        ],
        "model_modalities": list(model.modality_names),
        "label_names": list(model.label_names),
        "fusion": {
            "weights": fusion["weights"].tolist(),
            "gamma": None if fusion["gamma"] is None else fusion["gamma"].tolist(),
            "beta": None if fusion["beta"] is None else fusion["beta"].tolist(),
            "eps": fusion["eps"],
            "dim": int(model.embed_dim),
            **({"row_weights": fusion["row_weights"]} if fusion.get("row_weights") else {}),
        },
        "graphs": {
            g.name: {
                "role": g.role,
                "files": converted[g.name].files,
                "inputs": [i.to_dict() for i in g.inputs],
                "outputs": [o.to_dict() for o in g.outputs],
                "batch": converted[g.name].batch,
                "details": converted[g.name].details,
                "cost": graph_cost(g),
            }
            for g in graphs
        },
        "files": files,
        "parity": parity,
        "reference": {
            "file": "reference.npz",
            "cases": ref_cases,
            "tolerance": dict(zip(("atol", "rtol"), tol, strict=True)),
            "backend": exporter.backend,
            "expected_from": expected_from,
        },
        "checkpoint": job.checkpoint,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if job.choice is not None:
        data["selection"] = job.choice.to_dict()
    if int8_record is not None:
        data["int8"] = int8_record
    if notes or agreement is not None or runner_reason:
        data["notes"] = {"note": notes, "fp16_top1_agreement": agreement, "parity_not_run": runner_reason}
    data["schema_version"] = schema_version_for(data)  # 1 without gates: older runtimes still read it
    Manifest(data=data, root=tmp).write()
    staging.commit()
