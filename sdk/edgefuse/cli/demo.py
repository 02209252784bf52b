"""``edgefuse demo``: train, measure robustness, export for every profile, check parity, benchmark, report.

Writes ``OUT/report.html`` (self-contained: open it in any browser) and ``OUT/report.json``. A second
run reuses the trained models and the exports (same data, recipe and EdgeFuse version).

Exit status: 0, or 1 when an export failed (its conversion or validation, e.g. parity against PyTorch;
each failure is named on stderr, and the report is still written). A format that cannot be converted
on this machine (its converter is not installed) is reported as unavailable, not a failure.

The converters' output goes to ``OUT/demo.log`` (``--log PATH`` elsewhere, ``--verbose`` on the
terminal); ``--json [PATH|-]`` gives the report as JSON and ``--quiet`` drops the progress display and
the tables, as for every command (:mod:`edgefuse.cli`).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from edgefuse.cli._common import (
    MAX_COUNT,
    MAX_SEED,
    check_out_path,
    epochs_int,
    int_in,
    require_extra,
    seed_int,
)
from edgefuse.cli._help import examples
from edgefuse.cli._output import add_json_arg, add_output_args
from edgefuse.cli._terminal import plain_console

DESCRIPTION = """The whole story end to end on AV-digits: train the supervised baseline and the \
robustness interventions (modality dropout, MASD), keep the best on validation, measure accuracy with \
sensors missing, export it for every device profile with parity checked against PyTorch, benchmark what \
runs here, and write it up as OUT/report.html (self-contained: open it in any browser) and \
OUT/report.json.

Without FSDD (--fsdd PATH or $EDGEFUSE_FSDD) the audio modality is synthetic, and the report says so on \
every page. A second run reuses the trained models and the exports (same data, recipe and EdgeFuse \
version); --fresh starts over. The converters' own output goes to OUT/demo.log.

Exit status: 0, or 1 when an export failed (its conversion or validation, e.g. parity against PyTorch; \
each failure is named on stderr, and the report is still written). A format that cannot be converted \
on this machine (its converter is not installed) is reported as unavailable, not a failure."""

EPILOG = examples(
    "# everything, with the default 20 epochs per model: out/demo/report.html",
    "edgefuse demo",
    "# a quicker look: two profiles, 5 epochs, fewer timed calls",
    "edgefuse demo --profiles generic/x86-64,generic/smart-speaker --epochs 5 --iters 20 --no-rss "
    "--out out/demo-quick",
)


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register the subcommand."""
    p = sub.add_parser(
        "demo",
        help="the whole story end to end on AV-digits, written up as out/demo/report.html",
        description=DESCRIPTION,
        epilog=EPILOG,
    )
    p.add_argument("--out", default="out/demo", help="output folder (default: out/demo)")
    p.add_argument("--fsdd", default=None, help="FSDD folder (default: $EDGEFUSE_FSDD)")
    p.add_argument(
        "--audio",
        choices=("auto", "fsdd", "synthetic"),
        default="auto",
        help="auto: FSDD when given, else a clearly labelled synthetic audio modality",
    )
    p.add_argument(
        "--profiles", default=None, help="comma-separated profile ids (default: every built-in profile)"
    )
    p.add_argument(
        "--epochs", type=epochs_int, default=20, help="training epochs per model, 1..10000 (default 20)"
    )
    p.add_argument(
        "--seed", type=seed_int, default=0, help=f"training and data seed, 0..{MAX_SEED} (default 0)"
    )
    p.add_argument(
        "--iters",
        type=int_in(1, MAX_COUNT),
        default=100,
        help=f"timed calls per benchmarked pattern, 1..{MAX_COUNT} (default 100)",
    )
    p.add_argument(
        "--warmup",
        type=int_in(0, MAX_COUNT),
        default=10,
        help=f"warm-up calls per benchmarked pattern, 0..{MAX_COUNT} (default 10)",
    )
    p.add_argument("--no-rss", action="store_true", help="skip the fresh-subprocess peak RSS per profile")
    p.add_argument(
        "--fresh", action="store_true", help="retrain and re-export instead of reusing earlier results"
    )
    add_json_arg(p, "the report (what OUT/report.json holds, with the paths of the written files)")
    # the demo opens its log in OUT, once the folder is claimed: run() wraps itself
    add_output_args(p, log="demo", log_default="OUT/demo.log", wrap=False)
    return p


