"""Benchmark the C++ fusion kernel against lean torch, the training module and NumPy, at equal threads.

Usage: python benchmarks/bench_fusion.py [--threads N] [--json PATH] [--quick] [--no-targets]

Cases: (B=1, M=3, D=256) — one on-device prediction — and (B=4096, M=3, D=512) — a large batch where
memory bandwidth is the limit. Every modality present, with fusion weights and LayerNorm affine
parameters, as a trained model uses it. Each case runs at 1 thread and at N threads (default: the
machine's CPU count): the kernel's ``threads=`` argument and ``torch.set_num_threads`` set to the same
value (the kernel splits the batch over at most B threads, so at B=1 it always runs on one).

Baselines, all computing the same contract (weights renormalised over the modalities present, absent
data selected away with ``where`` so NaN there cannot leak, an all-absent row fuses to zeros, then
LayerNorm with gamma/beta) and each checked against the kernel with ``assert_allclose`` on a mixed mask
with NaN in absent slots before anything is timed:

* **torch**: the fastest of three lean eager formulations (:func:`lean_formulations`: stack → where →
  weighted sum → divide → layer_norm; the same with ``bmm``; a per-modality where + ``addcmul`` loop
  that never builds the (B, M, D) stack), picked per case and thread count by its measured ratio (the
  lowest, so noise favours torch). This is the baseline the targets use.
* **module**: ``MaskedFusion``, the training module (what the model runs), for reference.
* **numpy**: ``edgefuse.fusion.fuse_reference`` (single-threaded whatever N: only its 1-thread ratio
  is a target).

torch runs under one ``torch.inference_mode()`` for the whole run (no autograd bookkeeping per call).
Every ratio is the median over repeats of time(baseline) / time(kernel) from back-to-back blocks
(``_timing.paired_ratio``), so a drift of the machine does not favour either side; the µs columns are the
per-side medians of the same blocks. The memory bandwidth is measured in the same run with a large
NumPy copy (read + write). Column ``other``: the share of the CPUs other processes used while the row
was measured (``_timing.OtherLoad``); above 5% the run is flagged as not idle.

Per-row weights (issue 16): the kernel with (B, M) fusion weights (one per row and modality, as a
reliability gate gives them) against the same kernel with (M,) weights, same inputs otherwise, at
(B=1, D=256) and (B=4096, D=512), one thread, paired blocks (``row_weights_vs_fixed_b*`` = time((B, M)) /
time((M,))). Before timing, the (B, M) kernel is checked against ``fuse_reference`` on a mixed mask with
NaN in absent rows and slots, zero weights (NaN behind them too) and a row whose present weights are
all 0, and (B, M) rows equal to the (M,) weights must give the (M,) result bit for bit.

Targets (issue 2, against the fastest lean torch at equal threads): at B=1 the kernel is >= 10x faster
than torch and >= 3x faster than NumPy; at B=4096 >= 2x faster than torch and, at one thread,
kernel_gbs >= 50% of memcpy_gbs. Issue 16: (B, M) weights cost <= 1.2x the time of (M,) weights at
both sizes. Exit status: see benchmarks/_targets.py (1 when a target is missed).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _targets
from _targets import Target
from _timing import OtherLoad, paired_ratio, time_us
from edgefuse import _fusion
from edgefuse.fusion import fuse_reference

CASES = [(1, 3, 256), (4096, 3, 512)]
ROW_WEIGHT_CASES = [(1, 3, 256), (4096, 3, 512)]  # (B, M, D) for (B, M) vs (M,) weights
BUSY = 0.05  # share of the CPUs used by other processes above which a run is flagged as not idle
WEIGHTS = [1.0, 2.0, 0.5]


def targets(n_threads: int) -> list[Target]:
    """The targets; the N-thread ones only when N > 1."""
    out = [
        Target("B1_t1_torch_over_kernel", ">=", 10.0, "B=1, 1 thread: kernel >= 10x faster than lean torch"),
        Target("B1_t1_numpy_over_kernel", ">=", 3.0, "B=1: kernel >= 3x faster than NumPy"),
        Target(
            "B4096_t1_torch_over_kernel", ">=", 2.0, "B=4096, 1 thread: kernel >= 2x faster than lean torch"
        ),
        Target("B4096_t1_kernel_over_memcpy", ">=", 0.5, "B=4096, 1 thread: kernel_gbs >= 50% of memcpy_gbs"),
    ]
    if n_threads > 1:
        out[1:1] = [Target(f"B1_t{n_threads}_torch_over_kernel", ">=", 10.0, f"B=1, {n_threads} threads")]
        out.append(Target(f"B4096_t{n_threads}_torch_over_kernel", ">=", 2.0, f"B=4096, {n_threads} threads"))
    out += [
        Target("row_weights_vs_fixed_b1", "<=", 1.2, "B=1, D=256: (B, M) weights <= 1.2x the time of (M,)"),
        Target("row_weights_vs_fixed_b4096", "<=", 1.2, "B=4096, D=512: (B, M) weights <= 1.2x (M,)"),
    ]
    return out


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


def lean_formulations(d: int) -> dict[str, Callable]:
    """Lean torch eager versions of the kernel's contract: ``f(embeddings list, mask, w, gamma, beta, eps)``."""
    import torch
    import torch.nn.functional as F  # noqa: N812

    tiny = torch.finfo(torch.float32).tiny  # a positive denominator is a sum of normal weights: >= tiny
    zero = torch.zeros(())

    # wp = mask * w: the weight where present, 0 where absent (w is finite, so never NaN). Absent data is
    # replaced by 0 with ``where`` before any arithmetic. An all-absent row: 0 / tiny = 0, as the kernel.
    def stack_where_sum(es, mask, w, g, b, eps):
        wp = mask * w  # (B, M)
        x = torch.where(mask.unsqueeze(-1), torch.stack(es, 1), zero)  # (B, M, D)
        fused = (x * wp.unsqueeze(-1)).sum(1) / wp.sum(1, keepdim=True).clamp_min(tiny)
        return F.layer_norm(fused, (d,), g, b, eps)

    def stack_where_bmm(es, mask, w, g, b, eps):
        wp = (mask * w).unsqueeze(1)  # (B, 1, M)
        x = torch.where(mask.unsqueeze(-1), torch.stack(es, 1), zero)
        fused = torch.bmm(wp, x).squeeze(1) / wp.sum(2).clamp_min(tiny)
        return F.layer_norm(fused, (d,), g, b, eps)

    def where_addcmul(es, mask, w, g, b, eps):  # no (B, M, D) copy: one accumulator
        wp = mask * w
        acc = torch.where(mask[:, :1], es[0], zero) * wp[:, :1]
        for i in range(1, len(es)):
            acc.addcmul_(torch.where(mask[:, i : i + 1], es[i], zero), wp[:, i : i + 1])
        return F.layer_norm(acc.div_(wp.sum(1, keepdim=True).clamp_min(tiny)), (d,), g, b, eps)

    return {
        "stack-where-sum": stack_where_sum,
        "stack-where-bmm": stack_where_bmm,
        "where-addcmul": where_addcmul,
    }


