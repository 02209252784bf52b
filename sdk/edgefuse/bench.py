"""Benchmark reports for artifacts and plain model files, like ``trtexec`` / ``onnxruntime_perf_test``.

For an artifact folder, :func:`bench_artifact` measures per backend x presence pattern: the bytes of the
files the session loads, load time, first-inference time, warm p50/p90/p99 and mean latency at batch 1,
throughput at batch 1 and 8, peak RSS (in a fresh subprocess per backend x pattern) and a roofline
**estimate** for the device profile from FLOPs and bytes counted in the ONNX graphs. :func:`bench_model`
does the same (without presence patterns) for a plain ``.onnx`` or ``.tflite`` file, with inputs built
from its input spec. :func:`render_markdown` and :func:`save_report` turn the result into a Markdown
table and a PNG plot; :data:`DEFINITIONS` holds the one-line definition of each figure.

Heavy imports (onnx, onnxruntime, LiteRT, matplotlib) happen inside the functions that need them.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import resource
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgefuse.bench_report import (
    DEFINITIONS,
    render_markdown,
    save_report,
)
from edgefuse.emulation import mark as mark_emulated
from edgefuse.errors import ContractError, ProfileError, did_you_mean
from edgefuse.roofline import GraphCost, count_onnx, roofline_estimate

__all__ = [
    "DEFINITIONS",
    "GraphCost",
    "bench_artifact",
    "bench_checkpoint",
    "bench_model",
    "count_onnx",
    "estimate_from_onnx",
    "parse_patterns",
    "render_markdown",
    "roofline_estimate",
    "save_report",
]

_log = logging.getLogger(__name__)

_MODEL_SUFFIXES = (".onnx", ".tflite")


# --------------------------------------------------------------------------------------------------
# Timing helpers
# --------------------------------------------------------------------------------------------------


def _ms(seconds: float) -> float:
    return seconds * 1e3


def _time_calls(fn: Callable[[], object], warmup: int, iters: int) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def _latency_figures(
    call_b1: Callable[[], object], call_b8: Callable[[], object], warmup: int, iters: int
) -> dict[str, float]:
    times = _time_calls(call_b1, warmup, iters)
    arr = np.asarray(times)
    iters8 = max(1, iters // 4)
    times8 = _time_calls(call_b8, max(1, warmup // 4), iters8)
    return {
        "p50_ms": _ms(float(np.percentile(arr, 50))),
        "p90_ms": _ms(float(np.percentile(arr, 90))),
        "p99_ms": _ms(float(np.percentile(arr, 99))),
        "mean_ms": _ms(float(arr.mean())),
        "throughput_b1": float(len(times) / arr.sum()),
        "throughput_b8": float(8 * len(times8) / sum(times8)),
    }


def _check_counts(warmup: int, iters: int) -> None:
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ContractError(f"warmup must be an int >= 0; got {warmup!r}")
    if isinstance(iters, bool) or not isinstance(iters, int) or iters < 1:
        raise ContractError(f"iters must be an int >= 1; got {iters!r}")


def _peak_rss_subprocess(kind: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    """Run :func:`_rss_child` in a fresh interpreter; ``{"peak_rss_mb", "rss_scope"}``."""
    code = "import sys, json; from edgefuse.bench import _rss_child; print(json.dumps(_rss_child(*json.loads(sys.argv[1]))))"
    try:
        proc = subprocess.run(
            [sys.executable, "-c", code, json.dumps([kind, dict(spec)])],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "no output")
        peak = float(json.loads(proc.stdout.strip().splitlines()[-1])["peak_rss_mb"])
        return {"peak_rss_mb": peak, "rss_scope": "fresh subprocess"}
    except Exception as exc:
        _log.warning("peak RSS subprocess failed (%s); reporting this process's peak instead", exc)
        return {"peak_rss_mb": _ru_maxrss_mb(), "rss_scope": "process peak (subprocess failed)"}


def _ru_maxrss_mb() -> float:
    """Peak RSS of this process in MiB.

    On Linux, ``VmHWM`` of ``/proc/self/status`` (the high-water mark of this process's own memory
    map). ``ru_maxrss`` is not used there: Linux carries it across ``exec``, so a child started by a
    large parent (say one that imported torch) would report the parent's peak.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024  # bytes on macOS, KiB on Linux


