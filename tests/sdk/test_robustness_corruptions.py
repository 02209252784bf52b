"""The robustness grid's corruption axis: every T with the corrupted modality, the metrics, JSON, jobs."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgefuse.data.corruptions import corrupt_split  # noqa: E402
from edgefuse.degraded import fused_and_single  # noqa: E402
from edgefuse.errors import ContractError, DataError  # noqa: E402
from edgefuse.robustness import GridResult, run_grid, subsets  # noqa: E402
from edgefuse.train import TrainConfig  # noqa: E402

U = ("audio", "image", "imu")
FAST = TrainConfig(modalities=U, epochs=2, batch_size=32)
CORRUPTIONS = [("image", "nan"), ("audio", "noise")]


@pytest.fixture(scope="module")
def data(toy_dataset_factory):  # type: ignore[no-untyped-def]
    return toy_dataset_factory(U, n=(96, 32, 48))


def _grid(data, **kw):  # type: ignore[no-untyped-def]
    models: dict = {}
    kw = {"corruptions": CORRUPTIONS, "severities": (1, 5), "threads": 1, **kw}
    grid = run_grid(data, [U], base_config=FAST, include_specialists=False, on_model=models.__setitem__, **kw)
    return grid, models


@pytest.fixture(scope="module")
def inline(data):  # type: ignore[no-untyped-def]
    return _grid(data)


def test_every_test_set_with_the_corrupted_modality_and_the_metrics(data, inline) -> None:  # type: ignore[no-untyped-def]
    grid, models = inline
    rows = grid.corruption_summary()
    key = {(r["modality"], r["kind"], r["severity"], r["test"]) for r in rows}
    want = {(m, k, sev, "+".join(t)) for m, k in CORRUPTIONS for sev in (1, 5) for t in subsets(U) if m in t}
    assert key == want  # 2 corruptions x 2 severities x the 4 T that contain the corrupted modality
    assert len(rows) == len(want)
    model = models[("supervised", U, 0)]
    test = data.split("test")
    for r in rows:
        t = tuple(r["test"].split("+"))
        assert set(r["single"]) == set(t)
        if len(t) == 1:
            assert r["regret"] is None
            assert r["regret_per_seed"] is None
            assert r["fused"]["mean"] == r["single"][t[0]]["mean"]
        else:
            best = max(v["mean"] for v in r["single"].values())
            assert r["regret"]["mean"] == pytest.approx(best - r["fused"]["mean"])
            assert r["regret_per_seed"] == [pytest.approx(best - r["fused"]["mean"])]
        assert r["retention"]["mean"] == pytest.approx(r["fused"]["mean"] / r["clean"]["fused"]["mean"])
        # the clean figures are the grid's own P(S->T)
        assert r["clean"]["fused"]["mean"] == pytest.approx(grid.scores[("supervised", U, 0)][t])
        # recomputed here, from the model and a corrupted split of our own
        c = corrupt_split(data, "test", r["modality"], r["kind"], r["severity"], 0)
        acc = fused_and_single(model, c, [t], c.valid)
        assert r["fused"]["mean"] == acc["fused"][r["test"]]
        assert {m: v["mean"] for m, v in r["single"].items()} == acc["single"]
    # NaN image rows at severity 5 (every row) are absent: image alone predicts nothing, and the fused
    # audio+image model is the audio alone
    nan5 = {r["test"]: r for r in rows if (r["kind"], r["severity"]) == ("nan", 5)}
    assert nan5["image"]["fused"]["mean"] == 0.0
    assert nan5["audio+image"]["fused"]["mean"] == pytest.approx(
        grid.scores[("supervised", U, 0)][("audio",)]
    )
    assert all(
        len(test.labels) == r["invalid_rows"] for r in grid.corruption.records if r["key"] == "image:nan@5"
    )


def test_json_round_trip_markdown_plot_and_old_documents(inline, tmp_path) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("matplotlib")
    grid, _ = inline
    doc = json.loads(json.dumps(grid.to_dict()))
    assert doc["corruption"]["settings"] == {
        "corruptions": ["image:nan", "audio:noise"],
        "severities": [1, 5],
        "seed": 0,
        "split": "test",
    }
    assert doc["corruption"]["summary"] == json.loads(json.dumps(grid.corruption_summary()))
    again = GridResult.from_dict(doc)
    assert json.loads(json.dumps(again.to_dict())) == doc
    assert again.markdown() == grid.markdown()
    assert "Degraded sensors: corruption retention and fusion regret" in grid.markdown()
    old = {k: v for k, v in doc.items() if k != "corruption"}  # a grid written before the axis existed
    plain = GridResult.from_dict(old)
    assert plain.corruption is None
    assert plain.corruption_summary() == []
    assert "Degraded sensors" not in plain.markdown()
    out = grid.write_report(tmp_path / "r")
    assert out["corruption"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "corruption" not in plain.write_report(tmp_path / "p")
    with pytest.raises(ContractError, match="not a grid corruption document"):
        GridResult.from_dict({**doc, "corruption": {"scores": []}})


def test_the_process_executor_gives_the_inline_results(data, inline) -> None:  # type: ignore[no-untyped-def]
    grid, _ = inline
    pooled, _ = _grid(data, executor="process", workers=2)
    assert pooled.corruption.scores == grid.corruption.scores
    assert pooled.corruption_summary() == grid.corruption_summary()
    assert pooled.meta["sweep"]["jobs"] == 2  # the model and its corrupt job


@pytest.mark.slow
def test_ray_workers_get_the_corrupted_inputs_and_the_inline_results(data, inline) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("ray")
    grid, _ = inline
    remote, _ = _grid(data, executor="ray", workers=2)  # a local Ray instance, shut down after the sweep
    assert remote.corruption.scores == grid.corruption.scores
    assert remote.scores == grid.scores


def test_a_reused_store_evaluates_other_corruptions_again_without_retraining(data, tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = tmp_path / "jobs"
    first, _ = _grid(data, corruptions="image:blur", severities=[2], store=store)
    same, _ = _grid(data, corruptions="image:blur", severities=[2], store=store, resume=True)
    assert (same.meta["sweep"]["reused"], same.meta["sweep"]["ran"]) == (2, 0)
    assert same.corruption.scores == first.corruption.scores
    other, _ = _grid(data, corruptions="image:blur", severities=[4], store=store, resume=True)
    assert (other.meta["sweep"]["reused"], other.meta["sweep"]["ran"]) == (1, 1)  # the model is reused
    assert other.scores == first.scores
    assert {r["severity"] for r in other.corruption_summary()} == {4}
    seeded, _ = _grid(
        data, corruptions="image:blur", severities=[2], corruption_seed=3, store=store, resume=True
    )
    assert seeded.meta["sweep"]["ran"] == 1
    plain, _ = _grid(data, corruptions=None, severities=None, store=store, resume=True)
    assert plain.corruption is None
    assert plain.meta["sweep"]["jobs"] == 1


@pytest.mark.parametrize(
    ("kw", "error", "match"),
    [
        ({"corruptions": "image:blurr"}, DataError, "did you mean 'blur'"),
        ({"corruptions": "gps:noise"}, DataError, "unknown modality 'gps'"),
        ({"corruptions": [("image",)]}, DataError, "not a \\(modality, kind\\) pair"),
        ({"corruptions": "image:blur", "severities": (0, 3)}, DataError, "use an int in 1..5"),
        ({"corruptions": "image:blur", "severities": "1,6"}, DataError, "use an int in 1..5"),
        ({"corruptions": "image:blur", "corruption_seed": -1}, DataError, "non-negative"),
        ({"corruptions": "audio:eq"}, DataError, "eq"),
        ({"corruptions": None, "severities": (1,)}, ContractError, "give corruptions= as well"),
    ],
)
def test_bad_corruption_arguments_are_refused_before_training(data, kw, error, match) -> None:  # type: ignore[no-untyped-def]
    trained: list = []
    with pytest.raises(error, match=match):
        run_grid(
            data,
            [U],
            base_config=FAST,
            include_specialists=False,
            on_model=lambda *a: trained.append(a),
            **kw,
        )
    assert trained == []


def test_regret_rows_are_the_models_with_their_own_train_set(inline) -> None:  # type: ignore[no-untyped-def]
    grid, _ = inline
    rows = grid.corruption.regret_rows()
    assert {(r["train"], r["test"]) for r in rows} == {("audio+image+imu", "audio+image+imu")}
    assert len(rows) == 4
    assert np.isfinite([r["regret"]["mean"] for r in rows]).all()


def test_a_failed_corrupt_job_is_a_failed_cell_and_keeps_the_clean_scores(data, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import edgefuse.degraded
    from edgefuse.executors import SweepError

    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("evaluation broke")

    monkeypatch.setattr(edgefuse.degraded, "evaluate_corrupted", broken)
    with pytest.raises(SweepError, match="evaluation broke") as info:
        _grid(data, corruptions="image:blur", severities=[2])
    grid = info.value.result
    assert set(grid.scores) == {("supervised", U, 0)}
    (failed,) = grid.failed
    assert (failed["what"], failed["train"]) == ("corruptions", "audio+image+imu")
    assert grid.corruption.scores == {}
    assert grid.corruption_summary() == []
    assert "evaluation broke" in grid.markdown()
