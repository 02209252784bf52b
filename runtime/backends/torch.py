"""The PyTorch reference backend: runs an EdgeFuse *checkpoint* through the same split path as an artifact.

``edgefuse.load(CKPT_DIR)`` (a folder with ``model.json`` + ``model.safetensors``) gives a
:class:`~edgefuse.runtime.Session` whose graphs are the checkpoint's own ``nn.Module`` parts: one encoder
per modality and the head, with the embeddings fused by the same C++ kernel as every other backend.
That makes it the reference the exported backends are compared with, and lets ``edgefuse bench CKPT``
time the model before any export.

This module is the only place of the runtime that touches torch, and it imports torch (and the
checkpoint loader, which needs it) inside functions only: ``import edgefuse.runtime`` never imports
torch, and without torch the backend is *unavailable, with the reason* (``pip install 'edgefuse[train]'``).

The in-memory manifest (:func:`checkpoint_manifest`) carries the fusion parameters read from the model
and reference cases computed with the model's own ``forward`` (MaskedFusion in torch, not the kernel),
so :meth:`Session.verify` on a checkpoint checks the split execution (encoders -> C++ kernel -> head)
against the monolithic PyTorch model for every presence pattern. A model with reliability gates runs as
a gated artifact does: each encoder part also outputs ``reliability`` (its gate on its embedding) and
the manifest's ``fusion.row_weights`` has the session pass per-row weights to the kernel.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from edgefuse.runtime.backends.base import Backend
from edgefuse.runtime.errors import BackendError

__all__ = ["CHECKPOINT_FORMAT", "CheckpointManifest", "TorchBackend", "checkpoint_manifest", "is_checkpoint"]

#: The pseudo-format of a checkpoint folder in the backend registry.
CHECKPOINT_FORMAT = "checkpoint"
#: The second output of a gated checkpoint's encoder parts (as in an exported artifact).
RELIABILITY = "reliability"
#: Rows per bundled reference case of a checkpoint.
REFERENCE_BATCH = 3
#: Split (encoders -> kernel -> head) vs the torch model's own forward, both fp32 on the same weights.
REFERENCE_TOLERANCE = {"atol": 1e-5, "rtol": 1e-4}

_CACHE: dict[tuple[str, int, int], Any] = {}
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 4


def is_checkpoint(path: str | Path) -> bool:
    """Whether ``path`` is a checkpoint folder (``model.json``, no ``manifest.json``)."""
    p = Path(path)
    return p.is_dir() and (p / "model.json").is_file() and not (p / "manifest.json").exists()


def _model(path: Path, info_sha256: str | None = None) -> Any:
    """The checkpoint's model, loaded once per (folder, model.json, weights mtime/size) and shared read-only.

    The first load checks everything (:func:`edgefuse.checkpoint.load_checkpoint`); later loads of an
    unchanged checkpoint reuse it. ``info_sha256`` pins ``model.json``.
    """
    from edgefuse.checkpoint import WEIGHTS, load_checkpoint
    from edgefuse.checkpoint import info_sha256 as read_info_sha256

    info_digest = read_info_sha256(path)
    weights = path / WEIGHTS
    stat = weights.stat() if weights.is_file() else None
    key = (str(path.resolve()), info_digest, stat.st_mtime_ns if stat else 0, stat.st_size if stat else 0)
    with _CACHE_LOCK:
        model = _CACHE.get(key)
        if model is None:
            model = load_checkpoint(path, info_sha256=info_sha256).model.eval()
            if len(_CACHE) >= _CACHE_SIZE:
                _CACHE.pop(next(iter(_CACHE)))
            _CACHE[key] = model
        elif info_sha256 is not None:
            from edgefuse.checkpoint import read_checkpoint_info

            read_checkpoint_info(path, info_sha256=info_sha256)
    return model


@dataclass(frozen=True)
class CheckpointManifest:
    """The manifest a :class:`~edgefuse.runtime.Session` reads, built in memory from a checkpoint.

    It has the attributes of :class:`edgefuse.manifest.Manifest` that a session uses (``data``,
    ``root``, ``format``, ``layout``, ``modality_names``, ``verify_files``) plus the reference arrays,
    which live in memory instead of a ``reference.npz``.
    """

    data: Mapping[str, Any]
    root: Path
    reference_arrays: Mapping[str, np.ndarray] = field(repr=False, default_factory=dict)

    @property
    def format(self) -> str:
        """Always ``checkpoint``."""
        return CHECKPOINT_FORMAT

    @property
    def layout(self) -> str:
        """Always ``split``: each encoder and the head run as their own module."""
        return "split"

    @property
    def modality_names(self) -> list[str]:
        """The model's modalities, in fusion order."""
        return [m["name"] for m in self.data["modalities"]]

    def verify_files(self) -> None:
        """Nothing to do: :func:`edgefuse.checkpoint.load_checkpoint` checked the weights' sha256."""


