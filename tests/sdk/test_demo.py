"""``edgefuse demo`` end to end (quick settings), its report, the cache on a second run, and a real browser."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from edgefuse.cli import main

PROFILES = (
    "generic/x86-64",
    "google/pixel-8",
    "generic/smart-speaker",
    "apple/iphone-15-pro",
    "nvidia/jetson-orin-nano",
)
ARGS = [
    "--epochs",
    "2",
    "--iters",
    "5",
    "--warmup",
    "1",
    "--audio",
    "synthetic",
    "--profiles",
    ",".join(PROFILES),
]
LITERT = importlib.util.find_spec("ai_edge_litert") is not None
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Run the demo twice into one folder; return both reports and the folder."""
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    out = tmp_path_factory.mktemp("demo") / "out"
    assert main(["demo", "--out", str(out), *ARGS]) == 0
    first = json.loads((out / "report.json").read_text())
    ckpt = Path(first["checkpoint"]) / "model.safetensors"
    before = ckpt.stat().st_mtime_ns
    assert main(["demo", "--out", str(out), *ARGS]) == 0
    second = json.loads((out / "report.json").read_text())
    return {"out": out, "first": first, "second": second, "ckpt_unchanged": ckpt.stat().st_mtime_ns == before}


def test_demo_models_and_selection(demo: dict[str, Any]) -> None:
    report = demo["first"]
    assert report["data"]["audio"] == "synthetic"
    assert "SYNTHETIC" in report["data"]["label"]
    assert report["models"]["baseline"]["label"] == "supervised"
    assert report["models"]["best"]["label"] in ("supervised+moddrop", "supervised+masd")
    selection = report["selection"]
    assert selection["split"] == "val"
    best = report["models"]["best"]["label"]
    scores = selection["mean_val_accuracy"]
    assert scores[best] == max(v for k, v in scores.items() if k != "supervised")
    assert set(report["grid"]["test_sets"]) == {"audio+image", "audio", "image"}
    assert report["grid"]["improvements"], "no intervention row in the grid"


def test_demo_records_chance_and_definitions(demo: dict[str, Any]) -> None:
    report = demo["first"]
    assert report["definitions"] == "docs/metrics.md"
    assert "retention" in report["glossary"]
    assert "chance level" in report["glossary"]
    trained = {row["label"]: row for row in report["trained_models"]}
    assert set(trained) == set(report["selection"]["mean_val_accuracy"])
    for row in trained.values():
        assert row["split"] == "val"
        assert row["chance"] == pytest.approx(0.1, abs=0.02)  # ten digits, about balanced
        assert row["near_chance"] == (row["accuracy"] - row["chance"] <= 0.05)
    for role in ("baseline", "best"):
        model = report["models"][role]
        assert model["near_chance"] == trained[model["label"]]["near_chance"]
    assert isinstance(report["warnings"], list)
    assert report["not_learned"] == report["grid"]["not_learned"]
    assert demo["second"]["warnings"] == report["warnings"]  # kept with the reused models


def test_demo_degraded_sensors(demo: dict[str, Any]) -> None:
    corruption = demo["first"]["corruption"]
    # synthetic audio: features only, so no "another microphone" EQ (it needs the waveform)
    assert corruption["kinds"] == [["audio", "noise"], ["image", "noise"]]
    for role in ("baseline", "best"):
        res = corruption["models"][role]
        assert len(res["curves"]) == 2 * 5
        for c in res["curves"]:
            assert c["regret"] == pytest.approx(max(c["single"].values()) - c["fused"])
            assert c["domain"] == ("features" if c["modality"] == "audio" else "pixels")
    assert Path(demo["first"]["plots"]["corruption"]).stat().st_size > 0
    assert "Fusion regret" in (demo["out"] / "report.html").read_text(encoding="utf-8")


def test_demo_exports_every_profile_with_reasons(demo: dict[str, Any]) -> None:
    exports = {(e["profile"], e["format"]): e for e in demo["first"]["exports"]}
    assert set(exports) == {
        ("generic/x86-64", "onnx"),
        ("google/pixel-8", "tflite"),
        ("generic/smart-speaker", "tflite"),
        ("generic/smart-speaker", "onnx"),
        ("apple/iphone-15-pro", "coreml"),
        ("nvidia/jetson-orin-nano", "tensorrt"),
        ("nvidia/jetson-orin-nano", "onnx"),
    }
    for key, e in exports.items():
        assert e["status"] in ("ok", "unavailable"), (key, e.get("reason"))
        if e["status"] == "unavailable":
            assert e["reason"], key
    x86 = exports[("generic/x86-64", "onnx")]
    assert x86["parity_passed"] is True
    assert x86["parity_max_abs_logits"] < 1e-4
    trt = exports[("nvidia/jetson-orin-nano", "tensorrt")]
    if importlib.util.find_spec("tensorrt") is None:
        assert trt["status"] == "unavailable"
        assert "tensorrt" in trt["reason"]
    assert exports[("nvidia/jetson-orin-nano", "onnx")]["note"]  # fp16 preferred, ONNX is fp32: said so
    if LITERT:
        assert exports[("google/pixel-8", "tflite")]["parity_passed"] is True


def test_demo_accuracy_on_the_device_artifacts(demo: dict[str, Any]) -> None:
    acc = {a["profile"]: a for a in demo["first"]["accuracy"]}
    x86 = acc["generic/x86-64"]
    assert x86["backend"] == "onnxruntime"
    assert set(x86["accuracy"]) == {"audio+image", "audio", "image"}
    for pattern, value in x86["accuracy"].items():  # the fp32 artifact reproduces PyTorch's accuracy
        assert value == pytest.approx(x86["reference"][pattern], abs=2 / x86["rows"])
    speaker = acc["generic/smart-speaker"]
    assert set(speaker["accuracy"]) == {"audio"}  # no camera: only the audio pattern exists there
    iphone = acc["apple/iphone-15-pro"]
    assert iphone["backend"] is None
    assert "macOS" in iphone["reason"]
    assert iphone["reference"]


