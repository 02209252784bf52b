"""Timings under an emulator are labelled as such, never as latency."""

from __future__ import annotations

import pytest
from edgefuse import emulation


def test_env_flag_marks_the_report(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(emulation.ENV_VAR, "qemu-aarch64 cortex-a53")
    report = emulation.mark({"results": []})
    assert "qemu-aarch64 cortex-a53" in report["emulated"]
    assert "not device latency" in report["emulated"]


def test_native_x86_is_not_marked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(emulation.ENV_VAR, raising=False)
    monkeypatch.setattr(emulation.platform, "machine", lambda: "x86_64")
    assert "emulated" not in emulation.mark({})


def test_arm_interpreter_on_x86_cpuinfo_is_detected(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.delenv(emulation.ENV_VAR, raising=False)
    monkeypatch.setattr(emulation.platform, "machine", lambda: "aarch64")
    fake = tmp_path / "cpuinfo"
    fake.write_text("processor\t: 0\nvendor_id\t: GenuineIntel\n")
    real_path = emulation.Path
    monkeypatch.setattr(emulation, "Path", lambda p: fake if p == "/proc/cpuinfo" else real_path(p))
    assert "qemu" in (emulation.emulated() or "")
