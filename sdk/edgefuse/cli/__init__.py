"""The ``edgefuse`` command line: one module per subcommand.

Each subcommand module defines ``add_parser(subparsers)`` (argument definitions only, no heavy imports)
and ``run(args) -> int``. Heavy work and imports happen inside ``run`` so that ``edgefuse --help`` stays
fast and never imports torch.

Exit codes: 0 success, 1 the command ran and found a failure (e.g. an invalid profile), 2 bad usage or
an :class:`~edgefuse.errors.EdgeFuseError`.

On a device with only a runtime extra (``edgefuse[onnxruntime]`` or ``edgefuse[litert]``), ``run`` and
``verify`` work; a command that needs PyTorch or the exporters refuses up front with the extra to install
(:func:`edgefuse.cli._common.require_extra`), and an optional package found missing later (a
``ModuleNotFoundError`` for a module of :data:`~edgefuse.cli._common.EXTRAS`) is reported the same way:
one line, exit 2, no traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Subcommand name -> module under edgefuse.cli. Adding a subcommand = adding a module and a line here.
SUBCOMMANDS: dict[str, str] = {
    "profiles": "edgefuse.cli.profiles",
    "train": "edgefuse.cli.train",
    "robustness": "edgefuse.cli.robustness",
    "wise-ft": "edgefuse.cli.wiseft",
    "export": "edgefuse.cli.export",
    "run": "edgefuse.cli.run",
    "verify": "edgefuse.cli.verify",
    "eval": "edgefuse.cli.evaluate",
    "bench": "edgefuse.cli.bench",
    "demo": "edgefuse.cli.demo",
}


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every subcommand registered.

    Returns:
        The configured :class:`argparse.ArgumentParser`.
    """
    from edgefuse import __version__

    parser = argparse.ArgumentParser(
        prog="edgefuse",
        description=(
            "EdgeFuse: measure, export, run and benchmark multimodal models on devices whose sensors "
            "differ from the ones the model was trained with."
        ),
    )
    parser.add_argument("--version", action="version", version=f"edgefuse {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in SUBCOMMANDS.values():
        module = importlib.import_module(module_name)
        sub_parser = module.add_parser(sub)
        sub_parser.set_defaults(_module=module_name)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI.

    Args:
        argv: Arguments without the program name; ``None`` reads ``sys.argv``.

    Returns:
        The process exit code.
    """
    from edgefuse.errors import EdgeFuseError

    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "_module", None) is None:
        parser.print_help()
        return 2
    module = importlib.import_module(args._module)
    handler = getattr(args, "_handler", None) or module.run
    try:
        return int(handler(args) or 0)
    except EdgeFuseError as exc:
        _print_error(f"{type(exc).__name__}: {exc}")
        return 2
    except ModuleNotFoundError as exc:
        from edgefuse.cli._common import EXTRAS, missing_extra_message

        top = (exc.name or "").split(".")[0]
        if top not in EXTRAS:  # not an optional package: a bug, with its traceback
            raise
        # a command's up-front check (require_extra) missed it: the same one line, not a traceback
        _print_error(f"BackendUnavailableError: {missing_extra_message(args.command, [top], EXTRAS[top][1])}")
        return 2
    except KeyboardInterrupt:  # pragma: no cover - interactive only
        print("interrupted", file=sys.stderr)
        return 130


def _print_error(message: str) -> None:
    """``error: MESSAGE`` on stderr, on one line (paths stay copyable; the terminal wraps)."""
    from rich.text import Text

    from edgefuse.cli._common import plain_console

    plain_console(stderr=True).print(Text.assemble(("error:", "bold red"), f" {message}"), soft_wrap=True)
