"""Time the default training recipe on AV-digits against a bare PyTorch loop, in one process.

Usage: python benchmarks/bench_train.py [--fsdd PATH] [--degrade-image 4] [--epochs N] [--json PATH]
    [--no-targets]

* ``edgefuse_s``: ``edgefuse.train.train`` with the default recipe (supervised late fusion on
  audio+image, 20 epochs, validation every epoch, best-epoch selection). Target: <= 60 s.
* ``bare_loop_s``: the baseline: the same model, data, batches and epochs in a plain loop (no masking
  machinery, no validation). ``edgefuse_over_bare`` is what the contract and validation cost.

``--epochs N`` overrides the recipe's epochs on both sides (smoke runs; the target is for the default).
Exit status: see benchmarks/_targets.py (1 when a target is missed).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _targets
from _targets import Target

TARGETS = [Target("edgefuse_s", "<=", 60.0, "default recipe, train() end to end")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fsdd", default=None)
    parser.add_argument("--degrade-image", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs (smoke runs)")
    parser.add_argument("--json", type=Path, default=None)
    _targets.add_arguments(parser)
    args = parser.parse_args(argv)

    import numpy as np
    import torch
    import torch.nn.functional as F  # noqa: N812
    from edgefuse.data.registry import load_dataset
    from edgefuse.models.contract import build_model
    from edgefuse.models.reference import reference_architecture
    from edgefuse.train import TrainConfig, accuracy, train

    ds = load_dataset("av-digits", fsdd=args.fsdd, degrade_image=args.degrade_image)
    cfg = TrainConfig(modalities=ds.modality_names)
    if args.epochs is not None:
        cfg = replace(cfg, epochs=args.epochs)

    t0 = time.perf_counter()
    result = train(ds, cfg)
    ours = time.perf_counter() - t0
    test_acc = accuracy(result.model, ds.split("test"), ds.modality_names)

    torch.manual_seed(cfg.seed)
    model = build_model(reference_architecture(ds.modalities), ds.modalities, ds.label_names)
    tr = ds.split("train")
    x = {k: torch.from_numpy(v) for k, v in tr.inputs.items()}
    y = torch.from_numpy(tr.labels)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    rng = np.random.default_rng(cfg.seed)
    t0 = time.perf_counter()
    for _ in range(cfg.epochs):
        model.train()
        for idx in np.array_split(rng.permutation(len(tr)), -(-len(tr) // cfg.batch_size)):
            ti = torch.from_numpy(idx)
            emb = torch.stack([model.encoders[n](x[n][ti]) for n in ds.modality_names], 1)
            loss = F.cross_entropy(model.head(model.fusion(emb)), y[ti])
            opt.zero_grad()
            loss.backward()
            opt.step()
    bare = time.perf_counter() - t0

    out = {
        "epochs": cfg.epochs,
        "train_samples": len(tr),
        "edgefuse_s": ours,
        "bare_loop_s": bare,
        "edgefuse_over_bare": ours / bare,
        "val_accuracy": result.metrics["val_accuracy"],
        "test_accuracy_full": test_acc,
        "torch_threads": torch.get_num_threads(),
    }
    print(
        f"default recipe ({cfg.epochs} epochs, {len(tr)} pairs): {ours:.1f} s; bare PyTorch loop: {bare:.1f} s "
        f"-> {ours / bare:.2f}x"
    )
    print(f"val accuracy {result.metrics['val_accuracy']:.3f}, test accuracy (audio+image) {test_acc:.3f}")
    status, out["targets"] = _targets.check(TARGETS, out, enforce=not args.no_targets)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return status


if __name__ == "__main__":
    sys.exit(main())
