"""The reference AV-digits model: small Conv2d encoders, embedding size 64, a tiny head."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from edgefuse.specs import ModalitySpec

__all__ = ["reference_architecture"]

#: Conv channels per modality name; any other modality gets the default.
_CHANNELS = {"audio": [16, 32, 64], "image": [16, 32], "imu": [16, 32]}
_DEFAULT_CHANNELS = [16, 32]


def reference_architecture(modalities: Sequence[ModalitySpec], embed_dim: int = 64) -> dict[str, Any]:
    """Return the reference late-fusion architecture for ``modalities`` (JSON, for ``build_model``).

    Every modality with a ``(C, H, W)`` input gets a Conv2d encoder; other shapes get an MLP encoder.
    """
    encoders: dict[str, Any] = {}
    for spec in modalities:
        if len(spec.shape) == 3:
            encoders[spec.name] = {
                "type": "conv2d",
                "channels": list(_CHANNELS.get(spec.name, _DEFAULT_CHANNELS)),
            }
            if spec.preprocessing.startswith("logmel") or spec.preprocessing == "synthetic-logmel":
                encoders[spec.name]["pool"] = "time"  # keep the frequency pattern of a spectrogram
        else:
            encoders[spec.name] = {"type": "mlp", "hidden": [64]}
    return {
        "name": "edgefuse-late-fusion-v1",
        "embed_dim": embed_dim,
        "encoders": encoders,
        "head_hidden": [64],
        "fusion": {"learn_weights": False, "eps": 1e-5},
    }
