"""``edgefuse wise-ft``: weight-space ensembling of two checkpoints, α chosen on the validation split."""

from __future__ import annotations

import argparse
from typing import Any

from edgefuse.cli._common import (
    add_data_args,
    alphas_arg,
    check_out_path,
    load_data,
    probability,
    require_extra,
)


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register the subcommand."""
    p = sub.add_parser(
        "wise-ft", help="interpolate two checkpoints (WiSE-FT) and pick alpha on val", description=__doc__
    )
    p.add_argument(
        "--theta0", required=True, help="robust checkpoint (pre-trained or trained with an intervention)"
    )
    p.add_argument("--theta1", required=True, help="standard fine-tuned checkpoint")
    p.add_argument(
        "--alphas",
        type=alphas_arg,
        default="0:1:0.1",
        help="alphas in [0, 1]: start:stop:step or a list (theta = (1-a) theta0 + a theta1)",
    )
    p.add_argument("--select-on", default="val", help="split to choose alpha on (never test)")
    p.add_argument(
        "--tolerance",
        type=probability,
        default=0.01,
        help="allowed full-modality accuracy loss, in [0, 1] (0.01 = 1 point)",
    )
    p.add_argument("--out", required=True, help="checkpoint folder for the chosen model")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    p.add_argument(
        "--allow-import",
        action="store_true",
        help="build the models with the model factory the checkpoints record (imports and runs that code); "
        "without it a checkpoint of your own model runs its stored programs",
    )
    add_data_args(p)
    return p


def run(args: argparse.Namespace) -> int:
    """Sweep α, write the chosen checkpoint plus the sweep table (Markdown, JSON) and plot."""
    from edgefuse.errors import CheckpointError
    from edgefuse.outputs import CHECKPOINT, check_output

    require_extra("wise-ft", "train", ("torch", "safetensors", "matplotlib"))  # the plot needs matplotlib
    out = check_out_path(args.out)  # before importing torch
    # refused before any work: an existing folder that is not a replaceable checkpoint, or an input
    check_output(
        out, CHECKPOINT, overwrite=args.overwrite, protect=[args.theta0, args.theta1], error=CheckpointError
    )
    alphas = args.alphas  # parsed and checked by alphas_arg

    from rich.markdown import Markdown

    from edgefuse.checkpoint import load_checkpoint, save_checkpoint
    from edgefuse.cli._common import plain_console
    from edgefuse.wiseft import check_same_architecture, sweep

    c0 = load_checkpoint(args.theta0, trust_code=args.allow_import)
    c1 = load_checkpoint(args.theta1, trust_code=args.allow_import)
    check_same_architecture(c0.model, c1.model)  # fail before loading data
    dataset = load_data(args)
    result = sweep(c0.model, c1.model, dataset, alphas, split=args.select_on, tolerance=args.tolerance)
    recipe = {
        "method": "wise-ft",
        "theta0": str(args.theta0),
        "theta1": str(args.theta1),
        "theta0_recipe": c0.recipe,
        "theta1_recipe": c1.recipe,
        "alpha": result.chosen_alpha,
        "selected_on": args.select_on,
    }
    chosen = next(r for r in result.rows if r["alpha"] == result.chosen_alpha)
    path = save_checkpoint(
        result.model,
        out,
        recipe=recipe,
        seed=c1.info.get("seed"),
        metrics={"wiseft": chosen},
        dataset=c1.info.get("dataset"),
        overwrite=args.overwrite,
    )
    written = result.write(path)  # the sweep table and plot live beside the chosen weights
    console = plain_console()
    console.print(Markdown(result.markdown()))
    console.print(f"chosen alpha = {result.chosen_alpha:g} (on {args.select_on}); checkpoint: {path}")
    for kind, p in written.items():
        console.print(f"  {kind}: {p}")
    return 0
