"""Provenance of a generated results page: what produced its numbers, and a fingerprint to detect drift.

The **code path** of the robustness numbers is :data:`CODE_PATH`: the source files that determine them
(data loading and features, models, training, interventions, the grid, WiSE-FT, the sweep's training
path, the claim statistics and the benchmark script that sets the recipe). Each is hashed with sha256
after normalising line endings (CRLF/CR -> LF), so a checkout on another OS gives the same hash. Docs,
tests and unrelated modules are not part of it. :func:`code_fingerprint` is the sha256 of the sorted
``path:hash`` lines.

:func:`provenance` gathers the rest: git commit and whether the tree was dirty, EdgeFuse and torch
versions, torch thread settings, the machine, and the data and recipe fingerprints given by the caller.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "CODE_PATH",
    "REPO_ROOT",
    "changed_files",
    "code_fingerprint",
    "cpu_model",
    "file_hashes",
    "git_state",
    "json_fingerprint",
    "provenance",
]

#: The repository root (this file is ``sdk/edgefuse/provenance.py``).
REPO_ROOT = Path(__file__).resolve().parents[2]

#: Files (relative to the repository root) that determine the robustness numbers and verdict.
CODE_PATH: tuple[str, ...] = (
    "benchmarks/robustness_av_digits.py",
    "sdk/edgefuse/chance.py",
    "sdk/edgefuse/claims.py",
    "sdk/edgefuse/data/audio.py",
    "sdk/edgefuse/data/avdigits.py",
    "sdk/edgefuse/data/base.py",
    "sdk/edgefuse/data/corruptions/__init__.py",
    "sdk/edgefuse/data/corruptions/signals.py",
    "sdk/edgefuse/data/corruptions/specs.py",
    "sdk/edgefuse/data/corruptions/splits.py",
    "sdk/edgefuse/data/registry.py",
    "sdk/edgefuse/degraded.py",
    "sdk/edgefuse/executors.py",
    "sdk/edgefuse/grid_corruptions.py",
    "sdk/edgefuse/grid_report.py",
    "sdk/edgefuse/interventions.py",
    "sdk/edgefuse/jobs.py",
    "sdk/edgefuse/modality_sets.py",
    "sdk/edgefuse/models/contract.py",
    "sdk/edgefuse/models/fusion.py",
    "sdk/edgefuse/models/reference.py",
    "sdk/edgefuse/robustness.py",
    "sdk/edgefuse/train.py",
    "sdk/edgefuse/wiseft.py",
)


def _normalised(path: Path) -> bytes:
    return path.read_bytes().replace(b"\r\n", b"\n").replace(b"\r", b"\n")


def file_hashes(root: str | Path = REPO_ROOT, files: tuple[str, ...] = CODE_PATH) -> dict[str, str]:
    """``{path: sha256}`` of each file of ``files`` under ``root`` (line endings normalised).

    A missing file hashes as ``"missing"`` (so removing one is a change, not an error).
    """
    out = {}
    for rel in files:
        p = Path(root) / rel
        out[rel] = hashlib.sha256(_normalised(p)).hexdigest() if p.is_file() else "missing"
    return out


def code_fingerprint(hashes: Mapping[str, str]) -> str:
    """sha256 of the sorted ``path:sha256`` lines of :func:`file_hashes`."""
    text = "".join(f"{k}:{hashes[k]}\n" for k in sorted(hashes))
    return hashlib.sha256(text.encode()).hexdigest()


def changed_files(recorded: Mapping[str, str], current: Mapping[str, str]) -> list[str]:
    """Paths whose hash differs between two :func:`file_hashes` maps (added, removed or edited)."""
    return sorted(k for k in set(recorded) | set(current) if recorded.get(k) != current.get(k))


def json_fingerprint(value: Any) -> str:
    """sha256 of the canonical JSON of ``value`` (sorted keys, no spaces)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def git_state(root: str | Path = REPO_ROOT) -> dict[str, Any]:
    """``{"commit": sha or None, "dirty": bool or None, "dirty_code_path": [...]}`` of the checkout.

    ``dirty_code_path`` lists the files of :data:`CODE_PATH` with uncommitted changes (the numbers then
    come from a tree no commit holds yet). None values when git or the repository is not available.
    """

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", *args], cwd=root, capture_output=True, text=True, timeout=20, check=True
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    code_status = git("status", "--porcelain", "--", *CODE_PATH)
    return {
        "commit": commit.strip() if commit else None,
        "dirty": bool(status.strip()) if status is not None else None,
        "dirty_code_path": sorted(line[3:] for line in code_status.splitlines()) if code_status else [],
    }


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else what :mod:`platform` says; may be empty)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or ""


def _machine() -> dict[str, Any]:
    return {
        "arch": platform.machine(),
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "os": platform.platform(),
        "python": platform.python_version(),
    }


def provenance(
    *, data: Mapping[str, Any], recipe: Mapping[str, Any], threads: int | None, root: str | Path = REPO_ROOT
) -> dict[str, Any]:
    """Everything a results page records about how it was produced.

    Args:
        data: The data fingerprint fields (e.g. feature cache key, image rows hash, arrays' sha256).
        recipe: The recipe (JSON): its :func:`json_fingerprint` is recorded with it.
        threads: torch intra-op threads each training job ran with.
        root: Repository root.

    Returns:
        JSON: ``git``, ``versions`` (edgefuse, torch, numpy), ``torch_threads`` (per job, and this
        process's default), ``machine``, ``data``, ``recipe`` + ``recipe_fingerprint``,
        ``code_path`` (``files``: per-file sha256, ``fingerprint``).
    """
    import numpy as np
    import torch

    from edgefuse import __version__

    hashes = file_hashes(root)
    return {
        "git": git_state(root),
        "versions": {"edgefuse": __version__, "torch": torch.__version__, "numpy": np.__version__},
        "torch_threads": {"per_job": threads, "process_default": torch.get_num_threads()},
        "deterministic_algorithms": True,
        "machine": _machine(),
        "data": dict(data),
        "recipe": dict(recipe),
        "recipe_fingerprint": json_fingerprint(recipe),
        "code_path": {"files": hashes, "fingerprint": code_fingerprint(hashes)},
    }
