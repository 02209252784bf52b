"""The split-execution :class:`Session`: encoders of present modalities -> C++ fusion kernel -> head.

``load(artifact)`` reads and validates the manifest, checks the sha256 of every file, picks a backend
from an explicit ordered list (the caller's, else the device profile's; nothing outside it is used) and
loads only the graphs the device needs: the encoders of the modalities its sensors provide, plus the
head (or the one graph of a monolithic artifact). ``Session.predict`` validates inputs, runs the encoder
of each modality present in at least one row, fuses the embeddings with
:func:`edgefuse._fusion.fuse` (absent rows and modalities are never read) and runs the head. A gated
artifact's encoders also give each row's reliability; the kernel then gets per-row weights ``(B, M)``
(:mod:`edgefuse.runtime.gating`)::

    import numpy as np
    from edgefuse.runtime import load

    session = load("out/export/x86", profile="generic/smart-speaker")   # audio encoder + head only
    pred = session.predict({"audio": np.zeros((1, 1, 32, 61), np.float32)})
    pred.labels, pred.probabilities, pred.backend

Imports only numpy, :mod:`edgefuse._fusion`, :mod:`edgefuse.errors`, :mod:`edgefuse.manifest` and
:mod:`edgefuse.profiles`; never torch, never :mod:`edgefuse.export`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Self

import numpy as np
from edgefuse import _fusion
from edgefuse.errors import EdgeFuseError, ProfileError, did_you_mean
from edgefuse.manifest import ArtifactIntegrityError, Manifest, ManifestError, read_manifest
from edgefuse.profile_schema import is_profile_id
from edgefuse.runtime.backends.base import Backend, check_threads
from edgefuse.runtime.errors import (
    BackendError,
    BackendStateError,
    BrokenArtifactError,
    InputError,
    NonFiniteOutputError,
    VerificationError,
)
from edgefuse.runtime.gating import RowWeights
from edgefuse.runtime.registry import BACKENDS, choose_for_profile, choose_with_reasons
from edgefuse.runtime.registry import unknown_profile_fallback as _unknown_profile
from edgefuse.runtime.results import Prediction, ReferenceCheck, VerifyReport
from edgefuse.trust import MalformedFileError, load_npz, read_bounded, user_path

__all__ = ["Prediction", "ReferenceCheck", "Session", "VerifyReport", "load"]  # results re-exported

_ON_NONFINITE = ("error", "allow")
_ON_ALL_ABSENT = ("error", "beta")
_MAX_LISTED_ROWS = 10
_PRESENT_CACHE_SIZE = 256
_all = np.logical_and.reduce  # ndarray.all() without its Python-level wrapper (~0.5 us a call)


def _f32(array: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(array, dtype=np.float32)


def _rows(rows: np.ndarray) -> str:
    listed = ", ".join(str(int(r)) for r in rows[:_MAX_LISTED_ROWS])
    more = f" and {len(rows) - _MAX_LISTED_ROWS} more" if len(rows) > _MAX_LISTED_ROWS else ""
    return f"row{'s' if len(rows) > 1 else ''} {listed}{more}"


def _read_only(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


def _shape(shape: Sequence[int]) -> str:
    return "(B, " + ", ".join(str(d) for d in shape) + ")"


def _resolve_profile(profile: Any) -> Any:
    """A DeviceProfile from a profile object, an id or a path."""
    if hasattr(profile, "backends") and hasattr(profile, "modalities") and hasattr(profile, "id"):
        return profile
    from edgefuse.profiles import get_profile

    if not isinstance(profile, str | os.PathLike):
        raise InputError(
            f"profile must be a profile id such as 'generic/x86-64', a path to a .toml profile or a "
            f"DeviceProfile; got {type(profile).__name__}"
        )
    return get_profile(profile)


class Session:
    """A loaded artifact, ready to predict; see :func:`load` for how it is built.

    A session is thread-safe: :meth:`predict` keeps no state between calls, ONNX Runtime sessions run
    concurrently, and backends that are not thread-safe (LiteRT, Core ML, TensorRT) serialise their
    own calls. Use it as a context manager or call :meth:`close` to release the backends.
    """

    def __init__(
        self,
        artifact: str | os.PathLike[str],
        profile: Any = None,
        backend: str | Sequence[str] | None = None,
        threads: int | None = None,
        manifest_sha256: str | None = None,
    ) -> None:
        """Load an artifact; prefer :func:`load`, which documents the arguments and errors."""
        self._backends: dict[str, Backend] = {}
        self._closed = False
        root = user_path(artifact, error=InputError, what="artifact (an artifact or checkpoint folder)")
        from edgefuse.runtime.backends.torch import checkpoint_manifest, is_checkpoint

        self._is_checkpoint = is_checkpoint(root)
        manifest: Any = (
            checkpoint_manifest(root, manifest_sha256=manifest_sha256)
            if self._is_checkpoint
            else read_manifest(root, manifest_sha256=manifest_sha256)
        )
        # every listed file: inside, regular, size, then sha256; graphs load from these verified paths
        self._verified: dict[str, Path] = manifest.verify_files() or {}
        data = manifest.data
        self._manifest = manifest
        self._root = root

        # ---- profile: the caller's (it decides which encoders are loaded), else the manifest's -------
        prof, notes = None, []
        if profile is not None:
            prof = _resolve_profile(profile)
        elif data.get("profile") is not None:
            try:  # an id only: a manifest never makes EdgeFuse read a file outside the artifact
                if not is_profile_id(str(data["profile"])):
                    raise ProfileError(f"{data['profile']!r:.80} is not a profile id")
                prof = _resolve_profile(str(data["profile"]))
            except ProfileError as exc:  # no backend list to follow (without backend=): warned, noted
                if backend is None:
                    notes.append(_unknown_profile(data["profile"], root, exc, stacklevel=3))
        self._profile = prof
        artifact_modalities = list(manifest.modality_names)
        if profile is not None:
            kept = [m for m in artifact_modalities if prof.has_modality(m)]
            if not kept:
                raise InputError(
                    f"device profile {prof.id!r} has sensors providing {list(prof.modalities)}, none of the "
                    f"modalities {artifact_modalities} of the artifact {root}: nothing could run on that device"
                )
        else:
            kept = artifact_modalities
        self._artifact_modalities = tuple(artifact_modalities)
        self._modalities = tuple(kept)
        self._index = {m: i for i, m in enumerate(kept)}

        # ---- backend: an explicit ordered list; nothing outside it ------------------------------------
        if backend is not None:
            if not isinstance(backend, str | list | tuple):
                raise InputError(
                    f"backend must be a backend name or a list of names such as ['onnxruntime']; got "
                    f"{type(backend).__name__}; allowed names: {list(BACKENDS)}"
                )
            order = [backend] if isinstance(backend, str) else list(backend)
            for name in order:
                if not isinstance(name, str) or name not in BACKENDS:
                    raise InputError(
                        f"unknown backend {name!r}{did_you_mean(str(name), BACKENDS)}; "
                        f"allowed: {list(BACKENDS)}"
                    )
        elif self._is_checkpoint:  # the only backend that runs checkpoints (profiles name artifact backends)
            order = ["torch"]
        else:
            order = list(BACKENDS) if prof is None else list(prof.backends)
        if backend is None and prof is not None and not self._is_checkpoint:  # the profile's list
            # none of its backends runs the format: another one does, with a BackendFallbackWarning
            cls, skipped, order, note = choose_for_profile(str(prof.id), order, manifest.format, stacklevel=3)
            notes += [note] if note else []
        else:
            cls, skipped = choose_with_reasons(order, manifest.format)
        self._backend_name = cls.name
        self._skipped = tuple(skipped)
        self._order = tuple(order)
        self._notes = tuple(notes)

        check_threads(threads)
        if threads is None and prof is not None:
            threads = max(1, min(int(prof.threads), os.cpu_count() or 1))
        self._threads = threads

        # ---- graphs: only those of the kept modalities (+ head), or the monolithic one -----------------
        self._monolithic = manifest.layout == "monolithic"
        specs = {m["name"]: m for m in data["modalities"]}
        self._shapes = [tuple(int(d) for d in specs[m]["shape"]) for m in kept]
        self._dtypes = [np.dtype(specs[m]["dtype"]) for m in kept]
        self._present_cache: dict[tuple[int | bool, ...], np.ndarray] = {}
        if self._monolithic:
            names = ["model"] if "model" in data["graphs"] else list(data["graphs"])[:1]
        else:
            names = [str(specs[m].get("graph", f"encoder_{m}")) for m in kept] + ["head"]
        try:
            for gname in names:
                self._backends[gname] = self._load_graph(cls, gname)
        except BaseException:
            self.close()
            raise
        if self._monolithic:
            (gname,) = names
            graph = self._graph(gname)
            self._model = self._backends[gname]
            bool_inputs = [i["name"] for i in graph["inputs"] if i.get("dtype") == "bool"]
            self._presence_name = bool_inputs[0] if bool_inputs else "presence"
            self._model_output = str(graph["outputs"][0]["name"])
            all_specs = [specs[m] for m in artifact_modalities]
            self._mono_inputs = [
                (
                    str(s["name"]),
                    tuple(int(d) for d in s["shape"]),
                    np.dtype(s["dtype"]),
                    self._index.get(s["name"]),
                )
                for s in all_specs
            ]
            self._mono_cols = np.array([artifact_modalities.index(m) for m in kept], dtype=np.intp)
        else:
            self._encoders: list[tuple[Backend, str, str]] = []
            for gname in names[:-1]:
                graph = self._graph(gname)
                self._encoders.append(
                    (self._backends[gname], str(graph["inputs"][0]["name"]), str(graph["outputs"][0]["name"]))
                )
            head = self._graph("head")
            self._head = (
                self._backends["head"],
                str(head["inputs"][0]["name"]),
                str(head["outputs"][0]["name"]),
            )

        # ---- fusion parameters, precomputed once as contiguous float32 -------------------------------
        fusion = data["fusion"]
        cols = [artifact_modalities.index(m) for m in kept]
        self._weights = np.ascontiguousarray(np.asarray(fusion["weights"], dtype=np.float32)[cols])
        self._gamma = (
            None if fusion.get("gamma") is None else np.ascontiguousarray(fusion["gamma"], np.float32)
        )
        self._beta = None if fusion.get("beta") is None else np.ascontiguousarray(fusion["beta"], np.float32)
        self._eps = float(fusion["eps"])
        self._dim = int(fusion.get("dim") or (len(fusion["beta"]) if fusion.get("beta") else 0))
        # gated fusion: each encoder's second output scales its weight per row (the monolithic graph
        # applies its gates inside); None keeps the fixed-weight path exactly as it is
        self._gate = None if self._monolithic else RowWeights.from_manifest(fusion, self._weights, kept)
        self._where = f"{self._root} on {self._backend_name}"  # named in the gate's errors (built once)
        self._labels = tuple(str(x) for x in data["label_names"])

    def _graph(self, gname: str) -> Mapping[str, Any]:
        graph = self._manifest.data["graphs"].get(gname)
        if not isinstance(graph, Mapping) or not {"files", "inputs", "outputs"} <= set(graph):
            raise ManifestError(
                f"{self._root}: the manifest's graphs have no complete entry {gname!r} "
                f"(files, inputs, outputs); it lists {sorted(self._manifest.data['graphs'])}; re-export"
            )
        return graph

    def _load_graph(self, cls: type[Backend], gname: str) -> Backend:
        graph = self._graph(gname)
        files = graph["files"]
        if not files:
            raise ArtifactIntegrityError(f"{self._root}: graph {gname!r} lists no file in the manifest")
        if self._is_checkpoint:  # the checkpoint loader checks its own files (model.json, weights)
            path = self._root
        else:  # inside the folder, regular, listed, size then sha256 (verify_files above; never hashed twice)
            path = self._verified.get(files[0]) or self._manifest.checked_path(files[0], f"graph {gname!r}")
        backend = cls()
        try:
            backend.load(
                path,
                graph["inputs"],
                graph["outputs"],
                self._threads,
                batch=graph.get("batch"),
                details=graph.get("details"),
            )
        except BackendError as exc:
            if self._is_checkpoint or type(exc) is not BackendError:
                raise
            raise BrokenArtifactError(
                f"{self._root}: graph {gname!r} ({files[0]}) matches the size and sha256 its manifest "
                f"records, but {cls.name} cannot load it, so the artifact was written broken (or by an "
                f"exporter {cls.name} does not support): {exc}. Re-export the artifact."
            ) from exc
        backend.check_manifest_io(graph, f"{self._root}: graph {gname!r}")
        return backend

    # ---- properties -------------------------------------------------------------------------------------
    @property
    def backend(self) -> str:
        """The backend running every graph of this session."""
        return self._backend_name

    @property
    def skipped_backends(self) -> tuple[tuple[str, str], ...]:
        """``(name, reason)`` of each backend of the order list that was skipped before :attr:`backend`."""
        return self._skipped

    @property
    def backend_order(self) -> tuple[str, ...]:
        """The ordered backend list the session chose from."""
        return self._order

    @property
    def notes(self) -> tuple[str, ...]:
        """The messages of the warnings loading gave (an unknown manifest profile, a backend fallback)."""
        return self._notes

    @property
    def modalities(self) -> tuple[str, ...]:
        """The modalities this session accepts, in fusion order (the artifact's, less those the profile lacks)."""
        return self._modalities

    @property
    def artifact_modalities(self) -> tuple[str, ...]:
        """Every modality the artifact was exported with."""
        return self._artifact_modalities

    @property
    def label_names(self) -> list[str]:
        """The class names, in logit order."""
        return list(self._labels)

    @property
    def loaded_graphs(self) -> tuple[str, ...]:
        """The graphs that were loaded (e.g. ``("encoder_audio", "head")``)."""
        return tuple(self._backends)

    @property
    def loaded_files(self) -> tuple[str, ...]:
        """The artifact files (relative paths) that were loaded into a backend."""
        graphs = self._manifest.data["graphs"]
        return tuple(dict.fromkeys(graphs[g]["files"][0] for g in self._backends))

    @property
    def manifest(self) -> Manifest:
        """The validated manifest."""
        return self._manifest

    @property
    def profile(self) -> str | None:
        """The id of the device profile in effect (the caller's, else the manifest's if known here)."""
        return None if self._profile is None else str(self._profile.id)

    @property
    def threads(self) -> int | None:
        """Intra-op threads given to the backend (``None``: the backend's default)."""
        return self._threads

    def graph_backend(self, graph: str) -> Backend:
        """The loaded backend instance of one graph (for inspection: ``io_spec()``, providers...)."""
        return self._backends[graph]

    def __repr__(self) -> str:
        state = "closed" if self._closed else self._backend_name
        return (
            f"<Session {self._root} {self._manifest.format}/{self._manifest.layout} on {state}, "
            f"modalities={list(self._modalities)}>"
        )

    # ---- prediction -------------------------------------------------------------------------------------
    def _unknown_modality(self, key: object) -> InputError:
        accepts = list(self._modalities)
        if not isinstance(key, str):
            return InputError(
                f"input keys must be modality names (str); got {key!r}; this session accepts {accepts}"
            )
        if key in self._artifact_modalities:
            return InputError(
                f"modality {key!r} is not available in this session: device profile {self.profile!r} has no "
                f"sensor providing it, so its encoder was not loaded; this session accepts {accepts}"
            )
        model = list(self._manifest.data["model_modalities"])
        if key in model:
            return InputError(
                f"this artifact accepts {list(self._artifact_modalities)}; {key!r} is a modality of the model, "
                f"but it was not exported because device profile {self._manifest.data['profile']!r} has no "
                f"sensor providing it. Drop {key!r} from the inputs, or export for a profile that has one"
            )
        return InputError(
            f"unknown modality {key!r}{did_you_mean(key, accepts)}; this session accepts {accepts}"
        )

    def _check_array(self, j: int, name: str, value: object) -> np.ndarray:
        shape, dtype = self._shapes[j], self._dtypes[j]
        if not isinstance(value, np.ndarray):
            hint = " (convert a tensor with .numpy())" if hasattr(value, "numpy") else ""
            raise InputError(
                f"inputs[{name!r}] must be a np.ndarray of shape {_shape(shape)} and dtype {dtype} or None; "
                f"got {type(value).__name__}{hint}"
            )
        if value.ndim != len(shape) + 1 or value.shape[1:] != shape:
            hint = "; it lacks the batch dimension: pass x[None] for one row" if value.shape == shape else ""
            raise InputError(
                f"inputs[{name!r}] has shape {tuple(value.shape)}; expected {_shape(shape)} {dtype}{hint}"
            )
        if value.dtype != dtype:
            raise InputError(
                f"inputs[{name!r}] has dtype {value.dtype}; the artifact takes {dtype}: cast it with "
                f"x.astype(np.{dtype}) (EdgeFuse never casts silently)"
            )
        return value

    def _check_mask(self, mask: object, batch: int | None) -> np.ndarray:
        expected = f"(B, {len(self._modalities)}) with columns {list(self._modalities)}"
        if not isinstance(mask, np.ndarray):
            raise InputError(
                f"mask must be a np.ndarray of bool or uint8, shape {expected}; got {type(mask).__name__}"
            )
        if mask.dtype not in (np.dtype(np.bool_), np.dtype(np.uint8)):
            raise InputError(
                f"mask has dtype {mask.dtype}; it must be bool or uint8 (0/1), shape {expected}: "
                "convert it with mask.astype(bool)"
            )
        if (
            mask.ndim != 2
            or mask.shape[1] != len(self._modalities)
            or (batch is not None and mask.shape[0] != batch)
        ):
            rows = "B" if batch is None else str(batch)
            raise InputError(
                f"mask has shape {tuple(mask.shape)}; expected ({rows}, {len(self._modalities)}) "
                f"with columns {list(self._modalities)}"
            )
        if mask.dtype == np.uint8:
            if mask.size and mask.max() > 1:
                raise InputError("mask (uint8) must hold only 0 and 1; use a bool mask or (mask > 0)")
            return mask.astype(bool)
        return np.ascontiguousarray(mask)

    def predict(
        self,
        inputs: Mapping[str, np.ndarray | None],
        mask: np.ndarray | None = None,
        *,
        on_nonfinite: Literal["error", "allow"] = "error",
        on_all_absent: Literal["error", "beta"] = "error",
    ) -> Prediction:
        """Predict one batch.

        Presence is per row: with ``mask=None`` a modality is present in every row when its array is
        given and absent in every row when it is ``None`` or left out; an explicit ``mask`` (B, M) says
        it per row (columns in :attr:`modalities`). The encoder of a modality present in at least one
        row runs on the whole batch (absent rows are then never read by the kernel); the encoder of a
        modality absent from every row never runs. Any batch size works (a fixed-batch backend splits
        and pads internally). Monolithic artifacts get zeros for an absent modality and its presence
        column set to False.

        Args:
            inputs: Modality name -> float array ``(B, *shape)`` of the artifact's dtype, or ``None``.
            mask: Optional bool or uint8 (0/1) presence ``(B, M)``. A 1 where the input is ``None`` is
                an error.
            on_nonfinite: ``"error"`` (default): NaN/Inf in a *present* row raises, naming the
                modality and rows; ``"allow"`` passes such values to the encoder (NaN in an absent row
                is always harmless: the kernel never reads it).
            on_all_absent: ``"error"`` (default): a row with every modality absent raises, naming the
                rows; ``"beta"``: such a row gets the kernel's defined output, the fused vector
                ``beta`` of the fusion LayerNorm (zeros without an affine LayerNorm), so its logits are
                the head applied to ``beta``: the same "no evidence" output for every such row, with an
                all-False ``present`` row.

        Returns:
            A :class:`Prediction` (logits, probabilities, labels, per-row presence, backend used).

        Raises:
            InputError: Unknown modality (closest match), a modality the artifact or this session's
                profile does not provide (which ones it accepts), not an ndarray, wrong shape (the
                expected one), wrong dtype (float64: cast it yourself), empty batch, inconsistent
                batch sizes, NaN/Inf in a present row, every modality absent in a row, a mask of the
                wrong type/dtype/shape, or a mask of 1 where the input is ``None``.
            BackendStateError: After :meth:`close`.
            NonFiniteOutputError: NaN/Inf logits (or, for a gated artifact, a NaN/Inf reliability in a
                present row) from finite inputs, with ``on_nonfinite="error"``.
            BadOutputError: A gated encoder's reliability outside ``[0, 1]`` in a present row (a broken graph).
        """
        if self._closed:
            raise BackendStateError("this session is closed; load the artifact again")
        if type(on_nonfinite) is not str or on_nonfinite not in _ON_NONFINITE:
            raise InputError(f"on_nonfinite must be one of {list(_ON_NONFINITE)}; got {on_nonfinite!r}")
        if type(on_all_absent) is not str or on_all_absent not in _ON_ALL_ABSENT:
            raise InputError(f"on_all_absent must be one of {list(_ON_ALL_ABSENT)}; got {on_all_absent!r}")
        if not isinstance(inputs, Mapping):
            raise InputError(
                f"inputs must be a dict of modality name -> np.ndarray (or None); got {type(inputs).__name__}"
            )
        n_mod = len(self._modalities)
        arrays: list[np.ndarray | None] = [None] * n_mod
        batch: int | None = None
        for key, value in inputs.items():
            j = self._index.get(key) if type(key) is str else None
            if j is None:
                raise self._unknown_modality(key)
            if value is None:
                continue
            arr = self._check_array(j, key, value)
            if batch is None:
                batch = arr.shape[0]
            elif arr.shape[0] != batch:
                raise InputError(
                    f"inputs have different batch sizes: {batch} rows before inputs[{key!r}], which has "
                    f"{arr.shape[0]}; every array (and the mask) must have the same first dimension"
                )
            arrays[j] = arr

        if mask is None:
            if batch is None:
                raise InputError(
                    f"every modality is None or missing; pass at least one of {list(self._modalities)} "
                    "(or a mask with on_all_absent='beta' for rows without any input)"
                )
            run_cols = [a is not None for a in arrays]
            key = (batch, *run_cols)
            present = self._present_cache.get(key)
            if present is None:  # read-only, so one array per (batch, pattern) is shared safely
                present = np.empty((batch, n_mod), dtype=bool)
                present[:] = run_cols
                present.setflags(write=False)
                if len(self._present_cache) < _PRESENT_CACHE_SIZE:
                    self._present_cache[key] = present
            kernel_mask = None
        else:
            present = self._check_mask(mask, batch)
            batch = present.shape[0]
            any_rows = present.any(axis=0)
            for j, arr in enumerate(arrays):
                if arr is None and any_rows[j]:
                    rows = np.flatnonzero(present[:, j])
                    raise InputError(
                        f"mask says modality {self._modalities[j]!r} is present in {_rows(rows)} but "
                        f"inputs[{self._modalities[j]!r}] is None; pass the array or set the mask to 0 there"
                    )
            run_cols = [bool(x) for x in any_rows]
            empty = ~present.any(axis=1)
            if batch and empty.any() and on_all_absent == "error":
                raise InputError(
                    f"every modality is absent in {_rows(np.flatnonzero(empty))} of the mask; give at least one "
                    "modality per row, or pass on_all_absent='beta' to get the defined output for such rows "
                    "(the head applied to the fusion LayerNorm's beta)"
                )
            kernel_mask = present
        if batch == 0:
            raise InputError("empty batch (0 rows); pass at least one row")

        if on_nonfinite == "error":
            for j, arr in enumerate(arrays):
                if arr is None or not run_cols[j]:
                    continue
                if arr.dtype == np.float32 and arr.flags.c_contiguous:
                    if _fusion.all_finite(arr):  # one vectorised pass in C++, no temporary array
                        continue
                elif _all(np.isfinite(arr), axis=None):
                    continue
                bad = ~_all(np.isfinite(arr).reshape(batch, -1), axis=1) & present[:, j]
                if bad.any():
                    raise InputError(
                        f"inputs[{self._modalities[j]!r}] has NaN or Inf in present {_rows(np.flatnonzero(bad))}; "
                        "clean the sensor data, mark those rows absent in the mask, or pass on_nonfinite='allow'"
                    )

        logits = (
            self._run_monolithic(arrays, present, batch)
            if self._monolithic
            else self._run_split(arrays, run_cols, kernel_mask, batch, on_nonfinite)
        )
        logits = _f32(logits)
        if on_nonfinite == "error" and not _fusion.all_finite(logits):
            raise NonFiniteOutputError(
                f"{self._root}: the model produced NaN or Inf logits from finite inputs on {self._backend_name} "
                "(weights that overflow, or a broken graph); refusing to return them. Run "
                "session.verify() and re-export the artifact (or check the checkpoint's weights)"
            )
        return Prediction(
            logits=logits,
            present=present if mask is None else _read_only(present.copy()),
            backend=self._backend_name,
            modalities=self._modalities,
            label_names=self._labels,
        )

    def _run_split(
        self,
        arrays: list[np.ndarray | None],
        run_cols: list[bool],
        mask: np.ndarray | None,
        batch: int,
        on_nonfinite: str = "error",
    ) -> np.ndarray:
        gate = self._gate
        embeddings: list[np.ndarray | None] = [None] * len(arrays)
        rels: list[np.ndarray | None] = [None] * len(arrays)
        for j, arr in enumerate(arrays):
            if arr is None or not run_cols[j]:
                continue  # a modality absent from every row: its encoder never runs
            backend, in_name, out_name = self._encoders[j]
            if gate is None:
                out = backend._execute1(in_name, np.ascontiguousarray(arr), out_name)
            else:  # a gated encoder: its embedding and each row's reliability
                out, rels[j] = backend._execute_n(in_name, np.ascontiguousarray(arr), (out_name, gate.output))
            embeddings[j] = out if out.dtype == np.float32 and out.flags.c_contiguous else _f32(out)
        if all(e is None for e in embeddings):  # every row all-absent (on_all_absent="beta")
            fused = np.zeros((batch, self._dim), dtype=np.float32)
            if self._beta is not None:
                fused += self._beta
        else:
            weights = self._weights
            if gate is not None:  # (B, M): fixed weight x reliability in present rows, 0 elsewhere
                weights = gate.build(
                    rels, embeddings, mask, batch, on_nonfinite=on_nonfinite, where=self._where
                )
            fused = _fusion.fuse(embeddings, mask, weights, self._gamma, self._beta, self._eps)
        backend, in_name, out_name = self._head
        return backend._execute1(in_name, fused, out_name)

    def _run_monolithic(self, arrays: list[np.ndarray | None], present: np.ndarray, batch: int) -> np.ndarray:
        feeds: dict[str, np.ndarray] = {}
        for name, shape, dtype, j in self._mono_inputs:
            arr = arrays[j] if j is not None else None
            feeds[name] = (
                np.ascontiguousarray(arr) if arr is not None else np.zeros((batch, *shape), dtype=dtype)
            )
        presence = np.zeros((batch, len(self._mono_inputs)), dtype=bool)
        presence[:, self._mono_cols] = present
        feeds[self._presence_name] = presence
        return self._model._execute(feeds)[self._model_output]

    # ---- self-check -------------------------------------------------------------------------------------
    def verify(self, *, raise_on_failure: bool = False) -> VerifyReport:
        """Run the artifact's bundled reference cases (``reference.npz``) and compare the logits.

        Each case's logits must satisfy ``|a - e| <= atol + rtol * |e|`` with the tolerance recorded in
        the manifest (``reference.tolerance``). Cases that need a modality this session does not accept
        (a profile without that sensor) are skipped with the reason.

        Args:
            raise_on_failure: Raise instead of only reporting when a case fails or none could run.

        Returns:
            A :class:`VerifyReport`, one :class:`ReferenceCheck` per case.

        Raises:
            ArtifactIntegrityError: When ``reference.npz`` changed since the manifest was written.
            VerificationError: Only with ``raise_on_failure=True`` and a failing report.
        """
        if self._closed:
            raise BackendStateError("this session is closed; load the artifact again")
        ref = self._manifest.data["reference"]
        tol = ref.get("tolerance") or {}
        atol, rtol = float(tol.get("atol", 1e-4)), float(tol.get("rtol", 1e-4))
        arrays = self._reference_arrays(ref)
        checks = []
        for case in ref.get("cases", []):
            pattern = tuple(str(m) for m in case["pattern"])
            label = "+".join(pattern)
            batch = int(case.get("batch", 0))
            missing = [m for m in pattern if m not in self._index]
            if missing:
                note = f"needs {missing}, which this session does not accept (profile {self.profile!r})"
                checks.append(ReferenceCheck(pattern, batch, None, None, atol, rtol, None, note))
                continue
            try:
                inputs = {m: arrays[f"{label}/input/{m}"] for m in pattern}
                expected = np.asarray(arrays[f"{label}/logits"], dtype=np.float64)
                got = np.asarray(self.predict(inputs, on_nonfinite="allow").logits, dtype=np.float64)
            except (KeyError, EdgeFuseError) as exc:
                note = f"could not run: {type(exc).__name__}: {exc}"
                checks.append(ReferenceCheck(pattern, batch, None, None, atol, rtol, False, note))
                continue
            if got.shape != expected.shape:
                note = f"logits have shape {got.shape}; the reference has {expected.shape}"
                checks.append(ReferenceCheck(pattern, batch, None, None, atol, rtol, False, note))
                continue
            diff = np.abs(got - expected)
            finite = bool(np.isfinite(got).all())
            max_abs = float(diff.max()) if finite else float("inf")
            max_rel = float((diff / np.maximum(np.abs(expected), 1e-12)).max()) if finite else float("inf")
            passed = finite and bool(np.all(diff <= atol + rtol * np.abs(expected)))
            checks.append(ReferenceCheck(pattern, int(got.shape[0]), max_abs, max_rel, atol, rtol, passed))
        report = VerifyReport(self._backend_name, str(self._root), tuple(checks))
        if raise_on_failure and not report.passed:
            failed = report.failures()
            lines = (
                "; ".join(
                    f"{'+'.join(c.pattern)}: {c.note or f'max abs diff {c.max_abs:.3g} > atol {c.atol:g} + rtol {c.rtol:g}'}"
                    for c in failed
                )
                or "no reference case could run in this session"
            )
            raise VerificationError(
                f"{self._root} does not reproduce its bundled reference outputs on {self._backend_name}: {lines}"
            )
        return report

    def _reference_arrays(self, ref: Mapping[str, Any]) -> dict[str, np.ndarray]:
        if self._is_checkpoint:  # computed in memory from the model's own forward
            return dict(self._manifest.reference_arrays)
        rel = str(ref.get("file", "reference.npz"))
        path = self._manifest.checked_path(rel, "reference.file")
        entry = self._manifest.entry(rel)
        raw = read_bounded(path, max_bytes=int(entry["size"]), what="reference cases")
        try:
            return load_npz(raw, what=str(self._root / rel))
        except MalformedFileError as exc:
            raise ArtifactIntegrityError(
                f"{exc} (it matches its recorded sha256, so the artifact was written this way); re-export"
            ) from None

    # ---- life cycle -------------------------------------------------------------------------------------
    def close(self) -> None:
        """Release every backend; idempotent. :meth:`predict` raises afterwards."""
        self._closed = True
        for backend in self._backends.values():
            backend.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def load(
    artifact: str | os.PathLike[str],
    profile: Any = None,
    backend: str | Sequence[str] | None = None,
    threads: int | None = None,
    *,
    manifest_sha256: str | None = None,
) -> Session:
    """Load an exported artifact folder (or a checkpoint, on the PyTorch reference backend) for prediction.

    Steps: read and validate ``manifest.json`` (a newer schema is refused; shapes, dtypes, weight and
    label counts must agree between its parts), check every listed file (inside the folder after
    resolving symlinks, a regular file, its size, then its sha256; nothing unlisted is ever opened),
    choose the backend, and load only the graphs the device needs; each graph's real inputs and outputs
    must match the manifest.

    A checkpoint folder (``model.json`` + ``model.safetensors``, as written by ``edgefuse train``) runs
    on the ``torch`` backend through the same split path: its encoders and head are the model's own
    modules, fused by the same C++ kernel; :meth:`Session.verify` then compares that path with the
    model's own ``forward`` for every presence pattern. It needs torch (``edgefuse[train]``).

    Args:
        artifact: The artifact folder (holding ``manifest.json``), or a checkpoint folder.
        profile: The device the session runs on: a profile id, a path to a ``.toml`` profile or a
            ``DeviceProfile``. Only the encoders of modalities its sensors provide are loaded (so an
            artifact exported for a richer device runs on a poorer one without loading, e.g., the
            image encoder on a device without a camera). ``None``: the manifest's profile; all the
            artifact's encoders are loaded.
        backend: A backend name or an ordered list of names; the first that runs the artifact's format
            and is available here is used, and nothing outside the list. ``None``: ``torch`` for a
            checkpoint; for an artifact the profile's ``backends`` (the given profile, else the
            manifest's; one not known here allows every backend in the registry's default order, with
            an :class:`~edgefuse.runtime.registry.UnknownProfileWarning`). When none of the profile's
            backends runs the artifact's format, the installed backend that does is used, with a
            :class:`~edgefuse.runtime.registry.BackendFallbackWarning` naming it (pass that
            ``backend=`` to silence it). Both warnings' messages are kept in :attr:`Session.notes`.
        threads: Intra-op threads per graph. ``None``: the profile's ``threads`` capped at this
            machine's CPU count, or the backend's default without a profile.
        manifest_sha256: Pin the manifest: the sha256 ``manifest.json`` (for a checkpoint,
            ``model.json``) must have. Every other file is pinned through the manifest's own hashes, so
            this one value pins the whole artifact. ``None``: no pin.

    Returns:
        A loaded :class:`Session`.

    Raises:
        ManifestError: Missing, invalid, inconsistent or newer-schema manifest, a pinned
            ``manifest_sha256`` that differs, or a graph whose real inputs/outputs differ from it.
        UnsafeFileError: A listed path leaves the folder, or names a FIFO, device or other non-regular file.
        CheckpointError: A checkpoint folder whose description or weights are invalid or modified.
        ArtifactIntegrityError: A file is missing or its sha256/size differs from the manifest.
        ProfileError: An unknown profile id or invalid profile file.
        InputError: An unknown backend name, bad ``threads``, or a profile none of whose sensors
            provides a modality of the artifact.
        BackendUnavailableError: No backend of the list can run the artifact here (each candidate and
            its reason are listed; for a profile with no backend for the format, the ``backend=`` to
            pass and what to install).
        BrokenArtifactError: A graph file matches its hash but its backend cannot load it (written broken).
        BackendError: A backend cannot load a graph file.
    """
    return Session(
        artifact, profile=profile, backend=backend, threads=threads, manifest_sha256=manifest_sha256
    )
