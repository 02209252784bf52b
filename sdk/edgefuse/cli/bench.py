"""``edgefuse bench``: latency, throughput, memory and a roofline estimate (artifact, checkpoint, model file).

A checkpoint folder is benchmarked on the PyTorch reference backend and, exported for the profile into
the cache (reused while the checkpoint is unchanged), on every backend of the profile that runs here, at
every precision the profile lists that the backend's format implements (fp32 / fp16 / int8 side by side per
pattern). int8 needs calibration data and accuracy needs labels: give the checkpoint's dataset with --data.

``--json [PATH|-]``, ``--quiet``, ``--verbose`` and ``--log PATH`` follow the CLI conventions
(:mod:`edgefuse.cli`); with ``--json`` or ``--quiet`` the table is skipped and its warnings go to stderr.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from edgefuse.cli._common import (
    MAX_COUNT,
    add_pin_arg,
    add_runtime_threads_arg,
    check_out_path,
    check_pin,
    int_in,
)
from edgefuse.cli._help import examples
from edgefuse.cli._output import add_json_arg, add_output_args
from edgefuse.cli._terminal import plain_console

DESCRIPTION = """Benchmark latency, throughput and memory per backend and presence pattern, with a \
roofline estimate of the profile's device: for an artifact folder, a checkpoint folder, or a plain \
.onnx / .tflite file.

A checkpoint is benchmarked on the PyTorch reference backend and, exported for the profile into a cache \
(reused while the checkpoint is unchanged), on every backend of the profile that runs here, at every \
precision the profile lists that the backend's format implements (fp32 / fp16 / int8 side by side per \
pattern). int8 needs calibration data and accuracy needs labels: give the checkpoint's dataset with \
--data (and its --fsdd for av-digits).

The times are measured on this machine; the estimate for the profile's device is a roofline model, not \
a measurement (an emulator's time is never shown as device latency)."""

EPILOG = examples(
    "# the quickstart artifact (from the 'edgefuse export --help' examples), 20 timed calls per pattern",
    "edgefuse bench out/quickstart/cli-x86 --iters 20 --no-rss",
    "# the quickstart checkpoint: PyTorch and every backend of the profile that runs here",
    "edgefuse bench out/quickstart/cli-ckpt --profile generic/x86-64 --iters 20 --no-rss",
    "# with accuracy per pattern, and a report folder (bench.json, bench.md, latency.png)",
    "edgefuse bench out/quickstart/cli-x86 --data av-digits-synthetic-audio --iters 20 --report out/quickstart/bench",
)


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register the subcommand."""
    p = sub.add_parser(
        "bench",
        help="benchmark an artifact (per backend x presence pattern) or a plain .onnx/.tflite file",
        description=DESCRIPTION,
        epilog=EPILOG,
    )
    p.add_argument(
        "artifact",
        help="artifact folder (with manifest.json), checkpoint folder (with model.json), or a .onnx / .tflite file",
    )
    p.add_argument("--profile", default=None, help="device profile id or TOML path (default: the manifest's)")
    p.add_argument(
        "--backend", default=None, help="backend(s) to benchmark, comma-separated (default: the chosen one)"
    )
    p.add_argument(
        "--patterns",
        default=None,
        help="presence patterns, e.g. all,audio,image or audio+image (default: every)",
    )
    p.add_argument(
        "--warmup",
        type=int_in(0, MAX_COUNT),
        default=10,
        help=f"warm-up calls before timing, 0..{MAX_COUNT} (default 10)",
    )
    p.add_argument(
        "--iters",
        type=int_in(1, MAX_COUNT),
        default=100,
        help=f"timed calls at batch 1, 1..{MAX_COUNT} (default 100)",
    )
    add_runtime_threads_arg(p)
    p.add_argument(
        "--cache-dir",
        default=None,
        help="where a checkpoint's exports are cached (default: $EDGEFUSE_CACHE_DIR or ~/.cache/edgefuse)",
    )
    p.add_argument(
        "--data",
        default=None,
        metavar="NAME",
        help="labelled dataset (av-digits, av-digits-synthetic-audio, synthetic): accuracy per pattern on its "
        "test split; for a checkpoint also int8 calibration (train split); default: none (no accuracy, no int8)",
    )
    p.add_argument("--fsdd", default=None, help="FSDD folder for --data av-digits (default: $EDGEFUSE_FSDD)")
    p.add_argument(
        "--max-int8-drop",
        type=float,
        default=1.0,
        metavar="POINTS",
        help="largest accuracy drop (points) an int8 export of a checkpoint may show on a pattern (default 1.0)",
    )
    p.add_argument(
        "--no-rss",
        action="store_true",
        help="skip the fresh-subprocess peak RSS measurement (and its column)",
    )
    add_json_arg(p, "the report (every figure of the table, with the settings and notes)")
    p.add_argument("--report", default=None, metavar="DIR", help="write bench.json, bench.md, latency.png")
    add_pin_arg(p)
    add_output_args(p, log="bench")
    return p


