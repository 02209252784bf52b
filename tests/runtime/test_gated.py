"""Reliability-gated models: export (ONNX, TFLite; split and monolithic), the runtime and the checkpoint path.

The gate is part of each encoder graph (a second output, ``reliability``), the session passes the kernel
per-row weights ``(B, M)`` = fixed weight x reliability, and parity (export) and ``verify()`` (runtime)
compare with the PyTorch model, whose forward applies the gates: a wrong reliability is caught.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _simulated import simulated_coremltools, simulated_tensorrt
from edgefuse.runtime import load
from edgefuse.runtime.errors import BadOutputError, NonFiniteOutputError

torch = pytest.importorskip("torch")

SHAPES = {"audio": (1, 8, 12), "image": (1, 8, 8)}
PATTERNS = (("audio", "image"), ("audio",), ("image",))
MASK = np.array([[1, 1], [1, 0], [0, 1], [1, 1], [1, 0], [0, 1]], bool)
ATOL = 1e-4
#: (format, monolithic, profile): ONNX Runtime and LiteRT run here.
ARTIFACTS = {
    "onnx-split": ("onnx", False, "generic/x86-64"),
    "onnx-monolithic": ("onnx", True, "generic/x86-64"),
    "tflite-split": ("tflite", False, "generic/video-doorbell"),
    "tflite-monolithic": ("tflite", True, "generic/video-doorbell"),
}


def _gated_model() -> Any:
    from edgefuse.models.contract import add_gates, build_model
    from edgefuse.models.reference import reference_architecture
    from edgefuse.specs import ModalitySpec

    specs = tuple(ModalitySpec(m, s) for m, s in SHAPES.items())
    torch.manual_seed(0)
    model = build_model(reference_architecture(specs, 8), specs, ["a", "b", "c", "d"])
    add_gates(model, 16)
    model.eval()
    x = _inputs(64, seed=99)
    with torch.no_grad():  # trained-looking: reliabilities that differ per row, fusion weights that differ
        model.fusion.norm.weight.uniform_(0.5, 1.5)
        model.fusion.norm.bias.uniform_(-0.5, 0.5)
        model.fusion.log_weights.copy_(torch.tensor([-0.4, 0.4]))
        for m, gate in zip(model.modality_names, model.fusion.gates, strict=True):
            gate.net[2].weight.normal_(0.0, 1.0)
            gate.net[2].bias.zero_()
            z = gate.net(model.encoders[m](torch.from_numpy(x[m])))  # gate logits: scaled to N(0, 2)
            gate.net[2].weight.mul_(2.0 / z.std())
            gate.net[2].bias.fill_(float(-2.0 * z.mean() / z.std()))
    return model


def _inputs(batch: int, seed: int, modalities: tuple[str, ...] = tuple(SHAPES)) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {m: rng.standard_normal((batch, *SHAPES[m])).astype(np.float32) for m in modalities}


def _torch_logits(model: Any, inputs: dict[str, np.ndarray], mask: np.ndarray | None = None) -> np.ndarray:
    with torch.no_grad():
        t = {k: torch.from_numpy(v) for k, v in inputs.items()}
        return model(t, None if mask is None else torch.from_numpy(mask)).numpy()


def _reliability(model: Any, m: str, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        e = model.encoders[m](torch.from_numpy(x))
        return model.fusion.reliability(model.modality_names.index(m), e).numpy()


@pytest.fixture(scope="module")
def gated_model() -> Any:
    return _gated_model()


@pytest.fixture(scope="module")
def gated_checkpoint(gated_model: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from edgefuse.checkpoint import save_checkpoint

    return save_checkpoint(gated_model, tmp_path_factory.mktemp("gated") / "ckpt")


@pytest.fixture(scope="module", params=list(ARTIFACTS))
def gated_artifact(request: pytest.FixtureRequest, gated_checkpoint: Path, tmp_path_factory: Any) -> Path:
    if request.param == "onnx-split":
        return request.getfixturevalue("onnx_split")
    fmt, monolithic, profile = ARTIFACTS[request.param]
    pytest.importorskip("onnx")
    if fmt == "tflite":
        pytest.importorskip("litert_torch")
        pytest.importorskip("ai_edge_litert")
    from edgefuse.export import export
    from edgefuse.export.formats.base import BatchPlan

    out = tmp_path_factory.mktemp("gated") / request.param
    report = export(
        gated_checkpoint,
        profile,
        fmt,
        out,
        precision="fp32",
        monolithic=monolithic,
        batch=BatchPlan(fixed=(4,)),  # one TFLite signature (fast); other batch sizes are split and padded
    )
    report.raise_for_failures()
    return out


@pytest.fixture(scope="module")
def onnx_split(gated_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("onnx")
    from edgefuse.export import export

    out = tmp_path_factory.mktemp("gated") / "onnx-split"
    export(gated_checkpoint, "generic/x86-64", "onnx", out, precision="fp32").raise_for_failures()
    return out


# ---- export + runtime parity, every layout -----------------------------------------------------------


def test_gated_artifact_matches_pytorch_under_every_pattern(gated_artifact: Path, gated_model: Any) -> None:
    manifest = json.loads((gated_artifact / "manifest.json").read_text())
    assert manifest["schema_version"] == 2
    assert manifest["fusion"]["row_weights"] == {"from": "reliability", "floor": pytest.approx(1e-3)}
    if manifest["layout"] == "split":
        for m in SHAPES:
            outputs = manifest["graphs"][f"encoder_{m}"]["outputs"]
            assert [(o["name"], o["shape"]) for o in outputs] == [
                ("embedding", [-1, 8]),
                ("reliability", [-1, 1]),
            ]
        assert {p["output"] for p in manifest["parity"] if p["graph"].startswith("encoder")} == {
            "embedding",
            "reliability",
        }
    assert all(p["passed"] for p in manifest["parity"])
    with load(gated_artifact) as session:
        for i, pattern in enumerate(PATTERNS):
            x = _inputs(3, seed=10 + i, modalities=pattern)
            np.testing.assert_allclose(
                session.predict(x).logits,
                _torch_logits(gated_model, x),
                atol=ATOL,
                rtol=1e-4,
                err_msg=str(pattern),
            )
        # per-row absence in one batch, with NaN in the absent rows (never read, never gated)
        x = _inputs(len(MASK), seed=20)
        expected = _torch_logits(gated_model, x, MASK)
        for j, m in enumerate(SHAPES):
            x[m][~MASK[:, j]] = np.nan
        got = session.predict(x, MASK).logits
        np.testing.assert_allclose(got, expected, atol=ATOL, rtol=1e-4)
        assert session.verify(raise_on_failure=True).passed


def test_the_kernel_gets_per_row_weights(onnx_split: Path, gated_model: Any, monkeypatch: Any) -> None:
    from edgefuse.runtime import session as session_module

    seen: list[np.ndarray] = []
    real_fuse = session_module._fusion.fuse

    def spy(embeddings, mask, weights, *args):  # type: ignore[no-untyped-def]
        seen.append(np.array(weights))
        return real_fuse(embeddings, mask, weights, *args)

    class _Spy:
        fuse = staticmethod(spy)
        all_finite = staticmethod(session_module._fusion.all_finite)

    monkeypatch.setattr(session_module, "_fusion", _Spy)
    x = _inputs(len(MASK), seed=30)
    with load(onnx_split) as session:
        got = session.predict(x, MASK).logits
    (weights,) = seen
    fixed = gated_model.fusion.fusion_parameters()["weights"]
    expected = np.stack(
        [fixed[j] * _reliability(gated_model, m, x[m])[:, 0] for j, m in enumerate(SHAPES)], 1
    )
    assert weights.shape == (len(MASK), 2)
    np.testing.assert_allclose(weights[MASK], expected[MASK], rtol=1e-4)
    assert (weights[~MASK] == 0).all()  # absent rows: weight 0, never read
    assert np.ptp(weights[MASK[:, 0], 0]) > 0.05  # the gates really differ per row
    # the same model without its gates predicts otherwise: the gates reach the logits
    ungated = copy.deepcopy(gated_model)
    ungated.fusion.gates = None
    assert np.abs(got - _torch_logits(ungated, x, MASK)).max() > 1e-2
    np.testing.assert_allclose(got, _torch_logits(gated_model, x, MASK), atol=ATOL, rtol=1e-4)


# ---- reliabilities are checked: a broken graph never fuses silently --------------------------------


def _patch_reliability(session: Any, graph: str, change: Any, monkeypatch: Any) -> None:
    backend = session.graph_backend(graph)
    real = backend._execute_n

    def broken(in_name, x, out_names):  # type: ignore[no-untyped-def]
        embedding, rel = real(in_name, x, out_names)
        return [embedding, change(np.array(rel))]

    monkeypatch.setattr(backend, "_execute_n", broken)


def _set_row(value: float, row: int = 1) -> Any:
    def change(rel: np.ndarray) -> np.ndarray:
        rel[row] = value
        return rel

    return change


def test_a_nan_reliability_raises_or_poisons_only_its_row(onnx_split: Path, monkeypatch: Any) -> None:
    x = _inputs(3, seed=40)
    with load(onnx_split) as session:
        clean = session.predict(x).logits
        _patch_reliability(session, "encoder_audio", _set_row(np.nan), monkeypatch)
        with pytest.raises(NonFiniteOutputError, match=r"encoder 'audio'.*NaN or Inf reliability.*row 1"):
            session.predict(x)
        allowed = session.predict(x, on_nonfinite="allow").logits
        assert np.isnan(allowed[1]).all()
        np.testing.assert_array_equal(allowed[[0, 2]], clean[[0, 2]])
        mask = np.array([[1, 1], [0, 1], [1, 1]], bool)  # row 1 audio absent: its reliability is never read
        assert np.isfinite(session.predict(x, mask).logits).all()


@pytest.mark.parametrize("value", [1.5, -0.25])
def test_an_out_of_range_reliability_is_a_broken_graph(
    onnx_split: Path, monkeypatch: Any, value: float
) -> None:
    x = _inputs(3, seed=41)
    with load(onnx_split) as session:
        _patch_reliability(session, "encoder_image", _set_row(value, row=2), monkeypatch)
        for on_nonfinite in ("error", "allow"):
            with pytest.raises(BadOutputError, match=r"encoder 'image'.*in \[0, 1\]"):
                session.predict(x, on_nonfinite=on_nonfinite)  # type: ignore[arg-type]


def test_a_rounded_reliability_is_clipped_to_the_gate_range(onnx_split: Path, monkeypatch: Any) -> None:
    """int8 can round a floor reliability to 0 (or 1 to 1.0004): the gate's own range is restored."""
    x = _inputs(2, seed=42)
    with load(onnx_split) as session:
        _patch_reliability(session, "encoder_audio", lambda r: np.full_like(r, 1e-3), monkeypatch)
        at_floor = session.predict(x).logits
        _patch_reliability(session, "encoder_audio", np.zeros_like, monkeypatch)
        np.testing.assert_allclose(session.predict(x).logits, at_floor, atol=1e-6)
        _patch_reliability(session, "encoder_audio", lambda r: np.full_like(r, 1.0005), monkeypatch)
        assert np.isfinite(session.predict(x).logits).all()


