"""Fuzz the C++ fusion kernel (``edgefuse._fusion.fuse`` / ``fuse_with_counts``) with hostile input.

Each call draws random shapes (B, M, D incl. 0), list or stacked embeddings, None entries, masks (bool,
uint8, Fortran-ordered, negative strides, None), fusion weights (M,) or per row (B, M) (zeros included;
C, Fortran, reversed or broadcast layouts), strided / negative-stride / broadcast views, extreme but
valid values (up to float32's max, eps = FLT_MIN...), and then applies up to two mutations from a
catalogue of hostile inputs (bad dtypes, shapes, alignment, NaN in gamma, negative / NaN / denormal or
overflowing weights, eps that is 0 in float32, str / bool / huge threads, out= overlapping an input, ...).

Every call must either

* raise ``FusionInputError`` / ``FusionTypeError`` -- exactly when a mutation made the input invalid --
  with a message holding the fragment that mutation expects; or
* return outputs that contain no NaN, agree with a float64 evaluation of the contract within a float32
  error bound (and with :func:`edgefuse.fusion.fuse_reference` wherever that reference is finite), and
  counts equal to the number of modalities used per row (present and weighted > 0). Absent and
  0-weighted data is poisoned with NaN, so a read of it shows up as NaN.

Run it on the normal build (``python tests/security/fuzz_kernel.py --calls 2000``) or, as ``make
sanitize`` does, on an AddressSanitizer + UBSan build of the kernel (``--write-shadow DIR`` writes the
``sitecustomize.py`` that makes ``edgefuse._fusion`` load from ``$EDGEFUSE_FUSION_SO``; ``--expect-kernel
DIR`` checks that the kernel under test is the one from DIR).
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

F32 = np.float32
FMAX = float(np.finfo(F32).max)
TINY = float(np.finfo(F32).tiny)
U = 2.0**-24  # float32 unit roundoff
DENORM = 2.0**-149  # float32's smallest denormal

SHADOW_SITECUSTOMIZE = '''"""Written by `make sanitize` (tests/security/fuzz_kernel.py --write-shadow).

For this run only: `edgefuse._fusion` is loaded from $EDGEFUSE_FUSION_SO (the sanitizer build) instead of
the installed extension. Nothing else changes.
"""
import importlib.util as _util
import os as _os
import sys as _sys


class _ShadowFusion:
    @staticmethod
    def find_spec(name, path=None, target=None):
        so = _os.environ.get("EDGEFUSE_FUSION_SO")
        if name == "edgefuse._fusion" and so:
            return _util.spec_from_file_location(name, so)
        return None


_sys.meta_path.insert(0, _ShadowFusion)
'''


# --- one case ------------------------------------------------------------------------------------------


@dataclass
class Case:
    """The arguments of one call and what the oracle expects from it."""

    embeddings: Any
    mask: Any = None
    weights: Any = None
    gamma: Any = None
    beta: Any = None
    eps: Any = 1e-5
    threads: Any = 1
    out: Any = None
    # Ground truth, taken before any mutation made the input invalid.
    present: np.ndarray | None = None  # (B, M) bool
    wzero: np.ndarray | None = None  # (B, M) bool: weighted 0 when drawn (that data is poisoned too)
    rows: list[np.ndarray | None] = field(default_factory=list)  # per modality (B, D) copies, or None
    dim: int = 0
    # Expected errors: (error class name, message fragment) per invalidating mutation.
    errors: list[tuple[str, str]] = field(default_factory=list)
    mutated: set[str] = field(default_factory=set)  # arguments a mutation replaced

    def kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {"mask": self.mask, "weights": self.weights, "gamma": self.gamma}
        kw.update(beta=self.beta, eps=self.eps, threads=self.threads)
        if self.out is not None:
            kw["out"] = self.out
        return kw


def _values(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Finite float32 values at a random scale, sometimes extreme, sometimes constant rows."""
    kind = rng.integers(0, 10)
    if kind == 0:  # constant rows: variance 0 (or rounding noise)
        return np.broadcast_to(rng.standard_normal((*shape[:-1], 1)), shape).astype(F32)
    scale = float(rng.choice([1.0, 1.0, 1.0, 1e-30, 1e-19, 1e-3, 1e3, 1e19, 1e30, 1e37, FMAX]))
    v = rng.standard_normal(shape) * scale
    return np.clip(v, -FMAX, FMAX).astype(F32)


