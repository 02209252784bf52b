"""The device-profile loader: user files, modality overrides and every error it must name clearly."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from edgefuse.errors import ProfileError
from edgefuse.profiles import (
    DeviceProfile,
    get_profile,
    list_profiles,
    load_profile_file,
    validate_paths,
)

VALID = """\
schema_version = 1
id = "acme/widget"
name = "Acme Widget"
description = "A test device"
backends = ["onnxruntime", "litert"]
precisions = ["fp32", "int8"]
threads = 2
ram_mb = 512
batch_sizes = [1, 4]

[[sensors]]
kind = "microphone"
count = 2

[[sensors]]
kind = "camera"

[compute]
peak_gflops = { fp32 = 10.0, int8 = 20 }  # test figures
peak_gflops_source = "made up for a test"
memory_bandwidth_gbs = 3.2
memory_bandwidth_source = "made up for a test"

[budgets]
latency_ms = 50
memory_mb = 128
"""


def write(tmp_path: Path, text: str, name: str = "widget.toml") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def edit(old: str, new: str, text: str = VALID) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


# ------------------------------------------------------------------------------------------------
# Valid user profiles
# ------------------------------------------------------------------------------------------------


def test_valid_user_file_loads(tmp_path: Path) -> None:
    path = write(tmp_path, VALID)
    profile = load_profile_file(path)
    assert profile.id == "acme/widget"
    assert profile.source == path
    assert profile.sensor_kinds == ("microphone", "camera")
    assert profile.sensors[0].count == 2
    assert profile.modalities == ("audio", "image")
    assert profile.backends == ("onnxruntime", "litert")
    assert profile.precisions == ("fp32", "int8")
    assert profile.batch_sizes == (1, 4)
    assert profile.compute.peak("int8") == 20.0
    assert isinstance(profile.compute.peak_gflops["int8"], float)
    assert profile.compute.peak("fp16") is None
    assert profile.budgets is not None
    assert profile.budgets.latency_ms == 50.0
    assert profile.budgets.memory_mb == 128
    data = profile.to_dict()
    assert data["modalities"] == ["audio", "image"]
    assert data["source"] == str(path)


def test_defaults_for_optional_fields(tmp_path: Path) -> None:
    text = VALID.replace("batch_sizes = [1, 4]\n", "").replace('description = "A test device"\n', "")
    text = text.split("[budgets]")[0]
    profile = load_profile_file(write(tmp_path, text))
    assert profile.batch_sizes == (1,)
    assert profile.description == ""
    assert profile.budgets is None
    assert profile.sensors[1].count == 1


def test_modality_override_per_sensor(tmp_path: Path) -> None:
    text = edit('kind = "microphone"\n', 'kind = "microphone"\nmodality = "speech"\n')
    profile = load_profile_file(write(tmp_path, text))
    assert profile.modalities == ("speech", "image")
    assert profile.sensors[0].modality_overridden
    assert not profile.sensors[1].modality_overridden
    assert profile.to_dict()["sensors"][0]["modality"] == "speech"


def test_two_sensors_with_one_modality_give_it_once(tmp_path: Path) -> None:
    text = VALID + '\n[[sensors]]\nkind = "touchscreen"\n\n[[sensors]]\nkind = "keyboard"\n'
    profile = load_profile_file(write(tmp_path, text))
    assert profile.modalities == ("audio", "image", "text")


def test_list_profiles_adds_user_files_and_folders(tmp_path: Path) -> None:
    single = write(tmp_path, VALID, "single/widget.toml")
    folder = tmp_path / "many"
    write(folder, edit('id = "acme/widget"', 'id = "acme/gadget"'), "acme/gadget.toml")
    write(folder, edit('id = "acme/widget"', 'id = "acme/gizmo"'), "deep/er/gizmo.toml")
    builtin_count = len(list_profiles())
    profiles = list_profiles([single, folder])
    ids = [p.id for p in profiles]
    assert len(profiles) == builtin_count + 3
    assert {"acme/widget", "acme/gadget", "acme/gizmo"} <= set(ids)
    assert ids == sorted(ids)


def test_get_profile_by_path_by_id_and_from_extra_paths(tmp_path: Path) -> None:
    path = write(tmp_path, VALID)
    assert get_profile(path).id == "acme/widget"
    assert get_profile(str(path)).id == "acme/widget"
    assert get_profile("acme/widget", extra_paths=[tmp_path]).source == path
    assert get_profile("generic/dashcam").id == "generic/dashcam"


def test_user_file_may_use_any_path(tmp_path: Path) -> None:
    # Only built-ins must live at their id's path; a user's file can be named anything.
    assert load_profile_file(write(tmp_path, VALID, "whatever.toml")).id == "acme/widget"


# ------------------------------------------------------------------------------------------------
# Errors: file and TOML
# ------------------------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ProfileError, match=re.escape(str(missing))):
        load_profile_file(missing)
    with pytest.raises(ProfileError, match="no such device profile file"):
        list_profiles([missing])


def test_invalid_toml_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, edit("threads = 2", "threads = = 2"))
    with pytest.raises(ProfileError, match=re.escape(str(path)) + r": invalid TOML: .*line 7"):
        load_profile_file(path)


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(VALID.replace("A test device", "caf\xe9").encode("latin-1"))
    with pytest.raises(ProfileError, match="not UTF-8"):
        load_profile_file(path)


# ------------------------------------------------------------------------------------------------
# Errors: unknown fields, wrong types, missing fields
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "pattern"),
    [
        (
            "peak_gflops = {",
            "peak_gflps = {",
            r"unknown field 'compute\.peak_gflps'.*allowed fields in table 'compute': peak_gflops, "
            r".*did you mean 'compute\.peak_gflops'\?",
        ),
        ("threads = 2", "thread = 2", r"unknown field 'thread'.*did you mean 'threads'\?"),
        (
            "count = 2",
            "cuont = 2",
            r"unknown field 'sensors\[0\]\.cuont'.*did you mean 'sensors\[0\]\.count'\?",
        ),
        (
            "latency_ms = 50",
            "latency = 50",
            r"unknown field 'budgets\.latency'.*did you mean 'budgets\.latency_ms'",
        ),
    ],
)
def test_unknown_field(tmp_path: Path, old: str, new: str, pattern: str) -> None:
    path = write(tmp_path, edit(old, new))
    with pytest.raises(ProfileError, match=re.escape(str(path)) + ".*" + pattern):
        load_profile_file(path)


@pytest.mark.parametrize(
    ("old", "new", "pattern"),
    [
        (
            "threads = 2",
            'threads = "2"',
            r"field 'threads': expected an integer in \[1, 1024\], got '2' \(a string\)",
        ),
        (
            "threads = 2",
            "threads = true",
            r"field 'threads': expected an integer in \[1, 1024\], got True \(a boolean\)",
        ),
        (
            "threads = 2",
            "threads = 2.5",
            r"field 'threads': expected an integer in \[1, 1024\], got 2\.5 \(a float\)",
        ),
        ("ram_mb = 512", "ram_mb = 0", r"field 'ram_mb' = 0; expected an integer in \[1, 2147483647\]"),
        ("threads = 2", "threads = 100000", r"field 'threads' = 100000; expected an integer in \[1, 1024\]"),
        ("ram_mb = 512", "ram_mb = " + "9" * 40, r"field 'ram_mb' = an integer of 133 bits"),
        ('name = "Acme Widget"', "name = 3", r"field 'name': expected a string, got 3"),
        (
            'backends = ["onnxruntime", "litert"]',
            'backends = "onnxruntime"',
            r"field 'backends': expected an array, got 'onnxruntime' \(a string\)",
        ),
        (
            "memory_bandwidth_gbs = 3.2",
            'memory_bandwidth_gbs = "fast"',
            r"field 'compute\.memory_bandwidth_gbs': expected a number > 0, got 'fast'",
        ),
        (
            "memory_bandwidth_gbs = 3.2",
            "memory_bandwidth_gbs = -1.0",
            r"field 'compute\.memory_bandwidth_gbs' = -1\.0; expected a finite number > 0",
        ),
        (
            "fp32 = 10.0",
            'fp32 = "10"',
            r"field 'compute\.peak_gflops\.fp32': expected a number > 0, got '10'",
        ),
        ("count = 2", "count = 0", r"field 'sensors\[0\]\.count' = 0; expected an integer in \[1, 1024\]"),
        ("batch_sizes = [1, 4]", "batch_sizes = [1, 0]", r"field 'batch_sizes\[1\]' = 0"),
        ("batch_sizes = [1, 4]", "batch_sizes = [4, 4]", r"field 'batch_sizes': duplicate batch size 4"),
        ("latency_ms = 50", "latency_ms = 0", r"field 'budgets\.latency_ms' = 0"),
        ("memory_mb = 128", "memory_mb = 1024", r"field 'budgets\.memory_mb' = 1024 exceeds ram_mb = 512"),
        (
            "schema_version = 1",
            "schema_version = 2",
            r"field 'schema_version' = 2; this EdgeFuse reads schema_version 1",
        ),
        ('id = "acme/widget"', 'id = "widget"', r"field 'id' = 'widget'; expected 'vendor/device'"),
        ('id = "acme/widget"', 'id = "Acme/Widget"', r"field 'id' = 'Acme/Widget'; expected 'vendor/device'"),
        (
            'kind = "microphone"',
            'kind = "microphone"\nmodality = "Speech!"',
            r"field 'sensors\[0\]\.modality' = 'Speech!'; expected a lowercase identifier",
        ),
    ],
)
def test_wrong_type_or_value(tmp_path: Path, old: str, new: str, pattern: str) -> None:
    path = write(tmp_path, edit(old, new))
    with pytest.raises(ProfileError, match=re.escape(str(path)) + ": " + pattern):
        load_profile_file(path)


@pytest.mark.parametrize(
    ("field", "line"),
    [
        ("schema_version", "schema_version = 1\n"),
        ("id", 'id = "acme/widget"\n'),
        ("name", 'name = "Acme Widget"\n'),
        ("backends", 'backends = ["onnxruntime", "litert"]\n'),
        ("precisions", 'precisions = ["fp32", "int8"]\n'),
        ("threads", "threads = 2\n"),
        ("ram_mb", "ram_mb = 512\n"),
        ("compute.memory_bandwidth_source", 'memory_bandwidth_source = "made up for a test"\n'),
        ("compute.peak_gflops_source", 'peak_gflops_source = "made up for a test"\n'),
    ],
)
def test_missing_required_field(tmp_path: Path, field: str, line: str) -> None:
    path = write(tmp_path, edit(line, ""))
    with pytest.raises(ProfileError, match=re.escape(f"missing required field '{field}'")):
        load_profile_file(path)


def test_missing_sensors_and_empty_lists(tmp_path: Path) -> None:
    no_sensors = VALID.replace('[[sensors]]\nkind = "microphone"\ncount = 2\n', "").replace(
        '[[sensors]]\nkind = "camera"\n', ""
    )
    with pytest.raises(ProfileError, match="missing required field 'sensors'"):
        load_profile_file(write(tmp_path, no_sensors, "a.toml"))
    with pytest.raises(ProfileError, match="'backends' must list at least one backend"):
        load_profile_file(
            write(tmp_path, edit('backends = ["onnxruntime", "litert"]', "backends = []"), "b.toml")
        )
    with pytest.raises(ProfileError, match=r"'compute\.peak_gflops' must give at least one precision"):
        load_profile_file(
            write(tmp_path, edit("peak_gflops = { fp32 = 10.0, int8 = 20 }", "peak_gflops = {}"), "c.toml")
        )


# ------------------------------------------------------------------------------------------------
# Errors: unknown names and cross-field checks
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "pattern"),
    [
        (
            'backends = ["onnxruntime", "litert"]',
            'backends = ["onnxrutime"]',
            r"field 'backends\[0\]': unknown backend 'onnxrutime'; allowed: onnxruntime, litert, coreml, "
            r"tensorrt, torch; did you mean 'onnxruntime'\?",
        ),
        (
            'backends = ["onnxruntime", "litert"]',
            'backends = ["onnxruntime", "tflite"]',
            r"field 'backends\[1\]': unknown backend 'tflite'; allowed: onnxruntime, litert",
        ),
        (
            'precisions = ["fp32", "int8"]',
            'precisions = ["fp32", "int4"]',
            r"field 'precisions\[1\]': unknown precision 'int4'; allowed: fp32, fp16, int8; did you mean 'int8'\?",
        ),
        (
            'kind = "camera"',
            'kind = "camra"',
            r"field 'sensors\[1\]\.kind': unknown sensor 'camra'; allowed: microphone, camera, .*gps; "
            r"did you mean 'camera'\?",
        ),
        (
            "fp32 = 10.0",
            "fp33 = 10.0",
            r"field 'compute\.peak_gflops\.fp33': unknown precision 'fp33'.*did you mean 'fp32'\?",
        ),
    ],
)
def test_unknown_names_suggest_closest(tmp_path: Path, old: str, new: str, pattern: str) -> None:
    path = write(tmp_path, edit(old, new))
    with pytest.raises(ProfileError, match=re.escape(str(path)) + ": " + pattern):
        load_profile_file(path)


def test_far_off_name_gives_no_suggestion(tmp_path: Path) -> None:
    path = write(tmp_path, edit('backends = ["onnxruntime", "litert"]', 'backends = ["zzzz"]'))
    with pytest.raises(ProfileError, match="unknown backend 'zzzz'") as info:
        load_profile_file(path)
    assert "did you mean" not in str(info.value)


@pytest.mark.parametrize(
    ("old", "new", "pattern"),
    [
        (
            'backends = ["onnxruntime", "litert"]',
            'backends = ["litert", "litert"]',
            r"field 'backends': duplicate backend 'litert'",
        ),
        (
            'precisions = ["fp32", "int8"]',
            'precisions = ["fp32", "fp32", "int8"]',
            r"field 'precisions': duplicate precision 'fp32'",
        ),
        (
            'kind = "camera"',
            'kind = "microphone"',
            r"field 'sensors\[1\]\.kind': duplicate sensor 'microphone' \(also sensors\[0\]\).*'count'",
        ),
        (
            'precisions = ["fp32", "int8"]',
            'precisions = ["fp32"]',
            r"field 'compute\.peak_gflops\.int8': precision 'int8' is not in precisions = \['fp32'\]",
        ),
    ],
)
def test_cross_field_checks(tmp_path: Path, old: str, new: str, pattern: str) -> None:
    path = write(tmp_path, edit(old, new))
    with pytest.raises(ProfileError, match=re.escape(str(path)) + ": " + pattern):
        load_profile_file(path)


def test_backend_without_a_supported_precision(tmp_path: Path) -> None:
    text = edit('backends = ["onnxruntime", "litert"]', 'backends = ["coreml"]')
    text = edit('precisions = ["fp32", "int8"]', 'precisions = ["int8"]', text)
    text = edit("peak_gflops = { fp32 = 10.0, int8 = 20 }", "peak_gflops = { int8 = 20 }", text)
    with pytest.raises(
        ProfileError,
        match=r"field 'backends\[0\]': backend 'coreml' supports none of .*it supports fp32, fp16",
    ):
        load_profile_file(write(tmp_path, text))


# ------------------------------------------------------------------------------------------------
# Errors: ids across profiles
# ------------------------------------------------------------------------------------------------


def test_duplicate_id_across_user_files_names_both(tmp_path: Path) -> None:
    first = write(tmp_path, VALID, "a/one.toml")
    second = write(tmp_path, VALID, "b/two.toml")
    pattern = f"duplicate device profile id 'acme/widget': defined in {re.escape(str(first))} and in {re.escape(str(second))}"
    with pytest.raises(ProfileError, match=pattern):
        list_profiles([first, second])


def test_user_profile_cannot_shadow_a_builtin(tmp_path: Path) -> None:
    path = write(tmp_path, edit('id = "acme/widget"', 'id = "generic/dashcam"'))
    with pytest.raises(
        ProfileError,
        match=r"duplicate device profile id 'generic/dashcam': defined in .*dashcam\.toml and in "
        + re.escape(str(path)),
    ):
        list_profiles([path])


def test_unknown_id_lists_ids_and_closest() -> None:
    with pytest.raises(
        ProfileError,
        match=r"unknown device profile id 'generic/dashcm'; known ids: .*generic/x86-64.*did you mean 'generic/dashcam'\?",
    ):
        get_profile("generic/dashcm")


def test_builtin_id_must_match_its_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import edgefuse.profiles as profiles

    root = tmp_path / "builtins"
    path = write(root, VALID, "acme/not-widget.toml")
    monkeypatch.setattr(profiles, "builtin_profiles_root", lambda: root)
    with pytest.raises(
        ProfileError, match=r"field 'id' = 'acme/widget' but the file's path says 'acme/not-widget'"
    ):
        load_profile_file(path)


def test_empty_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match=r"folder contains no \.toml device profiles"):
        list_profiles([tmp_path])


# ------------------------------------------------------------------------------------------------
# validate_paths
# ------------------------------------------------------------------------------------------------


def test_validate_paths_reports_every_file(tmp_path: Path) -> None:
    good = write(tmp_path, VALID, "dir/good.toml")
    bad = write(tmp_path, edit("threads = 2", 'threads = "2"'), "dir/bad.toml")
    dup = write(tmp_path, VALID, "dup.toml")
    missing = tmp_path / "missing.toml"
    results = validate_paths([tmp_path / "dir", dup, missing])
    by_path = dict(results)
    assert [p for p, _ in results] == [bad, good, dup, missing]
    assert isinstance(by_path[good], DeviceProfile)
    assert isinstance(by_path[bad], ProfileError)
    assert "field 'threads'" in str(by_path[bad])
    assert isinstance(by_path[dup], ProfileError)
    assert "duplicate device profile id 'acme/widget'" in str(by_path[dup])
    assert isinstance(by_path[missing], ProfileError)
    assert "no such device profile" in str(by_path[missing])


def test_validate_paths_accepts_the_builtin_folder_but_flags_a_copy(tmp_path: Path) -> None:
    import edgefuse.profiles as profiles

    root = profiles.builtin_profiles_root()
    results = validate_paths([root])
    assert len(results) >= 9
    assert all(isinstance(r, DeviceProfile) for _, r in results)
    copy = write(tmp_path, (root / "generic" / "dashcam.toml").read_text(encoding="utf-8"), "dashcam.toml")
    ((_, result),) = validate_paths([copy])
    assert isinstance(result, ProfileError)
    assert "already used by the built-in profile" in str(result)