def test_verify_catches_a_wrong_reliability(onnx_split: Path, monkeypatch: Any) -> None:
    with load(onnx_split) as session:
        assert session.verify().passed
        _patch_reliability(session, "encoder_audio", np.ones_like, monkeypatch)  # as if the gate were gone
        report = session.verify()
        assert not report.passed
        failed = {"+".join(c.pattern) for c in report.failures()}
        assert failed == {"audio+image"}  # alone, audio's weight renormalises away: only the mix shows it


def test_export_parity_catches_a_wrong_gate(gated_model: Any, tmp_path: Path, monkeypatch: Any) -> None:
    """Encoder graphs whose gate differs from the model's fail parity, on the reliability and the logits."""
    pytest.importorskip("onnx")
    from edgefuse.export import export, pipeline

    real = pipeline.build_graphs

    def wrong_gates(model, modalities, monolithic):  # type: ignore[no-untyped-def]
        graphs = real(model, modalities, monolithic)
        for g in graphs:
            if g.role.startswith("encoder"):
                g.module = copy.deepcopy(g.module)
                with torch.no_grad():
                    g.module.gate.net[2].bias.add_(1.0)
        return graphs

    monkeypatch.setattr(pipeline, "build_graphs", wrong_gates)
    report = export(gated_model, "generic/x86-64", "onnx", tmp_path / "art", precision="fp32")
    (result,) = report.results
    assert result.status == "failed"
    assert result.error_type == "ParityError"
    failed = {(p["graph"], p["output"]) for p in result.parity}
    assert ("encoder_audio", "reliability") in failed
    assert ("head+fusion", "logits") in failed
    assert not (tmp_path / "art").exists()


