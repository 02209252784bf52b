"""The terminal's stderr and stdout, reachable while converter output is redirected to a log.

:func:`edgefuse.cli._output.converter_log` points file descriptors 2 (and, with ``--json -``, 1) at the
converter log; :data:`TERMINAL_STDERR` and :data:`TERMINAL_STDOUT` keep reaching the terminal meanwhile
(:func:`_redirect_fd` does the redirection), and :func:`plain_console` builds the rich consoles that write
EdgeFuse's own output there. rich is imported only when a console is built.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

__all__ = ["PIPED_WIDTH", "TERMINAL_STDERR", "TERMINAL_STDOUT", "plain_console"]

#: File descriptor -> the stream that reaches the terminal while
#: :func:`~edgefuse.cli._output.converter_log` redirects it.
_TERMINAL: dict[int, Any] = {}


class _TerminalStream:
    """A text stream that reaches the terminal's stderr (fd 2) or stdout (fd 1), redirected or not.

    While :func:`~edgefuse.cli._output.converter_log` points the descriptor at the log, writes go to a
    duplicate of the original descriptor; otherwise to ``sys.stderr`` / ``sys.stdout`` as they are at the
    time of the write (so a test's captured streams see them). Consoles and handlers may keep it for as long
    as they like.
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


#: The terminal's stderr and stdout, whatever :func:`~edgefuse.cli._output.converter_log` redirects
#: (see :class:`_TerminalStream`).
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
