"""The aarch64 half: run under qemu-aarch64 with the aarch64 Python and the installed aarch64 wheel.

Started by tools/arm/arm.py (never by hand on x86: it refuses to run unless the interpreter is aarch64).
For each artifact of ``plan.json``: ``edgefuse.load`` on the artifact's backend, ``verify`` (the bundled
reference cases, within the manifest's tolerance), ``predict`` on every bundled presence pattern compared
with the x86 run (``<artifact>.x86.npz``) within the same tolerance (``|arm - x86| <= atol + rtol |x86|``),
and ``python -m edgefuse run --wav`` on a recording when the artifact takes audio. Prints one table row per
artifact and writes the rows as JSON (``--json``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np


def check_artifact(root: Path, entry: dict[str, Any], wav: Path | None) -> dict[str, Any]:
    """Load, verify and predict one artifact here and compare with the x86 outputs.

    Args:
        root: Folder holding the artifacts and ``plan.json``.
        entry: The artifact's entry in ``plan.json``.
        wav: A recording for ``edgefuse run --wav``, or ``None``.

    Returns:
        The row: profile, format, precision, backend, verify result, max |Δ| vs x86, tolerance, run --wav.
    """
    import edgefuse

    artifact = root / entry["artifact"]
    manifest = json.loads((artifact / "manifest.json").read_text())
    tol = manifest["reference"].get("tolerance") or {}
    atol, rtol = float(tol.get("atol", 1e-4)), float(tol.get("rtol", 1e-4))
    with np.load(artifact / manifest["reference"].get("file", "reference.npz")) as ref:
        arrays = {k: ref[k] for k in ref.files}
    with np.load(root / f"{entry['artifact']}.x86.npz") as x86:
        expected_all = {k: x86[k] for k in x86.files}
    row: dict[str, Any] = {**entry, "atol": atol, "rtol": rtol}
    max_delta, within, patterns = 0.0, True, []
    with edgefuse.load(artifact, backend=entry["backend"]) as session:
        report = session.verify()
        row["verify"] = bool(report.passed)
        row["backend_used"] = report.backend
        for case in manifest["reference"]["cases"]:
            label = "+".join(case["pattern"])
            inputs = {m: arrays[f"{label}/input/{m}"] for m in case["pattern"]}
            got = np.asarray(session.predict(inputs, on_nonfinite="allow").logits, dtype=np.float64)
            expected = np.asarray(expected_all[f"{label}/logits"], dtype=np.float64)
            diff = np.abs(got - expected)
            max_delta = max(max_delta, float(diff.max()))
            within = within and bool(np.all(diff <= atol + rtol * np.abs(expected)))
            patterns.append(label)
    row.update(max_delta=max_delta, within_tolerance=within, patterns=patterns)
    if wav is not None and any(m["name"] == "audio" for m in manifest["modalities"]):
        cmd = [sys.executable, "-m", "edgefuse", "run", str(artifact), "--backend", entry["backend"]]
        cmd += ["--wav", str(wav), "--json"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
        row["run_wav"] = "ok" if proc.returncode == 0 else f"exit {proc.returncode}: {proc.stderr[-400:]}"
    else:
        row["run_wav"] = "n/a (no audio input)" if wav is not None else "n/a (no recording)"
    row["ok"] = row["verify"] and within and not str(row["run_wav"]).startswith("exit")
    return row


def main(argv: list[str] | None = None) -> int:
    """Check every artifact of the plan; exit 1 when any check fails.

    Args:
        argv: ``--root DIR [--wav FILE] [--json FILE] [--only PROFILE,...]``.

    Returns:
        Exit code.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True, help="folder with plan.json and the artifacts")
    parser.add_argument("--wav", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--only", default="", help="comma-separated profile ids (default: all in the plan)")
    args = parser.parse_args(argv)
    if platform.machine() != "aarch64":
        print(
            f"on_device.py runs under aarch64 only; this interpreter is {platform.machine()}", file=sys.stderr
        )
        return 2
    if os.environ.get("EDGEFUSE_ARM_PYTHON"):  # children go through qemu too (no binfmt_misc needed)
        sys.executable = os.environ["EDGEFUSE_ARM_PYTHON"]
    import edgefuse
    from edgefuse import _fusion

    print(f"aarch64 check: Python {platform.python_version()} on {platform.machine()}, edgefuse "
          f"{edgefuse.__version__}, kernel {Path(_fusion.__file__).name}, "
          f"QEMU_CPU={os.environ.get('QEMU_CPU', '?')}", flush=True)  # fmt: skip
    plan = json.loads((args.root / "plan.json").read_text())["artifacts"]
    only = {p for p in args.only.split(",") if p}
    rows = []
    for entry in plan:
        if only and entry["profile"] not in only:
            continue
        t0 = time.perf_counter()
        try:
            row = check_artifact(args.root, entry, args.wav)
        except Exception as exc:  # a failure of one artifact is reported in its row, the others still run
            row = {**entry, "verify": False, "max_delta": float("nan"), "ok": False, "error": repr(exc)}
        row["seconds"] = round(time.perf_counter() - t0, 1)
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0 if rows and all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
