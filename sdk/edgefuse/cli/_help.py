"""Help output of every ``edgefuse`` parser: the formatter, reST markup stripping and ``examples:`` epilogs.

Conventions (a test checks every parser): plain text (no reST ``markup`` or :func: roles), "(default: X)"
after every option whose default is not None/False/empty unless its help already says "default", and an
"examples:" epilog of real command lines (:func:`examples`). :class:`HelpFormatter` is set on every parser
by :func:`edgefuse.cli.build_parser`. Imports nothing heavy: ``edgefuse --help`` never imports torch or rich.
"""

from __future__ import annotations

import argparse
import re
import textwrap

__all__ = ["HelpFormatter", "examples", "strip_markup"]

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
