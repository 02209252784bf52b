"""Cases an independent hostile-input probe found (each failed before its fix): typed errors, no data lost."""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
from _harness import expect_cli_error, expect_error, expect_ok, run_cli

# ---- kernel ------------------------------------------------------------------------------------------

KERNEL = "import numpy as np\nfrom edgefuse import _fusion\n"


@pytest.mark.parametrize(
    "call",
    [
        "_fusion.fuse([np.ones((2, 4), '>f4')])",
        "_fusion.fuse(np.ones((2, 1, 4), '>f4'))",
        "_fusion.fuse([np.ones((2, 4), np.float32)], gamma=np.ones(4, '>f4'))",
        "_fusion.fuse([np.ones((2, 4), np.float32)], out=np.empty((2, 4), '>f4'))",
        "_fusion.all_finite(np.array([np.nan], '>f4'))",
    ],
)
def test_big_endian_float32_is_refused_not_misread(call: str) -> None:
    expect_error(KERNEL + call, "FusionInputError", "byte order" if "all_finite" not in call else "native")


def test_output_too_large_to_allocate_is_a_resource_error() -> None:
    code = KERNEL + "_fusion.fuse([None], np.zeros((10**6, 1), bool), gamma=np.ones(10**6, np.float32))"
    expect_error(code, "FusionResourceError", "cannot allocate")


# ---- predict and load arguments ------------------------------------------------------------------------


def test_unhashable_key_and_array_option_are_typed(tiny_artifact: Path) -> None:
    base = f"import numpy as np, edgefuse\ns = edgefuse.load({str(tiny_artifact)!r})\n"
    base += "A = np.ones((1, 1, 8, 12), np.float32)\n"
    code = base + (
        "from collections.abc import Mapping\n"
        "class M(Mapping):\n"
        "    def __getitem__(self, k): return A\n"
        "    def __iter__(self): return iter([['audio']])\n"
        "    def __len__(self): return 1\n"
        "s.predict(M())\n"
    )
    expect_error(code, "InputError", "modality names")
    expect_error(
        base + "s.predict({'audio': A}, on_nonfinite=np.array(['error', 'x']))", "InputError", "on_nonfinite"
    )


def test_absurd_thread_count_is_refused_before_any_thread_starts(tiny_artifact: Path) -> None:
    code = f"import edgefuse; edgefuse.load({str(tiny_artifact)!r}, threads=100000)"
    expect_error(code, "InputError", "at most 256", timeout=30)


# ---- checkpoints -----------------------------------------------------------------------------------------


def _info(folder: Path) -> dict:
    return json.loads((folder / "model.json").read_text())


@pytest.mark.parametrize("key", ["recipe", "metrics"])
def test_null_recipe_or_metrics_load(checkpoint_copy: Path, key: str) -> None:
    info = _info(checkpoint_copy)
    info[key] = None
    (checkpoint_copy / "model.json").write_text(json.dumps(info))
    code = f"from edgefuse.checkpoint import load_checkpoint\nc = load_checkpoint({str(checkpoint_copy)!r})\n"
    res = expect_ok(code + "RESULT['r'] = (c.recipe, c.metrics)")
    assert res.result["r"] == [{}, {}] or res.result["r"][0 if key == "recipe" else 1] == {}


@pytest.mark.parametrize(
    "entry",
    [{"dtype": ["F32"], "shape": [1]}, {"dtype": "F32", "shape": ["a"]}, {"dtype": "F32", "shape": [[1]]}],
)
def test_forged_safetensors_header_is_named(checkpoint_copy: Path, entry: dict) -> None:
    import hashlib

    header = json.dumps({"t": {**entry, "data_offsets": [0, 4]}}).encode()
    raw = struct.pack("<Q", len(header)) + header + b"\0" * 4
    (checkpoint_copy / "model.safetensors").write_bytes(raw)
    info = _info(checkpoint_copy)
    info["weights_sha256"], info["weights_size"] = hashlib.sha256(raw).hexdigest(), len(raw)
    (checkpoint_copy / "model.json").write_text(json.dumps(info))
    code = f"from edgefuse.checkpoint import load_checkpoint\nload_checkpoint({str(checkpoint_copy)!r})"
    expect_error(code, "CheckpointError", "no valid dtype/shape")


