"""``edgefuse train``: train a contract model on a dataset and write a checkpoint."""

from __future__ import annotations

import argparse
from typing import Any

from edgefuse.cli._common import (
    MAX_SEED,
    add_data_args,
    check_out_path,
    epochs_int,
    load_data,
    param_arg,
    parse_params,
    positive_float,
    pretrain_epochs_int,
    progress_callback,
    seed_int,
)


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register the subcommand."""
    p = sub.add_parser("train", help="train a model (CPU) and write a checkpoint", description=__doc__)
    add_data_args(p)
    p.add_argument("--modalities", default=None, help="labelled modalities S, comma-separated (default: all)")
    p.add_argument("--method", default="supervised", choices=["supervised", "contrastive"])
    p.add_argument(
        "--epochs",
        type=epochs_int,
        default=None,
        help="(fine-tuning) epochs, 1..10000 (default: the recipe's)",
    )
    p.add_argument(
        "--pretrain-epochs",
        type=pretrain_epochs_int,
        default=None,
        help="contrastive pre-training epochs, 0..10000",
    )
    p.add_argument("--lr", type=positive_float, default=None, help="learning rate, a finite number > 0")
    p.add_argument(
        "--intervention", default="none", choices=["none", "moddrop", "masd"], help="robustness intervention"
    )
    p.add_argument(
        "--param",
        action="append",
        default=[],
        type=param_arg,
        metavar="NAME=VALUE",
        help="intervention hyper-parameter, repeatable: moddrop p=0.5; masd K=1 lambda=1 beta=0.5 tau=2",
    )
    p.add_argument("--seed", type=seed_int, default=0, help=f"training seed, 0..{MAX_SEED} (default 0)")
    p.add_argument("--out", required=True, help="checkpoint folder to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing checkpoint folder")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    return p


def run(args: argparse.Namespace) -> int:
    """Train, evaluate on every test set, save the checkpoint, print a summary."""
    import json
    from dataclasses import replace

    out = check_out_path(args.out)  # fail before importing torch and spending minutes on training
    from edgefuse.errors import CheckpointError
    from edgefuse.outputs import CHECKPOINT, check_output

    # an existing path without --overwrite, or one --overwrite may not replace (anything but a checkpoint
    # folder: the user's files, an export artifact, the dataset folder, a file) is refused before training
    fsdd = [args.fsdd] if getattr(args, "fsdd", None) else []
    check_output(out, CHECKPOINT, overwrite=args.overwrite, protect=fsdd, error=CheckpointError)

    from edgefuse.checkpoint import save_checkpoint
    from edgefuse.interventions import make_loss
    from edgefuse.robustness import format_set, parse_sets, subsets
    from edgefuse.train import TrainConfig, accuracy, train

    overrides = {
        k: v
        for k, v in {
            "epochs": args.epochs,
            "pretrain_epochs": args.pretrain_epochs,
            "lr": args.lr,
        }.items()
        if v is not None
    }
    params = parse_params(args.param)
    # the recipe, the intervention and its parameters are checked before the data is loaded (the
    # modalities, known only from the data, do not change what is checked here)
    probe = TrainConfig(
        modalities=("audio",), method=args.method, intervention=args.intervention, intervention_params=params
    )
    make_loss(replace(probe, **overrides))
    dataset = load_data(args)
    u = dataset.modality_names
    s = parse_sets(args.modalities.replace(",", "+"), u)[0] if args.modalities else u
    cfg = TrainConfig(
        modalities=s,
        method=args.method,
        seed=args.seed,
        intervention=args.intervention,
        intervention_params=params,
    )
    cfg = replace(cfg, **overrides)
    with progress_callback(f"{args.method} S={format_set(s)}") as cb:
        result = train(dataset, cfg, progress=None if args.json else cb)
    test = dataset.split("test")
    test_acc = {format_set(t): accuracy(result.model, test, t) for t in subsets(u)}
    metrics = {**result.metrics, "test_accuracy": test_acc}
    path = save_checkpoint(
        result.model,
        out,
        recipe=cfg.to_dict(),
        seed=args.seed,
        metrics=metrics,
        dataset=dataset.summary(),
        overwrite=args.overwrite,
    )
    summary = {"checkpoint": str(path), "recipe": cfg.to_dict(), "metrics": metrics}
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
        return 0
    from rich.table import Table

    from edgefuse.cli._common import plain_console

    table = Table(
        title=f"{args.method} trained on S={format_set(s)} (seed {args.seed}) in {result.metrics['train_seconds']:.1f} s"
    )
    table.add_column("test modalities T")
    table.add_column("scenario")
    table.add_column("test accuracy", justify="right")
    from edgefuse.robustness import scenario

    for t in subsets(u):
        table.add_row(format_set(t), scenario(s, t), f"{test_acc[format_set(t)]:.3f}")
    console = plain_console()
    console.print(table)
    console.print(f"validation accuracy on S: {result.metrics['val_accuracy']:.3f}; checkpoint: {path}")
    return 0
