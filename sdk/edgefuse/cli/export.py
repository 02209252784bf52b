"""``edgefuse export``: export a checkpoint for a device profile, with parity checked and a manifest.

The choices (stderr), a table of every format's status (stdout) and each failure (stderr); the converters'
own output goes to the log file. ``--json [PATH|-]``, ``--quiet``, ``--verbose`` and ``--log PATH`` follow the CLI conventions
(:mod:`edgefuse.cli`); ``--json`` gives the report (``profile``,
``modalities``, ``patterns``, ``choices``, ``results``).
"""

from __future__ import annotations

import argparse
from typing import Any

from edgefuse.cli._help import examples
from edgefuse.cli._output import add_json_arg, add_output_args

DESCRIPTION = """Export a checkpoint for a device profile: convert it to the formats the profile's \
backends run (ONNX, TFLite, Core ML, TensorRT), check each converted graph against PyTorch on every \
presence pattern of the profile's modalities, and write an artifact folder with a manifest.

Without --format/--precision the export follows the profile: for each of its backends, in order, that \
backend's format at the profile's first precision the format implements. int8 is post-training \
quantization, calibrated on the checkpoint's training data (or --calibration) and refused when a \
presence pattern loses more than --max-int8-drop points of accuracy.

A format whose converter is not installed here is reported as unavailable with what to install. Exit \
status: 0 when every format was written and validated, 1 when one failed or was unavailable \
(--allow-unavailable keeps 0 for those), 2 on bad input."""

