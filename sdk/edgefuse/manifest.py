"""The artifact manifest: a versioned, validated JSON description of an exported model (torch-free).

Written by :mod:`edgefuse.export` next to every artifact and read by :mod:`edgefuse.runtime`. It is
plain JSON (never evaluated), validated on read: unknown schema versions are refused with a clear
message, every required key and type is checked, and every file's sha256 and size can be verified.

Layout of an artifact folder::

    manifest.json          this document
    <graph files>          one per encoder of a present modality + the head (split), or one graph
    reference.npz          bundled reference inputs/outputs for on-device self-checks

Reliability-gated fusion (schema 2): ``fusion.row_weights = {"from": "reliability", "floor": 0.001}``
says each row's fusion weight of modality ``m`` is ``fusion.weights[m]`` times that row's output
``from`` (``[B, 1]``, a second output of every encoder graph of a split artifact), clipped to
``[floor, 1]``; the monolithic graph computes them inside. A manifest is written with the oldest schema
that describes it (1 without gates), so an EdgeFuse that knows only schema 1 still reads ungated
artifacts and refuses a gated one with "upgrade edgefuse" rather than fusing without the gates.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgefuse.errors import EdgeFuseError
from edgefuse.trust import (
    MAX_JSON_BYTES,
    ArtifactIntegrityError,
    UnsafeFileError,
    hash_bytes,
    loads_json,
    read_bounded,
    resolve_inside,
    verify_listed,
)

__all__ = [
    "MANIFEST_NAME",
    "MANIFEST_SCHEMA_VERSION",
    "ArtifactIntegrityError",
    "Manifest",
    "ManifestError",
    "check_pin",
    "file_entry",
    "read_manifest",
    "schema_version_for",
    "sha256_file",
]

MANIFEST_NAME = "manifest.json"
#: The newest schema this EdgeFuse reads (2 added ``fusion.row_weights``); see :func:`schema_version_for`.
MANIFEST_SCHEMA_VERSION = 2
#: The schema that introduced reliability-gated fusion (``fusion.row_weights``).
ROW_WEIGHTS_SCHEMA_VERSION = 2
FORMATS = ("onnx", "tflite", "coreml", "tensorrt")
LAYOUTS = ("split", "monolithic")
PRECISIONS = ("fp32", "fp16", "int8")


class ManifestError(EdgeFuseError, ValueError):
    """A manifest is missing, not valid JSON, from a newer schema, or breaks the schema."""


def schema_version_for(data: Mapping[str, Any]) -> int:
    """The oldest schema version that describes ``data`` (what the exporter writes): 2 with gates, else 1."""
    fusion = data.get("fusion")
    gated = isinstance(fusion, Mapping) and fusion.get("row_weights") is not None
    return ROW_WEIGHTS_SCHEMA_VERSION if gated else 1


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
_OPTIONAL = {"created", "notes", "batch", "selection", "int8"}
#: dtypes a graph input/output or a modality may declare.
DTYPES = ("float32", "float16", "int64", "int32", "int8", "uint8", "bool")
#: Bounds that no real artifact comes near; they keep a forged manifest from sizing allocations.
MAX_DIM = 1 << 20
MAX_ROW_ELEMENTS = 1 << 24
MAX_LABELS = 1 << 16
MAX_REFERENCE_BATCH = 1024
MAX_REFERENCE_CASES = 1024
_FLT_MAX = 3.4028234663852886e38
_FLT_MIN = 1.1754943508222875e-38  # smallest normal float32


@dataclass(frozen=True)
class Manifest:
    """A validated manifest.

    Attributes:
        data: The JSON document.
        root: The artifact folder it was read from (or will be written to).
        sha256: The sha256 of ``manifest.json`` as read (``None`` for a manifest built in memory).
    """

    data: Mapping[str, Any]
    root: Path = field(default_factory=Path)
    sha256: str | None = None

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

    def entry(self, rel: str) -> Mapping[str, Any] | None:
        """The ``files[]`` entry of the path ``rel``, or ``None`` when it is not listed."""
        return next((f for f in self.data["files"] if f["path"] == rel), None)

    def checked_path(self, rel: str, what: str) -> Path:
        """The verified real path of a listed file: inside the folder, regular, size then sha256 checked.

        Raises:
            UnsafeFileError: ``rel`` is not listed in ``files``, leaves the folder or is not a regular file.
            ArtifactIntegrityError: Missing, or its size or sha256 differs from ``files``.
        """
        entry = self.entry(rel)
        if entry is None:
            raise UnsafeFileError(
                f"{self.root / MANIFEST_NAME}: {what} names {rel!r}, which is not listed in files[] with its "
                "size and sha256 (rule: every file EdgeFuse opens is listed and checked); re-export"
            )
        return verify_listed(self.root, entry, what=f"{self.root / MANIFEST_NAME}: {what}")

    def verify_files(self) -> dict[str, Path]:
        """Check every listed file: inside the folder, a regular file (or plain package folder), size, sha256.

        Returns:
            ``{listed path: its resolved, verified path}`` (hand these to a backend; no need to hash again).

        Raises:
            UnsafeFileError: A path leaves the folder or names a FIFO, device, socket...
            ArtifactIntegrityError: Naming the first file that is missing or differs.
        """
        return {
            entry["path"]: verify_listed(
                self.root, entry, what=f"{self.root / MANIFEST_NAME}: files[] entry {entry['path']!r}"
            )
            for entry in self.data["files"]
        }


def _fail(where: str, msg: str) -> ManifestError:
    return ManifestError(
        f"{where}: {msg}; re-export the artifact (or restore the manifest written by edgefuse export)"
    )


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _as_float(x: Any) -> float:
    """``float(x)``, with an integer too large for a float read as infinity (then refused as such)."""
    try:
        return float(x)
    except OverflowError:
        return math.inf if x > 0 else -math.inf


def _is_num(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _str_list(value: Any, where: str, key: str, *, unique: bool = True, min_len: int = 0) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise _fail(where, f"{key} must be a list of non-empty strings; got {value!r:.200}")
    if unique and len(set(value)) != len(value):
        raise _fail(where, f"{key} has duplicates: {value!r:.200}")
    if len(value) < min_len:
        raise _fail(where, f"{key} must have at least {min_len} entries")
    return value


def _shape(value: Any, where: str, key: str, *, batch: bool) -> tuple[int, ...]:
    """A shape list: positive ints (the first may be -1/None for a dynamic batch when ``batch``)."""
    if not isinstance(value, list) or not value or len(value) > 8:
        raise _fail(where, f"{key} must be a list of 1 to 8 dimensions; got {value!r:.200}")
    dims = list(value)
    if batch and (dims[0] is None or dims[0] == -1):
        dims = dims[1:]
    if not all(_is_int(d) and 1 <= d <= MAX_DIM for d in dims):
        raise _fail(where, f"{key} {value!r:.200} must hold positive ints <= {MAX_DIM} (batch: -1)")
    if math.prod(dims) > MAX_ROW_ELEMENTS:
        raise _fail(where, f"{key} {value!r:.200} has more than {MAX_ROW_ELEMENTS} elements per row")
    return tuple(dims)


def _float32_vector(value: Any, where: str, key: str, n: int, *, positive: bool) -> None:
    if not isinstance(value, list) or len(value) != n or not all(_is_num(v) for v in value):
        got = f"{len(value)} values" if isinstance(value, list) else type(value).__name__
        raise _fail(where, f"fusion.{key} must be a list of {n} numbers; got {got}")
    for i, v in enumerate(value):
        f = _as_float(v)
        if not math.isfinite(f) or abs(f) > _FLT_MAX:
            raise _fail(where, f"fusion.{key}[{i}] = {v!r} is not a finite float32")
        if positive and not f >= _FLT_MIN:
            raise _fail(
                where, f"fusion.{key}[{i}] = {v!r} must be > 0 and a normal float32 (>= {_FLT_MIN:.3g})"
            )
    if positive and not math.fsum(_as_float(v) for v in value) <= _FLT_MAX:
        raise _fail(where, f"fusion.{key} sum to more than float32 can hold")


def _check_fusion(data: Mapping[str, Any], where: str) -> int:
    fusion = data["fusion"]
    n = len(data["modalities"])
    for key in ("weights", "eps", "dim"):
        if key not in fusion:
            raise _fail(where, f"fusion is missing {key!r}")
    unknown = sorted(set(fusion) - {"weights", "eps", "dim", "gamma", "beta", "row_weights"})
    if unknown:
        raise _fail(where, f"fusion has unknown keys {unknown}")
    dim = fusion["dim"]
    if not _is_int(dim) or not 1 <= dim <= MAX_DIM:
        raise _fail(where, f"fusion.dim must be an int in [1, {MAX_DIM}]; got {dim!r}")
    _float32_vector(fusion["weights"], where, "weights", n, positive=True)
    eps = fusion["eps"]
    if not _is_num(eps) or not (_FLT_MIN <= _as_float(eps) <= 1.0):
        raise _fail(
            where,
            f"fusion.eps = {eps!r} must be a number in [{_FLT_MIN:.3g}, 1] (it is used as float32; "
            "smaller values become 0 or denormal there)",
        )
    for key in ("gamma", "beta"):
        if fusion.get(key) is not None:
            _float32_vector(fusion[key], where, key, dim, positive=False)
    if fusion.get("row_weights") is not None:
        _check_row_weights(data, where)
    return dim


#: The longest output name ``fusion.row_weights.from`` may give.
MAX_OUTPUT_NAME = 64


def _check_row_weights(data: Mapping[str, Any], where: str) -> None:
    """``fusion.row_weights``: ``{"from": <encoder output name>, "floor": <normal float32 in (0, 1]>}``."""
    rw = data["fusion"]["row_weights"]
    if data["schema_version"] < ROW_WEIGHTS_SCHEMA_VERSION:
        raise _fail(
            where,
            f"fusion.row_weights (reliability-gated fusion) needs schema_version >= {ROW_WEIGHTS_SCHEMA_VERSION}; "
            f"the manifest says {data['schema_version']}",
        )
    if not isinstance(rw, Mapping) or set(rw) != {"from", "floor"}:
        got = sorted(rw) if isinstance(rw, Mapping) else type(rw).__name__
        raise _fail(where, f"fusion.row_weights must be an object with exactly 'from' and 'floor'; got {got}")
    name = rw["from"]
    if not isinstance(name, str) or not name.isidentifier() or len(name) > MAX_OUTPUT_NAME:
        raise _fail(
            where,
            f"fusion.row_weights.from must name an encoder graph output (an identifier of at most "
            f"{MAX_OUTPUT_NAME} characters, e.g. 'reliability'); got {name!r:.80}",
        )
    floor = rw["floor"]
    if not _is_num(floor) or not _FLT_MIN <= _as_float(floor) <= 1.0:
        raise _fail(
            where,
            f"fusion.row_weights.floor = {floor!r:.40} must be a number in [{_FLT_MIN:.3g}, 1] (the smallest "
            "reliability; a normal float32 > 0)",
        )
    for i, w in enumerate(data["fusion"]["weights"]):
        if not _as_float(w) * _as_float(floor) >= _FLT_MIN:
            raise _fail(
                where,
                f"fusion.weights[{i}] = {w!r} times row_weights.floor {floor!r} is below float32's smallest "
                f"normal ({_FLT_MIN:.3g}): a gated-down row's weight would not be a usable float32",
            )


def _check_io(entries: Any, where: str, key: str) -> list[tuple[str, tuple[int, ...], str]]:
    if not isinstance(entries, list) or not entries:
        raise _fail(where, f"{key} must be a non-empty list of {{name, shape, dtype}}")
    out = []
    for i, e in enumerate(entries):
        k = f"{key}[{i}]"
        if not isinstance(e, Mapping) or not isinstance(e.get("name"), str) or not e["name"]:
            raise _fail(where, f"{k} must be an object with a non-empty name, a shape and a dtype")
        dtype = e.get("dtype", "float32")
        if dtype not in DTYPES:
            raise _fail(where, f"{k}.dtype {dtype!r} is not one of {list(DTYPES)}")
        out.append((e["name"], _shape(e.get("shape"), where, f"{k}.shape", batch=True), dtype))
    return out


def _check_graphs(data: Mapping[str, Any], where: str, dim: int) -> None:
    graphs = data["graphs"]
    listed = {f["path"] for f in data["files"]}
    labels = len(data["label_names"])
    parsed: dict[str, tuple[list, list]] = {}
    for gname, graph in graphs.items():
        g = f"graphs[{gname!r}]"
        if not isinstance(graph, Mapping) or not {"files", "inputs", "outputs"} <= set(graph):
            raise _fail(where, f"{g} must be an object with files, inputs and outputs")
        files = graph["files"]
        if not isinstance(files, list) or not files or not all(isinstance(f, str) for f in files):
            raise _fail(where, f"{g}.files must be a non-empty list of relative paths; got {files!r:.200}")
        for f in files:
            if f not in listed:
                raise _fail(
                    where,
                    f"{g} names the file {f!r}, which is not listed in files[] with its size and sha256 "
                    "(rule: every file EdgeFuse opens is listed and checked)",
                )
        for key in ("batch", "details", "cost"):
            if graph.get(key) is not None and not isinstance(graph[key], Mapping):
                raise _fail(where, f"{g}.{key} must be an object or null")
        parsed[gname] = (
            _check_io(graph["inputs"], where, f"{g}.inputs"),
            _check_io(graph["outputs"], where, f"{g}.outputs"),
        )

    specs = {m["name"]: m for m in data["modalities"]}
    if data["layout"] == "split":
        for name, spec in specs.items():
            gname = spec.get("graph", f"encoder_{name}")
            if gname not in parsed:
                raise _fail(where, f"modality {name!r} names the graph {gname!r}, which graphs does not hold")
            (_, in_shape, in_dtype), *_ = parsed[gname][0]
            if in_shape != tuple(spec["shape"]) or in_dtype != spec["dtype"]:
                raise _fail(
                    where,
                    f"graph {gname!r} takes {list(in_shape)} {in_dtype} per row but modality {name!r} declares "
                    f"{spec['shape']} {spec['dtype']}",
                )
            (_, out_shape, _), *_ = parsed[gname][1]
            if out_shape != (dim,):
                raise _fail(
                    where, f"graph {gname!r} outputs {list(out_shape)} per row but fusion.dim is {dim}"
                )
            _check_encoder_outputs(data, where, gname, parsed[gname][1])
        if "head" not in parsed:
            raise _fail(where, "a split artifact needs a 'head' graph; graphs holds " + str(sorted(parsed)))
        (_, head_in, _), *_ = parsed["head"][0]
        (_, head_out, _), *_ = parsed["head"][1]
        if head_in != (dim,):
            raise _fail(where, f"graph 'head' takes {list(head_in)} per row but fusion.dim is {dim}")
    else:
        gname = "model" if "model" in parsed else next(iter(parsed), None)
        if gname is None:
            raise _fail(where, "a monolithic artifact needs one graph; graphs is empty")
        inputs = {n: (s, d) for n, s, d in parsed[gname][0]}
        for name, spec in specs.items():
            if name in inputs and inputs[name] != (tuple(spec["shape"]), spec["dtype"]):
                raise _fail(
                    where,
                    f"graph {gname!r} input {name!r} is {list(inputs[name][0])} {inputs[name][1]} per row but the "
                    f"modality declares {spec['shape']} {spec['dtype']}",
                )
        (_, head_out, _), *_ = parsed[gname][1]
    if head_out != (labels,):
        raise _fail(
            where, f"the output logits have {list(head_out)} per row but label_names holds {labels} labels"
        )


def _check_encoder_outputs(
    data: Mapping[str, Any], where: str, gname: str, outputs: list[tuple[str, tuple[int, ...], str]]
) -> None:
    """An encoder graph outputs the embedding, plus the reliability ``[B, 1]`` exactly when gated."""
    rw = data["fusion"].get("row_weights")
    names = [n for n, _, _ in outputs]
    if rw is None:
        if len(outputs) != 1:
            raise _fail(
                where,
                f"graph {gname!r} declares outputs {names}, but an encoder graph of an ungated fusion has one "
                "(the embedding); a manifest whose fusion lost its row_weights would fuse without the gates",
            )
        return
    want = str(rw["from"])
    if len(outputs) != 2 or names[1] != want or names[0] == want:
        raise _fail(
            where,
            f"fusion.row_weights takes each row's reliability from the encoder output {want!r}, but graph "
            f"{gname!r} declares outputs {names}; a gated encoder graph outputs [embedding, {want!r}]",
        )
    _, shape, dtype = outputs[1]
    if shape != (1,) or dtype != "float32":
        raise _fail(
            where,
            f"graph {gname!r} output {want!r} is {list(shape)} {dtype} per row; a reliability is [1] float32",
        )


def _check_reference(data: Mapping[str, Any], where: str) -> None:
    ref = data["reference"]
    rel = ref.get("file", "reference.npz")
    if not isinstance(rel, str) or rel not in {f["path"] for f in data["files"]}:
        raise _fail(where, f"reference.file {rel!r} is not listed in files[] with its size and sha256")
    cases = ref.get("cases", [])
    if not isinstance(cases, list) or len(cases) > MAX_REFERENCE_CASES:
        raise _fail(where, f"reference.cases must be a list of at most {MAX_REFERENCE_CASES} cases")
    names = {m["name"] for m in data["modalities"]}
    for i, case in enumerate(cases):
        if not isinstance(case, Mapping):
            raise _fail(where, f"reference.cases[{i}] must be an object with pattern and batch")
        pattern = _str_list(case.get("pattern"), where, f"reference.cases[{i}].pattern", min_len=1)
        if not set(pattern) <= names:
            raise _fail(
                where, f"reference.cases[{i}].pattern {pattern} names modalities outside {sorted(names)}"
            )
        batch = case.get("batch")
        if not _is_int(batch) or not 1 <= batch <= MAX_REFERENCE_BATCH:
            raise _fail(where, f"reference.cases[{i}].batch must be an int in [1, {MAX_REFERENCE_BATCH}]")
    tol = ref.get("tolerance") or {}
    if not isinstance(tol, Mapping) or not all(
        _is_num(tol.get(k, 0.0)) and 0 <= _as_float(tol.get(k, 0.0)) < math.inf for k in ("atol", "rtol")
    ):
        raise _fail(where, f"reference.tolerance must hold finite atol and rtol >= 0; got {tol!r:.200}")


def validate(data: Any, where: str = MANIFEST_NAME) -> None:
    """Validate a manifest document: types, values and consistency between its parts.

    Besides the keys and their types, it checks what a backend or the kernel would otherwise trip over
    later: every file is listed once with a relative path, a size and a sha256; every graph's files are
    listed; modality shapes and dtypes match their encoder graphs; encoders output ``fusion.dim``; the
    logits have one value per label; fusion weights (one per modality), ``eps``, ``gamma`` and ``beta``
    are finite, and positive/normal where they must be, *as float32*, the type the kernel uses. With
    ``fusion.row_weights`` (schema >= 2): its keys, its output name and floor, and that every encoder graph
    of a split artifact outputs ``[embedding, <from>]`` with ``<from>`` ``[B, 1]`` float32 (an ungated
    one outputs only the embedding).

    Raises:
        ManifestError: Naming the key, what was found and what is allowed.
    """
    if not isinstance(data, Mapping):
        raise ManifestError(f"{where} must hold a JSON object")
    version = data.get("schema_version")
    if _is_int(version) and version > MANIFEST_SCHEMA_VERSION:
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
    if version < 1:
        raise ManifestError(f"{where}: schema_version {version} is not a valid version (>= 1)")
    for key, allowed in (("format", FORMATS), ("layout", LAYOUTS), ("precision", PRECISIONS)):
        if data[key] not in allowed:
            raise ManifestError(f"{where}: {key} {data[key]!r} is not one of {list(allowed)}")
    for i, f in enumerate(data["files"]):
        if not isinstance(f, Mapping) or not {"path", "sha256", "size", "role"} <= set(f):
            raise ManifestError(f"{where}: files[{i}] needs path, role, sha256 and size")
        rel = f["path"]
        if not isinstance(rel, str) or not rel or "\x00" in rel:
            raise ManifestError(f"{where}: files[{i}].path must be a non-empty string; got {rel!r:.100}")
        if os.path.isabs(rel) or ".." in Path(rel).parts:
            raise ManifestError(
                f"{where}: files[{i}] path {rel!r} must stay inside the artifact folder (relative, no '..')"
            )
        if posixpath.normpath(rel) != rel or rel == "." or "\\" in rel:
            raise ManifestError(
                f"{where}: files[{i}] path {rel!r} must be a plain relative path to a file in the folder "
                "(no '.', no './', no trailing or doubled '/', no backslash)"
            )
        if not _is_int(f["size"]) or f["size"] < 0:
            raise ManifestError(f"{where}: files[{i}].size must be an int >= 0; got {f['size']!r}")
        digest = f["sha256"]
        if not isinstance(digest, str) or len(digest) != 64 or set(digest) - set("0123456789abcdef"):
            raise ManifestError(
                f"{where}: files[{i}].sha256 must be 64 lowercase hex digits; got {digest!r:.80}"
            )
    paths = [f["path"] for f in data["files"]]
    if len(set(paths)) != len(paths):
        raise ManifestError(f"{where}: files[] lists a path twice")
    for i, m in enumerate(data["modalities"]):
        if not isinstance(m, Mapping) or not {"name", "shape", "dtype"} <= set(m):
            raise ManifestError(f"{where}: modalities[{i}] needs name, shape and dtype")
        if not isinstance(m["name"], str) or not m["name"]:
            raise _fail(where, f"modalities[{i}].name must be a non-empty string")
        if m["dtype"] not in DTYPES:
            raise _fail(where, f"modalities[{i}].dtype {m['dtype']!r} is not one of {list(DTYPES)}")
        _shape(m["shape"], where, f"modalities[{i}].shape", batch=False)
        if "graph" in m and not isinstance(m["graph"], str):
            raise _fail(where, f"modalities[{i}].graph must be a string")
        if not isinstance(m.get("preprocessing", ""), str) or not isinstance(m.get("params", {}), Mapping):
            raise _fail(where, f"modalities[{i}]: preprocessing must be a string and params an object")
    names = _str_list([m["name"] for m in data["modalities"]], where, "modalities[].name", min_len=1)
    model_names = _str_list(data["model_modalities"], where, "model_modalities", min_len=1)
    if not set(names) <= set(model_names):
        raise _fail(where, f"modalities {names} are not all among model_modalities {model_names}")
    labels = data["label_names"]
    if not labels or len(labels) > MAX_LABELS or not all(isinstance(x, str) for x in labels):
        raise _fail(where, f"label_names must be a list of 1 to {MAX_LABELS} strings")
    dim = _check_fusion(data, where)
    _check_graphs(data, where, dim)
    _check_reference(data, where)


def read_manifest(folder: str | Path, *, manifest_sha256: str | None = None) -> Manifest:
    """Read and validate ``manifest.json`` of an artifact folder (files are verified by the caller).

    The manifest is read through :mod:`edgefuse.trust` (regular file, bounded size, bounded nesting).

    Args:
        folder: The artifact folder.
        manifest_sha256: When given, the sha256 the manifest's bytes must have (pins the manifest, so a
            swapped manifest with its own consistent hashes is refused).

    Raises:
        ManifestError: Missing file, invalid JSON, newer schema, a schema violation, or a pinned
            sha256 that does not match.
        UnsafeFileError: ``manifest.json`` is not a regular file or is larger than allowed.
    """
    root = Path(folder)
    path = root / MANIFEST_NAME
    if not path.exists() and not path.is_symlink():
        raise ManifestError(
            f"{path} not found; pass an artifact folder written by `edgefuse export` (or, for edgefuse.load, a checkpoint folder with model.json)"
        )
    real = resolve_inside(root, MANIFEST_NAME, what="artifact manifest")  # a symlink out is refused
    raw = read_bounded(real, max_bytes=MAX_JSON_BYTES, what="artifact manifest")
    digest = hash_bytes(raw)
    check_pin(digest, manifest_sha256, path)
    try:
        data = loads_json(raw, what=str(path))
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, a 5000-digit integer
        raise ManifestError(f"{path} is not valid JSON: {exc}") from None
    except UnsafeFileError as exc:
        raise ManifestError(str(exc)) from None
    return Manifest(data=data, root=root, sha256=digest)


def check_pin(digest: str, pinned: str | None, path: Path) -> None:
    """Refuse a manifest (or checkpoint description) whose sha256 differs from the pinned one.

    Raises:
        ManifestError: ``pinned`` is not 64 hex digits, or differs from ``digest``.
    """
    if pinned is None:
        return
    if not isinstance(pinned, str) or len(pinned) != 64 or set(pinned.lower()) - set("0123456789abcdef"):
        raise ManifestError(
            f"manifest_sha256 must be 64 hex digits (the sha256 of {path.name}); got {pinned!r:.80}"
        )
    if digest != pinned.lower():
        raise ManifestError(
            f"{path} has sha256 {digest} but the caller pinned {pinned.lower()}: this is not the manifest you "
            "trusted (swapped or re-exported); get the artifact again or pin the new manifest's sha256"
        )