def _rss_child(kind: str, spec: dict[str, Any]) -> dict[str, float]:
    """In a fresh process: load and run a few calls, then report ``ru_maxrss`` in MiB."""
    if kind == "artifact":
        from edgefuse.runtime import load

        session = load(spec["artifact"], profile=spec.get("profile"), backend=spec.get("backend"))
        inputs1, inputs8 = _pattern_inputs(session, tuple(spec["pattern"]))
        for _ in range(5):
            session.predict(inputs1)
        session.predict(inputs8)
        session.close()
    else:
        runner = _ModelRunner(Path(spec["path"]), spec.get("threads"))
        runner.run(1)
        runner.run(8)
    return {"peak_rss_mb": _ru_maxrss_mb()}


# --------------------------------------------------------------------------------------------------
# Artifacts
# --------------------------------------------------------------------------------------------------


def parse_patterns(text: str | Sequence[str] | None, modalities: Sequence[str]) -> list[tuple[str, ...]]:
    """Presence patterns from ``"all,audio,image"`` (``+`` joins modalities: ``audio+image``).

    ``None`` or ``""`` gives every non-empty subset of ``modalities`` (largest first); ``all`` is every
    modality present.

    Raises:
        ContractError: For an unknown modality (with the closest match) or an empty pattern.
    """
    if text is None or (isinstance(text, str) and not text.strip()):
        mods = tuple(modalities)
        return [c for r in range(len(mods), 0, -1) for c in itertools.combinations(mods, r)]
    items = [s.strip() for s in text.split(",")] if isinstance(text, str) else [str(s) for s in text]
    out: list[tuple[str, ...]] = []
    for item in items:
        if not item:
            continue
        if item == "all":
            pattern = tuple(modalities)
        else:
            names = [n.strip() for n in item.split("+") if n.strip()]
            for n in names:
                if n not in modalities:
                    raise ContractError(
                        f"pattern {item!r}: unknown modality {n!r}{did_you_mean(n, modalities)}; "
                        f"this session has {list(modalities)} (write patterns like all,audio,audio+image)"
                    )
            pattern = tuple(m for m in modalities if m in names)
        if not pattern:
            raise ContractError(f"pattern {item!r} names no modality; this session has {list(modalities)}")
        if pattern not in out:
            out.append(pattern)
    if not out:
        raise ContractError(f"--patterns {text!r} gives no pattern; e.g. all,{','.join(modalities)}")
    return out


def _pattern_inputs(session: Any, pattern: tuple[str, ...]) -> tuple[dict[str, Any], dict[str, Any]]:
    rng = np.random.default_rng(0)
    specs = {m["name"]: m for m in session.manifest.data["modalities"]}
    one, eight = {}, {}
    for m in pattern:
        shape = tuple(int(d) for d in specs[m]["shape"])
        dtype = np.dtype(specs[m]["dtype"])
        one[m] = rng.standard_normal((1, *shape)).astype(dtype)
        eight[m] = rng.standard_normal((8, *shape)).astype(dtype)
    return one, eight


def _pattern_name(pattern: Sequence[str]) -> str:
    return "+".join(pattern)


