"""The graphs an artifact is made of, as small torch modules with named inputs and outputs.

* Split layout (default): one :class:`EncoderGraph` per exported modality (``[B, *shape] -> [B, D]``,
  output ``embedding``) and one :class:`HeadGraph` (``fused [B, D] -> logits [B, C]``). The fusion
  between them runs in the C++ kernel on the device, with the parameters stored in the manifest. A
  model whose fusion has reliability gates (:class:`~edgefuse.models.fusion.ReliabilityGate`) gives each
  encoder graph a second output, ``reliability [B, 1]`` (its modality's gate applied to the embedding),
  so every backend computes the per-row weights the same way; ungated graphs are unchanged.
* Monolithic layout: one :class:`MonolithicGraph` taking every exported modality plus a bool
  ``presence`` mask ``[B, M]``; fusion is written with ``torch.where`` so NaN in an absent input cannot
  leak into the result. Every encoder runs on every row (a static graph cannot skip work). With gates,
  the graph's fusion applies them too (:func:`restricted_fusion` keeps the exported columns' gates).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from edgefuse.models.contract import MultimodalModel
from edgefuse.models.fusion import MaskedFusion
from torch import Tensor, nn

__all__ = [
    "COST_COUNTER",
    "RELIABILITY",
    "EncoderGraph",
    "GraphSpec",
    "HeadGraph",
    "IOSpec",
    "MonolithicGraph",
    "build_graphs",
    "graph_cost",
]

_log = logging.getLogger(__name__)

#: The name of a gated encoder graph's second output (the manifest's ``fusion.row_weights.from``).
RELIABILITY = "reliability"


@dataclass(frozen=True)
class IOSpec:
    """A graph input or output: name, shape without batch, dtype name."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"

    def to_dict(self) -> dict:
        """JSON form (the batch dimension is written as -1)."""
        return {"name": self.name, "shape": [-1, *self.shape], "dtype": self.dtype}


@dataclass
class GraphSpec:
    """One graph to convert: a torch module, its positional inputs and its outputs."""

    name: str
    role: str
    module: nn.Module
    inputs: tuple[IOSpec, ...]
    outputs: tuple[IOSpec, ...]

    def example(self, batch: int, seed: int = 0) -> tuple[Tensor, ...]:
        """Example inputs for tracing/conversion (random floats; presence masks all True)."""
        g = torch.Generator().manual_seed(seed)
        out = []
        for spec in self.inputs:
            if spec.dtype == "bool":
                out.append(torch.ones(batch, *spec.shape, dtype=torch.bool))
            else:
                out.append(torch.randn(batch, *spec.shape, generator=g))
        return tuple(out)