def _inside_input(out: Path, target: Path) -> bool:
    """Whether ``out`` is the input itself or lies inside the input folder (after resolving symlinks)."""
    out_real, target_real = out.resolve(), target.resolve()
    return out_real == target_real or (target.is_dir() and target_real in out_real.parents)


def _backends(text: str | None) -> list[str] | None:
    """``--backend a,b`` as a list (None when not given); an empty list is refused."""
    from edgefuse.errors import ContractError

    if text is None:
        return None
    names = [b.strip() for b in text.split(",") if b.strip()]
    if not names:
        raise ContractError(f"--backend {text!r} names no backend; give e.g. --backend onnxruntime,litert")
    return names


def _data(args: argparse.Namespace, target: Path, checkpoint: bool) -> Any:
    """The dataset of ``--data`` (None without it), loaded as the checkpoint or artifact recorded it."""
    import math

    from edgefuse.bench.precisions import load_bench_data
    from edgefuse.errors import ContractError

    if not math.isfinite(args.max_int8_drop) or args.max_int8_drop < 0:
        raise ContractError(f"--max-int8-drop must be a number of points >= 0; got {args.max_int8_drop}")
    if args.data is None:
        if args.fsdd is not None:
            raise ContractError("--fsdd applies with --data av-digits")
        return None
    if checkpoint:
        from edgefuse.checkpoint import read_checkpoint_info

        info = read_checkpoint_info(target)
        recorded = info.get("dataset") or {}
    else:
        from edgefuse.manifest import read_manifest

        info = read_manifest(target).data
        recorded = _recorded_dataset(info.get("checkpoint") or {})
    modalities = [m["name"] for m in info.get("modalities", []) if isinstance(m, dict) and "name" in m]
    return load_bench_data(args.data, recorded=recorded, modalities=modalities, fsdd=args.fsdd)


def _recorded_dataset(source: Any) -> dict[str, Any]:
    """An artifact's training data record: its checkpoint's (when still there, same weights), else the name."""
    from edgefuse.checkpoint import read_checkpoint_info
    from edgefuse.errors import EdgeFuseError

    name = source.get("dataset") if isinstance(source, dict) else None
    try:
        info = read_checkpoint_info(source["path"])
        if info.get("weights_sha256") == source.get("weights_sha256") and isinstance(
            info.get("dataset"), dict
        ):
            return dict(info["dataset"])
    except (EdgeFuseError, OSError, KeyError, TypeError):
        pass
    return {"name": name} if isinstance(name, str) else dict(name) if isinstance(name, dict) else {}