def estimate_from_onnx(
    onnx_artifact: str | Path, pattern: Sequence[str], profile: Any, precision: str = "fp32"
) -> dict[str, Any]:
    """Roofline estimate of one presence pattern on ``profile``'s target, counted from a split ONNX artifact.

    Counts the FLOPs and bytes of the encoder graphs of ``pattern`` plus the head (and the fusion
    kernel) in the artifact's ONNX files; any split ONNX export of the same model that has those
    encoders will do, whatever profile it was made for. For ``fp16`` the bytes are halved (weights and
    activations stored in 16 bits), for ``int8`` quartered, and the profile's peak at that precision is
    used.

    Args:
        onnx_artifact: A split ONNX artifact folder.
        pattern: The modalities present.
        profile: A :class:`~edgefuse.profiles.DeviceProfile`.
        precision: ``fp32``, ``fp16`` or ``int8``.

    Returns:
        The :func:`roofline_estimate` dict (``kind = "estimate"``) with ``profile``, ``precision`` and
        ``graphs``.

    Raises:
        ContractError: When the artifact is not a split ONNX artifact or lacks an encoder of ``pattern``.
    """
    from edgefuse.manifest import read_manifest

    manifest = read_manifest(onnx_artifact)
    if manifest.format != "onnx" or manifest.layout != "split":
        raise ContractError(
            f"{onnx_artifact} is a {manifest.format}/{manifest.layout} artifact; give a split ONNX one"
        )
    specs = {m["name"]: m for m in manifest.data["modalities"]}
    missing = [m for m in pattern if m not in specs]
    if missing:
        raise ContractError(f"{onnx_artifact} has no encoder for {missing}; it has {sorted(specs)}")
    names = [str(specs[m].get("graph", f"encoder_{m}")) for m in pattern] + ["head"]
    dim = int(manifest.data["fusion"].get("dim") or 0)
    fusion = GraphCost(4 * dim * len(pattern), 4 * dim * (len(pattern) + 1))  # the C++ kernel
    return _estimate(manifest, names, fusion, profile, precision)


def _estimate(
    manifest: Any, names: Sequence[str], extra: GraphCost, profile: Any, precision: str
) -> dict[str, Any]:
    """Roofline estimate of running the ONNX graphs ``names`` of an artifact (plus ``extra``) on ``profile``."""
    graphs = manifest.data["graphs"]
    cost = extra
    for g in names:
        cost = cost + count_onnx(Path(manifest.root) / graphs[g]["files"][0])
    nbytes = cost.bytes // {"fp16": 2, "int8": 4}.get(precision, 1)  # weights and activations
    peak = profile.compute.peak(precision)
    est = roofline_estimate(cost.flops, nbytes, peak, profile.compute.memory_bandwidth_gbs)
    est.update({"profile": str(profile.id), "precision": precision, "graphs": list(names)})
    if peak is None:
        est["note"] = f"profile {profile.id!r} gives no peak compute for {precision}; memory-bound time only"
    if cost.unknown_ops:
        est["unknown_ops"] = list(cost.unknown_ops)
    return est


def _artifact_estimate(session: Any, pattern: tuple[str, ...], profile: Any) -> dict[str, Any]:
    """Roofline estimate for the graphs that run for ``pattern`` (ONNX artifacts only)."""
    manifest = session.manifest
    if manifest.format != "onnx":
        return {
            "kind": "estimate",
            "ms": None,
            "note": "estimate unavailable (FLOP counting implemented for ONNX)",
        }
    if profile is None:
        return {"kind": "estimate", "ms": None, "note": "estimate unavailable (no known device profile)"}
    precision = str(manifest.data.get("precision", "fp32"))
    if manifest.layout == "monolithic":  # every encoder runs (absent ones on zeros)
        return _estimate(manifest, list(session.loaded_graphs), GraphCost(0, 0), profile, precision)
    return estimate_from_onnx(manifest.root, pattern, profile, precision)


def _file_bytes(root: Path, files: Sequence[str]) -> int:
    total = 0
    for rel in files:
        p = root / rel
        if p.is_dir():
            total += sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
        elif p.exists():
            total += p.stat().st_size
    return total


