"""Benchmark the C++ fusion kernel against the NumPy reference and torch eager, in one process.

Usage: python benchmarks/bench_fusion.py [--json PATH] [--quick]

Cases: (B=1, M=3, D=256) — one on-device prediction — and (B=4096, M=3, D=512) — a large batch where
memory bandwidth is the limit. Every modality present, with fusion weights and LayerNorm affine
parameters, as a trained model uses it. The machine's memory bandwidth is measured in the same run with
a large NumPy copy (read + write). Times are the median over repeats of the mean of an inner loop.

Targets (issue 2): at B=1 the kernel is >= 10x faster than torch eager and >= 3x faster than NumPy; at
B=4096 >= 2x faster than torch eager and kernel_gbs >= 50% of memcpy_gbs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import time_us
from edgefuse import _fusion
from edgefuse.fusion import fuse_reference

CASES = [(1, 3, 256), (4096, 3, 512)]


def memcpy_gbs(nbytes: int = 256 * 2**20, repeats: int = 7) -> float:
    """Copy bandwidth in GB/s counting bytes read + bytes written (like kernel_gbs)."""
    src = np.ones(nbytes // 4, np.float32)
    dst = np.empty_like(src)
    best = min(_timed(lambda: np.copyto(dst, src)) for _ in range(repeats))
    return 2 * nbytes / best / 1e9


def _timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def run(quick: bool = False) -> dict:
    """Run every case and return the JSON-ready results."""
    import torch
    from edgefuse.models.fusion import MaskedFusion

    rng = np.random.default_rng(0)
    results: dict = {"cases": [], "torch_threads": torch.get_num_threads(), "kernel_threads": 1}
    kernel_gbs = None
    for b, m, d in CASES:
        embeddings = [rng.standard_normal((b, d)).astype(np.float32) for _ in range(m)]
        mask = np.ones((b, m), bool)
        module = MaskedFusion(m, d, weights=[1.0, 2.0, 0.5][:m])
        with torch.no_grad():
            module.norm.weight.copy_(torch.from_numpy(rng.standard_normal(d).astype(np.float32)))
            module.norm.bias.copy_(torch.from_numpy(rng.standard_normal(d).astype(np.float32)))
        p = module.fusion_parameters()
        t_emb = [torch.from_numpy(e) for e in embeddings]
        t_mask = torch.from_numpy(mask)

        def kernel(e=embeddings, mk=mask, p=p) -> object:
            return _fusion.fuse(e, mk, p["weights"], p["gamma"], p["beta"], p["eps"])

        def numpy_ref(e=embeddings, mk=mask, p=p) -> object:
            return fuse_reference(e, mk, p["weights"], p["gamma"], p["beta"], p["eps"])

        def torch_eager(e=t_emb, mk=t_mask, mod=module) -> object:
            with torch.no_grad():
                return mod(e, mk)

        # Same math before timing anything.
        np.testing.assert_allclose(kernel(), numpy_ref()[0], rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(kernel(), torch_eager().numpy(), rtol=1e-4, atol=1e-4)

        small = b == 1
        inner = (2000 if small else 20) // (4 if quick else 1)
        repeats = 5 if quick else 9
        row = {
            "B": b,
            "M": m,
            "D": d,
            "kernel_us": time_us(kernel, inner, repeats),
            "numpy_us": time_us(numpy_ref, max(1, inner // 4), repeats),
            "torch_us": time_us(torch_eager, max(1, inner // 4), repeats),
        }
        out_buf = np.empty((b, d), np.float32)
        row["kernel_out_us"] = time_us(
            lambda e=embeddings, mk=mask, p=p, o=out_buf: _fusion.fuse(
                e, mk, p["weights"], p["gamma"], p["beta"], p["eps"], out=o
            ),
            inner,
            repeats,
        )
        row["torch_over_kernel"] = row["torch_us"] / row["kernel_us"]
        row["numpy_over_kernel"] = row["numpy_us"] / row["kernel_us"]
        results["cases"].append(row)
        if not small:
            moved = (m * b * d + b * d) * 4 + mask.nbytes  # bytes read + written by the kernel
            kernel_gbs = moved / (row["kernel_us"] * 1e-6) / 1e9
            results["kernel_out_gbs"] = moved / (row["kernel_out_us"] * 1e-6) / 1e9
    results["memcpy_gbs"] = memcpy_gbs()
    results["kernel_gbs"] = kernel_gbs
    results["kernel_over_memcpy"] = kernel_gbs / results["memcpy_gbs"]
    return results


def report(results: dict) -> bool:
    """Print a table and the target checks; return whether every target is met."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title="Masked fusion, µs per call: C++ kernel vs NumPy reference vs torch eager")
    for col in ("B", "M", "D", "kernel", "out=", "numpy", "torch", "np/k", "torch/k"):
        table.add_column(col, justify="right")
    for r in results["cases"]:
        table.add_row(
            str(r["B"]),
            str(r["M"]),
            str(r["D"]),
            f"{r['kernel_us']:.2f}",
            f"{r['kernel_out_us']:.2f}",
            f"{r['numpy_us']:.2f}",
            f"{r['torch_us']:.2f}",
            f"{r['numpy_over_kernel']:.1f}x",
            f"{r['torch_over_kernel']:.1f}x",
        )
    console.print(table)
    small, large = results["cases"]
    checks = [
        ("B=1: kernel >= 10x faster than torch eager", small["torch_over_kernel"], 10.0),
        ("B=1: kernel >= 3x faster than NumPy", small["numpy_over_kernel"], 3.0),
        ("B=4096: kernel >= 2x faster than torch eager", large["torch_over_kernel"], 2.0),
        ("B=4096: kernel_gbs >= 50% of memcpy_gbs", results["kernel_over_memcpy"], 0.5),
    ]
    console.print(
        f"memory bandwidth (NumPy copy, read+write): {results['memcpy_gbs']:.1f} GB/s; "
        f"kernel at B=4096: {results['kernel_gbs']:.1f} GB/s ({results['kernel_over_memcpy']:.0%}); "
        f"with a reused out= buffer: {results['kernel_out_gbs']:.1f} GB/s; "
        f"torch threads: {results['torch_threads']}, kernel threads: 1"
    )
    ok = True
    for name, value, target in checks:
        met = value >= target
        ok &= met
        console.print(
            f"  {'[green]met[/]' if met else '[red]MISSED[/]'}  {name}: {value:.2f} (target {target})"
        )
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the results as JSON to this path")
    parser.add_argument("--quick", action="store_true", help="fewer iterations (for smoke runs)")
    args = parser.parse_args(argv)
    results = run(quick=args.quick)
    ok = report(results)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
