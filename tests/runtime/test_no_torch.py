"""On a device without torch: load, predict and verify an artifact with only numpy + onnxruntime."""

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
