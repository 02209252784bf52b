"""Hostile device profiles: special files, oversized and deeply nested TOML give a clear ProfileError.

Each case runs in its own interpreter under the harness's memory limit and timeout: before these checks
a profile symlinked to ``/dev/zero`` was read until memory ran out, a FIFO blocked forever and a deeply
nested array raised ``RecursionError``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from _harness import expect_cli_error, expect_error, expect_ok

MAX_TOML_BYTES = 1 << 20  # edgefuse.trust.MAX_TOML_BYTES

VALID = """\
schema_version = 1
id = "acme/widget"
name = "Acme Widget"
backends = ["onnxruntime"]
precisions = ["fp32"]
threads = 2
ram_mb = 512

[[sensors]]
kind = "microphone"

[compute]
peak_gflops = { fp32 = 10.0 }
peak_gflops_source = "made up for a test"
memory_bandwidth_gbs = 3.2
memory_bandwidth_source = "made up for a test"
"""

LOAD = "from edgefuse.profiles import load_profile_file\nload_profile_file({path!r})\n"
LIST = "from edgefuse.profiles import list_profiles\nlist_profiles([{path!r}])\n"

# name -> document text; every one is nested far deeper than edgefuse.trust.MAX_NESTING (64)
DEEP: dict[str, str] = {
    "arrays-100000": "x = " + "[" * 100_000 + "]" * 100_000 + "\n",
    "inline-tables-100000": "x = " + "{ a = " * 100_000 + "1" + " }" * 100_000 + "\n",
    "arrays-500": "x = " + "[" * 500 + "]" * 500 + "\n",  # parses (under the recursion limit): nesting check
    "dotted-keys-200": ".".join(["a"] * 200) + " = 1\n",
    "table-header-200": "[" + ".".join(["t"] * 200) + "]\nb = 1\n",
}


@pytest.mark.parametrize("case", list(DEEP))
def test_deep_nesting_is_refused(tmp_path: Path, case: str) -> None:
    path = tmp_path / f"{case}.toml"
    path.write_text(DEEP[case])
    expect_error(LOAD.format(path=str(path)), "ProfileError", f"{case}.toml", "nested more than 64 levels")


def test_fifo_profile_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.toml"
    os.mkfifo(fifo)
    expect_error(
        LOAD.format(path=str(fifo)), "ProfileError", "pipe.toml", "FIFO", "not a regular file", timeout=30
    )


def test_symlink_to_dev_zero_is_refused(tmp_path: Path) -> None:
    link = tmp_path / "zero.toml"
    link.symlink_to("/dev/zero")
    expect_error(LOAD.format(path=str(link)), "ProfileError", "zero.toml", "character device", "regular file")


def test_oversized_profile_is_refused(tmp_path: Path) -> None:
    big = tmp_path / "big.toml"
    big.write_text(VALID + ("# padding\n" * (MAX_TOML_BYTES // 10 + 1)))
    expect_error(
        LOAD.format(path=str(big)), "ProfileError", "big.toml", f"more than the {MAX_TOML_BYTES}", "1 MiB"
    )


def test_fifo_in_a_profile_folder_is_refused_not_skipped(tmp_path: Path) -> None:
    folder = tmp_path / "profiles"
    folder.mkdir()
    (folder / "good.toml").write_text(VALID)
    os.mkfifo(folder / "x.toml")
    expect_error(
        LIST.format(path=str(folder)), "ProfileError", "x.toml", "FIFO", "not a regular file", timeout=30
    )


def test_dangling_symlink_in_a_profile_folder_is_reported(tmp_path: Path) -> None:
    folder = tmp_path / "profiles"
    folder.mkdir()
    (folder / "gone.toml").symlink_to(tmp_path / "nowhere.toml")
    expect_error(LIST.format(path=str(folder)), "ProfileError", "gone.toml", "dangling symlink")


def test_validate_paths_reports_special_files_and_keeps_the_good_one(tmp_path: Path) -> None:
    folder = tmp_path / "profiles"
    folder.mkdir()
    (folder / "good.toml").write_text(VALID)
    os.mkfifo(folder / "pipe.toml")
    (folder / "zero.toml").symlink_to("/dev/zero")
    code = f"""
from edgefuse.profiles import DeviceProfile, validate_paths
RESULT["results"] = {{p.name: (r.id if isinstance(r, DeviceProfile) else str(r))
                     for p, r in validate_paths([{str(folder)!r}])}}
"""
    results = expect_ok(code, timeout=30).result["results"]
    assert results["good.toml"] == "acme/widget"
    assert "FIFO" in results["pipe.toml"]
    assert "character device" in results["zero.toml"]


def test_cli_validate_fifo_exits_with_the_reason(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.toml"
    os.mkfifo(fifo)
    proc = expect_cli_error("profiles", "validate", str(fifo), fragments=("pipe.toml", "FIFO"), timeout=30)
    assert proc.returncode == 1  # the command ran and found an invalid profile


def test_cli_profile_to_dev_zero_exits_2(tmp_path: Path) -> None:
    link = tmp_path / "zero.toml"
    link.symlink_to("/dev/zero")
    proc = expect_cli_error(
        "profiles", "show", str(link), fragments=("ProfileError", "zero.toml", "character device")
    )
    assert proc.returncode == 2
