"""Hostile reliability-gated artifacts: a forged ``fusion.row_weights`` or encoder outputs, a broken gate.

A gated artifact's encoder graphs output ``[embedding, reliability]`` and its manifest says so in
``fusion.row_weights`` (schema 2). Each case tampers with a private copy and loads (or predicts) in its
own interpreter; the error must be the typed EdgeFuse one naming what is wrong. A manifest that drops
the gates, claims gates its graphs lack, or a graph whose gate outputs NaN or out-of-range values never
fuses silently.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _harness import expect_error, expect_ok
from _tamper import LOAD, PREDICT, edit, rehash

pytestmark = pytest.mark.backend("onnxruntime")


def _rw(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda d: d["fusion"]["row_weights"].__setitem__(key, value)


def _audio_outputs(change: Callable[[list[dict[str, Any]]], None]) -> Callable[[dict[str, Any]], None]:
    return lambda d: change(d["graphs"]["encoder_audio"]["outputs"])


def _ungate(d: dict[str, Any]) -> None:  # a forger hiding the gates: fixed weights, old schema
    d["fusion"].pop("row_weights")
    d["schema_version"] = 1


MANIFEST_CASES = {
    "schema-1-with-gates": (lambda d: d.__setitem__("schema_version", 1), "needs schema_version >= 2"),
    "row-weights-string": (lambda d: d["fusion"].__setitem__("row_weights", "reliability"), "exactly 'from'"),
    "row-weights-extra-key": (_rw("scale", 2.0), "exactly 'from' and 'floor'"),
    "from-unknown-output": (_rw("from", "confidence"), "declares outputs ['embedding', 'reliability']"),
    "from-path": (_rw("from", "../reliability"), "must name an encoder graph output"),
    "from-huge": (_rw("from", "r" * 100_000), "must name an encoder graph output"),
    "from-embedding": (_rw("from", "embedding"), "outputs [embedding, 'embedding']"),
    "floor-zero": (_rw("floor", 0), "row_weights.floor"),
    "floor-negative": (_rw("floor", -0.5), "row_weights.floor"),
    "floor-above-one": (_rw("floor", 2.0), "row_weights.floor"),
    "floor-denormal": (_rw("floor", 1e-40), "row_weights.floor"),
    "floor-string": (_rw("floor", "0.001"), "row_weights.floor"),
    "floor-bool": (_rw("floor", True), "row_weights.floor"),
    "floor-huge-int": (_rw("floor", 10**400), "row_weights.floor"),
    "weight-times-floor-denormal": (
        lambda d: d["fusion"].__setitem__("weights", [1e-36, 1.0]),
        "below float32's smallest normal",
    ),
    "encoder-lacks-reliability": (_audio_outputs(lambda o: o.pop()), "declares outputs ['embedding']"),
    "reliability-first": (_audio_outputs(lambda o: o.reverse()), "outputs [1] per row but fusion.dim is 8"),
    "reliability-wide": (_audio_outputs(lambda o: o[1].__setitem__("shape", [-1, 2])), "is [2] float32"),
    "reliability-fp16": (_audio_outputs(lambda o: o[1].__setitem__("dtype", "float16")), "[1] float16"),
    "gates-hidden-by-the-manifest": (_ungate, "ungated fusion has one"),
}


@pytest.mark.parametrize("case", sorted(MANIFEST_CASES))
def test_forged_row_weights_are_refused_at_load(gated_copy: Path, case: str) -> None:
    change, fragment = MANIFEST_CASES[case]
    edit(gated_copy, change)
    expect_error(LOAD.format(folder=str(gated_copy)), "ManifestError", fragment)


def test_pristine_gated_artifact_predicts_and_verifies(gated_copy: Path) -> None:
    code = PREDICT.format(folder=str(gated_copy)) + "RESULT['verified'] = s.verify().passed\n"
    res = expect_ok(code)
    assert res.result == {"finite": True, "verified": True}


def test_ungated_artifact_claiming_gates_is_refused(artifact_copy: Path) -> None:
    def claim(d: dict[str, Any]) -> None:
        d["schema_version"] = 2
        d["fusion"]["row_weights"] = {"from": "reliability", "floor": 0.001}

    edit(artifact_copy, claim)
    expect_error(LOAD.format(folder=str(artifact_copy)), "ManifestError", "encoder_audio", "'reliability'")


def test_graph_without_the_declared_reliability_is_refused(gated_copy: Path, tiny_artifact: Path) -> None:
    """The manifest is consistent, but the encoder file (an ungated one, rehashed) lacks the output."""
    shutil.copyfile(tiny_artifact / "encoder_audio.onnx", gated_copy / "encoder_audio.onnx")
    rehash(gated_copy, "encoder_audio.onnx")
    expect_error(
        LOAD.format(folder=str(gated_copy)), "ManifestError", "encoder_audio", "no output 'reliability'"
    )


def _break_reliability(folder: Path, how: str) -> None:
    """Rewrite the audio encoder so its reliability is NaN (``sqrt(-r)``) or ``r + 5``, then rehash."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    path = folder / "encoder_audio.onnx"
    model = onnx.load(str(path))
    producer = next(n for n in model.graph.node if "reliability" in n.output)
    producer.output[list(producer.output).index("reliability")] = "reliability_raw"
    if how == "nan":
        nodes = [
            helper.make_node("Neg", ["reliability_raw"], ["reliability_neg"]),
            helper.make_node("Sqrt", ["reliability_neg"], ["reliability"]),
        ]
    else:
        model.graph.initializer.append(helper.make_tensor("five", TensorProto.FLOAT, [], [5.0]))
        nodes = [helper.make_node("Add", ["reliability_raw", "five"], ["reliability"])]
    model.graph.node.extend(nodes)
    onnx.save(model, str(path))
    rehash(folder, "encoder_audio.onnx")


def test_a_gate_giving_nan_raises_the_typed_error(gated_copy: Path) -> None:
    _break_reliability(gated_copy, "nan")
    expect_error(
        PREDICT.format(folder=str(gated_copy)), "NonFiniteOutputError", "encoder 'audio'", "reliability"
    )


def test_a_gate_out_of_range_raises_the_typed_error(gated_copy: Path) -> None:
    _break_reliability(gated_copy, "offset")
    expect_error(PREDICT.format(folder=str(gated_copy)), "BadOutputError", "encoder 'audio'", "[0, 1]")


def test_verify_reports_a_broken_gate(gated_copy: Path) -> None:
    """verify() runs with on_nonfinite='allow': the NaN reliability makes its rows' logits NaN, and fail."""
    _break_reliability(gated_copy, "nan")
    code = LOAD.format(folder=str(gated_copy)) + (
        "r = s.verify(); RESULT['passed'] = r.passed\n"
        "RESULT['checks'] = {'+'.join(c.pattern): c.passed for c in r.checks}\n"
    )
    res = expect_ok(code)
    assert res.result["passed"] is False
    assert res.result["checks"] == {"audio+image": False, "audio": False, "image": True}
