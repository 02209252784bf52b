"""Detect a CPU emulator, so that benchmark timings taken under one are never reported as latency.

Under qemu user mode (how EdgeFuse's aarch64 build is tested on x86-64 hosts, see ``tools/arm/``) a timing
measures the emulator, not the device: often 10-50x slower and with a different profile. ``bench`` marks
its report with :func:`mark` and the CLI labels such figures as emulated wall-clock time.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

#: Set by tools/arm/arm.py for every process it runs under qemu (the value names the emulator and CPU).
ENV_VAR = "EDGEFUSE_EMULATED"
NOTE = (
    "EMULATED ({how}): these timings are wall-clock time of an emulator on another CPU, not device latency; "
    "measure on the device itself"
)


def emulated() -> str | None:
    """Say how this process is emulated, or ``None`` when it runs natively (as far as can be told).

    Two signs: ``$EDGEFUSE_EMULATED`` (set by the aarch64 test runner), and an ARM interpreter that sees
    an x86 ``/proc/cpuinfo`` (qemu user mode passes the host's file through).

    Returns:
        A short description, e.g. ``"qemu-aarch64 cortex-a53"``, or ``None``.
    """
    flag = os.environ.get(ENV_VAR, "").strip()
    if flag and flag.lower() not in {"0", "no", "false"}:
        return flag
    machine = platform.machine().lower()
    if machine.startswith(("aarch64", "arm")):
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")[:65536]
        except OSError:
            return None
        if "GenuineIntel" in cpuinfo or "AuthenticAMD" in cpuinfo:
            return f"{machine} code on an x86 host (qemu user mode)"
    return None


def mark(report: dict[str, Any]) -> dict[str, Any]:
    """Add ``report["emulated"]`` (the note) when this process is emulated; otherwise leave it unchanged.

    Args:
        report: A bench report.

    Returns:
        The same dict.
    """
    how = emulated()
    if how:
        report["emulated"] = NOTE.format(how=how)
    return report
