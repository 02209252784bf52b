"""A 12-job robustness sweep of the reference model: inline vs a process pool vs Ray, and a resume after a kill.

Usage: python benchmarks/bench_sweep.py [--fsdd PATH] [--epochs 3] [--json PATH] [--no-targets]
    [--skip-ray] [--skip-oversubscribed]

The sweep: supervised late fusion on AV-digits (FSDD audio when ``--fsdd``/``$EDGEFUSE_FSDD``/
``../shared/data/fsdd`` has it, else the clearly labelled synthetic audio; image degraded to 4 PCA
components), S = audio+image, interventions none/moddrop/masd, seeds 0-3: 12 independent jobs, no
specialists. Every figure is measured in this run:

* ``inline_s``: every job in this process, 1 torch thread per job (the per-job work of the pool below).
* ``process_s``: ``--executor process --workers 2`` (threads per worker = cores // workers = 1 here);
  ``process_speedup = inline_s / process_s``. Target: >= 1.6 on a 2-core machine.
* ``process_oversubscribed_s``: the same pool with 2 torch threads per worker (what the default thread
  count avoids); ``oversubscription_cost = process_oversubscribed_s / process_s``.
* ``ray_s``: a local Ray with 2 CPUs (start-up and shut-down included), 1 CPU and thread per task;
  ``ray_task_overhead_s``: the round trip of a trivial task with the sweep's options, mean of 50 in
  sequence (target <= 1 s); ``ray_start_stop_s``: ``ray.init`` until two workers answer, plus
  ``ray.shutdown``; ``ray_vs_process_per_job_s``: ``(ray_s - ray_start_stop_s - process_s) * 2 / 12``,
  what Ray adds per job in this sweep beyond its start-up (worker processes importing torch included).
* ``resume_s``: a sweep (process pool) in a child process is killed (SIGKILL to its process group) once
  half of the jobs are in the job store; the sweep is then resumed: ``resume_ran``/``resume_reused``
  jobs; ``resume_only_unfinished`` is 1 when exactly the unfinished jobs ran again.
* ``same_scores``: 1 when inline, process and Ray gave the same accuracy for every cell.

Exit status: see benchmarks/_targets.py (1 when a target is missed).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _targets
from _targets import Target

TARGETS = [
    Target("process_speedup", ">=", 1.6, "2 workers x 1 thread vs inline, 1 thread"),
    Target("ray_task_overhead_s", "<=", 1.0, "trivial task round trip"),
    Target("resume_only_unfinished", ">=", 1.0, "a resume runs exactly the unfinished jobs"),
    Target("same_scores", ">=", 1.0, "inline, process and ray agree on every accuracy"),
]
SEEDS = (0, 1, 2, 3)
INTERVENTIONS = ("none", "moddrop", "masd")


def _dataset(fsdd: str | None):  # type: ignore[no-untyped-def]
    from edgefuse.data.registry import load_dataset

    root = Path(
        fsdd or os.environ.get("EDGEFUSE_FSDD") or Path(__file__).resolve().parents[2] / "shared/data/fsdd"
    )
    if (root / "recordings").is_dir():
        return load_dataset("av-digits", fsdd=root, degrade_image=4), f"av-digits (FSDD at {root})"
    return load_dataset("av-digits-synthetic-audio", degrade_image=4), "av-digits-synthetic-audio (no FSDD)"


def _sweep(dataset, epochs: int, **kw):  # type: ignore[no-untyped-def]
    from edgefuse.robustness import run_grid
    from edgefuse.train import TrainConfig

    cfg = TrainConfig(modalities=dataset.modality_names, epochs=epochs)
    t0 = time.perf_counter()
    grid = run_grid(
        dataset,
        [dataset.modality_names],
        ["supervised"],
        list(SEEDS),
        cfg,
        interventions=list(INTERVENTIONS),
        include_specialists=False,
        **kw,
    )
    return grid, time.perf_counter() - t0


def _ray_task_overhead(n: int = 50) -> tuple[float, float]:
    """(trivial task round trip, start-up: ray.init + two workers ready + shutdown) in seconds."""
    import ray

    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    try:
        noop = ray.remote(lambda: None).options(num_cpus=1, max_retries=0, scheduling_strategy="SPREAD")
        ray.get([noop.remote() for _ in range(4)])  # workers started
        start = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in range(n):
            ray.get(noop.remote())
        per_task = (time.perf_counter() - t0) / n
    finally:
        t1 = time.perf_counter()
        ray.shutdown()
    return per_task, start + time.perf_counter() - t1


def _killed_then_resumed(args: argparse.Namespace, dataset, jobs: int) -> dict:  # type: ignore[no-untyped-def]
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp:
        store = Path(tmp) / "store"
        cmd = [sys.executable, __file__, "--child-store", str(store), "--epochs", str(args.epochs)]
        if args.fsdd:
            cmd += ["--fsdd", args.fsdd]
        child = subprocess.Popen(
            cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        t0 = time.perf_counter()
        done = 0
        while child.poll() is None and done < jobs // 2:
            time.sleep(0.2)
            done = len(list(store.glob("jobs/*/result.json")))
        killed_after = time.perf_counter() - t0
        if child.poll() is not None:
            raise RuntimeError(
                f"the child sweep ended before it was killed: {child.stderr.read().decode()[-2000:]}"
            )
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        finished = len(list(store.glob("jobs/*/result.json")))
        grid, resume_s = _sweep(dataset, args.epochs, executor="process", workers=2, store=store, resume=True)
        sweep = grid.meta["sweep"]
        return {
            "killed_after_s": killed_after,
            "finished_at_kill": finished,
            "resume_s": resume_s,
            "resume_ran": sweep["ran"],
            "resume_reused": sweep["reused"],
            "resume_only_unfinished": float(sweep["reused"] == finished and sweep["ran"] == jobs - finished),
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fsdd", default=None)
    parser.add_argument("--epochs", type=int, default=3, help="epochs per job (the default recipe has 20)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--skip-ray", action="store_true", help="no Ray figures (their targets are MISS)")
    parser.add_argument("--skip-oversubscribed", action="store_true")
    parser.add_argument("--child-store", default=None, help=argparse.SUPPRESS)
    _targets.add_arguments(parser)
    args = parser.parse_args(argv)

    dataset, data_note = _dataset(args.fsdd)
    if args.child_store:  # the sweep that the parent kills halfway
        _sweep(dataset, args.epochs, executor="process", workers=2, store=args.child_store)
        return 0
    from edgefuse.executors import available_cores

    jobs = len(SEEDS) * len(INTERVENTIONS)
    print(f"data: {data_note}; {jobs} jobs of {args.epochs} epochs; {available_cores()} cores")
    out: dict = {"data": data_note, "jobs": jobs, "epochs": args.epochs, "cores": available_cores()}
    inline, out["inline_s"] = _sweep(dataset, args.epochs, threads=1)
    print(f"inline (1 thread): {out['inline_s']:.1f} s")
    process, out["process_s"] = _sweep(dataset, args.epochs, executor="process", workers=2)
    out["process_threads"] = process.meta["sweep"]["threads"]
    out["process_speedup"] = out["inline_s"] / out["process_s"]
    print(f"process (2 workers x {out['process_threads']} thread): {out['process_s']:.1f} s")
    same = process.scores == inline.scores
    if not args.skip_oversubscribed:
        _, out["process_oversubscribed_s"] = _sweep(
            dataset, args.epochs, executor="process", workers=2, threads=2
        )
        out["oversubscription_cost"] = out["process_oversubscribed_s"] / out["process_s"]
        print(f"process (2 workers x 2 threads, oversubscribed): {out['process_oversubscribed_s']:.1f} s")
    if args.skip_ray:
        out["ray_s"] = out["ray_task_overhead_s"] = float("nan")
        same = False
    else:
        ray_grid, out["ray_s"] = _sweep(dataset, args.epochs, executor="ray", workers=2)
        same = same and ray_grid.scores == inline.scores
        out["ray_task_overhead_s"], out["ray_start_stop_s"] = _ray_task_overhead()
        out["ray_vs_process_per_job_s"] = (
            (out["ray_s"] - out["ray_start_stop_s"] - out["process_s"]) * 2 / jobs
        )
        print(
            f"ray (local, 2 CPUs): {out['ray_s']:.1f} s (start + stop {out['ray_start_stop_s']:.1f} s); trivial "
            f"task round trip {out['ray_task_overhead_s'] * 1e3:.1f} ms"
        )
    out["same_scores"] = float(same)
    out.update(_killed_then_resumed(args, dataset, jobs))
    print(
        f"killed after {out['killed_after_s']:.1f} s with {out['finished_at_kill']} jobs finished; resume: "
        f"{out['resume_s']:.1f} s, ran {out['resume_ran']}, reused {out['resume_reused']}"
    )
    status, out["targets"] = _targets.check(TARGETS, out, enforce=not args.no_targets)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return status


if __name__ == "__main__":
    sys.exit(main())
