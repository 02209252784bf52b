"""Helpers shared by CLI subcommands (argument groups, dataset loading, progress)."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["add_data_args", "load_data", "parse_params", "parse_seeds", "progress_callback"]


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
        "--degrade-image", type=int, default=None, metavar="K", help="keep K PCA components of each image"
    )
    g.add_argument("--data-seed", type=int, default=0, help="seed of the audio-image pairing and splits")
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
    """``"3"`` -> ``[0, 1, 2]``; ``"0,5,7"`` -> ``[0, 5, 7]``."""
    from edgefuse.errors import ContractError

    try:
        if "," in text:
            return [int(s) for s in text.split(",") if s.strip()]
        n = int(text)
    except ValueError:
        raise ContractError(f"--seeds {text!r}: give a count (3) or a list (0,1,2)") from None
    if n < 1:
        raise ContractError(f"--seeds {text!r}: the count must be >= 1")
    return list(range(n))


def parse_params(items: list[str]) -> dict[str, float]:
    """``["p=0.3", "K=2"]`` -> ``{"p": 0.3, "K": 2}`` (numbers only; the intervention validates names)."""
    from edgefuse.errors import ContractError

    out: dict[str, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            if not sep or not name:
                raise ValueError
            number = float(value)
        except ValueError:
            raise ContractError(f"--param {item!r}: write NAME=NUMBER, e.g. --param p=0.5") from None
        out[name.strip()] = int(number) if number.is_integer() and name.strip() == "K" else number
    return out


@contextmanager
def progress_callback(title: str) -> Iterator[Callable[[str, int, int], None]]:
    """A rich progress bar (stderr) driven by ``callback(phase, step, total)``."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    ) as bar:
        tasks: dict[str, Any] = {}

        def update(phase: str, step: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = bar.add_task(f"{title}: {phase}", total=total)
            bar.update(tasks[phase], completed=step)

        yield update
