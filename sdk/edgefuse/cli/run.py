"""``edgefuse run``: predict one sample with an exported artifact, from a WAV, a PNG or an .npz of inputs.

``--wav`` goes through the artifact's audio preprocessing (the manifest's ``logmel-v1`` parameters);
``--image`` loads a PNG as grayscale in [0, 1], block-averages it to the modality's shape (8x8) and
applies the manifest's image parameters (``scale``: pixel values are first mapped to the dataset's raw
range ``0..1/scale`` and then multiplied by ``scale``); ``--npz`` gives arrays by modality name.

Every input file is untrusted: it is read through :mod:`edgefuse.trust` (regular files only, bounded
reads: :data:`~edgefuse.data.audio.MAX_WAV_BYTES` for a WAV, :data:`MAX_IMAGE_BYTES` and
:data:`MAX_IMAGE_PIXELS` for an image, :data:`MAX_NPZ_INPUT_BYTES` for an .npz, whose every array header is
checked before anything is allocated and which is never unpickled).

``--json [PATH|-]``, ``--quiet``, ``--verbose`` and ``--log PATH`` follow the CLI conventions
(:mod:`edgefuse.cli`); ``--json`` gives the prediction.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
from pathlib import Path
from typing import Any

import numpy as np

from edgefuse.cli._common import add_pin_arg, add_runtime_threads_arg, module_available
from edgefuse.cli._help import examples
from edgefuse.cli._output import add_json_arg, add_output_args

#: Largest image file ``--image`` reads (bytes).
MAX_IMAGE_BYTES = 64 << 20
#: Largest image ``--image`` decodes (pixels, e.g. 4096 x 4096); it is block-averaged down to 8x8 anyway.
MAX_IMAGE_PIXELS = 4096 * 4096
#: Largest ``--npz`` file, and largest total of the array bytes its headers declare (one sample is a few KB).
MAX_NPZ_INPUT_BYTES = 256 << 20


def _missing(p: Path) -> bool:
    """True when nothing at all is at ``p`` (a FIFO or a device is there, and is refused when read)."""
    return not os.path.lexists(p)


DESCRIPTION = """Predict one sample with an exported artifact and print the label, its probability, \
the top 3 and the modalities used. Needs numpy and the artifact's runtime only (no PyTorch).

Give the sample as files: --wav x.wav for an audio modality trained on recordings (logmel-v1, e.g. a \
model trained on --data av-digits) and/or --image x.png for an 8x8 image modality; or as arrays: --npz \
inputs.npz, one array per modality name, with or without the batch dimension. A modality you do not \
give is absent, as on a device without that sensor.

--wav goes through the artifact's own audio preprocessing (the manifest's logmel-v1 parameters); \
--image loads the PNG as grayscale in [0, 1], block-averages it to the modality's shape (8x8) and \
applies the manifest's image parameters. Input files are untrusted: regular files only, bounded reads, \
an .npz is never unpickled."""

EPILOG = examples(
    "# one blank 8x8 image as an .npz, fed to the quickstart artifact (its audio modality absent)",
    "python -c \"import numpy as np; np.savez('image.npz', image=np.zeros((1, 8, 8), 'float32'))\"",
    "edgefuse run out/quickstart/cli-x86 --npz image.npz",
    "edgefuse run out/quickstart/cli-x86 --npz image.npz --json",
    note="out/quickstart/cli-x86 is the artifact of the 'edgefuse export --help' examples. --wav needs an "
    "artifact of a model trained on recordings (--data av-digits, the FSDD spoken digits).",
)


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register the subcommand."""
    p = sub.add_parser(
        "run",
        help="predict one sample with an exported artifact",
        description=DESCRIPTION,
        epilog=EPILOG,
    )
    p.add_argument("artifact", help="artifact folder (with manifest.json)")
    p.add_argument("--profile", default=None, help="device profile id or TOML path (default: the manifest's)")
    p.add_argument("--backend", default=None, help="backend name (default: from the profile)")
    p.add_argument(
        "--wav",
        default=None,
        help="mono 16-bit PCM WAV for an audio modality trained on recordings (logmel-v1)",
    )
    p.add_argument("--image", default=None, help="PNG for the 8x8 image modality (loaded as grayscale)")
    p.add_argument(
        "--npz", default=None, help=".npz of inputs keyed by modality name (with or without batch)"
    )
    add_json_arg(p, "the prediction (label, probability, top 3, modalities used, backend, notes)")
    add_runtime_threads_arg(p)
    add_pin_arg(p)
    add_output_args(p, log="run")
    return p


