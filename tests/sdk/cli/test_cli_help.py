"""``edgefuse ... --help``: plain text, every default shown once, real examples, a sensible command list.

The conventions (README, "Command-line help"): no reST markup in what a terminal shows; "(default: X)"
after every option whose default is not None/False/empty, unless its help already says "default"; an
"examples:" epilog of 2-4 command lines that run as written from the repository root.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shlex
import subprocess
import sys

import pytest
from edgefuse.cli import SUBCOMMANDS, build_parser, main
from edgefuse.cli._help import HelpFormatter, _shows_default, strip_markup

#: The flags every training example uses, so that it needs no download.
NO_DOWNLOAD = "--data av-digits-synthetic-audio --degrade-image 4"
QUICKSTART = "edgefuse train --data av-digits-synthetic-audio --degrade-image 4 --out out/quickstart/cli-ckpt --overwrite"


def _parsers() -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every parser with the command words that reach it: (), ("train",), ("profiles", "list")..."""
    found = []

    def walk(parser: argparse.ArgumentParser, path: tuple[str, ...]) -> None:
        found.append((path, parser))
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, (*path, name))

    walk(build_parser(), ())
    return found


PARSERS = _parsers()
COMMANDS = [path for path, _ in PARSERS]


def _help(path: tuple[str, ...]) -> str:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), pytest.raises(SystemExit) as exit_info:
        main([*path, "--help"])
    assert exit_info.value.code == 0
    return buf.getvalue()


def test_every_subcommand_is_walked() -> None:
    assert {p[0] for p in COMMANDS if p} == set(SUBCOMMANDS)
    assert {p for p in COMMANDS if len(p) == 2} == {
        ("profiles", "list"),
        ("profiles", "show"),
        ("profiles", "validate"),
        ("profiles", "calibrate-host"),
    }


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "edgefuse")
def test_help_is_plain_text_with_examples(path: tuple[str, ...]) -> None:
    text = _help(path)
    assert "examples:" in text
    assert "``" not in text
    assert not re.search(r":(func|class|mod|data|meth|attr):", text)
    assert "ROBUSTNESS.md" not in text  # not in the repository: the metrics are in docs/metrics.md
    example_lines = [line.strip() for line in text.split("examples:", 1)[1].splitlines()]
    commands = [line for line in example_lines if line.startswith("edgefuse ")]
    assert 1 <= len(commands) <= 4, commands


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "edgefuse")
def test_every_default_is_shown_once(path: tuple[str, ...]) -> None:
    parser = dict(PARSERS)[path]
    text = " ".join(_help(path).split())
    formatter = HelpFormatter(parser.prog)
    for action in parser._actions:
        if not _shows_default(action):
            continue
        shown = formatter._expand_help(action)
        assert "default" in shown.lower(), (action.option_strings, shown)
        assert shown.count("(default:") <= 1, shown
        if isinstance(action.default, int | float | str):
            values = {str(action.default)} | (
                {f"{action.default:g}"} if isinstance(action.default, float) else set()
            )
            assert any(v in shown for v in values), (action.option_strings, shown)
        assert " ".join(shown.split()) in text


def test_options_without_a_default_say_nothing_about_one() -> None:
    parser = dict(PARSERS)[("train",)]
    formatter = HelpFormatter(parser.prog)
    out = next(a for a in parser._actions if "--out" in a.option_strings)
    overwrite = next(a for a in parser._actions if "--overwrite" in a.option_strings)
    assert "(default:" not in formatter._expand_help(out)  # required
    assert "(default:" not in formatter._expand_help(overwrite)  # a flag, False


