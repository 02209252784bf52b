"""``edgefuse demo``: the whole story end to end, written up as ``report.html`` + ``report.json``.

1. **Data**: AV-digits (FSDD speech + 8x8 digit images). Without FSDD, the digit images are paired with
   a clearly labelled *synthetic* audio modality so the demo still runs anywhere.
2. **Train**: the supervised late-fusion baseline and each candidate intervention (modality dropout,
   MASD) on audio+image, plus the single-modality specialists the metrics need. The intervention kept
   is the one with the best mean **validation** accuracy over every presence pattern (never test).
3. **Robustness grid** on the test split: every train set x test set with the metrics of docs/metrics.md.
4. **Export** the kept model for every device profile in the format of each of its backends
   (``export_cached``: reused while the checkpoint is unchanged), with parity against PyTorch under
   every presence pattern; formats that cannot be converted here are reported with the reason. An
   export that fails (its conversion or validation, e.g. parity) is reported too, and listed in the
   report's ``failed_exports``: ``edgefuse demo`` then exits 1, after writing the report.
5. **Accuracy per presence pattern per profile**, measured by running the exported artifact through
   the runtime on the test split (only the encoders of the sensors present run).
6. **Benchmark** each profile's artifact on this machine (p50/p90/p99, throughput, peak RSS) next to
   the roofline *estimate* for the profile's target.
7. **Report**: ``report.json`` and a self-contained ``report.html`` (tables, embedded plots). A model
   whose validation accuracy is within 5 points of chance did not learn (:mod:`edgefuse.chance`):
   ``report.json`` records it (``trained_models``, ``not_learned``, ``warnings``) and the page warns at
   the top instead of computing its retention and verdicts.

A second run reuses the trained checkpoints (keyed by a fingerprint of the data and the recipe), the
exports and the feature cache, so only the evaluation and the benchmarks run again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import platform
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgefuse.errors import ContractError, EdgeFuseError

__all__ = ["DemoConfig", "run_demo"]

_log = logging.getLogger(__name__)

#: Interventions the demo trains as candidates for "the best intervention".
CANDIDATES = ("moddrop", "masd")
FULL = ("audio", "image")


@dataclass(frozen=True)
class DemoConfig:
    """What the demo runs.

    Attributes:
        out: Output folder (report, checkpoints, exports, plots).
        fsdd: FSDD folder; ``None``: ``$EDGEFUSE_FSDD``, and the synthetic-audio fallback when neither
            is set or found. An explicit folder that is not usable is an error, never a fallback.
        audio: ``auto`` (FSDD when found, else synthetic), ``fsdd`` (FSDD or an error) or ``synthetic``.
        profiles: Profile ids; ``None``: every built-in profile.
        epochs: Training epochs per model.
        seed: Training and data seed.
        degrade_image: PCA components kept per image (makes image about as informative as audio).
        candidates: Interventions trained; the best on validation is kept.
        bench_warmup: Warm-up calls per benchmarked pattern.
        bench_iters: Timed calls at batch 1 per pattern.
        rss: Measure peak RSS in a fresh subprocess per profile.
        fresh: Ignore cached checkpoints and exports (retrain, re-export).
    """

    out: Path = Path("out/demo")
    fsdd: str | None = None
    audio: str = "auto"
    profiles: tuple[str, ...] | None = None
    epochs: int = 20
    seed: int = 0
    degrade_image: int = 4
    candidates: tuple[str, ...] = CANDIDATES
    bench_warmup: int = 10
    bench_iters: int = 100
    rss: bool = True
    fresh: bool = False


@dataclass
class _Steps:
    """Progress reporting: a callback ``(message)`` plus per-step timings for the report."""

    say: Callable[[str], None]
    advance: Callable[[str], None]
    seconds: dict[str, float] = field(default_factory=dict)

    def timed(self, name: str, t0: float) -> None:
        self.seconds[name] = round(time.perf_counter() - t0, 2)
        self.advance(name)


#: The demo's steps, in order (for a progress bar with a known total).
STEPS = ("data", "train", "export", "accuracy", "bench", "report")


# --------------------------------------------------------------------------------------------------
# 1. data
# --------------------------------------------------------------------------------------------------


def _load_data(cfg: DemoConfig) -> tuple[Any, dict[str, Any]]:
    from edgefuse.data.avdigits import FSDD_ENV, load_av_digits, load_av_digits_synthetic_audio

    if cfg.audio not in ("auto", "fsdd", "synthetic"):
        raise ContractError(f"audio={cfg.audio!r}: choose auto, fsdd or synthetic")
    given = cfg.fsdd or os.environ.get(FSDD_ENV) or None
    if cfg.audio == "synthetic" or (cfg.audio == "auto" and not given):
        reason = (
            "asked for (--audio synthetic)"
            if cfg.audio == "synthetic"
            else f"FSDD not given (--fsdd or ${FSDD_ENV})"
        )
        data = load_av_digits_synthetic_audio(degrade_image=cfg.degrade_image, seed=cfg.seed)
        return data, {
            "name": data.name,
            "audio": "synthetic",
            "why": reason,
            "label": "SYNTHETIC AUDIO: real digit images paired with a synthetic audio pattern per digit; "
            "audio results say nothing about real speech",
        }
    # An FSDD folder was given (argument or environment): it must work; no silent fallback.
    data = load_av_digits(given, degrade_image=cfg.degrade_image, seed=cfg.seed)
    return data, {
        "name": data.name,
        "audio": "fsdd",
        "fsdd": str(data.meta.get("fsdd")),
        "label": "FSDD spoken digits (speaker-disjoint splits) paired by label with 8x8 digit images",
        "attribution": data.meta.get("attribution"),
    }


def _fingerprint(data: Any, cfg: DemoConfig) -> str:
    """sha256 of every array of the dataset and of the training recipe (keys the checkpoint cache)."""
    from edgefuse import __version__

    h = hashlib.sha256()
    recipe = {
        "epochs": cfg.epochs,
        "seed": cfg.seed,
        "candidates": list(cfg.candidates),
        "degrade_image": cfg.degrade_image,
        "edgefuse": __version__,
        "dataset": data.name,
    }
    h.update(json.dumps(recipe, sort_keys=True).encode())
    for split in ("train", "val", "test"):
        part = data.split(split)
        h.update(np.ascontiguousarray(part.labels).tobytes())
        for m in data.modality_names:
            h.update(np.ascontiguousarray(part.inputs[m]).tobytes())
    return h.hexdigest()


# --------------------------------------------------------------------------------------------------
# 2-3. training, selection on validation, robustness grid
# --------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _near_chance_warnings() -> Iterator[list[str]]:
    """Collect the texts of the :class:`~edgefuse.chance.NearChanceWarning` raised inside.

    They go to the report (``warnings``), not the terminal; any other warning is passed on unchanged.
    """
    from edgefuse.chance import NearChanceWarning

    texts: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", NearChanceWarning)
        yield texts
    for w in caught:
        if issubclass(w.category, NearChanceWarning):
            texts.append(str(w.message))
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)


def _learned(data: Any, val_accuracy: Mapping[str, Mapping[str, float]]) -> list[dict[str, Any]]:
    """Per model trained on every modality (baseline, candidates): val accuracy, chance level, near_chance."""
    from edgefuse.chance import chance_accuracy, near_chance

    full = "+".join(data.modality_names)
    chance = chance_accuracy(data.split("val").labels)
    return [
        {
            "label": label,
            "train": full,
            "split": "val",
            "accuracy": acc[full],
            "chance": chance,
            "near_chance": near_chance(acc[full], chance),
        }
        for label, acc in val_accuracy.items()
    ]


def _train_all(data: Any, cfg: DemoConfig, root: Path, fingerprint: str, steps: _Steps) -> dict[str, Any]:
    """Train (or reuse) the baseline + candidates; pick the best candidate on val; the grid on test."""
    from edgefuse.checkpoint import read_checkpoint_info
    from edgefuse.errors import CheckpointError
    from edgefuse.robustness import GridResult

    models_dir = root / "models"
    grid_json = root / "grid" / "grid.json"
    state_json = root / "models" / "demo-state.json"
    if not cfg.fresh and state_json.is_file() and grid_json.is_file():
        try:
            state = json.loads(state_json.read_text())
            if state.get("fingerprint") == fingerprint:
                for label in state["checkpoints"].values():
                    info = read_checkpoint_info(models_dir / label)
                    if (info.get("dataset") or {}).get("demo_fingerprint") != fingerprint:
                        raise CheckpointError(f"{label}: fingerprint differs")
                grid = GridResult.from_dict(json.loads(grid_json.read_text()))
                steps.say("reusing the trained models and the robustness grid (same data and recipe)")
                return {**state, "grid": grid, "reused": True}
        except (OSError, ValueError, KeyError, CheckpointError, ContractError) as exc:
            _log.info("cached models not reusable (%s); training again", exc)

    from edgefuse.checkpoint import save_checkpoint
    from edgefuse.robustness import evaluate_grid, run_grid, subsets, variant_label
    from edgefuse.train import TrainConfig

    t0 = time.perf_counter()
    full = tuple(data.modality_names)
    kept: dict[str, Any] = {}

    def on_model(key: tuple[str, tuple[str, ...], int], model: Any) -> None:
        label, s, _seed = key
        if s == full:
            kept[label] = model
            steps.say(f"trained {label} on {'+'.join(s)}")

    base = TrainConfig(modalities=full, epochs=cfg.epochs, seed=cfg.seed)
    steps.say(f"training the baseline and {list(cfg.candidates)} ({cfg.epochs} epochs each) + specialists")
    with _near_chance_warnings() as near:
        grid = run_grid(
            data,
            train_sets=[full],
            methods=["supervised"],
            seeds=[cfg.seed],
            base_config=base,
            interventions=["none", *cfg.candidates],
            include_specialists=True,
            on_model=on_model,
        )
    # Selection on the validation split only: mean accuracy over every presence pattern.
    val = evaluate_grid({(k, full, cfg.seed): m for k, m in kept.items()}, data, split="val")
    val_scores = {label: val.scores[(label, full, cfg.seed)] for label in kept}
    patterns = subsets(full)
    mean_val = {label: float(np.mean([row[t] for t in patterns])) for label, row in val_scores.items()}
    baseline = variant_label("supervised", "none")
    candidates = [variant_label("supervised", c) for c in cfg.candidates]
    best = max(candidates, key=lambda c: mean_val[c]) if candidates else baseline
    checkpoints = {"baseline": baseline, "best": best}
    dataset_info = {"name": data.name, "demo_fingerprint": fingerprint, "counts": data.meta.get("counts")}
    for role, label in checkpoints.items():
        save_checkpoint(
            kept[label],
            models_dir / label,
            recipe={**base.to_dict(), "intervention": label.split("+")[1] if "+" in label else "none"},
            seed=cfg.seed,
            metrics={"val_accuracy": {"+".join(t): v for t, v in val_scores[label].items()}},
            dataset=dataset_info,
            overwrite=True,
        )
        steps.say(f"saved the {role} ({label}) to {models_dir / label}")
    grid.write_report(root / "grid")
    state = {
        "fingerprint": fingerprint,
        "checkpoints": checkpoints,
        "selection": {
            "rule": "highest mean validation accuracy over every presence pattern (all, audio only, image only)",
            "split": "val",
            "mean_val_accuracy": mean_val,
            "val_accuracy": {k: {"+".join(t): v for t, v in row.items()} for k, row in val_scores.items()},
        },
        "train_seconds": round(time.perf_counter() - t0, 1),
        "warnings": near,
    }
    state_json.parent.mkdir(parents=True, exist_ok=True)
    state_json.write_text(json.dumps(state, indent=2))
    return {**state, "grid": grid, "reused": False}


# --------------------------------------------------------------------------------------------------
# 4. exports
# --------------------------------------------------------------------------------------------------


def _export_all(
    ckpt: Path, profiles: Sequence[Any], data: Any, root: Path, cfg: DemoConfig, steps: _Steps
) -> list[dict[str, Any]]:
    from edgefuse.export import export_cached
    from edgefuse.export.errors import ExportError
    from edgefuse.export.int8 import Int8Settings
    from edgefuse.export.selection import plan_formats

    rows = []
    test = data.split("test")
    # int8 where the profile prefers it: calibrated on the training split, validated per presence
    # pattern on the test split (the same rule as `edgefuse export` without --format/--precision)
    int8 = Int8Settings.from_dataset(data)
    for prof in profiles:
        for choice in plan_formats(prof):
            fmt, precision, note = choice.format, choice.precision, choice.reason
            folder = root / "export" / prof.id / f"{fmt}-{precision}"
            if cfg.fresh and folder.exists():
                import shutil

                shutil.rmtree(folder)
            steps.say(f"export {prof.id}: {fmt} {precision}")
            t0 = time.perf_counter()
            try:
                result, reused = export_cached(
                    ckpt,
                    prof,
                    fmt,
                    folder,
                    precision=precision,
                    agreement_split=test if precision == "fp16" else None,
                    int8=int8 if precision == "int8" else None,
                )
            except ExportError as exc:  # a failure (the output refused): reported, and the demo goes on
                rows.append(
                    {
                        "profile": prof.id,
                        "format": fmt,
                        "precision": precision,
                        "status": "failed",
                        "reason": f"{type(exc).__name__}: {exc}",
                        "note": note,
                    }
                )
                continue
            parity = [c for c in result.parity if c.get("output") == "logits"]
            rows.append(
                {
                    "profile": prof.id,
                    "format": fmt,
                    "precision": precision,
                    "status": result.status,
                    "reason": result.reason,
                    "note": note,
                    "folder": str(result.folder) if result.folder else None,
                    "reused": reused,
                    "seconds": round(time.perf_counter() - t0, 2),
                    "parity_checks": len(result.parity),
                    "parity_passed": all(c.get("passed") for c in result.parity) if result.parity else None,
                    "parity_max_abs_logits": max((float(c["max_abs"]) for c in parity), default=None),
                    "fp16_top1_agreement": result.agreement,
                    "int8_worst_drop_points": result.worst_int8_drop,
                    "int8_accuracy": (result.int8 or {}).get("accuracy"),
                    "size_bytes": _folder_graph_bytes(result.folder) if result.folder else None,
                }
            )
    return rows


def _failure(profile: str, fmt: str, precision: str, reason: str | None) -> dict[str, Any]:
    return {"profile": profile, "format": fmt, "precision": precision, "reason": reason}


def _exported_format(backend: str) -> str | None:
    """The artifact format a backend runs, or ``None`` for torch (it runs checkpoints, nothing exported)."""
    from edgefuse.runtime.registry import BACKEND_FORMATS

    fmt = BACKEND_FORMATS.get(backend)
    return None if fmt in (None, "checkpoint") else fmt


def _folder_graph_bytes(folder: Path | None) -> int | None:
    if folder is None or not (folder / "manifest.json").is_file():
        return None
    data = json.loads((folder / "manifest.json").read_text())
    return int(sum(f["size"] for f in data["files"] if f.get("role") != "reference"))


def _runnable(
    prof: Any, exports: Sequence[Mapping[str, Any]]
) -> tuple[str, Mapping[str, Any]] | tuple[None, str]:
    """The first backend of the profile that runs here with an exported artifact, or why none does."""
    from edgefuse.runtime.registry import availability

    reasons = []
    for backend in prof.backends:
        fmt = _exported_format(backend)
        if fmt is None:
            reasons.append(f"{backend}: runs checkpoints, not device artifacts")
            continue
        row = next((r for r in exports if r["profile"] == prof.id and r["format"] == fmt), None)
        ok, why = availability(backend)
        if not ok:
            reasons.append(str(why))
            continue
        if row is None or row["status"] != "ok":
            reasons.append(f"{backend}: no {fmt} artifact ({row['reason'] if row else 'not exported'})")
            continue
        return backend, row
    return None, "; ".join(reasons)


# --------------------------------------------------------------------------------------------------
# 5. accuracy per presence pattern on the device artifact
# --------------------------------------------------------------------------------------------------


def _accuracy(
    profiles: Sequence[Any],
    exports: Sequence[Mapping[str, Any]],
    data: Any,
    grid: Any,
    best: str,
    steps: _Steps,
) -> list[dict[str, Any]]:
    from edgefuse.robustness import subsets
    from edgefuse.runtime import load

    test = data.split("test")
    full = tuple(data.modality_names)
    rows = []
    for prof in profiles:
        reference = {
            "+".join(t): grid.scores[(best, full, next(iter(grid.seeds)))][t]
            for t in subsets(full)
            if all(prof.has_modality(m) for m in t)
        }
        backend, row = _runnable(prof, exports)
        if backend is None:
            rows.append(
                {"profile": prof.id, "backend": None, "reason": row, "accuracy": {}, "reference": reference}
            )
            continue
        steps.say(f"accuracy {prof.id} on {backend}")
        acc = {}
        try:
            with load(row["folder"], profile=prof, backend=backend) as session:
                for pattern in subsets(session.modalities):
                    inputs = {m: test.inputs[m] for m in pattern}
                    pred = session.predict(inputs)
                    acc["+".join(pattern)] = float((pred.label_ids == test.labels).mean())
        except EdgeFuseError as exc:  # reported per profile; the other profiles still run
            reason = f"{backend} failed: {type(exc).__name__}: {exc}"
            rows.append(
                {
                    "profile": prof.id,
                    "backend": None,
                    "reason": reason,
                    "accuracy": {},
                    "reference": reference,
                }
            )
            continue
        rows.append(
            {
                "profile": prof.id,
                "backend": backend,
                "format": row["format"],
                "precision": row["precision"],
                "accuracy": acc,
                "reference": reference,
                "rows": len(test.labels),
            }
        )
    return rows


def _corruption(data: Any, root: Path, labels: Mapping[str, str], steps: _Steps) -> dict[str, Any]:
    """Fused and single-modality accuracy of the baseline and the kept model under corrupted sensors.

    Audio noise and image noise at severities 1-5 (plus another microphone's EQ when the audio is FSDD
    waveforms), on the test split: :func:`edgefuse.degraded.corruption_curves`.
    """
    from edgefuse.checkpoint import load_checkpoint
    from edgefuse.degraded import corruption_curves

    kinds = [("audio", "noise"), ("image", "noise")]
    if (data.meta or {}).get("audio_files"):
        kinds.insert(1, ("audio", "eq"))
    out: dict[str, Any] = {"kinds": [list(k) for k in kinds], "models": {}}
    for role, label in labels.items():
        steps.say(f"corrupted sensors: {role} ({label})")
        model = load_checkpoint(root / "models" / label).model
        out["models"][role] = {"label": label, **corruption_curves(model, data, kinds)}
    return out


# --------------------------------------------------------------------------------------------------
# 6. benchmark per profile
# --------------------------------------------------------------------------------------------------


#: The profile whose split ONNX export (every modality) is used to count FLOPs and bytes for estimates.
COUNTING_PROFILE = "generic/x86-64"


def _bench(
    profiles: Sequence[Any],
    exports: Sequence[Mapping[str, Any]],
    cfg: DemoConfig,
    root: Path,
    ckpt: Path,
    steps: _Steps,
    failures: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Benchmark each profile's runnable artifact; a failed counting export is added to ``failures``."""
    from edgefuse.bench.artifact import bench_artifact, budget_check, estimate_pattern, model_bytes
    from edgefuse.bench.timing import peak_rss_subprocess
    from edgefuse.export import export_cached
    from edgefuse.manifest import read_manifest

    counting, _ = export_cached(
        ckpt, COUNTING_PROFILE, "onnx", root / "export" / COUNTING_PROFILE / "onnx-fp32"
    )
    reported = any(e["profile"] == COUNTING_PROFILE and e["format"] == "onnx" for e in exports)
    if counting.status == "failed" and failures is not None and not reported:
        reason = f"the ONNX export that counts FLOPs and bytes for the estimates failed: {counting.reason}"
        failures.append(_failure(COUNTING_PROFILE, "onnx", "fp32", reason))
    counted = read_manifest(counting.folder) if counting.status == "ok" and counting.folder else None
    out = []
    for prof in profiles:
        backend, row = _runnable(prof, exports)
        if backend is None:
            estimates = {}
            if counted is not None:
                from edgefuse.robustness import subsets

                precision = next((e["precision"] for e in exports if e["profile"] == prof.id), "fp32")
                kept = [m for m in FULL if prof.has_modality(m)]
                for t in subsets(kept):
                    est = estimate_pattern(counted, t, prof, prof.backends[0], precision=precision)
                    size = model_bytes(counted, est.get("graphs", ()), precision)
                    estimates["+".join(t)] = {**est, "budget": budget_check(prof, est, size)}
            out.append(
                {"profile": prof.id, "backend": None, "reason": row, "results": [], "estimates": estimates}
            )
            continue
        steps.say(f"bench {prof.id} on {backend}")
        try:
            report = bench_artifact(
                row["folder"],
                profile=prof.id,
                backends=[backend],
                warmup=cfg.bench_warmup,
                iters=cfg.bench_iters,
                rss=False,
            )
        except EdgeFuseError as exc:  # reported per profile; the other profiles still run
            reason = f"{backend} failed: {type(exc).__name__}: {exc}"
            out.append(
                {"profile": prof.id, "backend": None, "reason": reason, "results": [], "estimates": {}}
            )
            continue
        rss = None
        if cfg.rss:
            full = report["results"][0]["pattern"].split("+")
            rss = peak_rss_subprocess(
                "artifact",
                {"artifact": row["folder"], "profile": prof.id, "backend": backend, "pattern": full},
            )
        for r in report["results"]:
            r.pop("peak_rss_mb", None)
            r.pop("rss_scope", None)
            if r["estimate"].get("ms") is None and counted is not None:
                est = estimate_pattern(
                    counted, r["pattern"].split("+"), prof, backend, precision=row["precision"]
                )
                r["estimate"] = {**est, "note": "counted from the ONNX export of the same model"}
                r["budget"] = budget_check(prof, est, r["size_bytes"])
        (root / "bench").mkdir(parents=True, exist_ok=True)
        (root / "bench" / f"{prof.id.replace('/', '__')}.json").write_text(
            json.dumps(report, indent=2, default=str)
        )
        out.append(
            {
                "profile": prof.id,
                "backend": backend,
                "format": row["format"],
                "precision": row["precision"],
                "threads": report["results"][0].get("threads") if report["results"] else None,
                "peak_rss_mb": None if rss is None else rss["peak_rss_mb"],
                "rss_scope": None if rss is None else rss["rss_scope"] + ", all modalities present",
                "results": report["results"],
            }
        )
    return out