def checkpoint_manifest(path: str | Path, *, manifest_sha256: str | None = None) -> CheckpointManifest:
    """Describe a checkpoint folder the way an artifact's manifest describes its graphs.

    Args:
        path: A checkpoint folder (``model.json`` + ``model.safetensors``).
        manifest_sha256: When given, the sha256 ``model.json`` must have (it pins the weights too).

    Returns:
        A :class:`CheckpointManifest`: modalities, ``encoder_<m>`` and ``head`` graphs (all dynamic
        batch), fusion parameters, label names, and one reference case per presence pattern (inputs
        and the logits of the model's own ``forward``).

    Raises:
        BackendUnavailableError: When torch is not installed (the reason names the extra).
        CheckpointError: When the folder is not a valid checkpoint (missing or modified weights,
            tensors that do not fit the architecture...).
    """
    from edgefuse.errors import BackendUnavailableError

    reason = TorchBackend.unavailable_reason()
    if reason:
        raise BackendUnavailableError(f"{path} is a checkpoint, which runs on PyTorch only: {reason}")
    import torch

    root = Path(path)
    model = _model(root, manifest_sha256)
    params = model.fusion.fusion_parameters()
    dim = int(model.embed_dim)
    names = list(model.modality_names)
    modalities = [{**m.to_dict(), "graph": f"encoder_{m.name}"} for m in model.modalities]
    gates = model.fusion.gates
    rel = [{"name": RELIABILITY, "shape": [-1, 1], "dtype": "float32"}] if gates is not None else []
    graphs: dict[str, Any] = {
        f"encoder_{m.name}": {
            "files": ["."],
            "inputs": [{"name": m.name, "shape": [-1, *m.shape], "dtype": "float32"}],
            "outputs": [{"name": f"embedding_{m.name}", "shape": [-1, dim], "dtype": "float32"}, *rel],
            "batch": {"dynamic": True},
            "details": {"part": "encoder", "modality": m.name},
        }
        for m in model.modalities
    }
    graphs["head"] = {
        "files": ["."],
        "inputs": [{"name": "fused", "shape": [-1, dim], "dtype": "float32"}],
        "outputs": [{"name": "logits", "shape": [-1, len(model.label_names)], "dtype": "float32"}],
        "batch": {"dynamic": True},
        "details": {"part": "head"},
    }
    arrays: dict[str, np.ndarray] = {}
    cases = []
    patterns = [p for k in range(len(names), 0, -1) for p in itertools.combinations(names, k)]
    specs = {m.name: m for m in model.modalities}
    for i, pattern in enumerate(patterns):
        rng = np.random.default_rng(7_000 + i)
        label = "+".join(pattern)
        inputs = {
            m: rng.standard_normal((REFERENCE_BATCH, *specs[m].shape)).astype(np.float32) for m in pattern
        }
        with torch.inference_mode():
            logits = model({k: torch.from_numpy(v) for k, v in inputs.items()}).numpy()
        arrays.update({f"{label}/input/{k}": v for k, v in inputs.items()})
        arrays[f"{label}/logits"] = logits
        cases.append({"pattern": list(pattern), "batch": REFERENCE_BATCH})
    gamma, beta = params.get("gamma"), params.get("beta")
    data = {
        "profile": None,
        "format": CHECKPOINT_FORMAT,
        "layout": "split",
        "precision": "fp32",
        "modalities": modalities,
        "model_modalities": names,
        "label_names": list(model.label_names),
        "fusion": {
            "weights": np.asarray(params["weights"], np.float32).tolist(),
            "gamma": None if gamma is None else np.asarray(gamma).tolist(),
            "beta": None if beta is None else np.asarray(beta).tolist(),
            "eps": float(params["eps"]),
            "dim": dim,
            # gated: each encoder's second output scales its weight per row (the smallest floor clips
            # nothing a gate with a higher floor can output)
            **(
                {"row_weights": {"from": RELIABILITY, "floor": min(float(g.floor) for g in gates)}}
                if gates is not None
                else {}
            ),
        },
        "graphs": graphs,
        "files": [],
        "reference": {"cases": cases, "tolerance": dict(REFERENCE_TOLERANCE), "backend": "torch"},
    }
    return CheckpointManifest(data=data, root=root, reference_arrays=arrays)


