"""Device profiles: one TOML file per hardware target, loaded and validated into frozen dataclasses.

A device profile says what a target can sense and run: its sensors (and so the modalities a model
receives there), the ordered backends allowed on it, the precisions, threads, memory, approximate peak
compute and bandwidth, and optional budgets. Built-in profiles ship as package data of
``edgefuse.device_profiles`` (``device_profiles/<vendor>/<device>.toml``); users add their own files or
folders. Nothing here substitutes a value silently: every problem raises
:class:`~edgefuse.errors.ProfileError` naming the file, the field, what was given and what is allowed.

Schema, version 1 (also in ``device_profiles/SCHEMA.md``)::

    schema_version = 1                      # int, required; this EdgeFuse reads version 1
    id = "vendor/device"                    # str, required; lowercase [a-z0-9._-] on each side of "/"
    name = "Display name"                   # str, required
    description = "..."                     # str, optional
    backends = ["onnxruntime", "litert"]    # required, ordered preference, no duplicates;
                                            #   from onnxruntime, litert, coreml, tensorrt, torch
    precisions = ["fp32", "int8"]           # required, ordered preference, no duplicates; fp32, fp16, int8
    threads = 4                             # int >= 1, required
    ram_mb = 8192                           # int > 0, required
    batch_sizes = [1]                       # optional list of unique ints >= 1 (static-shape backends);
                                            #   default [1]

    [[sensors]]                             # one table per sensor kind, at least one, no duplicate kinds
    kind = "microphone"                     # microphone, camera, imu, touchscreen, keyboard,
                                            #   depth_camera, lidar, gps
    count = 1                               # int >= 1, optional, default 1
    modality = "audio"                      # optional override of DEFAULT_SENSOR_MODALITIES[kind];
                                            #   a lowercase identifier

    [compute]                               # required
    peak_gflops = { fp32 = 153.6 }          # precision -> GFLOP/s (GOP/s for int8), each > 0, at least
                                            #   one; every key must be listed in `precisions`
    peak_gflops_source = "..."              # str, required: where the figures come from
    memory_bandwidth_gbs = 17.1             # float > 0, GB/s
    memory_bandwidth_source = "..."         # str, required

    [budgets]                               # optional
    latency_ms = 100.0                      # float > 0, optional
    memory_mb = 256                         # int > 0, optional, <= ram_mb

Cross-field checks: every ``peak_gflops`` precision is in ``precisions``; every backend supports at least
one listed precision (``BACKEND_PRECISIONS``); no duplicate sensor kinds, backends, precisions or batch
sizes; ``budgets.memory_mb <= ram_mb``; built-in ids equal their path under ``device_profiles/``; ids are
unique across all loaded profiles.

Profile files given by the user are untrusted: they are read only through
:func:`edgefuse.trust.read_bounded` (regular files of at most :data:`~edgefuse.trust.MAX_TOML_BYTES`; a FIFO
or a device is refused before it is opened for reading, also when it lies in a folder given to
:func:`list_profiles`), and a document nested deeper than :data:`~edgefuse.trust.MAX_NESTING` is refused.
"""

from __future__ import annotations

import importlib.resources
import logging
import os
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from edgefuse.errors import ProfileError, closest_match
from edgefuse.trust import (
    MAX_NESTING,
    MAX_TOML_BYTES,
    ArtifactIntegrityError,
    UnsafeFileError,
    check_nesting,
    read_bounded,
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

#: The schema version this EdgeFuse reads and writes.
SCHEMA_VERSION = 1

#: Sensor kinds a profile may list.
SENSOR_KINDS: tuple[str, ...] = (
    "microphone",
    "camera",
    "imu",
    "touchscreen",
    "keyboard",
    "depth_camera",
    "lidar",
    "gps",
)

#: The modality each sensor kind provides unless a sensor's ``modality`` key overrides it.
DEFAULT_SENSOR_MODALITIES: Mapping[str, str] = MappingProxyType(
    {
        "microphone": "audio",
        "camera": "image",
        "imu": "imu",
        "touchscreen": "text",
        "keyboard": "text",
        "depth_camera": "depth",
        "lidar": "pointcloud",
        "gps": "location",
    }
)

#: Runtime backends a profile may list, in no particular order (the profile gives the order).
BACKENDS: tuple[str, ...] = ("onnxruntime", "litert", "coreml", "tensorrt", "torch")

#: Numeric precisions a profile may list.
PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "int8")

