"""Hostile input to the C++ fusion kernel: typed EdgeFuse errors, never a crash, a hang or silent NaN.

Every case runs ``edgefuse._fusion.fuse`` / ``fuse_with_counts`` in its own interpreter (the harness:
4 GiB address-space limit, timeout), so a segfault, an abort ("terminate called without an active
exception") or a runaway allocation fails that case instead of the session. The error must be the
EdgeFuse one, naming the argument, what was given and what is allowed.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from _harness import expect_error, expect_ok

SETUP = """
import numpy as np
from edgefuse import _fusion
rng = np.random.default_rng(0)
X = rng.standard_normal((4, 8)).astype(np.float32)
Y = rng.standard_normal((4, 8)).astype(np.float32)
"""

FUNCS = ["fuse", "fuse_with_counts"]


# --- values that pass a naive check but break in float32 ------------------------------------------------

BAD_VALUES = [
    # eps becomes 0, a denormal or inf once converted to the float32 the kernel adds to the variance
    ("eps=1e-50", "FusionInputError", ("eps = 1e-50", "becomes 0 in float32", ">= 1.1754944e-38")),
    ("eps=1e-45", "FusionInputError", ("eps = 1e-45", "denormal", ">= 1.1754944e-38")),
    ("eps=1e-39", "FusionInputError", ("eps = 1e-39", "denormal")),
    ("eps=1e39", "FusionInputError", ("eps = 1e+39", "inf in float32", "<= 3.4028235e+38")),
    ("eps=10**400", "FusionInputError", ("eps = 1000", "too large")),
    ("eps=-1e-5", "FusionInputError", ("eps = -1e-05", "> 0")),
    ("eps=float('inf')", "FusionInputError", ("eps = inf", "finite")),
    # eps / threads of the wrong Python type: an EdgeFuse TypeError, not pybind's "incompatible arguments"
    ("eps='1e-5'", "FusionTypeError", ("eps must be a float > 0", "got str '1e-5'", "float(")),
    ("eps=True", "FusionTypeError", ("eps must be a float", "got bool True")),
    ("eps=np.True_", "FusionTypeError", ("eps must be a float", "bool")),
    ("eps=None", "FusionTypeError", ("eps must be a float", "NoneType")),
    ("eps=np.array([1e-5, 1e-5])", "FusionTypeError", ("eps must be a float", "ndarray")),
    ("threads=2**40", "FusionInputError", ("threads = 1099511627776", "[1, 1024]", "MAX_THREADS")),
    ("threads=2**31", "FusionInputError", ("threads = 2147483648", "[1, 1024]")),
    ("threads=10**6", "FusionInputError", ("threads = 1000000", "[1, 1024]")),
    ("threads=2**100", "FusionInputError", ("threads = 1267650600228229401496703205376", "[1, 1024]")),
    ("threads=-3", "FusionInputError", ("threads = -3", "[1, 1024]")),
    ("threads=True", "FusionTypeError", ("threads must be an int", "got bool True")),
    ("threads=2.0", "FusionTypeError", ("threads must be an int", "got float 2.0")),
    ("threads='4'", "FusionTypeError", ("threads must be an int", "got str '4'")),
    # weights: denormal in float32, or a float32 sum that overflows
    ("weights=np.array([1, 1e-40], np.float32)", "FusionInputError", ("weights[1] = 1e-40", "denormal")),
    ("weights=np.array([3e38, 3e38], np.float32)", "FusionInputError", ("weights sum to inf", "rescale")),
    ("weights=np.array([1, -0.5], np.float32)", "FusionInputError", ("weights[1] = -0.5", "finite and >= 0")),
    # per-row weights (B, M): the same checks per element, the row and column named
    ("weights=np.full((4, 2), np.nan, np.float32)", "FusionInputError", ("weights[0, 0] = nan", ">= 0")),
    (
        "weights=np.r_[np.ones(7), np.inf].astype(np.float32).reshape(4, 2)",
        "FusionInputError",
        ("weights[3, 1] = inf",),
    ),
    (
        "weights=np.r_[np.ones(5), -2, 1, 1].astype(np.float32).reshape(4, 2)",
        "FusionInputError",
        ("weights[2, 1] = -2",),
    ),
    (
        "weights=np.r_[np.ones(6), 1e-40, 1].astype(np.float32).reshape(4, 2)",
        "FusionInputError",
        ("weights[3, 0] = 1e-40", "denormal", "0 or >= 1.1754944e-38"),
    ),
    (
        "weights=np.r_[np.ones(2), 3e38, 3e38, np.ones(4)].astype(np.float32).reshape(4, 2)",
        "FusionInputError",
        ("weights[1, :] sum to inf", "rescale"),
    ),
    (
        "weights=np.ones((5, 2), np.float32)",
        "FusionInputError",
        ("weights must have shape (B, M) = (4, 2)", "(5, 2)"),
    ),
    (
        "weights=np.ones((4, 3), np.float32)",
        "FusionInputError",
        ("weights must have shape (B, M) = (4, 2)", "(4, 3)"),
    ),
    ("weights=np.ones((4, 2, 1), np.float32)", "FusionInputError", ("weights must have shape", "(4, 2, 1)")),
    ("weights=np.ones((4, 2), np.float64)", "FusionInputError", ("weights has dtype float64",)),
    # a huge stride-0 view of the wrong shape: refused from its shape, never read or copied
    (
        "weights=np.broadcast_to(np.float32(1), (10**12, 2))",
        "FusionInputError",
        ("weights must have shape (B, M) = (4, 2)", "(1000000000000, 2)"),
    ),
    (
        "weights=np.frombuffer(bytearray(36), np.float32, count=8, offset=1).reshape(4, 2)",
        "FusionInputError",
        ("weights is not aligned", ".copy()"),
    ),
    ("weights=[[1.0, 1.0]] * 4", "FusionTypeError", ("weights must be a numpy.ndarray", "(B, M) = (4, 2)")),
    # NaN / Inf in the LayerNorm parameters, with the index
    (
        "gamma=np.r_[np.ones(5), np.nan, np.ones(2)].astype(np.float32)",
        "FusionInputError",
        ("gamma[5] = nan", "must be finite"),
    ),
    (
        "beta=np.r_[np.zeros(2), -np.inf, np.zeros(5)].astype(np.float32)",
        "FusionInputError",
        ("beta[2] = -inf",),
    ),
    (
        "gamma=np.frombuffer(bytearray(40), np.float32, count=8, offset=1)",
        "FusionInputError",
        ("gamma is not aligned", ".copy()"),
    ),
]


@pytest.mark.parametrize("func", FUNCS)
@pytest.mark.parametrize(("kwarg", "error", "fragments"), BAD_VALUES, ids=[c[0] for c in BAD_VALUES])
def test_bad_value_is_refused(func: str, kwarg: str, error: str, fragments: tuple[str, ...]) -> None:
    expect_error(SETUP + f"_fusion.{func}([X, Y], {kwarg})\n", error, *fragments)


# --- out= sharing memory with an input ---------------------------------------------------------------

ALIASES = {
    # x[::-1] starts at x's last row: a naive extent (base .. base + sum((n-1)*stride)) is empty for it
    "reversed_view_of_out": (
        "x = np.zeros((4, 8), np.float32)\n_fusion.{f}([x[::-1]], out=x)\n",
        "embeddings[0]",
    ),
    "partial_reverse_overlap": (
        "big = np.ones((8, 8), np.float32); big[:, 0] = 3\n_fusion.{f}([big[3::-1]], out=big[3:7])\n",
        "embeddings[0]",
    ),
    "stacked_negative_m_stride": (
        "s = np.ones((4, 3, 8), np.float32)\n_fusion.{f}(s[:, ::-1], out=s.reshape(-1)[:32].reshape(4, 8))\n",
        "embeddings",
    ),
    "gamma": ("o = np.ones((1, 8), np.float32)\n_fusion.{f}([X[:1]], gamma=o[0], out=o)\n", "gamma"),
    "beta": ("o = np.zeros((2, 8), np.float32)\n_fusion.{f}([X[:2]], beta=o[1], out=o)\n", "beta"),
    "weights": (
        "o = np.ones((1, 8), np.float32)\n_fusion.{f}([X[:1], Y[:1]], weights=o[0, 6:], out=o)\n",
        "weights",
    ),
    "row_weights": (
        "o = np.ones((2, 8), np.float32)\n_fusion.{f}([X[:2], Y[:2]], weights=o[1, 4:].reshape(2, 2), out=o)\n",
        "weights",
    ),
    "mask": (
        "raw = np.zeros(2 * 8 * 4, np.uint8); raw[:4] = 1\n"
        "_fusion.{f}([X[:2], Y[:2]], raw[:4].reshape(2, 2), out=raw.view(np.float32).reshape(2, 8))\n",
        "mask",
    ),
}


@pytest.mark.parametrize("func", FUNCS)
@pytest.mark.parametrize("case", sorted(ALIASES))
def test_out_aliasing_an_input_is_refused(func: str, case: str) -> None:
    code, name = ALIASES[case]
    expect_error(SETUP + code.format(f=func), "FusionInputError", "out overlaps an input", name, "separate")


def test_disjoint_out_in_the_same_buffer_is_accepted() -> None:
    """The check is about the bytes touched, not about sharing a base array: disjoint parts are fine."""
    res = expect_ok(
        SETUP
        + "mem = rng.standard_normal(16 * 8).astype(np.float32)\n"
        + "inp = mem[:32].reshape(4, 8)[::-1]  # bytes [0, 128), negative row stride\n"
        + "gamma = mem[56:64]  # bytes [224, 256)\n"
        + "out = mem[64:96].reshape(4, 8)  # bytes [256, 384)\n"
        + "exp = _fusion.fuse([inp.copy()], gamma=gamma.copy())\n"
        + "res = _fusion.fuse([inp], gamma=gamma, out=out)\n"
        + "RESULT['same'] = bool(np.array_equal(res, exp)) and np.shares_memory(res, mem)\n"
    )
    assert res.result == {"same": True}


# --- worker threads: refusal above the cap, failure to start reported, not fatal ---------------------

THREAD_FAILURE = (
    SETUP
    + """
