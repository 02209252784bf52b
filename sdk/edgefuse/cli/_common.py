"""Helpers shared by CLI subcommands (argument groups, validators, dataset loading, progress, output).

The output conventions of every command (``--json [PATH|-]``, ``--quiet``/``--verbose``, ``--log`` and the
converter log) are implemented at the end of this module: :func:`add_json_arg`, :func:`emit_json`,
:func:`add_output_args`, :func:`human_console`, :func:`warn` and :func:`converter_log`; the conventions
themselves are described in :mod:`edgefuse.cli`.

The ``type=`` validators below refuse a bad value while the arguments are parsed, so argparse exits 2
with ``argument --NAME: ...`` naming the option, the value and the allowed range (no traceback, nothing
loaded). They import nothing heavy: ``edgefuse --help`` and argument errors never import torch or rich.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
import textwrap
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

__all__ = [
    "EXTRAS",
    "LIBRARY_LOGGERS",
    "MAX_COUNT",
    "MAX_EPOCHS",
    "MAX_RUNTIME_THREADS",
    "MAX_SEED",
    "MAX_SEEDS",
    "MAX_THREADS",
    "TERMINAL_STDERR",
    "TERMINAL_STDOUT",
    "HelpFormatter",
    "add_data_args",
    "add_json_arg",
    "add_output_args",
    "add_pin_arg",
    "add_runtime_threads_arg",
    "alphas_arg",
    "check_out_path",
    "check_pin",
    "command_output",
    "converter_log",
    "emit_json",
    "epochs_int",
    "error_line",
    "examples",
    "human_console",
    "int_in",
    "is_quiet",
    "is_verbose",
    "json_arg",
    "json_stdout",
    "json_target",
    "json_text",
    "load_data",
    "log_path",
    "missing_extra_message",
    "module_available",
    "nonneg_float",
    "nonneg_int",
    "param_arg",
    "parse_params",
    "parse_seeds",
    "plain_console",
    "positive_float",
    "positive_int",
    "pretrain_epochs_int",
    "probability",
    "progress_callback",
    "require_extra",
    "seed_int",
    "seeds_arg",
    "show_progress",
    "strip_markup",
    "warn",
]

#: Largest seed accepted (NumPy and PyTorch both take any seed in 0..2**32-1).
MAX_SEED = 2**32 - 1
#: Most seeds one ``--seeds`` may ask for (each seed trains every model of a grid again).
MAX_SEEDS = 1000
#: Largest count of calls/epochs accepted where a count is bounded (``--iters``, ``--warmup``).
MAX_COUNT = 1_000_000
#: Most training epochs an option accepts (a typo like 1e12 would otherwise train "forever").
MAX_EPOCHS = 10_000
#: Most intra-op threads accepted.
MAX_THREADS = 1024
#: Most intra-op threads a runtime session accepts per graph: ``edgefuse.runtime.backends.base.MAX_THREADS``,
#: repeated here so that building the parser imports no runtime module (a test checks they agree).
MAX_RUNTIME_THREADS = 256

#: The optional packages the CLI's commands import, by top-level module: (what it is, the extra that
#: installs it). ``edgefuse run``/``verify``/``bench ARTIFACT`` need none of them; see :func:`require_extra`.
EXTRAS: dict[str, tuple[str, str]] = {
    "torch": ("PyTorch", "train"),
    "safetensors": ("safetensors", "train"),
    "tqdm": ("tqdm", "train"),
    "sklearn": ("scikit-learn", "train"),
    "matplotlib": ("matplotlib", "train"),
    "onnx": ("onnx", "export"),
    "onnxscript": ("onnxscript", "export"),
    "litert_torch": ("litert-torch", "export"),
    "ray": ("Ray", "ray"),
}


def module_available(name: str) -> bool:
    """Whether the module ``name`` can be imported, without importing it (a blocked or broken one: no)."""
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def missing_extra_message(command: str, modules: list[str], extra: str) -> str:
    """``edgefuse train needs PyTorch (torch), which is not installed here: pip install 'edgefuse[train]'``."""
    what = " and ".join(f"{EXTRAS[m][0]} ({m})" if m in EXTRAS and EXTRAS[m][0] != m else m for m in modules)
    verb = "is" if len(modules) == 1 else "are"
    return (
        f"edgefuse {command} needs {what}, which {verb} not installed here: pip install 'edgefuse[{extra}]'"
    )


def require_extra(command: str, extra: str, modules: tuple[str, ...] = ("torch", "safetensors")) -> None:
    """Refuse a command up front, with the extra to install, when a package it imports is missing.

    Checked with :func:`importlib.util.find_spec` (nothing is imported), before the command reads or
    writes anything, so a device with only ``edgefuse[onnxruntime]`` or ``edgefuse[litert]`` gets one
    clear line (exit 2 through :func:`edgefuse.cli.main`) instead of a ``ModuleNotFoundError`` traceback.

    Args:
        command: The subcommand, for the message (``train``, ``wise-ft``...).
        extra: The ``edgefuse[...]`` extra that installs what is missing.
        modules: The top-level modules the command cannot run without.

    Raises:
        BackendUnavailableError: Naming what is missing and ``pip install 'edgefuse[EXTRA]'``.
    """
    missing = [m for m in modules if not module_available(m)]
    if missing:
        from edgefuse.errors import BackendUnavailableError

        raise BackendUnavailableError(missing_extra_message(command, missing, extra))


# ---------------------------------------------------------------------------------------------------------
# Help output. Conventions (a test checks every parser): plain text (no reST ``markup`` or :func: roles),
# "(default: X)" after every option whose default is not None/False/empty unless its help already says
# "default", and an "examples:" epilog of real command lines (edgefuse.cli._common.examples).

_ROLE = re.compile(r":(?:[a-z]+:)?[a-z]+:`(~?)([^`]+)`")


def strip_markup(text: str) -> str:
    """Plain text for the terminal: reST roles become their target, double backticks are dropped.

    ``:func:`~edgefuse.errors.did_you_mean``` -> ``did_you_mean``; ``:mod:`edgefuse.trust``` ->
    ``edgefuse.trust``; ````--wav```` -> ``--wav``.
    """

    def role(match: re.Match[str]) -> str:
        target = match.group(2).strip()
        if target.endswith(">") and "<" in target:  # :role:`title <target>`: the title
            return target.split("<", 1)[0].strip()
        return target.rsplit(".", 1)[-1] if match.group(1) else target

    return _ROLE.sub(role, text).replace("``", "")


def _shows_default(action: argparse.Action) -> bool:
    """Whether ``--help`` should say the option's default (not for None, False, empty or suppressed)."""
    default = action.default
    if not action.option_strings or action.required or isinstance(action, argparse._HelpAction):
        return False
    if default is None or default is False or default is argparse.SUPPRESS:
        return False
    return not (isinstance(default, str | list | tuple | dict) and not default)


