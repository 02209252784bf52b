"""A fork server for the hostile-input suite: imports the heavy modules once, forks one child per case.

Protocol (JSON lines): the harness writes ``{"code", "timeout", "prelude"}``; the server forks, the child
applies the memory limit, runs the prelude (which runs the case and prints its report) with stdout and
stderr in temporary files, and exits; the server waits up to ``timeout`` seconds (then SIGKILLs the child)
and answers ``{"rc", "stdout", "stderr", "timed_out"}``. A crash or hang of a case never reaches the
server: the case runs in its own process, as with a fresh interpreter, without paying the imports.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
import time

# Heavy, side-effect-free imports every case would otherwise pay for (each is optional).
for _name in (
    "numpy",
    "torch",
    "safetensors.torch",
    "onnxruntime",
    "edgefuse.checkpoint",
    "edgefuse.runtime",
):
    try:
        __import__(_name)
    except Exception:  # a missing optional package only costs the case its import time
        continue


def _run_child(code: str, prelude: str, out_path: str, err_path: str) -> None:
    out = os.open(out_path, os.O_WRONLY | os.O_TRUNC)
    err = os.open(err_path, os.O_WRONLY | os.O_TRUNC)
    os.dup2(out, 1)
    os.dup2(err, 2)
    sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
    sys.argv = ["<case>", code]
    try:
        exec(compile(prelude, "<prelude>", "exec"), {"__name__": "__main__"})
        status = 0
    except SystemExit as exc:
        status = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
        status = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def main() -> None:
    out_fd, out_path = tempfile.mkstemp(prefix="edgefuse-case-out-")
    err_fd, err_path = tempfile.mkstemp(prefix="edgefuse-case-err-")
    os.close(out_fd)
    os.close(err_fd)
    try:
        for line in sys.stdin:
            req = json.loads(line)
            pid = os.fork()
            if pid == 0:
                _run_child(req["code"], req["prelude"], out_path, err_path)
            deadline = time.monotonic() + float(req["timeout"])
            timed_out = False
            while True:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    break
                if time.monotonic() > deadline:
                    os.kill(pid, signal.SIGKILL)
                    _, status = os.waitpid(pid, 0)
                    timed_out = True
                    break
                time.sleep(0.005)
            rc = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
            with open(out_path, errors="replace") as f:
                stdout = f.read()
            with open(err_path, errors="replace") as f:
                stderr = f.read()
            sys.__stdout__.write(
                json.dumps({"rc": rc, "stdout": stdout, "stderr": stderr, "timed_out": timed_out}) + "\n"
            )
            sys.__stdout__.flush()
    finally:
        os.unlink(out_path)
        os.unlink(err_path)


if __name__ == "__main__":
    main()
