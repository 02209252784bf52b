"""``edgefuse run``: predictions from an .npz, a WAV (synthesised, or FSDD) and a PNG; JSON; errors."""

from __future__ import annotations

import json
import os
import wave
from pathlib import Path

import numpy as np
import pytest
from edgefuse.cli import main


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A split ONNX artifact whose manifest carries the av-digits preprocessing params."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from edgefuse.checkpoint import save_checkpoint
    from edgefuse.data.audio import AudioFeatureConfig
    from edgefuse.export import export
    from edgefuse.models.contract import build_model
    from edgefuse.models.reference import reference_architecture
    from edgefuse.specs import ModalitySpec

    audio = AudioFeatureConfig()
    specs = (
        ModalitySpec("audio", audio.shape, "float32", "logmel-v1", audio.to_dict()),
        ModalitySpec("image", (1, 8, 8), "float32", "digits8x8-v1", {"scale": 1 / 16, "pca_components": 4}),
    )
    torch.manual_seed(0)
    model = build_model(reference_architecture(specs, 16), specs, [f"digit{i}" for i in range(10)])
    root = tmp_path_factory.mktemp("run")
    ckpt = save_checkpoint(model.eval(), root / "ckpt")
    export(ckpt, "generic/x86-64", "onnx", root / "art")
    return root / "art"


def _err(capsys: pytest.CaptureFixture[str]) -> str:
    """Captured stderr with rich's line wrapping undone."""
    return " ".join(capsys.readouterr().err.split())


def _wav(path: Path, rate: int = 8000, seconds: float = 0.6) -> Path:
    t = np.arange(int(rate * seconds)) / rate
    samples = (0.4 * np.sin(2 * np.pi * 440 * t) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())
    return path


def _png(path: Path) -> Path:
    import matplotlib.image as mpimg

    img = np.zeros((32, 32, 3))
    img[4:28, 12:20] = 1.0  # a bright vertical bar, like a "1"
    mpimg.imsave(str(path), img)
    return path


def _run_json(args: list[str], capsys: pytest.CaptureFixture[str]) -> dict:
    assert main(["run", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_run_npz_json_fields(artifact: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(0)
    npz = tmp_path / "x.npz"
    np.savez(npz, audio=rng.standard_normal((1, 32, 61)).astype(np.float32))  # no batch dim: added
    out = _run_json([str(artifact), "--npz", str(npz)], capsys)
    assert set(out) == {"label", "probability", "top3", "modalities", "backend", "notes"}
    assert out["modalities"] == ["audio"]
    assert out["backend"] == "onnxruntime"
    assert out["label"] == out["top3"][0]["label"]
    assert out["label"].startswith("digit")
    assert len(out["top3"]) == 3
    probs = [t["probability"] for t in out["top3"]]
    assert probs == sorted(probs, reverse=True)
    assert probs[0] == pytest.approx(out["probability"])


def test_run_synthesised_wav_and_png(
    artifact: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wav, png = _wav(tmp_path / "tone.wav"), _png(tmp_path / "bar.png")
    out = _run_json([str(artifact), "--wav", str(wav), "--image", str(png)], capsys)
    assert out["modalities"] == ["audio", "image"]
    assert any("PCA" in n for n in out["notes"])
    # the same prediction as the library path with the same preprocessing
    from edgefuse.cli.run import image_input, wav_input
    from edgefuse.runtime import load

    with load(artifact) as session:
        specs = {m["name"]: m for m in session.manifest.data["modalities"]}
        image, notes = image_input(png, specs["image"])
        x = {"audio": wav_input(wav, specs["audio"]), "image": image}
        assert x["image"].shape == (1, 1, 8, 8)
        assert x["image"].max() == pytest.approx(1.0)
        pred = session.predict(x)
    assert out["notes"] == notes
    assert pred.labels[0] == out["label"]
    assert out["probability"] == float(pred.probabilities[0, pred.label_ids[0]])
    # The table (no --json) shows the same prediction, to the printed precision.
    image_only = _run_json([str(artifact), "--image", str(png)], capsys)
    assert main(["run", str(artifact), "--image", str(png)]) == 0
    text = capsys.readouterr().out
    title = f"{image_only['label']} (p={image_only['probability']:.3f}) from image on onnxruntime"
    rows = [
        [cell.strip() for cell in line.split("│")[1:-1]] for line in text.splitlines() if line.startswith("│")
    ]
    assert rows == [
        [str(rank), item["label"], f"{item['probability']:.4f}"]
        for rank, item in enumerate(image_only["top3"], 1)
    ]
    flat = " ".join(text.split())  # rich wraps the title and the notes
    assert title in flat
    assert image_only["notes"] == out["notes"]
    for note in image_only["notes"]:
        assert " ".join(f"note: {note}".split()) in flat


def test_run_fsdd_wav(artifact: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = os.environ.get("EDGEFUSE_FSDD")
    if not root:
        pytest.skip("EDGEFUSE_FSDD is not set (the synthesised-WAV test covers --wav)")
    wavs = sorted(Path(root).rglob("*.wav"))
    if not wavs:
        pytest.skip(f"no .wav under EDGEFUSE_FSDD={root}")
    out = _run_json([str(artifact), "--wav", str(wavs[0])], capsys)
    assert out["modalities"] == ["audio"]
    # The same prediction as the library path with the same preprocessing (label, top 3, probabilities).
    from edgefuse.cli.run import wav_input
    from edgefuse.runtime import load

    with load(artifact) as session:
        spec = next(m for m in session.manifest.data["modalities"] if m["name"] == "audio")
        pred = session.predict({"audio": wav_input(wavs[0], spec)})
        labels = session.label_names
    probs = pred.probabilities[0]
    assert out["label"] == pred.labels[0]
    assert out["probability"] == float(probs[pred.label_ids[0]])
    assert out["top3"] == [
        {"label": labels[i], "probability": float(probs[i])} for i in np.argsort(-probs)[:3].tolist()
    ]
    assert out["notes"] == []
    assert out["backend"] == "onnxruntime"


def test_run_errors(artifact: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(artifact), "--wav", str(tmp_path / "missing.wav")]) == 2
    assert "no such file" in _err(capsys)
    assert main(["run", str(artifact)]) == 2
    assert "no input" in _err(capsys)
    assert main(["run", str(tmp_path / "nope"), "--npz", "x.npz"]) == 2
    assert "no such artifact folder" in _err(capsys)
    npz = tmp_path / "bad.npz"
    np.savez(npz, lidar=np.zeros((1, 3), np.float32))
    assert main(["run", str(artifact), "--npz", str(npz)]) == 2
    assert "unknown modality 'lidar'" in _err(capsys)
    png = _png(tmp_path / "p.png")
    assert main(["run", str(artifact), "--npz", str(npz), "--image", str(png)]) == 2
    assert "not both" in _err(capsys)
