"""On a device without torch: load, predict and verify an artifact with only numpy + onnxruntime, and
the ``edgefuse run``/``verify`` CLI with only ``edgefuse[onnxruntime]`` or only ``edgefuse[litert]``."""

from __future__ import annotations


def test_load_predict_verify_without_torch(x86_split, speaker_split, run_without_torch) -> None:  # type: ignore[no-untyped-def]
    code = (
        "import numpy as np\n"
        "import edgefuse\n"
        "import edgefuse.runtime as rt\n"
        f"session = edgefuse.load({str(x86_split)!r})\n"
        "x = np.zeros((3, 1, 32, 61), np.float32)\n"
        "pred = session.predict({'audio': x})\n"
        "assert pred.logits.shape == (3, 10) and pred.backend == 'onnxruntime'\n"
        "pred = session.predict({'audio': x, 'image': np.ones((3, 1, 8, 8), np.float32)},\n"
        "                       np.array([[1, 1], [1, 0], [0, 1]], bool))\n"
        "assert session.verify(raise_on_failure=True).passed\n"
        f"assert rt.load({str(speaker_split)!r}, backend=['litert', 'onnxruntime']).verify().passed\n"
        "ok, reason = rt.availability('litert')\n"
        "assert not ok and 'edgefuse[litert]' in reason, reason\n"
        "try:\n"
        "    import torch\n"
        "except ImportError:\n"
        "    pass\n"
        "else:\n"
        "    raise SystemExit('the blocker did not block torch')\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in {'torch', 'onnx', 'ai_edge_litert'}\n"
        "                or m.startswith('edgefuse.export'))\n"
        "print('loaded:', loaded)\n"
    )
    result = run_without_torch(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "loaded: []"


def test_without_torch_a_checkpoint_names_the_extra(reference_checkpoint, run_without_torch) -> None:  # type: ignore[no-untyped-def]
    code = (
        "import edgefuse.runtime as rt\n"
        "from edgefuse.errors import BackendUnavailableError\n"
        "ok, reason = rt.availability('torch')\n"
        "assert not ok and 'edgefuse[train]' in reason, reason\n"
        "try:\n"
        f"    rt.load({str(reference_checkpoint)!r})\n"
        "except BackendUnavailableError as exc:\n"
        "    assert 'checkpoint' in str(exc) and 'edgefuse[train]' in str(exc), exc\n"
        "else:\n"
        "    raise SystemExit('a checkpoint loaded without torch')\n"
    )
    result = run_without_torch(code)
    assert result.returncode == 0, result.stderr


# ---- the CLI on a device install: only `edgefuse[onnxruntime]` or only `edgefuse[litert]` -------------


def _imported(result) -> str:  # type: ignore[no-untyped-def]
    """The ``imported-heavy: [...]`` line :func:`run_cli_on_device` writes last on stderr."""
    return result.stderr.strip().splitlines()[-1]


def _cli_run_and_verify(artifact, runtime, run_cli_on_device, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    import numpy as np

    npz = tmp_path / "x.npz"
    np.savez(npz, audio=np.zeros((1, 32, 61), np.float32))
    ran = run_cli_on_device(runtime, ["run", artifact, "--npz", npz, "--threads", "1", "--json"])
    assert ran.returncode == 0, ran.stderr
    assert "Traceback" not in ran.stderr
    pred = json.loads(ran.stdout)
    assert pred["backend"] == runtime
    assert pred["modalities"] == ["audio"]
    assert _imported(ran) == "imported-heavy: []"

    checked = run_cli_on_device(runtime, ["verify", artifact, "--threads", "1", "--json"])
    assert checked.returncode == 0, checked.stderr
    report = json.loads(checked.stdout)
    assert report["passed"]
    assert report["backend"] == runtime
    assert report["threads"] == 1
    assert [c["pattern"] for c in report["checks"]] == [["audio", "image"], ["audio"], ["image"]]
    assert all(c["passed"] for c in report["checks"])
    assert _imported(checked) == "imported-heavy: []"

    table = run_cli_on_device(runtime, ["verify", artifact])
    assert table.returncode == 0, table.stderr
    assert f"passed: 3 of 3 case(s) passed on {runtime}" in " ".join(table.stdout.split())

    # bench: timings, the RSS of a fresh process and the target estimate from the manifest's counts
    out = tmp_path / f"bench-{runtime}.json"
    bench = run_cli_on_device(
        runtime, ["bench", artifact, "--threads", "1", "--iters", "5", "--warmup", "1", "--json", out]
    )
    assert bench.returncode == 0, bench.stderr
    assert "Traceback" not in bench.stderr
    assert _imported(bench) == "imported-heavy: []"
    rows = json.loads(out.read_text())["results"]
    assert {r["pattern"] for r in rows} == {"audio+image", "audio", "image"}
    for row in rows:
        assert row["backend"] == runtime
        assert row["threads"] == 1
        assert row["estimate"]["ms"] > 0, row["estimate"]
        assert row["rss_scope"] == "fresh subprocess"


def test_cli_run_and_verify_with_only_onnxruntime(x86_split, run_cli_on_device, tmp_path) -> None:  # type: ignore[no-untyped-def]
    _cli_run_and_verify(x86_split, "onnxruntime", run_cli_on_device, tmp_path)


def test_cli_run_and_verify_with_only_litert(tflite_split, run_cli_on_device, tmp_path) -> None:  # type: ignore[no-untyped-def]
    _cli_run_and_verify(tflite_split, "litert", run_cli_on_device, tmp_path)


def test_cli_an_artifact_for_the_other_runtime_names_its_extra(x86_split, run_cli_on_device) -> None:  # type: ignore[no-untyped-def]
    result = run_cli_on_device("litert", ["verify", x86_split])
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "edgefuse[onnxruntime]" in result.stderr, result.stderr


def test_cli_verify_of_a_checkpoint_without_torch_names_the_extra(
    reference_checkpoint, run_cli_on_device
) -> None:  # type: ignore[no-untyped-def]
    result = run_cli_on_device("onnxruntime", ["verify", reference_checkpoint])
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "edgefuse[train]" in result.stderr, result.stderr