def _layout(rng: np.random.Generator, data: np.ndarray) -> np.ndarray:
    """Return a view holding ``data`` (B, D): contiguous, row-strided, reversed, offset, or broadcast."""
    b, d = data.shape
    kind = rng.integers(0, 6)
    if kind == 0 or b == 0:
        return data.copy()
    if kind == 1:  # every other row of a bigger, wider array
        big = np.full((2 * b, d + 3), np.nan, F32)
        big[::2, 2 : 2 + d] = data
        return big[::2, 2 : 2 + d]
    if kind == 2:  # negative row stride
        return data[::-1].copy()[::-1]
    if kind == 3:  # negative stride with holes
        big = np.full((2 * b, d), np.nan, F32)
        big[::2] = data[::-1]
        return big[::2][::-1]
    if kind == 4 and (data == data[:1]).all():  # identical rows: a stride-0 broadcast view
        return np.broadcast_to(data[:1], data.shape)
    return np.asfortranarray(data) if d == 1 else data.copy()


def draw_case(rng: np.random.Generator) -> Case:
    """A valid call with random shapes and layouts, then up to two mutations (see :data:`MUTATIONS`)."""
    b = int(rng.choice([0, 1, 1, 2, 3, 5, 8, 17, 33]))
    m = int(rng.integers(1, 6))
    d = int(rng.choice([0, 1, 2, 3, 7, 8, 16, 31, 64]))
    present = rng.random((b, m)) < rng.choice([0.3, 0.7, 1.0])
    none = rng.random(m) < 0.2
    if none.all():
        none[rng.integers(0, m)] = False
    present[:, none] = False
    rows: list[np.ndarray | None] = []
    for j in range(m):
        rows.append(None if none[j] else _values(rng, (b, d)))
    case = Case(embeddings=None, present=present, rows=rows, dim=d)
    case.weights = _draw_weights(rng, b, m)
    case.wzero = (
        np.zeros((b, m), bool)
        if case.weights is None
        else np.broadcast_to(np.asarray(case.weights) == 0, (b, m)).copy()
    )
    unused = ~present | case.wzero  # data never to be read: poisoned with NaN

    # Embeddings: a list with None entries, or one stacked (B, M, D) array (possibly M-reversed).
    stacked = not none.any() and rng.random() < 0.25
    if stacked:
        s = np.stack(rows, axis=1)  # type: ignore[arg-type]
        poisoned = s.copy()
        poisoned[unused] = np.nan  # absent or 0-weighted (row, modality) data must never be read
        if rng.random() < 0.5:
            case.embeddings = poisoned
        else:
            case.embeddings = np.ascontiguousarray(poisoned[:, ::-1])[:, ::-1]
    else:
        entries: list[np.ndarray | None] = []
        for j, r in enumerate(rows):
            if r is None:
                entries.append(None)
                continue
            poisoned = r.copy()
            poisoned[unused[:, j]] = np.nan
            view = _layout(rng, poisoned) if not unused[:, j].any() else _layout_poisoned(rng, poisoned)
            entries.append(view)
        case.embeddings = entries

    # Mask: needed whenever a non-None modality is absent in some row.
    full = present[:, ~none].all() if b else True
    if not full or rng.random() < 0.5:
        mk = present.astype(np.bool_ if rng.random() < 0.5 else np.uint8)
        layout = rng.integers(0, 3)
        if layout == 1:
            mk = np.asfortranarray(mk)
        elif layout == 2:
            mk = mk[::-1].copy()[::-1]
        case.mask = mk
    if rng.random() < 0.5:
        case.gamma = _values(rng, (d,)) if rng.random() < 0.2 else rng.standard_normal(d).astype(F32)
    if rng.random() < 0.5:
        case.beta = rng.standard_normal(d).astype(F32)
    case.eps = _pick(rng, [1e-5, 1e-5, 1e-3, 1.0, TINY, 2e-38, 3.0e38, np.float32(1e-5), np.float64(1e-3), 1])
    case.threads = _pick(rng, [1, 1, 1, 2, 3, 8, 1024, np.int64(2), np.int32(4)])
    if rng.random() < 0.2:
        case.out = np.full((b, d), np.nan, F32)

    # In catalogue order (mut_out last: it must see the arguments the others replaced).
    for mutate in sorted(rng.choice(len(MUTATIONS), size=int(_pick(rng, [0, 0, 1, 1, 2])), replace=False)):
        MUTATIONS[int(mutate)](rng, case)
    return case


