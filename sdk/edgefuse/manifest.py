"""The artifact manifest: a versioned, validated JSON description of an exported model (torch-free).

Written by :mod:`edgefuse.export` next to every artifact and read by :mod:`edgefuse.runtime`. It is
plain JSON (never evaluated), validated on read: unknown schema versions are refused with a clear
message, every required key and type is checked, and every file's sha256 and size can be verified.

Layout of an artifact folder::

    manifest.json          this document
    <graph files>          one per encoder of a present modality + the head (split), or one graph
    reference.npz          bundled reference inputs/outputs for on-device self-checks
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgefuse.errors import EdgeFuseError

__all__ = [
    "MANIFEST_NAME",
    "MANIFEST_SCHEMA_VERSION",
    "ArtifactIntegrityError",
    "Manifest",
    "ManifestError",
    "file_entry",
    "read_manifest",
    "sha256_file",
]

MANIFEST_NAME = "manifest.json"
MANIFEST_SCHEMA_VERSION = 1
FORMATS = ("onnx", "tflite", "coreml", "tensorrt")
LAYOUTS = ("split", "monolithic")
PRECISIONS = ("fp32", "fp16")


class ManifestError(EdgeFuseError, ValueError):
    """A manifest is missing, not valid JSON, from a newer schema, or breaks the schema."""


class ArtifactIntegrityError(EdgeFuseError, ValueError):
    """A file of an artifact is missing or its sha256/size differs from the manifest."""


def sha256_file(path: str | Path) -> str:
    """Return the hex sha256 of a file (or of every file under a folder, for Core ML packages)."""
    p = Path(path)
    h = hashlib.sha256()
    files = sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p]
    for q in files:
        if p.is_dir():
            h.update(str(q.relative_to(p)).encode())
        with q.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def _size(path: Path) -> int:
    return (
        sum(q.stat().st_size for q in path.rglob("*") if q.is_file())
        if path.is_dir()
        else path.stat().st_size
    )


def file_entry(root: Path, rel: str, role: str) -> dict[str, Any]:
    """The manifest entry of one file: path (relative), role, sha256, size in bytes."""
    p = root / rel
    return {"path": rel, "role": role, "sha256": sha256_file(p), "size": _size(p)}


_REQUIRED: dict[str, type | tuple[type, ...]] = {
    "schema_version": int,
    "edgefuse_version": str,
    "toolchain": dict,
    "profile": str,
    "format": str,
    "precision": str,
    "layout": str,
    "modalities": list,
    "model_modalities": list,
    "label_names": list,
    "fusion": dict,
    "graphs": dict,
    "files": list,
    "parity": list,
    "reference": dict,
    "checkpoint": dict,
}
_OPTIONAL = {"created", "notes", "batch"}


@dataclass(frozen=True)
class Manifest:
    """A validated manifest.

    Attributes:
        data: The JSON document.
        root: The artifact folder it was read from (or will be written to).
    """

    data: Mapping[str, Any]
    root: Path = field(default_factory=Path)

    def __post_init__(self) -> None:
        validate(self.data, str(self.root / MANIFEST_NAME))

    @property
    def format(self) -> str:
        """Artifact format (onnx, tflite, coreml, tensorrt)."""
        return str(self.data["format"])

    @property
    def layout(self) -> str:
        """``split`` or ``monolithic``."""
        return str(self.data["layout"])

    @property
    def modality_names(self) -> list[str]:
        """The modalities the artifact accepts, in fusion order."""
        return [m["name"] for m in self.data["modalities"]]

    def write(self) -> Path:
        """Write ``manifest.json`` into :attr:`root`."""
        path = self.root / MANIFEST_NAME
        path.write_text(json.dumps(self.data, indent=2, sort_keys=True))
        return path

    def verify_files(self) -> None:
        """Check that every file exists with the recorded sha256 and size.

        Raises:
            ArtifactIntegrityError: Naming the first file that is missing or differs.
        """
        for entry in self.data["files"]:
            p = self.root / entry["path"]
            if not p.exists():
                raise ArtifactIntegrityError(
                    f"{p} is listed in {MANIFEST_NAME} but missing; re-export the artifact"
                )
            digest = sha256_file(p)
            if digest != entry["sha256"] or _size(p) != entry["size"]:
                raise ArtifactIntegrityError(
                    f"{p} has sha256 {digest[:12]}... ({_size(p)} bytes) but {MANIFEST_NAME} records "
                    f"{entry['sha256'][:12]}... ({entry['size']} bytes): the file was modified or corrupted; re-export"
                )


def validate(data: Any, where: str = MANIFEST_NAME) -> None:
    """Validate a manifest document.

    Raises:
        ManifestError: Naming the key and what was expected.
    """
    if not isinstance(data, Mapping):
        raise ManifestError(f"{where} must hold a JSON object")
    version = data.get("schema_version")
    if isinstance(version, int) and version > MANIFEST_SCHEMA_VERSION:
        raise ManifestError(
            f"{where} has schema_version {version}, newer than this EdgeFuse supports ({MANIFEST_SCHEMA_VERSION}); "
            "upgrade edgefuse on the device or re-export with the installed version"
        )
    for key, kind in _REQUIRED.items():
        if key not in data:
            raise ManifestError(f"{where} is missing {key!r}")
        if not isinstance(data[key], kind) or (kind is int and isinstance(data[key], bool)):
            raise ManifestError(
                f"{where}: {key!r} must be {getattr(kind, '__name__', kind)}; got {type(data[key]).__name__}"
            )
    unknown = sorted(set(data) - set(_REQUIRED) - _OPTIONAL)
    if unknown:
        raise ManifestError(f"{where} has unknown keys {unknown}")
    for key, allowed in (("format", FORMATS), ("layout", LAYOUTS), ("precision", PRECISIONS)):
        if data[key] not in allowed:
            raise ManifestError(f"{where}: {key} {data[key]!r} is not one of {list(allowed)}")
    for i, m in enumerate(data["modalities"]):
        if not isinstance(m, Mapping) or not {"name", "shape", "dtype"} <= set(m):
            raise ManifestError(f"{where}: modalities[{i}] needs name, shape and dtype")
    for i, f in enumerate(data["files"]):
        if not isinstance(f, Mapping) or not {"path", "sha256", "size", "role"} <= set(f):
            raise ManifestError(f"{where}: files[{i}] needs path, role, sha256 and size")
        if Path(f["path"]).is_absolute() or ".." in Path(f["path"]).parts:
            raise ManifestError(
                f"{where}: files[{i}] path {f['path']!r} must stay inside the artifact folder"
            )
    for key in ("weights", "eps"):
        if key not in data["fusion"]:
            raise ManifestError(f"{where}: fusion is missing {key!r}")


def read_manifest(folder: str | Path) -> Manifest:
    """Read and validate ``manifest.json`` of an artifact folder (files are verified by the caller).

    Raises:
        ManifestError: Missing file, invalid JSON, newer schema, or a schema violation.
    """
    root = Path(folder)
    path = root / MANIFEST_NAME
    if not path.is_file():
        raise ManifestError(
            f"{path} not found; pass an artifact folder written by `edgefuse export` (or, for edgefuse.load, a checkpoint folder with model.json)"
        )
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{path} is not valid JSON: {exc}") from None
    return Manifest(data=data, root=root)
