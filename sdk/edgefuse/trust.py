"""The one place that opens files which came from outside: artifacts, checkpoints, profiles, WAVs.

Every loader of EdgeFuse goes through these functions, so the same rules hold everywhere:

* **inside the folder**: a path named by a manifest or a checkpoint is relative, and after resolving
  every symlink it still lies inside the artifact/checkpoint folder;
* **regular files only**: a FIFO, a device (``/dev/zero``), a socket or a folder where a file is expected
  is refused *before* it is opened for reading (the open itself is non-blocking, and the type is checked
  again on the open descriptor, so a FIFO swapped in between cannot block);
* **bounded**: every read stops at the declared size (a manifest's ``size``) or at a fixed maximum for
  files without one (JSON, TOML, WAV), so no file can make EdgeFuse read forever or run out of memory;
* **hashed**: a listed file is checked by size first, then by a streaming sha256, before any backend
  sees it;
* **parsed with bounded nesting**: JSON/TOML nested deeper than :data:`MAX_NESTING` is refused with a
  typed error instead of a ``RecursionError``.

Violations raise :class:`UnsafeFileError` (where a file is or what kind it is) or
:class:`ArtifactIntegrityError` (what it holds differs from what was recorded); both are
:class:`~edgefuse.errors.EdgeFuseError` and ``ValueError``. This module imports only the standard library.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from edgefuse.errors import EdgeFuseError

__all__ = [
    "MAX_JSON_BYTES",
    "MAX_NESTING",
    "MAX_NPZ_BYTES",
    "MAX_TOML_BYTES",
    "ArtifactIntegrityError",
    "MalformedFileError",
    "UnsafeFileError",
    "check_nesting",
    "hash_bytes",
    "iter_tree",
    "load_npz",
    "loads_json",
    "read_bounded",
    "resolve_inside",
    "user_path",
    "verify_listed",
]

#: Largest JSON document (manifest, model.json) EdgeFuse reads.
MAX_JSON_BYTES = 64 << 20
#: Largest device profile EdgeFuse reads.
MAX_TOML_BYTES = 1 << 20
#: Deepest nesting of lists/objects accepted in JSON and TOML documents.
MAX_NESTING = 64
_CHUNK = 1 << 20


class UnsafeFileError(EdgeFuseError, ValueError):
    """A file is outside its folder, not a regular file, unlisted, too large, or cannot be opened safely."""


class ArtifactIntegrityError(EdgeFuseError, ValueError):
    """A file of an artifact or checkpoint is missing, or its size or sha256 differs from its record."""


class MalformedFileError(EdgeFuseError, ValueError):
    """A file is of the right kind and size but its content cannot be used (bad archive, pickled data...)."""


def user_path(path: object, *, error: type[EdgeFuseError], what: str) -> Path:
    """A path argument given by a caller: a ``str`` or :class:`os.PathLike` without NUL bytes.

    Args:
        path: What the caller passed.
        error: The EdgeFuse error class to raise (the caller's: CheckpointError, ProfileError...).
        what: What the path names, for the message (``"a checkpoint folder"``).

    Raises:
        error: ``path`` is of another type or holds a NUL byte.
    """
    if not isinstance(path, str | os.PathLike) or "\x00" in os.fspath(path):
        raise error(
            f"{what} is given as a path (str or os.PathLike without NUL bytes); got {type(path).__name__} "
            f"{path!r:.80}"
        )
    return Path(path)


def resolve_inside(root: str | os.PathLike[str], rel: Any, *, what: str) -> Path:
    """The real path of ``rel`` under ``root``, refusing anything that leaves the folder.

    Args:
        root: The artifact or checkpoint folder.
        rel: The path as recorded (must be a non-empty relative ``str`` without NUL bytes).
        what: What the path is, for messages (e.g. ``"graph 'head' of manifest.json"``).

    Returns:
        The resolved path (symlinks followed), guaranteed to lie inside ``root`` resolved.

    Raises:
        UnsafeFileError: ``rel`` is not a string, is absolute, contains NUL, or resolves outside ``root``.
        ArtifactIntegrityError: The path does not exist.
    """
    if not isinstance(rel, str) or not rel or "\x00" in rel:
        raise UnsafeFileError(
            f"{what}: the path {rel!r} is not a non-empty relative path string; re-export the artifact"
        )
    if os.path.isabs(rel):
        raise UnsafeFileError(
            f"{what}: the path {rel!r} is absolute; files must be named relative to the folder "
            f"{root} and lie inside it (rule: no path leaves the folder)"
        )
    base = Path(root).resolve()
    candidate = base / rel
    try:
        real = candidate.resolve(strict=True)
    except FileNotFoundError:
        raise ArtifactIntegrityError(f"{what}: {candidate} is missing; re-export the artifact") from None
    except (OSError, RuntimeError) as exc:  # symlink loop, permission
        raise UnsafeFileError(f"{what}: {candidate} cannot be resolved ({exc})") from None
    if real != base and base not in real.parents:
        raise UnsafeFileError(
            f"{what}: {rel!r} resolves to {real}, outside the folder {base} (rule: after resolving "
            "symlinks every file must lie inside the artifact/checkpoint folder); copy the file into "
            "the folder and re-export"
        )
    return real


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISLNK, "a symlink"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def _open_regular(path: Path, what: str) -> tuple[int, os.stat_result]:
    """Open ``path`` read-only without blocking and without following a final symlink; regular files only."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ArtifactIntegrityError(f"{what}: {path} is missing") from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        raise UnsafeFileError(
            f"{what}: {path!r} cannot be inspected ({getattr(exc, 'strerror', None) or exc})"
        ) from None
    if not stat.S_ISREG(st.st_mode):
        raise UnsafeFileError(
            f"{what}: {path} is {_kind(st.st_mode)}, not a regular file; refusing to read it "
            "(rule: only regular files are opened)"
        )
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise UnsafeFileError(f"{what}: {path} cannot be opened ({exc.strerror or exc})") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):  # swapped between stat and open
        os.close(fd)
        raise UnsafeFileError(
            f"{what}: {path} is {_kind(st.st_mode)}, not a regular file; refusing to read it"
        )
    return fd, st