class HelpFormatter(argparse.HelpFormatter):
    """The one formatter of every ``edgefuse`` parser (set by :func:`edgefuse.cli.build_parser`).

    * strips reST markup from descriptions, help and epilogs (:func:`strip_markup`);
    * appends ``(default: X)`` to an option's help unless the default is None/False/empty or the help
      already mentions a default;
    * wraps prose paragraphs of the description and epilog to the terminal but keeps a paragraph whose
      lines are indented or bulleted (an ``examples:`` block) line by line, so commands stay copyable.
    """

    def __init__(
        self, prog: str, indent_increment: int = 2, max_help_position: int = 30, width: int | None = None
    ) -> None:
        super().__init__(prog, indent_increment, max_help_position, width)

    def _get_help_string(self, action: argparse.Action) -> str:
        text = strip_markup(action.help or "")
        if _shows_default(action) and "default" not in text.lower():
            text = f"{text} (default: %(default)s)" if text else "default: %(default)s"
        return text

    def _format_text(self, text: str) -> str:
        if "%(prog)" in text:
            text = text % {"prog": self._prog}
        width = max(self._width - self._current_indent, 11)
        indent = " " * self._current_indent
        blocks = []
        for block in re.split(r"\n\s*\n", strip_markup(text).strip("\n")):
            lines = block.splitlines()
            if any(line[:1].isspace() or line.lstrip().startswith(("- ", "* ")) for line in lines[1:]):
                blocks.append("\n".join(indent + line.rstrip() for line in lines))
            else:
                blocks.append(
                    textwrap.fill(
                        " ".join(block.split()),
                        width,
                        initial_indent=indent,
                        subsequent_indent=indent,
                        break_on_hyphens=False,
                    )
                )
        return "\n\n".join(blocks) + "\n\n"

    def _split_lines(self, text: str, width: int) -> list[str]:
        # never split an option, a dataset or a path at its hyphens (--model-\nfactory)
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False) or [""]


def examples(*lines: str, note: str = "") -> str:
    """An ``examples:`` epilog: one command per line (kept whole), ``#`` lines as comments, then ``note``.

    Every ``edgefuse ...`` line must run as written from the repository root (a test parses each one);
    training examples use ``--data av-digits-synthetic-audio --degrade-image 4`` (no download).
    """
    text = "examples:\n" + "\n".join(f"  {line}" for line in lines)
    return f"{text}\n\n{note}" if note else text


