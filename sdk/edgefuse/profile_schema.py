"""The device-profile schema: allowed values, the frozen dataclasses, and validation of a parsed document.

Pure data and checks, no file access: :func:`parse_profile` turns a document (as :func:`tomllib.loads`
returns it) into a :class:`DeviceProfile` or raises :class:`~edgefuse.errors.ProfileError` naming the
file, the field, what was given and what is allowed. Reading files (bounded, FIFO-safe) lives in
:mod:`edgefuse.profiles`, which re-exports everything public here. The schema itself is documented in
``device_profiles/SCHEMA.md``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from edgefuse.errors import ProfileError, closest_match

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
    "is_profile_id",
    "parse_profile",
]

#: The schema version this EdgeFuse reads and writes.
SCHEMA_VERSION = 1
#: Largest integer any profile field takes (ram_mb, budgets...); batch sizes are capped by MAX_BATCH.
MAX_INTEGER = (1 << 31) - 1
#: Largest fixed batch size a profile may list (static-shape backends compile one signature per size).
MAX_BATCH = 4096

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

_ID_RE = re.compile(r"[a-z0-9][a-z0-9._-]*/[a-z0-9][a-z0-9._-]*")  # used with fullmatch
_MODALITY_RE = re.compile(r"[a-z][a-z0-9_]*")  # used with fullmatch

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
_COMPUTE_FIELDS = (
    "peak_gflops",
    "peak_gflops_source",
    "memory_bandwidth_gbs",
    "memory_bandwidth_source",
    "efficiency",
    "efficiency_source",
    "call_overhead_ms",
    "call_overhead_source",
)
#: Backend classes of the roofline estimate's efficiency factor (see :mod:`edgefuse.roofline`).
BACKEND_CLASSES = ("cpu", "gpu", "npu")
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
        efficiency: Optional backend class (``cpu``, ``gpu``, ``npu``) -> fraction of the peak compute a
            runtime of that class reaches on this device (0..1]; classes not given use the defaults of
            :data:`edgefuse.roofline.EFFICIENCY`.
        efficiency_source: Where those fractions come from (required with ``efficiency``).
        call_overhead_ms: Optional backend name -> fixed time per graph call in ms (>= 0); backends not
            given use :data:`edgefuse.roofline.CALL_OVERHEAD_MS`.
        call_overhead_source: Where those times come from (required with ``call_overhead_ms``).
    """

    peak_gflops: Mapping[str, float] = field(hash=False)
    peak_gflops_source: str
    memory_bandwidth_gbs: float
    memory_bandwidth_source: str
    efficiency: Mapping[str, float] = field(default_factory=dict, hash=False)
    efficiency_source: str | None = None
    call_overhead_ms: Mapping[str, float] = field(default_factory=dict, hash=False)
    call_overhead_source: str | None = None

    def __post_init__(self) -> None:
        for name in ("peak_gflops", "efficiency", "call_overhead_ms"):
            value = getattr(self, name)
            if not isinstance(value, MappingProxyType):
                object.__setattr__(self, name, MappingProxyType(dict(value)))

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
            **(
                {"efficiency": dict(self.efficiency), "efficiency_source": self.efficiency_source}
                if self.efficiency
                else {}
            ),
            **(
                {
                    "call_overhead_ms": dict(self.call_overhead_ms),
                    "call_overhead_source": self.call_overhead_source,
                }
                if self.call_overhead_ms
                else {}
            ),
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

    def integer(self, value: object, path: str, *, minimum: int, maximum: int = MAX_INTEGER) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.type_error(path, f"an integer in [{minimum}, {maximum}]", value)
        if not minimum <= value <= maximum:
            shown = value if value.bit_length() < 64 else f"an integer of {value.bit_length()} bits"
            raise self.error(f"field '{path}' = {shown}; expected an integer in [{minimum}, {maximum}]")
        return value

    def positive_float(self, value: object, path: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.type_error(path, "a number > 0", value)
        try:
            number = float(value)
        except OverflowError:
            number = float("inf")
        if not number > 0 or number == float("inf"):
            shown = value if not isinstance(value, int) or value.bit_length() < 64 else "a huge integer"
            raise self.error(f"field '{path}' = {shown}; expected a finite number > 0")
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
        count = reader.integer(table.get("count", 1), f"{path}.count", minimum=1, maximum=1024)
        modality: str | None = None
        if "modality" in table:
            modality = reader.string(table["modality"], f"{path}.modality")
            if not _MODALITY_RE.fullmatch(modality):
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
    efficiency = _sourced_table(reader, table, "efficiency", BACKEND_CLASSES, "backend class", upper=1.0)
    overhead = _sourced_table(reader, table, "call_overhead_ms", BACKENDS, "backend", upper=None)
    return Compute(
        peak_gflops=peaks,
        peak_gflops_source=peak_source,
        memory_bandwidth_gbs=bandwidth,
        memory_bandwidth_source=bandwidth_source,
        efficiency=efficiency,
        efficiency_source=_source_of(reader, table, "efficiency", "efficiency_source"),
        call_overhead_ms=overhead,
        call_overhead_source=_source_of(reader, table, "call_overhead_ms", "call_overhead_source"),
    )


def _sourced_table(
    reader: _Reader,
    table: Mapping[str, Any],
    key: str,
    allowed: Sequence[str],
    what: str,
    upper: float | None,
) -> dict[str, float]:
    """``compute.<key>``: an optional table of ``allowed`` names -> positive numbers (``<= upper``)."""
    if key not in table:
        return {}
    out: dict[str, float] = {}
    for name, number in reader.table(table[key], f"compute.{key}").items():
        path = f"compute.{key}.{name}"
        choice = reader.choice(name, path, allowed, what)
        value = reader.positive_float(number, path)
        if upper is not None and value > upper:
            raise reader.error(f"field '{path}' = {value} must be <= {upper} (a fraction of the peak)")
        out[choice] = value
    return out


def _source_of(reader: _Reader, table: Mapping[str, Any], key: str, source_key: str) -> str | None:
    """The ``compute.<source_key>`` string; required when ``compute.<key>`` is given."""
    if source_key not in table:
        if key in table:
            raise reader.error(
                f"field 'compute.{source_key}' is missing; say where compute.{key} comes from "
                "(measured how, or the estimate's arithmetic)"
            )
        return None
    return reader.string(table[source_key], f"compute.{source_key}")


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
        size = reader.integer(item, f"batch_sizes[{i}]", minimum=1, maximum=MAX_BATCH)
        if size in sizes:
            raise reader.error(f"field 'batch_sizes': duplicate batch size {size}")
        sizes.append(size)
    return tuple(sizes)


def is_profile_id(text: str) -> bool:
    """Whether ``text`` has the form of a profile id (``vendor/device``, lowercase), not a path."""
    return bool(_ID_RE.fullmatch(text))


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
    if not _ID_RE.fullmatch(profile_id):
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
        reader.require(data, "threads", "threads", "an integer >= 1"), "threads", minimum=1, maximum=1024
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
