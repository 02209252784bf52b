"""Benchmark a checkpoint: the PyTorch reference and every format (and precision) the profile runs here.

Each format is exported into the cache and benchmarked with :func:`edgefuse.bench.artifact.bench_artifact`;
rows of one backend and pattern at fp32 / fp16 / int8 sit side by side.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from edgefuse.bench.artifact import bench_artifact, budget_check, estimate_pattern
from edgefuse.bench.report import DEFINITIONS
from edgefuse.bench.timing import check_counts, host_load, noise_warnings
from edgefuse.emulation import mark as mark_emulated
from edgefuse.errors import ContractError, did_you_mean

__all__ = ["bench_checkpoint"]

_log = logging.getLogger(__name__)


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
    threads: int | None = None,
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
        threads: Intra-op threads for every backend (``None``: the profile's, capped at this machine's).

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
    from edgefuse.bench.precisions import accuracy_source, export_precisions, labelled_split, side_by_side
    from edgefuse.cache import cache_root
    from edgefuse.checkpoint import read_checkpoint_info
    from edgefuse.profiles import get_profile
    from edgefuse.runtime.registry import BACKEND_FORMATS, BACKENDS, availability

    check_counts(warmup, iters)
    load = host_load()  # before this benchmark adds its own load
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
                threads=threads,
            )
            for row in report["results"]:
                row.update({"format": fmt, "precision": precision, "artifact": str(folder)})
                results.append(row)
    if not results:
        lines = "; ".join(f"{u['backend']} {u.get('precision', '(all)')}: {u['reason']}" for u in unavailable)
        raise ContractError(f"no backend of {order} could benchmark {root} here: {lines}")
    _fill_estimates(results, root, prof, base, say)
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
            "host": load,
            "warnings": noise_warnings(results, load),
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


def _fill_estimates(
    results: list[dict[str, Any]], ckpt: Path, prof: Any, base: Path, say: Callable[[str], None]
) -> None:
    """Give rows without an estimate (PyTorch, artifacts without counts) one from an artifact that has counts."""
    from edgefuse.manifest import read_manifest

    missing = [r for r in results if r["estimate"].get("ms") is None]
    if not missing:
        return
    counted = next(
        (
            Path(r["artifact"])
            for r in results
            if r["estimate"].get("ms") is not None and r["format"] != "checkpoint"
        ),
        None,
    )
    if counted is None:
        counted = _counting_export(ckpt, prof, base / "onnx-fp32-for-estimates", say)
    if counted is None:
        return
    manifest = read_manifest(counted)
    for row in missing:
        est = estimate_pattern(
            manifest, row["pattern"].split("+"), prof, row["backend"], precision=row["precision"]
        )
        if est.get("ms") is None:
            continue
        est["note"] = f"estimate from the operation counts of {counted.name} (same checkpoint)"
        row["estimate"] = est
        row["budget"] = budget_check(prof, est, row["size_bytes"])
