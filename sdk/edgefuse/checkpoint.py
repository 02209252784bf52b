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
    "info_sha256",
    "load_checkpoint",
    "read_checkpoint_info",
    "save_checkpoint",
    "state_bytes",
    "weights_sha256",
]

CHECKPOINT_SCHEMA_VERSION = 1
FORMAT = "edgefuse-checkpoint"
WEIGHTS = "model.safetensors"
INFO = "model.json"
_REQUIRED = ("format", "schema_version", "architecture", "modalities", "label_names", "weights_sha256")
_ALLOWED = {
    *_REQUIRED,
    "edgefuse_version",
    "recipe",
    "seed",
    "metrics",
    "dataset",
    "created_by",
    "weights_size",
}


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
        return dict(self.info.get("metrics") or {})


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def state_bytes(model: MultimodalModel) -> bytes:
    """The model's state dict serialised as safetensors: exactly the bytes of a checkpoint's weights file.

    Its sha256 (:func:`weights_sha256`) is what a checkpoint records and what an artifact exported from
    an in-memory model records, so the two can be compared.
    """
    from safetensors.torch import save

    return save({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()})


def weights_sha256(model: MultimodalModel) -> str:
    """sha256 of :func:`state_bytes` (the same value :func:`save_checkpoint` records for this model)."""
    return hashlib.sha256(state_bytes(model)).hexdigest()


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
    """Write ``model`` as a checkpoint folder, atomically: ``out_dir`` holds the old or the new checkpoint.

    The checkpoint is written into a temporary folder beside ``out_dir``
    (``.<name>.edgefuse-tmp-<pid>-<random>``), fsync'ed, and swapped in with one atomic exchange (see
    :mod:`edgefuse.outputs`): a crash at any moment leaves the complete old or the complete new checkpoint
    at ``out_dir``, and the next run in that parent folder removes what the crash left behind. Files and
    folders get the process umask's permissions (``0644``/``0755`` under umask 022).

    Args:
        model: A contract model built with :func:`~edgefuse.models.contract.build_model`.
        out_dir: Destination folder.
        recipe: Training recipe (method, hyper-parameters, intervention...).
        seed: The training seed.
        metrics: Validation/test metrics to record.
        dataset: A JSON-serialisable description of the training data.
        overwrite: Replace an existing *checkpoint* folder (``model.json`` with format
            ``"edgefuse-checkpoint"`` and no other files than ``model.json``/``model.safetensors``) or an
            empty folder. Anything else at ``out_dir`` (a folder of other files, an export artifact, a
            regular file, a symlink) is refused, never deleted. Without it, an existing path is an error.

    Returns:
        The checkpoint folder.

    Raises:
        CheckpointError: When ``out_dir`` exists and ``overwrite`` is false, when it is not a replaceable
            checkpoint folder (the message says what it holds), or the model has no architecture to
            record. Nothing is written in these cases.
    """
    from safetensors.torch import save_file

    from edgefuse import __version__, outputs

    out = Path(out_dir)
    outputs.check_output(out, outputs.CHECKPOINT, overwrite=overwrite, error=CheckpointError)
    if not model.architecture:
        raise CheckpointError(
            "the model has no architecture description; build it with edgefuse.models.build_model"
        )
    with outputs.stage(out, outputs.CHECKPOINT, overwrite=overwrite, error=CheckpointError) as staging:
        tmp = staging.path
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
            "weights_size": (tmp / WEIGHTS).stat().st_size,
        }
        (tmp / INFO).write_text(json.dumps(info, indent=2, sort_keys=True, default=_json_default))
        staging.commit()
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


def _info_path_error(info_path: Path, exc: Exception) -> CheckpointError:
    return CheckpointError(f"{info_path}: {exc}")


