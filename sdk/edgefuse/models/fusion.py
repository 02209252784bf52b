"""``MaskedFusion``: the PyTorch module with exactly the math of the C++ kernel ``edgefuse._fusion.fuse``.

Used by training (gradients flow through it) and by export (the monolithic graph writes the fusion with
``torch.where`` so that NaN in an absent input cannot leak; the split artifact stores the parameters
returned by :meth:`MaskedFusion.fusion_parameters` for the kernel).

A fusion may carry one :class:`ReliabilityGate` per modality (``gate_hidden > 0``): a small MLP on that
modality's own embedding giving a per-row reliability in ``[GATE_FLOOR, 1]`` that multiplies the
modality's fixed weight, so a row whose audio looks degraded can lean on its image. A gate reads only its
own modality's embedding, so an exported artifact computes it inside that modality's encoder graph (a
second output, ``reliability``) and the runtime passes the per-row weights ``(B, M)`` to the kernel.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from edgefuse.errors import FusionInputError

__all__ = ["GATE_FLOOR", "MaskedFusion", "ReliabilityGate"]

#: The smallest reliability a gate outputs: a gated-out modality keeps a weight of ``GATE_FLOOR`` times its
#: fixed weight (a normal float32, which the kernel accepts; exactly 0 would need a hard threshold).
GATE_FLOOR = 1e-3
#: The most hidden units a gate may have (a gate is meant to be small next to its encoder).
MAX_GATE_HIDDEN = 4096


class ReliabilityGate(nn.Module):
    """Per-row reliability of one modality from its embedding: ``[B, D] -> [B, 1]`` in ``[floor, 1]``.

    ``clamp(sigmoid(Linear(ReLU(Linear(e)))), floor, 1)``. The last bias starts at +3 (reliability
    ~0.95 for every row), so an untrained gate fuses almost like the fixed weights.

    Args:
        dim: D, the embedding size.
        hidden: Hidden units (1..4096).
        floor: The smallest output, in (0, 1].
    """

    def __init__(self, dim: int, hidden: int, floor: float = GATE_FLOOR) -> None:
        super().__init__()
        if not 1 <= int(hidden) <= MAX_GATE_HIDDEN:
            raise FusionInputError(
                f"gate hidden = {hidden}; a reliability gate needs 1..{MAX_GATE_HIDDEN} units"
            )
        if not (math.isfinite(floor) and 1.1754943508222875e-38 <= floor <= 1.0):
            raise FusionInputError(f"gate floor = {floor}; it must be a normal float32 in (0, 1]")
        self.net = nn.Sequential(nn.Linear(dim, int(hidden)), nn.ReLU(), nn.Linear(int(hidden), 1))
        with torch.no_grad():
            self.net[2].bias.fill_(3.0)
        self.floor = float(floor)

    def forward(self, embedding: Tensor) -> Tensor:
        """Reliability ``[B, 1]`` of each row's embedding ``[B, D]``."""
        return torch.clamp(torch.sigmoid(self.net(embedding)), min=self.floor, max=1.0)


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
        gate_hidden: 0 (default): one fixed weight per modality. ``> 0``: a :class:`ReliabilityGate`
            with that many hidden units per modality; each row's weight is then ``w_m * gate_m(e_m)``.
    """

    def __init__(
        self,
        num_modalities: int,
        dim: int,
        eps: float = 1e-5,
        weights: Sequence[float] | None = None,
        learn_weights: bool = False,
        affine: bool = True,
        gate_hidden: int = 0,
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
        if isinstance(gate_hidden, bool) or not isinstance(gate_hidden, int) or gate_hidden < 0:
            raise FusionInputError(f"gate_hidden = {gate_hidden!r}; give 0 (no gate) or a number of units")
        self.gate_hidden = int(gate_hidden)
        self.gates = (
            nn.ModuleList([ReliabilityGate(dim, gate_hidden) for _ in range(num_modalities)])
            if gate_hidden
            else None
        )

    @property
    def gated(self) -> bool:
        """Whether each row's weights come from reliability gates (else one fixed weight per modality)."""
        return self.gates is not None

    def reliability(self, m: int, embedding: Tensor) -> Tensor:
        """Reliability ``[B, 1]`` of modality ``m``'s embeddings (all ones without gates)."""
        if self.gates is None:
            return torch.ones(embedding.shape[0], 1, dtype=embedding.dtype, device=embedding.device)
        return self.gates[m](embedding)

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
            data = torch.where(present.unsqueeze(-1), embeddings, torch.zeros_like(embeddings))
            if self.gates is not None:  # the gates read zeros, never an absent row's data
                rel = torch.cat([self.gates[m](data[:, m]) for m in range(self.num_modalities)], dim=1)
                w = w * rel  # (B, M)
            wp = torch.where(present, w, torch.zeros_like(w))  # (B, M)
            denom = wp.sum(dim=1, keepdim=True)
            scale = wp / torch.where(denom > 0, denom, torch.ones_like(denom))
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
                if self.gates is not None:
                    wm = wm * self.gates[m](e)
                term = e * wm
            else:
                p = mask[:, m : m + 1].to(torch.bool)
                kept = torch.where(p, e, torch.zeros_like(e))  # the gate never reads an absent row
                wm = w[m] if self.gates is None else w[m] * self.gates[m](kept)
                wm = torch.where(p, wm, torch.zeros_like(wm))
                term = kept * wm
            denom = denom + wm
            weighted = term if weighted is None else weighted + term
        assert weighted is not None  # ref is not None, so at least one term was added
        return weighted / torch.where(denom > 0, denom, torch.ones_like(denom))

    def fusion_parameters(self) -> dict[str, np.ndarray | float]:
        """Return the parameters the C++ kernel needs, as NumPy arrays.

        Returns:
            ``{"weights": (M,), "gamma": (D,) or None, "beta": (D,) or None, "eps": float}``; pass them
            straight to ``edgefuse._fusion.fuse``. With gates, ``weights`` are the fixed factors: multiply
            column ``m`` by each row's reliability (``reliability(m, e_m)``) to get the ``(B, M)`` weights.
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
