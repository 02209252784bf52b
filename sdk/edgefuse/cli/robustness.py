"""``edgefuse robustness``: the train × test modality grid with every metric of docs/metrics.md.

Every model of the grid is the reference architecture, or your own with ``--model-factory
package.module:function`` (``--factory-kwargs`` JSON, ``--allow-import`` required: importing the factory
runs your code), called with every modality of ``--data``.

Every model is a job with a content hash, written to a job store (``--store``, default ``<report>/jobs``
or beside ``--json``) as soon as it is finished; ``--resume`` reuses the finished jobs after a crash or
Ctrl-C. ``--executor process --workers N`` runs jobs in N processes on this machine; ``--executor ray
--ray-address auto|HOST:PORT`` on a Ray cluster (the store on a filesystem every node sees). Exit
status 1 when jobs failed (the others finish; the failed cells are listed in the JSON and the report).

Degraded sensors: ``--corruptions audio:noise,image:blur --severities 1,3,5`` also evaluates every model
under each corruption of one modality at each severity (``--corruption-seed``), with every test set that
contains the corrupted modality: fused accuracy, corruption retention, each modality alone on the same
rows, and the fusion regret (best alone - fused; <= 0 is good). Printed as a short regret table; the JSON
(``corruption``), grid.md and corruption.png hold every test set. Reused jobs are not retrained for other
corruptions.

``--json [PATH|-]``, ``--quiet``, ``--verbose`` and ``--log PATH`` follow the CLI conventions
(:mod:`edgefuse.cli`); ``--json`` gives the grid (with ``chance`` and ``not_learned``), and each row that did
not learn is a ``warning:`` line on stderr.
"""

from __future__ import annotations

import argparse
from typing import Any

from edgefuse.cli._common import (
    MAX_SEEDS,
    add_data_args,
    alphas_arg,
    check_out_path,
    epochs_int,
    load_data,
    nonneg_float,
    nonneg_int,
    positive_int,
    pretrain_epochs_int,
    require_extra,
    seed_int,
    seeds_arg,
)
from edgefuse.cli._help import examples
from edgefuse.cli._output import add_json_arg, add_output_args
from edgefuse.cli.train import add_factory_args, factory_from_args

DESCRIPTION = """Train a grid of models and measure P(S→T): the accuracy of a model trained with the \
modalities S on a device that has only the modalities T, for every train set S and test set T.

Printed per method: the grid, then the retention, drop, gap to specialist and added gain of every cell, \
and each intervention's improvement factor against its baseline. The metrics (retention, drop, gap to \
specialist, added gain, improvement factor, noise floor, chance level) are defined in docs/metrics.md. \
A model within 5 points of chance "did not learn": its accuracies are kept, its metrics are not \
reported.

Every model is the reference architecture, or your own with --model-factory package.module:function \
(--factory-kwargs JSON; --allow-import is required: importing the factory runs your code), called with \
every modality of --data.

Every model is a job with a content hash, written to a job store (--store; default REPORT/jobs, or \
beside --json) as soon as it is finished; --resume reuses the finished jobs after a crash or Ctrl-C. \
--executor process --workers N runs jobs in N processes on this machine; --executor ray --ray-address \
auto|HOST:PORT on a Ray cluster (the store on a filesystem every node sees). Exit status 1 when jobs \
failed (the others finish; the failed cells are listed in the JSON and the report).

Degraded sensors: --corruptions audio:noise,image:blur --severities 1,3,5 also evaluates every model \
with one modality corrupted at each severity (--corruption-seed), on every test set that contains it: \
fused accuracy, retention under corruption, each modality alone on the same rows, and the fusion regret \
(best alone - fused; <= 0 is good)."""