def _modality(manifest: Any, kind: str) -> dict[str, Any]:
    """The manifest entry ``--wav`` (``kind="audio"``) or ``--image`` (``kind="image"``) feeds.

    ``--wav`` needs a modality whose preprocessing is ``logmel-v1`` (log-mel features of a recording);
    ``--image`` a ``digits*`` modality, or one named ``image`` with no declared preprocessing.

    Raises:
        ContractError: No such modality. The message says what the artifact's modality of that name was
            trained on (e.g. ``synthetic-logmel`` for ``--data av-digits-synthetic-audio``), that the file
            cannot be turned into its input, and how to give inputs instead (``--npz``, or a model trained
            on the FSDD recordings for WAV input).
    """
    from edgefuse.errors import ContractError

    mods = list(manifest.data["modalities"])
    if kind == "audio":
        found = [m for m in mods if m.get("preprocessing") == "logmel-v1"]
    else:
        found = [
            m
            for m in mods
            if str(m.get("preprocessing", "")).startswith("digits")
            or (m["name"] == "image" and m.get("preprocessing") in (None, "", "none"))
        ]
    if found:
        return found[0]
    flag, file = ("--wav", "a WAV") if kind == "audio" else ("--image", "an image file")
    wanted, what = (
        ("logmel-v1", "log-mel features of a recording")
        if kind == "audio"
        else ("digits8x8-v1", "8x8 images")
    )
    npz = (
        "give the inputs as arrays instead: --npz inputs.npz, an .npz keyed by modality name ("
        + ", ".join(f"{m['name']}: {m.get('dtype', 'float32')} {tuple(m['shape'])}" for m in mods)
        + ")"
    )
    same = next((m for m in mods if m["name"] == kind), None)
    if same is None:
        raise ContractError(
            f"{flag} was given but the artifact {manifest.root} has no {kind} modality that takes {file} "
            f"({wanted}: {what}); its modalities are {[m['name'] for m in mods]}: {npz}"
        )
    trained = same.get("preprocessing")
    synthetic = str(trained).startswith("synthetic")
    where = ""
    if trained == "synthetic-logmel":
        where = " (a model trained on --data av-digits-synthetic-audio)"
    elif synthetic:
        where = " (a model trained on --data synthetic)"
    fix = ""
    if kind == "audio":
        fix = "; for WAV input, train on --data av-digits (the FSDD spoken-digit recordings) and export that model"
        with contextlib.suppress(ContractError):
            fix += f" (--image alone still feeds its {_modality(manifest, 'image')['name']!r} modality)"
    raise ContractError(
        f"{flag}: the artifact's {kind!r} modality was trained on {trained!r} inputs{where}, not on "
        f"{wanted} ({what}), so {file} cannot be turned into its input; "
        f"{npz}{fix}"
    )


def wav_input(path: str | Path, spec: dict[str, Any]) -> np.ndarray:
    """``(1, *shape)`` float32 features of a WAV through the modality's ``logmel-v1`` parameters."""
    from edgefuse.data.audio import AudioFeatureConfig, logmel, read_wav
    from edgefuse.errors import ContractError

    p = Path(path)
    if _missing(p):
        raise ContractError(f"--wav {p}: no such file; give a mono 16-bit PCM WAV")
    try:
        cfg = AudioFeatureConfig.from_dict(dict(spec.get("params") or {}))
    except (TypeError, ValueError, OverflowError) as exc:  # DataError (a ValueError) included
        raise ContractError(
            f"--wav {p}: the artifact's {spec['name']!r} preprocessing params cannot be used "
            f"({type(exc).__name__}: {exc}); re-export the artifact"
        ) from None
    wave_, _ = read_wav(p, sample_rate=cfg.sample_rate)
    feats = logmel(wave_, cfg)
    shape = tuple(int(d) for d in spec["shape"])
    if feats.shape != shape:
        raise ContractError(
            f"--wav {p}: logmel-v1 features have shape {feats.shape}, the artifact's {spec['name']!r} takes "
            f"{shape}; the manifest's preprocessing params do not match the graph: re-export the artifact"
        )
    return feats[None].astype(np.dtype(spec["dtype"]), copy=False)


def _check_pixels(p: Path, width: int, height: int) -> None:
    from edgefuse.errors import ContractError

    if width * height > MAX_IMAGE_PIXELS:
        raise ContractError(
            f"--image {p}: {width}x{height} pixels, more than the {MAX_IMAGE_PIXELS} pixels (4096x4096) read; "
            "downscale it first (it is block-averaged to the modality's 8x8 anyway)"
        )


