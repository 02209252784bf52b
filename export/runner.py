"""Running a converted artifact here exactly as the runtime will, for parity and int8 validation.

:class:`ArtifactRunner` runs the encoders of the present modalities, fuses their embeddings with the C++
kernel and runs the head (or feeds the monolithic graph its presence mask). For a reliability-gated
model each encoder graph also outputs ``reliability``, and the kernel gets the per-row weights built by
the runtime's own :class:`~edgefuse.runtime.gating.RowWeights`, so parity covers the gate and the
runtime's use of it. :func:`fusion_params` gives the kernel parameters and, with gates, the manifest's
``row_weights``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from edgefuse.export.errors import ExportError
from edgefuse.export.formats.base import Runner
from edgefuse.export.graphs import RELIABILITY

__all__ = ["ArtifactRunner", "fusion_params"]


def fusion_params(model: Any, modalities: list[str]) -> dict[str, Any]:
    """The kernel's fusion parameters for the exported ``modalities`` (in model order).

    Returns:
        ``weights`` ``(M,)`` float32, ``gamma``, ``beta``, ``eps``, ``shapes`` (modality -> shape) and
        ``row_weights``: ``None`` without gates, else ``{"from": "reliability", "floor": f}`` as the
        manifest records it (``f`` the smallest gate floor, which clips nothing any gate outputs).

    Raises:
        ExportError: A gated fusion whose fixed weight times the floor is not a normal float32.
    """
    params = model.fusion.fusion_parameters()
    idx = [model.modality_names.index(m) for m in modalities]
    row_weights = None
    if model.fusion.gated:
        floor = min(float(gate.floor) for gate in model.fusion.gates)
        row_weights = {"from": RELIABILITY, "floor": floor}
        low = float(np.min(params["weights"][idx])) * floor
        if not low >= np.finfo(np.float32).tiny:
            raise ExportError(
                f"the smallest fusion weight times the gate floor {floor:g} is {low:.3g}, below float32's smallest "
                "normal: the kernel cannot use such a weight. Rescale the fusion weights"
            )
    return {
        "weights": np.ascontiguousarray(params["weights"][idx], np.float32),
        "gamma": params.get("gamma"),
        "beta": params.get("beta"),
        "eps": float(params["eps"]),
        "shapes": {m.name: m.shape for m in model.modalities},
        "row_weights": row_weights,
    }


class ArtifactRunner:
    """Runs a converted artifact the way the runtime will: encoders of present modalities -> kernel -> head.

    Args:
        runners: Graph name -> runner of the converted file.
        modalities: The exported modalities, in model order.
        fusion: :func:`fusion_params` of them.
        monolithic: One graph with a presence input instead of encoders + head.

    Calling it with ``{modality: array}`` (the present modalities, every row present) returns
    ``logits`` and, for the split layout, each present modality's ``embedding:<m>`` (and, gated,
    ``reliability:<m>``).
    """

    def __init__(
        self, runners: dict[str, Runner], modalities: list[str], fusion: dict[str, Any], monolithic: bool
    ) -> None:
        from edgefuse.runtime.gating import RowWeights

        self.runners, self.modalities, self.fusion, self.monolithic = runners, modalities, fusion, monolithic
        self.gate = None if monolithic else RowWeights.from_manifest(fusion, fusion["weights"], modalities)

    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batch (see the class docstring)."""
        from edgefuse import _fusion

        batch = len(next(iter(inputs.values())))
        if self.monolithic:
            feed = {
                m: inputs.get(m, np.full((batch, *self.fusion["shapes"][m]), np.nan, np.float32))
                for m in self.modalities
            }
            feed["presence"] = np.array([[m in inputs for m in self.modalities]] * batch, dtype=bool)
            return {"logits": self.runners["model"](feed)["logits"]}
        out: dict[str, np.ndarray] = {}
        embeddings: list[np.ndarray | None] = []
        reliabilities: list[np.ndarray | None] = []
        for m in self.modalities:
            if m not in inputs:
                embeddings.append(None)
                reliabilities.append(None)
                continue
            result = self.runners[f"encoder_{m}"]({m: inputs[m]})
            out[f"embedding:{m}"] = np.ascontiguousarray(result["embedding"], dtype=np.float32)
            embeddings.append(out[f"embedding:{m}"])
            if self.gate is not None:
                out[f"reliability:{m}"] = np.asarray(result[self.gate.output], dtype=np.float32)
            reliabilities.append(out.get(f"reliability:{m}"))
        f = self.fusion
        weights = f["weights"]
        if self.gate is not None:  # the runtime's own rule: fixed weight x reliability, per row
            weights = self.gate.build(reliabilities, embeddings, None, batch, where="export check")
        fused = _fusion.fuse(embeddings, None, weights, f["gamma"], f["beta"], f["eps"])
        out["logits"] = self.runners["head"]({"fused": fused})["logits"]
        return out
