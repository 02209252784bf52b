"""``edgefuse verify``: run an exported artifact's bundled reference cases on this device and compare.

The artifact carries ``reference.npz``: inputs for each presence pattern and the logits PyTorch gave at
export. The artifact is loaded as ``edgefuse run`` loads it (same ``--profile``, ``--backend``,
``--threads``, ``--manifest-sha256``) and every case is run through the runtime: a case passes when
``|logits - reference| <= atol + rtol * |reference|`` everywhere, with the tolerance the manifest
records. A case that needs a modality the ``--profile`` has no sensor for is skipped with the reason.

Needs only numpy and the artifact's runtime backend (``edgefuse[onnxruntime]`` or ``edgefuse[litert]``):
never torch or onnx. A checkpoint folder is checked on PyTorch instead (``edgefuse[train]``).

Exit status: 0 when every case that ran passed (and at least one ran), 1 when a case failed or none could
run, 2 on bad input (no such folder, a modified or invalid artifact, an unknown profile or backend, a
backend that is not installed).

``--json [PATH|-]``, ``--quiet``, ``--verbose`` and ``--log PATH`` follow the CLI conventions
(:mod:`edgefuse.cli`); ``--json`` gives the report, and with ``--quiet`` a failure is one ``error:`` line.
"""

from __future__ import annotations

import argparse
from typing import Any

from edgefuse.cli._common import add_pin_arg, add_runtime_threads_arg
from edgefuse.cli._help import examples
from edgefuse.cli._output import add_json_arg, add_output_args

DESCRIPTION = """Check an exported artifact on this device: run its bundled reference cases (inputs \
for each presence pattern and the logits PyTorch gave at export) through the runtime and compare.

A case passes when |logits - reference| <= atol + rtol * |reference| everywhere, with the tolerance the \
manifest records. The artifact is loaded as 'edgefuse run' loads it (same --profile, --backend, \
--threads, --manifest-sha256); a case that needs a modality the --profile has no sensor for is skipped \
with the reason. Needs numpy and the artifact's runtime (edgefuse[onnxruntime] or edgefuse[litert]), \
never PyTorch; a checkpoint folder is checked on PyTorch instead (edgefuse[train]).

Exit status: 0 when every case that ran passed (and at least one ran), 1 when a case failed or none \
could run, 2 on bad input (no such folder, a modified or invalid artifact, an unknown profile or \
backend, a backend that is not installed)."""

EPILOG = examples(
    "# the quickstart artifact (from the 'edgefuse export --help' examples), on this machine",
    "edgefuse verify out/quickstart/cli-x86",
    "# with one thread, as a small device would run it, and a JSON report",
    "edgefuse verify out/quickstart/cli-x86 --threads 1 --json",
)


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register the subcommand."""
    p = sub.add_parser(
        "verify",
        help="check an artifact against its bundled reference outputs on this device",
        description=DESCRIPTION,
        epilog=EPILOG,
    )
    p.add_argument("artifact", help="artifact folder (with manifest.json and reference.npz)")
    p.add_argument("--profile", default=None, help="device profile id or TOML path (default: the manifest's)")
    p.add_argument("--backend", default=None, help="backend name (default: from the profile)")
    add_runtime_threads_arg(p)
    add_json_arg(p, "the report (every case with its errors and tolerance, profile, threads, notes)")
    add_pin_arg(p)
    add_output_args(p, log="verify")
    return p


def _status(passed: bool | None) -> str:
    return "skipped" if passed is None else "pass" if passed else "FAIL"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def run(args: argparse.Namespace) -> int:
    """Verify and print one row per reference case (or JSON); 0 all passed, 1 a case failed.

    ``--json`` gives the report alone on stdout (``--json``, ``--json -``) or in a file with the table
    kept (``--json PATH``); the exit status is the same. With ``--quiet`` a failure is one ``error:`` line
    on stderr.

    Args:
        args: The parsed arguments.

    Returns:
        0 when every case that ran passed (and one ran), else 1.
    """
    import warnings
    from pathlib import Path

    from edgefuse.cli._output import emit_json, error_line, human_console, is_quiet, json_stdout, json_target
    from edgefuse.errors import ContractError
    from edgefuse.runtime import load

    if not Path(args.artifact).is_dir():
        raise ContractError(f"{args.artifact}: no such artifact folder (it must hold manifest.json)")
    json_target(args, protect=(("the artifact folder", args.artifact),))
    with warnings.catch_warnings():
        # a backend fallback or an unknown manifest profile: kept in session.notes, printed below once
        warnings.simplefilter("ignore", UserWarning)
        session = load(
            args.artifact,
            profile=args.profile,
            backend=args.backend,
            threads=args.threads,
            manifest_sha256=args.manifest_sha256,
        )
    with session:
        report = session.verify()
        threads, profile, notes = session.threads, session.profile, list(session.notes)
    ran = [c for c in report.checks if c.passed is not None]
    failed = report.failures()
    if not ran:
        notes.append("no reference case could run in this session")
    document = {**report.to_dict(), "profile": profile, "threads": threads, "notes": notes}
    if is_quiet(args) and not report.passed:
        error_line(
            f"verify {report.artifact}: {len(failed)} of {len(report.checks)} case(s) failed"
            + ("" if ran else "; no reference case could run in this session")
            + f" on {report.backend}; exit status 1"
        )
    if json_stdout(args):
        emit_json(args, document)
        return 0 if report.passed else 1

    from rich.table import Table
    from rich.text import Text

    verdict = "passed" if report.passed else "FAILED"
    table = Table(
        title=f"{verdict}: {len(ran) - len(failed)} of {len(report.checks)} case(s) passed on {report.backend} "
        f"({'default' if threads is None else threads} thread{'' if threads == 1 else 's'})"
    )
    for col, justify in (
        ("pattern", "left"),
        ("batch", "right"),
        ("status", "left"),
        ("max abs error", "right"),
        ("max rel error", "right"),
        ("tolerance", "left"),
        ("note", "left"),
    ):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for c in report.checks:
        status = Text(_status(c.passed), style="bold red" if c.passed is False else "")
        table.add_row(
            "+".join(c.pattern),
            str(c.batch),
            status,
            _number(c.max_abs),
            _number(c.max_rel),
            f"atol {c.atol:g} + rtol {c.rtol:g}·|ref|",
            c.note or "",
        )
    console = human_console(args)
    console.print(f"verify {report.artifact} (profile {profile or 'none'})", soft_wrap=True)
    console.print(table)
    for text in notes:
        console.print(f"note: {text}", soft_wrap=True)
    emit_json(args, document)
    return 0 if report.passed else 1
