"""Modality specifications: what a model expects from each sensor (pure data, no torch).

Shared by the model contract, checkpoints, the export manifest and the runtime.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from edgefuse.errors import ContractError

__all__ = ["ModalitySpec"]

_DTYPES = ("float32", "float16", "int64", "int32", "uint8")


@dataclass(frozen=True)
class ModalitySpec:
    """One modality of a multimodal model.

    Attributes:
        name: Modality name (``audio``, ``image``, ``imu``...); also the input name in exported graphs.
        shape: Input shape **without** the batch dimension, e.g. ``(1, 32, 61)``.
        dtype: Input dtype name (``float32`` by default).
        preprocessing: Identifier of the preprocessing that turns raw sensor data into this input, e.g.
            ``logmel-v1``; ``params`` holds its parameters so a device can reproduce it without torch.
        params: JSON-serialisable preprocessing parameters.
    """

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"
    preprocessing: str = "none"
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("_", "").isalnum():
            raise ContractError(
                f"modality name {self.name!r} must be a non-empty identifier (letters, digits, _)"
            )
        shape = tuple(int(s) for s in self.shape)
        if not shape or any(s < 1 for s in shape):
            raise ContractError(
                f"modality {self.name!r}: shape {self.shape} must be non-empty positive sizes"
            )
        object.__setattr__(self, "shape", shape)
        if self.dtype not in _DTYPES:
            raise ContractError(f"modality {self.name!r}: dtype {self.dtype!r} is not one of {_DTYPES}")

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict (``shape`` as a list)."""
        d = asdict(self)
        d["shape"] = list(self.shape)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModalitySpec:
        """Build a spec from :meth:`to_dict` output, naming any unknown or missing key.

        Raises:
            ContractError: When a key is unknown or a required key is missing.
        """
        allowed = {"name", "shape", "dtype", "preprocessing", "params"}
        unknown = set(data) - allowed
        if unknown:
            raise ContractError(
                f"modality spec has unknown keys {sorted(unknown)}; allowed: {sorted(allowed)}"
            )
        missing = {"name", "shape"} - set(data)
        if missing:
            raise ContractError(f"modality spec is missing {sorted(missing)}")
        return cls(**{**data, "shape": tuple(data["shape"])})