def test_examples_parse_and_train_without_a_download() -> None:
    """Every example line is a valid command line; training examples need no FSDD download."""
    seen = 0
    for _, parser in PARSERS:
        for raw in (parser.epilog or "").splitlines():
            line = raw.strip()
            if not line.startswith("edgefuse "):
                continue
            seen += 1
            argv = shlex.split(line)[1:]
            try:
                build_parser().parse_args(argv)
            except SystemExit as exc:  # pragma: no cover - the message is in the captured stderr
                pytest.fail(f"example does not parse ({exc.code}): {line}")
            if argv[0] in ("train", "robustness", "wise-ft", "eval") and "--data" in argv:
                assert NO_DOWNLOAD in line, line
    assert seen >= 2 * len(COMMANDS)


def test_quickstart_command_is_the_train_example() -> None:
    assert QUICKSTART in (dict(PARSERS)[("train",)].epilog or "")
    assert "edgefuse train --data av-digits-synthetic-audio" in dict(PARSERS)[()].epilog


def test_top_level_help_lists_commands_in_workflow_order_and_points_to_the_metrics() -> None:
    text = _help(())
    listed = [
        m.group(1)
        for m in re.finditer(r"^    (\S+)", text.split("commands:", 1)[1], re.MULTILINE)
        if m.group(1) in SUBCOMMANDS
    ]
    assert listed == list(SUBCOMMANDS)
    assert listed.index("train") < listed.index("export") < listed.index("verify") < listed.index("run")
    assert listed[0] == "demo"
    assert "docs/metrics.md" in " ".join(text.split())
    assert "'edgefuse COMMAND --help'" in text


def test_robustness_help_cites_docs_metrics_for_every_metric() -> None:
    text = " ".join(_help(("robustness",)).split())
    assert "docs/metrics.md" in text
    for metric in (
        "retention",
        "drop",
        "gap to specialist",
        "added gain",
        "improvement factor",
        "noise floor",
        "chance level",
    ):
        assert metric in text, metric


def test_epilog_keeps_line_breaks_and_option_help_wraps() -> None:
    text = _help(("train",))
    assert f"\n  {QUICKSTART}\n" in text  # one line, however wide: copyable
    assert "--model-\n" not in text  # never split at a hyphen
    assert "av-digits-\n" not in text
    assert max(len(line) for line in text.split("examples:")[0].splitlines()) <= 100


def test_train_help_states_the_recipe_defaults() -> None:
    """--epochs/--pretrain-epochs/--lr default to None (the recipe's); the help names the recipe's values."""
    pytest.importorskip("torch")
    from edgefuse.train import TrainConfig

    text = " ".join(_help(("train",)).split())
    cfg = TrainConfig(modalities=("audio",))
    assert f"epochs, 1..10000 (default: {cfg.epochs})" in text
    assert f"pre-training epochs, 0..10000 (default: {cfg.pretrain_epochs})" in text
    assert f"(default: {cfg.lr:g})" in text


def test_strip_markup() -> None:
    assert strip_markup("``edgefuse train``: see :func:`~edgefuse.errors.did_you_mean`") == (
        "edgefuse train: see did_you_mean"
    )
    assert strip_markup(":mod:`edgefuse.trust` and :py:class:`the model <edgefuse.MultimodalModel>`") == (
        "edgefuse.trust and the model"
    )
    assert strip_markup("pip install 'edgefuse[tensorrt]'") == "pip install 'edgefuse[tensorrt]'"


def test_help_of_every_command_is_light() -> None:
    """No ``--help`` imports torch, onnx, a runtime or rich (``edgefuse --help`` stays fast)."""
    code = (
        "import sys, contextlib, io\n"
        "from edgefuse.cli import SUBCOMMANDS, main\n"
        "for command in [[], *([c] for c in SUBCOMMANDS), ['profiles', 'show']]:\n"
        "    with contextlib.redirect_stdout(io.StringIO()):\n"
        "        try:\n"
        "            main([*command, '--help'])\n"
        "        except SystemExit as e:\n"
        "            assert e.code == 0, (command, e.code)\n"
        "heavy = {'torch', 'onnx', 'onnxruntime', 'ai_edge_litert', 'rich'}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
