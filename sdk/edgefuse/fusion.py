"""Masked fusion: the C++ kernel's public entry points and a NumPy reference with the identical math.

For each row ``b`` of a batch, with ``present[b, m]`` saying whether modality ``m`` is there and
``w[b, m]`` the fusion weights (an ``(M,)`` vector shared by every row, or one ``(B, M)`` weight per row
and modality, e.g. from a per-row reliability gate; the same rules for both shapes)::

    used[b, m] = present[b, m] and w[b, m] > 0          # a weight of 0 acts as absent
    fused[b]   = sum_m w[b, m] * used[b, m] * e_m[b] / sum_m w[b, m] * used[b, m]
    out[b]     = (fused[b] - mean(fused[b])) / sqrt(var(fused[b]) + eps) * gamma + beta

``var`` is the biased variance over D (as ``torch.nn.LayerNorm``). A row with **no** modality used (none
present, or every present one weighted 0) fuses to the zero vector, so its output is ``beta`` (zeros
without ``beta``); the per-row counts returned by :func:`fuse_with_counts` -- the modalities used, i.e.
present **and** weighted > 0 -- are 0 for such a row. The data of an unused (row, modality) is never
read, so NaN or Inf there cannot reach the output. Weights must be finite and 0 or >= float32's smallest
normal (the kernel refuses negative, NaN, Inf and denormal weights, naming ``weights[m]`` or
``weights[b, m]``).

The kernel (:func:`fuse`, :func:`fuse_with_counts`) lives in the compiled module ``edgefuse._fusion``;
:func:`fuse_reference` is the slow, obviously-correct NumPy version used by tests and benchmarks, and
:class:`edgefuse.models.fusion.MaskedFusion` is the PyTorch module with the same math.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edgefuse._fusion import fuse, fuse_with_counts
from edgefuse.errors import FusionInputError

__all__ = ["fuse", "fuse_reference", "fuse_with_counts", "present_mask"]


def present_mask(embeddings: Sequence[np.ndarray | None] | np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """Return the effective bool presence mask ``(B, M)`` for fusion inputs.

    Args:
        embeddings: M arrays ``(B, D)`` (``None`` = absent for the whole batch) or one ``(B, M, D)`` array.
        mask: Optional bool/uint8 ``(B, M)``; ``None`` means every non-``None`` modality is present.

    Returns:
        A bool array ``(B, M)``.

    Raises:
        FusionInputError: When the batch size cannot be inferred or the mask contradicts a ``None`` entry.
    """
    if isinstance(embeddings, np.ndarray):
        b, m = embeddings.shape[:2]
        return np.ones((b, m), bool) if mask is None else np.asarray(mask).astype(bool)
    entries = list(embeddings)
    if mask is not None:
        out = np.asarray(mask).astype(bool)
        for m, e in enumerate(entries):
            if e is None and out[:, m].any():
                raise FusionInputError(f"mask says modality {m} is present but embeddings[{m}] is None")
        return out
    sizes = {e.shape[0] for e in entries if e is not None}
    if not sizes:
        raise FusionInputError("every entry of embeddings is None and no mask was given; pass a mask (B, M)")
    (b,) = sizes
    return np.array([[e is not None] * b for e in entries], bool).T.reshape(b, len(entries))


def fuse_reference(
    embeddings: Sequence[np.ndarray | None] | np.ndarray,
    mask: np.ndarray | None = None,
    weights: np.ndarray | None = None,
    gamma: np.ndarray | None = None,
    beta: np.ndarray | None = None,
    eps: float = 1e-5,
    dim: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """NumPy reference of the fusion kernel (same contract, no validation beyond what the math needs).

    Unused data (absent, or weighted 0) is selected away with ``np.where`` before any arithmetic, so NaN
    there cannot leak.

    Args:
        embeddings: M float32 arrays ``(B, D)`` or ``None``, or one ``(B, M, D)`` array.
        mask: Optional bool/uint8 presence ``(B, M)``.
        weights: Optional non-negative fusion weights, ``(M,)`` for every row or ``(B, M)`` per row; a
            weight of 0 acts as absent.
        gamma: Optional LayerNorm scale ``(D,)``.
        beta: Optional LayerNorm shift ``(D,)``.
        eps: LayerNorm epsilon.
        dim: Feature size, needed only when every entry is ``None``.

    Returns:
        ``(out, counts)``: float32 ``(B, D)`` and int32 ``(B,)`` modalities used per row (present and
        weighted > 0; 0 for a row that fuses to zeros).

    Raises:
        FusionInputError: When ``weights`` is neither ``(M,)`` nor ``(B, M)``, or D cannot be inferred.
    """
    present = present_mask(embeddings, mask)
    b, m_count = present.shape
    if isinstance(embeddings, np.ndarray):
        stacked = embeddings
    else:
        d = next((e.shape[1] for e in embeddings if e is not None), dim)
        if d is None:
            d = len(gamma) if gamma is not None else len(beta) if beta is not None else None
        if d is None:
            raise FusionInputError(
                "cannot infer D: every entry of embeddings is None; pass dim, gamma or beta"
            )
        stacked = np.stack([np.zeros((b, d), np.float32) if e is None else e for e in embeddings], axis=1)
    w = np.ones(m_count, np.float32) if weights is None else np.asarray(weights, np.float32)
    if w.shape not in ((m_count,), (b, m_count)):
        raise FusionInputError(
            f"weights must have shape ({m_count},) or (B, M) = ({b}, {m_count}); got shape {w.shape}"
        )
    w = np.broadcast_to(w, (b, m_count))
    used = present & (w > 0)  # a weight of 0 acts as absent
    wp = np.where(used, w, np.float32(0))  # (B, M)
    denom = wp.sum(axis=1, keepdims=True)
    safe = np.where(denom > 0, denom, np.float32(1))
    data = np.where(used[:, :, None], stacked, np.float32(0))
    fused = (data * (wp / safe)[:, :, None]).sum(axis=1)
    mean = fused.mean(axis=1, keepdims=True)
    var = ((fused - mean) ** 2).mean(axis=1, keepdims=True)
    out = (fused - mean) / np.sqrt(var + np.float32(eps))
    if gamma is not None:
        out = out * gamma
    if beta is not None:
        out = out + beta
    return out.astype(np.float32), used.sum(axis=1).astype(np.int32)