def _int(text: str, allowed: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer; allowed: {allowed}") from None


def _float(text: str, allowed: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number; allowed: {allowed}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number; allowed: {allowed}")
    return value


def int_in(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse ``type=``: an integer in ``low..high`` (``high=None``: no upper bound).

    Args:
        low: Smallest allowed value.
        high: Largest allowed value, or ``None``.

    Returns:
        The validator; it raises :class:`argparse.ArgumentTypeError` naming the value and the range.
    """
    allowed = f"an integer >= {low}" if high is None else f"an integer in {low}..{high}"

    def check(text: str) -> int:
        value = _int(text, allowed)
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"{value} is out of range; allowed: {allowed}")
        return value

    return check


def positive_int(text: str) -> int:
    """An argparse ``type=``: an integer >= 1."""
    return int_in(1)(text)


def epochs_int(text: str) -> int:
    """An argparse ``type=``: training epochs, an integer in ``1..MAX_EPOCHS``."""
    return int_in(1, MAX_EPOCHS)(text)


def pretrain_epochs_int(text: str) -> int:
    """An argparse ``type=``: pre-training epochs, an integer in ``0..MAX_EPOCHS``."""
    return int_in(0, MAX_EPOCHS)(text)


def nonneg_int(text: str) -> int:
    """An argparse ``type=``: an integer >= 0."""
    return int_in(0)(text)


def seed_int(text: str) -> int:
    """An argparse ``type=``: a seed, an integer in ``0..MAX_SEED``."""
    return int_in(0, MAX_SEED)(text)


def positive_float(text: str) -> float:
    """An argparse ``type=``: a finite number > 0 (``nan`` and ``inf`` are refused)."""
    allowed = "a finite number > 0"
    value = _float(text, allowed)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} is out of range; allowed: {allowed}")
    return value


def nonneg_float(text: str) -> float:
    """An argparse ``type=``: a finite number >= 0."""
    allowed = "a finite number >= 0"
    value = _float(text, allowed)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is out of range; allowed: {allowed}")
    return value


def probability(text: str) -> float:
    """An argparse ``type=``: a finite number in [0, 1]."""
    allowed = "a number in [0, 1]"
    value = _float(text, allowed)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is out of range; allowed: {allowed}")
    return value


def seeds_arg(text: str) -> list[int]:
    """An argparse ``type=`` for ``--seeds``: see :func:`parse_seeds`."""
    from edgefuse.errors import ContractError

    try:
        return parse_seeds(text)
    except ContractError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix(f"--seeds {text!r}: ")) from None


def alphas_arg(text: str) -> list[float]:
    """An argparse ``type=`` for ``--alphas``: see :func:`edgefuse.wiseft.parse_alphas`."""
    from edgefuse.errors import ContractError
    from edgefuse.wiseft import parse_alphas

    try:
        return parse_alphas(text)
    except ContractError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix(f"--alphas {text!r}: ")) from None


def param_arg(text: str) -> str:
    """An argparse ``type=`` for ``--param NAME=NUMBER``: a name and a finite number (returned unchanged)."""
    from edgefuse.errors import ContractError

    try:
        parse_params([text])
    except ContractError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix(f"--param {text!r}: ")) from None
    return text


def check_out_path(path: str | os.PathLike[str], option: str = "--out") -> Path:
    """Refuse an output path that cannot be created because a component above it is not a folder.

    The path itself may exist (whether it may be replaced is the command's ``--overwrite`` rule); its
    nearest existing ancestor must be a folder.

    Args:
        path: The output file or folder the user gave.
        option: The option that gave it, for the message.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ContractError: An ancestor is a regular file, a dangling symlink or another non-folder; the message
            names that component.
    """
    from edgefuse.errors import ContractError

    p = Path(path)
    for ancestor in p.parents:
        if not os.path.lexists(ancestor):
            continue
        if ancestor.is_dir():
            break
        kind = (
            "a dangling symlink"
            if ancestor.is_symlink() and not ancestor.exists()
            else "a file"
            if ancestor.is_file()
            else "not a folder"
        )
        raise ContractError(
            f"{option} {path}: {ancestor} is {kind}, not a folder, so nothing can be written below it; "
            f"choose an {option} whose parent is a folder (or remove {ancestor})"
        )
    return p


def add_data_args(parser: argparse.ArgumentParser) -> None:
    """Add ``--data``, ``--fsdd``, ``--degrade-image``, ``--data-seed``, ``--skip-bad``."""
    g = parser.add_argument_group("data")
    g.add_argument(
        "--data",
        default="av-digits",
        help="dataset: av-digits (default, FSDD), av-digits-synthetic-audio (no FSDD needed) or synthetic",
    )
    g.add_argument("--fsdd", default=None, help="FSDD folder (default: $EDGEFUSE_FSDD)")
    g.add_argument(
        "--degrade-image",
        type=int_in(1, 64),
        default=None,
        metavar="K",
        help="keep K PCA components (1-64) of each 8x8 image",
    )
    g.add_argument(
        "--data-seed",
        type=seed_int,
        default=0,
        help=f"seed of the audio-image pairing and splits (0..{MAX_SEED})",
    )
    g.add_argument("--skip-bad", action="store_true", help="skip unusable recordings with a warning")


def load_data(args: argparse.Namespace) -> Any:
    """Load the dataset the data arguments describe."""
    from edgefuse.data.registry import load_dataset

    return load_dataset(
        args.data,
        fsdd=args.fsdd,
        degrade_image=args.degrade_image,
        seed=args.data_seed,
        skip_bad=args.skip_bad,
    )


def parse_seeds(text: str) -> list[int]:
    """``"3"`` -> ``[0, 1, 2]``; ``"0,5,7"`` -> ``[0, 5, 7]``.

    A count is in ``1..MAX_SEEDS``; a list holds 1 to ``MAX_SEEDS`` seeds, each in ``0..MAX_SEED``.

    Raises:
        ContractError: Neither a count nor a list of integers, or a count or seed out of range.
    """
    from edgefuse.errors import ContractError

    try:
        if "," in text:
            seeds = [int(s) for s in text.split(",") if s.strip()]
            n = None
        else:
            n = int(text)
    except ValueError:
        raise ContractError(f"--seeds {text!r}: give a count (3) or a list (0,1,2)") from None
    if n is not None:
        if not 1 <= n <= MAX_SEEDS:
            raise ContractError(f"--seeds {text!r}: the count must be in 1..{MAX_SEEDS}")
        return list(range(n))
    if not 1 <= len(seeds) <= MAX_SEEDS:
        raise ContractError(f"--seeds {text!r}: give 1 to {MAX_SEEDS} seeds")
    bad = [s for s in seeds if not 0 <= s <= MAX_SEED]
    if bad:
        raise ContractError(
            f"--seeds {text!r}: seed {bad[0]} is out of range; each seed must be in 0..{MAX_SEED}"
        )
    return seeds


def parse_params(items: list[str]) -> dict[str, float]:
    """``["p=0.3", "K=2"]`` -> ``{"p": 0.3, "K": 2}`` (numbers only; the intervention validates names)."""
    from edgefuse.errors import ContractError

    out: dict[str, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            if not sep or not name.strip():
                raise ValueError
            number = float(value)
        except ValueError:
            raise ContractError(f"--param {item!r}: write NAME=NUMBER, e.g. --param p=0.5") from None
        if not math.isfinite(number):
            raise ContractError(f"--param {item!r}: {value.strip()} is not a finite number")
        out[name.strip()] = int(number) if number.is_integer() and name.strip() == "K" else number
    return out


@contextmanager
def progress_callback(title: str, enabled: bool = True) -> Iterator[Callable[[str, int, int], None] | None]:
    """A rich progress bar (the terminal's stderr) driven by ``callback(phase, step, total)``.

    Yields ``None`` instead when not ``enabled`` (``--quiet``, ``--json -``: see :func:`show_progress`).
    """
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}", markup=False),  # a description is data: keep its [brackets]
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(file=TERMINAL_STDERR),
    ) as bar:
        tasks: dict[str, Any] = {}

        def update(phase: str, step: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = bar.add_task(f"{title}: {phase}", total=total)
            bar.update(tasks[phase], completed=step)

        yield update


def add_runtime_threads_arg(p: argparse.ArgumentParser) -> None:
    """Add ``--threads N`` (``1..MAX_RUNTIME_THREADS``): the session's intra-op threads per graph."""
    p.add_argument(
        "--threads",
        type=int_in(1, MAX_RUNTIME_THREADS),
        default=None,
        metavar="N",
        help=f"intra-op threads per graph, 1..{MAX_RUNTIME_THREADS}; overrides the profile's threads "
        "(default: the profile's threads, at most this machine's CPU count)",
    )


def add_pin_arg(p: argparse.ArgumentParser) -> None:
    """Add ``--manifest-sha256``: pin the artifact's manifest (a checkpoint's model.json)."""
    p.add_argument(
        "--manifest-sha256",
        default=None,
        metavar="HEX",
        help="refuse the artifact unless manifest.json (for a checkpoint: model.json) has this sha256; "
        "it records every other file's hash, so this pins the whole artifact",
    )


def check_pin(folder: str | Path, pin: str | None) -> None:
    """Check ``--manifest-sha256`` against an artifact or checkpoint folder (nothing when ``pin`` is None).

    Raises:
        ManifestError: The manifest's sha256 differs, or ``pin`` is not 64 hex digits.
        CheckpointError: Likewise for a checkpoint's ``model.json``.
    """
    if pin is None:
        return
    from edgefuse.manifest import read_manifest
    from edgefuse.runtime.backends.torch import is_checkpoint

    if is_checkpoint(folder):
        from edgefuse.checkpoint import read_checkpoint_info

        read_checkpoint_info(folder, info_sha256=pin)
    else:
        read_manifest(folder, manifest_sha256=pin)


#: Width of tables written to a pipe or file (no terminal to fit): wide enough that no cell is cut.
PIPED_WIDTH = 220


def plain_console(**kwargs: Any) -> Any:
    """A rich Console that never interprets markup in what it prints (names, labels, paths are data).

    Labels, profile names, descriptions and folder names come from the user's files; with markup on, a
    name like ``o[/]x`` would crash the print. Styled parts are passed as :class:`rich.text.Text`.
    """
    from rich.console import Console

    kwargs.setdefault("highlight", False)
    if kwargs.pop("stderr", False) and "file" not in kwargs:
        kwargs["file"] = TERMINAL_STDERR  # the terminal even while converter_log sends fd 2 to the log
    console = Console(markup=False, **kwargs)
    if "width" not in kwargs and not console.is_terminal:
        # a pipe, a file or a captured stream: rich would squeeze tables into 80 columns and cut cells
        console = Console(markup=False, width=PIPED_WIDTH, **kwargs)
    return console


# ---------------------------------------------------------------------------------------------------------
# Output conventions shared by every command (see the module docstring of edgefuse.cli):
#   --json [PATH|-]   the result as one JSON document: '-' (or no value) on stdout and nothing else there;
#                     PATH written to a file, the human output kept
#   --quiet/--verbose no progress, tables or notes / converter output and EdgeFuse's INFO log on the terminal
#   --log PATH        where converter and library output goes (default $EDGEFUSE_CACHE_DIR/logs/CMD.log)

#: Suffixes of files that are a command's input, never a JSON report: ``--json model.onnx`` is refused.
_INPUT_SUFFIXES = (".onnx", ".tflite", ".npz", ".wav", ".png", ".toml", ".safetensors", ".pt", ".engine")
#: Python loggers of converters and heavy libraries whose records go to the converter log.
LIBRARY_LOGGERS = ("absl", "coremltools", "torchao", "tensorflow", "onnxscript", "litert_torch", "jax")


def json_arg(text: str) -> str:
    """An argparse ``type=`` for ``--json``: ``-`` (stdout) or a file path.

    ``--json`` takes an optional value, so ``edgefuse run --json ARTIFACT`` would take the artifact folder
    as the JSON path: an existing folder (or an existing model/input file) is refused while the arguments
    are parsed, with the fix (put the positional argument before ``--json``).
    """
    if text == "-":
        return text
    fix = (
        "--json takes a file path to write, or '-' (or no value) for stdout; if it is the command's "
        "artifact, checkpoint or input, put it before --json (e.g. edgefuse run ARTIFACT --json)"
    )
    if os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text} is a folder: {fix}")
    if os.path.isfile(text) and Path(text).suffix.lower() in _INPUT_SUFFIXES:
        raise argparse.ArgumentTypeError(f"{text} is a {Path(text).suffix} file, not a JSON report: {fix}")
    return text


def add_json_arg(parser: argparse.ArgumentParser, what: str) -> None:
    """Add ``--json [PATH|-]``: ``what`` as one JSON document, on stdout or in a file.

    ``--json`` alone or ``--json -`` prints the document on stdout and nothing else there (tables are
    skipped; progress, warnings and errors stay on stderr); ``--json PATH`` writes it to PATH (replaced
    if it exists) and keeps the human output. Read the choice with :func:`json_stdout` and
    :func:`json_target`; write the document with :func:`emit_json`.

    Args:
        parser: The command's parser.
        what: What the document holds, for the help ("the report", "the prediction").
    """
    parser.add_argument(
        "--json",
        nargs="?",
        const="-",
        default=None,
        type=json_arg,
        metavar="PATH",
        help=f"write {what} as JSON to PATH (replaced if it exists; the usual output is kept), or with "
        "'-' or no value print only the JSON on stdout (tables skipped; warnings and errors on stderr)",
    )


def json_stdout(args: argparse.Namespace) -> bool:
    """Whether ``--json -`` (or a bare ``--json``) claims stdout for the JSON document."""
    return getattr(args, "json", None) == "-"


def json_target(args: argparse.Namespace, protect: tuple[tuple[str, Any], ...] = ()) -> Path | None:
    """The file ``--json PATH`` will write, checked before any work (``None``: stdout, or no ``--json``).

    Args:
        args: The parsed arguments (``args.json``).
        protect: ``(what, folder)`` pairs the report must not be written into (the command's input
            artifact, its output checkpoint...): ``("the artifact folder", path)``. ``None`` folders are
            skipped.

    Raises:
        ContractError: PATH is a folder, cannot be created (a file above it), or lies in a protected
            folder; the message names the fix.
    """
    text = getattr(args, "json", None)
    if text is None or text == "-":
        return None
    from edgefuse.errors import ContractError

    path = check_out_path(text, "--json")
    if path.is_dir():
        raise ContractError(f"--json {text}: is a folder; give a file path (or '-' for stdout)")
    resolved = path.resolve()
    for what, folder in protect:
        if folder is None:
            continue
        root = Path(folder).resolve()
        if resolved == root or root in resolved.parents:
            raise ContractError(f"--json {text}: is inside {what} {folder}; write the report elsewhere")
    return path


def json_text(document: Any) -> str:
    """The JSON text every command writes: indented, one trailing newline, non-JSON values as strings."""
    import json

    return json.dumps(document, indent=2, default=str) + "\n"


def emit_json(args: argparse.Namespace, document: Any, announce: bool = True) -> Path | None:
    """Write ``document`` where ``--json`` says: stdout (``-``), a file (PATH), or nowhere (no ``--json``).

    The same text either way (:func:`json_text`). On stdout it goes to the real standard output even
    while :func:`converter_log` keeps converters off it. A file is replaced atomically; unless
    ``announce`` is False, ``wrote PATH`` is printed with the human output (not with ``--quiet``).

    Returns:
        The file written, or ``None``.
    """
    text = getattr(args, "json", None)
    if text is None:
        return None
    if text == "-":
        TERMINAL_STDOUT.write(json_text(document))
        TERMINAL_STDOUT.flush()
        return None
    from edgefuse.outputs import write_file

    path = check_out_path(text, "--json")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_file(path, json_text(document))
    if announce:
        human_console(args).print(f"wrote {path}", soft_wrap=True)
    return path


def add_output_args(
    parser: argparse.ArgumentParser,
    log: str | None = None,
    *,
    log_default: str | None = None,
    top_level: bool = False,
    wrap: bool = True,
    python_stderr: str = "log",
) -> None:
    """Add ``--quiet`` / ``--verbose`` (mutually exclusive) and, with ``log``, ``--log PATH``.

    ``--log`` is for a command that runs converters or heavy libraries. The top-level parser takes them too (``edgefuse --quiet export ...``); a subcommand's copies default to
    :data:`argparse.SUPPRESS` so that they never reset what was given before the command name.

    Args:
        parser: The (sub)command's parser.
        log: The command's name for its default log file ``$EDGEFUSE_CACHE_DIR/logs/<log>.log``; ``None``:
            no ``--log`` (a command that runs no converter).
        log_default: The default shown in the help instead (``edgefuse demo``: ``OUT/demo.log``).
        top_level: The ``edgefuse`` parser itself: the flags default to False.
        wrap: :func:`edgefuse.cli.main` runs the command inside :func:`converter_log` (``demo`` opens its
            own log in its output folder, so it passes False).
        python_stderr: ``log``: Python's ``sys.stderr`` goes to the log with the converters' C++ output;
            ``terminal``: it stays on the terminal (``robustness``, whose sweep progress bar is drawn on
            ``sys.stderr`` by the SDK), only the file descriptor and the library loggers go to the log.
    """
    group = parser.add_argument_group("output")
    both = group.add_mutually_exclusive_group()
    default: Any = False if top_level else argparse.SUPPRESS
    both.add_argument(
        "--quiet",
        action="store_true",
        default=default,
        help="print no progress, tables or notes: only warnings and errors (stderr) and the --json "
        "document; the exit status is unchanged",
    )
    both.add_argument(
        "--verbose",
        action="store_true",
        default=default,
        help="show converter and library output on the terminal instead of the --log file, and "
        "EdgeFuse's INFO log lines",
    )
    if log is not None:
        where = log_default or f"$EDGEFUSE_CACHE_DIR/logs/{log}.log, i.e. ~/.cache/edgefuse/logs/{log}.log"
        group.add_argument(
            "--log",
            default=None,
            metavar="PATH",
            help=f"file that receives converter and library output (replaced each run; default: {where}); "
            "its path is printed when something was written there",
        )
        if wrap:
            parser.set_defaults(_converter_log=log, _python_stderr=python_stderr)


def is_quiet(args: argparse.Namespace) -> bool:
    """``--quiet`` was given (before or after the command name)."""
    return bool(getattr(args, "quiet", False))


def is_verbose(args: argparse.Namespace) -> bool:
    """``--verbose`` was given (before or after the command name)."""
    return bool(getattr(args, "verbose", False))


def human_console(args: argparse.Namespace) -> Any:
    """The console for a command's human output (tables, notes, ``wrote PATH``).

    stdout; stderr when ``--json -`` owns stdout; a console that prints nothing with ``--quiet``.
    """
    if is_quiet(args):
        return plain_console(quiet=True)
    if json_stdout(args):
        return plain_console(stderr=True)
    return plain_console()


def show_progress(args: argparse.Namespace) -> bool:
    """Whether a progress display (stderr) is wanted: not with ``--quiet``, nor with ``--json -``."""
    return not is_quiet(args) and not json_stdout(args)


def warn(message: str) -> None:
    """``warning: MESSAGE`` (yellow) on the terminal's stderr, even with ``--quiet`` and in the converter log."""
    from rich.text import Text

    plain_console(stderr=True).print(
        Text.assemble(("warning:", "bold yellow"), f" {message}"), soft_wrap=True
    )


def error_line(message: str) -> None:
    """``error: MESSAGE`` (red) on the terminal's stderr, even with ``--quiet``."""
    from rich.text import Text

    plain_console(stderr=True).print(Text.assemble(("error:", "bold red"), f" {message}"), soft_wrap=True)


# --- the terminal while converter output is redirected ----------------------------------------------------

#: File descriptor -> the stream that reaches the terminal while :func:`converter_log` redirects it.
_TERMINAL: dict[int, Any] = {}


class _TerminalStream:
    """A text stream that reaches the terminal's stderr (fd 2) or stdout (fd 1), redirected or not.

    While :func:`converter_log` points the descriptor at the log, writes go to a duplicate of the original
    descriptor; otherwise to ``sys.stderr`` / ``sys.stdout`` as they are at the time of the write (so a
    test's captured streams see them). Consoles and handlers may keep it for as long as they like.
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def _stream(self) -> Any:
        active = _TERMINAL.get(self._fd)
        if active is not None:
            return active
        current = sys.stderr if self._fd == 2 else sys.stdout
        if current is self:  # sys.stderr is this stream (converter_log swapped it) and it is over
            current = sys.__stderr__ if self._fd == 2 else sys.__stdout__
        return current

    def write(self, text: str) -> int:
        return self._stream().write(text)

    def flush(self) -> None:
        self._stream().flush()

    def isatty(self) -> bool:
        try:
            return bool(self._stream().isatty())
        except (AttributeError, ValueError, OSError):
            return False

    def fileno(self) -> int:
        return int(self._stream().fileno())

    @property
    def encoding(self) -> str:
        return getattr(self._stream(), "encoding", None) or "utf-8"

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream(), name)


#: The terminal's stderr and stdout, whatever :func:`converter_log` redirects (see :class:`_TerminalStream`).
TERMINAL_STDERR: Any = _TerminalStream(2)
TERMINAL_STDOUT: Any = _TerminalStream(1)


def _is_fd(stream: Any, fd: int) -> bool:
    """Whether ``stream`` writes to file descriptor ``fd`` (not a test's capture, not a replaced stream)."""
    try:
        return stream is not None and stream.fileno() == fd
    except (AttributeError, OSError, ValueError):
        return False


@contextmanager
def _redirect_fd(fd: int, target: int, swap_python: bool = False) -> Iterator[None]:
    """Point file descriptor ``fd`` at ``target`` for the block; EdgeFuse's own output keeps the terminal.

    ``swap_python``: also replace ``sys.stderr`` by :data:`TERMINAL_STDERR` for the block (only when it
    wrote to fd 2), so that Python code that prints to ``sys.stderr`` stays on the terminal.
    """
    stream = sys.stderr if fd == 2 else sys.stdout
    real = _is_fd(stream, fd)
    for s in (stream, TERMINAL_STDERR if fd == 2 else TERMINAL_STDOUT):
        with suppress(AttributeError, OSError, ValueError):
            s.flush()
    saved = os.dup(fd)
    terminal: Any = stream
    try:
        if real:
            terminal = os.fdopen(
                os.dup(saved), "w", buffering=1, encoding=getattr(stream, "encoding", None) or "utf-8"
            )
        os.dup2(target, fd)
    except BaseException:
        os.close(saved)
        raise
    previous = _TERMINAL.get(fd)
    _TERMINAL[fd] = terminal
    swapped = swap_python and fd == 2 and real
    if swapped:
        sys.stderr = TERMINAL_STDERR
    try:
        yield
    finally:
        if swapped:
            sys.stderr = stream
        for s in (stream, terminal):
            with suppress(AttributeError, OSError, ValueError):
                s.flush()
        os.dup2(saved, fd)
        os.close(saved)
        if previous is None:
            _TERMINAL.pop(fd, None)
        else:
            _TERMINAL[fd] = previous
        if terminal is not stream:
            terminal.close()


@contextmanager
def _loggers_to(stream: Any, names: tuple[str, ...]) -> Iterator[None]:
    """Send the records of the Python loggers ``names`` to ``stream`` only (not to the terminal) for the block."""
    import logging

    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    saved = []
    for name in names:
        logger = logging.getLogger(name)
        saved.append((logger, logger.propagate))
        logger.addHandler(handler)
        logger.propagate = False
    try:
        yield
    finally:
        for logger, propagate in saved:
            logger.removeHandler(handler)
            logger.propagate = propagate
        handler.flush()


def _from_edgefuse(category: type, filename: str) -> bool:
    """Whether a Python warning is EdgeFuse's own (its class, or raised from EdgeFuse's code)."""
    if str(getattr(category, "__module__", "")).startswith("edgefuse"):
        return True
    package = str(Path(__file__).resolve().parents[1])
    try:
        return os.path.abspath(filename).startswith(package + os.sep)
    except (TypeError, ValueError):
        return False


@contextmanager
def _warnings_to(stream: Any) -> Iterator[None]:
    """Show EdgeFuse's Python warnings as ``warning: ...`` on the terminal, every other one in ``stream``.

    ``stream`` None: the other warnings are shown as before (``--verbose``).
    """
    import warnings

    original = warnings.showwarning

    def show(
        message: Any, category: type, filename: str, lineno: int, file: Any = None, line: Any = None
    ) -> None:
        if file is None and _from_edgefuse(category, filename):
            # named like the error lines (``error: ContractError: ...``), but for a plain UserWarning
            name = "" if category is UserWarning else f"{getattr(category, '__name__', category)}: "
            warn(f"{name}{message}")
        elif file is not None or stream is None:
            original(message, category, filename, lineno, file, line)
        else:
            stream.write(warnings.formatwarning(message, category, filename, lineno, line))

    warnings.showwarning = show
    try:
        yield
    finally:
        if warnings.showwarning is show:
            warnings.showwarning = original


def log_path(args: argparse.Namespace, command: str, default: str | os.PathLike[str] | None = None) -> Path:
    """The converter log of ``command``: ``--log``, else ``default``, else ``<cache>/logs/<command>.log``.

    The cache folder is ``$EDGEFUSE_CACHE_DIR`` or ``~/.cache/edgefuse`` (:func:`edgefuse.cache.cache_root`).
    """
    given = getattr(args, "log", None)
    if given:
        return check_out_path(given, "--log")
    if default is not None:
        return Path(default)
    from edgefuse.cache import cache_root

    return cache_root(sub="logs") / f"{command}.log"


@contextmanager
def _edgefuse_logging(verbose: bool) -> Iterator[None]:
    """EdgeFuse's own log records on the terminal's stderr: WARNING and up, INFO too with ``--verbose``.

    They are printed as ``warning: MESSAGE`` and still propagate (a test's log capture sees them).
    """
    import logging

    class _Format(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            text = record.getMessage()
            if record.levelno < logging.WARNING:  # --verbose: which part of EdgeFuse says it
                return f"{record.levelname.lower()}: {record.name}: {text}"
            return f"{record.levelname.lower()}: {text}"

    logger = logging.getLogger("edgefuse")
    handler = logging.StreamHandler(TERMINAL_STDERR)
    handler.setFormatter(_Format())
    handler.setLevel(logging.INFO if verbose else logging.WARNING)
    level = logger.level
    if verbose:
        logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@contextmanager
def converter_log(
    args: argparse.Namespace,
    command: str,
    path: str | os.PathLike[str] | None = None,
    python_stderr: str = "log",
) -> Iterator[Path | None]:
    """Run a block with converter and library output in a log file instead of on the terminal.

    File descriptor 2 (the C/C++ output of TensorFlow, LiteRT, XNNPACK, absl...) points at the log, and so
    does Python's ``sys.stderr`` unless ``python_stderr="terminal"``; the Python loggers of
    :data:`LIBRARY_LOGGERS` write there too, and so do Python warnings that are not EdgeFuse's.
    ``TF_CPP_MIN_LOG_LEVEL`` and ``GLOG_minloglevel`` default to 2 (errors only). EdgeFuse's own output
    keeps the terminal: consoles from :func:`plain_console` (``stderr=True``), :func:`warn`, EdgeFuse's
    warnings and log records, and the ``--json -`` document (:func:`emit_json`). With ``--json -``, file
    descriptor 1 points at the log as well, so that nothing but the JSON reaches stdout.

    The redirect is undone when the block ends, also by an exception, before the caller prints it. Then,
    if the log is not empty and ``--quiet`` was not given, ``converter output: PATH`` is printed on stderr.
    With ``--verbose`` nothing is redirected (with ``--json -``, fd 1 goes to stderr) and no log is written.

    Args:
        args: The parsed arguments (``log``, ``quiet``, ``verbose``, ``json``).
        command: The command, for the default log ``<cache>/logs/<command>.log``.
        path: The default log instead (``edgefuse demo``: ``OUT/demo.log``); ``--log`` still wins.
        python_stderr: ``log`` or ``terminal`` (see :func:`add_output_args`).

    Yields:
        The log file, or ``None`` with ``--verbose`` (or when the default log cannot be created: then
        nothing is redirected).

    Raises:
        ContractError: ``--log PATH`` cannot be created.
    """
    from contextlib import ExitStack

    verbose = is_verbose(args)
    if not verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        os.environ.setdefault("GLOG_minloglevel", "2")
    target: Path | None = None
    log_file: Any = None
    if not verbose:
        target = log_path(args, command, path)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with target.open("wb"):  # this run's output only
                pass
            log_file = target.open("ab")  # appended to by fd 2, fd 1 and the text stream alike
        except OSError as exc:
            if getattr(args, "log", None):
                from edgefuse.errors import ContractError

                raise ContractError(
                    f"--log {target}: cannot be written ({exc}); choose another --log"
                ) from None
            # the default log cannot be created (a read-only home): the output stays on the terminal
            target = None
    try:
        with ExitStack() as stack:
            if log_file is not None:
                stack.callback(log_file.close)
                text = os.fdopen(
                    os.dup(log_file.fileno()), "w", buffering=1, encoding="utf-8", errors="replace"
                )
                stack.callback(text.close)
                stack.enter_context(
                    _redirect_fd(2, log_file.fileno(), swap_python=python_stderr == "terminal")
                )
                stack.enter_context(_loggers_to(text, LIBRARY_LOGGERS))
                stack.enter_context(_warnings_to(text))
            else:  # --verbose (or no log): the converters' output stays on the terminal
                stack.enter_context(_warnings_to(None))
            if json_stdout(args):
                stack.enter_context(_redirect_fd(1, log_file.fileno() if log_file is not None else 2))
            yield target
    finally:
        if target is not None and not is_quiet(args):
            try:
                written = target.stat().st_size > 0
            except OSError:
                written = False
            if written:
                from rich.text import Text

                plain_console(stderr=True).print(
                    Text(f"converter output: {target}", style="dim"), soft_wrap=True
                )


@contextmanager
def command_output(args: argparse.Namespace) -> Iterator[None]:
    """What :func:`edgefuse.cli.main` runs every command in.

    EdgeFuse's log records go to the terminal; a command registered with ``add_output_args(parser,
    log=NAME)`` (and ``wrap`` left True) runs inside :func:`converter_log`.
    """
    with _edgefuse_logging(is_verbose(args)):
        command = getattr(args, "_converter_log", None)
        if command is None:
            yield
        else:
            with converter_log(args, command, python_stderr=getattr(args, "_python_stderr", "log")):
                yield
