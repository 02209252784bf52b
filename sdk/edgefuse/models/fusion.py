"""``MaskedFusion``: the PyTorch module with exactly the math of the C++ kernel ``edgefuse._fusion.fuse``.

Used by training (gradients flow through it) and by export (the monolithic graph writes the fusion with
``torch.where`` so that NaN in an absent input cannot leak; the split artifact stores the parameters
returned by :meth:`MaskedFusion.fusion_parameters` for the kernel).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from edgefuse.errors import FusionInputError

__all__ = ["MaskedFusion"]


class MaskedFusion(nn.Module):
    """Masked weighted mean of per-modality embeddings followed by LayerNorm.

    Per row ``b``: ``fused = sum_m w_m p_bm e_m[b] / sum_m w_m p_bm`` with ``p`` the presence mask and
    ``w = exp(log_weights)`` (always positive), then ``LayerNorm(fused)``. A row with no modality present
    fuses to zeros, so its output is the LayerNorm bias. Absent data is removed with ``torch.where``
    (never multiplied), so NaN/Inf there cannot reach the output or the gradients.

    Args:
        num_modalities: M, the number of modalities (the order is the model's modality order).
        dim: D, the embedding size.
        eps: LayerNorm epsilon (> 0).
        weights: Optional initial positive fusion weights (M,); default all ones.
        learn_weights: Whether the fusion weights are trained (as log-weights).
        affine: Whether LayerNorm has a learned scale and shift.
    """

    def __init__(
        self,
        num_modalities: int,
        dim: int,
        eps: float = 1e-5,
        weights: Sequence[float] | None = None,
        learn_weights: bool = False,
        affine: bool = True,
    ) -> None:
        super().__init__()
        if num_modalities < 1:
            raise FusionInputError(f"num_modalities = {num_modalities}; a fusion needs at least 1 modality")
        if dim < 1:
            raise FusionInputError(f"dim = {dim}; the embedding size must be >= 1")
        if not (math.isfinite(eps) and 1.1754943508222875e-38 <= eps <= 1.0):
            raise FusionInputError(
                f"eps = {eps}; eps must be in [1.18e-38, 1] (a normal float32 > 0: smaller values become 0 "
                "or denormal in float32, which the kernel uses)"
            )
        # validated on the CPU whatever the default device (a meta-device build checks sizes for free)
        w = (
            torch.ones(num_modalities, device="cpu")
            if weights is None
            else torch.as_tensor(weights, dtype=torch.float32, device="cpu")
        )
        if w.shape != (num_modalities,) or not bool(torch.all(torch.isfinite(w) & (w > 0))):
            raise FusionInputError(
                f"weights = {w.tolist()}; expected {num_modalities} finite positive fusion weights"
            )
        log_w = torch.log(w)
        if learn_weights:
            self.log_weights = nn.Parameter(log_w)
        else:
            self.register_buffer("log_weights", log_w)
        self.num_modalities = num_modalities
        self.dim = dim
        self.norm = nn.LayerNorm(dim, eps=eps, elementwise_affine=affine)

    @property
    def eps(self) -> float:
        """LayerNorm epsilon."""
        return float(self.norm.eps)

    def forward(self, embeddings: Sequence[Tensor | None] | Tensor, mask: Tensor | None = None) -> Tensor:
        """Fuse embeddings.

        Args:
            embeddings: M tensors ``(B, D)`` (``None`` = absent for the whole batch; its encoder was not
                run), or one tensor ``(B, M, D)``.
            mask: Optional bool presence ``(B, M)``; ``None`` = every non-``None`` modality present.

        Returns:
            The fused embeddings ``(B, D)``.
        """
        w = torch.exp(self.log_weights)
        if isinstance(embeddings, Tensor):
            if embeddings.dim() != 3 or embeddings.shape[1:] != (self.num_modalities, self.dim):
                raise FusionInputError(
                    f"embeddings has shape {tuple(embeddings.shape)}; expected (B, {self.num_modalities}, "
                    f"{self.dim})"
                )
            present = (
                torch.ones(embeddings.shape[:2], dtype=torch.bool, device=embeddings.device)
                if mask is None
                else mask.to(torch.bool)
            )
            wp = torch.where(present, w, torch.zeros_like(w))  # (B, M)
            denom = wp.sum(dim=1, keepdim=True)
            scale = wp / torch.where(denom > 0, denom, torch.ones_like(denom))
            data = torch.where(present.unsqueeze(-1), embeddings, torch.zeros_like(embeddings))
            fused = (data * scale.unsqueeze(-1)).sum(dim=1)
            return self.norm(fused)
        return self.norm(self._fuse_list(list(embeddings), mask, w))

    def _fuse_list(self, entries: list[Tensor | None], mask: Tensor | None, w: Tensor) -> Tensor:
        if len(entries) != self.num_modalities:
            raise FusionInputError(
                f"got {len(entries)} embeddings; this fusion has {self.num_modalities} modalities"
            )
        ref = next((e for e in entries if e is not None), None)
        if ref is None:
            if mask is None:
                raise FusionInputError("every embedding is None and no mask was given; pass a mask (B, M)")
            if bool(mask.to(torch.bool).any()):
                raise FusionInputError("the mask says a modality is present but every embedding is None")
            return torch.zeros(mask.shape[0], self.dim, dtype=w.dtype, device=mask.device)
        batch = ref.shape[0]
        if mask is not None and tuple(mask.shape) != (batch, self.num_modalities):
            raise FusionInputError(
                f"mask has shape {tuple(mask.shape)}; expected (B, M) = ({batch}, {self.num_modalities})"
            )
        weighted: Tensor | None = None
        denom = torch.zeros(batch, 1, dtype=ref.dtype, device=ref.device)
        for m, e in enumerate(entries):
            if e is None:
                if mask is not None and bool(mask[:, m].to(torch.bool).any()):
                    raise FusionInputError(f"mask says modality {m} is present but embeddings[{m}] is None")
                continue
            if tuple(e.shape) != (batch, self.dim):
                raise FusionInputError(
                    f"embeddings[{m}] has shape {tuple(e.shape)}; expected (B, D) = ({batch}, {self.dim})"
                )
            if mask is None:
                wm = w[m].expand(batch, 1)
                term = e * wm
            else:
                p = mask[:, m : m + 1].to(torch.bool)
                wm = torch.where(p, w[m], torch.zeros_like(w[m]))
                term = torch.where(p, e, torch.zeros_like(e)) * wm
            denom = denom + wm
            weighted = term if weighted is None else weighted + term
        assert weighted is not None  # ref is not None, so at least one term was added
        return weighted / torch.where(denom > 0, denom, torch.ones_like(denom))

    def fusion_parameters(self) -> dict[str, np.ndarray | float]:
        """Return the parameters the C++ kernel needs, as NumPy arrays.

        Returns:
            ``{"weights": (M,), "gamma": (D,) or None, "beta": (D,) or None, "eps": float}``; pass them
            straight to ``edgefuse._fusion.fuse``.
        """
        with torch.no_grad():
            out: dict[str, np.ndarray | float] = {
                "weights": torch.exp(self.log_weights).detach().cpu().numpy().astype(np.float32),
                "eps": self.eps,
            }
            if self.norm.weight is not None:
                out["gamma"] = self.norm.weight.detach().cpu().numpy().astype(np.float32)
                out["beta"] = self.norm.bias.detach().cpu().numpy().astype(np.float32)
        return out
