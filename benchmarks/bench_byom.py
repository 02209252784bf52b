"""What a checkpoint of a user's own model costs: stored programs vs the user's modules, in one process.

    .venv/bin/python benchmarks/bench_byom.py

Builds the example model of ``examples/byom_modules.py``, saves it (each encoder and the head become
``torch.export`` programs) and loads it back without the user's code. Prints, per graph, the latency of
the loaded program divided by the latency of the original module at batch 1 and 8 (paired, same
process, one torch thread), then the save and load times and the checkpoint's size on disk. A ratio
near 1 means the torch reference backend measures the user's model, not the wrapper.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from _timing import paired_ratio

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    """Print the table (see the module docstring)."""
    import torch

    torch.set_num_threads(1)
    sys.path.insert(0, str(ROOT / "examples"))
    import byom_modules
    from edgefuse.checkpoint import load_checkpoint, save_checkpoint

    torch.manual_seed(0)
    model = byom_modules.build().eval()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        folder = save_checkpoint(model, Path(tmp) / "ckpt")
        save_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        loaded = load_checkpoint(folder).model
        load_s = time.perf_counter() - t0
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        weights = (folder / "model.safetensors").stat().st_size
    graphs = [
        (f"encoder_{s.name}", model.encoders[s.name], loaded.encoders[s.name], s.shape)
        for s in model.modalities
    ]
    graphs.append(("head", model.head, loaded.head, (model.embed_dim,)))
    print(f"{'graph':<16}{'batch':>6}{'module us':>12}{'program us':>12}{'program/module':>16}")
    with torch.no_grad():
        for name, original, program, shape in graphs:
            for batch in (1, 8):
                x = torch.randn(batch, *shape)
                ratio, prog_us, orig_us = paired_ratio(
                    lambda p=program, x=x: p(x), lambda o=original, x=x: o(x), 50, 7
                )
                print(f"{name:<16}{batch:>6}{orig_us:>12.1f}{prog_us:>12.1f}{ratio:>16.2f}")
    print(
        f"save_checkpoint: {save_s:.2f} s (torch.export of {len(graphs)} graphs); load_checkpoint: {load_s:.2f} s"
    )
    print(
        f"checkpoint on disk: {size / 1e3:.0f} kB, of which weights {weights / 1e3:.0f} kB (programs hold no weights)"
    )


if __name__ == "__main__":
    main()