def check_same_math(b: int, m: int, d: int, rng: np.random.Generator, module) -> None:
    """Every baseline matches the kernel on a mixed mask, NaN in absent slots, an all-absent row."""
    import torch

    p = module.fusion_parameters()
    embeddings = [rng.standard_normal((b, d)).astype(np.float32) for _ in range(m)]
    if b == 1:
        mask = np.array([[True, False, True][:m]])
    else:
        mask = rng.random((b, m)) < 0.6
        mask[0] = False  # an all-absent row
    for e, present in zip(embeddings, mask.T, strict=True):
        e[~present] = np.nan
    want = _fusion.fuse(embeddings, mask, p["weights"], p["gamma"], p["beta"], p["eps"])
    np.testing.assert_allclose(
        fuse_reference(embeddings, mask, p["weights"], p["gamma"], p["beta"], p["eps"])[0], want, 1e-4, 1e-4
    )
    t_emb = [torch.from_numpy(e) for e in embeddings]
    t_mask = torch.from_numpy(mask)
    w, g, be = (torch.from_numpy(p[k]) for k in ("weights", "gamma", "beta"))
    for name, f in lean_formulations(d).items():
        got = f(t_emb, t_mask, w, g, be, p["eps"]).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4, err_msg=name)
    np.testing.assert_allclose(module(t_emb, t_mask).numpy(), want, rtol=1e-4, atol=1e-4, err_msg="module")


