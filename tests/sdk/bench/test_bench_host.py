"""``edgefuse profiles calibrate-host``: a measured profile of this machine that loads as any other."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from edgefuse.bench.host import calibrate_host, host_profile_toml
from edgefuse.cli import main
from edgefuse.errors import ContractError
from edgefuse.profiles import load_profile_file


def test_calibrate_host_measures_and_writes_a_valid_profile(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "host.toml"
    code = main(
        ["profiles", "calibrate-host", "--threads", "1", "--seconds", "0.2", "--out", str(out), "--json"]
    )
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert data["gemm_gflops"] > 1
    assert data["copy_gbs"] > 0.1
    assert set(data["call_overhead_ms"]) <= {"onnxruntime", "litert"}
    assert data["call_overhead_ms"]
    prof = load_profile_file(out)
    assert prof.id == "host/this-machine"
    assert prof.threads == 1
    assert prof.compute.peak("fp32") == pytest.approx(data["gemm_gflops"], rel=1e-2)
    assert prof.compute.peak_gflops_source.startswith("measured: numpy float32 GEMM")
    assert prof.compute.call_overhead_ms
    assert "measured" in str(prof.compute.call_overhead_source)
    assert not prof.compute.efficiency  # never fitted here: the defaults (with sources) apply
    # an existing file is not replaced without --overwrite
    assert main(["profiles", "calibrate-host", "--seconds", "0.2", "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_calibrate_host_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ContractError, match="threads"):
        calibrate_host(threads=0)
    with pytest.raises(ContractError, match="seconds"):
        calibrate_host(threads=1, seconds=1000)
    with pytest.raises(ContractError, match="vendor/device"):
        host_profile_toml(
            {"call_overhead_ms": {}, "cpu": "x", "platform": "p", "date": "d"}, profile_id="Bad Id"
        )
    assert main(["profiles", "calibrate-host", "--out", str(tmp_path / "host.txt")]) == 2
