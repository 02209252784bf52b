"""Device profiles: one TOML file per hardware target, loaded and validated into frozen dataclasses.

A device profile says what a target can sense and run: its sensors (and so the modalities a model
receives there), the ordered backends allowed on it, the precisions, threads, memory, approximate peak
compute and bandwidth, and optional budgets. Built-in profiles ship as package data of
``edgefuse.device_profiles`` (``device_profiles/<vendor>/<device>.toml``); users add their own files or
folders. Nothing here substitutes a value silently: every problem raises
:class:`~edgefuse.errors.ProfileError` naming the file, the field, what was given and what is allowed.

The schema (allowed values, dataclasses, cross-field checks) is :mod:`edgefuse.profile_schema`, documented
in ``device_profiles/SCHEMA.md``; this module reads files and folders and re-exports the schema's public
names, so ``from edgefuse.profiles import DeviceProfile`` keeps working.

Profile files given by the user are untrusted: they are read only through
:func:`edgefuse.trust.read_bounded` (regular files of at most :data:`~edgefuse.trust.MAX_TOML_BYTES`; a FIFO
or a device is refused before it is opened for reading, also when it lies in a folder given to
:func:`list_profiles`), and a document nested deeper than :data:`~edgefuse.trust.MAX_NESTING` is refused.
"""

from __future__ import annotations

import importlib.resources
import logging
import os
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from edgefuse.errors import ProfileError, closest_match
from edgefuse.profile_schema import (
    BACKEND_PRECISIONS,
    BACKENDS,
    DEFAULT_SENSOR_MODALITIES,
    PRECISIONS,
    SCHEMA_VERSION,
    SENSOR_KINDS,
    Budgets,
    Compute,
    DeviceProfile,
    Sensor,
    parse_profile,
)
from edgefuse.trust import (
    MAX_NESTING,
    MAX_TOML_BYTES,
    ArtifactIntegrityError,
    UnsafeFileError,
    check_nesting,
    read_bounded,
    user_path,
)

__all__ = [
    "BACKENDS",
    "BACKEND_PRECISIONS",
    "DEFAULT_SENSOR_MODALITIES",
    "PRECISIONS",
    "SCHEMA_VERSION",
    "SENSOR_KINDS",
    "Budgets",
    "Compute",
    "DeviceProfile",
    "Sensor",
    "builtin_profiles_root",
    "get_profile",
    "list_profiles",
    "load_profile_file",
    "parse_profile",
    "validate_paths",
]

_log = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------------
# Files, folders and built-ins
# --------------------------------------------------------------------------------------------------


def _parse_bytes(raw: bytes, source: str | os.PathLike[str], expected_id: str | None = None) -> DeviceProfile:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProfileError(f"{source}: not UTF-8 text ({exc}); save the profile as UTF-8") from exc
    too_deep = (
        f"{source}: arrays or tables nested more than {MAX_NESTING} levels deep, refused (rule: EdgeFuse "
        "parses no document nested deeper); a device profile needs 3 levels at most (e.g. "
        "[compute] peak_gflops = { fp32 = 100.0 }): fix or replace the file"
    )
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{source}: invalid TOML: {exc}; fix the syntax there") from exc
    except ValueError as exc:  # e.g. an integer of more than 4300 digits (Python's conversion limit)
        raise ProfileError(f"{source}: a value cannot be read ({exc}); no profile field needs it") from None
    except RecursionError:  # tomllib parses nested arrays / inline tables recursively
        raise ProfileError(too_deep) from None
    try:
        check_nesting(data, what=str(source))
    except UnsafeFileError:
        raise ProfileError(too_deep) from None
    return parse_profile(data, source, expected_id=expected_id)


def builtin_profiles_root() -> Path:
    """Return the folder holding the built-in profiles (``edgefuse/device_profiles``)."""
    return Path(str(importlib.resources.files("edgefuse.device_profiles")))


