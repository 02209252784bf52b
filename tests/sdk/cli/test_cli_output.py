"""The one CLI convention: ``--json [PATH|-]``, ``--quiet``/``--verbose``, the converter log, chance warnings.

One checkpoint trained at chance (1 epoch with modality dropout on the synthetic-audio AV-digits), one that
learned (the default 20 epochs) and one ONNX artifact exported in a subprocess are shared by the tests.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from edgefuse.cli import main

#: Lands at chance with one epoch (val accuracy 0.100 vs chance 0.103), learns with the default 20.
DATA = ["--data", "av-digits-synthetic-audio", "--degrade-image", "4"]
CHANCE = [*DATA, "--intervention", "moddrop"]
#: What converters and their libraries print on file descriptor 2 when they are let.
CHATTER = re.compile(
    r"^(WARNING:absl|WARNING: All log messages|I0000|W0000|INFO: Created TensorFlow)|oneDNN", re.M
)


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every in-process command writes its converter log under this test's own cache folder."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("EDGEFUSE_CACHE_DIR", str(cache))
    return cache


def _cli(*args: str, cache: Path, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    """``python -m edgefuse ARGS`` in a subprocess with its own cache folder."""
    env = {**os.environ, "EDGEFUSE_CACHE_DIR": str(cache)}
    return subprocess.run(
        [sys.executable, "-m", "edgefuse", *args], capture_output=True, text=True, timeout=timeout, env=env
    )


def _main_captured(argv: list[str]) -> SimpleNamespace:
    """``main(argv)`` in-process with stdout and stderr captured (for module-scoped fixtures)."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(argv)
    return SimpleNamespace(code=code, out=out.getvalue(), err=" ".join(err.getvalue().split()))


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """Two checkpoints of the same data: ``chance`` (1 epoch, did not learn) and ``learned`` (20 epochs).

    ``chance`` is trained with ``--json PATH`` (human output kept), ``learned`` with ``--json - --quiet``.
    """
    root = tmp_path_factory.mktemp("trained")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EDGEFUSE_CACHE_DIR", str(root / "cache"))
        chance = _main_captured(
            ["train", *CHANCE, "--epochs", "1", "--out", str(root / "chance"), "--json", str(root / "c.json")]
        )
        learned = _main_captured(["train", *CHANCE, "--out", str(root / "learned"), "--json", "-", "--quiet"])
    return SimpleNamespace(root=root, chance=chance, learned=learned)


