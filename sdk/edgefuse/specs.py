"""Modality specifications: what a model expects from each sensor (pure data, no torch).

Shared by the model contract, checkpoints, the export manifest and the runtime.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, field
from typing import Any

from edgefuse.errors import ContractError

__all__ = ["MAX_INPUT_ELEMENTS", "MAX_INPUT_RANK", "ModalitySpec"]

_DTYPES = ("float32", "float16", "int64", "int32", "uint8")
#: Largest input of one row EdgeFuse accepts (16M elements: far above 16 frames of 3x224x224 video).
MAX_INPUT_ELEMENTS = 1 << 24
#: Most dimensions of one row.
MAX_INPUT_RANK = 8


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
        if not isinstance(self.name, str) or not self.name or not self.name.replace("_", "").isalnum():
            raise ContractError(
                f"modality name {self.name!r} must be a non-empty identifier (letters, digits, _)"
            )
        try:
            dims = list(self.shape)
        except TypeError:
            raise ContractError(
                f"modality {self.name!r}: shape {self.shape!r} must be a sequence of ints"
            ) from None
        if not all(isinstance(s, numbers.Integral) and not isinstance(s, bool) for s in dims):
            raise ContractError(f"modality {self.name!r}: shape {self.shape!r} must hold ints only")
        shape = tuple(int(s) for s in dims)
        if not shape or len(shape) > MAX_INPUT_RANK or any(s < 1 for s in shape):
            raise ContractError(
                f"modality {self.name!r}: shape {self.shape} must be 1 to {MAX_INPUT_RANK} positive sizes"
            )
        if math.prod(shape) > MAX_INPUT_ELEMENTS:
            raise ContractError(
                f"modality {self.name!r}: shape {self.shape} has {math.prod(shape)} elements per row, more than "
                f"the {MAX_INPUT_ELEMENTS} EdgeFuse accepts (a forged or mistyped size?)"
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
        if not isinstance(data, dict):
            raise ContractError(f"a modality spec must be an object; got {type(data).__name__}")
        allowed = {"name", "shape", "dtype", "preprocessing", "params"}
        unknown = set(data) - allowed
        if unknown:
            raise ContractError(
                f"modality spec has unknown keys {sorted(unknown)}; allowed: {sorted(allowed)}"
            )
        missing = {"name", "shape"} - set(data)
        if missing:
            raise ContractError(f"modality spec is missing {sorted(missing)}")
        if not isinstance(data["shape"], list | tuple):
            raise ContractError(f"modality spec shape must be a list of ints; got {data['shape']!r:.100}")
        return cls(**{**data, "shape": tuple(data["shape"])})
