"""The generic multimodal dataset container every stage works with (NumPy only).

Any dataset that fills a :class:`MultimodalDataset` can be trained on, evaluated on the robustness grid
and used for export parity, not only AV-digits.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgefuse.errors import DataError
from edgefuse.specs import ModalitySpec

__all__ = ["MultimodalDataset", "Split"]


@dataclass(frozen=True, repr=False)
class Split:
    """One split: aligned per-modality arrays and integer labels.

    Attributes:
        inputs: Modality name -> array ``(N, *spec.shape)``; row ``i`` of every modality is one sample.
        labels: int64 ``(N,)`` class indices.
    """

    inputs: Mapping[str, np.ndarray]
    labels: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.labels)
        for name, arr in self.inputs.items():
            if len(arr) != n:
                raise DataError(f"split input {name!r} has {len(arr)} rows but there are {n} labels")

    def __len__(self) -> int:
        return len(self.labels)

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k}: {v.dtype}{tuple(v.shape[1:])}" for k, v in self.inputs.items())
        return f"Split({len(self)} rows; {shapes})"

    def subset(self, index: np.ndarray) -> Split:
        """Return the rows ``index`` of every modality and the labels."""
        return Split({k: v[index] for k, v in self.inputs.items()}, self.labels[index])


@dataclass(frozen=True, repr=False)
class MultimodalDataset:
    """A multimodal classification dataset with named splits.

    Attributes:
        name: Dataset name (``av-digits``...).
        modalities: Specs in the model's modality order.
        label_names: Class names; labels index into it.
        splits: Split name (``train``, ``val``, ``test``) -> :class:`Split`.
        meta: JSON-serialisable description (sources, parameters, speakers, cache key...).
    """

    name: str
    modalities: tuple[ModalitySpec, ...]
    label_names: tuple[str, ...]
    splits: Mapping[str, Split]
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        names = [m.name for m in self.modalities]
        for split_name, split in self.splits.items():
            if set(split.inputs) != set(names):
                raise DataError(
                    f"split {split_name!r} has modalities {sorted(split.inputs)}; the dataset declares {names}"
                )
            for spec in self.modalities:
                arr = split.inputs[spec.name]
                if tuple(arr.shape[1:]) != spec.shape or str(arr.dtype) != spec.dtype:
                    raise DataError(
                        f"split {split_name!r} modality {spec.name!r} is {arr.dtype}{tuple(arr.shape[1:])}; "
                        f"the spec says {spec.dtype}{spec.shape}"
                    )
            if len(split) and (split.labels.min() < 0 or split.labels.max() >= len(self.label_names)):
                raise DataError(f"split {split_name!r} has labels outside 0..{len(self.label_names) - 1}")

    def __repr__(self) -> str:
        """One line per part (never the arrays or per-row lists): name, modalities, classes, splits."""
        mods = ", ".join(f"{m.name} {m.dtype}{m.shape}" for m in self.modalities)
        labels = list(self.label_names)
        shown = ", ".join(labels[:10]) + (f", ... ({len(labels)} in all)" if len(labels) > 10 else "")
        splits = ", ".join(f"{k} {len(v)}" for k, v in self.splits.items())
        return (
            f"MultimodalDataset({self.name!r}\n  modalities: {mods}\n  classes ({len(labels)}): {shown}\n"
            f"  splits (rows): {splits}\n  meta keys: {', '.join(self.meta) or '-'})"
        )

    @property
    def modality_names(self) -> tuple[str, ...]:
        """Modality names in order."""
        return tuple(m.name for m in self.modalities)

    def summary(self, max_items: int = 50) -> dict[str, Any]:
        """A compact, JSON-serialisable description: ``meta`` without long per-sample lists.

        Used where the description is embedded (checkpoints, reports); the full ``meta`` stays here.
        """
        out: dict[str, Any] = {"name": self.name, "label_names": list(self.label_names)}
        for key, value in self.meta.items():
            if isinstance(value, (list, tuple, dict)) and len(value) > max_items:
                out[key] = f"<{len(value)} entries>"
            else:
                out[key] = value
        out["counts"] = {k: len(v) for k, v in self.splits.items()}
        return out

    def split(self, name: str) -> Split:
        """Return a split by name, or raise :class:`DataError` listing the available ones."""
        try:
            return self.splits[name]
        except KeyError:
            raise DataError(
                f"dataset {self.name!r} has no split {name!r}; available: {sorted(self.splits)}"
            ) from None
