"""Output folders that are replaced atomically and only when they are EdgeFuse's own (standard library only).

Every command that writes a checkpoint or an export artifact goes through this module, so the same rules
hold everywhere:

* **only our own outputs are replaced**: an existing folder is replaced (``overwrite``) only when it is
  an EdgeFuse output of the same kind and holds nothing else — a checkpoint folder is recognised by its
  ``model.json`` (a JSON object with ``format`` ``"edgefuse-checkpoint"``) and may hold only
  ``model.json`` and ``model.safetensors``; an artifact folder by its ``manifest.json`` (a JSON object with
  an integer ``schema_version`` and a known ``format``) and may hold only the manifest and the files it
  lists. An *empty* folder is replaceable too. A folder of the user's own files, an output of the other
  kind, a regular file, a symbolic link, an input of the command (compared after resolving symlinks), a
  folder that contains an input or one inside an input is refused with the reason, before any work is
  done, and again right before the swap (in case the path changed while the output was being written).
* **old or new, never neither**: the new output is written into a temporary folder beside the target
  (``.<name>.edgefuse-tmp-<pid>-<random>``), every file and folder in it is fsync'ed, and it is swapped
  in with one ``renameat2(..., RENAME_EXCHANGE)`` (Linux >= 3.15, glibc >= 2.28, and a filesystem that
  supports it: ext4, xfs, btrfs, tmpfs...); the old output, now at the temporary name, is deleted after
  the parent folder is fsync'ed. A new target is moved in with ``RENAME_NOREPLACE`` (so an output that
  appeared meanwhile is never clobbered). Where the exchange is not available (other systems or
  filesystems) the swap falls back to two renames: target -> ``.<name>.edgefuse-old-<pid>-<random>``,
  temporary -> target, then the old one is deleted; a crash between the two renames leaves the target
  missing and the complete old output under the ``-old-`` name, which the recovery step below renames
  back.
* **recovery**: every run that writes into a parent folder first cleans it up: a ``-tmp-`` folder whose
  process is gone (``os.kill(pid, 0)`` raises ``ProcessLookupError``) or that has not been modified for
  :data:`STALE_AFTER_S` (a crashed run whose pid was reused) is deleted; a ``-old-`` folder of a gone
  process is renamed back onto its target when the target is missing (roll back), and deleted when the
  target exists. Folders whose names do not match these patterns are never touched. Pids are compared on
  this machine only: do not write into one folder from several machines at once (shared network folders).
* **permissions follow the umask**: folders are created ``0o777 & ~umask`` and, before the swap, every
  folder and file of the new output is set to ``0o777 & ~umask`` / ``0o666 & ~umask`` (whatever mode a
  converter library created it with), so ``umask 022`` gives ``0755``/``0644`` all the way down.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import re
import secrets
import shutil
import stat
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from edgefuse.errors import EdgeFuseError

__all__ = [
    "ARTIFACT",
    "CHECKPOINT",
    "STALE_AFTER_S",
    "Staging",
    "check_output",
    "current_umask",
    "leftovers",
    "output_kind",
    "recover",
    "stage",
    "write_file",
]

#: Kind of an export artifact folder (``manifest.json``).
ARTIFACT = "artifact"
#: Kind of a checkpoint folder (``model.json`` + ``model.safetensors``).
CHECKPOINT = "checkpoint"

#: A temporary folder of a live process that was not modified for this long is considered stale (pid reuse).
STALE_AFTER_S = 24 * 3600

#: Use ``renameat2(RENAME_EXCHANGE)`` where the system offers it; tests set this to False to exercise the
#: two-rename fallback.
USE_RENAME_EXCHANGE = True

_CHECKPOINT_FORMAT = "edgefuse-checkpoint"
#: What a checkpoint folder may hold: its description, its weights, and the WiSE-FT sweep written beside
#: a checkpoint that `edgefuse wise-ft` chose.
_CHECKPOINT_FILES = frozenset({"model.json", "model.safetensors", "wiseft.json", "wiseft.md", "wiseft.png"})
_MAX_NAME = 200  # leaves room for ".<name>.edgefuse-tmp-<pid>-<random>" within the 255-byte limit
_TMP, _OLD = "tmp", "old"
_PATTERN = re.compile(r"^\.(?P<name>.+)\.edgefuse-(?P<tag>tmp|old)-(?P<pid>[0-9]+)-(?P<rand>[0-9a-f]+)$")
_DESCRIBE = {
    CHECKPOINT: "an EdgeFuse checkpoint folder (model.json with format 'edgefuse-checkpoint')",
    ARTIFACT: "an EdgeFuse export artifact folder (manifest.json)",
}

_AT_FDCWD = -100
_RENAME_NOREPLACE = 1
_RENAME_EXCHANGE = 2


# ---- what is at a path ---------------------------------------------------------------------------------


def write_file(path: str | Path, data: bytes | str) -> Path:
    """Write a whole file by creating it beside ``path`` and renaming it over ``path``.

    An existing file at ``path`` is replaced, never written through: a hard link or symlink there (to an
    artifact's manifest, say) is not followed, and a reader never sees a half-written file. The umask
    applies.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    target = Path(path)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    tmp = target.with_name(f".{target.name}.edgefuse-tmp-{os.getpid()}-{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return target


def _read_json(path: Path) -> Any:
    """The JSON document of a regular file (not followed through a symlink), or None when unreadable."""
    from edgefuse.trust import MAX_JSON_BYTES, loads_json, read_bounded

    try:
        if os.path.islink(path):
            return None
        return loads_json(read_bounded(path, max_bytes=MAX_JSON_BYTES, what=str(path)), what=str(path))
    except (EdgeFuseError, ValueError, OSError):
        return None


def _artifact_files(manifest: dict[str, Any]) -> dict[str, bool]:
    """Top-level entries an artifact's manifest accounts for -> whether each must be a folder.

    Only an ``.mlpackage`` of a Core ML artifact is a folder; every other listed entry is a file.
    """
    names = {"manifest.json": False}
    files = manifest.get("files")
    for entry in files if isinstance(files, list) else []:
        rel = entry.get("path") if isinstance(entry, dict) else None
        if isinstance(rel, str) and rel and not os.path.isabs(rel):
            top = Path(rel).parts[0] if Path(rel).parts else rel
            names[top] = manifest.get("format") == "coreml" and top.endswith(".mlpackage")
    return names


def _valid_manifest(manifest: dict[str, Any]) -> bool:
    """Whether a manifest passes the full schema (a hand-edited one is not trusted to name its files)."""
    from edgefuse.manifest import ManifestError, validate

    try:
        validate(manifest)
    except (ManifestError, TypeError, ValueError, KeyError, AttributeError):
        return False
    return True


def output_kind(folder: str | Path) -> str | None:
    """What an existing folder holds, judged from its description file only (nothing is executed).

    Args:
        folder: An existing folder.

    Returns:
        :data:`CHECKPOINT` when ``model.json`` is a JSON object with format ``"edgefuse-checkpoint"``,
        :data:`ARTIFACT` when ``manifest.json`` is a JSON object with an integer ``schema_version`` and a
        known ``format`` that passes the whole manifest schema (:func:`edgefuse.manifest.validate`),
        ``"empty"`` for an empty folder, and None for anything else.
    """
    from edgefuse.manifest import FORMATS  # torch-free; imported here so that manifest may use this module

    root = Path(folder)
    info = _read_json(root / "model.json")
    if isinstance(info, dict) and info.get("format") == _CHECKPOINT_FORMAT:
        return CHECKPOINT
    manifest = _read_json(root / "manifest.json")
    if (
        isinstance(manifest, dict)
        and isinstance(manifest.get("schema_version"), int)
        and not isinstance(manifest.get("schema_version"), bool)
        and manifest.get("format") in FORMATS
        and _valid_manifest(manifest)
    ):
        return ARTIFACT
    with contextlib.suppress(OSError):
        if not any(os.scandir(root)):
            return "empty"
    return None


def _unlisted(folder: Path, kind: str) -> list[str]:
    """Entries of an output folder that its description does not account for (the user's files).

    An entry counts as accounted for only when it is listed *and* of the listed kind: a plain file (not a
    symlink), or a plain folder for a Core ML package; a folder named by a hand-edited manifest is not.
    """
    if kind == CHECKPOINT:
        allowed = dict.fromkeys(_CHECKPOINT_FILES, False)
        programs = _checkpoint_programs(folder)
        if programs is not None:
            allowed["programs"] = True
    else:
        manifest = _read_json(folder / "manifest.json")
        allowed = _artifact_files(manifest if isinstance(manifest, dict) else {})
    foreign = []
    for entry in os.scandir(folder):
        want_dir = allowed.get(entry.name)
        ok = (
            want_dir is not None
            and not entry.is_symlink()
            and (entry.is_dir(follow_symlinks=False) if want_dir else entry.is_file(follow_symlinks=False))
        )
        if not ok:
            foreign.append(entry.name)
        elif kind == CHECKPOINT and entry.name == "programs":
            for sub in os.scandir(entry.path):
                if (
                    sub.name not in (programs or set())
                    or sub.is_symlink()
                    or not sub.is_file(follow_symlinks=False)
                ):
                    foreign.append(f"programs/{sub.name}")
    return sorted(foreign)


def _checkpoint_programs(folder: Path) -> set[str] | None:
    """File names under ``programs/`` that a program checkpoint's ``model.json`` lists (None: not one)."""
    info = _read_json(folder / "model.json")
    programs = info.get("programs") if isinstance(info, dict) else None
    if not isinstance(programs, dict):
        return None
    names = set()
    for entry in programs.values():
        rel = entry.get("file") if isinstance(entry, dict) else None
        if isinstance(rel, str) and rel.startswith("programs/") and "/" not in rel[len("programs/") :]:
            names.add(rel[len("programs/") :])
    return names


def _absolute(target: str | Path) -> Path:
    """``target`` made absolute without resolving its last component (a symlink there stays visible)."""
    return Path(os.path.abspath(os.fspath(target)))


def check_output(
    target: str | Path,
    kind: str,
    *,
    overwrite: bool,
    protect: Iterable[str | Path] = (),
    error: type[EdgeFuseError] = EdgeFuseError,
    recover_first: bool = True,
) -> Path:
    """Check that ``target`` may receive a new output of ``kind``; refuse with the reason otherwise.

    Runs :func:`recover` on the parent folder first (a crashed run's output is put back before it is
    judged). Nothing is written or deleted at ``target`` itself.

    Args:
        target: The output folder.
        kind: :data:`CHECKPOINT` or :data:`ARTIFACT`.
        overwrite: Whether an existing output of the same kind (or an empty folder) may be replaced.
        protect: The command's inputs: ``target`` may be none of them, contain none, lie inside none.
        error: The EdgeFuse error class raised (the caller's: CheckpointError, ExportError...).
        recover_first: Run :func:`recover` on the parent folder before checking.

    Returns:
        The absolute target path.

    Raises:
        error: When ``target`` is an input, contains one or lies in one, is a file, a symlink or anything
            but a folder, lies under a file, exists without ``overwrite``, or is not a replaceable EdgeFuse
            output of the same kind (another kind, foreign content, files the output does not list).
    """
    if kind not in _DESCRIBE:
        raise ValueError(f"unknown output kind {kind!r}; expected {CHECKPOINT!r} or {ARTIFACT!r}")
    out = _absolute(target)
    if not out.name or out.name in (".", ".."):
        raise error(f"{target} cannot be an output folder (it names no folder); choose another folder")
    if len(os.fsencode(out.name)) > _MAX_NAME:
        raise error(
            f"the output folder name {out.name[:40]}... is longer than {_MAX_NAME} bytes; "
            "choose a shorter one"
        )
    real = Path(os.path.realpath(out))
    for item in protect:
        inp = Path(os.path.realpath(os.fspath(item)))
        if real == inp:
            raise error(
                f"{target} is the input of this command ({item}); writing the output there would destroy "
                "it. Choose another output folder"
            )
        if real in inp.parents:
            raise error(
                f"{target} contains the input of this command ({item}); replacing it would destroy the "
                "input. Choose another output folder"
            )
        if inp in real.parents:
            raise error(
                f"{target} lies inside the input of this command ({item}); an output is never written into "
                "its input. Choose another output folder"
            )
    ancestor = out.parent
    while not os.path.lexists(ancestor) and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise error(f"{ancestor} is a file, not a folder: the output {target} cannot be created under it")
    if recover_first and out.parent.is_dir():
        recover(out.parent)
    if not os.path.lexists(out):
        return out
    if out.is_symlink():
        raise error(
            f"{target} is a symbolic link; EdgeFuse does not replace links. Pass the folder it points to "
            "or choose another folder"
        )
    if not out.is_dir():
        raise error(
            f"{target} exists and is not a folder (a file or something else); EdgeFuse never deletes it. "
            "Choose another output folder"
        )
    if not overwrite:
        raise error(f"{target} already exists; pass overwrite=True or choose another folder")
    found = output_kind(out)
    if found == "empty":
        return out
    if found != kind:
        held = "holds " + (_DESCRIBE[found] if found else "something that is not an EdgeFuse output")
        raise error(
            f"{target} {held}, not {_DESCRIBE[kind]}; overwrite replaces only an existing output of the "
            "same kind, so it is left untouched. Choose another folder or remove it yourself"
        )
    extra = _unlisted(out, kind)
    if extra:
        raise error(
            f"{target} is {_DESCRIBE[kind]} but also holds {extra[:10]}{' ...' if len(extra) > 10 else ''}, "
            "which the output does not list; overwrite would delete them, so it is refused. Move them away "
            "or choose another folder"
        )
    return out


# ---- recovery ------------------------------------------------------------------------------------------


def _pid_alive(pid: int) -> bool:
    if os.name == "nt":  # os.kill(pid, 0) would terminate the process there: never judge a pid dead
        return True
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    except OSError:
        return True
    return True


def _stale(path: Path, tag: str, pid: int, now: float) -> bool:
    """Whether a matching entry belongs to no running EdgeFuse process (see the module docstring)."""
    if not _pid_alive(pid):
        return True
    if tag == _OLD:  # a live process is between its two renames: never touch
        return False
    try:
        return now - os.lstat(path).st_mtime > STALE_AFTER_S
    except OSError:
        return False


def _rmtree(path: Path) -> None:
    if path.is_symlink() or not path.is_dir():
        with contextlib.suppress(OSError):
            path.unlink()
        return
    shutil.rmtree(path, ignore_errors=True)


def recover(parent: str | Path) -> list[str]:
    """Clean up after crashed runs in ``parent``: roll back interrupted swaps, delete stale temporaries.

    Only entries named ``.<name>.edgefuse-tmp-<pid>-<random>`` or ``.<name>.edgefuse-old-<pid>-<random>``
    whose process is gone (or, for ``-tmp-``, untouched for :data:`STALE_AFTER_S`) are acted on; anything
    else is left alone. Errors (permissions, a concurrent recovery) are ignored: recovery never fails a
    run.

    Args:
        parent: The folder that holds the outputs.

    Returns:
        What was done, one line per action (for logs and tests).
    """
    folder = Path(parent)
    try:
        entries = [(e.name, _PATTERN.match(e.name)) for e in os.scandir(folder)]
    except OSError:
        return []
    now = time.time()
    done: list[str] = []
    olds: dict[str, list[Path]] = {}
    for name, m in entries:
        if m is None or not _stale(folder / name, m["tag"], int(m["pid"]), now):
            continue
        if m["tag"] == _OLD:
            olds.setdefault(m["name"], []).append(folder / name)
        else:
            _rmtree(folder / name)
            done.append(f"deleted stale temporary {name}")
    for target_name, paths in olds.items():
        target = folder / target_name
        if not os.path.lexists(target):
            paths.sort(key=lambda p: p.lstat().st_mtime if os.path.lexists(p) else 0.0)
            newest = paths.pop()
            try:
                _rename(newest, target, replace=False)
                done.append(f"rolled back {newest.name} -> {target_name}")
            except OSError:
                continue  # another run got there first; keep every old copy
        for p in paths:
            _rmtree(p)
            done.append(f"deleted stale old output {p.name}")
    if done:
        _fsync_dir(folder)
    return done


# ---- renames -------------------------------------------------------------------------------------------


def _load_renameat2() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):  # glibc < 2.28, or no libc symbol
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


_renameat2 = _load_renameat2()


class _UnsupportedError(Exception):
    """The system or filesystem does not offer the requested renameat2 flag."""


def _renameat2_call(src: Path, dst: Path, flags: int) -> None:
    if _renameat2 is None:
        raise _UnsupportedError
    if _renameat2(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), flags) != 0:
        err = ctypes.get_errno()
        if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise _UnsupportedError
        raise OSError(err, os.strerror(err), os.fspath(src), None, os.fspath(dst))