import resource
x = rng.standard_normal((256, 32)).astype(np.float32)
buf = np.empty((256, 32), np.float32)
ref = _fusion.fuse([x, None], out=buf).copy()
vm = next(int(line.split()[1]) for line in open('/proc/self/status') if line.startswith('VmSize')) * 1024
soft, hard = resource.getrlimit(resource.RLIMIT_AS)
# Room for {stacks} more 8 MiB thread stack(s) (plus any glibc cached): a later std::thread cannot map one
# (running as root, RLIMIT_NPROC would not stop it; the address-space limit does).
resource.setrlimit(resource.RLIMIT_AS, (vm + {stacks} * (8 << 20) + (4 << 20), hard))
try:
    _fusion.{f}([x, None], out=buf, threads=16)
    RESULT['raised'] = None
except Exception as exc:
    RESULT['raised'] = [type(exc).__name__, [c.__name__ for c in type(exc).__mro__], str(exc)]
finally:
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
# The process is alive and the kernel still works, threads included, once memory is there again.
again = _fusion.{f}([x, None], out=buf, threads=16)
again = again[0] if isinstance(again, tuple) else again
RESULT['after'] = bool(np.array_equal(again, ref))
"""
)


@pytest.mark.parametrize("func", FUNCS)
@pytest.mark.parametrize("stacks", [0, 2])
def test_thread_start_failure_raises_and_process_survives(func: str, stacks: int) -> None:
    res = expect_ok(THREAD_FAILURE.format(f=func, stacks=stacks))
    raised = res.result["raised"]
    assert raised is not None, "thread creation did not fail under the address-space limit"
    name, mro, message = raised
    assert name == "FusionResourceError", raised
    assert {"EdgeFuseError", "RuntimeError"} <= set(mro), mro
    assert "threads = 16" in message, message
    assert "fewer threads" in message, message
    # With room for two more stacks, at least threads 1 and 2 started (more when glibc had stacks of
    # exited threads cached, at most 40 MiB): they were joined before the error was raised (a joinable
    # std::thread left behind would have called std::terminate and killed the process).
    failed = int(re.search(r"could not start worker thread (\d+) of 16", message).group(1))  # type: ignore[union-attr]
    assert stacks + 1 <= failed < 16, message
    assert res.result["after"] is True


def test_threads_at_the_cap_and_numpy_scalars_work() -> None:
    res = expect_ok(
        SETUP
        + "x = rng.standard_normal((64, 16)).astype(np.float32)\n"
        + "ref = _fusion.fuse([x, x], eps=1e-5)\n"
        + "a = _fusion.fuse([x, x], eps=np.float32(1e-5), threads=np.int64(4))\n"
        + "b = _fusion.fuse([x, x], eps=np.float64(1e-5), threads=_fusion.MAX_THREADS)\n"
        + "c, n = _fusion.fuse_with_counts([x, x], eps=np.array(1e-5), threads=np.int32(3))\n"
        + "RESULT['ok'] = all(np.array_equal(r, ref) for r in (a, b, c))\n"
        + "RESULT['cap'] = _fusion.MAX_THREADS\n"
    )
    assert res.result == {"ok": True, "cap": 1024}


# --- extreme but valid finite values: never NaN ------------------------------------------------------

FINITE_CASES = {
    # float32 mean/variance overflow: the row is recomputed in double; LayerNorm is scale-invariant
    "embeddings_3e38": "big = np.full((4, 8), 3e38, np.float32); big[:, ::2] *= -1\n"
    "out = _fusion.{f}([big, big * np.float32(0.5)])\n"
    "ref = _fusion.{f}([np.sign(big), np.sign(big) * np.float32(0.5)], eps=np.finfo(np.float32).tiny)\n",
    "embeddings_1e20_scaled": "out = _fusion.{f}([X * np.float32(1e20), Y * np.float32(1e20)], eps=1.2e-38)\n"
    "ref = _fusion.{f}([X, Y], eps=1.2e-38)\n",
    "embeddings_max_three_modalities": "m = np.float32(np.finfo(np.float32).max)\n"
    "e = [np.full((4, 8), m, np.float32) for _ in range(3)]\n"
    "for k in range(3): e[k][:, k] = -m\n"
    "w = np.array([1, 2, 3], np.float32)\n"
    "out = _fusion.{f}(e, weights=w)\n"
    "ref = _fusion.{f}([a / m for a in e], weights=w, eps=np.finfo(np.float32).tiny)\n",
    "weights_extreme_ratio": "w = np.array([3e38, np.finfo(np.float32).tiny], np.float32)\n"
    "out = _fusion.{f}([X, Y], weights=w)\n"
    "ref = _fusion.{f}([X, Y], weights=np.array([1, 0.0000001], np.float32))\n",
    # per-row weights: extreme ratios per row, huge embeddings, NaN behind a weight of 0 (never read)
    "row_weights_extreme_ratios": "t = np.finfo(np.float32).tiny\n"
    "w = np.array([[3e38, t], [t, 3e38], [0, 1], [1e30, 0]], np.float32)\n"
    "out = _fusion.{f}([X, Y], weights=w, threads=2)\n"
    "ref = _fusion.{f}([X, Y], weights=np.array([[1, 1e-7], [1e-7, 1], [0, 1], [1, 0]], np.float32))\n",
    "row_weights_embeddings_3e38": "big = np.full((4, 8), 3e38, np.float32); big[:, ::2] *= -1\n"
    "w = np.array([[1, 2], [0, 1], [2, 0], [3e38, 1]], np.float32)\n"
    "out = _fusion.{f}([big, big * np.float32(0.5)], weights=w)\n"
    "ref = _fusion.{f}([np.sign(big), np.sign(big) * np.float32(0.5)], weights=w, eps=np.finfo(np.float32).tiny)\n",
    "row_weights_zero_hides_nan": "y = Y.copy(); y[1:3] = np.nan; z = X.copy(); z[3] = np.inf\n"
    "w = np.ones((4, 2), np.float32); w[1:3, 1] = 0; w[3] = 0\n"
    "out = _fusion.{f}([z, y], weights=w, beta=np.ones(8, np.float32))\n"
    "ref = _fusion.{f}([X, Y], np.array([[1, 1], [1, 0], [1, 0], [0, 0]], bool), beta=np.ones(8, np.float32))\n",
    "eps_smallest_normal_constant_rows": "c = np.full((4, 8), 7.0, np.float32)\n"
    "out = _fusion.{f}([c, c], eps=np.finfo(np.float32).tiny)\n"
    "ref = np.zeros((4, 8), np.float32)\n",
    "eps_largest_finite": "out = _fusion.{f}([X, Y], beta=np.ones(8, np.float32), eps=3.4028234e38)\n"
    "ref = np.ones((4, 8), np.float32)\n",
}


@pytest.mark.parametrize("func", FUNCS)
@pytest.mark.parametrize("case", sorted(FINITE_CASES))
def test_extreme_finite_values_never_give_nan(func: str, case: str) -> None:
    code = FINITE_CASES[case].format(f=func)
    res = expect_ok(
        SETUP
        + code
        + "out = out[0] if isinstance(out, tuple) else out\n"
        + "ref = ref[0] if isinstance(ref, tuple) else ref\n"
        + "RESULT['nan'] = bool(np.isnan(out).any())\n"
        + "RESULT['finite'] = bool(np.isfinite(out).all())\n"
        + "RESULT['err'] = float(np.abs(out.astype(np.float64) - ref).max())\n"
    )
    assert res.result["nan"] is False, res.result
    assert res.result["finite"] is True, res.result
    assert res.result["err"] < 1e-3, res.result


def test_huge_gamma_saturates_to_inf_never_nan() -> None:
    """The one documented non-finite output: LayerNorm * gamma + beta beyond float32's range is +-Inf."""
    res = expect_ok(
        SETUP
        + "g = np.full(8, 3e38, np.float32)\n"
        + "b = np.full(8, -3e38, np.float32)\n"
        + "out = _fusion.fuse([X * np.float32(1e30), Y], gamma=g, beta=b)\n"
        + "RESULT['nan'] = bool(np.isnan(out).any())\n"
        + "RESULT['inf'] = bool(np.isinf(out).any())\n"
    )
    assert res.result == {"nan": False, "inf": True}


def test_short_fuzz_run_finds_nothing() -> None:
    """2,000 calls of tests/security/fuzz_kernel.py on the installed kernel (``make sanitize`` runs 10,000
    under ASan + UBSan): every call refused with the expected EdgeFuse error or matching the reference."""
    here = Path(__file__).resolve().parent
    res = expect_ok(
        f"import sys; sys.path.insert(0, {str(here)!r})\n"
        "import fuzz_kernel\n"
        "stats = fuzz_kernel.run(2000, seed=1)\n"
        "RESULT.update(calls=stats.calls, ok=stats.ok, refused=stats.refused, failures=stats.failures[:5])\n"
    )
    assert res.result["failures"] == [], res.result["failures"]
    assert res.result["calls"] == 2000
    assert res.result["ok"] > 500
    assert res.result["refused"] > 500