# ---- the checkpoint path (PyTorch backend, same kernel) ----------------------------------------------


def test_gated_checkpoint_runs_through_the_kernel(gated_checkpoint: Path, gated_model: Any) -> None:
    with load(gated_checkpoint) as session:
        assert session.backend == "torch"
        fusion = session.manifest.data["fusion"]
        assert fusion["row_weights"] == {"from": "reliability", "floor": pytest.approx(1e-3)}
        graph = session.manifest.data["graphs"]["encoder_audio"]
        assert [o["name"] for o in graph["outputs"]] == ["embedding_audio", "reliability"]
        x = _inputs(len(MASK), seed=50)
        np.testing.assert_allclose(
            session.predict(x, MASK).logits, _torch_logits(gated_model, x, MASK), atol=1e-5, rtol=1e-4
        )
        report = session.verify(raise_on_failure=True)
        assert [c.pattern for c in report.checks] == list(PATTERNS)


def test_gated_int8_onnx_exports_and_verifies(gated_checkpoint: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from edgefuse.data.base import Split
    from edgefuse.export import export
    from edgefuse.export.int8 import Int8Settings

    def split(n: int, seed: int) -> Split:
        return Split(_inputs(n, seed), np.random.default_rng(seed).integers(0, 4, n).astype(np.int64))

    settings = Int8Settings(
        calibration=split(32, 0), validation=split(32, 1), source="random", max_drop=100.0
    )
    out = tmp_path / "int8"
    export(
        gated_checkpoint, "generic/x86-64", "onnx", out, precision="int8", int8=settings
    ).raise_for_failures()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["fusion"]["row_weights"]["from"] == "reliability"
    assert set(manifest["int8"]["sqnr_db"]) == {"encoder_audio", "encoder_image", "head"}
    with load(out) as session:
        assert session.verify(raise_on_failure=True).passed
        rel = session.graph_backend("encoder_audio").run({"audio": _inputs(4, 3)["audio"]})["reliability"]
        assert rel.shape == (4, 1)
        assert np.isfinite(rel).all()


def test_export_cached_never_reuses_an_ungated_artifact_of_a_gated_checkpoint(
    onnx_split: Path, gated_checkpoint: Path, tmp_path: Path, monkeypatch: Any
) -> None:
    """Same weights sha256, but written without the gates (as before gates were exported): exported again."""
    import shutil

    from edgefuse.export import export_cached, pipeline

    folder = Path(shutil.copytree(onnx_split, tmp_path / "art"))
    assert export_cached(gated_checkpoint, "generic/x86-64", "onnx", folder)[1] is True
    data = json.loads((folder / "manifest.json").read_text())
    data["schema_version"] = 1
    data["fusion"].pop("row_weights")
    for m in SHAPES:
        data["graphs"][f"encoder_{m}"]["outputs"].pop()
    (folder / "manifest.json").write_text(json.dumps(data))
    exported: list[Path] = []

    def fake_export(checkpoint, profile, formats, out, **kwargs):  # type: ignore[no-untyped-def]
        exported.append(Path(out))
        return pipeline.ExportReport(profile.id, [], [], [pipeline.FormatResult("onnx", "ok", folder=out)])

    monkeypatch.setattr(pipeline, "export", fake_export)
    assert export_cached(gated_checkpoint, "generic/x86-64", "onnx", folder)[1] is False
    assert exported == [folder]


# ---- Core ML and TensorRT cannot run here: their two-output path runs against simulated libraries -------


ENCODER_IN = [{"name": "audio", "shape": [-1, 3], "dtype": "float32"}]
ENCODER_OUT = [
    {"name": "embedding", "shape": [-1, 2], "dtype": "float32"},
    {"name": "reliability", "shape": [-1, 1], "dtype": "float32"},
]
WEIGHTS = np.arange(6, dtype=np.float32).reshape(3, 2) / 10


def _encoder(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The simulated gated encoder: a linear embedding and a sigmoid reliability."""
    emb = np.ascontiguousarray(x @ WEIGHTS)
    return emb, (1 / (1 + np.exp(-emb[:, :1]))).astype(np.float32)


def test_gated_encoder_on_a_simulated_coreml(monkeypatch: Any, tmp_path: Path) -> None:

    from edgefuse.runtime.backends.coreml import CoreMLBackend

    class MLModel:
        def __init__(self, path: str, compute_units: str) -> None:
            pass

        def predict(self, feeds):  # type: ignore[no-untyped-def]
            emb, rel = _encoder(feeds["audio"])
            return {"embedding": emb.astype(np.float16), "reliability": rel.astype(np.float16)}

    simulated_coremltools(monkeypatch, MLModel)
    (tmp_path / "encoder_audio.mlpackage").mkdir()
    backend = CoreMLBackend().load(
        tmp_path / "encoder_audio.mlpackage", ENCODER_IN, ENCODER_OUT, batch={"dynamic": True, "max": 4}
    )
    x = np.linspace(-1, 1, 18, dtype=np.float32).reshape(6, 3)
    emb, rel = backend._execute_n("audio", x, ("embedding", "reliability"))
    want_emb, want_rel = _encoder(x)
    assert emb.dtype == rel.dtype == np.float32
    np.testing.assert_allclose(emb, want_emb, atol=1e-2)
    np.testing.assert_allclose(rel, want_rel, atol=1e-3)


def test_gated_encoder_on_a_simulated_tensorrt(monkeypatch: Any, tmp_path: Path) -> None:
    from edgefuse.runtime.backends import tensorrt as trt_backend

    def encoder(got: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(("embedding", "reliability"), _encoder(got["audio"]), strict=True))

    cudart, _ = simulated_tensorrt(monkeypatch, {"audio": 3}, {"embedding": 2, "reliability": 1}, encoder)
    (tmp_path / "encoder_audio.engine").write_bytes(b"engine")
    backend = trt_backend.TensorRTBackend().load(tmp_path / "encoder_audio.engine", ENCODER_IN, ENCODER_OUT)
    x = np.linspace(-1, 1, 18, dtype=np.float32).reshape(6, 3)  # two chunks: 4 + 2 rows
    emb, rel = backend._execute_n("audio", x, ("embedding", "reliability"))
    want_emb, want_rel = _encoder(x)
    np.testing.assert_allclose(emb, want_emb, rtol=1e-6)
    np.testing.assert_allclose(rel, want_rel, rtol=1e-6)
    backend.close()
    assert cudart.mem == {}