def _pick(rng: np.random.Generator, options: list[Any]) -> Any:
    """One of ``options`` as it is (``rng.choice`` would turn a mixed list into one NumPy dtype)."""
    return options[int(rng.integers(0, len(options)))]


def _draw_weights(rng: np.random.Generator, b: int, m: int) -> np.ndarray | None:
    """None, (M,) or (B, M) valid fusion weights at a random scale, zeros included, in a random layout."""
    kind = rng.integers(0, 4)
    if kind == 0:
        return None
    scale = float(rng.choice([1.0, 1e-30, 1e30]))
    shape = (m,) if kind == 1 else (b, m)
    w = (rng.random(shape) * scale + 1e-37).astype(F32)
    if rng.random() < 0.5:
        w[rng.random(shape) < 0.3] = 0  # a weight of 0 acts as absent
        if len(shape) == 2 and b and rng.random() < 0.3:
            w[rng.integers(0, b)] = 0  # a row whose weights are all 0: an all-absent row
    if len(shape) == 1:
        return w
    layout = rng.integers(0, 5)
    if layout == 1:
        return np.asfortranarray(w)  # last axis strided: the bindings copy it
    if layout == 2:
        return w[::-1].copy()[::-1]  # negative row stride
    if layout == 3:  # row stride 2 * (m + 1)
        big = np.full((2 * b, m + 1), np.nan, F32)
        big[::2, :m] = w
        return big[::2, :m]
    if layout == 4 and b:
        return np.broadcast_to(w[0], (b, m))  # row stride 0 (read-only)
    return w


def _layout_poisoned(rng: np.random.Generator, data: np.ndarray) -> np.ndarray:
    """Like :func:`_layout` but never a broadcast (the NaN rows must stay where they are)."""
    view = _layout(rng, data)
    return data.copy() if view.strides[0] == 0 else view


# --- mutations: each makes the input hostile; most make it invalid -------------------------------------


def _error(case: Case, cls: str, fragment: str) -> None:
    case.errors.append((cls, fragment))


def _mark(case: Case, name: str) -> None:
    case.mutated.add(name)


def _list_entries(case: Case) -> list[int]:
    if not isinstance(case.embeddings, list):
        return []
    return [j for j, e in enumerate(case.embeddings) if e is not None]


def mut_eps(rng: np.random.Generator, case: Case) -> None:
    value, cls, frag = [
        (1e-50, "FusionInputError", "eps"),
        (1e-45, "FusionInputError", "denormal"),
        (1e-39, "FusionInputError", "denormal"),
        (1e39, "FusionInputError", "inf in float32"),
        (0.0, "FusionInputError", "eps"),
        (-1e-5, "FusionInputError", "eps"),
        (float("nan"), "FusionInputError", "eps"),
        (float("inf"), "FusionInputError", "eps"),
        (10**400, "FusionInputError", "too large"),
        ("1e-5", "FusionTypeError", "eps must be a float"),
        (True, "FusionTypeError", "bool"),
        (np.False_, "FusionTypeError", "bool"),
        (None, "FusionTypeError", "eps must be a float"),
        ([1e-5], "FusionTypeError", "eps must be a float"),
        (1j, "FusionTypeError", "eps must be a float"),
    ][rng.integers(0, 15)]
    _mark(case, "eps")
    case.eps = value
    _error(case, cls, frag)


