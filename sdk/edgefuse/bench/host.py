"""``edgefuse profiles calibrate-host``: measure this machine and write it as a device profile.

Measured, each in a fresh subprocess pinned to the requested threads (BLAS and OpenMP read their thread
count at start-up):

* **compute**: float32 GEMM (``numpy.matmul`` of two 1024 x 1024 matrices), best of repeated runs, in
  GFLOP/s (2 x n^3 per product);
* **memory bandwidth**: a 256 MiB array copy (``numpy.copyto``), best of repeated runs, bytes read +
  written per second;
* **per-call overhead** of each runtime installed (onnxruntime, LiteRT): the median time of one call of a
  one-operation graph on 16 floats (``edgefuse/bench/data/tiny.*``).

The profile written has the sensors of a development machine (microphone, camera, IMU), the runtimes found,
``fp32``, these figures with their sources, and no efficiency factor (the roofline's defaults apply: the
efficiency is what the estimate is checked against, so it is never fitted here).
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from edgefuse.errors import ContractError

__all__ = ["DEFAULT_HOST_ID", "calibrate_host", "host_profile_toml"]

#: Profile id of the written host profile unless another is given.
DEFAULT_HOST_ID = "host/this-machine"
_DATA = Path(__file__).resolve().parent / "data"
_GEMM_N = 1024
_COPY_BYTES = 256 << 20


def _measure(kind: str, seconds: float) -> dict[str, Any]:
    """In this process (already pinned to its threads): one measurement, as a JSON-able dict."""
    import numpy as np

    deadline = time.perf_counter() + seconds
    best = float("inf")
    runs = 0
    if kind == "gemm":
        rng = np.random.default_rng(0)
        a = rng.standard_normal((_GEMM_N, _GEMM_N), dtype=np.float32)
        b = rng.standard_normal((_GEMM_N, _GEMM_N), dtype=np.float32)
        out = np.empty_like(a)
        np.matmul(a, b, out=out)
        while runs < 3 or time.perf_counter() < deadline:
            t0 = time.perf_counter()
            np.matmul(a, b, out=out)
            best = min(best, time.perf_counter() - t0)
            runs += 1
        return {"gflops": 2 * _GEMM_N**3 / best / 1e9, "runs": runs}
    if kind == "copy":
        src = np.ones(_COPY_BYTES // 4, np.float32)
        dst = np.empty_like(src)
        np.copyto(dst, src)
        while runs < 3 or time.perf_counter() < deadline:
            t0 = time.perf_counter()
            np.copyto(dst, src)
            best = min(best, time.perf_counter() - t0)
            runs += 1
        return {"gbs": 2 * _COPY_BYTES / best / 1e9, "runs": runs}
    call = _tiny_call(kind)
    for _ in range(200):
        call()
    times = []
    while len(times) < 2000 and (len(times) < 200 or time.perf_counter() < deadline):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return {"ms": float(np.median(times)) * 1e3, "runs": len(times)}


def _tiny_call(backend: str) -> Any:
    """A function running one call of the one-operation graph on ``backend`` (one thread)."""
    import numpy as np

    x = np.zeros((1, 16), np.float32)
    if backend == "onnxruntime":
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.log_severity_level = 3
        sess = ort.InferenceSession(str(_DATA / "tiny.onnx"), opts, providers=["CPUExecutionProvider"])
        return lambda: sess.run(None, {"x": x})
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(_DATA / "tiny.tflite"), num_threads=1)
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]["index"]
    out = interp.get_output_details()[0]["index"]

    def call() -> Any:
        interp.set_tensor(inp, x)
        interp.invoke()
        return interp.get_tensor(out)

    return call


def _run_child(kind: str, threads: int, seconds: float) -> dict[str, Any]:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
        env[var] = str(threads)
    code = (
        "import json, sys; from edgefuse.bench.host import _measure; "
        "print(json.dumps(_measure(sys.argv[1], float(sys.argv[2]))))"
    )
    try:
        proc = subprocess.run(
            [sys.executable, "-c", code, kind, str(seconds)],
            capture_output=True,
            text=True,
            env=env,
            timeout=120 + 10 * seconds,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ContractError(f"calibrate-host: the {kind} measurement did not finish in time") from None
    if proc.returncode != 0:
        last = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "no output"
        raise ContractError(f"calibrate-host: the {kind} measurement failed ({last})")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def calibrate_host(threads: int | None = None, seconds: float = 2.0) -> dict[str, Any]:
    """Measure this machine's compute, bandwidth and per-call runtime overhead.

    Args:
        threads: Threads for the GEMM and the copy (``None``: every core of this machine).
        seconds: Time spent per measurement (at least 3 runs each).

    Returns:
        ``{"threads", "cpu", "cpus", "ram_mb", "gemm_gflops", "copy_gbs", "call_overhead_ms":
        {backend: ms}, "date", "platform"}``.

    Raises:
        ContractError: Bad arguments, or a measurement that failed.
    """
    from edgefuse.provenance import cpu_model

    cpus = os.cpu_count() or 1
    if threads is None:
        threads = cpus
    if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= 1024:
        raise ContractError(f"threads must be an int in 1..1024; got {threads!r}")
    if not (isinstance(seconds, int | float) and 0.1 <= seconds <= 60):
        raise ContractError(f"seconds must be a number in 0.1..60; got {seconds!r}")
    overhead = {}
    for backend, module in (("onnxruntime", "onnxruntime"), ("litert", "ai_edge_litert")):
        if importlib.util.find_spec(module) is not None:
            overhead[backend] = _run_child(backend, 1, min(seconds, 1.0))["ms"]
    return {
        "threads": threads,
        "cpu": cpu_model(),
        "cpus": cpus,
        "ram_mb": _ram_mb(),
        "gemm_gflops": _run_child("gemm", threads, seconds)["gflops"],
        "copy_gbs": _run_child("copy", threads, seconds)["gbs"],
        "call_overhead_ms": overhead,
        "date": time.strftime("%Y-%m-%d"),
        "platform": f"{platform.system()} {platform.machine()}",
    }


def _ram_mb() -> int:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20)
    except (ValueError, OSError, AttributeError):  # not available on this platform
        return 1024


def _quote(text: str) -> str:
    return json.dumps(text)  # a TOML basic string is a JSON string for these characters


def host_profile_toml(result: dict[str, Any], profile_id: str = DEFAULT_HOST_ID) -> str:
    """The TOML text of a device profile for the measured host (``result`` of :func:`calibrate_host`)."""
    if not re.fullmatch(r"[a-z0-9._-]+/[a-z0-9._-]+", profile_id):
        raise ContractError(f"profile id {profile_id!r} must look like vendor/device (lowercase a-z0-9._-)")
    backends = list(result["call_overhead_ms"]) or ["onnxruntime"]
    how = f"on {result['cpu']} ({result['platform']}), {result['date']}, edgefuse profiles calibrate-host"
    overhead = ", ".join(f"{b} = {ms:.4f}" for b, ms in result["call_overhead_ms"].items())
    description = f"{result['cpus']} logical CPUs, {result['ram_mb']} MB RAM; figures measured here"
    lines = [
        f"# This machine, measured by `edgefuse profiles calibrate-host` on {result['date']}.",
        "schema_version = 1",
        f"id = {_quote(profile_id)}",
        f"name = {_quote('This machine (measured): ' + str(result['cpu']))}",
        f"description = {_quote(description)}",
        f"backends = {json.dumps(backends)}",
        'precisions = ["fp32"]  # only float32 GEMM is measured',
        f"threads = {int(result['threads'])}",
        f"ram_mb = {int(result['ram_mb'])}",
        "batch_sizes = [1]",
        "",
        "# the sensors of a development machine: any model's modalities can run here",
        "[[sensors]]",
        'kind = "microphone"',
        "",
        "[[sensors]]",
        'kind = "camera"',
        "",
        "[[sensors]]",
        'kind = "imu"',
        "",
        "[compute]",
        f"peak_gflops = {{ fp32 = {result['gemm_gflops']:.1f} }}",
        "peak_gflops_source = "
        + _quote(
            f"measured: numpy float32 GEMM {_GEMM_N}x{_GEMM_N}, {result['threads']} thread(s), best run, {how}"
        ),
        f"memory_bandwidth_gbs = {result['copy_gbs']:.2f}",
        "memory_bandwidth_source = "
        + _quote(
            f"measured: numpy copy of {_COPY_BYTES >> 20} MiB (bytes read + written), "
            f"{result['threads']} thread(s), best run, {how}"
        ),
    ]
    if result["call_overhead_ms"]:
        lines += [
            f"call_overhead_ms = {{ {overhead} }}",
            "call_overhead_source = "
            + _quote(
                f"measured: median time of one call of a one-operation graph on 16 floats, 1 thread, {how}"
            ),
        ]
    return "\n".join(lines) + "\n"
