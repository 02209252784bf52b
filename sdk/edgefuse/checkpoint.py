"""Checkpoints: weights in safetensors + a JSON description, validated on load.

A checkpoint is a folder with

* ``model.safetensors``: the state dict (tensors only, no pickle);
* ``model.json``: ``format``, ``schema_version``, ``edgefuse_version``, ``architecture``, ``modalities``
  (specs with preprocessing parameters), ``label_names``, ``recipe`` (training method and
  hyper-parameters), ``seed``, ``metrics``, ``dataset`` (a description), ``weights_sha256``.

Loading checks the JSON schema, the weights' hash, and that the tensors match the architecture exactly
(names and shapes); every mismatch is named in the :class:`~edgefuse.errors.CheckpointError`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgefuse.errors import CheckpointError, ContractError
from edgefuse.specs import ModalitySpec

if TYPE_CHECKING:
    from edgefuse.models.contract import MultimodalModel

__all__ = [
    "CHECKPOINT_SCHEMA_VERSION",
    "Checkpoint",
    "load_checkpoint",
    "read_checkpoint_info",
    "save_checkpoint",
]

CHECKPOINT_SCHEMA_VERSION = 1
FORMAT = "edgefuse-checkpoint"
WEIGHTS = "model.safetensors"
INFO = "model.json"
_REQUIRED = ("format", "schema_version", "architecture", "modalities", "label_names", "weights_sha256")
_ALLOWED = {*_REQUIRED, "edgefuse_version", "recipe", "seed", "metrics", "dataset", "created_by"}


@dataclass
class Checkpoint:
    """A loaded checkpoint: the model and its description."""

    model: MultimodalModel
    info: dict[str, Any]
    path: Path
    recipe: dict[str, Any] = field(default_factory=dict)

    @property
    def metrics(self) -> dict[str, Any]:
        """Metrics recorded at training time."""
        return dict(self.info.get("metrics", {}))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_checkpoint(
    model: MultimodalModel,
    out_dir: str | Path,
    *,
    recipe: Mapping[str, Any] | None = None,
    seed: int | None = None,
    metrics: Mapping[str, Any] | None = None,
    dataset: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``model`` as a checkpoint folder, atomically (a temporary folder renamed at the end).

    Args:
        model: A contract model built with :func:`~edgefuse.models.contract.build_model`.
        out_dir: Destination folder.
        recipe: Training recipe (method, hyper-parameters, intervention...).
        seed: The training seed.
        metrics: Validation/test metrics to record.
        dataset: A JSON-serialisable description of the training data.
        overwrite: Replace an existing checkpoint folder. Without it, an existing folder is an error.

    Returns:
        The checkpoint folder.

    Raises:
        CheckpointError: When ``out_dir`` exists and ``overwrite`` is false, or the model has no
            architecture to record.
    """
    from safetensors.torch import save_file

    from edgefuse import __version__

    out = Path(out_dir)
    if out.exists() and not overwrite:
        raise CheckpointError(
            f"{out} already exists; pass overwrite=True (--overwrite) or choose another folder"
        )
    if not model.architecture:
        raise CheckpointError(
            "the model has no architecture description; build it with edgefuse.models.build_model"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(tmp / WEIGHTS))
        info = {
            "format": FORMAT,
            "schema_version": CHECKPOINT_SCHEMA_VERSION,
            "edgefuse_version": __version__,
            "architecture": model.architecture,
            "modalities": [m.to_dict() for m in model.modalities],
            "label_names": list(model.label_names),
            "recipe": dict(recipe or {}),
            "seed": seed,
            "metrics": dict(metrics or {}),
            "dataset": dict(dataset or {}),
            "weights_sha256": _sha256(tmp / WEIGHTS),
        }
        (tmp / INFO).write_text(json.dumps(info, indent=2, sort_keys=True, default=_json_default))
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (set, tuple)):
        return list(obj)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON-serialisable: {type(obj).__name__}")


def read_checkpoint_info(path: str | Path) -> dict[str, Any]:
    """Read and validate ``model.json`` of a checkpoint folder (no torch needed).

    Raises:
        CheckpointError: Missing folder/file, invalid JSON, wrong format or schema, missing/unknown keys.
    """
    folder = Path(path)
    info_path = folder / INFO
    if not folder.is_dir():
        raise CheckpointError(
            f"checkpoint folder {folder} does not exist (expected a folder with {INFO} and {WEIGHTS})"
        )
    if not info_path.is_file():
        raise CheckpointError(f"{info_path} is missing; {folder} is not an EdgeFuse checkpoint")
    try:
        info = json.loads(info_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{info_path} is not valid JSON: {exc}") from None
    if not isinstance(info, dict):
        raise CheckpointError(f"{info_path} must hold a JSON object")
    if info.get("format") != FORMAT:
        raise CheckpointError(f"{info_path}: format is {info.get('format')!r}; expected {FORMAT!r}")
    version = info.get("schema_version")
    if not isinstance(version, int) or version > CHECKPOINT_SCHEMA_VERSION:
        raise CheckpointError(
            f"{info_path}: schema_version {version!r} is not supported by this EdgeFuse "
            f"(supports <= {CHECKPOINT_SCHEMA_VERSION}); upgrade edgefuse"
        )
    missing = [k for k in _REQUIRED if k not in info]
    if missing:
        raise CheckpointError(f"{info_path} is missing {missing}")
    unknown = sorted(set(info) - _ALLOWED)
    if unknown:
        raise CheckpointError(f"{info_path} has unknown keys {unknown}; allowed: {sorted(_ALLOWED)}")
    return info


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Load a checkpoint folder into a :class:`~edgefuse.models.contract.MultimodalModel` (eval mode).

    Raises:
        CheckpointError: When the description is invalid, the weights file is missing or was modified
            (sha256), or the tensors do not match the architecture (every missing, unexpected and
            wrongly shaped tensor is named).
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from edgefuse.models.contract import build_model

    folder = Path(path)
    info = read_checkpoint_info(folder)
    weights = folder / WEIGHTS
    if not weights.is_file():
        raise CheckpointError(f"{weights} is missing")
    digest = _sha256(weights)
    if digest != info["weights_sha256"]:
        raise CheckpointError(
            f"{weights} has sha256 {digest[:12]}... but {INFO} records {str(info['weights_sha256'])[:12]}...; "
            "the weights were modified or belong to another checkpoint"
        )
    try:
        modalities = [ModalitySpec.from_dict(m) for m in info["modalities"]]
        model = build_model(info["architecture"], modalities, info["label_names"])
    except (ContractError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{folder / INFO} does not describe a valid contract model: {exc}") from None
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{weights} cannot be read as safetensors: {exc}") from None
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(
        f"{k}: file {tuple(state[k].shape)} vs architecture {tuple(expected[k].shape)}"
        for k in set(state) & set(expected)
        if tuple(state[k].shape) != tuple(expected[k].shape)
    )
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing tensors {missing}")
        if unexpected:
            parts.append(f"unexpected tensors {unexpected}")
        if wrong:
            parts.append(f"wrong shapes {wrong}")
        raise CheckpointError(f"{weights} does not match the architecture in {INFO}: " + "; ".join(parts))
    model.load_state_dict(state)
    model.eval()
    return Checkpoint(model=model, info=info, path=folder, recipe=dict(info.get("recipe", {})))
