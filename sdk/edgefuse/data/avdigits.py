"""AV-digits: spoken digits (FSDD) paired by label with handwritten 8x8 digits (scikit-learn).

* Audio: the Free Spoken Digit Dataset, read from a folder the user points at (never copied, never
  written to), turned into ``logmel-v1`` features (:mod:`edgefuse.data.audio`) that are cached on disk.
* Image: ``sklearn.datasets.load_digits`` (1,797 images shipped inside the scikit-learn wheel), pixels / 16,
  split 60/20/20 into disjoint train/val/test rows. ``load_digits`` carries no writer ids, but its rows are
  grouped by writer, so the default split takes contiguous blocks of rows (``image_split="blocks"``: as
  writer-disjoint as the data allows; a random split leaks writers and inflates image accuracy by about
  10 points); ``image_split="random"`` is the stratified random split. Optionally degraded by a PCA fitted
  on train rows.
* Splits are speaker-disjoint for audio (train jackson+nicolas, val yweweler, test theo by default); each
  recording is paired with a same-label image drawn (seeded) from its split's image rows.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import re
import tempfile
import time
import warnings
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgefuse.cache import CACHE_ENV, cache_root
from edgefuse.data import audio as _audio
from edgefuse.data.audio import AudioFeatureConfig
from edgefuse.data.base import MultimodalDataset, Split
from edgefuse.errors import DataError, did_you_mean
from edgefuse.specs import ModalitySpec

__all__ = [
    "FEATURE_VERSION",
    "FSDD_ATTRIBUTION",
    "FSDD_URL",
    "load_av_digits",
    "load_av_digits_synthetic_audio",
    "resolve_fsdd",
    "synthesize_spectrograms",
]

logger = logging.getLogger(__name__)

#: Bump when the audio features change for the same inputs (invalidates every feature cache).
FEATURE_VERSION = "logmel-v1.1"
FSDD_URL = "https://github.com/Jakobovski/free-spoken-digit-dataset"
FSDD_ATTRIBUTION = (
    "Free Spoken Digit Dataset (FSDD), Zohar Jackson and contributors, "
    "https://github.com/Jakobovski/free-spoken-digit-dataset, CC BY-SA 4.0"
)
FSDD_ENV = "EDGEFUSE_FSDD"
LAYOUT = "{digit}_{speaker}_{index}.wav (e.g. 7_jackson_32.wav, digit 0-9)"
SPLITS = ("train", "val", "test")
IMAGE_FRACTIONS = (0.6, 0.2, 0.2)

_NAME_RE = re.compile(r"^(\d+)_([A-Za-z0-9]+)_(\d+)\.wav$", re.IGNORECASE)
_WHAT_IS_FSDD = (
    "FSDD is the Free Spoken Digit Dataset: 2,000 8 kHz mono recordings of the spoken digits 0-9 by 4 "
    f"speakers, published at {FSDD_URL} (CC BY-SA 4.0). Clone or download it and point EdgeFuse at its "
    f"folder (the one containing recordings/, or recordings/ itself) with `--fsdd PATH` or `{FSDD_ENV}=PATH`"
)
_SHOW_SKIPPED = 5
#: Most bytes of .wav files read from one FSDD folder (each file is also bounded by
#: :data:`edgefuse.data.audio.MAX_WAV_BYTES`); the real FSDD holds about 20 MB.
MAX_FSDD_BYTES = 1 << 30


def _is_wav(p: Path) -> bool:
    """Whether ``p`` is named ``*.wav`` and is not a folder.

    A FIFO, a device or a dangling symlink named ``*.wav`` counts, so that reading it reports it (the
    reader refuses it without opening it) instead of silently leaving it out.
    """
    return p.suffix.lower() == ".wav" and not p.is_dir()


def resolve_fsdd(path: str | Path | None = None) -> Path:
    """Find the FSDD recordings folder.

    Args:
        path: The FSDD root (containing ``recordings/``) or the recordings folder itself; ``None`` reads
            ``$EDGEFUSE_FSDD``.

    Returns:
        The absolute folder that holds the ``.wav`` recordings.

    Raises:
        DataError: When no path is given and ``$EDGEFUSE_FSDD`` is unset, when the path does not exist or is
            not a folder, or when it holds no ``.wav`` file. The message says what FSDD is, where it is
            published and how to point at it.
    """
    return _resolve(path)[1]


def _resolve(path: str | Path | None) -> tuple[Path, Path]:
    """Return ``(root the user named, folder holding the .wav files)``; see :func:`resolve_fsdd`."""
    if path is None or str(path) == "":
        env = os.environ.get(FSDD_ENV, "")
        if not env:
            raise DataError(f"no FSDD folder given and ${FSDD_ENV} is not set. {_WHAT_IS_FSDD}.")
        path, origin = env, f"${FSDD_ENV}"
    else:
        origin = "the given path"
    root = Path(path).expanduser().resolve()
    if not root.exists():
        raise DataError(f"FSDD folder {root} (from {origin}) does not exist. {_WHAT_IS_FSDD}.")
    if not root.is_dir():
        raise DataError(f"FSDD path {root} (from {origin}) is a file, not a folder. {_WHAT_IS_FSDD}.")
    folder = root / "recordings" if (root / "recordings").is_dir() else root
    if not any(_is_wav(p) for p in folder.iterdir()):
        raise DataError(
            f"FSDD folder {folder} (from {origin}) contains no .wav recordings; expected files named "
            f"{LAYOUT}. {_WHAT_IS_FSDD}."
        )
    return root, folder


# --------------------------------------------------------------------------------------------------
# Scanning and audio features
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Recording:
    name: str
    label: int
    speaker: str
    data: bytes


def _parse_name(name: str) -> tuple[int, str]:
    m = _NAME_RE.match(name)
    if m is None:
        raise DataError(f"{name}: file name does not follow the FSDD layout {LAYOUT}; rename or remove it")
    digit, speaker, _ = m.groups()
    label = int(digit)
    if not 0 <= label <= 9 or len(digit) != 1:
        raise DataError(
            f"{name}: label {digit} is outside 0-9 (the digit is the first field of {LAYOUT}); "
            "rename or remove the file"
        )
    return label, speaker


def _scan(folder: Path, *, skip_bad: bool) -> tuple[list[_Recording], list[tuple[str, str]]]:
    """Read every ``.wav`` (sorted by name); return the well-named ones and the skipped (name, reason)."""
    recordings: list[_Recording] = []
    skipped: list[tuple[str, str]] = []
    total = 0
    for p in sorted((p for p in folder.iterdir() if _is_wav(p)), key=lambda p: p.name):
        try:
            label, speaker = _parse_name(p.name)
        except DataError as exc:
            if not skip_bad:
                raise
            skipped.append((p.name, str(exc)))
            continue
        try:
            data = _audio.read_wav_file(p)  # bounded; refuses FIFOs, devices, files over MAX_WAV_BYTES
        except DataError as exc:
            if not skip_bad:
                raise
            skipped.append((p.name, str(exc)))
            continue
        total += len(data)
        if total > MAX_FSDD_BYTES:
            raise DataError(
                f"FSDD folder {folder}: the .wav files hold more than {MAX_FSDD_BYTES} bytes (1 GiB) in all "
                f"(reached at {p.name}); FSDD itself holds about 20 MB: point --fsdd at the recordings only"
            )
        recordings.append(_Recording(p.name, label, speaker, data))
    return recordings, skipped


def _compute_features(
    recordings: Sequence[_Recording], cfg: AudioFeatureConfig, *, skip_bad: bool
) -> tuple[np.ndarray, list[int], list[tuple[str, str]]]:
    """Decode and featurise recordings.

    Returns:
        ``(features (K, 1, n_mels, frames), kept indices into recordings, skipped (name, reason))``.

    Raises:
        DataError: For an undecodable file when ``skip_bad`` is false (names the file).
    """
    waves: list[np.ndarray] = []
    kept: list[int] = []
    skipped: list[tuple[str, str]] = []
    for i, rec in enumerate(recordings):
        try:
            samples, rate = _audio.parse_wav_bytes(rec.data, rec.name)
            samples, _ = _audio._conform_rate(samples, rate, rec.name, cfg.sample_rate, resample_=True)
        except DataError as exc:
            if not skip_bad:
                raise
            skipped.append((rec.name, str(exc)))
            continue
        waves.append(samples)
        kept.append(i)
    return _audio.logmel_batch(waves, cfg), kept, skipped


def _cache_key(recordings: Sequence[_Recording], cfg: AudioFeatureConfig, *, skip_bad: bool) -> str:
    h = hashlib.sha256()
    header = {"version": FEATURE_VERSION, "config": cfg.to_dict(), "skip_bad": skip_bad}
    h.update(json.dumps(header, sort_keys=True).encode())
    for rec in recordings:
        h.update(f"\n{rec.name}\t{hashlib.sha256(rec.data).hexdigest()}".encode())
    return h.hexdigest()


def _cache_root(cache_dir: str | Path | None) -> Path:
    return cache_root(cache_dir, "features")


def _load_cache(path: Path, names: list[str]) -> tuple[np.ndarray, list[int], list[tuple[str, str]]] | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            features = z["features"]
            kept_names = [str(s) for s in z["names"]]
            skipped = [
                (str(a), str(b)) for a, b in zip(z["skipped_names"], z["skipped_reasons"], strict=True)
            ]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as exc:
        logger.warning("feature cache %s is unreadable (%s); recomputing", path, exc)
        return None
    index = {n: i for i, n in enumerate(names)}
    if len(features) != len(kept_names) or any(n not in index for n in kept_names):
        logger.warning("feature cache %s does not match the recordings; recomputing", path)
        return None
    return features, [index[n] for n in kept_names], skipped


def _save_cache(path: Path, features: np.ndarray, names: list[str], skipped: list[tuple[str, str]]) -> bool:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.stem + ".", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(
                    fh,
                    features=features,
                    names=np.array(names, dtype=str),
                    skipped_names=np.array([s[0] for s in skipped], dtype=str),
                    skipped_reasons=np.array([s[1] for s in skipped], dtype=str),
                )
            os.chmod(tmp, 0o644)  # mkstemp makes it 0600; a cache is as readable as a normal file
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        logger.warning("cannot write the feature cache %s (%s); continuing without it", path, exc)
        return False
    return True


# --------------------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------------------


def _load_digit_images() -> tuple[np.ndarray, np.ndarray]:
    """Return scikit-learn's digits as float64 ``(1797, 64)`` pixels / 16 and int64 labels.

    Reads the CSV that ships inside the scikit-learn wheel directly (``load_digits`` reads the same file),
    which avoids the ~2 s import of scikit-learn and SciPy; falls back to ``load_digits`` when the file is
    not where scikit-learn keeps it.
    """
    spec = importlib.util.find_spec("sklearn")
    if spec is None or spec.origin is None:
        raise DataError(
            "the image modality of AV-digits needs scikit-learn (its load_digits ships the 8x8 images) "
            "and it is not installed; install it with `pip install scikit-learn` or "
            "`pip install 'edgefuse[train]'`"
        )
    csv = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz"
    try:
        table = np.loadtxt(csv, delimiter=",", dtype=np.float64)
        if table.shape != (1797, 65):
            raise ValueError(f"unexpected shape {table.shape}")
        pixels, labels = table[:, :64], table[:, 64]
    except (OSError, ValueError) as exc:
        logger.debug("reading %s directly failed (%s); using sklearn.datasets.load_digits", csv, exc)
        from sklearn.datasets import load_digits

        digits = load_digits()
        pixels, labels = digits.data, digits.target
    return np.asarray(pixels, dtype=np.float64) / 16.0, np.asarray(labels).astype(np.int64)


def _split_image_rows(
    labels: np.ndarray, rng: np.random.Generator, mode: str = "blocks"
) -> dict[str, np.ndarray]:
    """60/20/20 split of image row indices (disjoint, each sorted): contiguous blocks or stratified random."""
    if mode == "blocks":
        cuts = np.round(np.cumsum(IMAGE_FRACTIONS)[:-1] * len(labels)).astype(int)
        return dict(zip(SPLITS, np.split(np.arange(len(labels)), cuts), strict=True))
    if mode != "random":
        raise DataError(
            f"image_split={mode!r}; expected 'blocks' (writer-disjoint as far as possible) or 'random'"
        )
    parts: dict[str, list[np.ndarray]] = {s: [] for s in SPLITS}
    bounds = np.cumsum(IMAGE_FRACTIONS)[:-1]
    for c in range(10):
        rows = rng.permutation(np.flatnonzero(labels == c))
        cuts = np.round(bounds * len(rows)).astype(int)
        for split, chunk in zip(SPLITS, np.split(rows, cuts), strict=True):
            parts[split].append(chunk)
    return {s: np.sort(np.concatenate(parts[s])) for s in SPLITS}


def _check_degrade(degrade_image: int | None) -> None:
    if degrade_image is not None and (
        isinstance(degrade_image, bool)
        or not isinstance(degrade_image, int | np.integer)
        or not 1 <= degrade_image <= 64
    ):
        raise DataError(
            f"degrade_image={degrade_image!r} is not allowed; use None (no degradation) or an int number of "
            "PCA components in 1..64 (3-4 makes the image about as informative as the audio)"
        )


def _image_spec(degrade_image: int | None) -> ModalitySpec:
    return ModalitySpec(
        "image",
        (1, 8, 8),
        "float32",
        "digits8x8-v1",
        {
            "scale": 1 / 16,
            "pca_components": degrade_image,
            "pca_fit": "train image rows" if degrade_image is not None else None,
            "source": "sklearn.datasets.load_digits",
        },
    )


def _pca_degrade(images: np.ndarray, train_rows: np.ndarray, k: int) -> tuple[np.ndarray, float]:
    """Project onto the top-``k`` principal components of the train rows and reconstruct.

    The components are the right singular vectors of the centred train matrix, computed as the
    eigenvectors of its 64x64 scatter matrix (``eigh``): the same subspace as an SVD, and it avoids a
    multi-threaded LAPACK SVD that was measured to stall for ~1 s on busy machines.
    """
    train = images[train_rows]
    mean = train.mean(axis=0)
    centred = train - mean
    eigvals, eigvecs = np.linalg.eigh(centred.T @ centred)  # ascending
    order = np.argsort(eigvals)[::-1]
    eigvals = np.clip(eigvals[order], 0.0, None)
    basis = eigvecs[:, order[:k]].T  # (k, 64), orthonormal rows
    explained = float(eigvals[:k].sum() / eigvals.sum())
    return mean + (images - mean) @ basis.T @ basis, explained


def _pair(
    audio_labels: np.ndarray, pool: np.ndarray, image_labels: np.ndarray, rng: np.random.Generator, split: str
) -> np.ndarray:
    """For each audio label pick a same-label image row from ``pool``; reuse rows only when needed."""
    chosen = np.empty(len(audio_labels), dtype=np.int64)
    for c in np.unique(audio_labels):
        where = np.flatnonzero(audio_labels == c)
        candidates = pool[image_labels[pool] == c]
        if not len(candidates):
            raise DataError(f"split {split!r} has recordings of digit {c} but no image of it to pair with")
        reps = -(-len(where) // len(candidates))
        picks = np.concatenate([rng.permutation(candidates) for _ in range(reps)])[: len(where)]
        chosen[where] = picks
    return chosen


# --------------------------------------------------------------------------------------------------
# The dataset
# --------------------------------------------------------------------------------------------------


def _check_speakers(split_speakers: dict[str, tuple[str, ...]], found: list[str], folder: Path) -> None:
    seen: dict[str, str] = {}
    for split, speakers in split_speakers.items():
        for spk in speakers:
            if spk in seen:
                raise DataError(
                    f"speaker {spk!r} is in both the {seen[spk]} and {split} speakers; splits must be "
                    f"speaker-disjoint; speakers found in {folder}: {found}"
                )
            seen[spk] = split
            if spk not in found:
                raise DataError(
                    f"{split} speaker {spk!r} has no recordings in {folder}; speakers found: {found}"
                    f"{did_you_mean(spk, found)}"
                )


def load_av_digits(
    fsdd: str | Path | None = None,
    *,
    train_speakers: Sequence[str] = ("jackson", "nicolas"),
    val_speakers: Sequence[str] = ("yweweler",),
    test_speakers: Sequence[str] = ("theo",),
    degrade_image: int | None = None,
    seed: int = 0,
    audio: AudioFeatureConfig = AudioFeatureConfig(),  # noqa: B008
    cache_dir: str | Path | None = None,
    skip_bad: bool = False,
    use_cache: bool = True,
    image_split: str = "blocks",
) -> MultimodalDataset:
    """Load AV-digits: FSDD log-mel audio paired by label with 8x8 digit images.

    Args:
        fsdd: FSDD root or recordings folder; ``None`` reads ``$EDGEFUSE_FSDD`` (see :func:`resolve_fsdd`).
        train_speakers: Speakers whose recordings form the train split.
        val_speakers: Speakers of the val split.
        test_speakers: Speakers of the test split. The three lists must be disjoint; a speaker found in the
            folder but in no list is unused.
        degrade_image: ``None`` keeps the images; ``k`` (1-64) replaces every image by its reconstruction
            from the top-``k`` PCA components fitted on the train image rows only.
        seed: Seeds the image split and the pairing (same seed, same dataset).
        image_split: ``blocks`` (default: contiguous row blocks, as writer-disjoint as the data allows) or
            ``random`` (stratified by label; leaks writers between splits).
        audio: The ``logmel-v1`` feature parameters.
        cache_dir: Feature cache root (``<cache_dir>/features/<sha256>.npz``); default ``$EDGEFUSE_CACHE_DIR``,
            else ``~/.cache/edgefuse``. Never inside the FSDD folder.
        skip_bad: Skip unusable files (bad name or label; not a regular file or larger than
            :data:`~edgefuse.data.audio.MAX_WAV_BYTES`; corrupt, truncated, stereo, not 16-bit, a sample rate
            outside ``MIN_SAMPLE_RATE..MAX_SAMPLE_RATE``, too long) with one warning instead of raising; they
            are counted in the warning and listed in ``meta["skipped"]``.
        use_cache: ``False`` neither reads nor writes the feature cache.

    Returns:
        A :class:`MultimodalDataset` named ``av-digits`` with modalities ``audio`` (float32
        ``audio.shape``) and ``image`` (float32 ``(1, 8, 8)``), labels 0-9 and splits train/val/test. Rows
        are in file-name order within a split. ``meta`` records the sources, speakers, counts, seed,
        degradation, audio config, cache path and hit, skipped files, image rows and FSDD attribution.

    Raises:
        DataError: When FSDD cannot be found, a file is unusable and ``skip_bad`` is false (the message
            names the file), the speaker lists overlap or name a speaker without recordings, or
            ``degrade_image`` is out of range.
    """
    _check_degrade(degrade_image)
    t0 = time.perf_counter()
    fsdd_root, folder = _resolve(fsdd)
    split_speakers = {
        "train": tuple(train_speakers),
        "val": tuple(val_speakers),
        "test": tuple(test_speakers),
    }

    recordings, skipped = _scan(folder, skip_bad=skip_bad)
    if not recordings:
        raise DataError(f"FSDD folder {folder}: no usable recordings named {LAYOUT} (skipped {len(skipped)})")
    names = [r.name for r in recordings]
    _check_speakers(split_speakers, sorted({r.speaker for r in recordings}), folder)

    cache_path: Path | None = None
    cached = None
    if use_cache:
        root = _cache_root(cache_dir)
        if root == fsdd_root or fsdd_root in root.parents:
            raise DataError(
                f"feature cache folder {root} is inside the FSDD folder {fsdd_root}, which is treated as "
                f"read-only; pass another cache_dir or set ${CACHE_ENV} to a folder outside it"
            )
        cache_path = root / f"{_cache_key(recordings, audio, skip_bad=skip_bad)}.npz"
        cached = _load_cache(cache_path, names)
    hit = cached is not None
    if cached is not None:
        features, kept, decode_skipped = cached
        logger.info("loaded AV-digits audio features from cache %s", cache_path)
    else:
        features, kept, decode_skipped = _compute_features(recordings, audio, skip_bad=skip_bad)
        if cache_path is not None and not _save_cache(
            cache_path, features, [names[i] for i in kept], decode_skipped
        ):
            cache_path = None
    skipped = sorted(skipped + decode_skipped)
    if skipped:
        shown = ", ".join(n for n, _ in skipped[:_SHOW_SKIPPED])
        more = f" and {len(skipped) - _SHOW_SKIPPED} more" if len(skipped) > _SHOW_SKIPPED else ""
        warnings.warn(
            f"AV-digits: skipped {len(skipped)} unusable file(s) in {folder} (skip_bad=True): {shown}{more}; "
            'the reasons are in meta["skipped"]',
            UserWarning,
            stacklevel=2,
        )
    kept_recs = [recordings[i] for i in kept]
    if not kept_recs:
        raise DataError(
            f"FSDD folder {folder}: every recording was unusable ({len(skipped)} skipped, see the warning); "
            "fix or replace the files"
        )
    audio_labels = np.array([r.label for r in kept_recs], dtype=np.int64)
    audio_speakers = np.array([r.speaker for r in kept_recs])
    found = sorted(set(audio_speakers.tolist()))

    images, image_labels = _load_digit_images()
    rng_split, *rng_pairs = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(1 + len(SPLITS))
    )
    pools = _split_image_rows(image_labels, rng_split, image_split)
    explained: float | None = None
    if degrade_image is not None:
        images, explained = _pca_degrade(images, pools["train"], int(degrade_image))
    images32 = images.reshape(-1, 1, 8, 8).astype(np.float32)

    splits: dict[str, Split] = {}
    image_index: dict[str, list[int]] = {}
    audio_files: dict[str, list[str]] = {}
    for (split, speakers), rng in zip(split_speakers.items(), rng_pairs, strict=True):
        rows = np.flatnonzero(np.isin(audio_speakers, list(speakers)))
        chosen = _pair(audio_labels[rows], pools[split], image_labels, rng, split)
        splits[split] = Split(
            {"audio": features[rows], "image": images32[chosen]},
            audio_labels[rows].copy(),
        )
        image_index[split] = chosen.tolist()
        audio_files[split] = [kept_recs[i].name for i in rows]

    modalities = (
        ModalitySpec("audio", audio.shape, "float32", "logmel-v1", audio.to_dict()),
        _image_spec(degrade_image),
    )
    elapsed = time.perf_counter() - t0
    meta: dict[str, Any] = {
        "fsdd": str(fsdd_root),
        "recordings": str(folder),
        "attribution": FSDD_ATTRIBUTION,
        "image_source": "sklearn.datasets.load_digits (UCI optdigits test set); no writer ids, so image "
        "splits are row-disjoint, not writer-disjoint",
        "speakers": {s: list(v) for s, v in split_speakers.items()},
        "unused_speakers": sorted(set(found) - {s for v in split_speakers.values() for s in v}),
        "counts": {s: len(splits[s]) for s in SPLITS},
        "image_pool_counts": {s: len(pools[s]) for s in SPLITS},
        "seed": seed,
        "degrade_image": degrade_image,
        "image_split": image_split,
        "explained_variance": explained,
        "audio_config": audio.to_dict(),
        "feature_version": FEATURE_VERSION,
        "audio_cache": {"path": str(cache_path) if cache_path else None, "hit": hit},
        "skipped": [{"file": n, "reason": r} for n, r in skipped],
        "audio_files": audio_files,
        "image_rows": {s: pools[s].tolist() for s in SPLITS},
        "image_index": image_index,
        "load_seconds": round(elapsed, 3),
    }
    logger.info(
        "AV-digits loaded in %.2fs (cache %s): %s",
        elapsed,
        "hit" if hit else "miss",
        meta["counts"],
    )
    return MultimodalDataset(
        name="av-digits",
        modalities=modalities,
        label_names=tuple(str(i) for i in range(10)),
        splits=splits,
        meta=meta,
    )


def _smooth_rows(x: np.ndarray, width: int = 5) -> np.ndarray:
    kernel = np.ones(width) / width
    return np.stack([np.convolve(np.pad(r, width // 2, mode="edge"), kernel, mode="valid") for r in x])


def synthesize_spectrograms(
    labels: Mapping[str, np.ndarray],
    *,
    seed: int = 0,
    noise: float = 1.0,
    group_strength: float = 1.0,
    class_strength: float = 0.5,
    dropout_prob: float = 0.1,
    shape: tuple[int, int, int] = (1, 32, 61),
) -> tuple[dict[str, np.ndarray], list[int]]:
    """Spectrogram-like SYNTHETIC audio for given digit labels (no speech involved).

    Each digit has a smooth spectral profile over the mel bins: a strong cue shared by a pair of digits
    plus a weaker digit cue, so audio alone confuses the two digits of a pair (as real speech confuses
    some digits) and the image resolves them. A sample is its profile switched on for a random stretch
    of frames (random onset and length, like a spoken word in a clip), dropped entirely with
    probability ``dropout_prob`` (a missed utterance), plus Gaussian noise; then standardised per
    sample like the real log-mel features.

    Returns:
        ``({split: float32 (N, *shape)}, pairing)``; ``pairing[d]`` is the pair index of digit ``d``.
    """
    _, n_mels, frames = shape
    rng = np.random.default_rng([seed, 0x5A0D10])
    group = np.empty(10, dtype=np.int64)
    group[rng.permutation(10)] = np.arange(10) // 2

    def profiles(count: int) -> np.ndarray:
        p = _smooth_rows(rng.standard_normal((count, n_mels)))
        p -= p.mean(axis=1, keepdims=True)
        return p / p.std(axis=1, keepdims=True)

    g, c = profiles(5), profiles(10)
    t = np.arange(frames)
    out = {}
    for split, y in labels.items():
        n = len(y)
        profile = group_strength * g[group[y]] + class_strength * c[y]
        onset = rng.integers(0, frames // 2, n)
        length = rng.integers(frames // 4, frames // 2, n)
        envelope = ((t >= onset[:, None]) & (t < (onset + length)[:, None])).astype(np.float64)
        envelope *= (rng.random(n) >= dropout_prob)[:, None]
        x = profile[:, :, None] * envelope[:, None, :] + noise * rng.standard_normal((n, n_mels, frames))
        x -= x.mean(axis=(1, 2), keepdims=True)
        x /= x.std(axis=(1, 2), keepdims=True) + 1e-6
        out[split] = x.reshape(n, *shape).astype(np.float32)
    return out, group.tolist()


def load_av_digits_synthetic_audio(
    *,
    degrade_image: int | None = None,
    seed: int = 0,
    image_split: str = "blocks",
    audio_noise: float = 5.0,
) -> MultimodalDataset:
    """AV-digits without FSDD: the real 8x8 digit images, paired with a SYNTHETIC audio modality.

    For running the demo (and trying EdgeFuse) where FSDD is not available. Each image row of a split
    is one sample; its ``audio`` is a spectrogram-like synthetic pattern for the image's digit (see
    :func:`synthesize_spectrograms`). The audio is **not recorded speech**: the dataset is named
    ``av-digits-synthetic-audio``, its audio spec's preprocessing is ``synthetic-logmel`` (so a WAV is
    never fed to a model trained on it), and ``meta["synthetic_audio"]`` is ``True``.

    Args:
        degrade_image: As :func:`load_av_digits`.
        seed: Seeds the image split and the synthetic audio.
        image_split: As :func:`load_av_digits`.
        audio_noise: Standard deviation of the noise added to the synthetic spectrograms.

    Returns:
        A :class:`MultimodalDataset` with ``audio`` (float32 ``(1, 32, 61)``) and ``image`` (float32
        ``(1, 8, 8)``), labels 0-9, splits train/val/test (60/20/20 of the 1,797 images).

    Raises:
        DataError: When scikit-learn is missing, or ``degrade_image``/``image_split`` is invalid.
    """
    _check_degrade(degrade_image)
    images, image_labels = _load_digit_images()
    rng_split = np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0])
    pools = _split_image_rows(image_labels, rng_split, image_split)
    explained: float | None = None
    if degrade_image is not None:
        images, explained = _pca_degrade(images, pools["train"], int(degrade_image))
    images32 = images.reshape(-1, 1, 8, 8).astype(np.float32)
    labels = {split: image_labels[pools[split]] for split in SPLITS}
    audio, pairing = synthesize_spectrograms(labels, seed=seed, noise=audio_noise)
    splits = {
        split: Split({"audio": audio[split], "image": images32[pools[split]]}, labels[split].copy())
        for split in SPLITS
    }
    modalities = (
        ModalitySpec("audio", (1, 32, 61), "float32", "synthetic-logmel", {"noise": audio_noise}),
        _image_spec(degrade_image),
    )
    meta: dict[str, Any] = {
        "synthetic_audio": True,
        "description": "SYNTHETIC AUDIO (FSDD not available): real 8x8 digit images paired with a synthetic "
        "spectrogram-like pattern per digit; audio results say nothing about real speech",
        "image_source": "sklearn.datasets.load_digits (UCI optdigits test set)",
        "counts": {s: len(splits[s]) for s in SPLITS},
        "seed": seed,
        "degrade_image": degrade_image,
        "image_split": image_split,
        "explained_variance": explained,
        "audio_pairing": pairing,
        "image_rows": {s: pools[s].tolist() for s in SPLITS},
    }
    return MultimodalDataset(
        name="av-digits-synthetic-audio",
        modalities=modalities,
        label_names=tuple(str(i) for i in range(10)),
        splits=splits,
        meta=meta,
    )
