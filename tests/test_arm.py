"""aarch64: the cross-built wheel and the reduced artifact flow under qemu-aarch64 (tools/arm/arm.py test).

The reduced flow (kernel tests + the smart speaker's ONNX and TFLite artifacts at fp32 and int8) keeps the
default suite inside its time budget; ``make test-arm`` runs every ARM profile. Skipped, with the reason,
only where this host cannot do it: not root (a private mount namespace is needed), or no qemu/cross
compiler/arm64 dpkg architecture (``.ci/run`` installs them in CI, as root).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARM = ROOT / "tools" / "arm" / "arm.py"


def _unmet() -> str | None:
    tools = {"qemu-aarch64-static": "qemu-user-static", "aarch64-linux-gnu-g++": "g++-aarch64-linux-gnu"}
    missing = [pkg for tool, pkg in tools.items() if shutil.which(tool) is None]
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return "needs root and unshare: the emulated checks bind-mount an ARM /proc/cpuinfo (docs/arm.md)"
    if shutil.which("dpkg") is None or shutil.which("apt-get") is None:
        return "needs a Debian host (dpkg, apt-get) for the arm64 Python .debs"
    foreign = subprocess.run(["dpkg", "--print-foreign-architectures"], capture_output=True, text=True).stdout
    if "arm64" not in foreign.split():
        missing.append("the arm64 dpkg architecture (dpkg --add-architecture arm64 && apt-get update)")
    if missing:
        return f"needs {', '.join(missing)}; as root: .ci/run installs them"
    return None


@pytest.mark.slow
def test_aarch64_wheel_and_artifacts_under_qemu() -> None:
    reason = _unmet()
    if reason:
        pytest.skip(reason)
    proc = subprocess.run(
        [sys.executable, str(ARM), "test"],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=ROOT,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    assert "all passed" in out, out[-6000:]
    wheels = sorted((ROOT / "dist").glob("edgefuse-*-cp311-cp311-linux_aarch64.whl"))
    assert wheels, "no linux_aarch64 wheel in dist/"