def bench_artifact(
    artifact: str | Path,
    *,
    profile: str | None = None,
    backends: Sequence[str] | None = None,
    patterns: str | Sequence[str] | None = None,
    warmup: int = 10,
    iters: int = 100,
    rss: bool = True,
    data: Any = None,
) -> dict[str, Any]:
    """Benchmark an artifact folder per backend x presence pattern.

    Args:
        artifact: The artifact folder (holding ``manifest.json``).
        profile: Device profile id or TOML path (decides encoders loaded, threads, the estimate's target);
            ``None``: the manifest's profile.
        backends: Backend names to benchmark, each alone (``None``: the one the session chooses).
        patterns: ``"all,audio,image"`` style patterns (``None``: every non-empty subset).
        warmup: Warm-up calls before timing.
        iters: Timed calls at batch 1 (batch 8 uses ``max(1, iters // 4)`` calls).
        rss: Measure peak RSS in a fresh subprocess per backend x pattern.
        data: A labelled dataset (accuracy on its ``test`` split) or labelled split: each row then gets
            ``accuracy``, the top-1 accuracy (0..1) of the session with only the pattern's modalities.

    Returns:
        ``{"kind": "artifact", "artifact", "profile", "format", "layout", "precision", "rss", "results":
        [...], "definitions"}`` (and ``accuracy_data`` with ``data``); each result has the figures of
        :data:`DEFINITIONS`, ``precision`` and ``estimate``.

    Raises:
        ContractError: Bad counts or patterns; ``data`` lacking a modality, labels or the model's labels.
        EdgeFuseError: Whatever loading the artifact raises (manifest, backend, profile errors).
    """
    from edgefuse.bench_precisions import accuracy_source, labelled_split, pattern_accuracy
    from edgefuse.profiles import get_profile
    from edgefuse.runtime import BackendFallbackWarning, load

    _check_counts(warmup, iters)
    root = Path(artifact)
    split = None
    names: list[str | None] = list(backends) if backends else [None]
    results = []
    first_session = None
    for name in names:
        t0 = time.perf_counter()
        probe = load(root, profile=profile, backend=name)
        probe_load = time.perf_counter() - t0
        prof_obj = None
        try:
            prof_obj = get_profile(profile if profile is not None else str(probe.manifest.data["profile"]))
        except ProfileError:
            _log.info("profile of %s not known here; no estimate", root)
        first_session = first_session or probe
        pats = parse_patterns(patterns, probe.modalities)
        size = _file_bytes(root, probe.loaded_files)
        if data is not None and split is None:
            split = labelled_split(data, probe.modalities, probe.label_names)
        for i, pattern in enumerate(pats):
            if i == 0:
                session, load_s = probe, probe_load
            else:
                t0 = time.perf_counter()
                with warnings.catch_warnings():  # the probe load above already told the user
                    warnings.simplefilter("ignore", BackendFallbackWarning)
                    session = load(root, profile=profile, backend=name)
                load_s = time.perf_counter() - t0
            inputs1, inputs8 = _pattern_inputs(session, pattern)
            t0 = time.perf_counter()
            session.predict(inputs1)
            first_s = time.perf_counter() - t0
            figures = _latency_figures(
                lambda s=session, x=inputs1: s.predict(x),
                lambda s=session, x=inputs8: s.predict(x),
                warmup,
                iters,
            )
            estimate = _artifact_estimate(session, pattern, prof_obj)
            row: dict[str, Any] = {
                "backend": session.backend,
                "precision": str(session.manifest.data.get("precision", "fp32")),
                "pattern": _pattern_name(pattern),
                "size_bytes": size,
                "load_ms": _ms(load_s),
                "first_ms": _ms(first_s),
                **figures,
                "threads": session.threads,
                "estimate": estimate,
            }
            if split is not None:
                row["accuracy"] = pattern_accuracy(session, split, pattern)
            if session is not probe:
                session.close()
            if rss:
                row.update(
                    _peak_rss_subprocess(
                        "artifact",
                        {
                            "artifact": str(root),
                            "profile": profile,
                            "backend": session.backend,
                            "pattern": list(pattern),
                        },
                    )
                )
            else:
                row.update({"peak_rss_mb": _ru_maxrss_mb(), "rss_scope": "process peak"})
            results.append(row)
        probe.close()
    if first_session is None:  # pragma: no cover - names is never empty
        raise ContractError("no backend to benchmark")
    info = first_session.manifest.data
    report = {
        "kind": "artifact",
        "artifact": str(root),
        "profile": first_session.profile or str(info.get("profile")),
        "format": first_session.manifest.format,
        "layout": first_session.manifest.layout,
        "precision": str(info.get("precision", "fp32")),
        "warmup": warmup,
        "iters": iters,
        "rss": rss,
        "results": results,
        "definitions": dict(DEFINITIONS),
    }
    if data is not None:
        report["accuracy_data"] = accuracy_source(data)
    return mark_emulated(report)