def _chunks(fd: int, limit: int) -> Iterator[bytes]:
    """Yield at most ``limit + 1`` bytes of ``fd`` (one byte more reveals a file that grew)."""
    left = limit + 1
    while left > 0:
        chunk = os.read(fd, min(_CHUNK, left))
        if not chunk:
            return
        left -= len(chunk)
        yield chunk


def read_bounded(path: str | os.PathLike[str], *, max_bytes: int, what: str) -> bytes:
    """Read a whole regular file of at most ``max_bytes`` bytes.

    Raises:
        UnsafeFileError: Not a regular file (FIFO, device, folder...), or larger than ``max_bytes``.
        ArtifactIntegrityError: The file does not exist.
    """
    p = Path(path)
    fd, st = _open_regular(p, what)
    try:
        if st.st_size > max_bytes:
            raise UnsafeFileError(
                f"{what}: {p} has {st.st_size} bytes, more than the {max_bytes} allowed for such a file"
            )
        data = b"".join(_chunks(fd, max_bytes))
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise UnsafeFileError(f"{what}: {p} holds more than the {max_bytes} bytes allowed for such a file")
    return data


def hash_bytes(data: bytes) -> str:
    """The hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def _hash_file(path: Path, size: int, what: str, h: Any) -> int:
    """Feed the file into ``h`` reading at most ``size + 1`` bytes; return the bytes read."""
    fd, st = _open_regular(path, what)
    try:
        if st.st_size != size:
            return st.st_size
        n = 0
        for chunk in _chunks(fd, size):
            h.update(chunk)
            n += len(chunk)
        return n
    finally:
        os.close(fd)


def iter_tree(folder: Path, what: str) -> list[Path]:
    """The regular files under ``folder`` (sorted), refusing symlinks that leave it and special files.

    Used for packages stored as folders (Core ML ``.mlpackage``).

    Raises:
        UnsafeFileError: A symlink pointing outside ``folder``, or a FIFO/device/socket inside it.
    """
    base = folder.resolve()
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(base, followlinks=False):
        for name in [*dirnames, *filenames]:
            p = Path(dirpath) / name
            real = p.resolve()
            if real != base and base not in real.parents:
                raise UnsafeFileError(f"{what}: {p} resolves to {real}, outside {base}")
            st = os.stat(real)
            if stat.S_ISDIR(st.st_mode):
                if p.is_symlink():
                    raise UnsafeFileError(f"{what}: {p} is a symlink to a folder; store the folder itself")
                continue
            if not stat.S_ISREG(st.st_mode):
                raise UnsafeFileError(f"{what}: {p} is {_kind(st.st_mode)}, not a regular file")
            out.append(p)
    return sorted(out)


def verify_listed(root: str | os.PathLike[str], entry: Mapping[str, Any], *, what: str) -> Path:
    """Check one listed file (or package folder) of an artifact: location, type, size, then sha256.

    Args:
        root: The artifact or checkpoint folder.
        entry: Its record: ``path`` (relative), ``size`` (bytes), ``sha256`` (hex).
        what: What lists it, for messages.

    Returns:
        The resolved path, safe to hand to a backend.

    Raises:
        UnsafeFileError: The path leaves the folder or is not a regular file / plain folder.
        ArtifactIntegrityError: Missing, or its size or sha256 differs from the record.
    """
    rel, size, digest = entry.get("path"), entry.get("size"), entry.get("sha256")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ArtifactIntegrityError(f"{what}: size {size!r} of {rel!r} is not a byte count >= 0; re-export")
    if not isinstance(digest, str) or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise ArtifactIntegrityError(f"{what}: sha256 {digest!r} of {rel!r} is not 64 lowercase hex digits")
    real = resolve_inside(root, rel, what=what)
    h = hashlib.sha256()
    if real.is_dir():
        files = iter_tree(real, what)
        total = 0
        for q in files:
            q_size = os.stat(q).st_size
            total += q_size
            if total > size:
                break
            h.update(str(q.relative_to(real)).encode())
            if _hash_file(q, q_size, what, h) != q_size:
                raise ArtifactIntegrityError(f"{what}: {q} changed while it was read")
        got = total
    else:
        got = _hash_file(real, size, what, h)
    if got != size:
        raise ArtifactIntegrityError(
            f"{what}: {real} has {got} bytes but the record says {size}: the file was modified, truncated "
            "or replaced; re-export (or restore the original)"
        )
    if h.hexdigest() != digest:
        raise ArtifactIntegrityError(
            f"{what}: {real} has sha256 {h.hexdigest()[:12]}... but the record says {digest[:12]}...: the "
            "file was modified or belongs to another artifact; re-export (or restore the original)"
        )
    return real


def check_nesting(data: Any, *, what: str, limit: int = MAX_NESTING) -> None:
    """Refuse documents nested deeper than ``limit`` lists/objects (iteratively: no recursion)."""
    stack: list[tuple[Any, int]] = [(data, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth >= limit:
            raise UnsafeFileError(f"{what}: nested more than {limit} levels deep; no EdgeFuse file is")
        stack.extend((c, depth + 1) for c in children)


def _scan_depth(text: str, limit: int, what: str) -> None:
    """Refuse bracket nesting deeper than ``limit`` before a recursive parser sees the text."""
    depth = 0
    in_string = False
    escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                raise UnsafeFileError(
                    f"{what}: nested more than {limit} levels deep; no EdgeFuse file is (refused before parsing)"
                )
        elif ch in "]}":
            depth -= 1


def loads_json(raw: bytes, *, what: str) -> Any:
    """Parse a JSON document with bounded nesting.

    Raises:
        UnsafeFileError: Nested deeper than :data:`MAX_NESTING`.
        ValueError: Invalid UTF-8 or JSON (``json.JSONDecodeError`` / ``UnicodeDecodeError``), for the
            caller to turn into its own typed error.
    """
    text = raw.decode("utf-8")
    _scan_depth(text, MAX_NESTING, what)
    try:
        return json.loads(text)
    except RecursionError:  # pragma: no cover - the scan above refuses such documents first
        raise UnsafeFileError(f"{what}: nested too deeply to parse") from None


#: Largest total of array bytes EdgeFuse takes from one ``.npz`` (reference cases, ``edgefuse run`` inputs).
MAX_NPZ_BYTES = 1 << 30


def load_npz(data: bytes, *, what: str, max_bytes: int = MAX_NPZ_BYTES) -> dict[str, Any]:
    """Read the arrays of an ``.npz`` archive held in memory, refusing anything that is not plain data.

    Every member's ``.npy`` header is read first: object dtypes (pickles) are refused, and the bytes the
    header declares (shape x itemsize) must be exactly what the member holds and at most ``max_bytes``
    in total, so no header can make EdgeFuse allocate more than the archive really contains.

    Args:
        data: The archive's bytes (read with :func:`read_bounded` or checked with :func:`verify_listed`).
        what: The file, for messages.
        max_bytes: Largest total of declared array bytes.

    Returns:
        ``{member name without .npy: ndarray}``.

    Raises:
        MalformedFileError: Not a zip archive, a member that is not ``.npy``, a pickled object, a header
            declaring more data than the member holds, or more than ``max_bytes`` in total.
    """
    import io
    import math
    import zipfile

    import numpy as np
    from numpy.lib import format as npy

    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise MalformedFileError(f"{what}: not an .npz (zip) archive ({exc}); re-create the file") from None
    out: dict[str, Any] = {}
    total = 0
    with archive:
        for info in archive.infolist():
            name = info.filename
            if not name.endswith(".npy"):
                raise MalformedFileError(
                    f"{what}: member {name!r} is not an .npy array; an .npz holds only arrays"
                )
            total += info.file_size
            if total > max_bytes:
                raise MalformedFileError(
                    f"{what}: the arrays declare more than {max_bytes} bytes in total; refusing to load them"
                )
            try:
                with archive.open(info) as fp:
                    version = npy.read_magic(fp)
                    reader = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
                    shape, fortran, dtype = reader(fp, max_header_size=10_000)
                    if dtype.hasobject:
                        raise MalformedFileError(
                            f"{what}: array {name[:-4]!r} has dtype {dtype} holding Python objects (a pickle); "
                            "EdgeFuse never unpickles: save plain numeric arrays (np.savez with numeric dtypes)"
                        )
                    if dtype.kind not in "biuf" or dtype.fields is not None or dtype.subdtype is not None:
                        raise MalformedFileError(
                            f"{what}: array {name[:-4]!r} has dtype {dtype}; only plain bool, integer and "
                            "float arrays are accepted"
                        )
                    if dtype.itemsize == 0:
                        raise MalformedFileError(
                            f"{what}: array {name[:-4]!r} has dtype {dtype} with 0-byte elements; "
                            "store plain numeric arrays"
                        )
                    declared = math.prod(shape) * dtype.itemsize
                    body = info.file_size - fp.tell()
                    if declared != body:
                        raise MalformedFileError(
                            f"{what}: array {name[:-4]!r} declares shape {shape} {dtype} ({declared} bytes) but "
                            f"holds {body} bytes; the file is corrupt or forged"
                        )
                    raw = fp.read(body)
            except MalformedFileError:
                raise
            except (ValueError, OSError, EOFError, zipfile.BadZipFile, RuntimeError) as exc:
                raise MalformedFileError(f"{what}: array {name!r} cannot be read ({exc})") from None
            if len(raw) != body:
                raise MalformedFileError(f"{what}: array {name!r} is truncated")
            try:
                array = np.frombuffer(raw, dtype=dtype).reshape(shape, order="F" if fortran else "C")
            except ValueError as exc:
                raise MalformedFileError(f"{what}: array {name!r} cannot be read ({exc})") from None
            out[name[:-4]] = array.copy()
    return out
