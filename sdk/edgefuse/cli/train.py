"""``edgefuse train``: train a contract model on a dataset and write a checkpoint.

The model is the reference architecture, or your own with ``--model-factory package.module:function``
(``--factory-kwargs`` JSON, ``--allow-import`` required: importing the factory runs your code). The
factory is called as ``function(modalities, label_names, **kwargs)`` with every modality of ``--data``
and must return an ``edgefuse.MultimodalModel`` over exactly those modalities; the checkpoint records
the reference.
"""

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
    require_extra,
    seed_int,
)


def factory_ref_arg(text: str) -> str:
    """An argparse ``type=`` for ``--model-factory``: a ``package.module:function`` reference (nothing imported)."""
    from edgefuse.factory import FactoryError, parse_factory_ref

    try:
        parse_factory_ref(text)
    except FactoryError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def factory_kwargs_arg(text: str) -> str:
    """An argparse ``type=`` for ``--factory-kwargs``: a JSON object of at most 64 KiB (returned unchanged)."""
    from edgefuse.factory import FactoryError, parse_factory_ref

    try:
        parse_factory_ref("module:function", text)
    except FactoryError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def add_factory_args(parser: argparse.ArgumentParser) -> None:
    """Add ``--model-factory``, ``--factory-kwargs`` and ``--allow-import`` (shared with ``robustness``)."""
    g = parser.add_argument_group("your own model")
    g.add_argument(
        "--model-factory",
        type=factory_ref_arg,
        default=None,
        metavar="MODULE:FUNCTION",
        help="build the model with your factory package.module:function(modalities, label_names, **kwargs) "
        "instead of the reference architecture (needs --allow-import; the module must be importable, e.g. "
        "on PYTHONPATH)",
    )
    g.add_argument(
        "--factory-kwargs",
        type=factory_kwargs_arg,
        default=None,
        metavar="JSON",
        help="keyword arguments of the factory as a JSON object, e.g. '{\"embed_dim\": 32}'",
    )
    g.add_argument(
        "--allow-import",
        action="store_true",
        help="allow importing --model-factory: it is your code and importing it runs it",
    )


def factory_from_args(args: argparse.Namespace) -> Any:
    """The factory ``--model-factory`` names, imported (``None`` without the option).

    Raises:
        FactoryError: ``--factory-kwargs`` without ``--model-factory``, a bad reference or kwargs,
            no ``--allow-import`` (the factory is user code), or a factory that cannot be imported.
    """
    from edgefuse.factory import FactoryError, import_factory, parse_factory_ref

    if args.model_factory is None:
        if args.factory_kwargs is not None:
            raise FactoryError("--factory-kwargs needs --model-factory package.module:function")
        return None
    return import_factory(
        parse_factory_ref(args.model_factory, args.factory_kwargs), allow_import=args.allow_import
    )


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register the subcommand."""
    p = sub.add_parser("train", help="train a model (CPU) and write a checkpoint", description=__doc__)
    add_data_args(p)
    add_factory_args(p)
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
        "--intervention",
        default="none",
        choices=["none", "moddrop", "masd", "gate+moddrop", "gate+masd"],
        help="robustness intervention; gate+...: per-row reliability gates trained on corrupted copies",
    )
    p.add_argument(
        "--param",
        action="append",
        default=[],
        type=param_arg,
        metavar="NAME=VALUE",
        help="intervention hyper-parameter, repeatable: moddrop p=0.5; masd K=1 lambda=1 beta=0.5 tau=2; "
        "gate+...: those plus hidden=32 corrupt_p=0.8 copies=8 gate_weight=1 warmup=5 target_power=1",
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

    require_extra("train", "train")  # one line naming the extra, not a traceback, on a device without torch
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
    factory = factory_from_args(args)  # refused without --allow-import, before the data is loaded
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
        result = train(dataset, cfg, model_factory=factory, progress=None if args.json else cb)
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
    summary: dict[str, Any] = {"checkpoint": str(path), "recipe": cfg.to_dict(), "metrics": metrics}
    if factory is not None:
        summary["model_factory"] = factory.edgefuse_factory_ref.to_dict()
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
