"""``edgefuse robustness``: the train × test modality grid with every metric of ROBUSTNESS.md.

Every model of the grid is the reference architecture, or your own with ``--model-factory
package.module:function`` (``--factory-kwargs`` JSON, ``--allow-import`` required: importing the factory
runs your code), called with every modality of ``--data``.
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
    pretrain_epochs_int,
    seeds_arg,
)
from edgefuse.cli.train import add_factory_args, factory_from_args


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register the subcommand."""
    p = sub.add_parser(
        "robustness", help="accuracy for every train set x test set of modalities", description=__doc__
    )
    add_data_args(p)
    add_factory_args(p)
    p.add_argument("--train-sets", default=None, help="e.g. audio+image,audio,image (default: every subset)")
    p.add_argument("--methods", default="supervised,contrastive", help="supervised and/or contrastive")
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
    p.add_argument("--epochs", type=epochs_int, default=None, help="(fine-tuning) epochs per model, 1..10000")
    p.add_argument(
        "--pretrain-epochs",
        type=pretrain_epochs_int,
        default=None,
        help="contrastive pre-training epochs, 0..10000",
    )
    p.add_argument("--no-specialists", action="store_true", help="do not add the specialists S = T")
    p.add_argument("--json", dest="json_path", default=None, help="write the grid as JSON here")
    p.add_argument("--report", default=None, help="folder for grid.json, grid.md and heatmap.png")
    return p


def run(args: argparse.Namespace) -> int:
    """Train what the grid needs, evaluate, write the outputs, print the tables."""
    import time
    from dataclasses import replace

    from edgefuse.errors import ContractError
    from edgefuse.robustness import parse_sets, run_grid, subsets
    from edgefuse.train import METHODS, TrainConfig

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    bad = [m for m in methods if m not in METHODS]
    if bad or not methods:
        raise ContractError(f"--methods {args.methods!r}: allowed methods are {list(METHODS)}")
    if args.json_path:
        check_out_path(args.json_path, "--json")
    if args.report:
        check_out_path(args.report, "--report")
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
        progress=True,
    )
    grid.meta["seconds"] = time.perf_counter() - t0
    if args.json_path:
        grid.write_json(args.json_path)
    written = grid.write_report(args.report) if args.report else {}
    from rich.markdown import Markdown

    from edgefuse.cli._common import plain_console

    console = plain_console()
    console.print(Markdown(grid.markdown()))
    console.print(f"grid of {len(grid.scores)} models evaluated in {grid.meta['seconds']:.0f} s")
    for kind, path in written.items():
        console.print(f"  {kind}: {path}")
    return 0
