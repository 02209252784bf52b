"""The wheel: one import name, no stray top-level packages, and it works in a fresh environment."""

from __future__ import annotations

import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    build_dir = tmp_path_factory.mktemp("build")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--quiet",
            "-w",
            str(out),
            f"--config-settings=build-dir={build_dir}",
            str(ROOT),
        ],
        check=True,
        cwd=out,
    )
    (path,) = out.glob("edgefuse-*.whl")
    return path


def test_wheel_holds_one_import_name(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"edgefuse", next(t for t in tops if t.endswith(".dist-info"))}, tops
    for required in (
        "edgefuse/__init__.py",
        "edgefuse/_fusion.pyi",
        "edgefuse/py.typed",
        "edgefuse/runtime/__init__.py",
        "edgefuse/export/__init__.py",
        "edgefuse/device_profiles/__init__.py",
        "edgefuse/cli/__init__.py",
        "edgefuse/templating.py",
        "edgefuse/templates/demo_report.html",  # the demo report's template is data: it must ship
    ):
        assert required in names, required
    assert any(n.startswith("edgefuse/_fusion") and n.endswith((".so", ".pyd")) for n in names)
    assert any(n.startswith("edgefuse/device_profiles/") and n.endswith(".toml") for n in names)


def test_wheel_works_in_a_fresh_environment_without_torch(wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "--quiet", str(wheel)], check=True)
    script = (
        "import sys, numpy as np\n"
        "import edgefuse, edgefuse._fusion as f, edgefuse.runtime\n"
        "assert 'site-packages' in edgefuse.__file__, edgefuse.__file__\n"
        "assert f.__version__ == edgefuse.__version__\n"
        "out = f.fuse([np.ones((2, 4), np.float32), None])\n"
        "assert out.shape == (2, 4)\n"
        "import importlib.util\n"
        "assert importlib.util.find_spec('torch') is None, 'the core install must not pull torch'\n"
        "print('ok')\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    result = subprocess.run([str(py), "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
    cli = subprocess.run(
        [str(env_dir / "bin" / "edgefuse"), "profiles", "list", "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert cli.returncode == 0, cli.stderr
    assert "generic/x86-64" in cli.stdout