@pytest.fixture(scope="module")
def exported(trained: SimpleNamespace) -> SimpleNamespace:
    """``edgefuse export CKPT --format onnx --json -`` in a subprocess: the artifact and what was printed."""
    cache = trained.root / "export-cache"
    art = trained.root / "art"
    proc = _cli(
        "export", str(trained.root / "chance"), "--profile", "generic/x86-64", "--format", "onnx",
        "--out", str(art), "--json", "-", cache=cache,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    npz = trained.root / "image.npz"
    np.savez(npz, image=np.zeros((1, 8, 8), np.float32))
    return SimpleNamespace(art=art, proc=proc, log=cache / "logs" / "export.log", npz=npz)


# --- chance level ---------------------------------------------------------------------------------------


def test_train_at_chance_warns_and_its_json_says_not_learned(trained: SimpleNamespace) -> None:
    run = trained.chance
    assert run.code == 0
    assert "warning: supervised+moddrop S=audio+image (seed 0) did not learn: validation accuracy" in run.err
    summary = json.loads((trained.root / "c.json").read_text())
    assert summary["learned"] is False
    assert summary["chance"] == pytest.approx(summary["metrics"]["chance"])
    assert summary["metrics"]["val_accuracy"] <= summary["chance"] + 0.05
    # --json PATH keeps the human output, which names the chance level
    assert "validation accuracy on S" in run.out
    assert f"(chance {summary['chance']:.3f})" in run.out
    assert f"wrote {trained.root / 'c.json'}" in run.out


def test_train_that_learned_does_not_warn(trained: SimpleNamespace) -> None:
    run = trained.learned
    assert run.code == 0
    summary = json.loads(run.out)  # --json - --quiet: the JSON and nothing else on stdout
    assert summary["learned"] is True
    assert summary["metrics"]["val_accuracy"] > summary["chance"] + 0.05
    assert "warning:" not in run.err


def test_eval_reports_the_chance_level_and_warns_near_it(
    trained: SimpleNamespace, exported: SimpleNamespace, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["eval", str(exported.art), *DATA, "--json", "-"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert 0 < report["chance"] < 0.2
    assert report["accuracy"]["audio+image"] <= report["chance"] + 0.05
    err = " ".join(captured.err.split())
    assert f"warning: {exported.art} did not learn: test-split accuracy" in err
    assert "check --data, --degrade-image, --data-seed" in err

    assert main(["eval", str(trained.root / "learned"), *DATA, "--quiet", "--json", "-"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["accuracy"]["audio+image"] > 0.5
    assert "warning:" not in captured.err


def test_wise_ft_json_has_the_chance_level(trained: SimpleNamespace, tmp_path: Path, capsys: Any) -> None:
    theta0, theta1 = trained.root / "chance", trained.root / "learned"
    args = ["wise-ft", "--theta0", str(theta0), "--theta1", str(theta1), "--alphas", "0,1", *DATA]
    assert main([*args, "--out", str(tmp_path / "w"), "--json"]) == 0
    captured = capsys.readouterr()
    sweep = json.loads(captured.out)
    assert [r["alpha"] for r in sweep["rows"]] == [0.0, 1.0]
    assert sweep["chosen_alpha"] == 1.0  # the model that learned
    assert sweep["learned"] is True
    assert 0 < sweep["chance"] < 0.2
    assert sweep["checkpoint"] == str(tmp_path / "w")
    assert json.loads(Path(sweep["written"]["json"]).read_text())["rows"] == sweep["rows"]
    assert "warning:" not in captured.err


def test_robustness_json_and_a_warning_per_row_that_did_not_learn(capsys: pytest.CaptureFixture[str]) -> None:
    grid = ["robustness", *DATA, "--train-sets", "audio+image", "--methods", "supervised", "--seeds", "1"]
    assert (
        main([*grid, "--interventions", "moddrop", "--epochs", "1", "--no-specialists", "--json", "-"]) == 0
    )
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    assert 0 < data["chance"] < 0.2
    assert [(r["method"], r["train"]) for r in data["not_learned"]] == [("supervised+moddrop", "audio+image")]
    err = " ".join(captured.err.split())
    assert "warning: supervised+moddrop S=audio+image did not learn: test accuracy" in err
    assert err.count("did not learn") == 1


# --- --json [PATH|-] ------------------------------------------------------------------------------------


def test_export_json_on_stdout_and_converter_output_in_the_log(exported: SimpleNamespace) -> None:
    report = json.loads(exported.proc.stdout)  # the JSON and nothing else on stdout
    assert report["profile"] == "generic/x86-64"
    assert [(r["format"], r["status"]) for r in report["results"]] == [("onnx", "ok")]
    assert not CHATTER.search(exported.proc.stderr), exported.proc.stderr
    assert exported.log.is_file()  # this run's converter log, in $EDGEFUSE_CACHE_DIR/logs


def test_json_on_stdout_parses_for_every_command(
    exported: SimpleNamespace, capsys: pytest.CaptureFixture[str]
) -> None:
    art, npz = str(exported.art), str(exported.npz)
    commands = {
        "run": ["run", art, "--npz", npz, "--json", "-"],
        "verify": ["verify", art, "--json"],
        "bench": [
            "bench",
            art,
            "--iters",
            "2",
            "--warmup",
            "0",
            "--no-rss",
            "--patterns",
            "all",
            "--json",
            "-",
        ],
        "profiles list": ["profiles", "list", "--json"],
        "profiles show": ["profiles", "show", "generic/x86-64", "--json", "-"],
        "profiles validate": ["profiles", "validate", "device_profiles/generic/x86-64.toml", "--json"],
    }
    keys = {
        "run": "label",
        "verify": "checks",
        "bench": "results",
        "profiles show": "id",
    }
    for name, argv in commands.items():
        assert main(argv) == 0, name
        document = json.loads(capsys.readouterr().out)
        if name in keys:
            assert keys[name] in document, name
        else:
            assert isinstance(document, list), name
            assert document, name


def test_json_path_writes_the_same_document_and_keeps_the_table(
    exported: SimpleNamespace, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["run", str(exported.art), "--npz", str(exported.npz)]
    assert main([*args, "--json", "-"]) == 0
    stdout = capsys.readouterr().out
    path = tmp_path / "sub" / "prediction.json"
    assert main([*args, "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert path.read_text() == stdout  # the same text, byte for byte
    assert "rank" in out
    assert "probability" in out
    assert f"wrote {path}" in " ".join(out.split())
    # replaced on a second run, as bench, eval and robustness always did
    assert main([*args, "--json", str(path), "--quiet"]) == 0
    assert capsys.readouterr().out == ""
    assert path.read_text() == stdout


def test_json_refuses_a_folder_it_would_swallow(
    exported: SimpleNamespace, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for argv in (
        ["run", "--json", str(exported.art), "--npz", str(exported.npz)],
        ["verify", "--json", str(exported.art)],
        ["bench", str(exported.art), "--json", str(tmp_path)],
        ["profiles", "validate", "--json", "device_profiles"],
    ):
        with pytest.raises(SystemExit) as refused:
            main(argv)
        assert refused.value.code == 2, argv
        err = " ".join(capsys.readouterr().err.split())
        assert "argument --json:" in err, argv
        assert "is a folder" in err, argv
        assert "put it before --json" in err, argv
    # a file inside the artifact: refused before anything runs
    assert (
        main(["run", str(exported.art), "--npz", str(exported.npz), "--json", str(exported.art / "p.json")])
        == 2
    )
    assert "is inside the artifact folder" in capsys.readouterr().err
    assert not (exported.art / "p.json").exists()


# --- --quiet / --verbose --------------------------------------------------------------------------------


def test_quiet_prints_nothing_on_stdout(
    exported: SimpleNamespace, capsys: pytest.CaptureFixture[str]
) -> None:
    for argv in (
        ["run", str(exported.art), "--npz", str(exported.npz), "--quiet"],
        ["--quiet", "run", str(exported.art), "--npz", str(exported.npz)],
        ["verify", str(exported.art), "--quiet"],
        ["--quiet", "profiles", "list"],
        ["profiles", "list", "--quiet"],
        ["profiles", "--quiet", "show", "generic/x86-64"],
    ):
        assert main(argv) == 0, argv
        captured = capsys.readouterr()
        assert captured.out == "", argv
        assert "converter output" not in captured.err, argv
    # the result still goes to --json
    assert main(["--quiet", "profiles", "show", "generic/x86-64", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["id"] == "generic/x86-64"


def test_quiet_still_reports_failures(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('id = "x/y"\n')
    assert main(["profiles", "validate", str(bad), "--quiet"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"error: invalid profile {bad}" in " ".join(captured.err.split())


def test_quiet_and_verbose_exclude_each_other(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["profiles", "list", "--quiet", "--verbose"], ["--quiet", "profiles", "list", "--verbose"]):
        with pytest.raises(SystemExit) as refused:
            main(argv)
        assert refused.value.code == 2
        assert "not allowed with argument --quiet" in capsys.readouterr().err


def test_export_error_reaches_the_terminal_not_the_log(trained: SimpleNamespace, tmp_path: Path) -> None:
    proc = _cli(
        "export", str(trained.root / "chance"), "--profile", "generic/no-such-device", "--format", "onnx",
        "--out", str(tmp_path / "art"), cache=tmp_path / "cache",
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "error: ProfileError: unknown device profile id 'generic/no-such-device'" in proc.stderr
    log = tmp_path / "cache" / "logs" / "export.log"
    assert log.is_file()
    assert "error:" not in log.read_text()


def test_verbose_writes_no_log_and_log_picks_the_file(exported: SimpleNamespace, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    proc = _cli("verify", str(exported.art), "--verbose", cache=cache)
    assert proc.returncode == 0, proc.stderr
    assert not (cache / "logs").exists()
    log = tmp_path / "logs" / "mine.log"
    proc = _cli("verify", str(exported.art), "--log", str(log), "--quiet", cache=cache)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    assert log.is_file()
    assert not (cache / "logs").exists()


#: A command's block as main() runs it: C++ and library chatter, and EdgeFuse's own warnings and output.
_CHATTY = """
import argparse, logging, os, sys, warnings
from edgefuse.chance import NearChanceWarning
from edgefuse.cli._output import command_output, emit_json
from edgefuse.cli._terminal import plain_console

args = argparse.Namespace(quiet=False, verbose={verbose}, log={log!r}, json={json!r},
                          _converter_log="export", _python_stderr="log")
with command_output(args):
    os.write(2, b"I0000 00:00:1.0 1 converter.cc:1] C++ chatter\\n")
    os.write(1, b"C++ chatter on stdout\\n")
    print("python chatter on stderr", file=sys.stderr, flush=True)
    logging.getLogger("absl").warning("absl chatter")
    warnings.warn("a library's own UserWarning")
    warnings.warn(NearChanceWarning("the model did not learn"))
    logging.getLogger("edgefuse.data").warning("feature cache unreadable")
    plain_console(stderr=True).print("edgefuse progress line")
    emit_json(args, {{"ok": True}})
"""


@pytest.mark.parametrize("verbose", [False, True], ids=["default", "verbose"])
def test_converter_output_goes_to_the_log_and_edgefuse_output_to_the_terminal(
    verbose: bool, tmp_path: Path
) -> None:
    log = tmp_path / "export.log"
    code = _CHATTY.format(verbose=verbose, log=str(log), json="-")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"ok": True}  # --json -: nothing else on stdout, even from C++
    err = proc.stderr
    for mine in (
        "warning: NearChanceWarning: the model did not learn",
        "warning: feature cache unreadable",
        "edgefuse progress line",
    ):
        assert mine in err
    chatter = ("C++ chatter", "C++ chatter on stdout", "python chatter", "absl chatter", "own UserWarning")
    if verbose:  # on the terminal, and no log
        assert all(c in err for c in chatter), err
        assert not log.exists()
    else:
        assert not any(c in err for c in chatter), err
        text = log.read_text()
        assert all(c in text for c in chatter), text
        assert "did not learn" not in text
        assert "feature cache" not in text
        assert f"converter output: {log}" in " ".join(err.split())
