"""Checkpoints: weights in safetensors + a JSON description, validated on load.

A checkpoint is a folder with

* ``model.safetensors``: the state dict (tensors only, no pickle);
* ``model.json``: ``format``, ``schema_version``, ``edgefuse_version``, ``kind``, ``modalities``
  (specs with preprocessing parameters), ``label_names``, ``recipe`` (training method and
  hyper-parameters), ``seed``, ``metrics``, ``dataset`` (a description), ``weights_sha256``,
  ``weights_size``, and optionally ``factory`` (``package.module:function`` + JSON kwargs).

Two kinds of model description:

* ``architecture`` (schema 1): an EdgeFuse JSON architecture (:func:`~edgefuse.models.build_model`);
* ``program`` (schema 2): **any** contract model. Each encoder and the head is stored as a
  ``torch.export`` program (``programs/<graph>.json``, the graph only, see :mod:`edgefuse.programs`)
  whose weights are in ``model.safetensors``, plus the fusion's settings. Loading needs no user code:
  export, ``edgefuse bench``/``run`` and the torch reference backend run the programs. Training and
  WiSE-FT-with-training need the modules themselves: a ``factory`` recorded in the checkpoint is
  imported only with ``load_checkpoint(..., trust_code=True)`` (CLI ``--allow-import``).

Loading checks the JSON schema, every file's size and sha256, and that the tensors match the
architecture or programs exactly (names, dtypes, shapes); every mismatch is named in the
:class:`~edgefuse.errors.CheckpointError`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgefuse.errors import CheckpointError, ContractError, EdgeFuseError
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

CHECKPOINT_SCHEMA_VERSION = 2
FORMAT = "edgefuse-checkpoint"
WEIGHTS = "model.safetensors"
INFO = "model.json"
PROGRAMS = "programs"
KINDS = ("architecture", "program")
_REQUIRED = ("format", "schema_version", "modalities", "label_names", "weights_sha256")
_REQUIRED_BY_KIND = {"architecture": ("architecture",), "program": ("programs", "fusion")}
_ALLOWED = {
    *_REQUIRED,
    "architecture",
    "kind",
    "programs",
    "fusion",
    "factory",
    "torch_version",
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
    """A loaded checkpoint: the model and its description.

    ``trainable`` is false for a program checkpoint loaded without its factory: its encoders and head
    are ``torch.export`` graphs fixed in eval mode (right for export, benchmarks and evaluation; not
    for training, where BatchNorm and dropout must run in training mode).
    """

    model: MultimodalModel
    info: dict[str, Any]
    path: Path
    recipe: dict[str, Any] = field(default_factory=dict)
    trainable: bool = True

    @property
    def metrics(self) -> dict[str, Any]:
        """Metrics recorded at training time."""
        return dict(self.info.get("metrics") or {})


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
            checkpoint folder (the message says what it holds), or (for a model without a JSON
            architecture) ``torch.export`` cannot trace an encoder or the head (the message names it).
            Nothing is written in these cases.

    A model built from a JSON architecture is stored as such (``kind: architecture``); any other
    contract model as ``torch.export`` programs (``kind: program``, see the module docstring), with
    ``model.factory`` recorded when it has one.
    """
    import torch

    from edgefuse import __version__, outputs

    out = Path(out_dir)
    outputs.check_output(out, outputs.CHECKPOINT, overwrite=overwrite, error=CheckpointError)
    programs = {} if model.architecture else _trace_programs(model)
    with outputs.stage(out, outputs.CHECKPOINT, overwrite=overwrite, error=CheckpointError) as staging:
        tmp = staging.path
        raw = state_bytes(model)
        (tmp / WEIGHTS).write_bytes(raw)
        described: dict[str, Any]
        if model.architecture:
            described = {"schema_version": 1, "kind": "architecture", "architecture": model.architecture}
        else:
            (tmp / PROGRAMS).mkdir()
            entries = {}
            for graph, data in programs.items():
                rel = f"{PROGRAMS}/{graph}.json"
                (tmp / rel).write_bytes(data)
                entries[graph] = {"file": rel, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
            fusion = model.fusion
            described = {
                "schema_version": 2,
                "kind": "program",
                "programs": entries,
                "fusion": {
                    "dim": int(fusion.dim),
                    "eps": float(fusion.eps),
                    "learn_weights": isinstance(fusion.log_weights, torch.nn.Parameter),
                    "affine": fusion.norm.weight is not None,
                    **({"gate_hidden": int(fusion.gate_hidden)} if fusion.gated else {}),
                },
                "torch_version": torch.__version__,
            }
        if getattr(model, "factory", None) is not None:
            described["factory"] = model.factory.to_dict()
        info = {
            "format": FORMAT,
            **described,
            "edgefuse_version": __version__,
            "modalities": [m.to_dict() for m in model.modalities],
            "label_names": list(model.label_names),
            "recipe": dict(recipe or {}),
            "seed": seed,
            "metrics": dict(metrics or {}),
            "dataset": dict(dataset or {}),
            "weights_sha256": hashlib.sha256(raw).hexdigest(),
            "weights_size": len(raw),
        }
        (tmp / INFO).write_text(json.dumps(info, indent=2, sort_keys=True, default=_json_default))
        staging.commit()
    return out


def _trace_programs(model: MultimodalModel) -> dict[str, bytes]:
    """Each encoder (``encoder_<m>``) and the head as program JSON (see :mod:`edgefuse.programs`)."""
    import torch

    from edgefuse.programs import save_program

    out = {}
    for spec in model.modalities:
        example = torch.zeros((2, *spec.shape), dtype=getattr(torch, spec.dtype))
        if example.is_floating_point():
            example = torch.randn(example.shape, generator=torch.Generator().manual_seed(0))
        out[f"encoder_{spec.name}"] = save_program(
            model.encoders[spec.name], example, f"encoders[{spec.name!r}]"
        )
    fused = torch.randn((2, model.embed_dim), generator=torch.Generator().manual_seed(1))
    out["head"] = save_program(model.head, fused, "head")
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
    kind = info.get("kind", "architecture")
    if kind not in KINDS or (version == 1 and kind != "architecture"):
        raise CheckpointError(
            f"{info_path}: kind {kind!r:.40} is not one of {list(KINDS)} (schema {version})"
        )
    missing = [k for k in (*_REQUIRED, *_REQUIRED_BY_KIND[kind]) if k not in info]
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
    if "architecture" in info and not isinstance(info["architecture"], dict):
        raise CheckpointError(f"{info_path}: architecture must be an object")
    if info.get("kind") == "program":
        _check_program_info(info, info_path)
    if info.get("factory") is not None:
        from edgefuse.factory import FactoryError, parse_factory_ref

        factory = info["factory"]
        try:
            if not isinstance(factory, dict) or set(factory) - {"callable", "kwargs"}:
                raise FactoryError("factory must be an object with 'callable' and 'kwargs'")
            parse_factory_ref(factory.get("callable"), factory.get("kwargs"))
        except FactoryError as exc:
            raise CheckpointError(f"{info_path}: {exc}") from None
    if not isinstance(info["modalities"], list) or not info["modalities"]:
        raise CheckpointError(f"{info_path}: modalities must be a non-empty list of modality specs")
    labels = info["label_names"]
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
        raise CheckpointError(f"{info_path}: label_names must be a non-empty list of strings")
    for key in ("recipe", "metrics", "dataset"):
        if info.get(key) is not None and not isinstance(info[key], dict):
            raise CheckpointError(f"{info_path}: {key} must be an object")


def _check_program_info(info: Mapping[str, Any], info_path: Path) -> None:
    import re

    programs = info["programs"]
    modalities = info["modalities"]
    names = [m.get("name") if isinstance(m, dict) else None for m in modalities]
    want = {*(f"encoder_{n}" for n in names), "head"}
    if not isinstance(programs, dict) or set(programs) != want:
        raise CheckpointError(
            f"{info_path}: programs must be one per encoder and the head, {sorted(map(str, want))}; got "
            f"{sorted(programs)[:20] if isinstance(programs, dict) else type(programs).__name__}"
        )
    for graph, entry in programs.items():
        ok = (
            isinstance(entry, dict)
            and set(entry) == {"file", "sha256", "size"}
            and entry["file"] == f"{PROGRAMS}/{graph}.json"
            and isinstance(entry["sha256"], str)
            and re.fullmatch(r"[0-9a-f]{64}", entry["sha256"]) is not None
            and isinstance(entry["size"], int)
            and not isinstance(entry["size"], bool)
            and entry["size"] > 0
        )
        if not ok:
            raise CheckpointError(
                f"{info_path}: programs[{graph!r}] must be {{file: '{PROGRAMS}/{graph}.json', sha256, size}}; got "
                f"{str(entry)[:160]}"
            )
    fusion = info["fusion"]
    if (
        not isinstance(fusion, dict)
        or set(fusion) - {"gate_hidden"} != {"dim", "eps", "learn_weights", "affine"}
        or not isinstance(fusion["dim"], int)
        or isinstance(fusion["dim"], bool)
        or not isinstance(fusion["eps"], float)
        or not all(isinstance(fusion[k], bool) for k in ("learn_weights", "affine"))
        or type(fusion.get("gate_hidden", 1)) is not int
    ):
        raise CheckpointError(
            f"{info_path}: fusion must be {{dim: int, eps: float, learn_weights: bool, affine: bool, optional "
            f"gate_hidden: int}}; got {str(fusion)[:160]}"
        )
    from edgefuse.manifest import MAX_DIM

    if not 1 <= fusion["dim"] <= MAX_DIM:
        raise CheckpointError(f"{info_path}: fusion.dim {fusion['dim']} is not in 1..{MAX_DIM}")


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
    modalities = _modalities(info, info_path)
    try:
        with torch.device("meta"):
            meta = build_model(info["architecture"], modalities, info["label_names"])
    except (ContractError, TypeError, ValueError, KeyError, RuntimeError, OverflowError) as exc:
        raise CheckpointError(
            f"{info_path} does not describe a valid contract model: {type(exc).__name__}: {exc}"
        ) from None
    return modalities, _state_of(meta)


def _program_files(folder: Path, info: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Each program's JSON: inside the folder, a regular file of its recorded size and sha256, checked."""
    from edgefuse.errors import EdgeFuseError
    from edgefuse.programs import check_program
    from edgefuse.trust import MAX_JSON_BYTES, hash_bytes, loads_json, read_bounded

    out = {}
    for graph, entry in info["programs"].items():
        where = folder / entry["file"]
        try:
            raw = read_bounded(
                _inside(folder, entry["file"]),
                max_bytes=min(entry["size"], MAX_JSON_BYTES),
                what=f"program {graph}",
            )
        except EdgeFuseError as exc:
            raise CheckpointError(f"{where}: {exc}") from None
        if len(raw) != entry["size"] or hash_bytes(raw) != entry["sha256"]:
            raise CheckpointError(
                f"{where} has {len(raw)} bytes and sha256 {hash_bytes(raw)[:12]}...; {INFO} records {entry['size']} "
                f"bytes and {entry['sha256'][:12]}...: the program was modified or belongs to another checkpoint"
            )
        try:
            data = loads_json(raw, what=str(where))
        except (ValueError, EdgeFuseError) as exc:
            raise CheckpointError(f"{where} is not valid JSON: {exc}") from None
        out[graph] = check_program(data, str(where))
    return out


def _modalities(info: Mapping[str, Any], info_path: Path) -> list[ModalitySpec]:
    try:
        return [ModalitySpec.from_dict(m) for m in info["modalities"]]
    except (ContractError, TypeError, ValueError, KeyError, AttributeError) as exc:
        raise CheckpointError(f"{info_path}: invalid modality spec: {type(exc).__name__}: {exc}") from None


def _fusion_module(info: Mapping[str, Any], count: int, info_path: Path) -> Any:
    from edgefuse.models.fusion import MaskedFusion

    f = info["fusion"]
    try:
        return MaskedFusion(
            count,
            f["dim"],
            eps=f["eps"],
            learn_weights=f["learn_weights"],
            affine=f["affine"],
            gate_hidden=f.get("gate_hidden", 0),
        )
    except (EdgeFuseError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{info_path}: fusion {f} cannot be built: {exc}") from None


def _state_of(module: Any) -> dict[str, tuple[str, tuple[int, ...]]]:
    return {k: (str(v.dtype).removeprefix("torch."), tuple(v.shape)) for k, v in module.state_dict().items()}


def _program_state(
    info: Mapping[str, Any], programs: Mapping[str, Mapping[str, Any]], info_path: Path, folder: Path
) -> dict[str, tuple[str, tuple[int, ...]]]:
    """``{tensor: (dtype, shape)}`` the programs and the fusion read, from their descriptions only."""
    import torch

    from edgefuse.programs import expected_state

    expected: dict[str, tuple[str, tuple[int, ...]]] = {}
    for graph, data in programs.items():
        prefix = "head." if graph == "head" else f"encoders.{graph.removeprefix('encoder_')}."
        for k, v in expected_state(data, str(folder / info["programs"][graph]["file"])).items():
            expected[prefix + k] = v
    with torch.device("meta"):
        fusion = _fusion_module(info, len(info["modalities"]), info_path)
    expected.update({f"fusion.{k}": v for k, v in _state_of(fusion).items()})
    return expected


def _compare_state(
    found: Mapping[str, tuple[str, tuple[int, ...]]],
    expected: Mapping[str, tuple[str, tuple[int, ...]]],
    weights: Path,
    against: str,
) -> None:
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    common = set(found) & set(expected)
    wrong = sorted(
        f"{k}: file {found[k][1]} vs {against} {expected[k][1]}"
        for k in common
        if found[k][1] != expected[k][1]
    )
    dtypes = sorted(
        f"{k}: file {found[k][0]} vs {against} {expected[k][0]}"
        for k in common
        if found[k][0] != expected[k][0]
    )
    if missing or unexpected or wrong or dtypes:
        parts = []
        if missing:
            parts.append(f"missing tensors {missing[:20]}")
        if unexpected:
            parts.append(f"unexpected tensors {unexpected[:20]}")
        if wrong:
            parts.append(f"wrong shapes {wrong[:20]}")
        if dtypes:
            parts.append(f"wrong dtypes {dtypes[:20]} (EdgeFuse never converts stored tensors)")
        raise CheckpointError(f"{weights} does not match the {against} in {INFO}: " + "; ".join(parts))


def load_checkpoint(
    path: str | Path, *, info_sha256: str | None = None, trust_code: bool = False
) -> Checkpoint:
    """Load a checkpoint folder into a :class:`~edgefuse.models.contract.MultimodalModel` (eval mode).

    Order of checks, each before anything is allocated from the file's claims: ``model.json`` (bounded,
    validated, optionally pinned by ``info_sha256``); the weights file (inside the folder, regular, its
    recorded size, then its sha256); for an ``architecture`` checkpoint the architecture, built first on
    torch's meta device so absurd or negative sizes cost no memory; for a ``program`` checkpoint each
    program file (size, sha256, then the operator/expression allow-list of :mod:`edgefuse.programs`);
    every tensor's name, dtype and shape in the safetensors header against what the model reads; then
    the tensors themselves, which must be finite.

    Args:
        path: The checkpoint folder.
        info_sha256: Pins ``model.json`` (which records every other file's sha256).
        trust_code: For a program checkpoint that records a ``factory``: import it and build the model
            from the user's own modules (trainable: :attr:`Checkpoint.trainable`). Importing runs the
            user's code, so it is never done by default; without it (or without a factory) the model
            runs the stored programs, which needs no user code but is fixed in eval mode.

    Raises:
        CheckpointError: When the description is invalid, the weights or a program file is missing, not
            a regular file or was modified (size, sha256), a program uses an operator or expression that
            is not allowed, the architecture cannot be built, the tensors do not match it (every missing,
            unexpected, wrongly typed and wrongly shaped tensor is named), or a tensor holds NaN/Inf.
        FactoryError: With ``trust_code``, when the recorded factory cannot be imported or does not
            build a model over the checkpoint's modalities and labels.
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
    found = _safetensors_header(raw, weights)
    info_path = folder / INFO
    trainable = True
    if info.get("kind", "architecture") == "architecture":
        modalities, expected = _architecture_state(info, info_path)
        _compare_state(found, expected, weights, "architecture")
        model = None
    elif trust_code and info.get("factory"):
        from edgefuse.factory import FactoryRef, build_with, import_factory

        modalities = _modalities(info, info_path)
        ref = FactoryRef(info["factory"]["callable"], info["factory"].get("kwargs") or {})
        model = build_with(import_factory(ref, allow_import=True), modalities, info["label_names"])
        model.factory = ref
        _compare_state(found, _state_of(model), weights, f"model built by {ref.callable}")
    else:
        modalities = _modalities(info, info_path)
        programs = _program_files(folder, info)
        _compare_state(found, _program_state(info, programs, info_path, folder), weights, "programs")
        model, trainable = programs, False
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
    if model is None:
        model = build_model(info["architecture"], modalities, info["label_names"])
    elif isinstance(model, dict):
        model = _program_model(info, model, state, modalities, folder)
        if info.get("factory"):  # carried along (a WiSE-FT result records it again), never imported here
            from edgefuse.factory import FactoryRef

            model.factory = FactoryRef(info["factory"]["callable"], info["factory"].get("kwargs") or {})
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(f"{weights} cannot be loaded into the model: {str(exc)[:600]}") from None
    model.eval()
    return Checkpoint(
        model=model, info=info, path=folder, recipe=dict(info.get("recipe") or {}), trainable=trainable
    )


def _program_model(
    info: Mapping[str, Any],
    programs: Mapping[str, Mapping[str, Any]],
    state: Mapping[str, Any],
    modalities: list[ModalitySpec],
    folder: Path,
) -> MultimodalModel:
    """The contract model whose encoders and head are the stored programs (no user code)."""
    from edgefuse.models.contract import MultimodalModel
    from edgefuse.programs import load_program

    def part(graph: str, prefix: str) -> Any:
        sub = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        return load_program(programs[graph], sub, str(folder / info["programs"][graph]["file"]))

    encoders = {m.name: part(f"encoder_{m.name}", f"encoders.{m.name}.") for m in modalities}
    fusion = _fusion_module(info, len(modalities), folder / INFO)
    try:
        return MultimodalModel(encoders, fusion, part("head", "head."), modalities, info["label_names"])
    except ContractError as exc:
        raise CheckpointError(f"{folder}: the stored programs break the model contract: {exc}") from None
