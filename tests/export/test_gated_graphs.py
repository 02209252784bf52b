"""The graphs of a reliability-gated model (no conversion): two-output encoders, gated monolithic fusion."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgefuse.export.errors import ExportError  # noqa: E402
from edgefuse.export.graphs import MonolithicGraph, build_graphs, graph_cost, restricted_fusion  # noqa: E402
from edgefuse.export.runner import fusion_params  # noqa: E402
from edgefuse.models.contract import add_gates, build_model  # noqa: E402
from edgefuse.models.reference import reference_architecture  # noqa: E402
from edgefuse.specs import ModalitySpec  # noqa: E402

THREE_SPECS = (
    ModalitySpec("audio", (1, 8, 12)),
    ModalitySpec("image", (1, 8, 8)),
    ModalitySpec("imu", (1, 6, 32)),
)


def _model(gated: bool) -> Any:
    torch.manual_seed(0)
    model = build_model(reference_architecture(THREE_SPECS, 16), THREE_SPECS, ["a", "b", "c"])
    if gated:
        add_gates(model, 8)
        with torch.no_grad():
            for gate in model.fusion.gates:
                gate.net[2].bias.zero_()
                gate.net[2].weight.normal_(0.0, 3.0)
    return model.eval()


def _x(batch: int = 5) -> dict[str, Any]:
    g = torch.Generator().manual_seed(1)
    return {s.name: torch.randn(batch, *s.shape, generator=g) for s in THREE_SPECS}


def test_gated_encoder_graphs_output_embedding_and_reliability() -> None:
    model = _model(gated=True)
    x = _x()
    graphs = build_graphs(model, ["audio", "imu"], monolithic=False)
    assert [g.name for g in graphs] == ["encoder_audio", "encoder_imu", "head"]
    for g, m in zip(graphs[:2], ["audio", "imu"], strict=True):
        assert [(o.name, o.shape) for o in g.outputs] == [("embedding", (16,)), ("reliability", (1,))]
        with torch.no_grad():
            emb, rel = g.module(x[m])
            e = model.encoders[m](x[m])
            want = model.fusion.reliability(model.modality_names.index(m), e)  # the model's own column
        torch.testing.assert_close(emb, e)
        torch.testing.assert_close(rel, want)
        assert rel.shape == (5, 1)
        assert (graph_cost(g) or {}).get("counted_from")  # counted like any graph
    assert [o.name for o in graphs[2].outputs] == ["logits"]


def test_ungated_graphs_are_unchanged() -> None:
    model = _model(gated=False)
    graphs = build_graphs(model, ["audio", "image"], monolithic=False)
    for g in graphs[:2]:
        assert [o.name for o in g.outputs] == ["embedding"]
        assert isinstance(g.module(_x()[g.inputs[0].name]), torch.Tensor)
        assert all(k.startswith("encoder.") for k in g.module.state_dict())  # same weights, same names
    assert fusion_params(model, ["audio", "image"])["row_weights"] is None


@pytest.mark.parametrize("modalities", [["audio", "image", "imu"], ["image", "imu"], ["audio"]])
def test_the_monolithic_graph_applies_the_gates_of_its_columns(modalities: list[str]) -> None:
    model = _model(gated=True)
    x = _x()
    graph = MonolithicGraph(model, modalities).eval()
    assert graph.fusion.gated
    assert len(graph.fusion.gates) == len(modalities)
    presence = torch.tensor([[True] * len(modalities), *([[i % 2 == 0 for i in range(len(modalities))]] * 4)])
    if not presence[1:].any(dim=1).all():
        presence[1:, 0] = True
    with torch.no_grad():
        got = graph(*[x[m] for m in modalities], presence)
        full = torch.zeros(5, 3, dtype=torch.bool)
        for j, m in enumerate(modalities):
            full[:, model.modality_names.index(m)] = presence[:, j]
        want = model(x, full)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_restricted_fusion_copies_the_selected_gates() -> None:
    fusion = _model(gated=True).fusion
    sub = restricted_fusion(fusion, [2, 0])
    assert sub.gate_hidden == fusion.gate_hidden
    for got, col in zip(sub.gates, [2, 0], strict=True):
        for a, b in zip(got.state_dict().values(), fusion.gates[col].state_dict().values(), strict=True):
            assert torch.equal(a, b)
        assert got is not fusion.gates[col]  # a copy: the exported graph cannot change the model


def test_fusion_params_record_the_row_weights() -> None:
    model = _model(gated=True)
    params = fusion_params(model, ["image", "imu"])
    assert params["row_weights"] == {"from": "reliability", "floor": pytest.approx(1e-3)}
    assert params["weights"].shape == (2,)
    with torch.no_grad():  # a weight the floor would scale below float32's smallest normal
        model.fusion.log_weights[1] = float(np.log(1e-37))
    with pytest.raises(ExportError, match="smallest normal"):
        fusion_params(model, ["image", "imu"])