def read_checkpoint_info(path: str | Path, *, info_sha256: str | None = None) -> dict[str, Any]:
    """Read and validate ``model.json`` of a checkpoint folder (no torch needed).

    The file is read through :mod:`edgefuse.trust`: a regular file inside the folder, at most
    :data:`~edgefuse.trust.MAX_JSON_BYTES`, nesting bounded.

    Args:
        path: The checkpoint folder.
        info_sha256: When given, the sha256 ``model.json`` must have (pins the checkpoint: the weights
            are pinned through the hash it records).

    Raises:
        CheckpointError: Missing folder/file, not a regular file, invalid JSON, wrong format or schema,
            missing/unknown keys, values of the wrong type, or a pinned sha256 that differs.
    """
    from edgefuse.errors import EdgeFuseError
    from edgefuse.manifest import ManifestError, check_pin
    from edgefuse.trust import MAX_JSON_BYTES, hash_bytes, loads_json, read_bounded

    folder = _folder(path)
    info_path = folder / INFO
    if not folder.is_dir():
        raise CheckpointError(
            f"checkpoint folder {folder} does not exist (expected a folder with {INFO} and {WEIGHTS})"
        )
    if not info_path.exists() and not info_path.is_symlink():
        raise CheckpointError(f"{info_path} is missing; {folder} is not an EdgeFuse checkpoint")
    try:
        real = _inside(folder, INFO)
        raw = read_bounded(real, max_bytes=MAX_JSON_BYTES, what="checkpoint description")
        check_pin(hash_bytes(raw), info_sha256, info_path)
        info = loads_json(raw, what=str(info_path))
    except ManifestError as exc:
        raise CheckpointError(
            str(exc).replace("manifest_sha256", "manifest_sha256 (for a checkpoint: of model.json)")
        ) from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, a 5000-digit integer
        raise CheckpointError(f"{info_path} is not valid JSON: {exc}") from None
    except EdgeFuseError as exc:
        if isinstance(exc, CheckpointError):
            raise
        raise CheckpointError(str(exc)) from None
    if not isinstance(info, dict):
        raise CheckpointError(f"{info_path} must hold a JSON object")
    if info.get("format") != FORMAT:
        raise CheckpointError(f"{info_path}: format is {info.get('format')!r:.100}; expected {FORMAT!r}")
    version = info.get("schema_version")
    if (
        not isinstance(version, int)
        or isinstance(version, bool)
        or not 1 <= version <= CHECKPOINT_SCHEMA_VERSION
    ):
        raise CheckpointError(
            f"{info_path}: schema_version {version!r:.40} is not supported by this EdgeFuse "
            f"(supports 1..{CHECKPOINT_SCHEMA_VERSION}); upgrade edgefuse"
        )
    missing = [k for k in _REQUIRED if k not in info]
    if missing:
        raise CheckpointError(f"{info_path} is missing {missing}")
    unknown = sorted(set(info) - _ALLOWED)
    if unknown:
        raise CheckpointError(f"{info_path} has unknown keys {unknown}; allowed: {sorted(_ALLOWED)}")
    _check_info_types(info, info_path)
    return info


def _folder(path: object) -> Path:
    """A checkpoint folder path given by the caller: str or os.PathLike without NUL bytes."""
    from edgefuse.trust import user_path

    return user_path(path, error=CheckpointError, what="a checkpoint folder")


def _check_info_types(info: Mapping[str, Any], info_path: Path) -> None:
    digest = info["weights_sha256"]
    if not isinstance(digest, str) or len(digest) != 64 or set(digest) - set("0123456789abcdef"):
        raise CheckpointError(
            f"{info_path}: weights_sha256 must be 64 lowercase hex digits; got {digest!r:.80}"
        )
    size = info.get("weights_size")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
        raise CheckpointError(f"{info_path}: weights_size must be a byte count >= 0; got {size!r:.40}")
    if not isinstance(info["architecture"], dict):
        raise CheckpointError(f"{info_path}: architecture must be an object")
    if not isinstance(info["modalities"], list) or not info["modalities"]:
        raise CheckpointError(f"{info_path}: modalities must be a non-empty list of modality specs")
    labels = info["label_names"]
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
        raise CheckpointError(f"{info_path}: label_names must be a non-empty list of strings")
    for key in ("recipe", "metrics", "dataset"):
        if info.get(key) is not None and not isinstance(info[key], dict):
            raise CheckpointError(f"{info_path}: {key} must be an object")