def _builtin_expected_id(path: Path) -> str | None:
    """Return the id a file must have if it lies in the built-in folder, else ``None``."""
    try:
        relative = path.resolve().relative_to(builtin_profiles_root().resolve())
    except ValueError:
        return None
    return relative.with_suffix("").as_posix()


def load_profile_file(path: str | os.PathLike[str]) -> DeviceProfile:
    """Load and validate one profile file.

    A file inside the built-in folder must also declare the id given by its path.

    Args:
        path: Path to a ``.toml`` profile.

    Returns:
        The validated profile, with :attr:`DeviceProfile.source` set to ``path``.

    Raises:
        ProfileError: The file is missing, is not a regular file (FIFO, device, folder...), is larger than
            :data:`~edgefuse.trust.MAX_TOML_BYTES`, is not UTF-8 or valid TOML, is nested deeper than
            :data:`~edgefuse.trust.MAX_NESTING`, or fails validation.
    """
    file = _user_path(path)
    try:
        raw = read_bounded(file, max_bytes=MAX_TOML_BYTES, what="device profile")
    except ArtifactIntegrityError:
        kind = "a dangling symlink" if file.is_symlink() else "missing"
        raise ProfileError(
            f"{file}: no such device profile file ({kind}); check the path, or see `edgefuse profiles list`"
        ) from None
    except UnsafeFileError as exc:
        raise ProfileError(
            f"{exc}. A device profile must be a regular UTF-8 TOML file of at most {MAX_TOML_BYTES} bytes "
            f"(1 MiB); point at such a file instead of {file}"
        ) from None
    return _parse_bytes(raw, file, expected_id=_builtin_expected_id(file))


def _user_path(path: object) -> Path:
    """A profile path given by the caller: a str or os.PathLike without NUL bytes."""
    return user_path(path, error=ProfileError, what="a device profile file or folder")


def _expand(path: str | os.PathLike[str]) -> list[Path]:
    """Return the ``.toml`` files a user path names: the file itself, or every one under a folder."""
    p = _user_path(path)
    if p.is_dir():
        # Everything named *.toml that is not a folder: a FIFO, a device or a dangling symlink is listed
        # too, so that loading it reports it (it is never opened for reading) instead of skipping it.
        files = sorted(f for f in p.rglob("*.toml") if not f.is_dir())
        if not files:
            raise ProfileError(f"{p}: folder contains no .toml device profiles")
        return files
    if os.path.lexists(p):  # a file; a FIFO, a device or a dangling symlink is refused when loaded
        return [p]
    raise ProfileError(f"{p}: no such device profile file or folder")


def _builtin_profiles() -> list[DeviceProfile]:
    root = importlib.resources.files("edgefuse.device_profiles")
    profiles: list[DeviceProfile] = []

    def walk(node: Any, parts: tuple[str, ...]) -> None:
        for child in sorted(node.iterdir(), key=lambda c: c.name):
            if child.is_dir():
                if not child.name.startswith(("_", ".")):
                    walk(child, (*parts, child.name))
            elif child.name.endswith(".toml"):
                expected = "/".join((*parts, child.name[: -len(".toml")]))
                profiles.append(_parse_bytes(child.read_bytes(), str(child), expected_id=expected))

    walk(root, ())
    return profiles


def _check_unique(profiles: Iterable[DeviceProfile]) -> dict[str, DeviceProfile]:
    by_id: dict[str, DeviceProfile] = {}
    for profile in profiles:
        other = by_id.get(profile.id)
        if other is not None:
            raise ProfileError(
                f"duplicate device profile id '{profile.id}': defined in {other.source} and in "
                f"{profile.source}; give one of them another id"
            )
        by_id[profile.id] = profile
    return by_id


