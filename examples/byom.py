"""Bring your own model: a user's PyTorch encoders through EdgeFuse, from training to the device.

Run from the repository root (about 2-3 minutes on 2 CPU cores)::

    .venv/bin/python examples/byom.py --out out/byom

1. Build the model of ``byom_modules.py`` (MobileNetV2-style image encoder, transformer audio encoder,
   Conv1d IMU encoder, MLP head, learned fusion weights) wrapped in ``edgefuse.MultimodalModel``, which
   checks the contract on a dummy batch.
2. Train it a few steps on synthetic data, with modality dropout so it copes with missing sensors.
3. ``save_checkpoint``: each encoder and the head become ``torch.export`` programs, the weights go to
   safetensors; the factory ``byom_modules:build`` is recorded but never imported without opt-in.
4. In **fresh processes that cannot import byom_modules** (other working folder, no PYTHONPATH): the
   ``edgefuse`` CLI exports the checkpoint for generic/x86-64 (ONNX), google/pixel-8 (TFLite fp16),
   apple/iphone-15-pro (Core ML) and a custom IMU-only profile (ONNX), each with parity against PyTorch
   on every presence pattern its sensors allow, then benchmarks it for generic/x86-64.
5. ``edgefuse.load(artifact).predict(...)`` with ``verify()`` on the bundled reference cases.

Exits non-zero when any step fails. Core ML prediction needs macOS: elsewhere the Core ML package is
converted and validated from its saved spec only (the export table says so).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
IMU_PROFILE = """\
# A custom fitness band: only a 6-axis IMU, ONNX Runtime on a small CPU.
schema_version = 1
id = "example/imu-band"
name = "Example IMU-only band"
description = "A wrist band with a 6-axis IMU and nothing else."
backends = ["onnxruntime"]
precisions = ["fp32"]
threads = 1
ram_mb = 256
batch_sizes = [1]

[[sensors]]
kind = "imu"

[compute]
peak_gflops = { fp32 = 10.0 }
peak_gflops_source = "estimate: a single Cortex-M55-class core with Helium, for this example only"
memory_bandwidth_gbs = 1.0
memory_bandwidth_source = "estimate: on-chip SRAM, for this example only"
"""


def train(model: Any, steps: int, seed: int = 0) -> float:
    """A few AdamW steps on synthetic data whose class shows in every modality; returns the last loss."""
    import torch
    from torch.nn import functional as F  # noqa: N812

    gen = torch.Generator().manual_seed(seed)
    classes = len(model.label_names)
    # one fixed random pattern per class and modality; inputs = pattern + noise
    patterns = {s.name: torch.randn(classes, *s.shape, generator=gen) for s in model.modalities}
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    loss = torch.tensor(0.0)
    for _ in range(steps):
        y = torch.randint(0, classes, (32,), generator=gen)
        x = {m: p[y] + 0.8 * torch.randn(p[y].shape, generator=gen) for m, p in patterns.items()}
        # modality dropout: each row keeps each sensor with p = 0.7, at least one per row
        mask = torch.rand(32, len(model.modalities), generator=gen) < 0.7
        mask[~mask.any(1), 0] = True
        loss = F.cross_entropy(model(x, mask), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return float(loss.detach())


def cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``edgefuse ARGS`` in a fresh process that cannot import the user's code."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    exe = Path(sys.executable).with_name("edgefuse")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "edgefuse"]
    print(f"$ edgefuse {' '.join(args)}", flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run(
        [*cmd, *args], check=False, cwd=cwd, env=env, text=True, capture_output=True, timeout=600
    )
    print(proc.stdout[-3000:], end="")
    if proc.returncode != 0:
        print(proc.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"edgefuse {args[0]} failed with exit status {proc.returncode}")
    print(f"  ({time.perf_counter() - t0:.1f} s)\n", flush=True)
    return proc


def main(argv: list[str] | None = None) -> int:
    """Run the walkthrough; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="out/byom", help="output folder (created; replaced if it exists)")
    parser.add_argument("--steps", type=int, default=60, help="training steps (default 60)")
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()

    import torch

    torch.set_num_threads(1)
    sys.path.insert(0, str(HERE))
    import byom_modules
    from edgefuse import save_checkpoint
    from edgefuse.factory import FactoryRef

    torch.manual_seed(0)
    model = byom_modules.build()  # the contract is checked here, on a dummy batch
    model.factory = FactoryRef("byom_modules:build", {"embed_dim": 32})  # recorded, imported only on opt-in
    loss = train(model, args.steps)
    ckpt = save_checkpoint(model, out / "checkpoint", overwrite=True, recipe={"method": "byom-example"})
    print(f"trained {args.steps} steps (last loss {loss:.3f}); checkpoint: {ckpt}\n")

    (out / "imu-band.toml").write_text(IMU_PROFILE)
    runs = [
        ("generic/x86-64", "onnx", "fp32", "x86-onnx"),
        ("google/pixel-8", "tflite", "fp16", "pixel8-tflite"),
        ("apple/iphone-15-pro", "coreml", "fp32", "iphone-coreml"),
        (str(out / "imu-band.toml"), "onnx", "fp32", "imu-band-onnx"),
    ]
    for profile, fmt, precision, folder in runs:
        cli(
            [
                "export",
                str(ckpt),
                "--profile",
                profile,
                "--format",
                fmt,
                "--precision",
                precision,
                "--out",
                str(out / folder),
                "--overwrite",
            ],
            cwd=out,
        )
    cli(
        [
            "bench",
            str(ckpt),
            "--profile",
            "generic/x86-64",
            "--iters",
            "30",
            "--warmup",
            "3",
            "--no-rss",
            "--cache-dir",
            str(out / "cache"),
            "--json",
            str(out / "bench.json"),
        ],
        cwd=out,
    )
    check = subprocess.run(
        [sys.executable, "-c", _PREDICT, str(out / "x86-onnx")],
        check=False,
        cwd=out,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        text=True,
        capture_output=True,
        timeout=300,
    )
    if check.returncode != 0:
        print(check.stderr[-3000:], file=sys.stderr)
        raise SystemExit("loading the ONNX artifact and predicting failed")
    result = json.loads(check.stdout.strip().splitlines()[-1])
    print(
        f"edgefuse.load(x86-onnx): verify passed={result['verified']}; imu-only prediction {result['labels']}"
    )
    print(f"done in {time.perf_counter() - t_start:.0f} s; everything is in {out}")
    return 0 if result["verified"] else 1


_PREDICT = """
import importlib.util, json, sys
import numpy as np
import edgefuse
assert importlib.util.find_spec("byom_modules") is None, "the user's code must not be importable here"
session = edgefuse.load(sys.argv[1])
report = session.verify()
pred = session.predict({"imu": np.random.default_rng(0).standard_normal((2, 6, 128)).astype(np.float32)})
print(json.dumps({"verified": report.passed, "labels": list(pred.labels)}))
"""


if __name__ == "__main__":
    raise SystemExit(main())