def info_sha256(path: str | Path) -> str:
    """The sha256 of a checkpoint's ``model.json`` (what ``manifest_sha256`` pins), read safely.

    Raises:
        CheckpointError: ``model.json`` is missing, outside the folder, not a regular file or too large.
    """
    from edgefuse.errors import EdgeFuseError
    from edgefuse.trust import MAX_JSON_BYTES, hash_bytes, read_bounded

    folder = Path(path)
    try:
        return hash_bytes(
            read_bounded(_inside(folder, INFO), max_bytes=MAX_JSON_BYTES, what="checkpoint description")
        )
    except EdgeFuseError as exc:
        raise CheckpointError(f"{folder / INFO}: {exc}") from None


def _inside(folder: Path, name: str) -> Path:
    """The real path of ``folder/name``: inside the folder after resolving symlinks."""
    from edgefuse.trust import resolve_inside

    return resolve_inside(folder, name, what=f"checkpoint {folder}")


#: Largest weights file read without a recorded ``weights_size`` (older checkpoints).
MAX_WEIGHTS_BYTES = 16 << 30
_ST_DTYPES = {
    "F64": "float64",
    "F32": "float32",
    "F16": "float16",
    "BF16": "bfloat16",
    "I64": "int64",
    "I32": "int32",
    "I16": "int16",
    "I8": "int8",
    "U8": "uint8",
    "BOOL": "bool",
}


def _read_weights(folder: Path, info: Mapping[str, Any]) -> bytes:
    """The weights' bytes: inside the folder, a regular file, size (if recorded) then sha256 checked."""
    from edgefuse.errors import EdgeFuseError
    from edgefuse.trust import hash_bytes, read_bounded

    weights = folder / WEIGHTS
    size = info.get("weights_size")
    try:
        real = _inside(folder, WEIGHTS)
        raw = read_bounded(
            real, max_bytes=MAX_WEIGHTS_BYTES if size is None else size, what="checkpoint weights"
        )
    except EdgeFuseError as exc:
        raise CheckpointError(f"{weights}: {exc}") from None
    if size is not None and len(raw) != size:
        raise CheckpointError(
            f"{weights} has {len(raw)} bytes but {INFO} records {size}: the weights were truncated or replaced"
        )
    digest = hash_bytes(raw)
    if digest != info["weights_sha256"]:
        raise CheckpointError(
            f"{weights} has sha256 {digest[:12]}... but {INFO} records {str(info['weights_sha256'])[:12]}...; "
            "the weights were modified or belong to another checkpoint"
        )
    return raw


def _safetensors_header(raw: bytes, weights: Path) -> dict[str, tuple[str, tuple[int, ...]]]:
    """``{tensor: (dtype name, shape)}`` from a safetensors header, without loading any tensor."""
    import struct

    from edgefuse.errors import EdgeFuseError
    from edgefuse.trust import loads_json

    def bad(why: str) -> CheckpointError:
        return CheckpointError(f"{weights} is not a valid safetensors file: {why}")

    if len(raw) < 8:
        raise bad("shorter than its 8-byte header length")
    (n,) = struct.unpack("<Q", raw[:8])
    if n > len(raw) - 8 or n > 100 << 20:
        raise bad(f"its header declares {n} bytes but the file has {len(raw)}")
    try:
        header = loads_json(raw[8 : 8 + n], what=str(weights))
    except (ValueError, EdgeFuseError) as exc:
        raise bad(f"its header is not JSON ({exc})") from None
    if not isinstance(header, dict):
        raise bad("its header is not a JSON object")
    out = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        dtype = entry.get("dtype") if isinstance(entry, dict) else None
        shape = entry.get("shape") if isinstance(entry, dict) else None
        if (
            not isinstance(dtype, str)
            or dtype not in _ST_DTYPES
            or not isinstance(shape, list)
            or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
        ):
            raise bad(f"tensor {name!r} has no valid dtype/shape ({str(entry)[:120]})")
        out[name] = (_ST_DTYPES[dtype], tuple(shape))
    return out


#: Most values (list items, object entries) an architecture description may hold.
MAX_ARCHITECTURE_NODES = 10_000


def _json_nodes(data: Any) -> int:
    """How many values a JSON document holds (iteratively; nesting is already bounded when read)."""
    count, stack = 0, [data]
    while stack:
        node = stack.pop()
        count += 1
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return count


