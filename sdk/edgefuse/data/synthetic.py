"""A clearly labelled synthetic multimodal dataset (NumPy only) for tests, demos and FSDD-less runs.

Every modality carries *partial, noisy* evidence of the label, built so that each modality alone is
informative but clearly worse than all of them together:

* For each modality the classes are grouped into pairs (a different random pairing per modality). A
  sample's signal is ``group_strength * G[group(y)] + class_strength * C[y]``: a strong cue that only tells
  the pair apart, plus a weak cue for the class itself, so one modality confuses the two classes of a
  pair while the other modalities, which pair classes differently, resolve it.
* With probability ``dropout_prob`` a modality of a sample carries no signal at all (a sensor glitch).
* Everything is buried in i.i.d. Gaussian noise (standard deviation ``noise``, scaled up slightly for
  larger inputs so that no modality dominates just because it has more values).

Prototypes are smooth random patterns laid out like the real inputs: audio ``(1, 32, 61)`` (a log-mel
map), image ``(1, 8, 8)``, imu ``(1, 6, 32)`` (6 channels x 32 time steps, for Conv2d). Each modality is
generated from its own random stream, so a modality's arrays are the same whichever other modalities are
requested; labels depend only on the seed and the split sizes.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np

from edgefuse.data.base import MultimodalDataset, Split
from edgefuse.errors import DataError, did_you_mean
from edgefuse.specs import ModalitySpec

__all__ = ["SYNTHETIC_SHAPES", "make_synthetic"]

#: Shape (without batch) of each modality the synthetic dataset can make.
SYNTHETIC_SHAPES: dict[str, tuple[int, ...]] = {
    "audio": (1, 32, 61),
    "image": (1, 8, 8),
    "imu": (1, 6, 32),
}

_SPLITS = ("train", "val", "test")

# The noise of a modality with ``d`` values is ``noise * (d / 64) ** NOISE_EXP``: larger inputs average more
# noise away, and this keeps them from dominating. With the defaults, a per-modality logistic regression
# scores about audio 0.70, image 0.71, imu 0.57, and their late fusion 0.94 (seed 0, test split).
NOISE_EXP = 0.25


def _smooth(x: np.ndarray, axes: Sequence[int], width: int = 3) -> np.ndarray:
    """Moving-average ``x`` along ``axes`` (edge-padded) so prototypes look like smooth sensor patterns."""
    kernel = np.ones(width) / width
    for ax in axes:
        pad = [(0, 0)] * x.ndim
        pad[ax] = (width // 2, width - 1 - width // 2)
        xp = np.pad(x, pad, mode="edge")
        x = np.apply_along_axis(lambda v: np.convolve(v, kernel, mode="valid"), ax, xp)
    return x


def _prototypes(rng: np.random.Generator, count: int, shape: tuple[int, ...]) -> np.ndarray:
    """``count`` smooth random patterns of ``shape``, each with zero mean and unit RMS."""
    p = _smooth(rng.standard_normal((count, *shape)), axes=range(2, 1 + len(shape)))
    p = p - p.mean(axis=tuple(range(1, p.ndim)), keepdims=True)
    return p / np.sqrt((p**2).mean(axis=tuple(range(1, p.ndim)), keepdims=True))


def _modality_rng(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def make_synthetic(
    n_train: int = 600,
    n_val: int = 200,
    n_test: int = 200,
    modalities: Sequence[str] = ("audio", "image", "imu"),
    num_classes: int = 10,
    seed: int = 0,
    noise: float = 2.0,
    *,
    group_strength: float = 1.0,
    class_strength: float = 0.35,
    dropout_prob: float = 0.15,
) -> MultimodalDataset:
    """Make the synthetic dataset (``meta["synthetic"] = True``).

    Args:
        n_train: Train samples.
        n_val: Validation samples.
        n_test: Test samples.
        modalities: Which of ``audio``, ``image``, ``imu`` to include, in this order in the dataset.
        num_classes: Number of classes (>= 2); labels are uniform.
        seed: Seed; the same arguments always give the same arrays.
        noise: Standard deviation of the Gaussian noise on every value of an 8x8 input (signals have unit
            RMS per cue); a modality with ``d`` values gets ``noise * (d / 64) ** 0.25``.
        group_strength: Amplitude of the pair cue (ambiguous between the two classes of a pair).
        class_strength: Amplitude of the weak class-specific cue.
        dropout_prob: Probability that a modality of a sample carries no signal (noise only).

    Returns:
        A :class:`MultimodalDataset` named ``synthetic`` with float32 inputs of the shapes in
        :data:`SYNTHETIC_SHAPES`, int64 labels and splits train/val/test.

    Raises:
        DataError: For an unknown or repeated modality, no modality, fewer than 2 classes, a negative split
            size or a negative noise/strength, or a dropout probability outside [0, 1).
    """
    modalities = tuple(modalities)
    if not modalities:
        raise DataError(f"make_synthetic needs at least one modality; choose from {list(SYNTHETIC_SHAPES)}")
    for m in modalities:
        if m not in SYNTHETIC_SHAPES:
            raise DataError(
                f"unknown synthetic modality {m!r}; allowed: {list(SYNTHETIC_SHAPES)}{did_you_mean(m, SYNTHETIC_SHAPES)}"
            )
    if len(set(modalities)) != len(modalities):
        raise DataError(f"modalities {list(modalities)} name a modality twice; list each once")
    if num_classes < 2:
        raise DataError(f"num_classes={num_classes} must be >= 2")
    sizes = {"train": n_train, "val": n_val, "test": n_test}
    if any(n < 0 for n in sizes.values()):
        raise DataError(f"split sizes {sizes} must be >= 0")
    if min(noise, group_strength, class_strength) < 0:
        raise DataError(
            f"noise={noise}, group_strength={group_strength}, class_strength={class_strength} must be >= 0"
        )
    if not 0 <= dropout_prob < 1:
        raise DataError(f"dropout_prob={dropout_prob} must be in [0, 1)")

    label_rng = np.random.default_rng([seed, 0])
    labels = {s: label_rng.integers(0, num_classes, size=n, dtype=np.int64) for s, n in sizes.items()}

    inputs: dict[str, dict[str, np.ndarray]] = {s: {} for s in _SPLITS}
    noise_scale = {m: float((np.prod(SYNTHETIC_SHAPES[m]) / 64.0) ** NOISE_EXP) for m in SYNTHETIC_SHAPES}
    pairings: dict[str, list[int]] = {}
    for m in modalities:
        rng = _modality_rng(seed, m)
        shape = SYNTHETIC_SHAPES[m]
        order = rng.permutation(num_classes)
        group = np.empty(num_classes, dtype=np.int64)
        group[order] = np.arange(num_classes) // 2  # pairs (one singleton when num_classes is odd)
        pairings[m] = group.tolist()
        group_protos = _prototypes(rng, int(group.max()) + 1, shape)
        class_protos = _prototypes(rng, num_classes, shape)
        for s in _SPLITS:
            y = labels[s]
            signal = group_strength * group_protos[group[y]] + class_strength * class_protos[y]
            present = rng.random(len(y)) >= dropout_prob
            signal *= present.reshape(-1, *([1] * len(shape)))
            x = signal + noise_scale[m] * noise * rng.standard_normal((len(y), *shape))
            inputs[s][m] = x.astype(np.float32)

    specs = tuple(ModalitySpec(m, SYNTHETIC_SHAPES[m], "float32", f"synthetic-{m}") for m in modalities)
    return MultimodalDataset(
        name="synthetic",
        modalities=specs,
        label_names=tuple(str(i) for i in range(num_classes)),
        splits={s: Split(inputs[s], labels[s]) for s in _SPLITS},
        meta={
            "synthetic": True,
            "description": "SYNTHETIC data (not recorded from any sensor): per modality, a pair cue shared "
            "by two classes plus a weak class cue, random dropout, Gaussian noise",
            "seed": seed,
            "counts": sizes,
            "num_classes": num_classes,
            "noise": noise,
            "group_strength": group_strength,
            "class_strength": class_strength,
            "dropout_prob": dropout_prob,
            "pairings": pairings,
        },
    )
