"""Benchmark an artifact folder per backend x presence pattern, with the target's estimate and budgets.

For each backend x presence pattern: the bytes of the files the session loads, load time, first-inference
time, warm p50/p90/p99, mean, spread (IQR, CV of block medians), throughput at batch 1 and 8, peak RSS of a
fresh subprocess, the roofline **estimate** for the profile's target (:mod:`edgefuse.roofline`, from the
operation counts the manifest records at export, or counted from the ONNX files of older artifacts), and
the profile's budgets checked against that estimate (:func:`budget_check`).

Nothing here needs torch or onnx for an artifact whose manifest records its costs: this runs on a device
with only ``edgefuse[onnxruntime]`` or ``edgefuse[litert]`` installed.
"""

from __future__ import annotations

import importlib.util
import itertools
import logging
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

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
from edgefuse.errors import ContractError, ProfileError, did_you_mean
from edgefuse.roofline import GraphCost, estimate_ops

__all__ = [
    "ESTIMATE_MARGIN",
    "bench_artifact",
    "budget_check",
    "estimate_pattern",
    "model_bytes",
    "parse_patterns",
    "pattern_inputs",
]

_log = logging.getLogger(__name__)

#: The factor by which an estimate may be off (``host_estimate_ratio`` in ``benchmarks/bench_workload.py``
#: checks the estimate lands within [1/2, 2] of a measurement on this host): a budget is passed only when
#: twice the estimate fits, failed only when half the estimate does not, and "uncertain" in between.
ESTIMATE_MARGIN = 2.0


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


