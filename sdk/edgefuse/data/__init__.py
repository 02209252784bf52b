"""Datasets for the robustness framework: a generic multimodal container, AV-digits, synthetic data."""

from edgefuse.data.base import MultimodalDataset, Split

__all__ = ["MultimodalDataset", "Split"]