def _read_gray(p: Path, data: bytes) -> np.ndarray:
    """Grayscale float image in [0, 1] from the file's bytes (PIL when installed, else matplotlib).

    Raises:
        BackendUnavailableError: Neither Pillow nor matplotlib is installed (a device with only a runtime
            extra); the message says what to install.
    """
    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as im:
            _check_pixels(p, im.width, im.height)  # from the header, before decoding
            arr = np.asarray(im.convert("L"), dtype=np.float64) / 255.0
    except ImportError:
        if not module_available("matplotlib"):
            from edgefuse.errors import BackendUnavailableError

            raise BackendUnavailableError(
                f"--image {p}: decoding an image needs Pillow or matplotlib, and neither is installed here: "
                "pip install pillow (or give the input as --npz)"
            ) from None
        import matplotlib.image as mpimg

        arr = np.asarray(mpimg.imread(io.BytesIO(data)), dtype=np.float64)
        if arr.max() > 1.0:  # integer images from non-PNG readers
            arr = arr / 255.0
        if arr.ndim == 3:
            arr = arr[..., :3].mean(axis=2)
    return arr


def image_input(path: str | Path, spec: dict[str, Any]) -> tuple[np.ndarray, list[str]]:
    """``(1, *shape)`` float32 image and notes (PCA-degraded training input, cropping)."""
    from edgefuse.errors import BackendUnavailableError, ContractError, EdgeFuseError
    from edgefuse.trust import read_bounded

    p = Path(path)
    if _missing(p):
        raise ContractError(f"--image {p}: no such file; give a PNG")
    try:
        data = read_bounded(p, max_bytes=MAX_IMAGE_BYTES, what=f"--image {p}")
    except EdgeFuseError as exc:
        raise ContractError(f"{exc}; give a regular PNG file of at most {MAX_IMAGE_BYTES} bytes") from None
    try:
        gray = _read_gray(p, data)
    except (ContractError, BackendUnavailableError):
        raise
    except Exception as exc:
        raise ContractError(
            f"--image {p}: cannot read it as an image ({type(exc).__name__}: {exc})"
        ) from None
    if gray.ndim != 2:
        raise ContractError(
            f"--image {p}: decoded to shape {gray.shape}, not a 2-D grayscale image; give a PNG"
        )
    shape = tuple(int(d) for d in spec["shape"])
    if len(shape) < 2:
        raise ContractError(
            f"--image {p}: the artifact's {spec['name']!r} takes shape {shape} per row, not an (H, W) image; "
            "give the input with --npz instead"
        )
    out_h, out_w = shape[-2], shape[-1]
    h, w = gray.shape
    notes: list[str] = []
    if h < out_h or w < out_w:
        raise ContractError(f"--image {p}: {h}x{w} pixels is smaller than the modality's {out_h}x{out_w}")
    bh, bw = h // out_h, w // out_w
    if (bh * out_h, bw * out_w) != (h, w):
        top, left = (h - bh * out_h) // 2, (w - bw * out_w) // 2
        gray = gray[top : top + bh * out_h, left : left + bw * out_w]
        notes.append(f"image cropped (centred) from {h}x{w} to {bh * out_h}x{bw * out_w} to block-average")
    small = gray.reshape(out_h, bh, out_w, bw).mean(axis=(1, 3))
    params = dict(spec.get("params") or {})
    scale = params.get("scale")
    if scale is not None:
        if isinstance(scale, bool) or not isinstance(scale, int | float) or not 0 < float(scale) < 1e6:
            raise ContractError(
                f"--image {p}: the artifact's {spec['name']!r} params.scale is {scale!r:.60}; expected a number "
                "in (0, 1e6): re-export the artifact"
            )
        small = np.round(small / float(scale)) * float(scale)  # raw dataset range 0..1/scale, then * scale
    if params.get("pca_components") is not None:
        notes.append(
            f"the image modality was trained on PCA-degraded images ({params['pca_components']} components, "
            f"fit on {params.get('pca_fit') or 'training rows'}); this image is used as given, not degraded"
        )
    x = np.broadcast_to(small, shape).astype(np.dtype(spec["dtype"]))
    return x[None], notes


def npz_inputs(path: str | Path, session: Any) -> dict[str, np.ndarray]:
    """Arrays of an .npz keyed by modality name (a batch dimension is added when missing).

    Raises:
        ContractError: See :func:`read_npz`.
    """
    return _add_batch(read_npz(path), session)


