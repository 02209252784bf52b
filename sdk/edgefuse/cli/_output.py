"""Output conventions shared by every command (described in :mod:`edgefuse.cli`).

* ``--json [PATH|-]``: the result as one JSON document: ``-`` (or no value) on stdout and nothing else
  there; PATH written to a file, the human output kept (:func:`add_json_arg`, :func:`json_stdout`,
  :func:`json_target`, :func:`emit_json`).
* ``--quiet`` / ``--verbose``: no progress, tables or notes / converter output and EdgeFuse's INFO log on
  the terminal (:func:`add_output_args`, :func:`human_console`, :func:`show_progress`, :func:`warn`).
* ``--log PATH``: where converter and library output goes (default
  ``$EDGEFUSE_CACHE_DIR/logs/CMD.log``): :func:`converter_log`, run by :func:`command_output`.

Heavy modules (rich) are imported inside the functions: building a parser imports nothing heavy.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from edgefuse.cli._common import check_out_path
from edgefuse.cli._terminal import TERMINAL_STDERR, TERMINAL_STDOUT, _redirect_fd, plain_console

__all__ = [
    "LIBRARY_LOGGERS",
    "add_json_arg",
    "add_output_args",
    "command_output",
    "converter_log",
    "emit_json",
    "error_line",
    "human_console",
    "is_quiet",
    "is_verbose",
    "json_arg",
    "json_stdout",
    "json_target",
    "json_text",
    "log_path",
    "show_progress",
    "warn",
]

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
    keeps the terminal: consoles from :func:`~edgefuse.cli._terminal.plain_console` (``stderr=True``),
    :func:`warn`, EdgeFuse's warnings and log records, and the ``--json -`` document (:func:`emit_json`).
    With ``--json -``, file descriptor 1 points at the log as well, so that nothing but the JSON reaches
    stdout.

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
