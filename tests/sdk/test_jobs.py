"""Sweep jobs: content hashes, the atomic job store, resume after a crash, the CLI's counts."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from edgefuse.jobs import JobSpec, JobStore, JobStoreError, dataset_fingerprint

SPEC = JobSpec(
    kind="train",
    method="supervised",
    train_set=("audio", "image"),
    seed=0,
    variant="none",
    recipe={"modalities": ["audio", "image"], "epochs": 1, "seed": 0, "intervention": "none"},
    dataset="f" * 64,
    model={"architecture": "reference"},
    deps={"pretrained": "a" * 32},
    evaluate="test",
    version="0.1.0",
)


def test_the_job_id_is_a_hash_of_everything_that_makes_the_model() -> None:
    assert JobSpec.from_dict(json.loads(json.dumps(SPEC.to_dict()))).job_id == SPEC.job_id
    assert len(SPEC.job_id) == 32
    changed = [
        replace(SPEC, seed=1),
        replace(SPEC, train_set=("audio",)),
        replace(SPEC, variant="masd"),
        replace(SPEC, method="contrastive"),
        replace(SPEC, recipe={**SPEC.recipe, "epochs": 2}),
        replace(SPEC, dataset="e" * 64),
        replace(SPEC, model={"factory": {"callable": "pkg.mod:build", "kwargs": {"dim": 8}}}),
        replace(SPEC, model={"factory": {"callable": "pkg.mod:build", "kwargs": {"dim": 16}}}),
        replace(SPEC, deps={"pretrained": "b" * 32}),
        replace(SPEC, evaluate="val"),
        replace(SPEC, version="0.2.0"),
    ]
    ids = {s.job_id for s in changed}
    assert len(ids) == len(changed)
    assert SPEC.job_id not in ids


def test_dataset_fingerprint_covers_the_arrays(toy_dataset_factory) -> None:  # type: ignore[no-untyped-def]
    a = toy_dataset_factory(("audio", "image"), n=(16, 8, 8))
    b = toy_dataset_factory(("audio", "image"), n=(16, 8, 8))
    assert dataset_fingerprint(a) == dataset_fingerprint(b)
    b.splits["val"].inputs["image"][3, 0, 0, 0] += np.float32(1e-3)
    assert dataset_fingerprint(a) != dataset_fingerprint(b)


def test_a_store_folder_must_be_a_store(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("x")
    with pytest.raises(JobStoreError, match="not an EdgeFuse job store"):
        JobStore(tmp_path / "mine")
    store = JobStore(tmp_path / "s")
    assert JobStore(tmp_path / "s").root == store.root  # reopening is fine
    assert store.finished() == []


def test_resume_reuses_finished_jobs_and_reruns_only_what_is_missing(toy_dataset_factory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("torch")
    from edgefuse.checkpoint import load_checkpoint, weights_sha256
    from edgefuse.robustness import run_grid
    from edgefuse.train import TrainConfig

    ds = toy_dataset_factory(("audio", "image"), n=(64, 32, 32))
    cfg = TrainConfig(modalities=("audio", "image"), epochs=1, pretrain_epochs=1, batch_size=32)
    store = tmp_path / "store"
    seen: dict = {}
    kw = {"base_config": cfg, "include_specialists": False, "threads": 1, "store": store}
    first = run_grid(
        ds, [("audio", "image")], ["supervised", "contrastive"], [0], **kw, on_model=seen.__setitem__
    )
    sweep = first.meta["sweep"]
    # supervised S=ab; contrastive: its pre-training job + S=ab
    assert (sweep["jobs"], sweep["ran"], sweep["reused"], sweep["failed"]) == (3, 3, 0, 0)
    jobs = store / "jobs"
    assert len(JobStore(store).finished()) == 3
    ckpts = sorted(jobs.glob("*/checkpoint"))
    assert len(ckpts) == 2
    assert len(sorted(jobs.glob("*/encoders.safetensors"))) == 1
    # each checkpoint is a real EdgeFuse checkpoint of that row's model, with its accuracies
    hashes = {weights_sha256(m) for m in seen.values()}
    assert {load_checkpoint(c).info["weights_sha256"] for c in ckpts} == hashes
    result = json.loads((ckpts[0].parent / "result.json").read_text())
    assert set(result["result"]["accuracy"]) == {"audio+image", "audio", "image"}
    assert not list(jobs.rglob("*edgefuse-tmp*"))

    again_seen: dict = {}
    again = run_grid(
        ds,
        [("audio", "image")],
        ["supervised", "contrastive"],
        [0],
        **kw,
        resume=True,
        on_model=again_seen.__setitem__,
    )
    assert (again.meta["sweep"]["ran"], again.meta["sweep"]["reused"]) == (0, 3)
    assert again.scores == first.scores
    assert {k: weights_sha256(m) for k, m in again_seen.items()} == {
        k: weights_sha256(m) for k, m in seen.items()
    }

    # a sweep killed halfway: one result never committed, one checkpoint damaged -> only those run again
    sup = next(
        c for c in ckpts if json.loads((c / "model.json").read_text())["recipe"]["method"] == "supervised"
    )
    (sup.parent / "result.json").unlink()
    con = next(c for c in ckpts if c != sup)
    raw = bytearray((con / "model.safetensors").read_bytes())
    raw[-1] ^= 1
    (con / "model.safetensors").write_bytes(bytes(raw))
    third = run_grid(ds, [("audio", "image")], ["supervised", "contrastive"], [0], **kw, resume=True)
    assert (third.meta["sweep"]["ran"], third.meta["sweep"]["reused"]) == (2, 1)
    assert third.scores == first.scores
    assert third.to_dict()["cells"] == first.to_dict()["cells"]


def test_cli_resume_says_what_it_reused_and_lists_failed_cells(tmp_path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("torch")
    from pathlib import Path

    from edgefuse.cli import main

    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    import sweep_user_code

    sweep_user_code.CALLS.clear()
    report = tmp_path / "report"
    args = [
        "robustness",
        *("--data", "synthetic", "--train-sets", "audio+image+imu", "--methods", "supervised"),
        *("--seeds", "1", "--epochs", "1", "--interventions", "none,moddrop", "--no-specialists"),
        *("--threads", "1", "--report", str(report)),
    ]
    assert main(args) == 0
    assert "jobs: 0 reused, 2 run (0 retried, 0 failed)" in capsys.readouterr().out
    assert main([*args, "--resume"]) == 0
    assert "jobs: 2 reused, 0 run" in capsys.readouterr().out
    assert (report / "jobs" / "store.json").is_file()

    # a job that raises: reported with its error, the other job finishes, exit status 1
    factory = ["--model-factory", "sweep_user_code:build", "--allow-import", "--factory-kwargs"]
    code = main([*args, *factory, '{"fail_on_call": 2}', "--json", str(tmp_path / "g.json")])
    out = capsys.readouterr().out
    assert code == 1
    assert "FAILED train supervised+moddrop" in out
    assert "deliberate failure of call 2" in out
    data = json.loads((tmp_path / "g.json").read_text())
    assert [(f["method"], f["train"]) for f in data["failed"]] == [("supervised+moddrop", "audio+image+imu")]
    assert "deliberate failure" in data["failed"][0]["error"]
    assert [s["method"] for s in data["scores"]] == ["supervised"]
    assert data["meta"]["sweep"]["failed"] == 1
    md = (report / "grid.md").read_text()
    assert "### Failed cells" in md
    assert "deliberate failure" in md
    assert len(list((report / "jobs" / "failed").glob("*.json"))) == 1


def test_jobs_and_executors_import_neither_torch_nor_ray() -> None:
    import subprocess
    import sys

    code = (
        "import sys, edgefuse.jobs, edgefuse.executors, edgefuse.cli.robustness\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'ray', 'rich'}))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
