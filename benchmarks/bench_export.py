"""Time the export pipeline against raw conversion, in one process.

Usage: python benchmarks/bench_export.py [--profile generic/x86-64] [--checkpoint CKPT] [--json PATH]
    [--onnx-only] [--no-targets]

Measures, for the reference AV-digits model (a trained checkpoint when given, else a freshly initialised
one of the same architecture — conversion time does not depend on the weights):

* ``onnx_export_s``: ``edgefuse export --format onnx`` for one profile (convert + checker + parity for
  every presence pattern at batch 1 and 7 + manifest). Target: <= 15 s.
* ``all_formats_s``: every format that runs here for that profile. Target: <= 90 s.
* ``raw_onnx_s``: the baseline: bare ``torch.onnx.export`` (dynamo) of the same graphs, no validation.
  ``pipeline_over_raw`` = onnx_export_s / raw_onnx_s says what validation and the manifest cost.

``--onnx-only`` skips the all-formats export (a shorter run; its target is then not checked).
Exit status: see benchmarks/_targets.py (1 when a target is missed).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _targets
from _targets import Target

TARGETS = [
    Target("onnx_export_s", "<=", 15.0, "edgefuse export --format onnx"),
    Target("all_formats_s", "<=", 90.0, "edgefuse export --format all"),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="generic/x86-64")
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--onnx-only", action="store_true", help="skip the all-formats export (shorter run)")
    _targets.add_arguments(parser)
    args = parser.parse_args(argv)

    import torch
    from edgefuse.checkpoint import load_checkpoint, save_checkpoint
    from edgefuse.data.audio import AudioFeatureConfig
    from edgefuse.export import export
    from edgefuse.export.formats.base import BatchPlan
    from edgefuse.export.formats.onnx import export_onnx
    from edgefuse.export.graphs import build_graphs
    from edgefuse.models.contract import build_model
    from edgefuse.models.reference import reference_architecture
    from edgefuse.specs import ModalitySpec

    work = Path(tempfile.mkdtemp(prefix="edgefuse-bench-export-"))
    try:
        if args.checkpoint:
            ckpt = Path(args.checkpoint)
            model = load_checkpoint(ckpt).model
        else:
            cfg = AudioFeatureConfig()
            specs = (
                ModalitySpec("audio", cfg.shape, preprocessing="logmel-v1", params=cfg.to_dict()),
                ModalitySpec("image", (1, 8, 8)),
            )
            torch.manual_seed(0)
            model = build_model(reference_architecture(specs), specs, [str(i) for i in range(10)]).eval()
            ckpt = save_checkpoint(model, work / "ckpt")

        # Warm-up: the first torch.export in a process pays one-off import/compile costs for both paths.
        warm = build_graphs(model, list(model.modality_names), monolithic=False)[-1]
        export_onnx(warm, work / "warm.onnx", BatchPlan())

        t0 = time.perf_counter()
        for g in build_graphs(model, list(model.modality_names), monolithic=False):
            export_onnx(g, work / f"raw_{g.name}.onnx", BatchPlan())
        raw = time.perf_counter() - t0

        t0 = time.perf_counter()
        report = export(ckpt, args.profile, "onnx", work / "onnx")
        onnx_s = time.perf_counter() - t0

        all_report, all_s = None, None
        if not args.onnx_only:
            t0 = time.perf_counter()
            all_report = export(ckpt, args.profile, "all", work / "all")
            all_s = time.perf_counter() - t0

        results = {
            "profile": args.profile,
            "raw_onnx_s": raw,
            "onnx_export_s": onnx_s,
            "pipeline_over_raw": onnx_s / raw,
            "all_formats_s": all_s,
            "formats": {
                r.format: {
                    "status": r.status,
                    "seconds": r.seconds,
                    "parity_checks": len(r.parity),
                    "note": r.reason,
                }
                for r in (all_report.results if all_report else [])
            },
            "onnx_parity_checks": len(report.results[0].parity),
        }
        print(f"raw torch.onnx.export of the {len(report.modalities) + 1} graphs: {raw:.1f} s (baseline)")
        print(f"edgefuse export --format onnx ({args.profile}): {onnx_s:.1f} s = {onnx_s / raw:.2f}x raw")
        if all_report:
            print(f"edgefuse export --format all: {all_s:.1f} s")
        for name, r in results["formats"].items():
            print(
                f"  {name:9s} {r['status']:12s} {r['seconds']:6.1f} s  parity checks {r['parity_checks']:3d}  {r['note'] or ''}"
            )
        checked = [t for t in TARGETS if not (args.onnx_only and t.name == "all_formats_s")]
        status, results["targets"] = _targets.check(checked, results, enforce=not args.no_targets)
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))
        return status
    finally:
        shutil.rmtree(work, ignore_errors=True)  # the checkpoint and artifacts are scratch


if __name__ == "__main__":
    sys.exit(main())