def mut_threads(rng: np.random.Generator, case: Case) -> None:
    value, cls, frag = [
        (0, "FusionInputError", "threads = 0"),
        (-1, "FusionInputError", "threads = -1"),
        (1025, "FusionInputError", "[1, 1024]"),
        (2**31, "FusionInputError", "[1, 1024]"),
        (2**40, "FusionInputError", "[1, 1024]"),
        (2**100, "FusionInputError", "[1, 1024]"),
        (True, "FusionTypeError", "bool"),
        (2.0, "FusionTypeError", "threads must be an int"),
        ("2", "FusionTypeError", "threads must be an int"),
        (None, "FusionTypeError", "threads must be an int"),
    ][rng.integers(0, 10)]
    _mark(case, "threads")
    case.threads = value
    _error(case, cls, frag)


def mut_weights(rng: np.random.Generator, case: Case) -> None:
    b, m = case.present.shape  # type: ignore[union-attr]
    rows = case.weights is not None and np.ndim(case.weights) == 2 and rng.random() < 0.8
    shape = (b, m) if rows else (m,)
    w = rng.random(shape).astype(F32) + F32(0.5)
    kind = rng.integers(0, 8)
    _mark(case, "weights")
    j = int(rng.integers(0, m))
    i = int(rng.integers(0, b)) if b else 0
    where = f"weights[{i}, {j}]" if rows else f"weights[{j}]"
    n_errors = len(case.errors)
    if kind == 0:
        if rows and b:
            w[i, j] = 1e-40
            _error(case, "FusionInputError", f"{where} = 1e-40 is denormal")
        elif not rows:
            w[j] = 1e-40
            _error(case, "FusionInputError", "denormal")
    elif kind == 1:
        w[...] = 3e38
        if m >= 2 and (not rows or b):
            _error(case, "FusionInputError", "sum to inf")
    elif kind == 2:
        value = _pick(rng, [0.0, -0.0, -1.0, np.nan, np.inf, -np.inf])
        if rows and b:
            w[i, j] = value
        elif not rows:
            w[j] = value
        if value != 0 and (not rows or b):  # 0 (and -0.0) is valid: that modality is ignored
            _error(case, "FusionInputError", f"{where} =")
    elif kind == 3:
        w = w.astype(np.float64)  # type: ignore[assignment]
        _error(case, "FusionInputError", "weights has dtype float64")
    elif kind == 4:
        w = np.ones((b + 1, m) if rows else (m + 1,), F32)
        _error(case, "FusionInputError", "weights must have shape")
    elif kind == 5:  # valid extremes: the ratio is all that matters
        w[...] = TINY
        w[..., j] = FMAX / m
    elif kind == 6:
        w = np.repeat(w, 2, axis=-1)[..., ::2]  # last axis strided
        if m > 1 and not rows:
            _error(case, "FusionInputError", "weights is not contiguous")  # (B, M): copied, valid
    else:
        w = w.tolist()  # type: ignore[assignment]
        _error(case, "FusionTypeError", "weights must be a numpy.ndarray")
    if len(case.errors) == n_errors and isinstance(w, np.ndarray):
        # Valid: 0 where the drawn weights were 0 (the data there is NaN and must stay unread).
        if rows:
            w[case.wzero] = 0  # type: ignore[index]
        else:  # (M,) replacing (B, M): 0 for every modality weighted 0 in some row
            w[case.wzero.any(axis=0)] = 0  # type: ignore[union-attr]
    case.weights = w


def _vector(rng: np.random.Generator, case: Case, name: str) -> None:
    d = case.dim
    v = rng.standard_normal(d).astype(F32)
    kind = rng.integers(0, 5)
    _mark(case, name)
    if kind == 0 and d:
        i = int(rng.integers(0, d))
        v[i] = rng.choice([np.nan, np.inf, -np.inf])
        _error(case, "FusionInputError", f"{name}[{i}] =")
    elif kind == 1:
        v = np.ones(d + 1, F32)
        _error(case, "FusionInputError", f"{name} must have shape")
    elif kind == 2 and d:
        raw = bytearray(4 * d + 4)
        v = np.frombuffer(raw, F32, count=d, offset=1)
        _error(case, "FusionInputError", "not aligned")
    elif kind == 3:  # valid but huge: the output may saturate to +-Inf, never NaN
        v = np.full(d, _pick(rng, [3e38, -3e38, 1e30]), F32)
    else:
        v = v.astype(np.float16)  # type: ignore[assignment]
        _error(case, "FusionInputError", "dtype float16")
    setattr(case, name, v)


