"""int8 against fp32 on the AV-digits reference model: accuracy per presence pattern, size, latency.

Usage: python benchmarks/bench_int8.py [--fsdd PATH] [--epochs 20] [--json PATH] [--no-targets]

Trains the reference model (moddrop, degraded images, 20 epochs as in the demo) on AV-digits (FSDD from
``--fsdd`` / ``$EDGEFUSE_FSDD``; without it the clearly labelled synthetic-audio variant, and the JSON
says so), then exports it for ``generic/x86-64`` (this machine: microphone and camera, so every presence
pattern of the model; TFLite forced with ``any_format`` since that profile lists only ONNX Runtime) at
fp32 and at int8 (calibrated on the train split, 256 rows, every presence pattern in equal shares) in
ONNX and TFLite, and measures in this one process:

* accuracy per presence pattern on the test split, fp32 PyTorch vs each int8 artifact; target: the
  worst drop over the patterns <= 1.0 point for ONNX and for TFLite;
* encoder file size fp32 / int8 (sum over the encoders); target >= 3.5x per format;
* latency int8 / fp32 per format (p50 at batch 1, all modalities present, same process, same thread
  count): reported whatever it is, no target (int8 is often *slower* on x86 CPUs without VNNI, and the
  QDQ graph pays for its (de)quantize nodes on tiny layers);
* calibration of the head on every presence pattern vs on all-present rows only: the int8 ONNX
  accuracy per pattern of both (why the calibration knows about missing modalities).

Exit status: see benchmarks/_targets.py (1 when a target is missed).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _targets
from _targets import Target

PROFILE = "generic/x86-64"
FORMATS = ("onnx", "tflite")
TARGETS = [
    Target("onnx_worst_drop_points", "<=", 1.0, "int8 ONNX vs fp32 PyTorch, worst presence pattern"),
    Target("tflite_worst_drop_points", "<=", 1.0, "int8 TFLite vs fp32 PyTorch, worst presence pattern"),
    Target("onnx_encoder_size_ratio", ">=", 3.5, "fp32 / int8 encoder bytes"),
    Target("tflite_encoder_size_ratio", ">=", 3.5, "fp32 / int8 encoder bytes"),
]


def _encoder_bytes(folder: Path) -> int:
    manifest = json.loads((folder / "manifest.json").read_text())
    return sum(f["size"] for f in manifest["files"] if f["role"].startswith("encoder"))


def _p50_ms(folder: Path, iters: int) -> float:
    import numpy as np
    from edgefuse.runtime import load

    specs = json.loads((folder / "manifest.json").read_text())["modalities"]
    with load(folder, threads=1) as session:
        rng = np.random.default_rng(0)
        inputs = {m["name"]: rng.standard_normal((1, *m["shape"])).astype(np.float32) for m in specs}
        for _ in range(20):
            session.predict(inputs)
        times = []
        for _ in range(iters):
            t0 = time.perf_counter()
            session.predict(inputs)
            times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times))


def _accuracy(rows: list[dict]) -> dict[str, dict]:
    return {
        r["pattern"]: {k: r[k] for k in ("fp32_accuracy", "int8_accuracy", "drop_points", "top1_agreement")}
        for r in rows
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fsdd", default=None)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--iters", type=int, default=300)
    parser.add_argument("--json", type=Path, default=None)
    _targets.add_arguments(parser)
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from edgefuse.checkpoint import save_checkpoint
    from edgefuse.data.registry import load_dataset
    from edgefuse.errors import DataError
    from edgefuse.export import export
    from edgefuse.export.int8 import Int8Settings
    from edgefuse.train import TrainConfig, train

    try:
        data = load_dataset("av-digits", fsdd=args.fsdd or os.environ.get("EDGEFUSE_FSDD"), degrade_image=4)
    except DataError as exc:
        print(f"FSDD not available ({exc}); using av-digits-synthetic-audio", file=sys.stderr)
        data = load_dataset("av-digits-synthetic-audio", degrade_image=4)
    work = Path(tempfile.mkdtemp(prefix="edgefuse-bench-int8-"))
    try:
        t0 = time.perf_counter()
        config = TrainConfig(modalities=("audio", "image"), epochs=args.epochs, intervention="moddrop")
        model = train(data, config).model
        ckpt = save_checkpoint(model, work / "ckpt", dataset=data.summary())
        train_s = time.perf_counter() - t0
        settings = Int8Settings.from_dataset(data)
        out: dict = {"dataset": data.name, "profile": PROFILE, "train_s": round(train_s, 1), "formats": {}}
        values: dict[str, float] = {}
        for fmt in FORMATS:
            t0 = time.perf_counter()
            fp32 = export(ckpt, PROFILE, fmt, work / f"{fmt}-fp32", precision="fp32", any_format=True)
            fp32_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            int8 = export(
                ckpt, PROFILE, fmt, work / f"{fmt}-int8", precision="int8", int8=settings, any_format=True
            )
            int8_s = time.perf_counter() - t0
            fp32.raise_for_failures()
            (result,) = int8.results
            row: dict = {"export_s": {"fp32": round(fp32_s, 1), "int8": round(int8_s, 1)}}
            if result.status != "ok":
                row["int8_failed"] = result.reason
                values[f"{fmt}_worst_drop_points"] = float("inf")
                values[f"{fmt}_encoder_size_ratio"] = float("nan")
                out["formats"][fmt] = row
                print(f"{fmt} int8 failed: {result.reason}", file=sys.stderr)
                continue
            row["accuracy"] = _accuracy(result.int8["accuracy"])
            row["sqnr_db"] = result.int8["sqnr_db"]
            values[f"{fmt}_worst_drop_points"] = result.worst_int8_drop
            sizes = {p: _encoder_bytes(work / f"{fmt}-{p}") for p in ("fp32", "int8")}
            row["encoder_bytes"] = sizes
            values[f"{fmt}_encoder_size_ratio"] = sizes["fp32"] / sizes["int8"]
            p50 = {p: _p50_ms(work / f"{fmt}-{p}", args.iters) for p in ("fp32", "int8")}
            row["p50_ms_batch1_all_present"] = {k: round(v, 4) for k, v in p50.items()}
            row["latency_ratio_int8_over_fp32"] = round(p50["int8"] / p50["fp32"], 3)
            out["formats"][fmt] = row
        # the head calibrated on all-present rows only vs on every presence pattern (ONNX)
        full_only = export(
            ckpt,
            PROFILE,
            "onnx",
            work / "onnx-int8-full-only",
            precision="int8",
            int8=dataclasses.replace(settings, calibrate_patterns="all-present"),
        )
        (r,) = full_only.results
        out["calibration_all_present_only"] = (
            _accuracy(r.int8["accuracy"]) if r.status == "ok" else {"failed": r.reason}
        )
        out["calibration_every_pattern"] = out["formats"].get("onnx", {}).get("accuracy")
        code, rows = _targets.check(TARGETS, values, enforce=not args.no_targets)
        out["targets"] = rows
        out["values"] = values
        text = json.dumps(out, indent=2)
        print(text)
        if args.json:
            args.json.write_text(text)
        return code
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