def _rename(src: Path, dst: Path, *, replace: bool) -> None:
    """Rename ``src`` to ``dst``; with ``replace=False`` fail (EEXIST) rather than clobber ``dst``."""
    if not replace:
        try:
            _renameat2_call(src, dst, _RENAME_NOREPLACE)
            return
        except _UnsupportedError:
            if os.path.lexists(dst):  # best effort where the kernel cannot check atomically
                raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), os.fspath(dst)) from None
    os.rename(src, dst)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap ``a`` and ``b``; False when the system or filesystem cannot."""
    if not USE_RENAME_EXCHANGE:
        return False
    try:
        _renameat2_call(a, b, _RENAME_EXCHANGE)
    except _UnsupportedError:
        return False
    return True


def _between_renames() -> None:
    """Hook between the two renames of the fallback swap (tests simulate a crash here)."""


# ---- durability and permissions ------------------------------------------------------------------------


def current_umask() -> int:
    """The process umask, read from ``/proc/self/status`` where possible (no window with umask 0)."""
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    old = os.umask(0o022)
    os.umask(old)
    return old


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _finish_tree(root: Path, umask: int) -> None:
    """Give every folder/file under ``root`` the umask's mode and fsync them (files first, then folders)."""
    dir_mode, file_mode = 0o777 & ~umask, 0o666 & ~umask
    for dirpath, _dirnames, filenames in os.walk(root, topdown=False):
        for name in filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            if not stat.S_ISREG(st.st_mode):
                continue  # symlinks and others are left as they are
            mode = dir_mode if st.st_mode & 0o100 else file_mode  # an executable stays executable
            if stat.S_IMODE(st.st_mode) != mode:
                os.chmod(p, mode)
            try:
                fd = os.open(p, os.O_RDONLY)
            except PermissionError:  # a umask that leaves the owner no read permission
                continue
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        if stat.S_IMODE(os.lstat(dirpath).st_mode) != dir_mode:
            os.chmod(dirpath, dir_mode)
        _fsync_dir(Path(dirpath))