def mut_gamma(rng: np.random.Generator, case: Case) -> None:
    _vector(rng, case, "gamma")


def mut_beta(rng: np.random.Generator, case: Case) -> None:
    _vector(rng, case, "beta")


def mut_mask(rng: np.random.Generator, case: Case) -> None:
    b, m = case.present.shape  # type: ignore[union-attr]
    kind = rng.integers(0, 5)
    mk = case.present.astype(np.uint8)  # type: ignore[union-attr]
    nones = [j for j, r in enumerate(case.rows) if r is None]
    _mark(case, "mask")
    if kind == 0 and b:
        mk[rng.integers(0, b), rng.integers(0, m)] = rng.integers(2, 256)
        _error(case, "FusionInputError", "a uint8 mask must hold only 0")
    elif kind == 1 and b and nones:
        mk[rng.integers(0, b), nones[0]] = 1
        _error(case, "FusionInputError", "says present")
    elif kind == 2:
        mk = np.ones((b + 1, m), bool)  # type: ignore[assignment]
        _error(case, "FusionInputError", "mask must have shape")
    elif kind == 3:
        mk = mk.astype(np.int32)  # type: ignore[assignment]
        _error(case, "FusionInputError", "mask has dtype int32")
    else:
        mk = mk.tolist()  # type: ignore[assignment]
        _error(case, "FusionTypeError", "mask must be a numpy.ndarray")
    case.mask = mk


def mut_embeddings(rng: np.random.Generator, case: Case) -> None:
    entries = _list_entries(case)
    kind = rng.integers(0, 6)
    _mark(case, "embeddings")
    if not entries or kind == 0:
        case.embeddings = [np.zeros((1, 1), F32)] * 65
        _error(case, "FusionInputError", "at most 64")
        return
    j = entries[int(rng.integers(0, len(entries)))]
    e = case.embeddings[j]
    if kind == 1:
        case.embeddings[j] = e.astype(np.float64)
        _error(case, "FusionInputError", f"embeddings[{j}] has dtype float64")
    elif kind == 2 and e.shape[1] > 1 and e.shape[0] > 0:
        case.embeddings[j] = np.repeat(np.ascontiguousarray(e), 2, axis=1)[:, ::2]
        _error(case, "FusionInputError", "not contiguous along its last axis")
    elif kind == 3 and e.size:
        raw = bytearray(e.nbytes + 4)
        un = np.frombuffer(raw, F32, count=e.size, offset=1).reshape(e.shape)
        case.embeddings[j] = un
        _error(case, "FusionInputError", "not aligned")
    elif kind == 4:
        case.embeddings[j] = np.zeros((*e.shape, 1), F32)
        _error(case, "FusionInputError", f"embeddings[{j}] must have shape (B, D)")
    else:
        case.embeddings = tuple(case.embeddings)  # a tuple is a sequence too: valid


