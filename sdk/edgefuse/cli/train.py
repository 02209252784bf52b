"""``edgefuse train``: train a contract model on a dataset and write a checkpoint.

The model is the reference architecture, or your own with ``--model-factory package.module:function``
(``--factory-kwargs`` JSON, ``--allow-import`` required: importing the factory runs your code). The
factory is called as ``function(modalities, label_names, **kwargs)`` with every modality of ``--data``
and must return an ``edgefuse.MultimodalModel`` over exactly those modalities; the checkpoint records
the reference.

Output: a table of the test accuracy per test set T and the validation accuracy with its chance level;
``--json`` gives the summary (``checkpoint``, ``recipe``, ``metrics``, ``chance``, ``learned``) on stdout
(``--json``/``--json -``) or in a file (``--json PATH``). A model within 5 points of chance is saved, with a
``warning:`` line on stderr (also with ``--quiet``) and ``"learned": false``. ``--quiet``, ``--verbose`` and
``--log`` follow the CLI conventions (:mod:`edgefuse.cli`).
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
from edgefuse.cli._help import examples
from edgefuse.cli._output import (
    add_json_arg,
    add_output_args,
    emit_json,
    human_console,
    json_stdout,
    json_target,
    show_progress,
    warn,
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


DESCRIPTION = """Train a multimodal model on a dataset (on the CPU) and write it as a checkpoint folder.

The model is EdgeFuse's reference architecture, or your own with --model-factory \
package.module:function (keyword arguments with --factory-kwargs JSON; --allow-import is required, \
because importing the factory runs your code). The factory is called as function(modalities, \
label_names, **kwargs) with every modality of --data and must return an edgefuse.MultimodalModel over \
exactly those modalities; the checkpoint records the reference.

The checkpoint is then tested with every non-empty subset T of the modalities (the others absent) and \
the table names each case's scenario (same, missing, added, transfer): see docs/metrics.md."""

EPILOG = examples(
    "# the quickstart model: 20 epochs on synthetic audio and degraded images (nothing to download)",
    "edgefuse train --data av-digits-synthetic-audio --degrade-image 4 --out out/quickstart/cli-ckpt --overwrite",
    "# modality dropout against missing sensors, a short 5-epoch run",
    "edgefuse train --data av-digits-synthetic-audio --degrade-image 4 --intervention moddrop --param p=0.5 "
    "--epochs 5 --out out/quickstart/moddrop --overwrite",
    "# trained on audio only",
    "edgefuse train --data av-digits-synthetic-audio --degrade-image 4 --modalities audio --epochs 5 "
    "--out out/quickstart/audio-only --overwrite",
    note="--data av-digits pairs the FSDD spoken digits (give the recordings with --fsdd PATH or "
    "$EDGEFUSE_FSDD) with 8x8 digit images; av-digits-synthetic-audio replaces the recordings with "
    "synthetic audio features and needs no download.",
)


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register the subcommand."""
    p = sub.add_parser(
        "train",
        help="train a model (CPU) and write a checkpoint",
        description=DESCRIPTION,
        epilog=EPILOG,
    )
    add_data_args(p)
    add_factory_args(p)
    p.add_argument("--modalities", default=None, help="labelled modalities S, comma-separated (default: all)")
    p.add_argument(
        "--method",
        default="supervised",
        choices=["supervised", "contrastive"],
        help="supervised, or contrastive pre-training of the encoders then fine-tuning",
    )
    p.add_argument(
        "--epochs",
        type=epochs_int,
        default=None,
        help="(fine-tuning) epochs, 1..10000 (default: 20)",
    )
    p.add_argument(
        "--pretrain-epochs",
        type=pretrain_epochs_int,
        default=None,
        help="contrastive pre-training epochs, 0..10000 (default: 10)",
    )
    p.add_argument(
        "--lr", type=positive_float, default=None, help="AdamW learning rate, a number > 0 (default: 0.003)"
    )
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
    p.add_argument("--seed", type=seed_int, default=0, help=f"training seed, 0..{MAX_SEED}")
    p.add_argument("--out", required=True, help="checkpoint folder to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing checkpoint folder")
    add_json_arg(p, "the summary (checkpoint, recipe, metrics, chance level, learned)")
    add_output_args(p, log="train")
    return p


def run(args: argparse.Namespace) -> int:
    """Train, evaluate on every test set, save the checkpoint, print a summary.

    A model whose best validation accuracy is within 5 points of chance
    (:class:`edgefuse.chance.NearChanceWarning`) is still saved; a ``warning:`` line says so on stderr
    (also with ``--quiet``) and the JSON has ``"learned": false``.

    Args:
        args: The parsed arguments.

    Returns:
        0 (errors are raised).
    """
    import warnings
    from dataclasses import replace

    require_extra("train", "train")  # one line naming the extra, not a traceback, on a device without torch
    out = check_out_path(args.out)  # fail before importing torch and spending minutes on training
    from edgefuse.errors import CheckpointError
    from edgefuse.outputs import CHECKPOINT, check_output

    # an existing path without --overwrite, or one --overwrite may not replace (anything but a checkpoint
    # folder: the user's files, an export artifact, the dataset folder, a file) is refused before training
    fsdd = [args.fsdd] if getattr(args, "fsdd", None) else []
    check_output(out, CHECKPOINT, overwrite=args.overwrite, protect=fsdd, error=CheckpointError)
    json_target(args, protect=(("the checkpoint folder", out),))  # a bad --json PATH: refused before training

    from edgefuse.chance import NearChanceWarning, near_chance
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
    with (
        warnings.catch_warnings(record=True) as caught,
        progress_callback(f"{args.method} S={format_set(s)}", enabled=show_progress(args)) as cb,
    ):
        warnings.simplefilter("always", NearChanceWarning)
        result = train(dataset, cfg, model_factory=factory, progress=cb)
    for w in caught:  # "did not learn": a visible line, even with --quiet; any other warning as usual
        if issubclass(w.category, NearChanceWarning):
            warn(str(w.message))
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
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
    chance = metrics.get("chance")
    summary: dict[str, Any] = {
        "checkpoint": str(path),
        "recipe": cfg.to_dict(),
        "metrics": metrics,
        "chance": chance,
        "learned": not near_chance(metrics["val_accuracy"], chance),
    }
    if factory is not None:
        summary["model_factory"] = factory.edgefuse_factory_ref.to_dict()
    if json_stdout(args):
        emit_json(args, summary)
        return 0
    from rich.table import Table

    # the sentence on its own line: as a table title it would wrap to the table's narrow width
    headline = (
        f"{args.method} trained on S={format_set(s)} (seed {args.seed}) in "
        f"{result.metrics['train_seconds']:.1f} s; test accuracy with each set T of modalities present:"
    )
    table = Table()
    table.add_column("test modalities T")
    table.add_column("scenario")
    table.add_column("test accuracy", justify="right")
    from edgefuse.robustness import scenario

    for t in subsets(u):
        table.add_row(format_set(t), scenario(s, t), f"{test_acc[format_set(t)]:.3f}")
    console = human_console(args)
    console.print(headline, soft_wrap=True)
    console.print(table)
    console.print(
        f"validation accuracy on S: {result.metrics['val_accuracy']:.3f}"
        + ("" if chance is None else f" (chance {chance:.3f})")
        + f"; checkpoint: {path}",
        soft_wrap=True,
    )
    emit_json(args, summary)
    return 0