#: Precisions each backend can execute. Core ML has no int8 compute (int8 there is weight-only
#: quantisation, computed in fp16), so a Core ML-only profile must list fp32 or fp16.
BACKEND_PRECISIONS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "onnxruntime": frozenset({"fp32", "fp16", "int8"}),
        "litert": frozenset({"fp32", "fp16", "int8"}),
        "coreml": frozenset({"fp32", "fp16"}),
        "tensorrt": frozenset({"fp32", "fp16", "int8"}),
        "torch": frozenset({"fp32", "fp16", "int8"}),
    }
)

_ID_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*/[a-z0-9][a-z0-9._-]*$")
_MODALITY_RE = re.compile(r"^[a-z][a-z0-9_]*$")

_TOP_FIELDS = (
    "schema_version",
    "id",
    "name",
    "description",
    "sensors",
    "backends",
    "precisions",
    "threads",
    "ram_mb",
    "batch_sizes",
    "compute",
    "budgets",
)
_SENSOR_FIELDS = ("kind", "count", "modality")
_COMPUTE_FIELDS = ("peak_gflops", "peak_gflops_source", "memory_bandwidth_gbs", "memory_bandwidth_source")
_BUDGET_FIELDS = ("latency_ms", "memory_mb")


# --------------------------------------------------------------------------------------------------
# Data classes
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sensor:
    """One kind of sensor on a device.

    Attributes:
        kind: One of :data:`SENSOR_KINDS`.
        count: How many sensors of this kind the device has (>= 1).
        modality: The modality name the sensor provides; ``None`` at construction means the default
            from :data:`DEFAULT_SENSOR_MODALITIES`, and is resolved to it.
    """

    kind: str
    count: int = 1
    modality: str | None = None

    def __post_init__(self) -> None:
        if self.modality is None and self.kind in DEFAULT_SENSOR_MODALITIES:
            object.__setattr__(self, "modality", DEFAULT_SENSOR_MODALITIES[self.kind])

    @property
    def modality_overridden(self) -> bool:
        """Whether the modality differs from the default for this sensor kind."""
        return self.modality != DEFAULT_SENSOR_MODALITIES.get(self.kind)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict of this sensor."""
        return {"kind": self.kind, "count": self.count, "modality": self.modality}


@dataclass(frozen=True)
class Compute:
    """Approximate peak compute and memory bandwidth, with where the figures come from.

    Attributes:
        peak_gflops: Precision -> peak GFLOP/s (GOP/s for int8); read-only mapping.
        peak_gflops_source: Where the peak compute figures come from (spec sheet, estimate and how...).
        memory_bandwidth_gbs: Peak memory bandwidth in GB/s.
        memory_bandwidth_source: Where the bandwidth figure comes from.
    """

    peak_gflops: Mapping[str, float] = field(hash=False)
    peak_gflops_source: str
    memory_bandwidth_gbs: float
    memory_bandwidth_source: str

    def __post_init__(self) -> None:
        if not isinstance(self.peak_gflops, MappingProxyType):
            object.__setattr__(self, "peak_gflops", MappingProxyType(dict(self.peak_gflops)))

    def peak(self, precision: str) -> float | None:
        """Return the peak GFLOP/s at ``precision``, or ``None`` when the profile gives no figure."""
        return self.peak_gflops.get(precision)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict of these figures."""
        return {
            "peak_gflops": dict(self.peak_gflops),
            "peak_gflops_source": self.peak_gflops_source,
            "memory_bandwidth_gbs": self.memory_bandwidth_gbs,
            "memory_bandwidth_source": self.memory_bandwidth_source,
        }