def mut_out(rng: np.random.Generator, case: Case) -> None:
    """out= as a C-contiguous view into one buffer with an input: overlapping (70%) or disjoint."""
    if "out" in case.mutated:
        return
    _mark(case, "out")
    b, d = case.present.shape[0], case.dim  # type: ignore[union-attr]
    n = b * d
    if n == 0:
        kind = rng.integers(0, 3)
        if kind == 0:
            case.out = np.empty((b, d), np.float64)
            _error(case, "FusionInputError", "out has dtype float64")
        elif kind == 1:
            case.out = np.empty((b + 1, d), F32)
            _error(case, "FusionInputError", "out must have shape")
        else:
            case.out = np.empty((b, d), F32)  # empty: nothing to overlap
        return
    entries = [] if "embeddings" in case.mutated else _list_entries(case)
    targets = [t for t in ("gamma", "beta", "weights", "mask") if t not in case.mutated]
    targets += ["embeddings"] * (2 if entries else 0)
    if not targets:
        return
    target = _pick(rng, targets)
    overlap = rng.random() < 0.7
    m = len(case.rows)
    if target == "embeddings":
        j = entries[int(rng.integers(0, len(entries)))]
        # mem holds the input with its rows reversed (a negative stride), then out: overlapping or not.
        mem = np.full(2 * n + d, np.nan, F32)
        view = mem[:n].reshape(b, d)[::-1]
        view[...] = case.embeddings[j]
        start = int(rng.integers(0, n)) if overlap else n + int(rng.integers(0, d + 1))
        case.embeddings[j] = view
        case.out = mem[start : start + n].reshape(b, d)
        if overlap:
            _error(case, "FusionInputError", f"out overlaps an input array (embeddings[{j}])")
    elif target in ("gamma", "beta"):
        mem = np.full(n + 2 * d, np.nan, F32)
        vec = getattr(case, target)
        start = int(rng.integers(0, n + d)) if overlap else n + int(rng.integers(0, d + 1))
        mem[start : start + d] = rng.standard_normal(d).astype(F32) if vec is None else vec
        setattr(case, target, mem[start : start + d])
        case.out = mem[:n].reshape(b, d)
        if start < n:
            _error(case, "FusionInputError", f"out overlaps an input array ({target})")
    elif target == "weights":
        shape = (m,) if case.weights is None else np.shape(case.weights)
        k = int(np.prod(shape))
        mem = np.ones(n + 2 * k, F32)
        start = int(rng.integers(0, n)) if overlap else n
        if case.weights is not None:
            mem[start : start + k] = np.asarray(case.weights).reshape(-1)
        case.weights = mem[start : start + k].reshape(shape)
        case.out = mem[:n].reshape(b, d)
        if start < n:
            _error(case, "FusionInputError", "out overlaps an input array (weights)")
    else:
        mem = np.zeros(n + b * m, F32)
        raw = mem.view(np.uint8)
        start = int(rng.integers(0, 4 * n)) if overlap else 4 * n
        raw[start : start + b * m] = case.present.reshape(-1)  # type: ignore[union-attr]
        case.mask = raw[start : start + b * m].reshape(b, m)
        case.out = mem[:n].reshape(b, d)
        if start < 4 * n:
            _error(case, "FusionInputError", "out overlaps an input array (mask)")


MUTATIONS: list[Callable[[np.random.Generator, Case], None]] = [
    mut_eps,
    mut_threads,
    mut_weights,
    mut_gamma,
    mut_beta,
    mut_mask,
    mut_embeddings,
    mut_out,
    mut_out,  # aliasing is the riskiest: drawn twice as often
]


# --- oracle ---------------------------------------------------------------------------------------------


def _matches(exc: Exception, cls: str, fragment: str) -> bool:
    from edgefuse import errors

    return isinstance(exc, getattr(errors, cls)) and fragment.lower() in str(exc).lower()


def used_mask(case: Case) -> np.ndarray:
    """(B, M) bool: present and weighted > 0 (a weight of 0 acts as absent), for a valid call."""
    b, m = case.present.shape  # type: ignore[union-attr]
    w = np.ones(m, F32) if case.weights is None else np.asarray(case.weights, F32)
    return case.present & np.broadcast_to(w > 0, (b, m))  # type: ignore[operator]


