"""``edgefuse eval``: accuracy of an artifact (or checkpoint) per presence pattern on a labelled dataset.

The artifact is loaded as ``edgefuse run`` loads it (``--threads``, ``--manifest-sha256``); the dataset as
``edgefuse train`` loads it (``--data``, ``--fsdd``, ``--degrade-image``, ``--data-seed``). For every
non-empty subset T of the artifact's modalities, the split's rows are predicted in batches with only T's
inputs given (the others absent) and the top-1 predictions are compared with the split's labels.

The artifact's label names must equal the dataset's (same names, same order), and the dataset must have
every modality the artifact takes. ``--json -`` (or a bare ``--json``) prints only the JSON report on
stdout; ``--json PATH`` writes it to a file (replaced atomically) and prints the table; without ``--json``
only the table is printed. JSON accuracies are keyed by the pattern, e.g. ``"audio+image"``; ``chance``
is the split's chance level (the most frequent class's share, :mod:`edgefuse.chance`), and a ``warning:``
line on stderr (also with ``--quiet``) says when the accuracy with every modality present is within 5
points of it. ``--quiet``, ``--verbose`` and ``--log`` follow the CLI conventions (:mod:`edgefuse.cli`).

Exit status: 0 on success, 2 on bad input (no such folder, an unknown dataset or split, a label or
modality mismatch, a modified or invalid artifact, a backend that is not installed).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from edgefuse.cli._common import add_data_args, add_pin_arg, add_runtime_threads_arg, int_in
from edgefuse.cli._help import examples
from edgefuse.cli._output import add_json_arg, add_output_args

#: Rows per ``Session.predict`` call.
BATCH_ROWS = 256


DESCRIPTION = """Measure the accuracy of an artifact (or a checkpoint) on a labelled dataset, for \
every presence pattern: each non-empty subset T of its modalities, the others absent, as on a device \
without those sensors.

The artifact is loaded as 'edgefuse run' loads it (--threads, --manifest-sha256); the dataset as \
'edgefuse train' loads it (--data, --fsdd, --degrade-image, --data-seed): give the options the model \
was trained with. Its label names must equal the dataset's (same names, same order), and the dataset \
must have every modality the artifact takes.

--json - (or a bare --json) prints only the JSON report on stdout; --json PATH writes it to a file and \
prints the table. Exit status: 0 on success, 2 on bad input (no such folder, an unknown dataset or \
split, a label or modality mismatch, a modified or invalid artifact, a backend that is not installed)."""

EPILOG = examples(
    "# the quickstart checkpoint (PyTorch) and its artifact (ONNX Runtime) on the same test split",
    "edgefuse eval out/quickstart/cli-ckpt --data av-digits-synthetic-audio --degrade-image 4",
    "edgefuse eval out/quickstart/cli-x86 --data av-digits-synthetic-audio --degrade-image 4 --json "
    "out/quickstart/eval.json",
    "# on the validation split",
    "edgefuse eval out/quickstart/cli-x86 --data av-digits-synthetic-audio --degrade-image 4 --split val",
)


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register the subcommand.

    Args:
        sub: The subparsers action of the top-level parser.

    Returns:
        The subcommand's parser.
    """
    p = sub.add_parser(
        "eval",
        help="accuracy of an artifact or checkpoint per presence pattern on a labelled dataset",
        description=DESCRIPTION,
        epilog=EPILOG,
    )
    p.add_argument("artifact", help="artifact folder (with manifest.json) or checkpoint folder")
    add_data_args(p)
    p.add_argument("--split", default="test", help="split to evaluate (default: test)")
    p.add_argument(
        "--batch-size",
        type=int_in(1, 65536),
        default=BATCH_ROWS,
        metavar="N",
        help=f"rows per prediction call, 1..65536 (default {BATCH_ROWS})",
    )
    add_json_arg(p, "the report (accuracy per presence pattern, the chance level)")
    add_runtime_threads_arg(p)
    add_pin_arg(p)
    add_output_args(p, log="eval")
    return p


