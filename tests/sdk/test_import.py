"""`import edgefuse` and `edgefuse --help` stay light: they never import torch (or any backend)."""

from __future__ import annotations

import subprocess
import sys


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_import_and_help_do_not_import_torch() -> None:
    code = (
        "import sys, contextlib, io\n"
        "import edgefuse, edgefuse.fusion, edgefuse.runtime, edgefuse.profiles\n"
        "from edgefuse.cli import main\n"
        "buf = io.StringIO()\n"
        "with contextlib.redirect_stdout(buf):\n"
        "    try:\n"
        "        main(['--help'])\n"
        "    except SystemExit as e:\n"
        "        assert e.code == 0\n"
        "assert 'profiles' in buf.getvalue()\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in {'torch', 'onnx', 'onnxruntime', 'rich'})\n"
        "print(heavy)\n"
    )
    result = _run(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_cli_works_where_torch_cannot_be_imported(run_without_torch) -> None:  # type: ignore[no-untyped-def]
    code = (
        "from edgefuse.cli import main\n"
        "import numpy as np, edgefuse._fusion as f\n"
        "assert f.fuse([np.ones((1, 3), np.float32)]).shape == (1, 3)\n"
        "raise SystemExit(main(['profiles', 'list', '--json']))\n"
    )
    result = run_without_torch(code)
    assert result.returncode == 0, result.stderr
    assert "generic/x86-64" in result.stdout


def test_python_dash_m_entry_point() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "edgefuse", "--version"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("edgefuse ")
