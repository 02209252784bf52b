"""Executors: a process pool gives the inline results bit for bit, survives a killed worker, reports failures."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from edgefuse.checkpoint import weights_sha256  # noqa: E402
from edgefuse.executors import SweepError  # noqa: E402
from edgefuse.factory import FactoryError, FactoryRef, import_factory  # noqa: E402
from edgefuse.robustness import run_grid  # noqa: E402
from edgefuse.train import TrainConfig  # noqa: E402

HERE = Path(__file__).resolve().parent
AI = ("audio", "image")
FAST = TrainConfig(modalities=AI, epochs=1, pretrain_epochs=1, batch_size=32)


@pytest.fixture(scope="module")
def data(toy_dataset_factory):  # type: ignore[no-untyped-def]
    return toy_dataset_factory(AI, n=(64, 32, 32))


@pytest.fixture
def user_code(monkeypatch):  # type: ignore[no-untyped-def]
    """``sweep_user_code`` importable here and in spawned workers (they inherit sys.path)."""
    monkeypatch.syspath_prepend(str(HERE))
    import sweep_user_code

    sweep_user_code.CALLS.clear()
    return sweep_user_code


def _grid(data, **kw):  # type: ignore[no-untyped-def]
    models: dict = {}
    grid = run_grid(
        data, [AI], base_config=FAST, include_specialists=False, threads=1, on_model=models.__setitem__, **kw
    )
    return grid, {k: weights_sha256(m) for k, m in models.items()}


def test_process_pool_survives_a_killed_worker_and_gives_the_inline_grid_bit_for_bit(
    data, tmp_path, user_code
) -> None:  # type: ignore[no-untyped-def]
    # 7 jobs: per method none, masd and their WiSE-FT (which needs both); one pre-training job
    kw = {
        "methods": ["supervised", "contrastive"],
        "interventions": ["none", "masd+wiseft"],
        "wiseft_alphas": [0.0, 0.5, 1.0],
    }
    inline, inline_w = _grid(data, **kw)
    # the factory builds the reference architecture (the default above) and kills its own worker
    # process (os._exit) the first time it is called anywhere: that job is retried on a new worker
    marker = tmp_path / "crashed-once"
    ref = FactoryRef("sweep_user_code:build", {"crash_marker": str(marker)})
    crashy = import_factory(ref, allow_import=True)
    pooled, pooled_w = _grid(
        data, executor="process", workers=2, model_factory=crashy, store=tmp_path / "s", **kw
    )
    assert marker.exists()
    assert pooled.scores == inline.scores
    assert pooled_w == inline_w  # every row's checkpoint weights, rebuilt here from the workers' bytes
    strip = lambda g: {k: v for k, v in g.to_dict().items() if k != "meta"}  # noqa: E731
    assert strip(pooled) == strip(inline)
    assert pooled.meta["wiseft_alpha"] == inline.meta["wiseft_alpha"]
    sweep = pooled.meta["sweep"]
    assert (sweep["executor"], sweep["workers"], sweep["threads"]) == ("process", 2, 1)
    assert (sweep["jobs"], sweep["ran"], sweep["retries"], sweep["failed"]) == (7, 7, 1, 0)
    assert inline.meta["sweep"]["executor"] == "inline"
    assert "executor process, workers 2, threads 1" in pooled.markdown()


def test_a_job_that_raises_is_reported_and_the_others_finish(data, tmp_path) -> None:  # type: ignore[no-untyped-def]
    bad = {"masd": {"K": 0}}  # rejected when training starts: a deterministic failure, never retried
    with pytest.raises(SweepError, match=r"1 of 4 jobs failed .*masd K = 0 must be an integer") as info:
        run_grid(
            data,
            [AI],
            base_config=FAST,
            interventions=["none", "masd"],
            intervention_params=bad,
            threads=1,
            store=tmp_path / "s",
        )
    grid = info.value.result
    assert [(f["method"], f["train"], f["attempts"]) for f in grid.failed] == [
        ("supervised+masd", "audio+image", 1)
    ]
    # the specialists' masd rows reduce to their baseline (one modality): they are fine
    assert sorted(k[0] + " " + "+".join(k[1]) for k in grid.scores) == [
        "supervised audio",
        "supervised audio+image",
        "supervised image",
        "supervised+masd audio",
        "supervised+masd image",
    ]
    assert "### Failed cells" in grid.markdown()
    assert len(list((tmp_path / "s" / "failed").glob("*.json"))) == 1


def test_a_closure_factory_cannot_travel_to_workers(data) -> None:  # type: ignore[no-untyped-def]
    from edgefuse.models.contract import build_model
    from edgefuse.models.reference import reference_architecture

    def local(modalities, label_names):  # type: ignore[no-untyped-def]
        return build_model(reference_architecture(modalities), modalities, label_names)

    with pytest.raises(FactoryError, match=r"cannot be sent to worker processes.*module-level function"):
        run_grid(data, [AI], base_config=FAST, executor="process", workers=2, model_factory=local)


def test_executor_arguments_are_checked_before_anything_runs(data) -> None:  # type: ignore[no-untyped-def]
    from edgefuse.errors import ContractError

    with pytest.raises(ContractError, match="did you mean 'process'"):
        run_grid(data, [AI], base_config=FAST, executor="procss")
    with pytest.raises(ContractError, match="ray_address is for executor='ray'"):
        run_grid(data, [AI], base_config=FAST, executor="process", ray_address="auto")
    with pytest.raises(ContractError, match="workers = 0"):
        run_grid(data, [AI], base_config=FAST, executor="process", workers=0)
    with pytest.raises(ContractError, match="resume=True reuses the jobs of a store"):
        run_grid(data, [AI], base_config=FAST, resume=True)
