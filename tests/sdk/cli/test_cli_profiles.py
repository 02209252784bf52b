"""`edgefuse profiles list | show | validate` through the CLI entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from edgefuse.cli import main

GOOD = """\
schema_version = 1
id = "acme/widget"
name = "Acme Widget"
backends = ["litert"]
precisions = ["fp32"]
threads = 1
ram_mb = 256

[[sensors]]
kind = "microphone"

[compute]
peak_gflops = { fp32 = 5.0 }
peak_gflops_source = "test"
memory_bandwidth_gbs = 1.0
memory_bandwidth_source = "test"
"""


def test_list_json_has_every_builtin(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profiles", "list", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data) >= 9
    ids = [entry["id"] for entry in data]
    assert "generic/smart-speaker" in ids
    speaker = data[ids.index("generic/smart-speaker")]
    assert speaker["modalities"] == ["audio"]
    assert {"sensors", "backends", "precisions", "compute", "ram_mb", "source"} <= set(speaker)


def test_list_json_with_user_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "widget.toml").write_text(GOOD, encoding="utf-8")
    assert main(["profiles", "list", "--json", "--path", str(tmp_path)]) == 0
    ids = [entry["id"] for entry in json.loads(capsys.readouterr().out)]
    assert "acme/widget" in ids


def test_list_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profiles", "list"]) == 0
    out = capsys.readouterr().out
    for text in ("nvidia/jetson-orin-nano", "generic/dashcam", "tensorrt", "GFLOP/s", "RAM"):
        assert text in out


def test_show_table_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profiles", "show", "nvidia/jetson-orin-nano"]) == 0
    out = capsys.readouterr().out
    assert "NVIDIA Jetson Orin Nano" in out
    assert "tensorrt > onnxruntime" in out
    assert main(["profiles", "show", "generic/dashcam", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["id"] == "generic/dashcam"
    assert data["modalities"] == ["image"]


def test_show_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "widget.toml"
    path.write_text(GOOD, encoding="utf-8")
    assert main(["profiles", "show", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["id"] == "acme/widget"


def test_show_unknown_id_exits_2_with_closest(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profiles", "show", "google/pixel8"]) == 2
    captured = capsys.readouterr()
    err = " ".join(captured.err.split())  # undo the console's line wrapping
    assert "unknown device profile id 'google/pixel8'" in err
    assert "did you mean 'google/pixel-8'?" in err
    assert captured.out == ""


def test_validate_good_and_bad(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.toml"
    good.write_text(GOOD, encoding="utf-8")
    assert main(["profiles", "validate", str(good)]) == 0
    assert "1 valid, 0 invalid" in capsys.readouterr().out

    bad = tmp_path / "bad.toml"
    bad.write_text(
        GOOD.replace("peak_gflops =", "peak_gflps =").replace('"litert"', '"litrt"'), encoding="utf-8"
    )
    assert main(["profiles", "validate", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert str(bad) in out
    assert "unknown" in out
    assert "1 valid, 1 invalid" in out


def test_validate_prints_every_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a.toml").write_text(GOOD.replace("peak_gflops =", "peak_gflps ="), encoding="utf-8")
    (tmp_path / "b.toml").write_text(GOOD.replace('"litert"', '"onnxrutime"'), encoding="utf-8")
    assert main(["profiles", "validate", str(tmp_path / "a.toml"), str(tmp_path / "b.toml")]) == 1
    out = capsys.readouterr().out
    assert "unknown field 'compute.peak_gflps'" in out
    assert "did you mean 'compute.peak_gflops'?" in out
    assert "unknown backend 'onnxrutime'" in out
    assert "did you mean 'onnxruntime'?" in out


def test_validate_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "good.toml").write_text(GOOD, encoding="utf-8")
    (tmp_path / "bad.toml").write_text(GOOD.replace("threads = 1", "threads = 0"), encoding="utf-8")
    assert main(["profiles", "validate", str(tmp_path), "--json"]) == 1
    results = {Path(r["path"]).name: r for r in json.loads(capsys.readouterr().out)}
    assert results["good.toml"]["valid"] is True
    assert results["good.toml"]["id"] == "acme/widget"
    assert results["bad.toml"]["valid"] is False
    assert "field 'threads' = 0" in results["bad.toml"]["error"]


def test_validate_builtin_folder(capsys: pytest.CaptureFixture[str]) -> None:
    from edgefuse.profiles import builtin_profiles_root

    assert main(["profiles", "validate", str(builtin_profiles_root())]) == 0
    assert " 0 invalid" in capsys.readouterr().out


def test_validate_missing_path_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profiles", "validate", str(tmp_path / "nope")]) == 1
    assert "no such device profile file or folder" in capsys.readouterr().out


def test_profiles_without_action_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profiles"]) == 2
    assert "validate" in capsys.readouterr().out
