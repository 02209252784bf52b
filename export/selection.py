"""Which formats, at which precisions, an export writes for a device profile (one rule for CLI and demo).

Without explicit choices the export follows the profile: for each backend of the profile, in the
profile's order, the format that backend runs (:data:`~edgefuse.runtime.registry.BACKEND_FORMATS`;
``torch`` runs checkpoints and gets none), at the **first precision the profile lists that the format
implements** (:data:`FORMAT_PRECISIONS`). ``"all"`` means the formats of the profile's backends, not every
format EdgeFuse knows. A format that none of the profile's backends runs is refused, naming the backends,
unless ``any_format`` forces it. Every choice carries the reason it was made (printed by the CLI and
recorded in the manifest).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from edgefuse.errors import did_you_mean
from edgefuse.export.errors import ExportError

__all__ = ["FORMAT_PRECISIONS", "FormatChoice", "plan_formats", "profile_formats"]

#: Precisions EdgeFuse's exporter for each format implements (int8: post-training quantization with
#: calibration; ONNX fp16 is not written: TensorRT builds its fp16 engine from the fp32 ONNX).
FORMAT_PRECISIONS: dict[str, tuple[str, ...]] = {
    "onnx": ("fp32", "int8"),
    "tflite": ("fp32", "fp16", "int8"),
    "coreml": ("fp32", "fp16", "int8"),
    "tensorrt": ("fp32", "fp16", "int8"),
}


@dataclass(frozen=True)
class FormatChoice:
    """One format to export and why.

    Attributes:
        format: The format name (``onnx``, ``tflite``, ``coreml``, ``tensorrt``).
        precision: The precision to export it at.
        backends: The profile's backends that run this format (empty when forced with ``any_format``).
        reason: Why this format and precision were chosen, in one sentence.
    """

    format: str
    precision: str
    backends: tuple[str, ...]
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """JSON form (for the manifest and ``--json``)."""
        return {**asdict(self), "backends": list(self.backends)}


def profile_formats(profile: Any) -> dict[str, tuple[str, ...]]:
    """The formats the profile's backends run, in the profile's order: format -> backends running it."""
    from edgefuse.runtime.registry import BACKEND_FORMATS

    out: dict[str, tuple[str, ...]] = {}
    for backend in profile.backends:
        fmt = BACKEND_FORMATS.get(backend)
        if fmt in FORMAT_PRECISIONS:
            out[fmt] = (*out.get(fmt, ()), backend)
    return out


def plan_formats(
    profile: Any,
    formats: Sequence[str] | str | None = None,
    precision: str | None = None,
    *,
    any_format: bool = False,
) -> list[FormatChoice]:
    """Decide the formats and precisions of an export for ``profile``.

    Args:
        profile: A :class:`~edgefuse.profiles.DeviceProfile`.
        formats: ``None`` (follow the profile), ``"all"`` (the formats of the profile's backends), one
            format name, or several.
        precision: ``None`` (per format: the first precision of the profile the format implements), or
            one precision for every format (it must be listed by the profile and implemented by each
            format).
        any_format: Allow formats that none of the profile's backends runs.

    Returns:
        One :class:`FormatChoice` per format, in the profile's backend order (given formats keep the
        given order), without duplicates.

    Raises:
        ExportError: An unknown format or precision (with the closest match); a format none of the
            profile's backends runs (naming the backends; ``any_format`` forces it); a precision the
            profile does not list or the format does not implement (naming what would work); a profile
            whose backends run no exportable format.
    """
    from edgefuse.profiles import PRECISIONS

    runs = profile_formats(profile)
    requested = [formats] if isinstance(formats, str) else (None if formats is None else list(formats))
    if requested is None or requested == ["all"]:
        if not runs:
            raise ExportError(
                f"profile {profile.id!r} lists backends {list(profile.backends)}, none of which runs an exported "
                "artifact (torch runs checkpoints); name a format with --format and force it with --any-format"
            )
        names = list(runs)
        how = (
            "a format of the profile's backends"
            if requested is None
            else "every format of the profile's backends"
        )
    else:
        names = list(dict.fromkeys(requested))
        how = "requested"
        for f in names:
            if f not in FORMAT_PRECISIONS:
                allowed = [*FORMAT_PRECISIONS, "all"]
                raise ExportError(f"unknown format {f!r}; allowed: {allowed}{did_you_mean(f, allowed)}")
        foreign = [f for f in names if f not in runs]
        if foreign and not any_format:
            raise ExportError(
                f"format(s) {foreign}: no backend of profile {profile.id!r} runs them (its backends are "
                f"{list(profile.backends)}, which run {list(runs) or 'no exported format'}); export "
                f"{' or '.join(runs) or 'for another profile'}, or pass any_format=True to write "
                "them anyway"
            )
    if precision is not None:
        if precision not in PRECISIONS:
            raise ExportError(
                f"unknown precision {precision!r}; allowed: {list(PRECISIONS)}{did_you_mean(precision, PRECISIONS)}"
            )
        if precision not in profile.precisions:
            raise ExportError(
                f"--precision {precision}: the device profile {profile.id!r} lists precisions "
                f"{list(profile.precisions)}, not {precision!r}; export at one it lists "
                f"({' or '.join(f'--precision {p}' for p in profile.precisions)}, or leave --precision out to "
                "follow the profile), or choose a profile that lists it (see `edgefuse profiles list`)"
            )
    return [_choose(profile, f, precision, runs.get(f, ()), how) for f in names]


def _choose(
    profile: Any, fmt: str, precision: str | None, backends: tuple[str, ...], how: str
) -> FormatChoice:
    implemented = FORMAT_PRECISIONS[fmt]
    who = (
        f"run there by {', '.join(backends)}"
        if backends
        else "forced (any_format=True): no backend of the profile runs it"
    )
    if precision is not None:
        if precision not in implemented:
            raise ExportError(
                f"{fmt} at {precision}: EdgeFuse's {fmt} exporter implements {list(implemented)}; choose one of "
                f"them{_fp16_hint(fmt, precision)}"
            )
        return FormatChoice(fmt, precision, backends, f"{how}, {who}; {precision}: requested")
    skipped = []
    for p in profile.precisions:
        if p in implemented:
            passed = (
                f"; {', '.join(skipped)} preferred by the profile but not implemented for {fmt}"
                if skipped
                else ""
            )
            return FormatChoice(
                fmt,
                p,
                backends,
                f"{how}, {who}; {p}: the profile's first precision that {fmt} implements{passed}",
            )
        skipped.append(p)
    raise ExportError(
        f"profile {profile.id!r} lists precisions {list(profile.precisions)}, none of which EdgeFuse's {fmt} "
        f"exporter implements ({list(implemented)}); choose another format"
    )


def _fp16_hint(fmt: str, precision: str) -> str:
    if fmt == "onnx" and precision == "fp16":
        return " (TensorRT builds its fp16 engine from the fp32 ONNX: use --format tensorrt --precision fp16)"
    return ""