class EncoderGraph(nn.Module):
    """One modality's encoder: ``x [B, *shape] -> embedding [B, D]``.

    With ``gate`` (that modality's :class:`~edgefuse.models.fusion.ReliabilityGate`), ``forward``
    returns ``(embedding [B, D], reliability [B, 1])``, the reliability in ``[gate.floor, 1]``.
    """

    def __init__(self, encoder: nn.Module, gate: nn.Module | None = None) -> None:
        super().__init__()
        self.encoder = encoder
        self.gate = gate

    def forward(self, x: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        """Encode (and rate the embedding's reliability when gated)."""
        embedding = self.encoder(x)
        if self.gate is None:
            return embedding
        return embedding, self.gate(embedding)


class HeadGraph(nn.Module):
    """The classification head: ``fused [B, D] -> logits [B, C]``."""

    def __init__(self, head: nn.Module) -> None:
        super().__init__()
        self.head = head

    def forward(self, fused: Tensor) -> Tensor:
        """Classify."""
        return self.head(fused)


class MonolithicGraph(nn.Module):
    """Every exported encoder, the masked fusion (with ``where``) and the head in one graph.

    Args:
        model: The contract model.
        modalities: The exported modalities (a subset of the model's, in model order).
    """

    def __init__(self, model: MultimodalModel, modalities: Sequence[str]) -> None:
        super().__init__()
        self.names = list(modalities)
        self.encoders = nn.ModuleList([model.encoders[n] for n in self.names])
        self.fusion = restricted_fusion(model.fusion, [model.modality_names.index(n) for n in self.names])
        self.head = model.head

    def forward(self, *args: Tensor) -> Tensor:
        """``forward(x_1, ..., x_M, presence)`` -> logits."""
        *xs, presence = args
        emb = torch.stack([enc(x) for enc, x in zip(self.encoders, xs, strict=True)], dim=1)
        return self.head(self.fusion(emb, presence))


def restricted_fusion(fusion: MaskedFusion, columns: Sequence[int]) -> MaskedFusion:
    """A :class:`MaskedFusion` over a subset of the modalities, with identical math on that subset.

    Renormalising over the present modalities makes this exact: absent columns never contribute. The
    reliability gates of the selected columns are copied (a gate reads only its own modality's
    embedding, so the per-row weights of the kept columns are unchanged).
    """
    sub = MaskedFusion(len(columns), fusion.dim, eps=fusion.eps, affine=fusion.norm.weight is not None)
    if fusion.gates is not None:
        sub.gates = nn.ModuleList([copy.deepcopy(fusion.gates[c]) for c in columns])
        sub.gate_hidden = fusion.gate_hidden
    with torch.no_grad():
        sub.log_weights.copy_(fusion.log_weights.detach()[list(columns)])
        if fusion.norm.weight is not None:
            sub.norm.weight.copy_(fusion.norm.weight)
            sub.norm.bias.copy_(fusion.norm.bias)
    return sub.eval()


def build_graphs(model: MultimodalModel, modalities: Sequence[str], monolithic: bool) -> list[GraphSpec]:
    """The graphs of an artifact for ``modalities`` (the ones the profile's sensors provide)."""
    specs = {m.name: m for m in model.modalities}
    d = model.embed_dim
    c = len(model.label_names)
    if monolithic:
        inputs = tuple(IOSpec(n, specs[n].shape, specs[n].dtype) for n in modalities)
        inputs += (IOSpec("presence", (len(modalities),), "bool"),)
        module = MonolithicGraph(model, modalities).eval()
        return [GraphSpec("model", "monolithic", module, inputs, (IOSpec("logits", (c,)),))]
    gates = model.fusion.gates
    outputs = (IOSpec("embedding", (d,)),) + ((IOSpec(RELIABILITY, (1,)),) if gates is not None else ())
    graphs = [
        GraphSpec(
            f"encoder_{n}",
            f"encoder:{n}",
            EncoderGraph(
                model.encoders[n], None if gates is None else gates[model.modality_names.index(n)]
            ).eval(),
            (IOSpec(n, specs[n].shape, specs[n].dtype),),
            outputs,
        )
        for n in modalities
    ]
    graphs.append(
        GraphSpec(
            "head", "head", HeadGraph(model.head).eval(), (IOSpec("fused", (d,)),), (IOSpec("logits", (c,)),)
        )
    )
    return graphs


#: How the operation counts in a manifest were made (an export with other counts is not reused).
COST_COUNTER = "torch operations at export, batch 1, fp32; element-wise ops and BatchNorm fused (v2)"


def graph_cost(graph: GraphSpec) -> dict[str, Any] | None:
    """FLOPs and bytes per operation of ``graph`` at batch 1 in fp32, for roofline estimates on a device.

    Counted on the torch module (:func:`edgefuse.roofline.count_torch`), so every format's manifest has
    them and a device without torch or onnx can estimate; ``None`` (logged) if counting fails.
    """
    from edgefuse.roofline import count_torch

    try:
        cost = count_torch(graph.module, graph.example(1))
    except Exception as exc:  # counting is best effort: it never fails an export
        _log.warning("could not count the operations of graph %s (%s); no estimate from it", graph.name, exc)
        return None
    return {**cost.to_dict(), "counted_from": COST_COUNTER}
