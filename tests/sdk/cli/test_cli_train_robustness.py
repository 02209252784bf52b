"""CLI: train -> checkpoint, wise-ft between two checkpoints, the robustness grid with its reports."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")

from edgefuse.checkpoint import load_checkpoint
from edgefuse.cli import main

SYN = ["--data", "synthetic"]


def test_train_writes_a_checkpoint_and_refuses_to_overwrite(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "ck"
    args = ["train", *SYN, "--modalities", "audio,image", "--epochs", "1", "--seed", "2", "--out", str(out)]
    assert main([*args, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["recipe"]["modalities"] == ["audio", "image"]
    assert set(summary["metrics"]["test_accuracy"]) == {
        "audio+image+imu",
        "audio+image",
        "audio+imu",
        "image+imu",
        "audio",
        "image",
        "imu",
    }
    ckpt = load_checkpoint(out)
    assert ckpt.info["seed"] == 2
    assert ckpt.info["dataset"]["name"] == "synthetic"
    before = (out / "model.json").read_text()
    assert main(args) == 2
    assert "already exists" in capsys.readouterr().err
    assert (out / "model.json").read_text() == before


def test_train_rejects_bad_values(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = str(tmp_path / "x")
    assert main(["train", *SYN, "--modalities", "audoi", "--out", out]) == 2
    assert "did you mean 'audio'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:  # refused while the arguments are parsed
        main(["train", *SYN, "--intervention", "masd", "--param", "K=oops", "--out", out])
    assert exit_info.value.code == 2
    assert "argument --param: write NAME=NUMBER" in capsys.readouterr().err
    assert main(["train", "--data", "av-digit", "--out", out]) == 2
    assert "did you mean 'av-digits'" in capsys.readouterr().err


def test_wise_ft_between_two_checkpoints(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    a, b, c = (str(tmp_path / n) for n in "abc")
    common = [*SYN, "--epochs", "1", "--seed", "0", "--json"]
    assert main(["train", *common, "--intervention", "moddrop", "--param", "p=0.3", "--out", a]) == 0
    assert main(["train", *common, "--out", b]) == 0
    capsys.readouterr()
    assert main(["wise-ft", "--theta0", a, "--theta1", b, "--alphas", "0:1:0.5", *SYN, "--out", c]) == 0
    chosen = load_checkpoint(c)
    assert chosen.recipe["method"] == "wise-ft"
    assert chosen.recipe["alpha"] in (0.0, 0.5, 1.0)
    sweep = json.loads((tmp_path / "c" / "wiseft.json").read_text())
    assert [r["alpha"] for r in sweep["rows"]] == [0.0, 0.5, 1.0]
    assert (tmp_path / "c" / "wiseft.png").stat().st_size > 1000
    assert (
        main(
            [
                "wise-ft",
                "--theta0",
                a,
                "--theta1",
                b,
                *SYN,
                "--select-on",
                "test",
                "--out",
                str(tmp_path / "d"),
            ]
        )
        == 2
    )
    assert "must not select alpha on the test split" in capsys.readouterr().err


def test_wise_ft_refuses_different_architectures(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    import torch
    from edgefuse.checkpoint import save_checkpoint
    from edgefuse.data.registry import load_dataset
    from edgefuse.models.contract import build_model
    from edgefuse.models.reference import reference_architecture

    ds = load_dataset("synthetic")
    torch.manual_seed(0)
    small = build_model(reference_architecture(ds.modalities, 16), ds.modalities, ds.label_names)
    big = build_model(reference_architecture(ds.modalities, 32), ds.modalities, ds.label_names)
    save_checkpoint(small, tmp_path / "s")
    save_checkpoint(big, tmp_path / "b")
    code = main(
        [
            "wise-ft",
            "--theta0",
            str(tmp_path / "s"),
            "--theta1",
            str(tmp_path / "b"),
            *SYN,
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "architecture differs in ['embed_dim']" in err
    assert not (tmp_path / "o").exists()


def test_robustness_grid_with_interventions(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    report = tmp_path / "report"
    code = main(
        [
            "robustness",
            *SYN,
            "--train-sets",
            "audio+image+imu",
            "--methods",
            "supervised",
            "--seeds",
            "2",
            "--epochs",
            "1",
            "--interventions",
            "none,moddrop",
            "--no-specialists",
            "--json",
            str(tmp_path / "g.json"),
            "--report",
            str(report),
        ]
    )
    assert code == 0
    data = json.loads((tmp_path / "g.json").read_text())
    assert data["methods"] == ["supervised", "supervised+moddrop"]
    assert data["seeds"] == [0, 1]
    assert len(data["cells"]) == 2 * 7
    assert data["improvements"]
    assert (report / "heatmap.png").exists()
    assert "Interventions against their baseline" in (report / "grid.md").read_text()
    assert main(["robustness", *SYN, "--methods", "selfsup"]) == 2
    assert "allowed methods" in capsys.readouterr().err
