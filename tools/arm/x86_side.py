"""The x86-64 half of the aarch64 check: export artifacts for the ARM profiles and record the x86 outputs.

Run with the project's virtual environment (it needs torch and the exporters)::

    .venv/bin/python tools/arm/x86_side.py --out .cache/arm/artifacts [--full]

For every ARM profile (a profile whose backends include onnxruntime or litert, other than the x86 host) and
every format and precision to check, the reference-shaped checkpoint (the same model the export tests use)
is exported with ``edgefuse export``; then the artifact is loaded here on its backend and ``predict`` runs
on the inputs of every bundled presence pattern. The logits go to ``<artifact>.x86.npz`` beside the
artifact folder (never inside it: an artifact holds only the files its manifest lists), and ``plan.json``
lists what was exported for the aarch64 side (tools/arm/on_device.py).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import time
from pathlib import Path

import numpy as np

#: (profile, format, precision) checked inside ``make test`` (a reduced flow that fits its time budget):
#: one ARM profile per format, at fp32 and int8.
REDUCED = (
    ("generic/smart-speaker", "onnx", "fp32"),
    ("generic/smart-speaker", "onnx", "int8"),
    ("generic/smart-speaker", "tflite", "fp32"),
    ("generic/smart-speaker", "tflite", "int8"),
)
#: Format -> the backend that runs it.
BACKEND_OF = {"onnx": "onnxruntime", "tflite": "litert"}
#: Precisions checked per format (fp16 only where LiteRT runs it; onnxruntime's CPU provider has no fp16).
PRECISIONS_OF = {"onnx": ("fp32", "int8"), "tflite": ("fp32", "fp16", "int8")}
#: Calibration data for int8 (a synthetic audio modality: no download).
CALIBRATION = "av-digits-synthetic-audio"


def full_plan() -> list[tuple[str, str, str]]:
    """Every ARM profile x format x precision the profile lists.

    Returns:
        ``(profile id, format, precision)`` triples, in profile order.
    """
    from edgefuse.profiles import list_profiles

    plan = []
    for profile in list_profiles():
        if profile.id == "generic/x86-64":
            continue
        for fmt, backend in BACKEND_OF.items():
            if backend not in profile.backends:
                continue
            plan += [(profile.id, fmt, p) for p in PRECISIONS_OF[fmt] if p in profile.precisions]
    return plan


def reference_checkpoint(path: Path) -> Path:
    """Write the reference-shaped checkpoint of the export tests (audio logmel + 8x8 image, 10 labels).

    Args:
        path: Checkpoint folder to write.

    Returns:
        The checkpoint folder.
    """
    import torch
    from edgefuse.checkpoint import save_checkpoint
    from edgefuse.models.contract import build_model
    from edgefuse.models.reference import reference_architecture
    from edgefuse.specs import ModalitySpec

    specs = (ModalitySpec("audio", (1, 32, 61), preprocessing="logmel-v1"), ModalitySpec("image", (1, 8, 8)))
    torch.manual_seed(0)
    model = build_model(reference_architecture(specs, 64), specs, [str(i) for i in range(10)])
    with torch.no_grad():  # non-trivial LayerNorm and fusion weights, as after training
        model.fusion.norm.weight.uniform_(0.5, 1.5)
        model.fusion.norm.bias.uniform_(-0.5, 0.5)
        model.fusion.log_weights.copy_(torch.linspace(-0.5, 0.5, len(specs)))
    save_checkpoint(model.eval(), path, overwrite=True)
    return path


def export_one(ckpt: Path, profile: str, fmt: str, precision: str, out: Path) -> None:
    """Export one artifact through the CLI (in this process, so torch is imported once).

    Args:
        ckpt: Checkpoint folder.
        profile: Device profile id.
        fmt: ``onnx`` or ``tflite``.
        precision: ``fp32``, ``fp16`` or ``int8``.
        out: Artifact folder.

    Raises:
        SystemExit: With the CLI's output when the export fails.
    """
    from edgefuse.cli import main

    argv = ["export", str(ckpt), "--profile", profile, "--format", fmt, "--precision", precision]
    argv += ["--out", str(out), "--overwrite"]
    if precision == "int8":
        # The check here is ARM-vs-x86 equality; the accuracy gate of an untrained model is not the point.
        argv += ["--calibration", CALIBRATION, "--calibration-samples", "64", "--max-int8-drop", "100"]
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
            code = main(argv)
    except SystemExit as exc:  # argparse exits on a bad argument
        code = exc.code
    if code != 0:
        raise SystemExit(f"edgefuse {' '.join(argv)} failed ({code}):\n{buf.getvalue()}")


def x86_outputs(artifact: Path, backend: str) -> dict[str, np.ndarray]:
    """Run ``predict`` on every bundled presence pattern of ``artifact`` here, on x86-64.

    Args:
        artifact: Artifact folder.
        backend: Backend name.

    Returns:
        ``{"<pattern>/logits": logits}`` for every reference case.
    """
    import edgefuse

    manifest = json.loads((artifact / "manifest.json").read_text())
    with np.load(artifact / manifest["reference"].get("file", "reference.npz")) as ref:
        arrays = {k: ref[k] for k in ref.files}
    out: dict[str, np.ndarray] = {}
    with edgefuse.load(artifact, backend=backend) as session:
        report = session.verify()
        if not report.passed:
            raise SystemExit(f"{artifact} fails verify on x86-64 already: {report.to_dict()}")
        for case in manifest["reference"]["cases"]:
            label = "+".join(case["pattern"])
            inputs = {m: arrays[f"{label}/input/{m}"] for m in case["pattern"]}
            out[f"{label}/logits"] = np.asarray(session.predict(inputs, on_nonfinite="allow").logits)
    return out


def main(argv: list[str] | None = None) -> int:
    """Export the ARM artifacts and record their x86 outputs.

    Args:
        argv: Command-line arguments (``--out DIR [--full]``).

    Returns:
        Exit code.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--full", action="store_true", help="every ARM profile (default: the reduced set)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    ckpt = reference_checkpoint(args.out / "checkpoint")
    plan = full_plan() if args.full else list(REDUCED)
    entries = []
    for profile, fmt, precision in plan:
        name = f"{profile.replace('/', '__')}__{fmt}-{precision}"
        artifact = args.out / name
        export_one(ckpt, profile, fmt, precision, artifact)
        backend = BACKEND_OF[fmt]
        np.savez(args.out / f"{name}.x86.npz", **x86_outputs(artifact, backend))
        entries.append({"profile": profile, "format": fmt, "precision": precision, "backend": backend,
                        "artifact": name})  # fmt: skip
        print(f"x86: exported {name} ({time.perf_counter() - t0:.0f} s)", flush=True)
    (args.out / "plan.json").write_text(json.dumps({"artifacts": entries}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