def test_demo_bench_per_profile(demo: dict[str, Any]) -> None:
    bench = {b["profile"]: b for b in demo["first"]["bench"]}
    for pid in ("generic/x86-64", "nvidia/jetson-orin-nano", "generic/smart-speaker"):
        b = bench[pid]
        assert b["backend"] in ("onnxruntime", "litert")
        assert b["peak_rss_mb"] > 0
        for row in b["results"]:
            assert row["p50_ms"] > 0
            assert row["p50_ms"] <= row["p99_ms"]
            assert row["throughput_b8"] > 0
            assert row["estimate"]["kind"] == "estimate"
            assert row["estimate"]["ms"] > 0
            assert row["cv"] is not None
    assert bench["nvidia/jetson-orin-nano"]["backend"] == "onnxruntime"  # tensorrt skipped, next in order
    # the smart speaker has budgets: each pattern is checked against its target estimate
    for row in bench["generic/smart-speaker"]["results"]:
        assert row["budget"]["latency"] == "pass"  # a tiny model, far inside 200 ms on a Cortex-A53
        assert row["budget"]["memory"] == "pass"
    iphone = bench["apple/iphone-15-pro"]
    assert iphone["results"] == []
    assert all(e["ms"] > 0 for e in iphone["estimates"].values())
    assert all(e["budget"]["memory"] == "pass" for e in iphone["estimates"].values())


def test_demo_html_is_self_contained(demo: dict[str, Any]) -> None:
    page = (demo["out"] / "report.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page
    refs = re.findall(r"""(?:src|href)=["']([^"']*)["']""", page)
    images = [r for r in refs if not r.startswith("#")]  # in-page links to the definitions
    assert images
    assert all(r.startswith("data:image/png;base64,") for r in images), [r[:40] for r in images]
    assert len(images) == 4  # heatmap, accuracy, corruption, latency
    ids = set(re.findall(r'id="([^"]+)"', page))
    assert {r[1:] for r in refs if r.startswith("#")} <= ids  # every in-page link lands
    for name in (
        "Summary per device profile",
        "Robustness grid",
        "Exports per profile",
        "Latency per profile",
        "Degraded sensors",
    ):
        assert name in page
    assert "SYNTHETIC AUDIO" in page
    for pid in PROFILES:
        assert pid in page
    assert "{'" not in page  # no Python dict repr (the splits read "train ... · val ... · test ...")
    assert "Definitions" in page
    assert "docs/metrics.md" in page
    # Core ML converts here but cannot run (macOS): never shown as a plain green "ok"
    coreml = next(e for e in demo["first"]["exports"] if e["format"] == "coreml")
    if coreml["status"] == "ok" and coreml["parity_passed"] is None:
        assert "coreml fp16: converted, not run here (needs macOS)" in page


def test_second_run_reuses_models_and_exports(demo: dict[str, Any]) -> None:
    second = demo["second"]
    assert second["reused_models"] is True
    assert demo["ckpt_unchanged"]
    assert all(e["reused"] for e in second["exports"] if e["status"] == "ok")
    assert second["models"] == demo["first"]["models"]


def test_demo_refuses_bad_input_without_running(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--out", str(tmp_path / "a"), "--fsdd", str(tmp_path / "nope")]) == 2
    assert "FSDD" in capsys.readouterr().err
    assert main(["demo", "--out", str(tmp_path / "b"), "--profiles", "generic/x86-46"]) == 2
    assert "did you mean 'generic/x86-64'" in capsys.readouterr().err
    assert not (tmp_path / "b" / "models").exists()


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_report_renders_in_headless_chromium(demo: dict[str, Any], tmp_path: Path) -> None:
    from PIL import Image

    html = demo["out"] / "report.html"
    shot = tmp_path / "report.png"
    base = [str(CHROMIUM), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    run = subprocess.run(
        [*base, "--window-size=1280,3000", f"--screenshot={shot}", html.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    image = np.asarray(Image.open(shot).convert("RGB"))
    assert image.shape[:2] == (3000, 1280)
    # a page that rendered: mostly light background, real content (text, tables, plots) on a good share
    background = np.all(image > 240, axis=2).mean()
    assert 0.2 < background < 0.97, background
    colours = len(np.unique(image.reshape(-1, 3)[::7], axis=0))
    assert colours > 300, colours  # the embedded plots decode (text alone has few colours)
    dom = subprocess.run([*base, "--dump-dom", html.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert dom.stdout.count("<img") == 4
    assert "Summary per device profile" in dom.stdout


def test_a_failing_backend_is_reported_per_profile(
    demo: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import edgefuse.bench.artifact
    from edgefuse.demo import DemoConfig, _bench, _Steps
    from edgefuse.profiles import get_profile
    from edgefuse.runtime.errors import BackendError

    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise BackendError("onnxruntime cannot load encoder_audio.onnx: simulated")

    monkeypatch.setattr(edgefuse.bench.artifact, "bench_artifact", broken)
    report = demo["first"]
    rows = _bench(
        [get_profile("generic/x86-64")],
        report["exports"],
        DemoConfig(out=demo["out"], rss=False),
        demo["out"],
        Path(report["checkpoint"]),
        _Steps(lambda _m: None, lambda _m: None),
    )
    (row,) = rows
    assert row["backend"] is None
    assert row["results"] == []
    assert "simulated" in row["reason"]
