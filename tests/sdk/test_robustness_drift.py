"""Drift check of docs/robustness-results.md: the page must come from the code, data and recipe of this commit.

* The page's JSON records the sha256 of every file of the code path (:data:`edgefuse.provenance.CODE_PATH`)
  and the recipe fingerprint; both are recomputed here. A change to any of those files fails this test
  until the page is regenerated (one command, in the failure message) in the same commit.
* A reduced run (one seed, a small fixed subset of AV-digits, 2 epochs, 1 thread) is compared with a
  committed fixture made by the same code (``--drift-fixture``): same accuracies, same weights.
* Training does not depend on the caller's thread setting when ``threads`` is given.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
from pathlib import Path
from types import ModuleType

import pytest
from edgefuse.provenance import CODE_PATH, REPO_ROOT, changed_files, code_fingerprint, file_hashes

PAGE = REPO_ROOT / "docs" / "robustness-results.md"
PAGE_JSON = REPO_ROOT / "docs" / "robustness" / "grid.json"
FIXTURE = Path(__file__).parent / "data" / "robustness_drift.json"


def _bench() -> ModuleType:
    path = REPO_ROOT / "benchmarks" / "robustness_av_digits.py"
    spec = importlib.util.spec_from_file_location("robustness_av_digits", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _provenance() -> dict:
    meta = json.loads(PAGE_JSON.read_text())["meta"]
    assert "provenance" in meta, f"{PAGE_JSON} has no provenance: regenerate it with `{_bench().REGENERATE}`"
    return meta["provenance"]


def test_page_was_generated_by_this_code_path() -> None:
    bench = _bench()
    recorded = _provenance()["code_path"]["files"]
    current = file_hashes()
    changed = changed_files(recorded, current)
    assert not changed, (
        f"docs/robustness-results.md is stale: {len(changed)} file(s) that determine its numbers changed since "
        f"it was generated: {', '.join(changed)}. Regenerate the page in the same commit with "
        f"`EDGEFUSE_FSDD=../shared/data/fsdd {bench.REGENERATE}` (about 45 min on 2 cores for 10 seeds; seconds with `--store out/rob_store --resume` when only reporting code changed) and the drift "
        f"fixture with `{bench.FIXTURE_COMMAND}` (seconds)."
    )
    fingerprint = code_fingerprint(current)
    assert _provenance()["code_path"]["fingerprint"] == fingerprint
    assert fingerprint in PAGE.read_text(), (
        f"the page and its JSON disagree: regenerate with `{bench.REGENERATE}`"
    )


def test_page_was_generated_with_the_documented_recipe() -> None:
    from edgefuse.provenance import json_fingerprint

    bench = _bench()
    prov = _provenance()
    defaults = argparse.Namespace(
        seeds=10, data="av-digits", degrade_image=4, threads=1, epochs=None, workers=2
    )
    recipe = bench.recipe_of(defaults, bench.config_for(defaults, ("audio", "image")))
    assert prov["recipe"] == json.loads(json.dumps(recipe)), (
        f"the recipe changed (TrainConfig defaults, seeds, interventions, thresholds...) since the page was "
        f"generated: regenerate it with `{bench.REGENERATE}`"
    )
    assert prov["recipe_fingerprint"] == json_fingerprint(recipe)
    assert prov["torch_threads"]["per_job"] == 1
    assert prov["data"]["arrays_sha256"]


def test_fixture_was_made_by_this_code_path() -> None:
    bench = _bench()
    changed = changed_files(json.loads(FIXTURE.read_text())["code_path"], file_hashes())
    assert not changed, (
        f"{FIXTURE.name} was made by other code ({', '.join(changed)} changed): run `{bench.FIXTURE_COMMAND}` "
        f"and `{bench.REGENERATE}` in the same commit"
    )


def test_a_changed_pipeline_file_is_named(tmp_path: Path) -> None:
    for rel in CODE_PATH:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO_ROOT / rel, tmp_path / rel)
    same = file_hashes(tmp_path)
    assert same == file_hashes()
    crlf = tmp_path / "sdk/edgefuse/wiseft.py"
    crlf.write_bytes(crlf.read_bytes().replace(b"\n", b"\r\n"))  # a Windows checkout: same hash
    assert file_hashes(tmp_path) == same
    edited = tmp_path / "sdk/edgefuse/train.py"
    edited.write_text(edited.read_text().replace("lr: float = 3e-3", "lr: float = 1e-3"))
    (tmp_path / "sdk/edgefuse/data/base.py").unlink()
    assert changed_files(same, file_hashes(tmp_path)) == [
        "sdk/edgefuse/data/base.py",
        "sdk/edgefuse/train.py",
    ]


def test_reduced_run_matches_the_committed_fixture() -> None:
    from edgefuse.data.avdigits import resolve_fsdd
    from edgefuse.errors import DataError

    try:
        fsdd = resolve_fsdd(None)
    except DataError as exc:
        pytest.skip(f"needs the FSDD recordings (EDGEFUSE_FSDD): {str(exc)[:120]}")
    bench = _bench()
    fixture = json.loads(FIXTURE.read_text())
    got = bench.reduced_run(str(fsdd))
    hint = f"regenerate with `{bench.FIXTURE_COMMAND}` and `{bench.REGENERATE}` in the same commit"
    assert got["data"] == fixture["data"], f"the AV-digits data differ from the fixture's: {hint}"
    assert got["scores"] == fixture["scores"], (
        f"the reduced run's accuracies differ from the fixture's: {hint}"
    )
    assert got["weights_abs_sum"] == pytest.approx(fixture["weights_abs_sum"], rel=1e-6), (
        f"the reduced run's weights differ from the fixture's: {hint}"
    )


def test_training_ignores_the_callers_thread_setting() -> None:
    import torch
    from edgefuse.data.registry import load_dataset
    from edgefuse.train import TrainConfig, accuracy, train

    dataset = load_dataset("synthetic", modalities=("audio", "image"))
    cfg = TrainConfig(modalities=dataset.modality_names, epochs=2, seed=3, intervention="moddrop")
    previous = torch.get_num_threads()
    runs = []
    try:
        for caller in (2, 1):
            torch.set_num_threads(caller)
            runs.append(train(dataset, cfg, threads=1).model)
            assert torch.get_num_threads() == caller  # restored
    finally:
        torch.set_num_threads(previous)
    a, b = (m.state_dict() for m in runs)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    test = dataset.split("test")
    assert accuracy(runs[0], test, ("audio",)) == accuracy(runs[1], test, ("audio",))