def check_row_weights(b: int, m: int, d: int, rng: np.random.Generator) -> None:
    """The (B, M)-weights kernel matches ``fuse_reference``: NaN in absent rows and slots and behind zero
    weights, a row whose present weights are all 0, counts; (B, M) rows equal to (M,) give the same bits."""
    embeddings = [rng.standard_normal((b, d)).astype(np.float32) for _ in range(m)]
    gamma, beta = (rng.standard_normal(d).astype(np.float32) for _ in range(2))
    weights = (rng.random((b, m)) * 2 + 0.1).astype(np.float32)
    if b == 1:
        mask = np.array([[True, False, True][:m]])
        weights[0, 2] = 0  # present but weighted 0: only modality 0 is used
    else:
        mask = rng.random((b, m)) < 0.6
        mask[0] = False  # an all-absent row
        mask[1] = True
        weights[1] = 0  # every modality present, every weight 0: fuses like an all-absent row
        weights[rng.random((b, m)) < 0.2] = 0
    used = mask & (weights > 0)
    for e, u in zip(embeddings, used.T, strict=True):
        e[~u] = np.nan  # absent or weighted 0: must never be read
    got, counts = _fusion.fuse_with_counts(embeddings, mask, weights, gamma, beta)
    want, want_counts = fuse_reference(embeddings, mask, weights, gamma, beta)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4, err_msg="(B, M) kernel vs fuse_reference")
    np.testing.assert_array_equal(counts, used.sum(axis=1))
    np.testing.assert_array_equal(counts, want_counts)
    if b > 1:
        np.testing.assert_array_equal(got[1], beta)  # all-zero present weights == all-absent row
        np.testing.assert_array_equal(got[0], beta)
    fixed = np.array(WEIGHTS[:m], np.float32)
    clean = [np.nan_to_num(e) for e in embeddings]
    np.testing.assert_array_equal(
        _fusion.fuse(clean, mask, np.tile(fixed, (b, 1)), gamma, beta),
        _fusion.fuse(clean, mask, fixed, gamma, beta),
        err_msg="(B, M) rows equal to the (M,) weights",
    )


def measure_row_weights(b: int, m: int, d: int, rng: np.random.Generator, quick: bool) -> dict:
    """time((B, M) weights) / time((M,) weights), one thread, every modality present, paired blocks."""
    check_row_weights(b, m, d, rng)
    embeddings = [rng.standard_normal((b, d)).astype(np.float32) for _ in range(m)]
    mask = np.ones((b, m), bool)
    gamma, beta = (rng.standard_normal(d).astype(np.float32) for _ in range(2))
    fixed = np.array(WEIGHTS[:m], np.float32)
    rows = (rng.random((b, m)) * 2 + 0.1).astype(np.float32)  # what a per-row gate gives: C-contiguous

    def kernel_rows() -> object:
        return _fusion.fuse(embeddings, mask, rows, gamma, beta, 1e-5)

    def kernel_fixed() -> object:
        return _fusion.fuse(embeddings, mask, fixed, gamma, beta, 1e-5)

    inner = (2000 if b == 1 else 20) // (4 if quick else 1)
    repeats = 7 if quick else 15
    with OtherLoad() as load:
        ratio, rows_us, fixed_us = paired_ratio(kernel_rows, kernel_fixed, inner, repeats)
    return {
        "B": b,
        "M": m,
        "D": d,
        "rows_us": rows_us,
        "fixed_us": fixed_us,
        "ratio": ratio,
        "other_load": load.share,
    }