# ---- staging -------------------------------------------------------------------------------------------


class Staging:
    """A temporary folder beside an output; :meth:`commit` swaps it in, leaving the context discards it.

    Attributes:
        target: The absolute output folder.
        path: The temporary folder to write the new output into.
    """

    def __init__(
        self,
        target: str | Path,
        kind: str,
        *,
        overwrite: bool,
        protect: Iterable[str | Path] = (),
        error: type[EdgeFuseError] = EdgeFuseError,
    ) -> None:
        self.kind, self.overwrite, self.protect, self.error = kind, overwrite, tuple(protect), error
        self.target = check_output(target, kind, overwrite=overwrite, protect=self.protect, error=error)
        self.committed = False
        self.path = self._sibling(_TMP)
        try:
            self.target.parent.mkdir(parents=True, exist_ok=True)
            os.mkdir(self.path, 0o777)  # the umask applies
        except OSError as exc:
            raise error(
                f"cannot create the output {target}: {exc.strerror or exc} ({exc.filename}); "
                "check that its folder is writable or choose another folder"
            ) from None

    def _sibling(self, tag: str) -> Path:
        return self.target.with_name(
            f".{self.target.name}.edgefuse-{tag}-{os.getpid()}-{secrets.token_hex(4)}"
        )

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.committed:
            self.discard()

    def discard(self) -> None:
        """Delete the temporary folder (a no-op after :meth:`commit`)."""
        if not self.committed:
            _rmtree(self.path)

    def commit(self) -> Path:
        """Swap the finished temporary folder onto the target: the target holds the old or the new output.

        The target is checked again first (it may have changed while the output was written), the new
        output gets the umask's permissions and is fsync'ed, then it is exchanged with the old one in a
        single ``renameat2(RENAME_EXCHANGE)`` (or the documented two-rename fallback), the parent is
        fsync'ed and the old output deleted.

        Returns:
            The target folder.

        Raises:
            EdgeFuseError: (the class given at creation) When the target is no longer replaceable; the
                temporary folder is deleted and the target left as it is.
        """
        if self.committed:
            return self.target
        try:
            check_output(
                self.target,
                self.kind,
                overwrite=self.overwrite,
                protect=self.protect,
                error=self.error,
                recover_first=False,
            )
            _finish_tree(self.path, current_umask())
            old = self._swap()
        except BaseException:
            self.discard()
            raise
        self.committed = True
        _fsync_dir(self.target.parent)
        if old is not None:
            _rmtree(old)
        return self.target

    def _swap(self) -> Path | None:
        """Move :attr:`path` onto the target; return where the old output is now (None if there was none)."""
        if not os.path.lexists(self.target):
            try:
                _rename(self.path, self.target, replace=False)
            except FileExistsError:
                raise self.error(
                    f"{self.target} appeared while the output was being written; it was left untouched. "
                    "Run again to replace it (with overwrite) or choose another folder"
                ) from None
            return None
        if _exchange(self.path, self.target):
            return self.path
        old = self._sibling(_OLD)
        os.rename(self.target, old)
        try:
            _between_renames()
            _rename(self.path, self.target, replace=False)
        except BaseException:
            with contextlib.suppress(OSError):
                _rename(old, self.target, replace=False)  # put the old output back
            raise
        return old