@pytest.mark.parametrize("path", ["3", "None", "'/tmp/a\\x00b'"])
def test_checkpoint_path_of_the_wrong_type_is_typed(path: str) -> None:
    expect_error(
        f"from edgefuse.checkpoint import load_checkpoint\nload_checkpoint({path})",
        "CheckpointError",
        "checkpoint",
    )


# ---- profiles ------------------------------------------------------------------------------------------------


def _profile(tmp_path: Path, **changes: str) -> Path:
    from edgefuse.profiles import builtin_profiles_root

    text = (builtin_profiles_root() / "generic" / "x86-64.toml").read_text()
    for old, new in changes.items():
        text = text.replace(old, new)
    p = tmp_path / "p.toml"
    p.write_text(text)
    return p


def test_profile_id_with_a_trailing_newline_is_refused(tmp_path: Path) -> None:
    p = _profile(tmp_path, **{'id = "generic/x86-64"': 'id = "probe/dev\\n"'})
    expect_error(
        f"from edgefuse.profiles import load_profile_file\nload_profile_file({str(p)!r})",
        "ProfileError",
        "id",
    )


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        ("load_profile_file('/tmp/a\\x00.toml')", "NUL"),
        ("get_profile('/tmp/a\\x00.toml')", "NUL"),
        ("list_profiles([None])", "str or os.PathLike"),
        ("list_profiles([3])", "str or os.PathLike"),
        ("get_profile(3)", "id such as"),
    ],
)
def test_profile_paths_of_the_wrong_type_are_typed(call: str, fragment: str) -> None:
    expect_error(
        f"from edgefuse.profiles import get_profile, list_profiles, load_profile_file\n{call}",
        "ProfileError",
        fragment,
    )


def test_profile_integers_beyond_any_device_are_refused(tmp_path: Path) -> None:
    p = _profile(tmp_path, **{"ram_mb = ": "ram_mb = 99999999999999999999999999999 #"})
    expect_error(
        f"from edgefuse.profiles import load_profile_file\nload_profile_file({str(p)!r})",
        "ProfileError",
        "ram_mb",
    )


# ---- WAV -------------------------------------------------------------------------------------------------------


def _wav(fmt_size: int) -> bytes:
    fmt = struct.pack("<HHIIHH", 1, 1, 8000, 16000, 2, 16)
    data = b"\0\0" * 100
    body = (
        b"WAVE" + b"fmt " + struct.pack("<I", fmt_size) + fmt + b"data" + struct.pack("<I", len(data)) + data
    )
    return b"RIFF" + struct.pack("<I", len(body)) + body


@pytest.mark.parametrize("fmt_size", [0xFFFFFFF0, 0xFFFFFFFF])
def test_wav_chunk_size_that_wraps_is_a_data_error(fmt_size: int) -> None:
    code = f"from edgefuse.data.audio import parse_wav_bytes\nparse_wav_bytes({_wav(fmt_size)!r}, 'x.wav')"
    expect_error(code, "DataError", "x.wav")


@pytest.mark.parametrize(
    ("code", "fragment"),
    [
        ("parse_wav_bytes('RIFF', 'x.wav')", "bytes"),
        ("read_wav_file('/tmp/a\\x00.wav')", "NUL"),
        ("AudioFeatureConfig(fmin=10**400)", "finite"),
        ("logmel(np.full(8000, np.nan, np.float32))", "NaN/Inf"),
    ],
)
def test_audio_api_misuse_is_typed(code: str, fragment: str) -> None:
    pre = "import numpy as np\nfrom edgefuse.data.audio import AudioFeatureConfig, logmel, parse_wav_bytes, read_wav_file\n"
    expect_error(pre + code, "DataError", fragment)


# ---- CLI: markup in user strings, outputs that would clobber inputs -----------------------------------------


