"""Export follows the device profile: formats of its backends, in order, at its preferred precisions."""

from __future__ import annotations

import dataclasses

import pytest
from edgefuse.export.errors import ExportError
from edgefuse.export.selection import plan_formats
from edgefuse.profiles import get_profile


def _plan(profile, *args, **kwargs):  # type: ignore[no-untyped-def]
    prof = get_profile(profile) if isinstance(profile, str) else profile
    return [(c.format, c.precision) for c in plan_formats(prof, *args, **kwargs)]


@pytest.mark.parametrize(
    ("profile", "expected"),
    [
        ("apple/iphone-15-pro", [("coreml", "fp16")]),
        ("generic/smart-speaker", [("tflite", "int8"), ("onnx", "int8")]),
        ("google/pixel-8", [("tflite", "fp32")]),
        ("generic/x86-64", [("onnx", "fp32")]),
        ("nvidia/jetson-orin-nano", [("tensorrt", "fp16"), ("onnx", "fp32")]),
        ("raspberrypi/pi5-usb-mic", [("onnx", "fp32"), ("tflite", "fp32")]),
    ],
)
def test_default_follows_the_profile(profile: str, expected: list) -> None:
    assert _plan(profile) == expected


def test_all_means_the_profiles_backends() -> None:
    assert _plan("google/pixel-8", "all") == [("tflite", "fp32")]
    assert _plan("generic/smart-speaker", "all") == [("tflite", "int8"), ("onnx", "int8")]


def test_a_passed_over_precision_is_said() -> None:
    (onnx,) = [c for c in plan_formats(get_profile("nvidia/jetson-orin-nano")) if c.format == "onnx"]
    assert "fp16 preferred by the profile but not implemented for onnx" in onnx.reason
    assert onnx.backends == ("onnxruntime",)


def test_a_foreign_format_is_refused_naming_the_backends() -> None:
    with pytest.raises(
        ExportError, match=r"no backend of profile 'google/pixel-8'.*\['litert'\].*pass any_format=True"
    ):
        plan_formats(get_profile("google/pixel-8"), ["coreml"])
    (forced,) = plan_formats(get_profile("google/pixel-8"), ["coreml"], any_format=True)
    assert (forced.format, forced.precision, forced.backends) == ("coreml", "fp32", ())
    assert "forced" in forced.reason


def test_custom_profile_preferring_fp16_gets_fp16() -> None:
    prof = dataclasses.replace(get_profile("raspberrypi/pi5-usb-mic"), precisions=("fp16", "fp32"))
    assert _plan(prof) == [("onnx", "fp32"), ("tflite", "fp16")]


@pytest.mark.parametrize(
    ("profile", "formats", "precision", "match"),
    [
        ("generic/smart-speaker", None, "fp16", r"lists precisions \['int8', 'fp32'\], not 'fp16'"),
        ("nvidia/jetson-orin-nano", "all", "fp16", r"onnx at fp16.*--format tensorrt --precision fp16"),
        ("generic/x86-64", ["onxx"], None, r"unknown format 'onxx'.*did you mean 'onnx'"),
        ("generic/x86-64", None, "int4", r"unknown precision 'int4'"),
    ],
)
def test_bad_choices_are_refused(profile: str, formats, precision, match: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ExportError, match=match):
        plan_formats(get_profile(profile), formats, precision)