def run(args: argparse.Namespace) -> int:
    """Benchmark and print a rich table with the definition of each figure.

    ``--json`` gives the report alone on stdout (``--json``, ``--json -``: the table is skipped, its
    warnings go to stderr) or in a file with the table kept (``--json PATH``, replaced if it exists);
    ``--report DIR`` writes bench.json, bench.md and latency.png. Neither may lie in the input.

    Args:
        args: The parsed arguments.

    Returns:
        0 (errors are raised).
    """
    from pathlib import Path

    from rich.table import Table
    from rich.text import Text

    from edgefuse.bench import bench_artifact, bench_checkpoint, bench_model
    from edgefuse.bench.report import columns, definitions, notes, save_report, table_rows
    from edgefuse.cli._output import (
        emit_json,
        human_console,
        is_quiet,
        json_stdout,
        json_target,
        show_progress,
        warn,
    )
    from edgefuse.errors import ContractError
    from edgefuse.runtime.backends.torch import is_checkpoint

    json_path = json_target(args)  # None for stdout
    if args.report:
        check_out_path(args.report, "--report")
    target = Path(args.artifact)
    if not target.exists():
        raise ContractError(
            f"{target} does not exist; give an artifact folder, a checkpoint folder or a .onnx / .tflite file"
        )
    for flag, where in (("--json", json_path), ("--report", args.report)):
        if where is not None and _inside_input(Path(where), target):
            raise ContractError(
                f"{flag} {where} lies in the input {target}; the report would overwrite or add files there "
                "(e.g. its manifest). Write it elsewhere"
            )
    if target.is_dir():
        check_pin(target, args.manifest_sha256)
    elif args.manifest_sha256 is not None:
        raise ContractError(
            "--manifest-sha256 applies to artifact and checkpoint folders, not to a model file"
        )
    if args.cache_dir is not None and not is_checkpoint(target):
        raise ContractError("--cache-dir applies to checkpoints (where their exports are cached)")
    if target.is_dir():
        checkpoint = is_checkpoint(target)
        common: dict[str, Any] = {
            "threads": args.threads,
            "profile": args.profile,
            "backends": _backends(args.backend),
            "patterns": args.patterns,
            "warmup": args.warmup,
            "iters": args.iters,
            "rss": not args.no_rss,
            "data": _data(args, target, checkpoint),
        }
        if checkpoint:
            console_err = plain_console(stderr=True, quiet=not show_progress(args))
            report = bench_checkpoint(
                target,
                **common,
                cache_dir=args.cache_dir,
                progress=lambda msg: console_err.print(Text(msg, style="dim")),
                max_int8_drop=args.max_int8_drop,
            )
        else:
            report = bench_artifact(target, **common)
    else:
        if args.data or args.fsdd:
            raise ContractError(
                "--data applies to artifact and checkpoint folders (accuracy per presence pattern); a plain "
                "model file has no modalities"
            )
        if args.patterns:
            raise ContractError(
                "--patterns applies to artifact folders; a plain model file has no modalities"
            )
        if args.backend:
            raise ContractError(
                "--backend applies to artifact folders; .onnx runs on onnxruntime, .tflite on litert"
            )
        report = bench_model(
            target,
            profile=args.profile,
            warmup=args.warmup,
            iters=args.iters,
            threads=args.threads,
            rss=not args.no_rss,
        )
    out_console = human_console(args)  # a pipe or file: wide enough that no cell is cut
    if is_quiet(args) or json_stdout(args):  # no table: its warnings still reach stderr
        if report.get("emulated"):
            warn(str(report["emulated"]))
        for text in notes(report):
            if text.startswith("WARNING "):
                warn(text.removeprefix("WARNING ").strip())
    if json_stdout(args):
        emit_json(args, report)
        if args.report:
            paths = save_report(report, args.report)
            out_console.print(f"report written: {', '.join(str(p) for p in paths.values())}")
        return 0
    table = Table(
        title=f"bench {report['artifact']} ({report['format']}, {report['layout']}; profile {report['profile']}; "
        f"warmup {report['warmup']}, iters {report['iters']})"
    )
    for _, title in columns(report):
        table.add_column(title, justify="left" if title in ("backend", "precision", "pattern") else "right")
    for cells in table_rows(report):
        table.add_row(*cells)
    if report.get("emulated"):  # an emulator's wall-clock time is never shown as device latency
        table.title = f"EMULATED, not device latency: {table.title}"
        out_console.print(Text(str(report["emulated"]), style="bold red"))
    out_console.print(table)
    for key, text in definitions(report).items():
        out_console.print(Text.assemble((key, "bold"), f": {text}"))
    for text in notes(report):
        if text.startswith("WARNING "):
            out_console.print(Text(text, style="bold yellow"))
        else:
            out_console.print(f"note: {text}")
    emit_json(args, report)
    if args.report:
        paths = save_report(report, args.report)
        out_console.print(f"report written: {', '.join(str(p) for p in paths.values())}")
    return 0