@dataclass(frozen=True)
class Budgets:
    """Optional limits a deployment on this device should respect.

    Attributes:
        latency_ms: Latency budget per inference in milliseconds, or ``None``.
        memory_mb: Memory budget for the model in MB, or ``None``.
    """

    latency_ms: float | None = None
    memory_mb: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict of these budgets."""
        return {"latency_ms": self.latency_ms, "memory_mb": self.memory_mb}


@dataclass(frozen=True)
class DeviceProfile:
    """A validated device profile.

    Build it with :func:`load_profile_file`, :func:`get_profile` or :func:`parse_profile`, which check
    every field; constructing it directly skips validation.

    Attributes:
        id: ``vendor/device``.
        name: Display name.
        sensors: The device's sensors, in file order.
        backends: Allowed backends in order of preference; nothing outside this list is used.
        precisions: Allowed precisions in order of preference.
        threads: Number of CPU threads to use.
        ram_mb: Device RAM in MB.
        compute: Peak compute and bandwidth figures with their sources.
        description: Free text, possibly empty.
        budgets: Optional latency / memory budgets.
        batch_sizes: Fixed batch sizes for static-shape backends.
        schema_version: The schema version of the file.
        source: The file it was loaded from (``None`` when built from a dict without a path).
    """

    id: str
    name: str
    sensors: tuple[Sensor, ...]
    backends: tuple[str, ...]
    precisions: tuple[str, ...]
    threads: int
    ram_mb: int
    compute: Compute
    description: str = ""
    budgets: Budgets | None = None
    batch_sizes: tuple[int, ...] = (1,)
    schema_version: int = SCHEMA_VERSION
    source: Path | None = field(default=None, compare=False)

    @property
    def modalities(self) -> tuple[str, ...]:
        """The modality names the sensors provide, in sensor order, without duplicates."""
        return tuple(dict.fromkeys(s.modality for s in self.sensors if s.modality is not None))

    @property
    def sensor_kinds(self) -> tuple[str, ...]:
        """The sensor kinds, in file order."""
        return tuple(s.kind for s in self.sensors)

    @property
    def vendor(self) -> str:
        """The part of the id before the slash."""
        return self.id.split("/", 1)[0]

    def has_modality(self, modality: str) -> bool:
        """Return whether some sensor of this device provides ``modality``."""
        return modality in self.modalities

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict of the profile (plus the derived ``modalities``)."""
        return {
            "schema_version": self.schema_version,
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "sensors": [s.to_dict() for s in self.sensors],
            "modalities": list(self.modalities),
            "backends": list(self.backends),
            "precisions": list(self.precisions),
            "threads": self.threads,
            "ram_mb": self.ram_mb,
            "batch_sizes": list(self.batch_sizes),
            "compute": self.compute.to_dict(),
            "budgets": None if self.budgets is None else self.budgets.to_dict(),
            "source": None if self.source is None else str(self.source),
        }


# --------------------------------------------------------------------------------------------------
# Field readers: each names the file and the field path in its error
# --------------------------------------------------------------------------------------------------


def _type_name(value: object) -> str:
    names = {
        bool: "a boolean",
        int: "an integer",
        float: "a float",
        str: "a string",
        list: "an array",
        dict: "a table",
    }
    return names.get(type(value), f"a {type(value).__name__}")


