"""Datasets by name, for the CLI and the demo: ``av-digits`` (real) and ``synthetic``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from edgefuse.data.base import MultimodalDataset
from edgefuse.errors import DataError, did_you_mean

__all__ = ["DATASETS", "load_dataset"]

DATASETS = ("av-digits", "av-digits-synthetic-audio", "synthetic")


def load_dataset(
    name: str,
    *,
    fsdd: str | Path | None = None,
    degrade_image: int | None = None,
    seed: int = 0,
    modalities: Sequence[str] | None = None,
    cache_dir: str | Path | None = None,
    skip_bad: bool = False,
) -> MultimodalDataset:
    """Load a dataset by name.

    Args:
        name: ``av-digits`` (FSDD audio + scikit-learn digits), ``av-digits-synthetic-audio`` (the digit
            images with a clearly labelled synthetic audio modality, for machines without FSDD) or
            ``synthetic`` (clearly labelled
            synthetic data with ``modalities``, default audio, image and imu).
        fsdd: FSDD folder for ``av-digits`` (default ``$EDGEFUSE_FSDD``).
        degrade_image: Keep this many PCA components of each image (``av-digits``).
        seed: Pairing/splitting (or generation) seed.
        modalities: Modalities of the synthetic dataset.
        cache_dir: Feature cache folder (``av-digits``).
        skip_bad: Skip unusable recordings with a warning instead of failing (``av-digits``).

    Raises:
        DataError: For an unknown name (with the closest match) or a dataset that cannot be loaded.
    """
    if name == "av-digits":
        from edgefuse.data.avdigits import load_av_digits

        return load_av_digits(
            fsdd, degrade_image=degrade_image, seed=seed, cache_dir=cache_dir, skip_bad=skip_bad
        )
    if name == "av-digits-synthetic-audio":
        from edgefuse.data.avdigits import load_av_digits_synthetic_audio

        return load_av_digits_synthetic_audio(degrade_image=degrade_image, seed=seed)
    if name == "synthetic":
        from edgefuse.data.synthetic import make_synthetic

        kwargs = {"modalities": tuple(modalities)} if modalities else {}
        return make_synthetic(seed=seed, **kwargs)
    raise DataError(f"unknown dataset {name!r}; available: {list(DATASETS)}{did_you_mean(name, DATASETS)}")