def _architecture_state(
    info: Mapping[str, Any], info_path: Path
) -> tuple[list[ModalitySpec], dict[str, tuple[str, tuple[int, ...]]]]:
    """Build the architecture on torch's meta device (no memory) and return ``{tensor: (dtype, shape)}``."""
    import torch

    from edgefuse.models.contract import build_model

    nodes = _json_nodes(info["architecture"])
    if nodes > MAX_ARCHITECTURE_NODES:
        raise CheckpointError(
            f"{info_path}: architecture has {nodes} entries, more than the {MAX_ARCHITECTURE_NODES} any EdgeFuse "
            "architecture has (e.g. a head_hidden list of a million layers); refusing to build it"
        )
    try:
        modalities = [ModalitySpec.from_dict(m) for m in info["modalities"]]
        with torch.device("meta"):
            meta = build_model(info["architecture"], modalities, info["label_names"])
    except (ContractError, TypeError, ValueError, KeyError, RuntimeError, OverflowError) as exc:
        raise CheckpointError(
            f"{info_path} does not describe a valid contract model: {type(exc).__name__}: {exc}"
        ) from None
    state = {k: (str(v.dtype).removeprefix("torch."), tuple(v.shape)) for k, v in meta.state_dict().items()}
    return modalities, state


def load_checkpoint(path: str | Path, *, info_sha256: str | None = None) -> Checkpoint:
    """Load a checkpoint folder into a :class:`~edgefuse.models.contract.MultimodalModel` (eval mode).

    Order of checks, each before anything is allocated from the file's claims: ``model.json`` (bounded,
    validated, optionally pinned by ``info_sha256``); the weights file (inside the folder, regular, its
    recorded size, then its sha256); the architecture, built first on torch's meta device so absurd or
    negative sizes cost no memory; every tensor's name, dtype and shape in the safetensors header
    against that architecture; then the tensors themselves, which must be finite.

    Raises:
        CheckpointError: When the description is invalid, the weights file is missing, not a regular
            file or was modified (size, sha256), the architecture cannot be built, the tensors do not
            match it (every missing, unexpected, wrongly typed and wrongly shaped tensor is named), or a
            tensor holds NaN/Inf.
    """
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load as load_bytes

    from edgefuse.models.contract import build_model

    folder = _folder(path)
    info = read_checkpoint_info(folder, info_sha256=info_sha256)
    weights = folder / WEIGHTS
    if not weights.exists() and not weights.is_symlink():
        raise CheckpointError(f"{weights} is missing")
    raw = _read_weights(folder, info)
    modalities, expected = _architecture_state(info, folder / INFO)
    found = _safetensors_header(raw, weights)
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    wrong = sorted(
        f"{k}: file {found[k][1]} vs architecture {expected[k][1]}"
        for k in set(found) & set(expected)
        if found[k][1] != expected[k][1]
    )
    dtypes = sorted(
        f"{k}: file {found[k][0]} vs architecture {expected[k][0]}"
        for k in set(found) & set(expected)
        if found[k][0] != expected[k][0]
    )
    if missing or unexpected or wrong or dtypes:
        parts = []
        if missing:
            parts.append(f"missing tensors {missing}")
        if unexpected:
            parts.append(f"unexpected tensors {unexpected}")
        if wrong:
            parts.append(f"wrong shapes {wrong}")
        if dtypes:
            parts.append(f"wrong dtypes {dtypes} (EdgeFuse never converts stored tensors)")
        raise CheckpointError(f"{weights} does not match the architecture in {INFO}: " + "; ".join(parts))
    try:
        state = load_bytes(raw)
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{weights} cannot be read as safetensors: {exc}") from None
    bad = sorted(k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all()))
    if bad:
        raise CheckpointError(
            f"{weights}: tensors {bad[:10]}{' ...' if len(bad) > 10 else ''} hold NaN or Inf; the model would "
            "produce NaN logits. Retrain or restore the checkpoint (lower the learning rate if training diverged)"
        )
    model = build_model(info["architecture"], modalities, info["label_names"])
    model.load_state_dict(state)
    model.eval()
    return Checkpoint(model=model, info=info, path=folder, recipe=dict(info.get("recipe") or {}))