def evaluate_session(
    session: Any,
    split: Any,
    patterns: list[tuple[str, ...]],
    batch_size: int = BATCH_ROWS,
    progress: Any = None,
) -> dict[str, float]:
    """Top-1 accuracy of ``session`` on ``split`` for each presence pattern.

    Args:
        session: A loaded :class:`edgefuse.runtime.Session`.
        split: A :class:`edgefuse.data.base.Split` with every modality of the patterns.
        patterns: The modality sets T to evaluate; only T's inputs are given for each.
        batch_size: Rows per ``predict`` call.
        progress: Optional ``callback(phase, step, total)``, called after each batch.

    Returns:
        Pattern text (``"audio+image"``) -> accuracy in [0, 1], in the order of ``patterns``.
    """
    import numpy as np

    from edgefuse.modality_sets import format_set

    n = len(split)
    labels = np.asarray(split.labels)
    out: dict[str, float] = {}
    for t in patterns:
        name = format_set(t)
        correct = 0
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            inputs = {m: np.ascontiguousarray(split.inputs[m][start:stop]) for m in t}
            pred = session.predict(inputs)
            correct += int((pred.label_ids == labels[start:stop]).sum())
            if progress is not None:
                progress(name, stop, n)
        out[name] = correct / n
    return out


def run(args: argparse.Namespace) -> int:
    """Evaluate and print a table (or JSON); 0 on success.

    Args:
        args: The parsed arguments.

    Returns:
        The exit code.

    Raises:
        ContractError: No such folder, a bad ``--json`` path, label names or modalities that differ
            between the artifact and the dataset, or an empty split.
        DataError: An unknown dataset or split, or a dataset that cannot be loaded.
    """
    import warnings

    from edgefuse.chance import CHANCE_MARGIN, chance_accuracy, near_chance, not_learned_message
    from edgefuse.cli._common import load_data, progress_callback
    from edgefuse.cli._output import emit_json, human_console, json_stdout, json_target, show_progress, warn
    from edgefuse.cli._terminal import TERMINAL_STDERR
    from edgefuse.errors import ContractError
    from edgefuse.modality_sets import format_set, subsets
    from edgefuse.runtime import load

    artifact = Path(args.artifact)
    if not artifact.is_dir():
        raise ContractError(
            f"{args.artifact}: no such artifact folder (it must hold manifest.json, or model.json for a checkpoint)"
        )
    json_target(args, protect=(("the artifact folder", artifact),))  # refused before any work
    dataset = load_data(args)
    split = dataset.split(args.split)
    if len(split) == 0:
        raise ContractError(f"dataset {dataset.name!r} split {args.split!r} has no rows to evaluate")
    with warnings.catch_warnings():
        # a backend fallback or an unknown manifest profile: kept in session.notes, printed below
        warnings.simplefilter("ignore", UserWarning)
        session = load(args.artifact, threads=args.threads, manifest_sha256=args.manifest_sha256)
    with session:
        labels = list(session.label_names)
        if labels != list(dataset.label_names):
            raise ContractError(
                f"the artifact {args.artifact} has labels {labels} but dataset {dataset.name!r} has "
                f"{list(dataset.label_names)}; evaluate on the dataset the model was trained for"
            )
        mods = tuple(session.modalities)
        missing = [m for m in mods if m not in dataset.modality_names]
        if missing:
            raise ContractError(
                f"the artifact {args.artifact} takes modalities {list(mods)} but dataset {dataset.name!r} "
                f"has no {missing} (it has {list(dataset.modality_names)})"
            )
        patterns = subsets(mods)
        bar = progress_callback(
            f"eval {dataset.name}/{args.split}", enabled=show_progress(args) and TERMINAL_STDERR.isatty()
        )
        with bar as cb:
            acc = evaluate_session(session, split, patterns, args.batch_size, cb)
        backend, notes = session.backend, list(session.notes)

    report: dict[str, Any] = {
        "artifact": str(args.artifact),
        "data": dataset.name,
        "split": args.split,
        "rows": len(split),
        "backend": backend,
        "accuracy": acc,
        "chance": chance_accuracy(split.labels),
    }
    full = acc[format_set(patterns[0])]  # every modality present
    if near_chance(full, report["chance"]):
        warn(
            not_learned_message(str(args.artifact), full, report["chance"], split=f"{args.split}-split")
            + f" (with every modality present, within {100 * CHANCE_MARGIN:.0f} points of chance); or it "
            "is evaluated on other data than it was trained on: check --data, --degrade-image, --data-seed"
        )
    if json_stdout(args):
        emit_json(args, report)
        return 0

    from rich.table import Table

    table = Table(
        title=f"{args.artifact} on {dataset.name}/{args.split} ({len(split)} rows, {backend})",
    )
    table.add_column("present modalities T")
    table.add_column("accuracy", justify="right")
    for t in patterns:
        table.add_row(format_set(t), f"{acc[format_set(t)]:.3f}")
    console = human_console(args)
    console.print(table)
    console.print(
        f"chance level: {report['chance']:.3f} (the most frequent class's share of the {len(split)} rows)"
    )
    for text in notes:
        console.print(f"note: {text}", soft_wrap=True)
    emit_json(args, report)
    return 0