EPILOG = examples(
    "# the quickstart artifact: ONNX for this host (the checkpoint of 'edgefuse train --help')",
    "edgefuse export out/quickstart/cli-ckpt --profile generic/x86-64 --format onnx --out out/quickstart/cli-x86 "
    "--overwrite",
    "# what the profile's backends run, at its first precision (int8, calibrated on the training data)",
    "edgefuse export out/quickstart/cli-ckpt --profile generic/smart-speaker --out out/quickstart/speaker --overwrite",
    "# every format of the profile's backends, one subfolder each; a converter missing here is reported, exit 0",
    "edgefuse export out/quickstart/cli-ckpt --profile nvidia/jetson-orin-nano --format all --precision fp32 "
    "--allow-unavailable --out out/quickstart/jetson --overwrite",
)


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register the subcommand."""
    from edgefuse.cli._common import int_in, nonneg_float, seed_int

    p = sub.add_parser(
        "export",
        help="export a checkpoint for a device profile",
        description=DESCRIPTION,
        epilog=EPILOG,
    )
    p.add_argument("checkpoint", help="checkpoint folder (from `edgefuse train`)")
    p.add_argument(
        "--profile", required=True, help="device profile id (see `edgefuse profiles list`) or a TOML path"
    )
    p.add_argument(
        "--format",
        default=None,
        help="default: the formats of the profile's backends, in order; or onnx, tflite, coreml, tensorrt, "
        "several comma-separated (onnx,tflite), or all (= the formats of the profile's backends)",
    )
    p.add_argument(
        "--precision",
        default=None,
        help="fp32, fp16 or int8 for every format (must be listed by the profile); default: per format, the "
        "profile's first precision that format implements",
    )
    p.add_argument(
        "--any-format",
        action="store_true",
        help="allow a format that none of the profile's backends runs",
    )
    p.add_argument(
        "--allow-unavailable",
        action="store_true",
        help="exit 0 when a format cannot be converted here (it is still reported)",
    )
    p.add_argument("--monolithic", action="store_true", help="one graph with a bool presence input")
    p.add_argument(
        "--out", required=True, help="artifact folder (with several formats: one subfolder per format)"
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace existing artifact folders (only EdgeFuse artifacts: never the checkpoint or other files)",
    )
    g = p.add_argument_group("int8 (post-training quantization with calibration)")
    g.add_argument(
        "--calibration",
        default=None,
        metavar="DATASET[:SPLIT]",
        help="calibration data (default: the checkpoint's training data, train split); accuracy per presence "
        "pattern is validated on the same dataset's test split",
    )
    g.add_argument(
        "--calibration-samples", type=int_in(16, 1 << 20), default=256, metavar="N", help="rows (default 256)"
    )
    g.add_argument(
        "--calibration-method",
        choices=("minmax", "percentile", "entropy"),
        default="minmax",
        help="activation range estimation (default minmax)",
    )
    g.add_argument("--calibration-seed", type=seed_int, default=0, help="row sampling seed (default 0)")
    g.add_argument(
        "--max-int8-drop",
        type=nonneg_float,
        default=1.0,
        metavar="POINTS",
        help="largest accuracy drop allowed on any presence pattern, in points (default 1.0)",
    )
    g.add_argument(
        "--keep-fp32",
        default="",
        metavar="GRAPHS",
        help="graphs left in float, comma-separated: head, encoder_<modality> (a mixed-precision artifact)",
    )
    p.add_argument(
        "--fsdd", default=None, help="FSDD folder for AV-digits (calibration, int8 and fp16 checks)"
    )
    add_json_arg(p, "the report (what was chosen, every format's status and checks)")
    add_output_args(p, log="export")
    return p


def run(args: argparse.Namespace) -> int:
    """Export and print what was chosen and why, then a table of every format's status (or JSON).

    Every format is tried even when another one fails. Exit status: 0 when every format was written and
    validated; 1 when at least one format failed (its conversion or validation raised, e.g. parity or an
    int8 accuracy drop) or could not be converted here (``--allow-unavailable`` keeps 0 for those); each
    is also named on stderr. A single requested format that cannot be converted here is an error (exit 2,
    the reason says what to install), as is an invalid option or output folder.

    Output: the choices (stderr), a table (stdout), failures (stderr). ``--json`` gives the report
    (``profile``, ``modalities``, ``patterns``, ``choices``, ``results``): with ``--json``/``--json -`` on
    stdout alone (the choices and the table are skipped), with ``--json PATH`` in a file as well. The
    converters' own output goes to the ``--log`` file (see :func:`edgefuse.cli._output.converter_log`).
    """
    from contextlib import nullcontext

    from edgefuse.cli._common import check_out_path, require_extra
    from edgefuse.cli._output import emit_json, human_console, json_stdout, json_target, show_progress
    from edgefuse.cli._terminal import plain_console

    # tracing a checkpoint needs torch; a format whose converter is missing is reported per format below
    require_extra("export", "export")
    from edgefuse.export.selection import plan_formats
    from edgefuse.profiles import get_profile

    check_out_path(args.out)
    json_target(args, protect=(("the artifact folder --out", args.out), ("the checkpoint", args.checkpoint)))
    prof = get_profile(args.profile)
    # decided (and refused) before any data is loaded
    choices = plan_formats(prof, _formats(args.format), args.precision, any_format=args.any_format)
    precisions = {c.precision for c in choices}
    data = _labelled_data(args, precisions) if precisions & {"fp16", "int8"} else None
    agreement = data.split("test") if data is not None and "fp16" in precisions else None
    int8 = _int8_settings(args, data) if "int8" in precisions else None
    if show_progress(args):  # what was chosen and why: not with --quiet, nor with --json -
        err = plain_console(stderr=True)
        if "int8" not in precisions and (args.calibration or args.keep_fp32):
            err.print(
                "note: --calibration/--keep-fp32 apply to int8 formats; none is exported at int8 here",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
        for c in choices:
            err.print(f"{c.format} {c.precision}: {c.reason}", markup=False, highlight=False, soft_wrap=True)

    from edgefuse.export.pipeline import export

    status = plain_console(stderr=True).status("exporting") if show_progress(args) else nullcontext(None)
    with status as shown:
        report = export(
            args.checkpoint,
            prof,
            [c.format for c in choices],
            args.out,
            precision=args.precision,
            monolithic=args.monolithic,
            overwrite=args.overwrite,
            agreement_split=agreement,
            # a message is data (a reason may name 'edgefuse[coreml]'): not parsed as rich markup
            progress=None if shown is None else _plain_updates(shown),
            any_format=args.any_format,
            int8=int8,
        )
    rows = [
        {
            "format": r.format,
            "precision": r.precision,
            "status": r.status,
            "folder": None if r.folder is None else str(r.folder),
            "seconds": round(r.seconds, 2),
            "parity_checks": len(r.parity),
            "max_abs_diff": max((c["max_abs"] for c in r.parity), default=None),
            "fp16_agreement": r.agreement,
            "int8_worst_drop_points": r.worst_int8_drop,
            "int8": r.int8,
            "note": r.reason,
            "error_type": r.error_type,
        }
        for r in report.results
    ]
    code = _exit_code(report, args.allow_unavailable)
    document = {
        "profile": report.profile,
        "modalities": report.modalities,
        "patterns": report.patterns,
        "choices": report.choices,
        "results": rows,
    }
    if json_stdout(args):
        emit_json(args, document)
        _summary(report, args.allow_unavailable)
        return code
    from rich.table import Table
    from rich.text import Text

    console = human_console(args)
    # a narrow terminal has no room for paths: the folders go below the table, one per line
    folders_in_table = console.width >= _WIDE
    table = Table(
        title=f"export for {report.profile}: modalities {', '.join(report.modalities)}; "
        f"{len(report.patterns)} presence pattern(s)"
    )
    for col in ("format", "precision", "status", "seconds", "checks", "vs torch"):
        table.add_column(col, no_wrap=folders_in_table)
    if folders_in_table:
        table.add_column("folder / note", overflow="fold")
    # a long reason (what to install, why a check was skipped) would make a narrow, dozens-of-lines-tall
    # cell: it is printed in full below the table, the cell points to it
    folders: list[tuple[str, str]] = []
    notes: list[tuple[str, str]] = []
    for r in rows:
        which = f"{r['format']} {r['precision'] or ''}".strip()
        cells = [
            r["format"],
            r["precision"] or "-",
            r["status"],
            f"{r['seconds']:.1f}",
            _checks(r),
            _versus(r),
        ]
        note = r["note"] or ""
        if note and (len(note) > _NOTE_IN_CELL or not folders_in_table):
            notes.append((which, note))
            note = f"see note {len(notes)} below"
        if folders_in_table:
            cells.append("\n".join(text for text in (r["folder"], note) if text))
        elif r["folder"]:
            folders.append((which, r["folder"]))
        table.add_row(*cells)
    console.print(table)
    for which, folder in folders:
        console.print(Text.assemble((f"{which}:", "bold"), f" written to {folder}"))
    for number, (which, text) in enumerate(notes, 1):
        console.print(Text.assemble((f"note {number} ({which}):", "bold"), f" {text}"))
    for r in report.results:
        if r.int8 and r.int8.get("accuracy"):
            console.print(_int8_table(r))
    emit_json(args, document)
    _summary(report, args.allow_unavailable)
    return code


def _plain_updates(status: Any) -> Any:
    """``status.update`` for plain messages: a rich Status would parse ``edgefuse[coreml]`` as markup."""
    from rich.text import Text

    return lambda message: status.update(Text(message))


#: Narrowest console whose export table has the "folder / note" column (a narrower one lists them below).
_WIDE = 120
#: Longest note shown inside the export table's "folder / note" cell; a longer one is printed below it.
_NOTE_IN_CELL = 60


def _checks(row: dict[str, Any]) -> str:
    if row["int8"] and row["int8"].get("accuracy"):
        return f"{len(row['int8']['accuracy'])} pattern(s)"
    return str(row["parity_checks"])


def _versus(row: dict[str, Any]) -> str:
    """The parity column: max |Δ| for float formats, the worst accuracy drop for int8."""
    if row["int8_worst_drop_points"] is not None:
        return f"worst drop {row['int8_worst_drop_points']:.2f} pts"
    return "-" if row["max_abs_diff"] is None else f"max |Δ| {row['max_abs_diff']:.2e}"


def _int8_table(result: Any) -> Any:
    """Accuracy per presence pattern of an int8 artifact (fp32 PyTorch vs the artifact) and SQNR per graph."""
    from rich.table import Table

    sqnr = ", ".join(
        f"{g} {'exact' if v is None else f'{v:.1f} dB'}"
        for g, v in (result.int8.get("sqnr_db") or {}).items()
    )
    table = Table(title=f"{result.format} int8 accuracy per presence pattern (SQNR: {sqnr})")
    for col in ("pattern", "rows", "fp32", "int8", "drop (points)", "top-1 agreement"):
        table.add_column(col)
    for row in result.int8["accuracy"]:
        table.add_row(
            row["pattern"],
            str(row["rows"]),
            f"{row['fp32_accuracy']:.3f}",
            f"{row['int8_accuracy']:.3f}",
            f"{row['drop_points']:+.2f}",
            f"{row['top1_agreement']:.3f}",
        )
    return table


def _exit_code(report: Any, allow_unavailable: bool) -> int:
    if report.failed or (report.unavailable and not allow_unavailable):
        return 1
    return 0


def _formats(text: str | None) -> str | list[str] | None:
    """``--format``: one name (or ``all``) as given, several comma-separated ones as a list; None as is."""
    if text is None or "," not in text:
        return text
    return [f.strip() for f in text.split(",") if f.strip()] or [text]


def _summary(report: Any, allow_unavailable: bool = False) -> None:
    """Name each failed and unavailable format on stderr, below the table (whatever its width)."""
    from rich.text import Text

    from edgefuse.cli._terminal import plain_console

    err = plain_console(stderr=True)
    unavailable = [r for r in report.results if r.status == "unavailable"]
    if unavailable:
        names = ", ".join(r.format for r in unavailable)
        err.print(
            Text.assemble(
                ("note:", "bold yellow"),
                f" not exported here (unavailable; the reason is in the report above): {names}"
                + ("" if allow_unavailable else "; exit status 1 (--allow-unavailable keeps 0)"),
            )
        )
    for r in report.failed:
        err.print(Text.assemble(("error:", "bold red"), f" {r.format} export failed: {r.reason}"))
    if report.failed:
        written = [r.format for r in report.results if r.status == "ok"]
        err.print(
            f"{len(report.failed)} of {len(report.results)} format(s) failed"
            + (f"; written and validated: {', '.join(written)}" if written else "")
        )


def _labelled_data(args: argparse.Namespace, precisions: set[str]) -> Any:
    """The dataset behind ``--calibration`` (default: the checkpoint's training data), or None.

    fp16 needs it only for the top-1 agreement check on AV-digits (other data: no check, as before);
    int8 always needs calibration data.

    Raises:
        DataError: The data cannot be loaded (for AV-digits: the FSDD recordings), or int8 without
            ``--calibration`` for a checkpoint whose training data is unknown; the message names the fix.
    """
    from edgefuse.checkpoint import read_checkpoint_info
    from edgefuse.data.registry import DATASETS, load_dataset
    from edgefuse.errors import DataError

    info = read_checkpoint_info(args.checkpoint)
    dataset = info.get("dataset") or {}
    name = (args.calibration or "").split(":")[0] or dataset.get("name")
    if "int8" not in precisions and (args.calibration is None and name != "av-digits"):
        return None  # fp16 on other data: no agreement check
    if name not in DATASETS:
        known = (
            f" (the checkpoint was trained on {name!r}, which EdgeFuse cannot load by name)" if name else ""
        )
        raise DataError(
            f"int8 needs calibration data{known}: pass --calibration DATASET[:SPLIT] with one of {list(DATASETS)}, "
            "or export at --precision fp32"
        )
    same = name == dataset.get("name")
    modalities = [m["name"] for m in info.get("modalities", []) if isinstance(m, dict) and "name" in m]
    try:
        return load_dataset(
            name,
            fsdd=args.fsdd,
            degrade_image=dataset.get("degrade_image") if same else None,
            seed=int(dataset.get("seed", 0)) if same else 0,
            modalities=modalities or None,
        )
    except DataError as exc:
        whose = f"the checkpoint {args.checkpoint} was trained on {name}" if same else f"--calibration {name}"
        raise DataError(
            f"{whose}; exporting it at {'/'.join(sorted(precisions & {'fp16', 'int8'}))} needs that data (int8: "
            "calibration and accuracy per presence pattern; fp16: top-1 agreement with PyTorch), and it "
            f"cannot be loaded here. For av-digits give the FSDD recordings with --fsdd PATH (or $EDGEFUSE_FSDD), "
            f"or export at --precision fp32. The data error: {exc}"
        ) from None


def _int8_settings(args: argparse.Namespace, data: Any) -> Any:
    """``Int8Settings`` from the int8 options: calibration split, validation on the test split."""
    from edgefuse.export.int8 import Int8Settings
    from edgefuse.export.quantize import QuantOptions

    split = (args.calibration or "").partition(":")[2] or "train"
    return Int8Settings.from_dataset(
        data,
        split,
        options=QuantOptions(
            method=args.calibration_method, samples=args.calibration_samples, seed=args.calibration_seed
        ),
        max_drop=args.max_int8_drop,
        keep_fp32=tuple(g.strip() for g in args.keep_fp32.split(",") if g.strip()),
    )