def read_npz(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays of an .npz of inputs, keyed by member name.

    The file is read with :func:`edgefuse.trust.read_bounded` and :func:`edgefuse.trust.load_npz`: every
    array header is checked before anything is allocated, pickled objects are refused.

    Raises:
        ContractError: No such file, not a regular file, larger than :data:`MAX_NPZ_INPUT_BYTES`, not an
            .npz of plain arrays, or a header that declares more data than the file holds.
    """
    from edgefuse.errors import ContractError, EdgeFuseError
    from edgefuse.trust import load_npz, read_bounded

    p = Path(path)
    if _missing(p):
        raise ContractError(f"--npz {p}: no such file")
    fix = (
        "give an .npz of plain numeric arrays keyed by modality name, e.g. np.savez(path, audio=x), of at "
        f"most {MAX_NPZ_INPUT_BYTES} bytes"
    )
    try:
        raw = read_bounded(p, max_bytes=MAX_NPZ_INPUT_BYTES, what=f"--npz {p}")
        arrays = load_npz(raw, what=f"--npz {p}", max_bytes=MAX_NPZ_INPUT_BYTES)
    except EdgeFuseError as exc:
        raise ContractError(f"{exc}; {fix}") from None
    return arrays


def _add_batch(arrays: dict[str, np.ndarray], session: Any) -> dict[str, np.ndarray]:
    """Add a batch dimension to arrays holding exactly one sample of their modality."""
    specs = {m["name"]: m for m in session.manifest.data["modalities"]}
    out = {}
    for key, value in arrays.items():
        spec = specs.get(key)
        one_row = spec is not None and value.shape == tuple(int(d) for d in spec["shape"])
        out[key] = value[None] if one_row else value
    return out


def run(args: argparse.Namespace) -> int:
    """Predict and print label, probability, top-3, modalities used and backend.

    A table (stdout) and notes; ``--json`` gives the prediction as JSON, alone on stdout (``--json``,
    ``--json -``) or in a file with the table kept (``--json PATH``). The runtime's own output goes to the
    ``--log`` file (:func:`edgefuse.cli._output.converter_log`).

    Args:
        args: The parsed arguments.

    Returns:
        0 (errors are raised).
    """
    from edgefuse.cli._output import emit_json, human_console, json_stdout, json_target
    from edgefuse.errors import ContractError
    from edgefuse.runtime import load

    if args.npz and (args.wav or args.image):
        raise ContractError("give either --npz, or --wav and/or --image, not both")
    if not (args.npz or args.wav or args.image):
        raise ContractError("no input: give --wav x.wav and/or --image x.png, or --npz inputs.npz")
    if not Path(args.artifact).is_dir():
        raise ContractError(f"{args.artifact}: no such artifact folder (it must hold manifest.json)")
    json_target(args, protect=(("the artifact folder", args.artifact),))
    notes: list[str] = []
    arrays = read_npz(args.npz) if args.npz else None  # refused before the artifact is loaded
    with load(
        args.artifact,
        profile=args.profile,
        backend=args.backend,
        threads=args.threads,
        manifest_sha256=args.manifest_sha256,
    ) as session:
        if arrays is not None:
            inputs = _add_batch(arrays, session)
        else:
            inputs = {}
            if args.wav:
                spec = _modality(session.manifest, "audio")
                inputs[spec["name"]] = wav_input(args.wav, spec)
            if args.image:
                spec = _modality(session.manifest, "image")
                inputs[spec["name"]], more = image_input(args.image, spec)
                notes += more
        pred = session.predict(inputs)
    probs = pred.probabilities[0]
    order = np.argsort(-probs)[:3]
    labels = session.label_names
    result = {
        "label": pred.labels[0],
        "probability": float(probs[pred.label_ids[0]]),
        "top3": [{"label": labels[i], "probability": float(probs[i])} for i in order.tolist()],
        "modalities": [m for m, used in zip(pred.modalities, pred.present[0].tolist(), strict=True) if used],
        "backend": pred.backend,
        "notes": notes,
    }
    if json_stdout(args):
        emit_json(args, result)
        return 0
    from rich.table import Table

    table = Table(
        title=f"{result['label']} (p={result['probability']:.3f}) from {', '.join(result['modalities'])} "
        f"on {result['backend']}"
    )
    table.add_column("rank", justify="right")
    table.add_column("label")
    table.add_column("probability", justify="right")
    for rank, item in enumerate(result["top3"], 1):
        table.add_row(str(rank), item["label"], f"{item['probability']:.4f}")
    console = human_console(args)
    console.print(table)
    for text in notes:
        console.print(f"note: {text}", highlight=False)
    emit_json(args, result)
    return 0