class _GatedEncoder:
    """A gated checkpoint's encoder part: ``x -> (embedding, gate(embedding))``, as its exported graph."""

    def __init__(self, encoder: Any, gate: Any) -> None:
        self.encoder, self.gate = encoder, gate

    def __call__(self, x: Any) -> tuple[Any, Any]:
        embedding = self.encoder(x)
        return embedding, self.gate(embedding)


class TorchBackend(Backend):
    """PyTorch reference backend for checkpoints (``pip install 'edgefuse[train]'``).

    Each instance runs one part of the checkpoint's model (``details["part"]``: ``encoder`` with
    ``details["modality"]``, or ``head``) under ``torch.inference_mode()`` on the CPU. The model is
    loaded once per checkpoint and shared by the parts. ``threads`` calls ``torch.set_num_threads``,
    which in PyTorch is process-wide. Forward passes of an eval-mode module may run from several
    threads at once.
    """

    name: ClassVar[str] = "torch"
    formats: ClassVar[tuple[str, ...]] = (CHECKPOINT_FORMAT,)
    package: ClassVar[str] = "torch"
    module: ClassVar[str] = "torch"
    extra: ClassVar[str] = "train"
    thread_safe: ClassVar[bool] = True

    def __init__(self) -> None:
        super().__init__()
        self._module: Any = None
        self._in_name = ""
        self._out_names: tuple[str, ...] = ()

    def _load(self, path: Path, threads: int | None, batch: dict[str, Any], details: dict[str, Any]) -> None:
        import torch

        model = _model(path)
        part = details.get("part")
        if part == "encoder":
            modality = str(details.get("modality"))
            if modality not in model.encoders:
                raise BackendError(
                    f"checkpoint {path} has no encoder {modality!r}; it has {sorted(model.encoders)}"
                )
            self._module = model.encoders[modality]
            if len(self._outputs) > 1:  # a gated encoder: (embedding, reliability), as an exported graph
                if model.fusion.gates is None:
                    raise BackendError(
                        f"checkpoint {path} has no reliability gates; its encoders output one array"
                    )
                gate = model.fusion.gates[list(model.modality_names).index(modality)]
                self._module = _GatedEncoder(self._module, gate)
        elif part == "head":
            self._module = model.head
        else:
            raise BackendError(f"torch backend: details must name part 'encoder' or 'head'; got {part!r}")
        if threads is not None and torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        self._in_name = self._inputs[0].name
        self._out_names = tuple(o.name for o in self._outputs)

    def _run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        with torch.inference_mode():
            out = self._module(torch.from_numpy(np.ascontiguousarray(feeds[self._in_name])))
        outs = out if isinstance(out, tuple) else (out,)
        return {name: t.numpy() for name, t in zip(self._out_names, outs, strict=True)}

    def _close(self) -> None:
        self._module = None