def measure_case(
    b: int, m: int, d: int, thread_counts: list[int], rng: np.random.Generator, quick: bool
) -> dict:
    """One case at each thread count: every baseline paired with the kernel."""
    import torch
    from edgefuse.models.fusion import MaskedFusion

    module = MaskedFusion(m, d, weights=WEIGHTS[:m])
    module.norm.weight.copy_(torch.from_numpy(rng.standard_normal(d).astype(np.float32)))
    module.norm.bias.copy_(torch.from_numpy(rng.standard_normal(d).astype(np.float32)))
    check_same_math(b, m, d, rng, module)
    p = module.fusion_parameters()
    embeddings = [rng.standard_normal((b, d)).astype(np.float32) for _ in range(m)]
    mask = np.ones((b, m), bool)
    t_emb = [torch.from_numpy(e) for e in embeddings]
    t_mask = torch.from_numpy(mask)
    w, g, be = (torch.from_numpy(p[k]) for k in ("weights", "gamma", "beta"))
    eps = p["eps"]
    out_buf = np.empty((b, d), np.float32)
    inner = (2000 if b == 1 else 20) // (4 if quick else 1)
    repeats = 5 if quick else 9
    moved = (m * b * d + b * d) * 4 + mask.nbytes  # bytes read + written by the kernel

    def numpy_ref() -> object:
        return fuse_reference(embeddings, mask, p["weights"], p["gamma"], p["beta"], eps)

    def torch_module() -> object:
        return module(t_emb, t_mask)

    case: dict = {"B": b, "M": m, "D": d, "rows": []}
    for t in thread_counts:
        torch.set_num_threads(t)

        def kernel(t: int = t) -> object:
            return _fusion.fuse(embeddings, mask, p["weights"], p["gamma"], p["beta"], eps, threads=t)

        def kernel_out(t: int = t) -> object:
            return _fusion.fuse(
                embeddings, mask, p["weights"], p["gamma"], p["beta"], eps, out=out_buf, threads=t
            )

        forms = {}
        with OtherLoad() as load:
            for name, f in lean_formulations(d).items():
                ratio, f_us, k_us = paired_ratio(
                    lambda f=f: f(t_emb, t_mask, w, g, be, eps), kernel, inner, repeats
                )
                forms[name] = {"ratio": ratio, "torch_us": f_us, "kernel_us": k_us}
            mod_ratio, mod_us, _ = paired_ratio(torch_module, kernel, inner, repeats)
            np_ratio, np_us, _ = paired_ratio(numpy_ref, kernel, max(1, inner // 4), repeats)
            kernel_out_us = time_us(kernel_out, inner, repeats)
        best = min(forms, key=lambda n: forms[n]["ratio"])
        kernel_us = forms[best]["kernel_us"]
        case["rows"].append(
            {
                "threads": t,
                "kernel_us": kernel_us,
                "kernel_out_us": kernel_out_us,
                "torch_form": best,
                "torch_us": forms[best]["torch_us"],
                "torch_over_kernel": forms[best]["ratio"],
                "module_us": mod_us,
                "module_over_kernel": mod_ratio,
                "numpy_us": np_us,
                "numpy_over_kernel": np_ratio,
                "kernel_gbs": moved / (kernel_us * 1e-6) / 1e9,
                "kernel_out_gbs": moved / (kernel_out_us * 1e-6) / 1e9,
                "torch_forms": forms,
                "other_load": load.share,
            }
        )
    return case


def run(quick: bool = False, n_threads: int | None = None) -> dict:
    """Run every case at 1 and N threads and return the JSON-ready results."""
    import torch

    n_threads = n_threads or os.cpu_count() or 1
    thread_counts = [1] if n_threads == 1 else [1, n_threads]
    torch_threads_before = torch.get_num_threads()
    rng = np.random.default_rng(0)
    results: dict = {"cases": [], "thread_counts": thread_counts}
    try:
        with torch.inference_mode():
            results["cases"] = [measure_case(b, m, d, thread_counts, rng, quick) for b, m, d in CASES]
    finally:
        torch.set_num_threads(torch_threads_before)
    results["row_weights"] = [measure_row_weights(b, m, d, rng, quick) for b, m, d in ROW_WEIGHT_CASES]
    results["memcpy_gbs"] = memcpy_gbs()
    values = {}
    for r in results["row_weights"]:
        values[f"row_weights_vs_fixed_b{r['B']}"] = r["ratio"]
    for c in results["cases"]:
        for r in c["rows"]:
            for k in ("torch", "module", "numpy"):
                values[f"B{c['B']}_t{r['threads']}_{k}_over_kernel"] = r[f"{k}_over_kernel"]
            values[f"B{c['B']}_t{r['threads']}_kernel_over_memcpy"] = r["kernel_gbs"] / results["memcpy_gbs"]
    results["values"] = values
    return results


def report(results: dict) -> None:
    """Print the table: µs per call and baseline / kernel ratios, per case and thread count."""
    print(
        "Masked fusion, µs per call; threads = kernel threads= = torch.set_num_threads; "
        "ratios = baseline / kernel from paired back-to-back blocks"
    )
    head = (
        "B",
        "D",
        "threads",
        "kernel",
        "out=",
        "torch",
        "module",
        "numpy",
        "torch/k",
        "module/k",
        "numpy/k",
    )
    print("".join(f"{h:>10}" for h in head) + "  other  torch form")
    for c in results["cases"]:
        for r in c["rows"]:
            cells = [c["B"], c["D"], r["threads"]]
            cells += [
                f"{r[k]:.2f}" for k in ("kernel_us", "kernel_out_us", "torch_us", "module_us", "numpy_us")
            ]
            cells += [
                f"{r[k]:.1f}x" for k in ("torch_over_kernel", "module_over_kernel", "numpy_over_kernel")
            ]
            other = "?" if r["other_load"] is None else f"{r['other_load']:.0%}"
            print("".join(f"{x:>10}" for x in cells) + f"  {other:>5}  {r['torch_form']}")
    for c in results["cases"]:
        for r in c["rows"]:
            forms = ", ".join(
                f"{n} {f['torch_us']:.1f} µs ({f['ratio']:.1f}x)" for n, f in r["torch_forms"].items()
            )
            print(f"B={c['B']}, {r['threads']} thread(s), every lean torch form: {forms}")
    large = results["cases"][-1]
    gbs = ", ".join(
        f"{r['threads']} thread(s) {r['kernel_gbs']:.1f} GB/s (out= {r['kernel_out_gbs']:.1f})"
        for r in large["rows"]
    )
    print(
        f"memory bandwidth (NumPy copy, read+write): {results['memcpy_gbs']:.1f} GB/s; kernel at B={large['B']}: {gbs}"
    )
    for r in results["row_weights"]:
        other = "?" if r["other_load"] is None else f"{r['other_load']:.0%}"
        print(
            f"per-row weights, B={r['B']}, D={r['D']}, 1 thread: (B, M) {r['rows_us']:.2f} µs, (M,) "
            f"{r['fixed_us']:.2f} µs, ratio {r['ratio']:.3f} (other {other}); checked against fuse_reference "
            "with NaN in absent rows and behind zero weights"
        )
    busy = [r["other_load"] for c in results["cases"] for r in c["rows"] if r["other_load"] is not None]
    busy += [r["other_load"] for r in results["row_weights"] if r["other_load"] is not None]
    if busy and max(busy) > BUSY:
        print(
            f"WARNING: other processes used up to {max(busy):.0%} of the CPUs during a row (column 'other'): "
            "these are not an idle machine's figures (the multi-threaded ones least of all); rerun when idle"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--threads", type=int, default=None, help="N for the N-thread rows (default: CPU count)"
    )
    parser.add_argument("--json", type=Path, help="write the results as JSON to this path")
    parser.add_argument("--quick", action="store_true", help="fewer iterations (for smoke runs)")
    _targets.add_arguments(parser)
    args = parser.parse_args(argv)
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads {args.threads}: give a thread count >= 1")
    results = run(quick=args.quick, n_threads=args.threads)
    report(results)
    n = results["thread_counts"][-1]
    status, results["targets"] = _targets.check(targets(n), results["values"], enforce=not args.no_targets)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
    return status


if __name__ == "__main__":
    sys.exit(main())
