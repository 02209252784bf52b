"""Hostile arguments to edgefuse.load and Session.predict: typed errors, never a generic one or NaN logits."""

from __future__ import annotations

from pathlib import Path

import pytest
from _harness import expect_error, expect_ok

pytestmark = pytest.mark.backend("onnxruntime")

SETUP = (
    "import numpy as np, edgefuse\n"
    "s = edgefuse.load({folder!r})\n"
    "A = np.ones((2, 1, 8, 12), np.float32); I = np.ones((2, 1, 8, 8), np.float32)\n"
)

CASES = {
    "int-key": ("s.predict({1: A})", "InputError", "modality names"),
    "list-input": ("s.predict({'audio': A.tolist()})", "InputError", "np.ndarray"),
    "object-dtype": ("s.predict({'audio': A.astype(object)})", "InputError", "dtype object"),
    "float64": ("s.predict({'audio': A.astype(np.float64)})", "InputError", "never casts silently"),
    "zero-dim": ("s.predict({'audio': np.float32(1)})", "InputError", "np.ndarray"),
    "nan-present": ("s.predict({'audio': A * np.nan})", "InputError", "NaN or Inf"),
    "mask-float": (
        "s.predict({'audio': A, 'image': I}, mask=np.ones((2, 2)))",
        "InputError",
        "bool or uint8",
    ),
    "mask-two": (
        "s.predict({'audio': A, 'image': I}, mask=np.full((2, 2), 2, np.uint8))",
        "InputError",
        "only 0 and 1",
    ),
    "mask-batch": ("s.predict({'audio': A, 'image': I}, mask=np.ones((3, 2), bool))", "InputError", "(2, 2)"),
    "batch-mismatch": ("s.predict({'audio': A, 'image': I[:1]})", "InputError", "different batch sizes"),
    "empty-batch": ("s.predict({'audio': A[:0]})", "InputError", "empty batch"),
    "load-int-path": ("edgefuse.load(3)", "InputError", "is given as a path"),
    "load-nul-path": ("edgefuse.load('/tmp/a\\x00b')", "InputError", "is given as a path"),
    "load-int-backend": ("edgefuse.load(FOLDER, backend=3)", "InputError", "backend must be"),
    "load-unknown-backend": ("edgefuse.load(FOLDER, backend='onnxruntim')", "InputError", "did you mean"),
    "load-threads-str": ("edgefuse.load(FOLDER, threads='2')", "InputError", "threads"),
    "load-threads-zero": ("edgefuse.load(FOLDER, threads=0)", "InputError", "threads"),
    "load-profile-int": ("edgefuse.load(FOLDER, profile=3)", "InputError", "profile must be"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_argument_gets_a_typed_error(tiny_artifact: Path, case: str) -> None:
    code, error, fragment = CASES[case]
    code = SETUP.format(folder=str(tiny_artifact)) + code.replace("FOLDER", repr(str(tiny_artifact)))
    expect_error(code, error, fragment)


def test_extreme_but_finite_inputs_give_finite_logits_or_a_typed_error(tiny_artifact: Path) -> None:
    """3e38 in every input: the logits are finite, or predict refuses with NonFiniteOutputError."""
    code = SETUP.format(folder=str(tiny_artifact)) + (
        "from edgefuse.runtime.errors import NonFiniteOutputError\n"
        "try:\n"
        "    RESULT['finite'] = bool(np.isfinite(s.predict({'audio': A * 3e38, 'image': I * -3e38}).logits).all())\n"
        "except NonFiniteOutputError:\n"
        "    RESULT['finite'] = 'refused'\n"
    )
    assert expect_ok(code).result["finite"] in (True, "refused")


def test_odd_but_valid_layouts_match_contiguous_input(tiny_artifact: Path) -> None:
    code = SETUP.format(folder=str(tiny_artifact)) + (
        "B = np.random.default_rng(0).standard_normal((2, 1, 8, 12)).astype(np.float32)\n"
        "ref = s.predict({'audio': B}).logits\n"
        "RESULT['rev'] = bool(np.array_equal(s.predict({'audio': np.ascontiguousarray(B[::-1])[::-1]}).logits, ref))\n"
        "RESULT['fortran'] = bool(np.allclose(s.predict({'audio': np.asfortranarray(B)}).logits, ref, atol=1e-6))\n"
        "B.setflags(write=False); RESULT['readonly'] = bool(np.array_equal(s.predict({'audio': B}).logits, ref))\n"
    )
    assert expect_ok(code).result == {"rev": True, "fortran": True, "readonly": True}