def stage(
    target: str | Path,
    kind: str,
    *,
    overwrite: bool,
    protect: Iterable[str | Path] = (),
    error: type[EdgeFuseError] = EdgeFuseError,
) -> Staging:
    """Check ``target`` (see :func:`check_output`) and create the temporary folder beside it.

    Use as a context manager: write the new output into ``staging.path``, call ``staging.commit()``; on
    an exception (or without a commit) the temporary folder is deleted and the target left untouched.

    Args:
        target: The output folder.
        kind: :data:`CHECKPOINT` or :data:`ARTIFACT`.
        overwrite: Whether an existing output of the same kind (or an empty folder) may be replaced.
        protect: The command's inputs (see :func:`check_output`).
        error: The EdgeFuse error class raised on a refusal.

    Returns:
        The :class:`Staging`.

    Raises:
        error: As :func:`check_output`.
    """
    return Staging(target, kind, overwrite=overwrite, protect=protect, error=error)


def leftovers(parent: str | Path) -> list[str]:
    """Names in ``parent`` of EdgeFuse temporary (``-tmp-``) and old (``-old-``) folders, live or stale.

    Args:
        parent: A folder that holds outputs.

    Returns:
        The matching names, sorted (empty when the folder cannot be listed).
    """
    try:
        return sorted(e.name for e in os.scandir(parent) if _PATTERN.match(e.name))
    except OSError:
        return []
