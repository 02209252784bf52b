"""What a newcomer reads: mistyped commands and options, install hints, tables in a pipe, error wording.

- a mistyped command, action, option or choice gets "did you mean", exit 2;
- square brackets survive rich (``pip install 'edgefuse[tensorrt]'``);
- tables written to a pipe are not cut (no "…"), not wider than PIPED_WIDTH, and no cell is a tall
  column of wrapped words; ``edgefuse train``'s headline is one line, not a wrapped table title;
- an SDK error speaks Python (``pass overwrite=True``), the CLI prints the flag (``pass --overwrite``);
- ``edgefuse run --wav`` on an artifact trained on synthetic audio says what is true and what to do.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import wave
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from edgefuse.cli import cli_wording, main
from edgefuse.cli._terminal import PIPED_WIDTH

SYN = ["--data", "synthetic"]
BOX = "│┃┏┡└┗╇━┳┻"


def _err(capsys: pytest.CaptureFixture[str]) -> str:
    """Captured stderr with rich's and argparse's line wrapping undone."""
    return " ".join(capsys.readouterr().err.split())


def _usage_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    return _err(capsys)


# ---- mistyped commands, actions, options and choices ----------------------------------------------------


def test_mistyped_command_says_did_you_mean_and_lists_the_commands(
    capsys: pytest.CaptureFixture[str],
) -> None:
    err = _usage_error(["exprot"], capsys)
    assert "edgefuse: error: unknown command 'exprot' (did you mean 'export'?)" in err
    assert "commands: demo, train, eval, robustness, wise-ft, export, verify, run, bench, profiles" in err
    assert "invalid choice" not in err


def test_unknown_command_without_a_close_match(capsys: pytest.CaptureFixture[str]) -> None:
    err = _usage_error(["frobnicate"], capsys)
    assert "unknown command 'frobnicate' commands:" in err
    assert "did you mean" not in err


def test_mistyped_profiles_action(capsys: pytest.CaptureFixture[str]) -> None:
    err = _usage_error(["profiles", "lst"], capsys)
    assert "edgefuse profiles: error: unknown action 'lst' (did you mean 'list'?)" in err
    assert "actions: list, show, validate, calibrate-host" in err


def test_mistyped_option_names_the_closest_option_of_that_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = _usage_error(["train", *SYN, "--epcohs", "3", "--out", str(tmp_path / "x")], capsys)
    assert "usage: edgefuse train" in err  # the command's usage, not the top level's
    assert "edgefuse train: error: unrecognized arguments: --epcohs 3 (did you mean '--epochs'?)" in err
    err = _usage_error(["profiles", "show", "generic/x86-64", "--pth", "p"], capsys)
    assert "edgefuse profiles show: error: unrecognized arguments: --pth p (did you mean '--path'?)" in err
    err = _usage_error(["train", "--out", str(tmp_path / "x"), "--zzzzzz=1"], capsys)
    assert "unrecognized arguments: --zzzzzz=1" in err
    assert "did you mean" not in err
    # the shared "--" is not similarity: robustness has no --out, and --quiet is not a near miss of it
    err = _usage_error(["robustness", "--out", str(tmp_path / "x")], capsys)
    assert "unrecognized arguments: --out" in err
    assert "did you mean" not in err


def test_mistyped_choice(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = _usage_error(["train", "--method", "supervisd", "--out", str(tmp_path / "x")], capsys)
    assert "argument --method: invalid choice: 'supervisd'" in err
    assert "(did you mean 'supervised'?)" in err


# ---- square brackets survive rich -------------------------------------------------------------------------


def test_missing_extra_keeps_its_brackets_through_the_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import edgefuse.cli._common as common

    monkeypatch.setattr(common, "module_available", lambda name: name != "torch")
    assert main(["train", *SYN, "--out", str(tmp_path / "x")]) == 2
    err = _err(capsys)
    assert "pip install 'edgefuse[train]'" in err
    assert not (tmp_path / "x").exists()


def test_error_printer_never_reads_markup(capsys: pytest.CaptureFixture[str]) -> None:
    from edgefuse.cli import _print_error

    _print_error("""pip install "edgefuse[tensorrt]" and [bold]not bold[/] and o[/]x""")
    err = capsys.readouterr().err
    assert """error: pip install "edgefuse[tensorrt]" and [bold]not bold[/] and o[/]x""" in err


def test_export_status_and_progress_text_keep_brackets(capsys: pytest.CaptureFixture[str]) -> None:
    from edgefuse.cli._common import progress_callback
    from edgefuse.cli.export import _plain_updates

    shown = []
    _plain_updates(SimpleNamespace(update=shown.append))("coreml: pip install 'edgefuse[coreml]'")
    assert shown[0].plain == "coreml: pip install 'edgefuse[coreml]'"
    with progress_callback("fit [tensorrt]") as update:
        update("train [x]", 1, 1)
    assert "fit [tensorrt]: train [x]" in capsys.readouterr().err


# ---- SDK wording vs CLI wording ---------------------------------------------------------------------------


def test_overwrite_hint_speaks_python_in_the_sdk(tmp_path: Path) -> None:
    from edgefuse.errors import CheckpointError
    from edgefuse.outputs import CHECKPOINT, check_output

    (tmp_path / "ck").mkdir()
    with pytest.raises(CheckpointError) as exc_info:
        check_output(tmp_path / "ck", CHECKPOINT, overwrite=False, error=CheckpointError)
    message = str(exc_info.value)
    assert "already exists; pass overwrite=True or choose another folder" in message
    assert "--overwrite" not in message


def test_overwrite_hint_speaks_flags_in_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("torch")
    (tmp_path / "ck").mkdir()
    assert main(["train", *SYN, "--out", str(tmp_path / "ck")]) == 2  # refused before any training
    err = _err(capsys)
    assert "already exists; pass --overwrite or choose another folder" in err
    assert "overwrite=True" not in err


def test_cli_wording_maps_each_keyword_hint_once() -> None:
    assert cli_wording("x exists; pass overwrite=True or choose another folder") == (
        "x exists; pass --overwrite or choose another folder"
    )
    assert cli_wording("export onnx, or pass any_format=True to write them anyway").endswith(
        "pass --any-format to write them anyway"
    )
    assert cli_wording("If you trust it, pass allow_import=True (or trust_code=True to load_checkpoint)") == (
        "If you trust it, pass --allow-import"
    )
    assert cli_wording("Load the checkpoint with trust_code=True and a recorded model factory") == (
        "Load the checkpoint with --allow-import and a recorded model factory"
    )
    quoted = "or pass import_factory('m:f', allow_import=True) (CLI --model-factory)"
    assert cli_wording(quoted) == quoted  # code quoted in a message is left alone


def test_sdk_messages_give_one_hint_not_two() -> None:
    from edgefuse.errors import EdgeFuseError
    from edgefuse.export.selection import plan_formats
    from edgefuse.factory import import_factory
    from edgefuse.profiles import get_profile

    with pytest.raises(EdgeFuseError) as exc_info:
        plan_formats(get_profile("google/pixel-8"), ["coreml"])
    assert "pass any_format=True" in str(exc_info.value)
    assert "--any-format" not in str(exc_info.value)
    with pytest.raises(EdgeFuseError) as exc_info:
        import_factory("json:loads")
    assert "pass allow_import=True (or trust_code=True to load_checkpoint)" in str(exc_info.value)
    assert "--allow-import" not in str(exc_info.value)


# ---- `edgefuse run --wav/--image` on an artifact that cannot take the file ---------------------------------


def _manifest(*mods: tuple[str, str]) -> SimpleNamespace:
    shapes = {"audio": [1, 32, 61], "image": [1, 8, 8], "imu": [1, 6, 32]}
    entries = [{"name": n, "preprocessing": p, "shape": shapes[n], "dtype": "float32"} for n, p in mods]
    return SimpleNamespace(data={"modalities": entries}, root="ART")


def test_modality_messages_say_what_the_artifact_was_trained_on() -> None:
    from edgefuse.cli.run import _modality
    from edgefuse.errors import ContractError

    synthetic = _manifest(
        ("audio", "synthetic-audio"), ("image", "synthetic-image"), ("imu", "synthetic-imu")
    )
    with pytest.raises(ContractError) as exc_info:
        _modality(synthetic, "image")
    message = str(exc_info.value)
    assert "--image: the artifact's 'image' modality was trained on 'synthetic-image' inputs" in message
    assert "(a model trained on --data synthetic)" in message
    assert "--npz inputs.npz" in message
    assert "image: float32 (1, 8, 8)" in message
    with pytest.raises(ContractError) as exc_info:
        _modality(synthetic, "audio")
    assert "--image alone" not in str(exc_info.value)  # its image modality cannot take a PNG either
    with pytest.raises(ContractError, match=r"has no audio modality .* its modalities are \['image'\]"):
        _modality(_manifest(("image", "digits8x8-v1")), "audio")
    assert _modality(_manifest(("image", "none")), "image")["name"] == "image"  # your own model's image
    assert _modality(_manifest(("audio", "logmel-v1")), "audio")["name"] == "audio"


@pytest.fixture(scope="module")
def synthetic_audio_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A split ONNX artifact whose audio modality is ``synthetic-logmel`` (as av-digits-synthetic-audio)."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from edgefuse.checkpoint import save_checkpoint
    from edgefuse.export import export
    from edgefuse.models.contract import build_model
    from edgefuse.models.reference import reference_architecture
    from edgefuse.specs import ModalitySpec

    specs = (
        ModalitySpec("audio", (1, 32, 61), "float32", "synthetic-logmel", {"noise": 5.0}),
        ModalitySpec("image", (1, 8, 8), "float32", "digits8x8-v1", {"scale": 1 / 16, "pca_components": 4}),
    )
    torch.manual_seed(0)
    model = build_model(reference_architecture(specs, 16), specs, [f"digit{i}" for i in range(10)])
    root = tmp_path_factory.mktemp("synthetic-audio")
    ckpt = save_checkpoint(model.eval(), root / "ckpt")
    export(ckpt, "generic/x86-64", "onnx", root / "art")
    return root / "art"


def _wav(path: Path) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(np.zeros(4000, "<i2").tobytes())
    return path


def test_run_wav_on_synthetic_audio_says_what_is_true(
    synthetic_audio_artifact: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", str(synthetic_audio_artifact), "--wav", str(_wav(tmp_path / "x.wav"))]) == 2
    err = _err(capsys)
    assert "'audio' modality was trained on 'synthetic-logmel' inputs" in err
    assert "(a model trained on --data av-digits-synthetic-audio)" in err
    assert "so a WAV cannot be turned into its input" in err
    assert "--npz inputs.npz" in err
    assert "audio: float32 (1, 32, 61), image: float32 (1, 8, 8)" in err
    assert "train on --data av-digits" in err
    assert "--image alone still feeds its 'image' modality" in err
    assert "has no audio modality" not in err


def test_missing_tensorrt_keeps_its_extra_through_the_cli(
    synthetic_audio_artifact: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:  # type: ignore[no-untyped-def]
    npz = tmp_path / "x.npz"
    np.savez(npz, image=np.zeros((1, 8, 8), np.float32))
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # "not installed", wherever it is
    assert main(["run", str(synthetic_audio_artifact), "--backend", "tensorrt", "--npz", str(npz)]) == 2
    err = _err(capsys)
    assert "edgefuse[tensorrt]" in err
    assert main(["run", str(synthetic_audio_artifact), "--npz", str(npz), "--json"]) == 0  # the advice works


# ---- tables in a pipe -------------------------------------------------------------------------------------


def _piped(argv: list[str], timeout: int = 600) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    return subprocess.run(
        [sys.executable, "-m", "edgefuse", *argv], capture_output=True, text=True, timeout=timeout, env=env
    )


def _check_table_text(out: str, max_lines_per_row: int = 4) -> None:
    """No cut cell, no line wider than PIPED_WIDTH, no row of a boxed table taller than a few lines."""
    assert "…" not in out
    assert max(len(line) for line in out.splitlines()) <= PIPED_WIDTH
    height = 0
    for line in out.splitlines():
        if not line.startswith("│"):
            height = 0
            continue
        first_cell = line.split("│")[1]
        height = 1 if first_cell.strip() else height + 1
        assert height <= max_lines_per_row, out


def test_export_table_in_a_pipe(synthetic_audio_artifact: Path, tmp_path: Path) -> None:
    """The Jetson profile exports TensorRT (unavailable without a GPU: a long reason) and ONNX."""
    ckpt = synthetic_audio_artifact.parent / "ckpt"
    out = tmp_path / "jetson"
    args = ["export", str(ckpt), "--profile", "nvidia/jetson-orin-nano", "--precision", "fp32"]
    result = _piped([*args, "--allow-unavailable", "--out", str(out)])
    assert result.returncode == 0, result.stderr[-3000:]
    assert any(c in result.stdout for c in BOX)
    _check_table_text(result.stdout)
    if importlib.util.find_spec("tensorrt") is None:
        assert "see note 1 below" in result.stdout
        assert "note 1 (tensorrt fp32): TensorRT is unavailable here" in result.stdout
        assert "edgefuse[tensorrt]" in result.stdout


def test_robustness_and_train_output_in_a_pipe(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    grid = [
        "robustness",
        *SYN,
        "--train-sets",
        "audio+image+imu",
        "--methods",
        "supervised",
        "--seeds",
        "1",
        "--epochs",
        "1",
        "--interventions",
        "none,moddrop",
        "--no-specialists",
    ]
    result = _piped(grid)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Interventions against their baseline" in result.stdout
    assert "docs/metrics.md" in result.stdout
    _check_table_text(result.stdout)
    lines = result.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if "Interventions against their baseline" in line)
    body = [line for line in lines[start + 1 :] if line.strip()]
    rows = [line for line in body if line.startswith(" supervised+moddrop ")]
    table = body[: body.index(next(line for line in body if line.startswith("Sweep:")))]
    assert rows
    assert len(table) <= 2 + 4 * len(rows)  # header, rule, and at most 4 lines per row

    result = _piped(["train", *SYN, "--epochs", "1", "--out", str(tmp_path / "ck")])
    assert result.returncode == 0, result.stderr[-3000:]
    headline = next(line for line in result.stdout.splitlines() if " trained on S=" in line)
    assert headline.startswith("supervised trained on S=audio+image+imu (seed 0) in ")
    assert " s; test accuracy with each set T of modalities present:" in headline
    _check_table_text(result.stdout)
