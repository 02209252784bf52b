"""Every built-in device profile loads, has the id its path gives, and maps sensors to modalities."""

from __future__ import annotations

import importlib.resources
import json
import sys
from pathlib import Path

import pytest
from edgefuse.profiles import (
    BACKEND_PRECISIONS,
    DEFAULT_SENSOR_MODALITIES,
    DeviceProfile,
    get_profile,
    list_profiles,
    load_profile_file,
)

REQUIRED_IDS = {
    "generic/x86-64",
    "raspberrypi/pi5-usb-mic",
    "nvidia/jetson-orin-nano",
    "apple/iphone-15-pro",
    "google/pixel-8",
    "generic/smart-speaker",
    "generic/dashcam",
    "generic/video-doorbell",
    "generic/smartwatch",
}

BUILTIN_ROOT = Path(str(importlib.resources.files("edgefuse.device_profiles")))
BUILTIN_FILES = sorted(BUILTIN_ROOT.rglob("*.toml"))


def test_at_least_nine_builtins_including_the_required_targets() -> None:
    ids = {p.id for p in list_profiles()}
    assert len(ids) >= 9
    assert ids >= REQUIRED_IDS


@pytest.mark.parametrize("path", BUILTIN_FILES, ids=lambda p: p.relative_to(BUILTIN_ROOT).as_posix())
def test_builtin_file_loads_and_id_matches_path(path: Path) -> None:
    profile = load_profile_file(path)
    assert profile.id == path.relative_to(BUILTIN_ROOT).with_suffix("").as_posix()
    assert profile.source == path
    assert len(profile.sensors) >= 1
    assert profile.modalities
    assert profile.backends
    assert profile.precisions
    assert profile.compute.peak_gflops_source.strip()
    assert profile.compute.memory_bandwidth_source.strip()
    # Each backend can run at least one listed precision; every peak figure is for a listed precision.
    for backend in profile.backends:
        assert BACKEND_PRECISIONS[backend] & set(profile.precisions)
    assert set(profile.compute.peak_gflops) <= set(profile.precisions)
    json.dumps(profile.to_dict())


@pytest.mark.parametrize("path", BUILTIN_FILES, ids=lambda p: p.relative_to(BUILTIN_ROOT).as_posix())
def test_builtin_file_comments_its_figures(path: Path) -> None:
    """Each peak-compute and bandwidth line carries a comment (on the line or just above it)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    for key in ("peak_gflops =", "memory_bandwidth_gbs ="):
        (index,) = [i for i, line in enumerate(lines) if line.startswith(key)]
        assert "#" in lines[index] or lines[index - 1].lstrip().startswith("#"), f"{path}: {key} uncommented"


@pytest.mark.parametrize(
    ("profile_id", "modalities"),
    [
        ("generic/smart-speaker", ("audio",)),
        ("generic/dashcam", ("image",)),
        ("generic/video-doorbell", ("image", "audio")),
        ("generic/smartwatch", ("audio", "imu")),
        ("raspberrypi/pi5-usb-mic", ("audio",)),
        ("nvidia/jetson-orin-nano", ("image", "audio")),
        ("google/pixel-8", ("image", "audio")),
        ("apple/iphone-15-pro", ("image", "audio", "text", "imu")),
        ("generic/x86-64", ("audio", "image", "imu", "text")),
    ],
)
def test_modalities_follow_sensors(profile_id: str, modalities: tuple[str, ...]) -> None:
    profile = get_profile(profile_id)
    assert profile.modalities == modalities
    for sensor in profile.sensors:
        assert sensor.modality == DEFAULT_SENSOR_MODALITIES[sensor.kind]


def test_generic_host_has_every_common_sensor() -> None:
    profile = get_profile("generic/x86-64")
    assert set(profile.sensor_kinds) == {"microphone", "camera", "imu", "touchscreen", "keyboard"}
    assert profile.backends == ("onnxruntime", "torch")


def test_backend_orders() -> None:
    assert get_profile("nvidia/jetson-orin-nano").backends[0] == "tensorrt"
    assert get_profile("nvidia/jetson-orin-nano").precisions[0] == "fp16"
    assert get_profile("raspberrypi/pi5-usb-mic").backends == ("onnxruntime", "litert")
    assert get_profile("apple/iphone-15-pro").backends == ("coreml",)
    assert get_profile("google/pixel-8").backends == ("litert",)


def test_builtins_are_sorted_frozen_and_equal_across_loads() -> None:
    first = list_profiles()
    assert [p.id for p in first] == sorted(p.id for p in first)
    assert first == list_profiles()
    assert all(isinstance(p, DeviceProfile) for p in first)
    with pytest.raises(AttributeError):
        first[0].threads = 99  # type: ignore[misc]
    assert len({hash(p) for p in first}) == len(first)


def test_importing_profiles_pulls_in_neither_torch_nor_rich() -> None:
    import subprocess

    code = (
        "import sys, edgefuse.profiles as p; p.list_profiles(); "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'rich')]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