def reference64(case: Case) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The contract in float64: expected output, LayerNorm * gamma, and the float32 error bound."""
    present = used_mask(case)
    b, m = present.shape
    d = case.dim
    w32 = np.ones(m, F32) if case.weights is None else np.asarray(case.weights, F32)
    w = np.broadcast_to(w32.astype(np.float64), (b, m))
    eps = float(np.float32(case.eps))
    gamma = np.ones(d) if case.gamma is None else np.asarray(case.gamma, np.float64)
    beta = np.zeros(d) if case.beta is None else np.asarray(case.beta, np.float64)
    out = np.tile(beta, (b, 1))
    prod = np.zeros((b, d))
    tol = np.zeros((b, d))
    for i in range(b):
        ks = [k for k in range(m) if present[i, k]]  # type: ignore[index]
        if not ks or d == 0:
            continue
        ws = np.array([w[i, k] for k in ks])
        x = sum((ws[t] / ws.sum()) * case.rows[k][i].astype(np.float64) for t, k in enumerate(ks))  # type: ignore[index]
        r = max(float(np.abs(case.rows[k][i]).max()) for k in ks)  # type: ignore[index]
        c = x - x.mean()
        var = float((c * c).mean())
        rstd = 1.0 / np.sqrt(var + eps)
        v = c * rstd
        prod[i] = v * gamma
        out[i] = prod[i] + beta
        # float32 error model: fused values and the mean are off by ~(D + n) u r, the variance by that
        # relative to its scale plus the denormal quantum; v by err_c * rstd (1 + |v|) + D u |v|, and v
        # itself is a float32 (below 2^-126 it lies on the denormal grid: e.g. 1e-30 / sqrt(eps = 3e38)
        # is 0 in float32, which a gamma of 1e37 turns into an absolute error of ~1e-13).
        err_c = (d + len(ks) + 4) * U * r + (d + len(ks)) * DENORM
        err_v = (
            4 * err_c * rstd * (1 + np.abs(v))
            + 4 * (d + 4) * U * np.abs(v)
            + 4 * d * DENORM / (var + eps) * np.abs(v)
            + 2 * DENORM
        )
        tol[i] = np.abs(gamma) * err_v + 4 * U * (np.abs(v * gamma) + np.abs(beta)) + 1e-30
    return out, prod, tol


@dataclass
class Stats:
    """What the fuzz saw."""

    calls: int = 0
    ok: int = 0
    refused: int = 0
    saturated: int = 0
    failures: list[str] = field(default_factory=list)


def check(
    case: Case, fn_name: str, fusion: Any, fuse_reference: Callable[..., Any], stats: Stats, index: int
) -> None:
    """Run one call and compare it with the oracle; record a failure instead of raising."""
    from edgefuse.errors import FusionInputError, FusionTypeError

    stats.calls += 1
    fn = getattr(fusion, fn_name)
    where = f"call {index} ({fn_name}; mutations expect {case.errors or 'success'})"
    try:
        result = fn(case.embeddings, **case.kwargs())
    except (FusionInputError, FusionTypeError) as exc:
        msg = str(exc)
        if not case.errors:
            stats.failures.append(f"{where}: valid input refused: {type(exc).__name__}: {msg}")
            return
        if "incompatible function arguments" in msg:
            stats.failures.append(f"{where}: pybind's generic error escaped: {msg}")
            return
        if not any(_matches(exc, cls, frag) for cls, frag in case.errors):
            stats.failures.append(f"{where}: unexpected {type(exc).__name__}: {msg}")
            return
        stats.refused += 1
        return
    except Exception as exc:
        stats.failures.append(f"{where}: a non-EdgeFuse {type(exc).__name__} escaped: {exc}")
        return
    if case.errors:
        stats.failures.append(f"{where}: hostile input accepted")
        return
    out, counts = result if fn_name == "fuse_with_counts" else (result, None)
    b, d = case.present.shape[0], case.dim  # type: ignore[union-attr]
    if out.shape != (b, d) or out.dtype != F32:
        stats.failures.append(f"{where}: output shape {out.shape} dtype {out.dtype}")
        return
    if case.out is not None and not np.shares_memory(out, case.out) and out.size:
        stats.failures.append(f"{where}: out= was not written in place")
    used = used_mask(case)
    if counts is not None and not np.array_equal(counts, used.sum(axis=1)):
        stats.failures.append(f"{where}: counts {counts} != {used.sum(axis=1)} (present and weighted > 0)")
    if np.isnan(out).any():
        stats.failures.append(
            f"{where}: NaN in the output of a valid call at {np.argwhere(np.isnan(out))[:3]}"
        )
        return
    ref, prod, tol = reference64(case)
    # Where LayerNorm * gamma or the sum with beta reaches float32's range, +-Inf is the documented
    # result (saturation), never NaN; elsewhere the output is finite and within the error bound.
    in_range = (np.abs(ref) + tol < FMAX) & (np.abs(prod) + tol < FMAX)
    close = np.abs(out - ref) <= tol
    if (~in_range).any():
        stats.saturated += 1
    bad = ~close & (in_range | ~np.isinf(out))
    if bad.any():
        i, j = np.argwhere(bad)[0]
        stats.failures.append(
            f"{where}: out[{i}, {j}] = {out[i, j]!r}, float64 contract {ref[i, j]!r} (bound {tol[i, j]:.3g})"
        )
        return
    # The NumPy reference agrees wherever its own float32 statistics cannot overflow (|values| well below
    # sqrt(FLT_MAX / D) ~ 1e19: beyond that it silently returns beta, the kernel switches to double).
    if b == 0 or d == 0:
        stats.ok += 1
        return
    kw = {k: v for k, v in case.kwargs().items() if k in ("weights", "gamma", "beta")}
    with np.errstate(all="ignore"):
        ref32, _ = fuse_reference(case.rows, case.present, eps=float(np.float32(case.eps)), dim=d, **kw)
    safe_rows = np.zeros(b, bool)
    for i in range(b):
        vals = [np.abs(r[i]).max() for k, r in enumerate(case.rows) if r is not None and used[i, k]]
        safe_rows[i] = not vals or max(vals) < 1e17 / np.sqrt(d)
    finite = np.isfinite(ref32) & in_range & safe_rows[:, None]
    bad32 = finite & ~(np.abs(out - ref32) <= 2 * tol + 1e-6 * np.abs(ref32))
    if bad32.any():
        i, j = np.argwhere(bad32)[0]
        stats.failures.append(f"{where}: out[{i}, {j}] = {out[i, j]!r}, fuse_reference {ref32[i, j]!r}")
        return
    stats.ok += 1


def run(calls: int = 10_000, seed: int = 0, verbose: bool = False) -> Stats:
    """Run ``calls`` fuzz calls (alternating fuse / fuse_with_counts); return what happened."""
    from edgefuse import _fusion
    from edgefuse.fusion import fuse_reference

    rng = np.random.default_rng(seed)
    stats = Stats()
    for i in range(calls):
        case = draw_case(rng)
        fn_name = "fuse" if i % 2 == 0 else "fuse_with_counts"
        try:
            with np.errstate(all="ignore"):
                check(case, fn_name, _fusion, fuse_reference, stats, i)
        except Exception:  # a bug of the fuzzer itself: report it, keep going
            stats.failures.append(f"call {i}: fuzzer error\n{traceback.format_exc()}")
        if verbose and stats.failures:
            print(stats.failures[-1], file=sys.stderr)
    return stats


def main(argv: list[str] | None = None) -> int:
    """Command line: fuzz the kernel; exit 1 on any failure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=10_000, help="number of kernel calls (default 10000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--write-shadow", type=Path, metavar="DIR", help="write DIR/sitecustomize.py and exit"
    )
    parser.add_argument(
        "--expect-kernel", type=Path, metavar="DIR", help="fail unless _fusion loads from DIR"
    )
    args = parser.parse_args(argv)
    if args.write_shadow:
        args.write_shadow.mkdir(parents=True, exist_ok=True)
        (args.write_shadow / "sitecustomize.py").write_text(SHADOW_SITECUSTOMIZE)
        return 0
    from edgefuse import _fusion

    origin = Path(_fusion.__file__).resolve()
    print(f"kernel under test: {origin}")
    if args.expect_kernel and args.expect_kernel.resolve() not in origin.parents:
        print(f"error: the kernel was not loaded from {args.expect_kernel}", file=sys.stderr)
        return 1
    t0 = time.perf_counter()
    stats = run(args.calls, args.seed)
    dt = time.perf_counter() - t0
    print(
        f"{stats.calls} calls in {dt:.1f} s: {stats.ok} matched the reference, {stats.refused} refused with the "
        f"expected EdgeFuse error, {stats.saturated} saturated to +-Inf (huge gamma/beta), "
        f"{len(stats.failures)} failures"
    )
    for failure in stats.failures[:20]:
        print("FAIL", failure if len(failure) < 800 else failure[:800] + " [...]", file=sys.stderr)
    return 1 if stats.failures else 0


if __name__ == "__main__":
    sys.exit(main())