def list_profiles(extra_paths: Iterable[str | os.PathLike[str]] = ()) -> list[DeviceProfile]:
    """Load the built-in profiles plus the user's files and folders, sorted by id.

    Args:
        extra_paths: ``.toml`` files, or folders searched recursively for ``.toml`` files.

    Returns:
        Every profile, sorted by id.

    Raises:
        ProfileError: A path does not exist, a folder holds no profile, a profile is invalid, or two
            profiles share an id (a user profile may not shadow a built-in one).
    """
    profiles = _builtin_profiles()
    for path in extra_paths:
        profiles.extend(load_profile_file(file) for file in _expand(path))
    by_id = _check_unique(profiles)
    _log.debug("loaded %d device profiles", len(by_id))
    return [by_id[key] for key in sorted(by_id)]


def get_profile(
    id_or_path: str | os.PathLike[str], extra_paths: Iterable[str | os.PathLike[str]] = ()
) -> DeviceProfile:
    """Return one profile by id (built-in or from ``extra_paths``) or by path to a ``.toml`` file.

    A :class:`os.PathLike` or a string ending in ``.toml`` is a path; anything else is an id.

    Args:
        id_or_path: A profile id such as ``"generic/x86-64"``, or a path to a profile file.
        extra_paths: Extra files or folders to search for the id.

    Returns:
        The validated profile.

    Raises:
        ProfileError: The file is missing or invalid, or no profile has this id (the message lists the
            known ids and the closest one).
    """
    if not isinstance(id_or_path, str | os.PathLike):
        raise ProfileError(
            f"a device profile is named by an id such as 'generic/x86-64' or a path to a .toml file; got "
            f"{type(id_or_path).__name__}"
        )
    if isinstance(id_or_path, os.PathLike) or str(id_or_path).endswith(".toml"):
        return load_profile_file(_user_path(id_or_path))
    wanted = str(id_or_path)
    profiles = list_profiles(extra_paths)
    for profile in profiles:
        if profile.id == wanted:
            return profile
    ids = [p.id for p in profiles]
    hint = closest_match(wanted, ids)
    did_you_mean = f"; did you mean '{hint}'?" if hint else ""
    raise ProfileError(
        f"unknown device profile id '{wanted}'; known ids: {', '.join(ids)}{did_you_mean} "
        "(or pass a path to a .toml profile)"
    )


def validate_paths(
    paths: Iterable[str | os.PathLike[str]],
) -> list[tuple[Path, DeviceProfile | ProfileError]]:
    """Validate profile files and folders without stopping at the first error.

    Besides each file's own checks, an id used by two of the given files, or by a given file and a
    built-in profile (other than that same file), is reported as an error on the later file.

    Args:
        paths: ``.toml`` files, or folders searched recursively for ``.toml`` files.

    Returns:
        One ``(path, result)`` pair per file (or per path that could not be expanded), in order; the
        result is the profile, or the :class:`ProfileError` describing what is wrong.
    """
    results: list[tuple[Path, DeviceProfile | ProfileError]] = []
    for path in paths:
        try:
            files = _expand(path)
        except ProfileError as exc:
            results.append((Path(path) if isinstance(path, str | os.PathLike) else Path(repr(path)), exc))
            continue
        for file in files:
            try:
                results.append((file, load_profile_file(file)))
            except ProfileError as exc:
                results.append((file, exc))

    try:
        builtins = {p.id: p for p in _builtin_profiles()}
    except ProfileError:  # a broken built-in is reported when its own file is validated
        builtins = {}
    seen: dict[str, Path] = {}
    for i, (file, result) in enumerate(results):
        if not isinstance(result, DeviceProfile):
            continue
        resolved = file.resolve()
        builtin = builtins.get(result.id)
        if builtin is not None and builtin.source is not None and builtin.source.resolve() != resolved:
            results[i] = (
                file,
                ProfileError(
                    f"{file}: id '{result.id}' is already used by the built-in profile {builtin.source}; "
                    "give this profile another id"
                ),
            )
        elif result.id in seen and seen[result.id] != resolved:
            results[i] = (
                file,
                ProfileError(
                    f"duplicate device profile id '{result.id}': defined in {seen[result.id]} and in {file}; "
                    "give one of them another id"
                ),
            )
        else:
            seen[result.id] = resolved
    return results
