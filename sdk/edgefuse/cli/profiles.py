"""``edgefuse profiles``: list, show and validate device profiles.

``edgefuse profiles list [--json [PATH|-]] [--path P]...``
    Every built-in profile plus the files/folders given with ``--path``.
``edgefuse profiles show ID_OR_PATH [--json [PATH|-]] [--path P]...``
    One profile in full; an unknown id exits 2 with the known ids and the closest match.
``edgefuse profiles validate PATH... [--json [PATH|-]]``
    Validate files or folders; exits 1 when any profile is invalid, after reporting every error (with
    ``--quiet``, each invalid profile is one ``error:`` line on stderr).
``edgefuse profiles calibrate-host [--out PATH] [--threads N] [--seconds S] [--id ID] [--overwrite]``
    Measure this machine (float32 GEMM, memory copy, each runtime's per-call overhead) and write it as a
    profile, for ``edgefuse bench --profile PATH``: the roofline estimate of this host against what it
    measures here. The runtimes' own output goes to the ``--log`` file.

Every action takes ``--json [PATH|-]`` (the document alone on stdout, or a file with the human output
kept), ``--quiet`` and ``--verbose``, as every command does (:mod:`edgefuse.cli`).
"""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from edgefuse.profiles import DeviceProfile


# Width of human output written to a pipe or file (a terminal uses its own width).
_PIPE_WIDTH = 160


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``profiles`` and its sub-commands (arguments only; no heavy imports).

    Args:
        subparsers: The top-level parser's sub-parsers action.

    Returns:
        The ``profiles`` parser.
    """
    from edgefuse.cli._help import examples
    from edgefuse.cli._output import add_json_arg, add_output_args

    parser = subparsers.add_parser(
        "profiles",
        help="list, show and validate device profiles",
        description="Device profiles: the sensors, runtime backends, precisions, memory and compute of a "
        "hardware target. 'edgefuse export' and 'edgefuse bench' take one with --profile (an id or a TOML "
        "file; device_profiles/SCHEMA.md describes the format).",
        epilog=examples(
            "edgefuse profiles list",
            "edgefuse profiles show nvidia/jetson-orin-nano",
            "edgefuse profiles validate device_profiles/",
            "edgefuse profiles calibrate-host --threads 1 --seconds 0.5 --out out/host.toml --overwrite",
        ),
    )
    parser.set_defaults(_profiles_parser=parser)
    add_output_args(parser)  # edgefuse profiles --quiet list
    sub = parser.add_subparsers(dest="profiles_command", metavar="ACTION")

    list_parser = sub.add_parser(
        "list",
        help="list built-in profiles and those given with --path",
        description="List the built-in device profiles, and those in the files or folders given with --path.",
        epilog=examples("edgefuse profiles list", "edgefuse profiles list --json"),
    )
    add_json_arg(list_parser, "the profiles (a list of full profiles)")
    list_parser.add_argument(
        "--path",
        action="append",
        default=[],
        metavar="P",
        help="extra profile file or folder (searched recursively); repeatable",
    )
    add_output_args(list_parser)
    list_parser.set_defaults(_handler=_run_list)

    show_parser = sub.add_parser(
        "show",
        help="show one profile by id or path",
        description="Show one device profile in full: sensors, backends, precisions, compute, memory and "
        "the sources of its numbers. An unknown id exits 2 with the known ids and the closest match.",
        epilog=examples(
            "edgefuse profiles show generic/smart-speaker",
            "edgefuse profiles show device_profiles/nvidia/jetson-orin-nano.toml --json",
        ),
    )
    show_parser.add_argument(
        "profile", metavar="ID", help="profile id (e.g. generic/x86-64) or path to a .toml"
    )
    add_json_arg(show_parser, "the profile")
    show_parser.add_argument(
        "--path",
        action="append",
        default=[],
        metavar="P",
        help="extra profile file or folder to search for the id; repeatable",
    )
    add_output_args(show_parser)
    show_parser.set_defaults(_handler=_run_show)

    validate_parser = sub.add_parser(
        "validate",
        help="validate profile files or folders; exit 1 if any is invalid",
        description="Validate device profile files (TOML), or every profile in folders (searched "
        "recursively), against device_profiles/SCHEMA.md. Every error is reported; exit status 1 when any "
        "profile is invalid.",
        epilog=examples(
            "edgefuse profiles validate device_profiles/",
            "edgefuse profiles validate device_profiles/generic/x86-64.toml --json",
        ),
    )
    validate_parser.add_argument("paths", nargs="+", metavar="PATH", help="profile file or folder")
    add_json_arg(validate_parser, "the report (path, valid, id, error of each profile)")
    add_output_args(validate_parser)
    validate_parser.set_defaults(_handler=_run_validate)

    calibrate = sub.add_parser(
        "calibrate-host",
        help="measure this machine (GEMM GFLOP/s, copy bandwidth, per-call overhead) into a profile",
        description="Measure this machine's float32 GEMM throughput, memory copy bandwidth and each "
        "installed runtime's per-call overhead, and write them as a device profile (TOML), for "
        "'edgefuse bench ARTIFACT --profile host.toml': the roofline estimate of this host next to what "
        "it measures here.",
        epilog=examples(
            "edgefuse profiles calibrate-host --threads 1 --out out/host.toml --overwrite",
            "edgefuse bench out/quickstart/cli-x86 --profile out/host.toml --threads 1 --iters 20 --no-rss",
        ),
    )
    calibrate.add_argument(
        "--out", default="host-profile.toml", help="profile file to write (default: host-profile.toml)"
    )
    calibrate.add_argument(
        "--threads",
        type=_int_in(1, 1024),
        default=None,
        help="threads for the GEMM and the copy, and the profile's threads (default: every core)",
    )
    calibrate.add_argument(
        "--seconds", type=float, default=2.0, help="time per measurement, 0.1..60 (default 2)"
    )
    calibrate.add_argument("--id", default=None, help="profile id (default: host/this-machine)")
    calibrate.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    add_json_arg(calibrate, "the measurements, the profile written and its path")
    add_output_args(calibrate, log="calibrate-host")  # the runtimes' own output goes to the log
    calibrate.set_defaults(_handler=_run_calibrate)
    return parser


def _int_in(low: int, high: int) -> Any:
    from edgefuse.cli._common import int_in

    return int_in(low, high)


def _run_calibrate(args: argparse.Namespace) -> int:

    from edgefuse.bench.host import DEFAULT_HOST_ID, calibrate_host, host_profile_toml
    from edgefuse.cli._common import check_out_path
    from edgefuse.cli._output import emit_json, json_stdout, json_target, show_progress
    from edgefuse.errors import ContractError
    from edgefuse.outputs import write_file
    from edgefuse.profiles import load_profile_file

    out = check_out_path(args.out, "--out")
    if out.suffix != ".toml":
        raise ContractError(f"--out {out}: a profile file ends in .toml")
    if os.path.lexists(out) and not args.overwrite:
        raise ContractError(f"{out} exists; pass --overwrite to replace it, or choose another --out")
    if out.is_dir():
        raise ContractError(f"--out {out} is a folder; give a .toml file path")
    json_target(args)
    from edgefuse.cli._terminal import plain_console

    if show_progress(args):
        plain_console(stderr=True).print(
            "measuring this machine (GEMM, memory copy, per-call overhead)...", style="dim"
        )
    console = _console(args)
    result = calibrate_host(threads=args.threads, seconds=args.seconds)
    text = host_profile_toml(result, args.id or DEFAULT_HOST_ID)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_file(out, text)
    profile = load_profile_file(out)  # what was written is a valid profile
    document = {**result, "profile": profile.to_dict(), "path": str(out)}
    if json_stdout(args):
        emit_json(args, document)
        return 0
    overhead = ", ".join(f"{b} {ms * 1e3:.1f} µs" for b, ms in result["call_overhead_ms"].items())
    console.print(
        f"{result['cpu']}, {result['threads']} thread(s): GEMM {result['gemm_gflops']:.1f} GFLOP/s, "
        f"copy {result['copy_gbs']:.1f} GB/s, per-call overhead {overhead or 'no runtime installed'}"
    )
    console.print(f"profile {profile.id} written to {out}; use it with --profile {out}")
    emit_json(args, document)
    return 0


def run(args: argparse.Namespace) -> int:
    """Run ``edgefuse profiles`` without an action: print its help.

    Args:
        args: Parsed arguments.

    Returns:
        2 (an action is required).
    """
    args._profiles_parser.print_help()
    return 2


def _print_json(args: argparse.Namespace, data: Any) -> bool:
    """Write ``data`` where ``--json`` says; True when it went to stdout (then nothing else is printed)."""
    from edgefuse.cli._output import emit_json, json_stdout

    if json_stdout(args):
        emit_json(args, data)
        return True
    return False


def _console(args: argparse.Namespace | None = None) -> Console:
    """Return a console for human output; piped output is not cut to 80 columns unless COLUMNS says so.

    With ``--quiet`` it prints nothing (and with ``--json -`` it prints on stderr).
    """
    from edgefuse.cli._output import human_console, is_quiet, json_stdout
    from edgefuse.cli._terminal import plain_console

    if args is not None and (is_quiet(args) or json_stdout(args)):
        return human_console(args)
    console = plain_console()
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = _PIPE_WIDTH
    return console


def _fmt_number(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


def _fmt_sensors(profile: DeviceProfile) -> str:
    return ", ".join(s.kind if s.count == 1 else f"{s.kind} x{s.count}" for s in profile.sensors)


def _run_list(args: argparse.Namespace) -> int:
    from edgefuse.cli._output import emit_json
    from edgefuse.profiles import list_profiles

    profiles = list_profiles(args.path)
    document = [p.to_dict() for p in profiles]
    if _print_json(args, document):
        return 0

    from rich import box
    from rich.table import Table

    table = Table(
        title=f"Device profiles ({len(profiles)})",
        box=box.SIMPLE_HEAD,
        caption="GFLOP/s: approximate peak compute; GB/s: peak memory bandwidth; sources: profiles show ID",
    )
    table.add_column("id", no_wrap=True, style="bold")
    for column in ("name", "sensors", "modalities", "backends", "precisions"):
        table.add_column(column, min_width=6, overflow="fold")
    for column in ("fp32 GFLOP/s", "fp16 GFLOP/s", "GB/s", "RAM MB"):
        table.add_column(column, justify="right", min_width=5)
    for p in profiles:
        table.add_row(
            p.id,
            p.name,
            _fmt_sensors(p),
            ", ".join(p.modalities),
            ", ".join(p.backends),
            ", ".join(p.precisions),
            _fmt_number(p.compute.peak("fp32")),
            _fmt_number(p.compute.peak("fp16")),
            _fmt_number(p.compute.memory_bandwidth_gbs),
            f"{p.ram_mb:,}",
        )
    _console(args).print(table)
    emit_json(args, document)
    return 0


def _run_show(args: argparse.Namespace) -> int:
    from edgefuse.cli._output import emit_json
    from edgefuse.profiles import PRECISIONS, get_profile

    profile = get_profile(args.profile, args.path)
    if _print_json(args, profile.to_dict()):
        return 0

    from rich.table import Table

    console = _console(args)
    info = Table(title=f"{profile.id}: {profile.name}", show_header=False)
    info.add_column("field", style="bold")
    info.add_column("value")
    rows = [
        ("description", profile.description or "-"),
        ("modalities", ", ".join(profile.modalities)),
        ("backends", " > ".join(profile.backends)),
        ("precisions", " > ".join(profile.precisions)),
        ("threads", str(profile.threads)),
        ("RAM", f"{profile.ram_mb:,} MB"),
        ("batch sizes", ", ".join(str(b) for b in profile.batch_sizes)),
        (
            "memory bandwidth",
            f"{_fmt_number(profile.compute.memory_bandwidth_gbs)} GB/s "
            f"({profile.compute.memory_bandwidth_source})",
        ),
    ]
    for precision in PRECISIONS:
        peak = profile.compute.peak(precision)
        if peak is not None:
            unit = "GOP/s" if precision == "int8" else "GFLOP/s"
            rows.append((f"peak {precision}", f"{_fmt_number(peak)} {unit}"))
    rows.append(("peak source", profile.compute.peak_gflops_source))
    if profile.compute.efficiency:
        eff = ", ".join(f"{k} {v:g}" for k, v in profile.compute.efficiency.items())
        rows.append(("efficiency", f"{eff} ({profile.compute.efficiency_source})"))
    if profile.compute.call_overhead_ms:
        ovh = ", ".join(f"{k} {v:g} ms" for k, v in profile.compute.call_overhead_ms.items())
        rows.append(("call overhead", f"{ovh} ({profile.compute.call_overhead_source})"))
    if profile.budgets is not None:
        latency = profile.budgets.latency_ms
        memory = profile.budgets.memory_mb
        rows.append(("latency budget", "-" if latency is None else f"{latency:g} ms"))
        rows.append(("memory budget", "-" if memory is None else f"{memory:,} MB"))
    rows.append(("source", str(profile.source)))
    for key, value in rows:
        info.add_row(key, value)
    console.print(info)

    sensors = Table(title="sensors")
    for column in ("kind", "count", "modality"):
        sensors.add_column(column)
    for s in profile.sensors:
        modality = f"{s.modality} (override)" if s.modality_overridden else str(s.modality)
        sensors.add_row(s.kind, str(s.count), modality)
    console.print(sensors)
    emit_json(args, profile.to_dict())
    return 0


def _run_validate(args: argparse.Namespace) -> int:
    from edgefuse.cli._output import emit_json, error_line, is_quiet, json_target
    from edgefuse.profiles import DeviceProfile, validate_paths

    json_target(args)
    results = validate_paths(args.paths)
    invalid = sum(1 for _, result in results if not isinstance(result, DeviceProfile))
    document = [
        {
            "path": str(path),
            "valid": isinstance(result, DeviceProfile),
            "id": result.id if isinstance(result, DeviceProfile) else None,
            "error": None if isinstance(result, DeviceProfile) else str(result),
        }
        for path, result in results
    ]
    if is_quiet(args):  # no report: each invalid profile is still named on stderr
        for path, result in results:
            if not isinstance(result, DeviceProfile):
                error_line(f"invalid profile {path}: {result}")
    if _print_json(args, document):
        return 1 if invalid else 0

    from rich.text import Text

    console = _console(args)
    for path, result in results:
        if isinstance(result, DeviceProfile):
            console.print(Text.assemble(("ok       ", "bold green"), f"{path} ({result.id})"), soft_wrap=True)
        else:
            console.print(Text.assemble(("invalid  ", "bold red"), str(result)), soft_wrap=True)
    summary = f"{len(results) - invalid} valid, {invalid} invalid"
    console.print(Text(summary, style="bold red" if invalid else "bold green"))
    emit_json(args, document)
    return 1 if invalid else 0
