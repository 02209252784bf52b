"""Shared hypothesis draws for the kernel tests (imported as ``_cases``: pytest puts this folder on the path)."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st


def rand(rng: np.random.Generator, *shape: int) -> np.ndarray:
    """Standard normal float32 of ``shape``."""
    return rng.standard_normal(shape).astype(np.float32)


def draw_embeddings(
    draw: st.DrawFn,
) -> tuple[np.random.Generator, list[np.ndarray | None], np.ndarray, list[str], int, int, int]:
    """A seeded batch: per modality present, absent (``None``) or mixed per row, at a random scale.

    Returns ``(rng, embeddings, mask, kinds, b, m, d)`` with ``mask`` the (B, M) presence.
    """
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    b = draw(st.integers(1, 9))
    m = draw(st.integers(1, 5))
    d = draw(st.integers(1, 70))
    kinds = draw(st.lists(st.sampled_from(["present", "none", "mixed"]), min_size=m, max_size=m))
    mask = np.ones((b, m), bool)
    embeddings: list[np.ndarray | None] = []
    for j, kind in enumerate(kinds):
        if kind == "none":
            embeddings.append(None)
            mask[:, j] = False
        else:
            embeddings.append(rand(rng, b, d) * np.float32(draw(st.sampled_from([0.01, 1.0, 100.0]))))
            if kind == "mixed":
                mask[:, j] = rng.random(b) < 0.5
    return rng, embeddings, mask, kinds, b, m, d