def bench_checkpoint(
    checkpoint: str | Path,
    *,
    profile: str | None = None,
    backends: Sequence[str] | None = None,
    patterns: str | Sequence[str] | None = None,
    warmup: int = 10,
    iters: int = 100,
    rss: bool = True,
    cache_dir: str | Path | None = None,
    progress: Callable[[str], None] | None = None,
    data: Any = None,
    max_int8_drop: float = 1.0,
) -> dict[str, Any]:
    """Benchmark a checkpoint: the PyTorch reference and every format the profile's backends run here.

    For each backend (``torch`` first, then the profile's ``backends`` in order), its format is exported
    for the profile at **every precision the profile lists that the format implements**
    (:data:`~edgefuse.export.selection.FORMAT_PRECISIONS`, in the profile's order) into the cache
    (``<cache>/exports/<weights sha256>/<profile>/<format>-<precision>``, reused while the checkpoint is
    unchanged; see :func:`edgefuse.export.export_cached`), and each is benchmarked with
    :func:`bench_artifact`. int8 is calibrated on ``data``'s train split and validated on its test split;
    without ``data`` it is listed in ``unavailable``. A backend or precision that cannot run here is
    listed in ``unavailable`` with the reason instead. Rows are ordered so that one backend and pattern
    at fp32 / fp16 / int8 sit together. The roofline estimate, counted from the fp32 ONNX graphs, is
    attached to every row of a pattern (at the row's precision; it describes the model on the profile's
    target, not a backend).

    Args:
        checkpoint: A checkpoint folder (``model.json`` + ``model.safetensors``).
        profile: Device profile id or TOML path; ``None``: ``generic/x86-64`` (this kind of machine).
        backends: Backends to benchmark (``None``: ``torch`` and the profile's ``backends``).
        patterns: As :func:`bench_artifact`.
        warmup: As :func:`bench_artifact`.
        iters: As :func:`bench_artifact`.
        rss: As :func:`bench_artifact`.
        cache_dir: Cache root for the exports (default: ``$EDGEFUSE_CACHE_DIR`` or ``~/.cache/edgefuse``).
        progress: Callback with a short message per step.
        data: The checkpoint's labelled :class:`~edgefuse.data.base.MultimodalDataset` (``train`` and
            ``test`` splits): int8 calibration and validation, and ``accuracy`` on the test split for
            every row. ``None``: no int8, no accuracy.
        max_int8_drop: Largest accuracy drop (points) an int8 export may show on any pattern; a larger
            one makes that int8 export fail (listed in ``unavailable``).

    Returns:
        The :func:`bench_artifact` report with ``kind = "checkpoint"``, rows of every backend and
        precision (each with its ``format``, ``precision`` and ``artifact``), and ``unavailable``:
        ``[{"backend", "reason"}]`` (with ``precision`` when only that precision is missing).

    Raises:
        ContractError: Bad counts or patterns, an unknown backend name, ``data`` that does not fit the
            model, or nothing that could run.
        CheckpointError: An invalid checkpoint folder.
        EdgeFuseError: Export and load errors (parity, profile...).
    """
    from edgefuse.bench_precisions import accuracy_source, export_precisions, labelled_split, side_by_side
    from edgefuse.cache import cache_root
    from edgefuse.checkpoint import read_checkpoint_info
    from edgefuse.profiles import get_profile
    from edgefuse.runtime.registry import BACKEND_FORMATS, BACKENDS, availability

    _check_counts(warmup, iters)
    say = progress or (lambda _msg: None)
    root = Path(checkpoint)
    info = read_checkpoint_info(root)
    sha = str(info["weights_sha256"])
    if data is not None:  # before any export: the data must be the model's (modalities and labels)
        labelled_split(data, [str(m["name"]) for m in info["modalities"]], info["label_names"])
    prof = get_profile(profile or "generic/x86-64")
    order = list(dict.fromkeys(backends if backends else ["torch", *prof.backends]))
    for name in order:
        if name not in BACKENDS:
            raise ContractError(
                f"unknown backend {name!r}{did_you_mean(name, BACKENDS)}; allowed: {list(BACKENDS)}"
            )
    results: list[dict[str, Any]] = []
    unavailable: list[dict[str, str]] = []
    base = cache_root(cache_dir, "exports") / sha[:16] / prof.id.replace("/", "__")
    for name in order:
        ok, reason = availability(name)
        if not ok:
            unavailable.append({"backend": name, "reason": str(reason)})
            continue
        if name == "torch":
            fmt, runs = "checkpoint", [("fp32", root)]
        else:
            fmt = BACKEND_FORMATS[name]
            runs, missing = export_precisions(
                root, prof, name, fmt, base, data=data, max_int8_drop=max_int8_drop, say=say
            )
            unavailable += missing
        for precision, folder in runs:
            say(f"{name}: benchmarking {precision}")
            report = bench_artifact(
                folder,
                profile=prof.id,
                backends=[name],
                patterns=patterns,
                warmup=warmup,
                iters=iters,
                rss=rss,
                data=data,
            )
            for row in report["results"]:
                row.update({"format": fmt, "precision": precision, "artifact": str(folder)})
                results.append(row)
    if not results:
        lines = "; ".join(f"{u['backend']} {u.get('precision', '(all)')}: {u['reason']}" for u in unavailable)
        raise ContractError(f"no backend of {order} could benchmark {root} here: {lines}")
    fp32_onnx = [r for r in results if r["format"] == "onnx" and r["precision"] == "fp32"]
    counting = Path(fp32_onnx[0]["artifact"]) if fp32_onnx else None
    recount = [r for r in results if r["estimate"].get("ms") is None or r["precision"] == "int8"]
    if counting is None and recount:
        counting = _counting_export(root, prof, base / "onnx-fp32-for-estimates", say)
    for row in recount if counting is not None else ():  # int8: the fp32 graphs, without Q/DQ nodes
        row["estimate"] = {
            **estimate_from_onnx(counting, row["pattern"].split("+"), prof, row["precision"]),
            "note": "estimate counted from the fp32 ONNX export of the same checkpoint",
        }
    extra = {} if data is None else {"accuracy_data": accuracy_source(data)}
    return mark_emulated(
        {
            "kind": "checkpoint",
            "artifact": str(root),
            "profile": prof.id,
            "format": "checkpoint + "
            + ", ".join(sorted({r["format"] for r in results} - {"checkpoint"}) or ["-"]),
            "layout": "split",
            "precision": ", ".join(dict.fromkeys(r["precision"] for r in results)),
            "warmup": warmup,
            "iters": iters,
            "rss": rss,
            "results": side_by_side(results),
            "unavailable": unavailable,
            "definitions": dict(DEFINITIONS),
            **extra,
        }
    )


