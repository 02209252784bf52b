"""``edgefuse wise-ft``: weight-space ensembling of two checkpoints, α chosen on the validation split.

``--json [PATH|-]``, ``--quiet``, ``--verbose`` and ``--log PATH`` follow the CLI conventions
(:mod:`edgefuse.cli`); ``--json`` gives the sweep with the chosen checkpoint, the chance level of the
selection split and ``learned`` (a chosen model within 5 points of chance is also a ``warning:`` line).
"""

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
from edgefuse.cli._help import examples
from edgefuse.cli._output import add_json_arg, add_output_args

DESCRIPTION = """WiSE-FT: interpolate the weights of two checkpoints of the same model, \
theta = (1 - alpha) theta0 + alpha theta1, for each alpha of --alphas, and write the one chosen on the \
validation split (never the test split): among the alphas whose full-modality accuracy is within \
--tolerance of the best, the one with the best mean retention (docs/metrics.md).

theta0 is the robust model (pre-trained, or trained with an intervention such as --intervention \
moddrop), theta1 the standard fine-tuned one; both must come from the same data (--data and its \
options as they were trained)."""

EPILOG = examples(
    "# two checkpoints of the same data, then their interpolation (5 epochs each, for speed)",
    "edgefuse train --data av-digits-synthetic-audio --degrade-image 4 --intervention moddrop --param p=0.5 "
    "--epochs 5 --out out/quickstart/moddrop --overwrite",
    "edgefuse train --data av-digits-synthetic-audio --degrade-image 4 --epochs 5 --out out/quickstart/sup "
    "--overwrite",
    "edgefuse wise-ft --theta0 out/quickstart/moddrop --theta1 out/quickstart/sup --data "
    "av-digits-synthetic-audio --degrade-image 4 --out out/quickstart/wiseft --overwrite",
)


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register the subcommand."""
    p = sub.add_parser(
        "wise-ft",
        help="interpolate two checkpoints (WiSE-FT) and pick alpha on val",
        description=DESCRIPTION,
        epilog=EPILOG,
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
    add_json_arg(p, "the sweep (every alpha's accuracies, the chosen one, the checkpoint, the chance level)")
    add_output_args(p, log="wise-ft")
    return p


def run(args: argparse.Namespace) -> int:
    """Sweep α, write the chosen checkpoint plus the sweep table (Markdown, JSON) and plot.

    Output: the sweep table, the chosen α and the written files (stdout). ``--json`` gives the sweep
    (``WiseFTResult.to_dict()`` plus ``checkpoint``, ``written``, ``chance`` of the selection split and
    ``learned``) alone on stdout (``--json``, ``--json -``) or in a file (``--json PATH``, the table kept).
    A chosen model whose full-modality accuracy is within 5 points of chance gets a ``warning:`` line on
    stderr (also with ``--quiet``).

    Args:
        args: The parsed arguments.

    Returns:
        0 (errors are raised).
    """
    from edgefuse.cli._output import emit_json, human_console, json_stdout, json_target, warn
    from edgefuse.errors import CheckpointError
    from edgefuse.outputs import CHECKPOINT, check_output

    require_extra("wise-ft", "train", ("torch", "safetensors", "matplotlib"))  # the plot needs matplotlib
    out = check_out_path(args.out)  # before importing torch
    # refused before any work: an existing folder that is not a replaceable checkpoint, or an input
    check_output(
        out, CHECKPOINT, overwrite=args.overwrite, protect=[args.theta0, args.theta1], error=CheckpointError
    )
    json_target(
        args,
        protect=(("the output checkpoint", out), ("--theta0", args.theta0), ("--theta1", args.theta1)),
    )
    alphas = args.alphas  # parsed and checked by alphas_arg

    from rich.markdown import Markdown

    from edgefuse.chance import chance_accuracy, near_chance, not_learned_message
    from edgefuse.checkpoint import load_checkpoint, save_checkpoint
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
    chance = chance_accuracy(dataset.split(args.select_on).labels)
    learned = not near_chance(chosen["full_accuracy"], chance)
    if not learned:
        warn(
            not_learned_message(
                f"the chosen model (alpha {result.chosen_alpha:g})",
                chosen["full_accuracy"],
                chance,
                split=args.select_on,
            )
        )
    document = {
        **result.to_dict(),
        "checkpoint": str(path),
        "written": {kind: str(p) for kind, p in written.items()},
        "chance": chance,
        "learned": learned,
    }
    if json_stdout(args):
        emit_json(args, document)
        return 0
    console = human_console(args)
    console.print(Markdown(result.markdown()))
    console.print(
        f"chosen alpha = {result.chosen_alpha:g} (on {args.select_on}; chance {chance:.3f}); checkpoint: {path}",
        soft_wrap=True,
    )
    for kind, p in written.items():
        console.print(f"  {kind}: {p}")
    emit_json(args, document)
    return 0
