"""The README's Python quickstart, timed step by step, against the old 3-epoch recipe in the same process.

Usage: python benchmarks/bench_quickstart.py [--out DIR]

Issue 17: the quickstart must train a real model (>= 0.85 test accuracy with every sensor present) in
about a minute. This script runs the quickstart's steps (load AV-digits with synthetic audio, train the
moddrop recipe, save, export ONNX for the smart speaker, load the artifact, predict and verify) and, in the
same process first, the old recipe (3 epochs) as the baseline: it prints the wall time of each step, the
test accuracy of both, the chance level, and the time ratio new / old. One torch thread (the machine's
other core stays free), deterministic training.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path


def quickstart(out: Path, epochs: int | None) -> dict[str, float]:
    """Run the quickstart's steps; ``epochs=None`` is the recipe's default (what the README uses)."""
    import edgefuse.runtime as rt
    from edgefuse.chance import NearChanceWarning, chance_accuracy
    from edgefuse.checkpoint import save_checkpoint
    from edgefuse.data.registry import load_dataset
    from edgefuse.export import export
    from edgefuse.train import TrainConfig, accuracy, train

    t = {"start": time.perf_counter()}
    data = load_dataset("av-digits-synthetic-audio", degrade_image=4)
    t["load"] = time.perf_counter()
    kw = {} if epochs is None else {"epochs": epochs}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", NearChanceWarning)
        model = train(
            data, TrainConfig(modalities=("audio", "image"), intervention="moddrop", **kw), threads=1
        ).model
    t["train"] = time.perf_counter()
    test = data.split("test")
    acc = accuracy(model, test, ("audio", "image"))
    ckpt = save_checkpoint(model, out / "ckpt", overwrite=True)
    export(ckpt, "generic/smart-speaker", "onnx", out / "speaker", precision="fp32", overwrite=True)
    t["export"] = time.perf_counter()
    session = rt.load(out / "speaker")
    session.predict({"audio": test.inputs["audio"][:8]})
    passed = session.verify().passed
    t["run"] = time.perf_counter()
    return {
        "accuracy": acc,
        "chance": chance_accuracy(test.labels),
        "warned": float(any(issubclass(w.category, NearChanceWarning) for w in caught)),
        "verified": float(passed),
        "load_s": t["load"] - t["start"],
        "train_s": t["train"] - t["load"],
        "export_s": t["export"] - t["train"],
        "run_s": t["run"] - t["export"],
        "total_s": t["run"] - t["start"],
    }


def main() -> None:
    """Run the baseline (3 epochs) and the quickstart (the recipe's 20), print the table and the ratio."""
    import torch

    torch.set_num_threads(1)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="work folder (default: a temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        quickstart(out / "warmup", 1)  # imports and first-call costs, not counted
        old = quickstart(out / "old", 3)
        new = quickstart(out / "new", None)
    print(f"{'':22}{'old (3 epochs)':>16}{'quickstart (20)':>17}")
    for key in (
        "accuracy",
        "chance",
        "warned",
        "verified",
        "load_s",
        "train_s",
        "export_s",
        "run_s",
        "total_s",
    ):
        print(f"{key:22}{old[key]:16.3f}{new[key]:17.3f}")
    print(f"time ratio quickstart / old: {new['total_s'] / old['total_s']:.2f}x")
    print(
        f"target: accuracy >= 0.85: {'PASS' if new['accuracy'] >= 0.85 else 'MISS'} ({new['accuracy']:.3f}); "
        f"about a minute: {'PASS' if new['total_s'] <= 75 else 'MISS'} ({new['total_s']:.1f} s)"
    )


if __name__ == "__main__":
    main()