def _counting_export(ckpt: Path, prof: Any, folder: Path, say: Callable[[str], None]) -> Path | None:
    """A split ONNX export of ``ckpt`` for ``prof`` (cached), only to count FLOPs and bytes; ``None`` if impossible."""
    from edgefuse.errors import EdgeFuseError
    from edgefuse.export import export_cached

    say(f"exporting ONNX for {prof.id} to count FLOPs for the estimates")
    try:
        result, _ = export_cached(ckpt, prof, "onnx", folder)
    except EdgeFuseError as exc:
        _log.info("no ONNX export to count FLOPs (%s); estimates unavailable", exc)
        return None
    return result.folder if result.status == "ok" else None


# --------------------------------------------------------------------------------------------------
# Plain model files
# --------------------------------------------------------------------------------------------------


#: Largest plain model file ``edgefuse bench model.onnx`` reads.
MAX_MODEL_BYTES = 4 << 30


class _ModelRunner:
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

    _check_counts(warmup, iters)
    p = Path(path)
    if not os.path.lexists(p):
        raise ContractError(f"{p} does not exist; give an artifact folder or a .onnx / .tflite file")
    if p.suffix.lower() not in _MODEL_SUFFIXES:
        raise ContractError(f"{p}: unsupported model file {p.suffix!r}; supported: {list(_MODEL_SUFFIXES)}")
    try:  # a regular file of bounded size: a FIFO or /dev/zero is refused before it is read
        data = read_bounded(p, max_bytes=MAX_MODEL_BYTES, what="model file")
    except EdgeFuseError as exc:
        raise ContractError(str(exc)) from None
    prof = None
    if profile is not None:
        from edgefuse.profiles import get_profile

        prof = get_profile(profile)
        if threads is None:
            threads = max(1, min(int(prof.threads), os.cpu_count() or 1))
    t0 = time.perf_counter()
    try:
        runner = _ModelRunner(p, threads, data)
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
    dynamic = runner.batch_dynamic
    times = _time_calls(lambda: runner.run(1), warmup, iters)
    arr = np.asarray(times)
    figures: dict[str, Any] = {
        "p50_ms": _ms(float(np.percentile(arr, 50))),
        "p90_ms": _ms(float(np.percentile(arr, 90))),
        "p99_ms": _ms(float(np.percentile(arr, 99))),
        "mean_ms": _ms(float(arr.mean())),
        "throughput_b1": float(len(times) / arr.sum()),
        "throughput_b8": None,
    }
    if dynamic:
        times8 = _time_calls(lambda: runner.run(8), max(1, warmup // 4), max(1, iters // 4))
        figures["throughput_b8"] = float(8 * len(times8) / sum(times8))
    if runner.suffix == ".onnx":
        cost = count_onnx(p, 1)
        if prof is None:
            estimate: dict[str, Any] = {
                "kind": "estimate",
                "ms": None,
                "flops": cost.flops,
                "bytes": cost.bytes,
                "note": "estimate unavailable (no --profile given: no peak compute or bandwidth)",
            }
        else:
            precision = "fp16" if _onnx_is_fp16(p) else "fp32"
            estimate = roofline_estimate(
                cost.flops, cost.bytes, prof.compute.peak(precision), prof.compute.memory_bandwidth_gbs
            )
            estimate.update({"profile": str(prof.id), "precision": precision})
    else:
        estimate = {
            "kind": "estimate",
            "ms": None,
            "note": "estimate unavailable (FLOP counting implemented for ONNX)",
        }
    row: dict[str, Any] = {
        "backend": runner.backend,
        "pattern": "-",
        "size_bytes": p.stat().st_size,
        "load_ms": _ms(load_s),
        "first_ms": _ms(first_s),
        **figures,
        "threads": threads,
        "estimate": estimate,
    }
    if rss:
        row.update(_peak_rss_subprocess("model", {"path": str(p), "threads": threads}))
    else:
        row.update({"peak_rss_mb": _ru_maxrss_mb(), "rss_scope": "process peak"})
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
            "definitions": dict(DEFINITIONS),
        }
    )


def _onnx_is_fp16(path: Path) -> bool:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return any(i.data_type == onnx.TensorProto.FLOAT16 for i in model.graph.initializer)
