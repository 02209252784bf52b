"""CLI: ``edgefuse robustness --corruptions ... --severities ...``, the degraded-sensor axis of the grid."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")

from edgefuse.cli import main

GRID = [
    "robustness",
    "--data",
    "synthetic",
    "--train-sets",
    "audio+image+imu",
    "--methods",
    "supervised",
    "--seeds",
    "1",
    "--epochs",
    "1",
    "--no-specialists",
]


def test_corruption_flags_end_to_end(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("matplotlib")
    report = tmp_path / "report"
    args = ["--corruptions", "audio:noise,image:blur", "--severities", "3,1", "--corruption-seed", "2"]
    code = main([*GRID, *args, "--json", str(tmp_path / "g.json"), "--report", str(report)])
    assert code == 0
    out = capsys.readouterr().out
    assert "Fusion regret (T = S" in out
    data = json.loads((tmp_path / "g.json").read_text())
    corruption = data["corruption"]
    assert corruption["settings"] == {
        "corruptions": ["audio:noise", "image:blur"],
        "severities": [1, 3],
        "seed": 2,
        "split": "test",
    }
    # 2 corruptions x 2 severities x the 4 test sets that contain the corrupted modality
    assert len(corruption["summary"]) == 16
    assert {r["seed"] for r in corruption["records"]} == {2}
    assert (report / "corruption.png").stat().st_size > 1000
    assert "Degraded sensors: corruption retention and fusion regret" in (report / "grid.md").read_text()
    assert json.loads((report / "grid.json").read_text())["corruption"]["summary"] == corruption["summary"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--corruptions", "audio:noise", "--severities", "1,7"], "argument --severities: severity=7"),
        (["--corruptions", "image"], "argument --corruptions: corruption 'image' is not modality:kind"),
        (["--corruptions", "image:blurr"], "did you mean 'blur'"),
    ],
)
def test_bad_corruption_flags_are_refused_while_parsing(args, message, capsys) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit) as exit_info:
        main([*GRID, *args])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--corruptions", "gps:zeros"], "DataError: unknown modality 'gps' in corruption gps:zeros"),
        (["--severities", "1,3"], "--severities are the levels of --corruptions"),
        (["--corruptions", "audio:eq"], "DataError:"),
    ],
)
def test_corruptions_the_data_cannot_take_exit_2_in_one_line(args, message, capsys, tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert main([*GRID, *args, "--json", str(tmp_path / "g.json")]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "g.json").exists()  # refused before anything was trained or written
