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

CLI conventions (every command; the helpers are in :mod:`edgefuse.cli._output`):

* ``--json [PATH|-]`` on every command that produces a result (train, eval, robustness, wise-ft, export,
  verify, run, bench, demo, profiles list/show/validate/calibrate-host): ``--json`` alone or ``--json -``
  prints the JSON document on stdout and nothing else there (tables and progress are skipped; warnings
  and errors stay on stderr); ``--json PATH`` writes the same document to PATH (replaced if it exists)
  and keeps the usual output. ``--json`` takes an optional value, so an existing folder after it (the
  command's artifact, say: ``edgefuse run --json ART``) is refused with exit 2: put the positional
  argument first (``edgefuse run ART --json``).
* ``--quiet`` / ``--verbose`` (mutually exclusive), before or after the command name (``edgefuse --quiet
  export ...`` = ``edgefuse export ... --quiet``). ``--quiet``: no progress, tables or notes; warnings
  and errors still print on stderr, the ``--json`` document is still written, exit codes are unchanged.
  ``--verbose``: converter and library output on the terminal instead of the log, and EdgeFuse's INFO
  log lines.
* Converter and library output (TensorFlow/LiteRT C++ lines, absl, coremltools, torchao...) goes to a log
  file: ``--log PATH``, default ``$EDGEFUSE_CACHE_DIR/logs/COMMAND.log`` (``~/.cache/edgefuse/logs``;
  ``edgefuse demo``: ``OUT/demo.log``), replaced on each run, whose path is printed on stderr
  (``converter output: PATH``) when something was written there. EdgeFuse's own ``warning:`` and
  ``error:`` lines always reach the terminal.
* A model that did not learn (accuracy within 5 points of the chance level, :mod:`edgefuse.chance`) is a
  ``warning:`` line on stderr (train, eval, robustness, wise-ft), also with ``--quiet``; their JSON has
  ``chance`` (and ``learned`` for train and wise-ft, ``not_learned`` for robustness).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Any

# Subcommand name -> module under edgefuse.cli. Adding a subcommand = adding a module and a line here.
# `edgefuse --help` lists them in this order: the tour, then a model's life (train, measure, make it
# robust, export for a device, check and use it there), then the device profiles.
SUBCOMMANDS: dict[str, str] = {
    "demo": "edgefuse.cli.demo",
    "train": "edgefuse.cli.train",
    "eval": "edgefuse.cli.evaluate",
    "robustness": "edgefuse.cli.robustness",
    "wise-ft": "edgefuse.cli.wiseft",
    "export": "edgefuse.cli.export",
    "verify": "edgefuse.cli.verify",
    "run": "edgefuse.cli.run",
    "bench": "edgefuse.cli.bench",
    "profiles": "edgefuse.cli.profiles",
}

#: Python keyword hints in error messages -> the same hint on the command line. An EdgeFuseError speaks
#: Python ("pass overwrite=True", for SDK callers); :func:`main` prints it with the flag ("pass
#: --overwrite"). Whole phrases, so that code quoted in a message is left alone; longest first. Add a
#: pair when a message gives another keyword hint that a flag of the CLI sets.
CLI_HINTS: tuple[tuple[str, str], ...] = (
    ("pass allow_import=True (or trust_code=True to load_checkpoint)", "pass --allow-import"),
    ("pass overwrite=True", "pass --overwrite"),
    ("pass any_format=True", "pass --any-format"),
    ("pass allow_import=True", "pass --allow-import"),
    ("with trust_code=True", "with --allow-import"),
)


def cli_wording(message: str) -> str:
    """``message`` with each Python keyword hint of :data:`CLI_HINTS` replaced by its command-line flag."""
    for python, flag in CLI_HINTS:
        message = message.replace(python, flag)
    return message


class _Parser(argparse.ArgumentParser):
    """Every ``edgefuse`` parser: one help formatter, "did you mean" for commands, choices and options."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        from edgefuse.cli._help import HelpFormatter

        kwargs["formatter_class"] = HelpFormatter
        super().__init__(*args, **kwargs)

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        from edgefuse.errors import did_you_mean

        choices = action.choices
        if choices is None or value in choices:
            return
        names = [str(c) for c in choices]
        if isinstance(action, argparse._SubParsersAction):
            what = str(action.metavar or "command").lower()
            raise argparse.ArgumentError(
                None,
                f"unknown {what} {value!r}{did_you_mean(str(value), names)}\n"
                f"{what}s: {', '.join(names)} ('{self.prog} --help' says what each does)",
            )
        try:
            super()._check_value(action, value)
        except argparse.ArgumentError as exc:
            raise argparse.ArgumentError(action, f"{exc.message}{did_you_mean(str(value), names)}") from None

    def parse_args(self, args: Any = None, namespace: Any = None) -> Any:  # type: ignore[override]
        from edgefuse.errors import closest_match

        ns, extras = self.parse_known_args(args, namespace)
        if extras:
            parser = self._innermost(ns)  # "edgefuse train: error: ...", with train's usage
            options = [s for a in parser._actions for s in a.option_strings if s.startswith("--")]
            first = next((e.split("=", 1)[0] for e in extras if e.startswith("-")), None)
            # compared without the dashes: "--out" is not close to "--quiet" just because both start "--"
            near = closest_match(first.lstrip("-"), [o[2:] for o in options]) if first else None
            hint = f" (did you mean '--{near}'?)" if near else ""
            parser.error(f"unrecognized arguments: {' '.join(extras)}{hint}")
        return ns

    def _innermost(self, ns: argparse.Namespace) -> argparse.ArgumentParser:
        """The (sub)parser of the (sub)command ``ns`` names: ``edgefuse profiles show`` -> show's parser."""
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                chosen = action.choices.get(getattr(ns, action.dest, None) or "")
                if isinstance(chosen, _Parser):
                    return chosen._innermost(ns)
        return self


_EPILOG = """examples:
  # the whole story on AV-digits in one command: train, robustness, export, parity, benchmark, report
  edgefuse demo
  # the quickstart: train (synthetic audio, no download), export for this host, check the artifact here
  edgefuse train --data av-digits-synthetic-audio --degrade-image 4 --out out/quickstart/cli-ckpt --overwrite
  edgefuse export out/quickstart/cli-ckpt --profile generic/x86-64 --format onnx --out out/quickstart/cli-x86 --overwrite
  edgefuse verify out/quickstart/cli-x86

'edgefuse COMMAND --help' shows a command's options, defaults and examples. The metrics (retention, \
drop, gap to specialist, added gain, improvement factor, noise floor, chance level) are defined in \
docs/metrics.md."""


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every subcommand registered.

    Returns:
        The configured :class:`argparse.ArgumentParser`.
    """
    from edgefuse import __version__
    from edgefuse.cli._output import add_output_args

    parser = _Parser(
        prog="edgefuse",
        description=(
            "EdgeFuse: measure, export, run and benchmark multimodal models on devices whose sensors "
            "differ from the ones the model was trained with."
        ),
        epilog=_EPILOG,
    )
    parser.add_argument("--version", action="version", version=f"edgefuse {__version__}")
    add_output_args(parser, top_level=True)  # also accepted after the command name
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
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
    if getattr(args, "quiet", False) and getattr(args, "verbose", False):  # one before the command name
        parser.error("argument --verbose: not allowed with argument --quiet")
    if getattr(args, "_module", None) is None:
        parser.print_help()
        return 2
    module = importlib.import_module(args._module)
    handler = getattr(args, "_handler", None) or module.run
    from edgefuse.cli._output import command_output

    try:
        # the converter log (if the command has one) is closed, and stderr restored, before an error prints
        with command_output(args):
            return int(handler(args) or 0)
    except EdgeFuseError as exc:
        _print_error(cli_wording(f"{type(exc).__name__}: {exc}"))
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

    from edgefuse.cli._terminal import plain_console

    plain_console(stderr=True).print(Text.assemble(("error:", "bold red"), f" {message}"), soft_wrap=True)
