"""``edgefuse export``: export a checkpoint for a device profile, with parity checked and a manifest."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register the subcommand."""
    p = sub.add_parser("export", help="export a checkpoint for a device profile", description=__doc__)
    p.add_argument("checkpoint", help="checkpoint folder (from `edgefuse train`)")
    p.add_argument(
        "--profile", required=True, help="device profile id (see `edgefuse profiles list`) or a TOML path"
    )
    p.add_argument(
        "--format",
        default="onnx",
        help="onnx, tflite, coreml, tensorrt, several of them comma-separated (onnx,tflite), or all",
    )
    p.add_argument("--precision", default="fp32", help="fp32 or fp16 (must be listed by the profile)")
    p.add_argument("--monolithic", action="store_true", help="one graph with a bool presence input")
    p.add_argument(
        "--out", required=True, help="artifact folder (with --format all: one subfolder per format)"
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace existing artifact folders (only EdgeFuse artifacts: never the checkpoint or other files)",
    )
    p.add_argument("--fsdd", default=None, help="FSDD folder for the fp16 top-1 agreement check on AV-digits")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    return p


def run(args: argparse.Namespace) -> int:
    """Export and print a table of every format's status and reason (or JSON).

    Every requested format is tried even when another one fails. Exit status: 0 when no format failed
    (formats unavailable here are listed with the reason, and do not fail the command), 1 when at least
    one format failed (its conversion or validation raised, e.g. parity); each failed format is also
    named on stderr. A single requested format that cannot be converted here is an error (exit 2, the
    reason says what to install), as is an invalid option or output folder.
    """
    import json
    from contextlib import nullcontext

    from edgefuse.cli._common import check_out_path, plain_console

    check_out_path(args.out)
    _check_precision(args)  # before the fp16 agreement check loads any data
    agreement = _agreement_split(args) if args.precision == "fp16" else None

    from edgefuse.export.pipeline import export

    status = nullcontext(None) if args.json else plain_console(stderr=True).status("exporting")
    with status as shown:
        report = export(
            args.checkpoint,
            args.profile,
            _formats(args.format),
            args.out,
            precision=args.precision,
            monolithic=args.monolithic,
            overwrite=args.overwrite,
            agreement_split=agreement,
            progress=None if shown is None else shown.update,
        )
    rows = [
        {
            "format": r.format,
            "status": r.status,
            "folder": None if r.folder is None else str(r.folder),
            "seconds": round(r.seconds, 2),
            "parity_checks": len(r.parity),
            "max_abs_diff": max((c["max_abs"] for c in r.parity), default=None),
            "fp16_agreement": r.agreement,
            "note": r.reason,
            "error_type": r.error_type,
        }
        for r in report.results
    ]
    if args.json:
        print(
            json.dumps(
                {
                    "profile": report.profile,
                    "modalities": report.modalities,
                    "patterns": report.patterns,
                    "results": rows,
                },
                indent=2,
            )
        )
        _summary(report)
        return 0 if report.ok else 1
    from rich.table import Table

    from edgefuse.cli._common import plain_console

    table = Table(
        title=f"export for {report.profile}: modalities {', '.join(report.modalities)}; "
        f"{len(report.patterns)} presence pattern(s)"
    )
    for col in ("format", "status", "seconds", "parity checks", "max |Δ| vs torch", "folder / reason"):
        table.add_column(col)
    for r in rows:
        diff = "-" if r["max_abs_diff"] is None else f"{r['max_abs_diff']:.2e}"
        where = r["folder"] or ""
        if r["note"]:
            where = f"{where}\n{r['note']}" if where else r["note"]
        table.add_row(r["format"], r["status"], f"{r['seconds']:.1f}", str(r["parity_checks"]), diff, where)
    plain_console().print(table)
    _summary(report)
    return 0 if report.ok else 1


def _formats(text: str) -> str | list[str]:
    """``--format``: one name (or ``all``) as given, several comma-separated ones as a list."""
    if "," not in text:
        return text
    return [f.strip() for f in text.split(",") if f.strip()] or [text]


def _summary(report: Any) -> None:
    """Name each failed and unavailable format on stderr, below the table (whatever its width)."""
    from rich.text import Text

    from edgefuse.cli._common import plain_console

    err = plain_console(stderr=True)
    unavailable = [r for r in report.results if r.status == "unavailable"]
    if unavailable:
        names = ", ".join(r.format for r in unavailable)
        err.print(
            Text.assemble(
                ("note:", "bold yellow"),
                f" not exported here (unavailable; the reason is in the report above): {names}",
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


def _check_precision(args: argparse.Namespace) -> None:
    """Refuse a known precision the profile does not list (unknown ones are refused by the pipeline).

    Raises:
        ExportError: The profile does not list ``--precision``; the message names the profile, its
            precisions and the fix.
        ProfileError: The profile cannot be found or is invalid.
    """
    from edgefuse.export.errors import ExportError
    from edgefuse.profiles import PRECISIONS, get_profile

    if args.precision not in PRECISIONS:
        return
    prof = get_profile(args.profile)
    if args.precision in prof.precisions:
        return
    fix = "--precision fp32" if "fp32" in prof.precisions else f"one of {list(prof.precisions)}"
    raise ExportError(
        f"--precision {args.precision}: the device profile {prof.id!r} lists precisions "
        f"{list(prof.precisions)}, not {args.precision!r}; export at a precision it lists ({fix}), or choose "
        f"a profile that lists {args.precision} (see `edgefuse profiles list`)"
    )


def _agreement_split(args: argparse.Namespace) -> Any:
    """The AV-digits test split, for checkpoints trained on it (fp16 agreement); None otherwise.

    Raises:
        DataError: The checkpoint was trained on AV-digits but FSDD cannot be read here; the message says
            why the recordings are needed and how to give them.
    """
    from edgefuse.checkpoint import read_checkpoint_info
    from edgefuse.errors import DataError

    info = read_checkpoint_info(args.checkpoint)
    dataset = info.get("dataset", {})
    if dataset.get("name") != "av-digits":
        return None
    from edgefuse.data.avdigits import load_av_digits

    try:
        data = load_av_digits(
            args.fsdd, degrade_image=dataset.get("degrade_image"), seed=dataset.get("seed", 0)
        )
    except DataError as exc:
        raise DataError(
            f"--precision {args.precision}: the checkpoint {args.checkpoint} was trained on av-digits, so its "
            f"{args.precision} export is checked for top-1 agreement with PyTorch on the AV-digits test split, "
            "which needs the FSDD recordings, and they cannot be read here. Give them with --fsdd PATH (or "
            f"$EDGEFUSE_FSDD), or export at --precision fp32 (no agreement check). The data error: {exc}"
        ) from None
    return data.split("test")
