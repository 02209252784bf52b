"""A user's model factory for the sweep tests, importable by reference (``sweep_user_code:build``).

It builds the reference architecture (so its models equal the default ones for a seed) and, through its
JSON keyword arguments, injects the faults the tests need in whatever process runs the job:

* ``crash_marker``: the first call anywhere creates the file and kills its own process (a worker dies
  mid-job); later calls build normally.
* ``fail_on_call``: the N-th call in this process raises (a job that fails deterministically).
* ``gate``: a folder; until ``gate/release`` exists, each call writes ``gate/started-<pid>`` (with its Ray
  node id when in a Ray worker) and waits (at most 60 s), so a test can remove a node mid-job.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

CALLS = []


def build(modalities, label_names, crash_marker=None, fail_on_call=None, gate=None):  # type: ignore[no-untyped-def]
    from edgefuse.models.contract import build_model
    from edgefuse.models.reference import reference_architecture

    CALLS.append([m.name for m in modalities])
    if fail_on_call is not None and len(CALLS) == int(fail_on_call):
        raise RuntimeError(f"deliberate failure of call {len(CALLS)}")
    if crash_marker is not None:
        try:
            os.close(os.open(crash_marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            pass
        else:
            os._exit(17)  # killed mid-job: no exception, no reply
    if gate is not None and not (Path(gate) / "release").exists():
        node = ""
        try:
            import ray

            if ray.is_initialized():
                node = ray.get_runtime_context().get_node_id()
        except ImportError:
            pass
        (Path(gate) / f"started-{os.getpid()}").write_text(node)
        deadline = time.monotonic() + 60
        while not (Path(gate) / "release").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    return build_model(reference_architecture(modalities), modalities, label_names)
