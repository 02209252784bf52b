"""Per-row fusion weights of a reliability-gated artifact (torch-free; used by the runtime and the exporter).

A gated artifact's manifest holds ``fusion.row_weights = {"from": "reliability", "floor": f}``: every
encoder graph has a second output, that modality's reliability ``[B, 1]`` in ``[f, 1]`` (its gate applied
to its embedding), and the kernel gets the weights ``(B, M)``::

    w[b, m] = fusion.weights[m] * clip(reliability_m[b], f, 1)    for a row where m is present
    w[b, m] = 0                                                   otherwise (the kernel never reads it)

Clipping restores the gate's own range after quantization or fp16 rounding (an int8 output can round a
reliability of ``f`` to 0, which the kernel would read as "absent"). A reliability that is clearly out of
range (below 0, or above ``1 + RELIABILITY_SLACK``) is a broken graph: :class:`BadOutputError`. A NaN or
Inf one is :class:`NonFiniteOutputError` with ``on_nonfinite="error"``; with ``"allow"`` (the caller let
non-finite inputs through) that row's embedding becomes NaN, so the row's logits are NaN, as an ungated
artifact's would be, instead of the kernel refusing the whole batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from edgefuse.runtime.errors import BadOutputError, NonFiniteOutputError

__all__ = ["RELIABILITY_SLACK", "RowWeights"]

#: How far above 1 a reliability may come out of a quantized or fp16 graph before it counts as broken.
RELIABILITY_SLACK = 1e-3
_MAX_LISTED = 10


def _rows(rows: np.ndarray) -> str:
    listed = ", ".join(str(int(r)) for r in rows[:_MAX_LISTED])
    more = f" and {len(rows) - _MAX_LISTED} more" if len(rows) > _MAX_LISTED else ""
    return f"row{'s' if len(rows) > 1 else ''} {listed}{more}"


@dataclass(frozen=True)
class RowWeights:
    """How one session (or export check) turns its encoders' reliabilities into the kernel's weights.

    Attributes:
        output: The encoder graphs' output holding each row's reliability (``fusion.row_weights.from``).
        floor: The smallest reliability (``fusion.row_weights.floor``).
        weights: The fixed weights ``(M,)`` float32 of the modalities, in the session's column order.
        modalities: Their names (for messages).
    """

    output: str
    floor: float
    weights: np.ndarray
    modalities: tuple[str, ...] = ()

    @classmethod
    def from_manifest(
        cls, fusion: Mapping[str, Any], weights: np.ndarray, modalities: Sequence[str] = ()
    ) -> RowWeights | None:
        """The row weights of a validated manifest's ``fusion`` (``None`` when it is not gated).

        Args:
            fusion: The manifest's ``fusion`` object.
            weights: The fixed weights of the session's modalities (a column subset of ``fusion.weights``).
            modalities: Those modalities' names, in the same order.
        """
        spec = fusion.get("row_weights")
        if spec is None:
            return None
        w = np.ascontiguousarray(weights, dtype=np.float32)
        return cls(str(spec["from"]), float(spec["floor"]), w, tuple(str(m) for m in modalities))

    def _name(self, j: int) -> str:
        return f"encoder {self.modalities[j]!r}" if j < len(self.modalities) else f"encoder {j}"

    def build(
        self,
        reliabilities: Sequence[np.ndarray | None],
        embeddings: list[np.ndarray | None],
        mask: np.ndarray | None,
        batch: int,
        *,
        on_nonfinite: str = "error",
        where: str = "",
    ) -> np.ndarray:
        """The ``(B, M)`` float32 weights for :func:`edgefuse._fusion.fuse`.

        Args:
            reliabilities: Per column, the encoder's reliability output (``None``: not run, absent from
                every row).
            embeddings: The embeddings of the same columns; with ``on_nonfinite="allow"``, a row whose
                reliability is NaN/Inf gets a NaN embedding (a copy; the list is updated).
            mask: Bool presence ``(B, M)``, or ``None`` (every run column present in every row).
            batch: B.
            on_nonfinite: ``"error"`` or ``"allow"`` (see the module docstring).
            where: What to name in messages (the artifact folder and backend).

        Raises:
            BadOutputError: A reliability of the wrong shape, or finite but outside
                ``[0, 1 + RELIABILITY_SLACK]``, in a present row.
            NonFiniteOutputError: A NaN/Inf reliability in a present row, with ``on_nonfinite="error"``.
        """
        out = np.zeros((batch, len(self.weights)), dtype=np.float32)
        for j, rel in enumerate(reliabilities):
            if rel is None:
                continue
            r = np.asarray(rel)
            if r.shape != (batch, 1):
                raise BadOutputError(
                    f"{where}: {self._name(j)} returned {self.output!r} of shape {r.shape}; a reliability is "
                    f"({batch}, 1). Re-export the artifact"
                )
            r = r[:, 0].astype(np.float32, copy=False)
            present = None if mask is None else mask[:, j]
            ok = (r >= 0) & (r <= 1 + RELIABILITY_SLACK)  # False for NaN
            if present is not None:
                ok |= ~present
            if not ok.all():
                r = self._bad_rows(j, r, ok, embeddings, on_nonfinite, where)
            col = np.clip(r, self.floor, 1.0) * self.weights[j]
            out[:, j] = col if present is None else np.where(present, col, 0.0)
        return out

    def _bad_rows(
        self,
        j: int,
        r: np.ndarray,
        ok: np.ndarray,
        embeddings: list[np.ndarray | None],
        on_nonfinite: str,
        where: str,
    ) -> np.ndarray:
        bad = np.flatnonzero(~ok)
        finite = np.isfinite(r[bad])
        if finite.any():
            rows = bad[finite]
            raise BadOutputError(
                f"{where}: {self._name(j)} gave reliabilities {r[rows][:3].tolist()} in present {_rows(rows)}; a "
                f"reliability is in [0, 1]: the graph is broken. Run session.verify() and re-export the artifact"
            )
        if on_nonfinite != "allow":
            raise NonFiniteOutputError(
                f"{where}: {self._name(j)} gave a NaN or Inf reliability in present {_rows(bad)} from finite inputs "
                "(weights that overflow, or a broken graph); refusing to fuse with it. Run session.verify() "
                "and re-export the artifact"
            )
        emb = embeddings[j]
        if emb is not None:  # allow: those rows' logits become NaN, like an ungated artifact's would
            emb = np.array(emb, dtype=np.float32, copy=True)
            emb[bad] = np.nan
            embeddings[j] = emb
        r = r.copy()
        r[bad] = 1.0
        return r
