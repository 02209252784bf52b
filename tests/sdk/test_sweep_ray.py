"""The Ray executor on a local 2-node cluster: the inline grid bit for bit, and a node removed mid-job."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
ray = pytest.importorskip("ray")

from edgefuse.checkpoint import weights_sha256  # noqa: E402
from edgefuse.factory import FactoryRef, import_factory  # noqa: E402
from edgefuse.robustness import run_grid  # noqa: E402
from edgefuse.train import TrainConfig  # noqa: E402

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent
AI = ("audio", "image")
FAST = TrainConfig(modalities=AI, epochs=1, pretrain_epochs=1, batch_size=32)


@pytest.fixture(scope="module")
def cluster():  # type: ignore[no-untyped-def]
    """A head and one worker node, 1 CPU each; ``sweep_user_code`` importable in every Ray worker."""
    from ray.cluster_utils import Cluster

    mp = pytest.MonkeyPatch()
    mp.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(HERE), os.environ.get("PYTHONPATH")) if p))
    mp.syspath_prepend(str(HERE))
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    worker = c.add_node(num_cpus=1)
    c.wait_for_nodes()
    try:
        yield c, worker
    finally:
        ray.shutdown()
        c.shutdown()
        mp.undo()


@pytest.fixture(scope="module")
def data(toy_dataset_factory):  # type: ignore[no-untyped-def]
    return toy_dataset_factory(AI, n=(64, 32, 32))


def _grid(data, **kw):  # type: ignore[no-untyped-def]
    models: dict = {}
    grid = run_grid(
        data, [AI], base_config=FAST, include_specialists=False, threads=1, on_model=models.__setitem__, **kw
    )
    return grid, {k: weights_sha256(m) for k, m in models.items()}


def test_ray_gives_the_inline_grid_bit_for_bit(cluster, data, tmp_path) -> None:  # type: ignore[no-untyped-def]
    c, _ = cluster
    kw = {
        "methods": ["supervised", "contrastive"],
        "interventions": ["none", "masd+wiseft"],
        "wiseft_alphas": [0.0, 1.0],
    }
    inline, inline_w = _grid(data, **kw)
    remote, remote_w = _grid(data, executor="ray", ray_address=c.address, store=tmp_path / "s", **kw)
    assert remote.scores == inline.scores
    assert remote_w == inline_w
    assert remote.meta["wiseft_alpha"] == inline.meta["wiseft_alpha"]
    sweep = remote.meta["sweep"]
    assert (sweep["executor"], sweep["threads"], sweep["jobs"], sweep["ran"], sweep["failed"]) == (
        "ray",
        1,
        7,
        7,
        0,
    )
    assert len(list((tmp_path / "s" / "jobs").glob("*/result.json"))) == 7  # written by the Ray workers


def test_a_removed_node_loses_its_job_and_the_sweep_still_completes(cluster, data, tmp_path) -> None:  # type: ignore[no-untyped-def]
    c, worker = cluster
    gate = tmp_path / "gate"
    gate.mkdir()
    factory = import_factory(FactoryRef("sweep_user_code:build", {"gate": str(gate)}), allow_import=True)
    kw = {"interventions": ["none", "moddrop"]}  # two independent jobs: one per node (SPREAD)
    box: dict = {}

    def sweep() -> None:
        try:
            box["grid"] = _grid(data, executor="ray", ray_address=c.address, model_factory=factory, **kw)
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=sweep, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    on_worker = []
    while not on_worker and time.monotonic() < deadline and thread.is_alive():
        on_worker = [p for p in gate.glob("started-*") if p.read_text() == worker.node_id]
        time.sleep(0.1)
    assert on_worker, (
        f"no job started on the worker node within 60 s: {[p.read_text() for p in gate.glob('*')]}"
    )
    c.remove_node(worker, allow_graceful=False)  # the node and the job on it are gone
    (gate / "release").touch()
    thread.join(timeout=120)
    assert not thread.is_alive(), "the sweep did not finish within 120 s of the node removal"
    assert "error" not in box, box.get("error")
    grid, weights = box["grid"]
    assert grid.meta["sweep"]["retries"] >= 1
    assert grid.meta["sweep"]["failed"] == 0
    reference, ref_weights = _grid(data, **kw)
    assert grid.scores == reference.scores
    assert weights == ref_weights