def run(args: argparse.Namespace) -> int:
    """Run the demo with a progress display, then print the summary table; 1 when an export failed.

    The progress display and EdgeFuse's warnings and errors stay on the terminal's stderr while the
    converters' C++ and Python output goes to ``OUT/demo.log`` (``--log``;
    :func:`edgefuse.cli._output.converter_log`). ``--json`` gives the report (``OUT/report.json`` plus
    ``paths``) alone on stdout (``--json``, ``--json -``: no tables, no progress) or in a file (``--json
    PATH``, the tables kept). ``--quiet``: no progress and no tables; failed exports are still ``error:``
    lines on stderr.

    Args:
        args: The parsed arguments.

    Returns:
        0, or 1 when an export failed.
    """
    from edgefuse.cli._output import (
        converter_log,
        emit_json,
        human_console,
        json_stdout,
        json_target,
        show_progress,
        warn,
    )
    from edgefuse.demo import claim_demo_folder

    # it trains, exports and plots: without torch, one line naming the extra, before the folder is claimed
    require_extra("demo", "export", ("torch", "safetensors", "matplotlib"))
    out = check_out_path(args.out)
    json_target(args, protect=(("the demo folder --out", out),))
    claim_demo_folder(out)  # before demo.log is opened there: a folder of other files is refused

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table
    from rich.text import Text

    from edgefuse.demo import STEPS, DemoConfig, run_demo
    from edgefuse.report import export_status

    cfg = DemoConfig(
        out=Path(args.out),
        fsdd=args.fsdd,
        audio="fsdd" if args.audio == "auto" and args.fsdd else args.audio,
        profiles=tuple(p.strip() for p in args.profiles.split(",") if p.strip()) if args.profiles else None,
        epochs=args.epochs,
        seed=args.seed,
        bench_iters=args.iters,
        bench_warmup=args.warmup,
        rss=not args.no_rss,
        fresh=args.fresh,
    )
    con = human_console(args)  # piped: wide enough that no cell is cut
    # The progress display writes to the terminal's stderr (a duplicate of file descriptor 2 while the
    # converters' C++ and Python chatter on file descriptor 2 goes to OUT/demo.log).
    show = show_progress(args)
    err = plain_console(stderr=True)
    # the log's path is printed once the progress display is done
    with (
        converter_log(args, "demo", cfg.out / "demo.log"),
        Progress(
            TextColumn("[bold]demo[/]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.description}", markup=False),
            TimeElapsedColumn(),
            console=err,
            transient=False,
            disable=not show,
        ) as bar,
    ):
        task = bar.add_task("starting", total=len(STEPS))
        done: set[str] = set()

        def say(message: str) -> None:
            bar.update(task, description=message)

        def advance(step: str) -> None:
            if step not in done:
                done.add(step)
                bar.update(task, advance=1)
                if show:
                    err.print(Text.assemble(("✓", "green"), f" {step}"))

        report = run_demo(cfg, say=say, advance=advance)

    for message in report.get("warnings") or []:  # e.g. a model at chance: shown even with --quiet
        warn(str(message))
    if json_stdout(args):
        emit_json(args, report)
        return _failed_exports(report)
    patterns = report["grid"]["test_sets"]
    if report["data"]["audio"] == "synthetic":
        con.print(Text(f"⚠ {report['data']['label']}", style="bold yellow"))
    models = report["models"]
    t = Table(title="models (test accuracy per presence pattern)")
    t.add_column("model")
    for p in patterns:
        t.add_column(p, justify="right")
    for role in ("baseline", "best"):
        m = models[role]
        t.add_row(f"{role}: {m['label']}", *[f"{m['test_accuracy'][p]:.3f}" for p in patterns])
    con.print(t)
    bench = {b["profile"]: b for b in report["bench"]}
    acc = {a["profile"]: a for a in report["accuracy"]}
    s = Table(title="per device profile (latency measured on this machine; estimate for the target)")
    for col in ("profile", "exports", "backend here", "accuracy all present", "p50 ms", "estimate ms"):
        s.add_column(col, justify="left" if col in ("profile", "exports", "backend here") else "right")
    for prof in report["profiles"]:
        pid = prof["id"]
        exps = ", ".join(  # the report's status: Core ML converted but not run here is not "ok"
            f"{e['format']} {e['precision']}: {export_status(e)[0]}"
            for e in report["exports"]
            if e["profile"] == pid
        )
        b = bench.get(pid, {})
        first = b.get("results", [{}])[0] if b.get("results") else {}
        a = acc.get(pid, {}).get("accuracy", {})
        full = next(iter(a.values()), None)
        est = (first.get("estimate") or {}).get("ms") if first else None
        if est is None and b.get("estimates"):
            est = next(iter(b["estimates"].values())).get("ms")
        s.add_row(
            pid,
            exps,
            b.get("backend") or Text("not runnable here", style="yellow"),
            "-" if full is None else f"{full:.3f}",
            "-" if not first else f"{first['p50_ms']:.3f}",
            "-" if est is None else f"~{est:.4f}",
        )
    con.print(s)
    con.print(
        Text.assemble(
            "report: ",
            (str(report["paths"]["html"]), "bold"),
            f" (and {report['paths']['json']}) in {report['seconds']['total']:.0f} s",
        )
    )
    emit_json(args, report)
    return _failed_exports(report)


def _failed_exports(report: dict[str, Any]) -> int:
    """Name each failed export on stderr (also with ``--quiet``); the exit status: 1 when one failed."""
    from rich.text import Text

    failed = report["failed_exports"]
    if not failed:
        return 0
    err_out = plain_console(stderr=True)
    for f in failed:
        err_out.print(
            Text.assemble(
                ("error:", "bold red"),
                f" {f['profile']} {f['format']} ({f['precision']}) export failed: {f['reason']}",
            )
        )
    err_out.print(
        Text.assemble(
            ("error:", "bold red"),
            f" {len(failed)} export(s) failed (listed above and in the report); exit status 1",
        )
    )
    return 1