def test_cli_prints_names_that_look_like_markup(tiny_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "o[/]x"
    proc = run_cli(
        "export", str(tiny_checkpoint), "--profile", "generic/x86-64", "--format", "onnx", "--out", str(out)
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "o[/]x" in " ".join(proc.stdout.split())


def test_bench_never_writes_into_its_input(artifact_copy: Path) -> None:
    before = (artifact_copy / "manifest.json").read_bytes()
    for flag, where in (("--json", artifact_copy / "manifest.json"), ("--report", artifact_copy)):
        expect_cli_error(
            "bench",
            str(artifact_copy),
            "--iters",
            "1",
            "--no-rss",
            flag,
            str(where),
            fragments=("lies in the input",),
        )
    assert (artifact_copy / "manifest.json").read_bytes() == before
    listed = {f["path"].split("/")[0] for f in json.loads(before)["files"]}
    assert {p.name for p in artifact_copy.iterdir()} == {"manifest.json", *listed}


def test_bench_of_a_garbage_model_file_is_a_backend_error(tmp_path: Path, tiny_artifact: Path) -> None:
    g = tmp_path / "g.onnx"
    g.write_bytes(b"\x07garbage" * 100)
    expect_cli_error(
        "bench", str(g), "--iters", "1", "--no-rss", fragments=("BackendError", "cannot load it")
    )
    expect_cli_error(
        "bench", str(tiny_artifact), "--iters", "1", "--backend", ",,,", fragments=("names no backend",)
    )


def test_demo_refuses_a_folder_of_other_files(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "demo.log").write_text("my notes")
    expect_cli_error(
        "demo", "--out", str(mine), "--profiles", "generic/x86-64", fragments=("not an EdgeFuse demo's",)
    )
    assert (mine / "demo.log").read_text() == "my notes"


def test_overwrite_keeps_a_user_folder_a_forged_manifest_lists(
    tiny_checkpoint: Path, tiny_artifact: Path, tmp_path: Path
) -> None:
    art = Path(shutil.copytree(tiny_artifact, tmp_path / "art"))
    (art / "data").mkdir()
    (art / "data" / "mine.txt").write_text("keep me")
    data = json.loads((art / "manifest.json").read_text())
    data["files"].append({"path": "data", "role": "x", "sha256": "0" * 64, "size": 7})
    (art / "manifest.json").write_text(json.dumps(data))
    expect_cli_error(
        "export",
        str(tiny_checkpoint),
        "--profile",
        "generic/x86-64",
        "--format",
        "onnx",
        "--out",
        str(art),
        "--overwrite",
        fragments=("is refused",),
    )
    assert (art / "data" / "mine.txt").read_text() == "keep me"


def test_image_params_from_the_manifest_are_checked(artifact_copy: Path, tmp_path: Path) -> None:
    pytest.importorskip("PIL")
    from PIL import Image

    data = json.loads((artifact_copy / "manifest.json").read_text())
    for m in data["modalities"]:
        if m["name"] == "image":
            m["params"] = {"scale": "abc"}
    (artifact_copy / "manifest.json").write_text(json.dumps(data))
    png = tmp_path / "x.png"
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(png)
    expect_cli_error("run", str(artifact_copy), "--image", str(png), fragments=("params.scale",))


def test_architecture_of_a_million_layers_is_refused_quickly(checkpoint_copy: Path) -> None:
    info = _info(checkpoint_copy)
    info["architecture"]["head_hidden"] = [8] * 1_000_000
    (checkpoint_copy / "model.json").write_text(json.dumps(info))
    code = f"from edgefuse.checkpoint import load_checkpoint\nload_checkpoint({str(checkpoint_copy)!r})"
    expect_error(code, "CheckpointError", "architecture has", "entries", timeout=30)


def test_a_million_reference_cases_are_refused_at_load(artifact_copy: Path) -> None:
    data = json.loads((artifact_copy / "manifest.json").read_text())
    data["reference"]["cases"] = [{"pattern": [data["modalities"][0]["name"]], "batch": 2}] * 1_000_000
    (artifact_copy / "manifest.json").write_text(json.dumps(data))
    expect_error(
        f"import edgefuse; edgefuse.load({str(artifact_copy)!r})",
        "ManifestError",
        "at most 1024 cases",
        timeout=30,
    )


def test_bench_outputs_replace_hard_links_instead_of_writing_through(
    artifact_copy: Path, tmp_path: Path
) -> None:
    import os

    before = (artifact_copy / "manifest.json").read_bytes()
    report = tmp_path / "rep"
    report.mkdir()
    os.link(artifact_copy / "manifest.json", tmp_path / "hl.json")
    os.link(artifact_copy / "manifest.json", report / "bench.json")
    proc = run_cli(
        "bench",
        str(artifact_copy),
        "--iters",
        "2",
        "--no-rss",
        "--json",
        str(tmp_path / "hl.json"),
        "--report",
        str(report),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (artifact_copy / "manifest.json").read_bytes() == before
    assert json.loads((tmp_path / "hl.json").read_text())["results"]