def pattern_inputs(
    session: Any, pattern: Sequence[str], zero_fill: bool = False
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Random inputs at batch 1 and 8 for the modalities of ``pattern`` (seeded).

    With ``zero_fill`` every modality of the session is given, the absent ones as zeros (and nothing is
    marked absent): what a model without presence handling is fed on a device lacking those sensors.
    """
    rng = np.random.default_rng(0)
    specs = {m["name"]: m for m in session.manifest.data["modalities"]}
    given = session.modalities if zero_fill else pattern
    one, eight = {}, {}
    for m in given:
        shape = tuple(int(d) for d in specs[m]["shape"])
        dtype = np.dtype(specs[m]["dtype"])
        if m in pattern:
            one[m] = rng.standard_normal((1, *shape)).astype(dtype)
            eight[m] = rng.standard_normal((8, *shape)).astype(dtype)
        else:
            one[m] = np.zeros((1, *shape), dtype)
            eight[m] = np.zeros((8, *shape), dtype)
    return one, eight


def _graph_cost(manifest: Any, name: str) -> tuple[GraphCost | None, str | None]:
    """The cost of graph ``name``: recorded at export, or counted from its ONNX file; ``(None, why)`` else."""
    graph = manifest.data["graphs"][name]
    if isinstance(graph.get("cost"), Mapping):
        return GraphCost.from_dict(graph["cost"]), None
    if manifest.format != "onnx":
        return None, "estimate unavailable: this artifact predates recorded operation counts (re-export it)"
    if importlib.util.find_spec("onnx") is None:
        return None, "estimate unavailable: no operation counts in the manifest and onnx is not installed"
    from edgefuse.roofline import count_onnx

    return count_onnx(Path(manifest.root) / graph["files"][0]), None


def estimate_pattern(
    manifest: Any,
    pattern: Sequence[str],
    profile: Any,
    backend: str,
    zero_fill: bool = False,
    precision: str | None = None,
) -> dict[str, Any]:
    """Roofline estimate of one inference with ``pattern`` present, on ``profile``'s target.

    A split artifact runs the encoders of ``pattern`` and the head (one call each) and the fusion kernel;
    a monolithic one runs its single graph (every encoder, present or not); ``zero_fill`` on a split
    artifact runs every encoder too.

    Args:
        manifest: The artifact's :class:`~edgefuse.manifest.Manifest`.
        pattern: The modalities present.
        profile: The target's :class:`~edgefuse.profiles.DeviceProfile`.
        backend: The backend that runs it (picks the efficiency factor and call overhead).
        zero_fill: Whether every encoder runs.
        precision: The precision to estimate at (``None``: the artifact's; the recorded counts are fp32
            and bytes are scaled to it).

    Returns:
        The :func:`~edgefuse.roofline.estimate_ops` dict (``kind = "estimate"``) plus ``graphs`` and
        ``max_op_bytes``; ``{"kind": "estimate", "ms": None, "note"}`` when a graph has no cost.

    Raises:
        ContractError: A pattern naming a modality the artifact has no encoder for.
    """
    specs = {m["name"]: m for m in manifest.data["modalities"]}
    missing = [m for m in pattern if m not in specs]
    if missing:
        raise ContractError(f"{manifest.root} has no encoder for {missing}; it has {sorted(specs)}")
    dim = int(manifest.data["fusion"].get("dim") or 0)
    if manifest.layout == "monolithic":
        names = list(manifest.data["graphs"])
        cost = GraphCost(0, 0)
    else:
        present = list(specs) if zero_fill else list(pattern)
        names = [str(specs[m].get("graph", f"encoder_{m}")) for m in present] + ["head"]
        fused = 4 * dim * (len(present) + 1)  # the C++ kernel reads M embeddings, writes one
        cost = GraphCost(4 * dim * len(present), fused, (), ((4 * dim * len(present), fused),))
    for name in names:
        graph_cost, why = _graph_cost(manifest, name)
        if graph_cost is None:
            return {"kind": "estimate", "ms": None, "note": why}
        cost = cost + graph_cost
    precision = precision or str(manifest.data.get("precision", "fp32"))
    est = estimate_ops(cost, profile, precision, backend, calls=len(names))
    scale = est["bytes"] / cost.bytes if cost.bytes else 1.0
    est.update({"graphs": names, "max_op_bytes": int(max((b for _, b in cost.ops), default=0) * scale)})
    return est


def model_bytes(manifest: Any, graphs: Sequence[str], precision: str | None = None) -> int:
    """Bytes of the files of ``graphs`` as the manifest records them (no file is read).

    Scaled from the artifact's precision to ``precision``: an estimate of the model's size at another one.
    """
    sizes = {f["path"]: int(f["size"]) for f in manifest.data["files"]}
    total = sum(sizes.get(rel, 0) for g in graphs for rel in manifest.data["graphs"][g]["files"])
    scale = {"fp32": 1.0, "fp16": 0.5, "int8": 0.25}
    own = str(manifest.data.get("precision", "fp32"))
    return int(total * scale.get(precision or own, 1.0) / scale.get(own, 1.0))


def budget_check(
    profile: Any, estimate: Mapping[str, Any], model_bytes: int, margin: float = ESTIMATE_MARGIN
) -> dict[str, Any]:
    """Check an estimate against the profile's ``[budgets]`` (``latency_ms``, ``memory_mb``).

    Latency: the estimate's ``ms``. Memory: the model's own memory on the target, ``model_bytes`` (the
    graph files loaded) plus the largest operation's tensors (``max_op_bytes``); the runtime's own
    footprint is not included. Each is ``"pass"`` when ``margin`` x the estimate fits the budget,
    ``"fail"`` when the estimate / ``margin`` exceeds it, ``"uncertain"`` in between, ``None`` without a
    budget or an estimate.

    Returns:
        ``{"latency_ms", "latency_budget_ms", "latency", "memory_mb", "memory_budget_mb", "memory",
        "margin", "ok"}``; ``ok`` is ``False`` when any check failed.
    """
    from edgefuse.profiles import Budgets

    budgets = profile.budgets or Budgets()

    def verdict(value: float | None, budget: float | None) -> str | None:
        if value is None or budget is None:
            return None
        if value * margin <= budget:
            return "pass"
        return "fail" if value / margin > budget else "uncertain"

    ms = estimate.get("ms")
    memory_mb = (model_bytes + int(estimate.get("max_op_bytes") or 0)) / 2**20 if ms is not None else None
    out = {
        "latency_ms": ms,
        "latency_budget_ms": budgets.latency_ms,
        "latency": verdict(ms, budgets.latency_ms),
        "memory_mb": memory_mb,
        "memory_budget_mb": budgets.memory_mb,
        "memory": verdict(memory_mb, budgets.memory_mb),
        "margin": margin,
    }
    out["ok"] = "fail" not in (out["latency"], out["memory"])
    return out


def _file_bytes(root: Path, files: Sequence[str]) -> int:
    total = 0
    for rel in files:
        p = root / rel
        if p.is_dir():
            total += sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
        elif p.exists():
            total += p.stat().st_size
    return total


def _profile_or_none(profile: str | None, manifest: Any, root: Path) -> Any:
    from edgefuse.profiles import get_profile

    try:
        return get_profile(profile if profile is not None else str(manifest.data["profile"]))
    except ProfileError:
        _log.info("profile of %s not known here; no estimate", root)
        return None


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
    threads: int | None = None,
    zero_fill: bool = False,
) -> dict[str, Any]:
    """Benchmark an artifact folder per backend x presence pattern.

    Args:
        artifact: The artifact folder (holding ``manifest.json``).
        profile: Device profile id or TOML path (decides encoders loaded, threads, the estimate's target
            and budgets); ``None``: the manifest's profile.
        backends: Backend names to benchmark, each alone (``None``: the one the session chooses).
        patterns: ``"all,audio,image"`` style patterns (``None``: every non-empty subset).
        warmup: Warm-up calls before timing.
        iters: Timed calls at batch 1, in blocks (batch 8 uses as many calls).
        rss: Measure peak RSS in a fresh subprocess per backend x pattern.
        data: A labelled dataset (accuracy on its ``test`` split) or labelled split: each row then gets
            ``accuracy``, the top-1 accuracy (0..1) of the session with only the pattern's modalities.
        threads: Intra-op threads (``None``: the profile's, capped at this machine's cores).
        zero_fill: Feed every modality, absent ones as zeros, all marked present (the baseline of a model
            without presence handling); the session loads every encoder.

    Returns:
        ``{"kind": "artifact", "artifact", "profile", "format", "layout", "precision", "rss", "host",
        "warnings", "results": [...], "definitions"}`` (and ``accuracy_data`` with ``data``); each result
        has the figures of :data:`DEFINITIONS`, ``precision``, ``estimate`` and ``budget``.

    Raises:
        ContractError: Bad counts or patterns; ``data`` lacking a modality, labels or the model's labels.
        EdgeFuseError: Whatever loading the artifact raises (manifest, backend, profile errors).
    """
    from edgefuse.runtime import BackendFallbackWarning, load

    check_counts(warmup, iters)
    root = Path(artifact)
    split = None
    names: list[str | None] = list(backends) if backends else [None]
    results = []
    first_session = None
    load_info = host_load()
    for name in names:
        t0 = time.perf_counter()
        probe = load(root, profile=profile, backend=name, threads=threads)
        probe_load = time.perf_counter() - t0
        prof_obj = _profile_or_none(profile, probe.manifest, root)
        first_session = first_session or probe
        pats = parse_patterns(patterns, probe.modalities)
        size = _file_bytes(root, probe.loaded_files)
        if data is not None and split is None:
            from edgefuse.bench.precisions import labelled_split

            split = labelled_split(data, probe.modalities, probe.label_names)
        for i, pattern in enumerate(pats):
            if i == 0:
                session, load_s = probe, probe_load
            else:
                t0 = time.perf_counter()
                with warnings.catch_warnings():  # the probe load above already told the user
                    warnings.simplefilter("ignore", BackendFallbackWarning)
                    session = load(root, profile=profile, backend=name, threads=threads)
                load_s = time.perf_counter() - t0
            results.append(
                _bench_pattern(session, pattern, prof_obj, size, load_s, warmup, iters, split, zero_fill)
            )
            if rss:
                spec = {
                    "artifact": str(root),
                    "profile": profile,
                    "backend": session.backend,
                    "pattern": list(pattern),
                    "threads": threads,
                    "zero_fill": zero_fill,
                }
                results[-1].update(peak_rss_subprocess("artifact", spec))
            else:
                results[-1].update({"peak_rss_mb": ru_maxrss_mb(), "rss_scope": "process peak"})
            if session is not probe:
                session.close()
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
        "zero_fill": zero_fill,
        "warmup": warmup,
        "iters": iters,
        "rss": rss,
        "host": load_info,
        "warnings": noise_warnings(results, load_info),
        "results": results,
        "definitions": dict(DEFINITIONS),
    }
    if data is not None:
        from edgefuse.bench.precisions import accuracy_source

        report["accuracy_data"] = accuracy_source(data)
    return mark_emulated(report)


def _bench_pattern(
    session: Any,
    pattern: tuple[str, ...],
    prof: Any,
    size: int,
    load_s: float,
    warmup: int,
    iters: int,
    split: Any,
    zero_fill: bool,
) -> dict[str, Any]:
    """One result row: timings of ``session`` with ``pattern`` present, its estimate and budget check."""
    inputs1, inputs8 = pattern_inputs(session, pattern, zero_fill)
    t0 = time.perf_counter()
    session.predict(inputs1)
    first_s = time.perf_counter() - t0
    figures = latency_figures(
        lambda: session.predict(inputs1), lambda: session.predict(inputs8), warmup, iters
    )
    if prof is None:
        estimate: dict[str, Any] = {
            "kind": "estimate",
            "ms": None,
            "note": "estimate unavailable (no known device profile)",
        }
    else:
        estimate = estimate_pattern(session.manifest, pattern, prof, session.backend, zero_fill)
    row: dict[str, Any] = {
        "backend": session.backend,
        "precision": str(session.manifest.data.get("precision", "fp32")),
        "pattern": "+".join(pattern),
        "size_bytes": size,
        "load_ms": load_s * 1e3,
        "first_ms": first_s * 1e3,
        **figures,
        "threads": session.threads,
        "estimate": estimate,
        "budget": None if prof is None else budget_check(prof, estimate, size),
    }
    if split is not None:
        from edgefuse.bench.precisions import pattern_accuracy

        row["accuracy"] = pattern_accuracy(session, split, pattern)
    return row
