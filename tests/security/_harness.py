"""Hostile-input harness: each case runs in its own interpreter under a memory limit and a timeout.

A crash (signal, abort) or a hang (timeout) of the case turns into a test failure instead of taking the
test session down with it. The child reports one JSON line: either ``ok`` (plus anything the case put in
``RESULT``) or the exception it raised (type, whether it is an ``EdgeFuseError``, the message, the MRO).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

#: Address-space limit of every case (the acceptance suite runs each case under 4 GiB).
MEMORY_LIMIT = 4 << 30
TIMEOUT_S = 60

_PRELUDE = """
import json as _json, resource as _resource, sys as _sys
_resource.setrlimit(_resource.RLIMIT_AS, ({limit}, {limit}))
RESULT = {{}}
try:
    exec(compile(_sys.argv[1], "<case>", "exec"), globals())
    _out = {{"outcome": "ok", "result": RESULT}}
except BaseException as _exc:  # the whole point: report whatever escaped
    from edgefuse.errors import EdgeFuseError as _E
    _out = {{"outcome": "raised", "type": type(_exc).__name__, "edgefuse": isinstance(_exc, _E),
             "message": str(_exc), "mro": [c.__name__ for c in type(_exc).__mro__], "result": RESULT}}
print("@@CASE " + _json.dumps(_out, default=str), flush=True)
"""


@dataclass
class CaseResult:
    """What one isolated case did."""

    returncode: int
    stdout: str
    stderr: str
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def outcome(self) -> str:
        return str(self.report.get("outcome", "crashed"))

    @property
    def message(self) -> str:
        return str(self.report.get("message", ""))

    @property
    def result(self) -> dict[str, Any]:
        return dict(self.report.get("result") or {})

    def describe(self) -> str:
        return f"rc={self.returncode} report={self.report}\nstderr tail:\n{self.stderr[-3000:]}"


_ZYGOTE: dict[str, subprocess.Popen[str]] = {}


def _zygote() -> subprocess.Popen[str]:
    """The session's fork server (started on first use; see ``_zygote.py``)."""
    server = _ZYGOTE.get("server")
    if server is None or server.poll() is not None:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONFAULTHANDLER": "1"}
        server = _ZYGOTE["server"] = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("_zygote.py"))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
    return server


def run_case(
    code: str, *, timeout: float = TIMEOUT_S, cwd: str | None = None, fresh: bool = False
) -> CaseResult:
    """Run ``code`` (dedented) in its own process under :data:`MEMORY_LIMIT`; fail the test on a hang.

    By default the process is forked from a server that has imported numpy, torch, onnxruntime and the
    EdgeFuse runtime once (each case still runs in its own process, so a crash or hang stays there);
    ``fresh=True`` (or ``cwd``) starts a new interpreter instead.
    """
    prelude = _PRELUDE.format(limit=MEMORY_LIMIT)
    body = textwrap.dedent(code)
    if fresh or cwd is not None:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONFAULTHANDLER": "1"}
        try:
            proc = subprocess.run(
                [sys.executable, "-c", prelude, body],
                capture_output=True,
                text=True,
                timeout=timeout,
                cwd=cwd,
                env=env,
            )
        except subprocess.TimeoutExpired:
            pytest.fail(f"the case hung (no result within {timeout} s):\n{body}")
        rc, stdout, stderr = proc.returncode, proc.stdout, proc.stderr
    else:
        server = _zygote()
        assert server.stdin is not None
        assert server.stdout is not None
        server.stdin.write(json.dumps({"code": body, "prelude": prelude, "timeout": timeout}) + "\n")
        server.stdin.flush()
        answer = json.loads(server.stdout.readline())
        if answer["timed_out"]:
            pytest.fail(f"the case hung (no result within {timeout} s):\n{body}")
        rc, stdout, stderr = answer["rc"], answer["stdout"], answer["stderr"]
    report: dict[str, Any] = {}
    for line in stdout.splitlines():
        if line.startswith("@@CASE "):
            report = json.loads(line[len("@@CASE ") :])
    return CaseResult(rc, stdout, stderr, report)


def expect_ok(code: str, **kwargs: Any) -> CaseResult:
    """Run a case that must succeed; return it (``.result`` holds the case's ``RESULT`` dict)."""
    res = run_case(code, **kwargs)
    assert res.outcome == "ok", res.describe()
    return res


def expect_error(code: str, error: str, *fragments: str, **kwargs: Any) -> CaseResult:
    """Run a case that must raise the EdgeFuse error ``error`` (or a subclass) whose message has ``fragments``.

    Fragments are matched case-insensitively; each names what the user must be told (the file, the field,
    the rule, the fix).
    """
    res = run_case(code, **kwargs)
    assert res.outcome == "raised", f"expected {error}, the case did not raise: {res.describe()}"
    assert res.report["edgefuse"], (
        f"a generic {res.report['type']} escaped instead of {error}: {res.describe()}"
    )
    assert error in res.report["mro"], f"expected {error}, got {res.report['type']}: {res.describe()}"
    low = res.message.lower()
    missing = [f for f in fragments if f.lower() not in low]
    assert not missing, f"message lacks {missing}: {res.message!r}"
    return res


def run_cli(
    *args: str, timeout: float = TIMEOUT_S, cwd: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m edgefuse ARGS`` under the memory limit; fail the test on a hang."""
    prelude = (
        "import resource, runpy, sys; "
        f"resource.setrlimit(resource.RLIMIT_AS, ({MEMORY_LIMIT}, {MEMORY_LIMIT})); "
        "sys.argv = ['edgefuse', *sys.argv[1:]]; runpy.run_module('edgefuse', run_name='__main__')"
    )
    try:
        return subprocess.run(
            [sys.executable, "-c", prelude, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=cwd,
            env={**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"},
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"`edgefuse {' '.join(args)}` hung (no exit within {timeout} s)")


def expect_cli_error(
    *args: str, fragments: tuple[str, ...] = (), **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    """Run the CLI; it must exit non-zero with a message (no traceback) holding every fragment."""
    proc = run_cli(*args, **kwargs)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0, f"`edgefuse {' '.join(args)}` exited 0:\n{text[-3000:]}"
    assert proc.returncode > 0, (
        f"`edgefuse {' '.join(args)}` died from signal {-proc.returncode}:\n{text[-3000:]}"
    )
    assert "Traceback" not in text, f"`edgefuse {' '.join(args)}` printed a traceback:\n{text[-3000:]}"
    flat = " ".join(text.split()).lower()
    missing = [f for f in fragments if " ".join(f.split()).lower() not in flat]
    assert not missing, f"output lacks {missing}:\n{text[-3000:]}"
    return proc
