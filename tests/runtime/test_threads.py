"""Eight threads predicting concurrently on one session get exactly the serial results."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from edgefuse.runtime import load

THREADS = 8
ROUNDS = 3


def _cases(rt, modalities):  # type: ignore[no-untyped-def]
    cases = []
    for i, batch in enumerate([1, 2, 3, 5, 8, 9]):
        inputs = rt.make_inputs(batch, seed=500 + i, modalities=modalities)
        cases.append((inputs, None))
        if len(modalities) == 2:
            mask = np.random.default_rng(i).random((batch, 2)) < 0.6
            mask[~mask.any(axis=1), 0] = True
            cases.append((inputs, mask))
            cases.append(({"audio": inputs["audio"], "image": None}, None))
    return cases


def test_concurrent_predictions_equal_serial(artifact, rt) -> None:  # type: ignore[no-untyped-def]
    with load(artifact) as session:
        cases = _cases(rt, session.modalities)
        serial = [session.predict(inputs, mask).logits for inputs, mask in cases]
        start = threading.Barrier(THREADS)

        def worker(k: int) -> list[tuple[int, np.ndarray]]:
            start.wait()
            order = np.random.default_rng(k).permutation(len(cases) * ROUNDS) % len(cases)
            return [(int(i), session.predict(*cases[i]).logits) for i in order]

        with ThreadPoolExecutor(THREADS) as pool:
            results = list(pool.map(worker, range(THREADS)))
    assert sum(len(r) for r in results) == THREADS * ROUNDS * len(cases)
    for per_thread in results:
        for i, logits in per_thread:
            assert np.array_equal(logits, serial[i]), f"case {i} differs from the serial run"