EPILOG = examples(
    "# a small grid: every train set of audio+image, one method, one seed, 5 epochs per model",
    "edgefuse robustness --data av-digits-synthetic-audio --degrade-image 4 --methods supervised --seeds 1 "
    "--epochs 5 --report out/quickstart/grid",
    "# the same grid again: the finished jobs of its store are reused, nothing is retrained",
    "edgefuse robustness --data av-digits-synthetic-audio --degrade-image 4 --methods supervised --seeds 1 "
    "--epochs 5 --report out/quickstart/grid --resume",
    "# modality dropout against its baseline, with noisy audio and blurred images",
    "edgefuse robustness --data av-digits-synthetic-audio --degrade-image 4 --train-sets audio+image "
    "--methods supervised --interventions none,moddrop --seeds 2 --epochs 5 --corruptions "
    "audio:noise,image:blur --severities 1,3 --json out/quickstart/grid-moddrop.json",
)


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register the subcommand."""
    p = sub.add_parser(
        "robustness",
        help="accuracy for every train set x test set of modalities",
        description=DESCRIPTION,
        epilog=EPILOG,
    )
    add_data_args(p)
    add_factory_args(p)
    p.add_argument("--train-sets", default=None, help="e.g. audio+image,audio,image (default: every subset)")
    p.add_argument(
        "--methods", default="supervised,contrastive", help="supervised and/or contrastive, comma-separated"
    )
    p.add_argument(
        "--interventions",
        default="none",
        help="comma-separated: none,moddrop,masd,wiseft,masd+wiseft (wiseft = moddrop model x baseline)",
    )
    p.add_argument(
        "--alphas",
        type=alphas_arg,
        default="0:1:0.1",
        help="WiSE-FT alphas in [0, 1] (start:stop:step or a list), selected on the validation split",
    )
    p.add_argument(
        "--seeds",
        type=seeds_arg,
        default="3",
        help=f"a count (3 = seeds 0,1,2; at most {MAX_SEEDS}) or a list (0,4,7)",
    )
    p.add_argument(
        "--epochs",
        type=epochs_int,
        default=None,
        help="(fine-tuning) epochs per model, 1..10000 (default: 20)",
    )
    p.add_argument(
        "--pretrain-epochs",
        type=pretrain_epochs_int,
        default=None,
        help="contrastive pre-training epochs, 0..10000 (default: 10)",
    )
    p.add_argument("--no-specialists", action="store_true", help="do not add the specialists S = T")
    add_json_arg(p, "the grid (every score and cell, the chance level, the rows that did not learn)")
    p.add_argument(
        "--report", default=None, help="folder for grid.json, grid.md, heatmap.png (and corruption.png)"
    )
    c = p.add_argument_group("degraded sensors (corruption axis)")
    c.add_argument(
        "--corruptions",
        type=_corruptions_arg,
        default=None,
        metavar="MODALITY:KIND,...",
        help="evaluate every model with one modality corrupted, e.g. --corruptions audio:noise,image:blur "
        "--severities 1,3,5 (kinds: audio noise/gain/eq/shift/clip, image noise/blur/occlusion/contrast/"
        "brightness, any modality zeros/const/nan; audio eq/clip need the recordings: --data av-digits)",
    )
    c.add_argument(
        "--severities",
        type=_severities_arg,
        default=None,
        help="severities 1..5 (default with --corruptions: 1,3,5)",
    )
    c.add_argument("--corruption-seed", type=seed_int, default=0, help="seed of the corruptions (default 0)")
    g = p.add_argument_group("jobs and executors")
    g.add_argument(
        "--executor",
        choices=["inline", "process", "ray"],
        default="inline",
        help="where jobs run: in this process, in worker processes, or on a Ray cluster",
    )
    g.add_argument("--workers", type=positive_int, default=None, help="worker processes (default: the cores)")
    g.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        help="torch threads per job (default: inline all, process cores // workers, ray 1); results are "
        "identical across executors for an equal thread count",
    )
    g.add_argument(
        "--store",
        default=None,
        help="job store folder (default: <report>/jobs, else beside --json: grid.json -> grid.jobs)",
    )
    g.add_argument("--resume", action="store_true", help="reuse the finished jobs of the store")
    g.add_argument(
        "--max-retries", type=nonneg_int, default=2, help="retries of a job whose worker or node died"
    )
    g.add_argument("--ray-address", default=None, help="auto or HOST:PORT of a Ray head (--executor ray)")
    g.add_argument("--gpus-per-job", type=nonneg_float, default=0.0, help="num_gpus of each Ray task")
    # the sweep's progress bar is drawn on sys.stderr by the SDK: Python's stderr stays on the terminal
    add_output_args(p, log="robustness", python_stderr="terminal")
    return p


def _corruptions_arg(text: str) -> str:
    """An argparse ``type=``: ``modality:kind`` items (names checked; the modalities against the data later)."""
    from edgefuse.data.corruptions import parse_corruptions
    from edgefuse.errors import DataError

    try:
        parse_corruptions(text)
    except DataError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _severities_arg(text: str) -> tuple[int, ...]:
    """An argparse ``type=``: ``1,3,5`` (each in 1..5)."""
    from edgefuse.data.corruptions import parse_severities
    from edgefuse.errors import DataError

    try:
        return parse_severities(text)
    except DataError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _regret_table(grid: Any) -> Any:
    """A rich table of the fusion regret of each model with its own train set S (|S| ≥ 2), one corrupted."""
    from rich.table import Table
    from rich.text import Text

    table = Table(
        title="Fusion regret (T = S; every T in the JSON and report): best alone - fused, <= 0 is good"
    )
    for col in ("method", "S", "corruption", "severity", "fused", "retention", "best alone", "regret"):
        table.add_column(
            col, justify="right" if col in ("severity", "fused", "retention", "regret") else "left"
        )
    for r in grid.corruption.regret_rows():
        reg = r["regret"]
        best = r["best_single"]
        table.add_row(
            r["method"],
            r["train"],
            f"{r['modality']}:{r['kind']}",
            str(r["severity"]),
            f"{r['fused']['mean']:.3f}",
            "–" if r["retention"] is None else f"{r['retention']['mean']:.3f}",
            f"{best} {r['single'][best]['mean']:.3f}",
            Text(f"{reg['mean']:+.3f} ± {reg['std']:.3f}", style="red" if reg["mean"] > 0 else "green"),
        )
    return table


def _store_path(args: argparse.Namespace) -> str | None:
    """``--store``, else ``<report>/jobs``, else beside ``--json`` (``grid.json`` -> ``grid.jobs``), else None."""
    from pathlib import Path

    if args.store:
        return str(args.store)
    if args.report:
        return str(Path(args.report) / "jobs")
    if args.json and args.json != "-":
        return str(Path(args.json).with_suffix(".jobs"))
    return None


def run(args: argparse.Namespace) -> int:
    """Train what the grid needs, evaluate, write the outputs, print the tables.

    Output: the grid as Markdown tables, the sweep summary and the written files (stdout); a ``warning:``
    line on stderr for each row that did not learn (``GridResult.not_learned``: P(S→S) within 5 points
    of chance), also with ``--quiet``. ``--json`` gives ``GridResult.to_dict()`` (with ``chance`` and
    ``not_learned``) alone on stdout (``--json``, ``--json -``) or in a file (``--json PATH``, the
    tables kept). Failed jobs are listed with the tables, or as ``error:`` lines on stderr with
    ``--quiet`` or ``--json -``; exit status 1.

    Args:
        args: The parsed arguments.

    Returns:
        0, or 1 when jobs failed.
    """
    import time
    from dataclasses import replace
    from warnings import catch_warnings, simplefilter

    from edgefuse.cli._output import (
        emit_json,
        error_line,
        human_console,
        is_quiet,
        json_stdout,
        json_target,
        show_progress,
        warn,
    )

    # before anything is imported or written: one line naming the extra on a device without torch
    require_extra("robustness", "train", ("torch", "safetensors", *(("matplotlib",) if args.report else ())))
    from edgefuse.chance import NearChanceWarning, not_learned_row_message
    from edgefuse.errors import ContractError
    from edgefuse.executors import SweepError
    from edgefuse.robustness import parse_sets, run_grid, subsets
    from edgefuse.train import METHODS, TrainConfig

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    bad = [m for m in methods if m not in METHODS]
    if bad or not methods:
        raise ContractError(f"--methods {args.methods!r}: allowed methods are {list(METHODS)}")
    json_target(args)
    if args.report:
        check_out_path(args.report, "--report")
    store = _store_path(args)
    if store:
        check_out_path(store, "--store")
    if args.resume and not store:
        raise ContractError("--resume reuses the jobs of a store: give --store, --report or --json PATH")
    if args.severities is not None and args.corruptions is None:
        raise ContractError("--severities are the levels of --corruptions: give --corruptions as well")
    if args.ray_address and args.executor != "ray":
        raise ContractError(f"--ray-address is for --executor ray; the executor is {args.executor!r}")
    seeds = args.seeds  # parsed and checked by seeds_arg
    factory = factory_from_args(args)  # refused without --allow-import, before the data is loaded
    dataset = load_data(args)
    u = dataset.modality_names
    train_sets = parse_sets(args.train_sets, u) if args.train_sets else subsets(u)
    base = TrainConfig(modalities=u)
    overrides = {
        k: v
        for k, v in {"epochs": args.epochs, "pretrain_epochs": args.pretrain_epochs}.items()
        if v is not None
    }
    base = replace(base, **overrides)
    t0 = time.perf_counter()
    interventions = [v.strip() for v in args.interventions.split(",") if v.strip()]
    try:
        with catch_warnings():
            # a model at chance is reported once per grid row below (grid.not_learned), not once per training
            simplefilter("ignore", NearChanceWarning)
            grid = run_grid(
                dataset,
                train_sets,
                methods,
                seeds,
                base,
                model_factory=factory,
                interventions=interventions,
                wiseft_alphas=args.alphas,  # parsed and checked by alphas_arg
                include_specialists=not args.no_specialists,
                progress=show_progress(args),
                executor=args.executor,
                workers=args.workers,
                threads=args.threads,
                store=store,
                resume=args.resume,
                max_retries=args.max_retries,
                ray_address=args.ray_address,
                gpus_per_job=args.gpus_per_job,
                corruptions=args.corruptions,
                severities=args.severities,
                corruption_seed=args.corruption_seed,
            )
        failure = None
    except SweepError as exc:
        grid, failure = exc.result, exc
    grid.meta["seconds"] = time.perf_counter() - t0
    written = grid.write_report(args.report) if args.report and grid.scores else {}
    for row in grid.not_learned():
        warn(not_learned_row_message(row, grid.split))
    plain_failures = is_quiet(args) or json_stdout(args)  # no tables: each failure is an error line
    if failure is not None and plain_failures:
        for f in failure.failures:
            error_line(f"FAILED {f['describe']} (job {f['job']}, {f['attempts']} attempt(s)): {f['error']}")
        error_line(
            f"{len(grid.failed)} grid cells failed; fix the cause and rerun with --resume to run only those"
        )
    if json_stdout(args):
        emit_json(args, grid.to_dict())
        return 1 if failure is not None else 0
    from rich.markdown import Markdown

    console = human_console(args)
    console.print(Markdown(grid.markdown()))
    sw = grid.meta["sweep"]
    console.print(
        f"grid of {len(grid.scores)} models evaluated in {grid.meta['seconds']:.0f} s; jobs: {sw['reused']} "
        f"reused, {sw['ran']} run ({sw['retries']} retried, {sw['failed']} failed) by the {sw['executor']} "
        f"executor" + (f"; store: {sw['store']}" if sw["store"] else "")
    )
    if grid.corruption is not None and grid.corruption.regret_rows():
        console.print(_regret_table(grid))
    for kind, path in written.items():
        console.print(f"  {kind}: {path}")
    emit_json(args, grid.to_dict())
    if failure is not None and not plain_failures:
        for f in failure.failures:
            console.print(
                f"FAILED {f['describe']} (job {f['job']}, {f['attempts']} attempt(s)): {f['error']}"
            )
        console.print(
            f"{len(grid.failed)} grid cells failed; fix the cause and rerun with --resume to run only those"
        )
    return 1 if failure is not None else 0