# --------------------------------------------------------------------------------------------------
# the whole run
# --------------------------------------------------------------------------------------------------


def _machine() -> dict[str, Any]:
    from edgefuse.provenance import cpu_model

    return {
        "cpu": cpu_model() or platform.machine(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


#: Marks a folder as a demo output folder, which later runs may reuse and overwrite.
DEMO_MARKER = ".edgefuse-demo"


def claim_demo_folder(out: str | Path) -> Path:
    """Make ``out`` the demo's folder, refusing one that holds anything else (nothing is overwritten).

    Accepted: a missing or empty folder, a folder marked by an earlier demo (``.edgefuse-demo``), or one
    from an earlier version of the demo (``report.json`` and ``demo.log``). The folder is created and
    marked.

    Raises:
        ContractError: ``out`` is not a folder, or holds files that are not a demo's.
    """
    root = Path(out)
    if root.exists() and not root.is_dir():
        raise ContractError(f"--out {root}: exists and is not a folder; the demo writes a folder there")
    if root.is_dir() and any(root.iterdir()):
        legacy = (root / "report.json").is_file() and (root / "demo.log").is_file()
        if not (root / DEMO_MARKER).is_file() and not legacy:
            raise ContractError(
                f"--out {root}: the folder holds files that are not an EdgeFuse demo's; the demo would "
                "overwrite demo.log, report.* and its caches there. Give an empty or new folder"
            )
    root.mkdir(parents=True, exist_ok=True)
    (root / DEMO_MARKER).write_text("written by `edgefuse demo`; this folder may be reused and overwritten\n")
    return root


def run_demo(
    cfg: DemoConfig = DemoConfig(),
    *,
    say: Callable[[str], None] | None = None,
    advance: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the demo and write ``report.json`` and ``report.html`` into ``cfg.out``.

    Args:
        cfg: What to run.
        say: Callback for a one-line status message.
        advance: Callback when one of :data:`STEPS` finishes.

    Returns:
        The report (the content of ``report.json``), with ``paths`` to the written files. Its
        ``failed_exports`` lists every export that failed (conversion or validation, e.g. parity
        against PyTorch), each with ``profile``, ``format``, ``precision`` and ``reason``; formats that
        cannot be converted here are ``unavailable`` in ``exports``, not failures. ``edgefuse demo``
        exits 1 when the list is not empty.

    Raises:
        DataError: An FSDD folder was given but is not usable (never silently replaced).
        ProfileError: An unknown profile id.
        ContractError: Bad options.
    """
    from edgefuse import __version__
    from edgefuse.profiles import get_profile, list_profiles
    from edgefuse.report import DEFINITIONS_DOC, demo_glossary, render_demo_html, write_demo_plots

    if cfg.epochs < 1 or cfg.bench_iters < 1 or cfg.bench_warmup < 0:
        raise ContractError("epochs and bench_iters must be >= 1 and bench_warmup >= 0")
    steps = _Steps(say or (lambda _m: None), advance or (lambda _m: None))
    started = time.perf_counter()
    root = claim_demo_folder(cfg.out)
    profiles = [get_profile(p) for p in cfg.profiles] if cfg.profiles else list(list_profiles())

    t0 = time.perf_counter()
    data, data_info = _load_data(cfg)
    data_info["counts"] = data.meta.get("counts")
    data_info["degrade_image"] = cfg.degrade_image
    fingerprint = _fingerprint(data, cfg)
    steps.say(f"data: {data.name} {data_info['counts']} ({data_info['audio']} audio)")
    steps.timed("data", t0)

    t0 = time.perf_counter()
    trained = _train_all(data, cfg, root, fingerprint, steps)
    grid = trained["grid"]
    best = trained["checkpoints"]["best"]
    baseline = trained["checkpoints"]["baseline"]
    steps.timed("train", t0)
    grid_dict = grid.to_dict()

    t0 = time.perf_counter()
    ckpt = root / "models" / best
    exports = _export_all(ckpt, profiles, data, root, cfg, steps)
    steps.timed("export", t0)

    t0 = time.perf_counter()
    accuracy = _accuracy(profiles, exports, data, grid, best, steps)
    corruption = _corruption(data, root, {"baseline": baseline, "best": best}, steps)
    steps.timed("accuracy", t0)

    failed = [
        _failure(e["profile"], e["format"], e["precision"], e["reason"])
        for e in exports
        if e["status"] == "failed"
    ]
    t0 = time.perf_counter()
    bench = _bench(profiles, exports, cfg, root, ckpt, steps, failed)
    steps.timed("bench", t0)

    t0 = time.perf_counter()
    full = tuple(data.modality_names)
    seed = grid.seeds[0]
    learned = {row["label"]: row for row in _learned(data, trained["selection"]["val_accuracy"])}
    summary_models = {
        role: {
            "label": label,
            "test_accuracy": {"+".join(t): v for t, v in grid.scores[(label, full, seed)].items()},
            "val_accuracy": trained["selection"]["val_accuracy"].get(label),
            "chance": learned[label]["chance"],
            "near_chance": learned[label]["near_chance"],
        }
        for role, label in (("baseline", baseline), ("best", best))
    }
    report: dict[str, Any] = {
        "kind": "edgefuse-demo",
        "edgefuse_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()},
        "machine": _machine(),
        "data": data_info,
        "models": summary_models,
        "selection": trained["selection"],
        "reused_models": trained["reused"],
        "checkpoint": str(ckpt),
        "trained_models": list(learned.values()),
        "not_learned": grid.not_learned(),
        "warnings": trained.get("warnings") or [],
        "grid": grid_dict,
        "profiles": [
            {
                "id": p.id,
                "name": p.name,
                "modalities": list(p.modalities),
                "backends": list(p.backends),
                "precisions": list(p.precisions),
                "threads": p.threads,
            }
            for p in profiles
        ],
        "exports": exports,
        "failed_exports": failed,
        "accuracy": accuracy,
        "corruption": corruption,
        "bench": bench,
        "definitions": DEFINITIONS_DOC,
        "glossary": demo_glossary(),
    }
    plots = write_demo_plots(report, grid, root / "plots")
    report["plots"] = {k: str(v) for k, v in plots.items()}
    steps.seconds["report"] = round(time.perf_counter() - t0, 2)
    report["seconds"] = {**steps.seconds, "total": round(time.perf_counter() - started, 1)}
    (root / "report.json").write_text(json.dumps(report, indent=2, default=str))
    (root / "report.html").write_text(render_demo_html(report, plots), encoding="utf-8")
    steps.advance("report")
    report["paths"] = {"json": str(root / "report.json"), "html": str(root / "report.html")}
    return report