class _Reader:
    """Reads fields of one profile and raises ProfileError prefixed with the file's name."""

    def __init__(self, source: str) -> None:
        self.source = source

    def error(self, message: str) -> ProfileError:
        return ProfileError(f"{self.source}: {message}")

    def type_error(self, path: str, expected: str, value: object) -> ProfileError:
        return self.error(f"field '{path}': expected {expected}, got {value!r} ({_type_name(value)})")

    def check_fields(self, table: Mapping[str, Any], allowed: Sequence[str], where: str) -> None:
        prefix = f"{where}." if where else ""
        for key in table:
            if key not in allowed:
                hint = closest_match(key, allowed)
                did_you_mean = f"; did you mean '{prefix}{hint}'?" if hint else ""
                place = f"table '{where}'" if where else "a device profile"
                raise self.error(
                    f"unknown field '{prefix}{key}'; allowed fields in {place}: "
                    f"{', '.join(allowed)}{did_you_mean}"
                )

    def require(self, table: Mapping[str, Any], key: str, path: str, expected: str) -> Any:
        if key not in table:
            raise self.error(f"missing required field '{path}' ({expected})")
        return table[key]

    def string(self, value: object, path: str, *, non_empty: bool = True) -> str:
        if not isinstance(value, str):
            raise self.type_error(path, "a string", value)
        if non_empty and not value.strip():
            raise self.error(f"field '{path}' must not be empty")
        return value

    def integer(self, value: object, path: str, *, minimum: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.type_error(path, f"an integer >= {minimum}", value)
        if value < minimum:
            raise self.error(f"field '{path}' = {value}; expected an integer >= {minimum}")
        return value

    def positive_float(self, value: object, path: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.type_error(path, "a number > 0", value)
        number = float(value)
        if not number > 0 or number == float("inf"):
            raise self.error(f"field '{path}' = {value}; expected a finite number > 0")
        return number

    def table(self, value: object, path: str) -> Mapping[str, Any]:
        if not isinstance(value, dict):
            raise self.type_error(path, "a table", value)
        return value

    def array(self, value: object, path: str) -> list[Any]:
        if not isinstance(value, list):
            raise self.type_error(path, "an array", value)
        return value

    def choice(self, value: object, path: str, allowed: Sequence[str], what: str) -> str:
        text = self.string(value, path)
        if text not in allowed:
            hint = closest_match(text, allowed)
            did_you_mean = f"; did you mean '{hint}'?" if hint else ""
            raise self.error(
                f"field '{path}': unknown {what} '{text}'; allowed: {', '.join(allowed)}{did_you_mean}"
            )
        return text

    def choices(self, value: object, path: str, allowed: Sequence[str], what: str) -> tuple[str, ...]:
        items = self.array(value, path)
        if not items:
            raise self.error(f"field '{path}' must list at least one {what}; allowed: {', '.join(allowed)}")
        result: list[str] = []
        for i, item in enumerate(items):
            name = self.choice(item, f"{path}[{i}]", allowed, what)
            if name in result:
                raise self.error(f"field '{path}': duplicate {what} '{name}'; list each {what} once")
            result.append(name)
        return tuple(result)


def _parse_sensors(reader: _Reader, value: object) -> tuple[Sensor, ...]:
    items = reader.array(value, "sensors")
    if not items:
        raise reader.error(
            "field 'sensors' must list at least one sensor, e.g. sensors = [{ kind = \"microphone\" }]"
        )
    sensors: list[Sensor] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        path = f"sensors[{i}]"
        table = reader.table(item, path)
        reader.check_fields(table, _SENSOR_FIELDS, path)
        kind = reader.choice(
            reader.require(table, "kind", f"{path}.kind", "a sensor kind"),
            f"{path}.kind",
            SENSOR_KINDS,
            "sensor",
        )
        if kind in seen:
            raise reader.error(
                f"field '{path}.kind': duplicate sensor '{kind}' (also sensors[{seen[kind]}]); "
                "list each sensor kind once and set 'count' for several of the same kind"
            )
        seen[kind] = i
        count = reader.integer(table.get("count", 1), f"{path}.count", minimum=1)
        modality: str | None = None
        if "modality" in table:
            modality = reader.string(table["modality"], f"{path}.modality")
            if not _MODALITY_RE.match(modality):
                raise reader.error(
                    f"field '{path}.modality' = {modality!r}; expected a lowercase identifier "
                    "(a lowercase letter, then lowercase letters, digits or '_'), e.g. 'audio'"
                )
        sensors.append(Sensor(kind=kind, count=count, modality=modality))
    return tuple(sensors)


def _parse_compute(reader: _Reader, value: object, precisions: tuple[str, ...]) -> Compute:
    table = reader.table(value, "compute")
    reader.check_fields(table, _COMPUTE_FIELDS, "compute")
    peaks_table = reader.table(
        reader.require(table, "peak_gflops", "compute.peak_gflops", "a table precision -> GFLOP/s"),
        "compute.peak_gflops",
    )
    if not peaks_table:
        raise reader.error(
            "field 'compute.peak_gflops' must give at least one precision, "
            "e.g. peak_gflops = { fp32 = 100.0 }"
        )
    peaks: dict[str, float] = {}
    for key, number in peaks_table.items():
        path = f"compute.peak_gflops.{key}"
        precision = reader.choice(key, path, PRECISIONS, "precision")
        if precision not in precisions:
            raise reader.error(
                f"field '{path}': precision '{precision}' is not in precisions = {list(precisions)}; "
                "add it there or remove this figure"
            )
        peaks[precision] = reader.positive_float(number, path)
    peak_source = reader.string(
        reader.require(table, "peak_gflops_source", "compute.peak_gflops_source", "a string"),
        "compute.peak_gflops_source",
    )
    bandwidth = reader.positive_float(
        reader.require(table, "memory_bandwidth_gbs", "compute.memory_bandwidth_gbs", "a number in GB/s"),
        "compute.memory_bandwidth_gbs",
    )
    bandwidth_source = reader.string(
        reader.require(table, "memory_bandwidth_source", "compute.memory_bandwidth_source", "a string"),
        "compute.memory_bandwidth_source",
    )
    return Compute(
        peak_gflops=peaks,
        peak_gflops_source=peak_source,
        memory_bandwidth_gbs=bandwidth,
        memory_bandwidth_source=bandwidth_source,
    )


def _parse_budgets(reader: _Reader, value: object, ram_mb: int) -> Budgets:
    table = reader.table(value, "budgets")
    reader.check_fields(table, _BUDGET_FIELDS, "budgets")
    latency = (
        reader.positive_float(table["latency_ms"], "budgets.latency_ms") if "latency_ms" in table else None
    )
    memory = (
        reader.integer(table["memory_mb"], "budgets.memory_mb", minimum=1) if "memory_mb" in table else None
    )
    if memory is not None and memory > ram_mb:
        raise reader.error(f"field 'budgets.memory_mb' = {memory} exceeds ram_mb = {ram_mb}")
    return Budgets(latency_ms=latency, memory_mb=memory)


def _parse_batch_sizes(reader: _Reader, value: object) -> tuple[int, ...]:
    items = reader.array(value, "batch_sizes")
    if not items:
        raise reader.error("field 'batch_sizes' must list at least one batch size, e.g. [1]")
    sizes: list[int] = []
    for i, item in enumerate(items):
        size = reader.integer(item, f"batch_sizes[{i}]", minimum=1)
        if size in sizes:
            raise reader.error(f"field 'batch_sizes': duplicate batch size {size}")
        sizes.append(size)
    return tuple(sizes)


def parse_profile(
    data: Mapping[str, Any],
    source: str | os.PathLike[str] | None = None,
    *,
    expected_id: str | None = None,
) -> DeviceProfile:
    """Validate a parsed TOML document and build a :class:`DeviceProfile`.

    Args:
        data: The document, as returned by :func:`tomllib.loads`.
        source: The file it came from, for messages and :attr:`DeviceProfile.source`.
        expected_id: If given, the id the document must declare (built-ins: their path).

    Returns:
        The validated profile.

    Raises:
        ProfileError: A field is unknown, missing, of the wrong type or value, or a cross-field
            check fails. The message names the source, the field and what is allowed.
    """
    reader = _Reader(str(source) if source is not None else "<profile>")
    if not isinstance(data, Mapping):
        raise reader.error(f"expected a TOML document (a table), got {_type_name(data)}")
    reader.check_fields(data, _TOP_FIELDS, "")

    version = reader.integer(
        reader.require(data, "schema_version", "schema_version", f"an integer, currently {SCHEMA_VERSION}"),
        "schema_version",
        minimum=1,
    )
    if version != SCHEMA_VERSION:
        raise reader.error(
            f"field 'schema_version' = {version}; this EdgeFuse reads schema_version {SCHEMA_VERSION} "
            "(upgrade EdgeFuse for newer profiles)"
        )

    profile_id = reader.string(reader.require(data, "id", "id", "a string 'vendor/device'"), "id")
    if not _ID_RE.match(profile_id):
        raise reader.error(
            f"field 'id' = {profile_id!r}; expected 'vendor/device' in lowercase letters, digits, '.', '_' "
            "or '-', e.g. 'raspberrypi/pi5-usb-mic'"
        )
    if expected_id is not None and profile_id != expected_id:
        raise reader.error(
            f"field 'id' = {profile_id!r} but the file's path says {expected_id!r}; "
            "a built-in profile's id must equal its path under device_profiles/ without '.toml'"
        )
    name = reader.string(reader.require(data, "name", "name", "a display name"), "name")
    description = reader.string(data.get("description", ""), "description", non_empty=False)

    sensors = _parse_sensors(reader, reader.require(data, "sensors", "sensors", "an array of sensor tables"))
    backends = reader.choices(
        reader.require(data, "backends", "backends", "an array of backend names"),
        "backends",
        BACKENDS,
        "backend",
    )
    precisions = reader.choices(
        reader.require(data, "precisions", "precisions", "an array of precisions"),
        "precisions",
        PRECISIONS,
        "precision",
    )
    for i, backend in enumerate(backends):
        supported = BACKEND_PRECISIONS[backend]
        if not supported.intersection(precisions):
            can = ", ".join(p for p in PRECISIONS if p in supported)
            raise reader.error(
                f"field 'backends[{i}]': backend '{backend}' supports none of "
                f"precisions = {list(precisions)}; it supports {can}"
            )
    threads = reader.integer(
        reader.require(data, "threads", "threads", "an integer >= 1"), "threads", minimum=1
    )
    ram_mb = reader.integer(reader.require(data, "ram_mb", "ram_mb", "an integer > 0"), "ram_mb", minimum=1)
    batch_sizes = _parse_batch_sizes(reader, data["batch_sizes"]) if "batch_sizes" in data else (1,)
    compute = _parse_compute(reader, reader.require(data, "compute", "compute", "a table"), precisions)
    budgets = _parse_budgets(reader, data["budgets"], ram_mb) if "budgets" in data else None

    return DeviceProfile(
        id=profile_id,
        name=name,
        sensors=sensors,
        backends=backends,
        precisions=precisions,
        threads=threads,
        ram_mb=ram_mb,
        compute=compute,
        description=description,
        budgets=budgets,
        batch_sizes=batch_sizes,
        schema_version=version,
        source=Path(source) if source is not None else None,
    )


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
    file = Path(path)
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


def _expand(path: str | os.PathLike[str]) -> list[Path]:
    """Return the ``.toml`` files a user path names: the file itself, or every one under a folder."""
    p = Path(path)
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
    if isinstance(id_or_path, os.PathLike) or str(id_or_path).endswith(".toml"):
        return load_profile_file(id_or_path)
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
            results.append((Path(path), exc))
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
