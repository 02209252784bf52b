"""Helpers shared by CLI subcommands: optional extras, argument validators, data and seed arguments, progress.

The output conventions of every command (``--json [PATH|-]``, ``--quiet``/``--verbose``, ``--log`` and the
converter log) are implemented in :mod:`edgefuse.cli._output`; the conventions themselves are described in
:mod:`edgefuse.cli`. Help formatting is in :mod:`edgefuse.cli._help`, and the terminal streams that survive
the converter-log redirection in :mod:`edgefuse.cli._terminal`.

The ``type=`` validators below refuse a bad value while the arguments are parsed, so argparse exits 2
with ``argument --NAME: ...`` naming the option, the value and the allowed range (no traceback, nothing
loaded). They import nothing heavy: ``edgefuse --help`` and argument errors never import torch or rich.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from edgefuse.cli._terminal import TERMINAL_STDERR

__all__ = [
    "EXTRAS",
    "MAX_COUNT",
    "MAX_EPOCHS",
    "MAX_RUNTIME_THREADS",
    "MAX_SEED",
    "MAX_SEEDS",
    "MAX_THREADS",
    "add_data_args",
    "add_pin_arg",
    "add_runtime_threads_arg",
    "alphas_arg",
    "check_out_path",
    "check_pin",
    "epochs_int",
    "int_in",
    "load_data",
    "missing_extra_message",
    "module_available",
    "nonneg_float",
    "nonneg_int",
    "param_arg",
    "parse_params",
    "parse_seeds",
    "positive_float",
    "positive_int",
    "pretrain_epochs_int",
    "probability",
    "progress_callback",
    "require_extra",
    "seed_int",
    "seeds_arg",
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

    Yields ``None`` instead when not ``enabled`` (``--quiet``, ``--json -``: see
    :func:`~edgefuse.cli._output.show_progress`).
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
