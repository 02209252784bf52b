"""Sets of modalities: every subset, a cell's scenario, and the ``audio+image`` text form (pure functions).

Shared by the robustness grid and WiSE-FT, which both import from here (one-way), not from each other.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence

from edgefuse.errors import ContractError

__all__ = ["format_set", "parse_sets", "scenario", "subsets"]


def subsets(modalities: Sequence[str]) -> list[tuple[str, ...]]:
    """Every non-empty subset of ``modalities``, largest first, in the given order within a subset."""
    out: list[tuple[str, ...]] = []
    for k in range(len(modalities), 0, -1):
        out += list(itertools.combinations(modalities, k))
    return out


def scenario(train: Iterable[str], test: Iterable[str]) -> str:
    """Label a cell: ``same`` (T = S), ``missing`` (T ⊊ S), ``added`` (T ⊋ S) or ``transfer``."""
    s, t = set(train), set(test)
    if s == t:
        return "same"
    if t < s:
        return "missing"
    if t > s:
        return "added"
    return "transfer"


def format_set(names: Iterable[str]) -> str:
    """``('audio', 'image') -> 'audio+image'``."""
    return "+".join(names)


def parse_sets(text: str, known: Sequence[str]) -> list[tuple[str, ...]]:
    """Parse ``"audio+image,audio"`` into modality tuples (in ``known`` order), validating every name.

    Raises:
        ContractError: For an empty set, an unknown modality (with the closest match) or a duplicate.
    """
    from edgefuse.errors import did_you_mean

    out: list[tuple[str, ...]] = []
    for chunk in text.split(","):
        names = [n.strip() for n in chunk.split("+") if n.strip()]
        if not names:
            raise ContractError(f"empty modality set in {text!r}; write sets like 'audio+image,audio'")
        for n in names:
            if n not in known:
                raise ContractError(
                    f"unknown modality {n!r} in {text!r}; known: {list(known)}{did_you_mean(n, known)}"
                )
        ordered = tuple(n for n in known if n in names)
        if ordered in out:
            raise ContractError(f"modality set {format_set(ordered)!r} is given twice in {text!r}")
        out.append(ordered)
    return out
