"""A user's own multimodal model, written without any EdgeFuse building block but the contract class.

* image ``[3, 32, 32]``: MobileNetV2-style (Conv+BatchNorm+ReLU6/Hardswish, depthwise convs, inverted
  residuals with skips, global pooling);
* audio ``[20, 40]`` (frames x features): a linear stem, ``nn.TransformerEncoderLayer`` (batch_first, 2
  heads) and mean pooling over time;
* IMU ``[6, 128]`` (6 axes x 128 steps): Conv1d+BatchNorm1d+ReLU and ``AdaptiveAvgPool1d(1)``;
* head: Linear+ReLU+Dropout+Linear; fusion weights are learned.

:func:`build` is a model factory (``examples.byom_modules:build`` or ``byom_modules:build``): it takes
the modality specs and label names, so EdgeFuse's training and robustness grid can build the same
architecture for any subset of the modalities.
"""

from __future__ import annotations

from collections.abc import Sequence

from edgefuse import MaskedFusion, ModalitySpec, MultimodalModel
from torch import Tensor, nn

MODALITIES = (
    ModalitySpec("image", (3, 32, 32)),
    ModalitySpec("audio", (20, 40)),
    ModalitySpec("imu", (6, 128)),
)
LABELS = ("walk", "run", "sit", "stand", "cycle")


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand, 3x3 depthwise, 1x1 project; a skip when the shape is kept."""

    def __init__(self, channels: int, expand: int = 2, stride: int = 1) -> None:
        super().__init__()
        hidden = channels * expand
        self.skip = stride == 1
        self.block = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU6(),
            nn.Conv2d(hidden, hidden, 3, stride=stride, padding=1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.Hardswish(),
            nn.Conv2d(hidden, channels, 1, bias=False),
            nn.BatchNorm2d(channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        """``[B, C, H, W] -> [B, C, H', W']``."""
        y = self.block(x)
        return x + y if self.skip else y


class ImageEncoder(nn.Module):
    """``[B, 3, H, W] -> [B, D]``."""

    def __init__(self, dim: int, width: int = 16) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, width, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU6()
        )
        self.blocks = nn.Sequential(
            InvertedResidual(width), InvertedResidual(width, stride=2), InvertedResidual(width)
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.proj = nn.Linear(width, dim)

    def forward(self, x: Tensor) -> Tensor:
        """Encode an image batch."""
        return self.proj(self.pool(self.blocks(self.stem(x))).flatten(1))


class AudioEncoder(nn.Module):
    """``[B, T, F] -> [B, D]``: a transformer layer over time, then the mean over time."""

    def __init__(self, dim: int, features: int, width: int = 32) -> None:
        super().__init__()
        self.stem = nn.Linear(features, width)
        self.layer = nn.TransformerEncoderLayer(width, nhead=2, dim_feedforward=2 * width, batch_first=True)
        self.proj = nn.Linear(width, dim)

    def forward(self, x: Tensor) -> Tensor:
        """Encode a batch of feature frames."""
        return self.proj(self.layer(self.stem(x)).mean(dim=1))


class ImuEncoder(nn.Module):
    """``[B, 6, T] -> [B, D]``."""

    def __init__(self, dim: int, axes: int = 6) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv1d(axes, 32, 5, padding=2),
            nn.BatchNorm1d(32),
            nn.ReLU(),
            nn.Conv1d(32, 64, 5, stride=2, padding=2),
            nn.BatchNorm1d(64),
            nn.ReLU(),
            nn.AdaptiveAvgPool1d(1),
        )
        self.proj = nn.Linear(64, dim)

    def forward(self, x: Tensor) -> Tensor:
        """Encode a batch of IMU windows."""
        return self.proj(self.net(x).flatten(1))


def _encoder(spec: ModalitySpec, dim: int) -> nn.Module:
    if spec.name == "image":
        return ImageEncoder(dim, width=16)
    if spec.name == "audio":
        return AudioEncoder(dim, features=spec.shape[-1])
    if spec.name == "imu":
        return ImuEncoder(dim, axes=spec.shape[0])
    raise ValueError(f"no encoder for modality {spec.name!r}")


def build(
    modalities: Sequence[ModalitySpec] = MODALITIES,
    label_names: Sequence[str] = LABELS,
    embed_dim: int = 32,
    dropout: float = 0.1,
) -> MultimodalModel:
    """The model factory: a fresh model over ``modalities`` (any non-empty subset) and ``label_names``."""
    encoders = {spec.name: _encoder(spec, embed_dim) for spec in modalities}
    head = nn.Sequential(
        nn.Linear(embed_dim, 64), nn.ReLU(), nn.Dropout(dropout), nn.Linear(64, len(label_names))
    )
    fusion = MaskedFusion(len(modalities), embed_dim, learn_weights=True)
    return MultimodalModel(encoders, fusion, head, modalities, label_names)
