"""Sweep jobs: one trained model of a robustness sweep, its content hash, what runs it, and the job store.

A **job** is pure data (:class:`JobSpec`): what to train (pre-training, training, or a WiSE-FT
interpolation of two trained models), with which recipe, seed, train set ``S`` and intervention, on which
data and model; or (``corrupt``) how to evaluate a finished model of another job under corrupted sensors
(the robustness grid's corruption axis, :mod:`edgefuse.grid_corruptions`). Its id is the sha256 of its
canonical JSON, which covers

* the dataset fingerprint (:func:`dataset_fingerprint`: names, specs, labels and every array's bytes),
* the recipe (:class:`~edgefuse.train.TrainConfig` as JSON: method, ``S``, seed, intervention and its
  parameters, epochs, learning rate...),
* the model source (a JSON architecture, ``reference``, or a factory's ``package.module:function`` +
  JSON kwargs; for a plain callable its ``module:qualname``: the hash covers a factory's *reference*,
  not its code, so after editing your model code use a new store or run without ``--resume``),
* the ids of the jobs it depends on (the shared contrastive pre-training of its seed, the two models
  a WiSE-FT job interpolates), so a changed dependency changes every dependent id,
* the evaluation split and the EdgeFuse version,
* for ``corrupt`` jobs, in ``params``: the corruptions, severities and corruption seed, and the sha256 of
  the corrupted inputs themselves (so a store reused with other corruptions, or corruptions that come out
  differently, evaluates again; the models it depends on are reused).

The thread count is not part of the id: it changes how a job runs, not what it means (see
:func:`execute`; results are bit-identical for an equal thread count).

**The job store** (:class:`JobStore`) is a folder::

    store.json                       {"format": "edgefuse-job-store", "version": 1}
    jobs/<id>/result.json            the spec, the accuracy per test set, metrics, who ran it, file hashes
    jobs/<id>/checkpoint/            train and WiSE-FT jobs: an EdgeFuse checkpoint (save_checkpoint)
    jobs/<id>/encoders.safetensors   pre-training jobs: the pre-trained encoders' state dict
                                     (corrupt jobs have no file but result.json)
    failed/<id>.json                 the last failure of a job that has not succeeded (error, traceback)

``result.json`` is written last (temporary file, fsync, ``os.replace``, fsync of the folder) and pins the
sha256 of ``checkpoint/model.json`` (which pins the weights) or of ``encoders.safetensors``: a job is
finished exactly when its ``result.json`` is there and every file matches it. A crash at any moment
leaves a job finished or not, never half-finished; an entry that does not match (edited, truncated,
another spec) is ignored and the job runs again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import pickle
import secrets
import socket
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgefuse.errors import EdgeFuseError
from edgefuse.factory import FactoryError, FactoryRef
from edgefuse.modality_sets import format_set, subsets

if TYPE_CHECKING:
    from edgefuse.data.base import MultimodalDataset

__all__ = [
    "JOB_KINDS",
    "STORE_FORMAT",
    "JobOutput",
    "JobSpec",
    "JobStore",
    "JobStoreError",
    "ModelSource",
    "dataset_fingerprint",
    "execute",
]

_log = logging.getLogger(__name__)

#: What a job does: contrastive pre-training, (fine-)training one model, a WiSE-FT interpolation, or the
#: evaluation of a finished model (its ``model`` dependency) under corrupted sensors.
JOB_KINDS = ("pretrain", "train", "wiseft", "corrupt")
STORE_FORMAT = "edgefuse-job-store"
STORE_VERSION = 1
_RESULT_FORMAT = "edgefuse-job"
_RESULT = "result.json"
_CHECKPOINT = "checkpoint"
_ENCODERS = "encoders.safetensors"
_MAX_RESULT_BYTES = 16 << 20


class JobStoreError(EdgeFuseError, ValueError):
    """A job store folder cannot be used (not a store, another format version, not writable)."""


def dataset_fingerprint(dataset: MultimodalDataset) -> str:
    """sha256 over a dataset's name, modality specs, label names and every split's arrays (bytes included).

    Two datasets with the same fingerprint train identical models for the same job; ``meta`` is not
    hashed (the arrays are what training reads).
    """
    import numpy as np

    h = hashlib.sha256()
    head = {
        "name": dataset.name,
        "modalities": [m.to_dict() for m in dataset.modalities],
        "label_names": list(dataset.label_names),
    }
    h.update(json.dumps(head, sort_keys=True, default=str).encode())
    for split_name in sorted(dataset.splits):
        split = dataset.splits[split_name]
        arrays = {**{f"input/{k}": v for k, v in split.inputs.items()}, "labels": split.labels}
        for key in sorted(arrays):
            arr = np.ascontiguousarray(arrays[key])
            h.update(f"\n{split_name}/{key}:{arr.dtype.str}:{arr.shape}\n".encode())
            h.update(memoryview(arr).cast("B"))
    return h.hexdigest()


@dataclass(frozen=True)
class ModelSource:
    """Where every model of a sweep comes from, in a form that can travel to another process or machine.

    Exactly one of: ``architecture`` (a JSON architecture), ``factory_ref`` (a factory reference, imported
    again in each worker: the caller opted in when it imported it), ``factory`` (a plain callable; it
    travels by pickle, i.e. by its ``module:qualname`` reference, so it must be a module-level function),
    or nothing (the reference architecture).
    """

    architecture: Mapping[str, Any] | None = None
    factory_ref: FactoryRef | None = None
    factory: Callable[..., Any] | None = None

    @classmethod
    def of(
        cls, architecture: Mapping[str, Any] | None, model_factory: Callable[..., Any] | None
    ) -> ModelSource:
        """The source for ``train(..., architecture, model_factory=...)`` arguments (one of them or neither)."""
        if model_factory is None:
            return cls(architecture=dict(architecture) if architecture is not None else None)
        ref = getattr(model_factory, "edgefuse_factory_ref", None)
        return cls(factory_ref=ref, factory=model_factory)

    def describe(self) -> dict[str, Any]:
        """JSON description (hashed into job ids and recorded in a grid's ``meta``)."""
        if self.factory_ref is not None:
            return {"factory": self.factory_ref.to_dict()}
        if self.factory is not None:
            name = getattr(self.factory, "__qualname__", None) or type(self.factory).__name__
            return {
                "factory": {"callable": f"{getattr(self.factory, '__module__', '?')}:{name}", "kwargs": None}
            }
        return {"architecture": dict(self.architecture) if self.architecture is not None else "reference"}

    def portable(self) -> ModelSource:
        """This source without in-process objects, ready to be pickled for a worker.

        Raises:
            FactoryError: A plain factory that cannot be pickled (a lambda, closure or local function);
                the message says how to pass it by reference instead.
        """
        if self.factory_ref is not None:
            return ModelSource(factory_ref=self.factory_ref)
        if self.factory is not None:
            try:
                pickle.dumps(self.factory)
            except Exception as exc:
                raise FactoryError(
                    f"the model factory {self.describe()['factory']['callable']} cannot be sent to worker "
                    f"processes ({type(exc).__name__}: {exc}); make it a module-level function, or pass "
                    "import_factory('package.module:function', allow_import=True) (CLI --model-factory), "
                    "or use executor='inline'"
                ) from None
        return self

    def resolve(self) -> tuple[Mapping[str, Any] | None, Callable[..., Any] | None]:
        """``(architecture, model_factory)`` for :func:`edgefuse.train.train` (imports a reference here)."""
        if self.factory is not None:
            return None, self.factory
        if self.factory_ref is not None:
            from edgefuse.factory import import_factory

            return None, import_factory(self.factory_ref, allow_import=True)
        return self.architecture, None


@dataclass(frozen=True)
class JobSpec:
    """One job of a sweep (pure data; :attr:`job_id` is its content hash).

    Attributes:
        kind: One of :data:`JOB_KINDS`.
        method: ``supervised`` or ``contrastive``.
        train_set: ``S`` (model order).
        seed: The seed.
        variant: ``train``: the intervention it trains with, or ``linear-probe``; ``wiseft``: the grid
            variant (``masd+wiseft``...); ``pretrain``: ``pretrain``; ``corrupt``: its model job's.
        recipe: The exact :class:`~edgefuse.train.TrainConfig` (as JSON) the job trains with.
        dataset: :func:`dataset_fingerprint` of the data.
        model: :meth:`ModelSource.describe` of the model source.
        deps: Role -> id of the jobs this one needs (``pretrained``; ``theta0``/``theta1`` for WiSE-FT;
            ``model`` for ``corrupt``).
        params: Extra parameters (WiSE-FT: ``alphas``, ``select_on``; ``corrupt``: ``corruptions``,
            ``severities``, ``seed``, ``keys`` of the corrupted inputs and their sha256 ``data``).
        evaluate: Split on which the accuracy per test set is measured (None for pre-training).
        version: EdgeFuse version.
    """

    kind: str
    method: str
    train_set: tuple[str, ...]
    seed: int
    variant: str
    recipe: Mapping[str, Any]
    dataset: str
    model: Mapping[str, Any]
    deps: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, Any] = field(default_factory=dict)
    evaluate: str | None = "test"
    version: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Canonical JSON form (what is hashed and stored)."""
        return {
            "kind": self.kind,
            "method": self.method,
            "train_set": list(self.train_set),
            "seed": int(self.seed),
            "variant": self.variant,
            "recipe": json.loads(json.dumps(dict(self.recipe), sort_keys=True, default=list)),
            "dataset": self.dataset,
            "model": json.loads(json.dumps(dict(self.model), sort_keys=True)),
            "deps": dict(sorted(self.deps.items())),
            "params": json.loads(json.dumps(dict(self.params), sort_keys=True)),
            "evaluate": self.evaluate,
            "version": self.version,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JobSpec:
        """Inverse of :meth:`to_dict`."""
        return cls(
            kind=data["kind"],
            method=data["method"],
            train_set=tuple(data["train_set"]),
            seed=int(data["seed"]),
            variant=data["variant"],
            recipe=dict(data["recipe"]),
            dataset=data["dataset"],
            model=dict(data["model"]),
            deps=dict(data.get("deps") or {}),
            params=dict(data.get("params") or {}),
            evaluate=data.get("evaluate"),
            version=data.get("version", ""),
        )

    @property
    def job_id(self) -> str:
        """sha256 (hex, 32 characters) of the canonical JSON of :meth:`to_dict`."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def describe(self) -> str:
        """A short human label: ``train supervised+masd S=audio+image seed 0``."""
        what = self.method if self.variant in ("none", "pretrain") else f"{self.method}+{self.variant}"
        if self.kind == "pretrain":
            return f"pretrain {self.method} seed {self.seed}"
        return f"{self.kind} {what} S={format_set(self.train_set)} seed {self.seed}"

    def config(self) -> Any:
        """The :class:`~edgefuse.train.TrainConfig` of :attr:`recipe`."""
        from edgefuse.train import TrainConfig

        recipe = dict(self.recipe)
        recipe["modalities"] = tuple(recipe["modalities"])
        recipe["intervention_params"] = dict(recipe.get("intervention_params") or {})
        return TrainConfig(**recipe)


@dataclass
class JobOutput:
    """What a finished job produced.

    Attributes:
        job_id: The job's id.
        result: JSON: ``accuracy`` (test set ``a+b`` -> accuracy on the evaluation split) for model jobs,
            ``metrics``, ``alpha`` and ``sweep`` for WiSE-FT; ``corruption`` for ``corrupt`` jobs
            (:func:`edgefuse.degraded.evaluate_corrupted`).
        info: JSON: ``worker`` (host:pid), ``seconds``, ``threads``, ``attempt``.
        weights: safetensors bytes of the model's (pre-training: the encoders') state dict, when the
            output travels between processes or was read from the store.
        model: In-process only (never pickled): the model, or the encoders' state dict for pre-training.
        reused: Read from the job store instead of run.
    """

    job_id: str
    result: dict[str, Any]
    info: dict[str, Any] = field(default_factory=dict)
    weights: bytes | None = None
    model: Any = None
    reused: bool = False

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["model"] = None
        return state

    def state(self) -> dict[str, Any]:
        """The state dict this output carries (the in-process one, or decoded from :attr:`weights`)."""
        if self.model is not None:
            return self.model if isinstance(self.model, dict) else self.model.state_dict()
        if self.weights is None:
            raise JobStoreError(f"job {self.job_id} carries no weights (internal error: report it)")
        from safetensors.torch import load

        return load(self.weights)

    def build(self, dataset: MultimodalDataset, source: ModelSource) -> Any:
        """The model this output holds (the in-process one, or a fresh model loaded with its weights)."""
        if self.model is not None and not isinstance(self.model, dict):
            return self.model
        from edgefuse.models.contract import add_gates, gate_hidden_of
        from edgefuse.train import new_model

        architecture, factory = source.resolve()
        model = new_model(dataset, architecture, factory)
        state = self.state()
        if gate_hidden_of(state):  # trained with reliability gates (a gate+... intervention)
            add_gates(model, gate_hidden_of(state))
        model.load_state_dict(state)
        model.eval()
        return model


def _state_bytes(state: Mapping[str, Any]) -> bytes:
    from safetensors.torch import save

    return save({k: v.detach().cpu().contiguous() for k, v in state.items()})


def execute(
    spec: JobSpec,
    dataset: MultimodalDataset,
    source: ModelSource,
    deps: Mapping[str, JobOutput],
    *,
    store: JobStore | None = None,
    threads: int | None = None,
    attempt: int = 1,
    in_process: bool = True,
    corrupted: Mapping[str, Any] | None = None,
) -> JobOutput:
    """Run one job (in whatever process the executor chose) and write its result to ``store``.

    Contract: the same ``spec`` with the same dependency outputs and thread count gives bit-identical
    weights and accuracies in any process (every random source is seeded from the spec; torch's intra-op
    thread count is set to ``threads`` for the job and restored after it, with deterministic algorithms
    on: :func:`edgefuse.train.deterministic`).

    Args:
        spec: The job.
        dataset: The data (its :func:`dataset_fingerprint` must be ``spec.dataset``; not re-checked here).
        source: The model source.
        deps: Role -> output of each job in ``spec.deps``.
        store: Where to write the result (None: nowhere).
        threads: torch intra-op threads for this job (None: leave the process setting).
        attempt: 1 for the first try, 2 for the first retry...
        in_process: Keep the model in :attr:`JobOutput.model` (inline executor) instead of returning
            its weights as bytes (other processes).
        corrupted: ``corrupt`` jobs: key -> :class:`~edgefuse.data.corruptions.CorruptedSplit` of the
            sweep (:func:`edgefuse.grid_corruptions.prepare`: built once, shipped with the sweep context).

    Returns:
        The :class:`JobOutput`.

    Raises:
        Exception: Whatever training raises (ContractError for a diverged run, FactoryError...): the
            executor reports it as the job's deterministic failure.
    """
    import torch

    from edgefuse.train import deterministic

    t0 = time.perf_counter()
    previous = torch.get_num_threads()
    with deterministic(int(threads) if threads else None):  # deterministic algorithms too
        model, result = _run(spec, dataset, source, deps, corrupted)
    info = {
        "worker": f"{socket.gethostname()}:{os.getpid()}",
        "seconds": time.perf_counter() - t0,
        "threads": int(threads) if threads else previous,
        "attempt": attempt,
    }
    out = JobOutput(spec.job_id, result, info)
    if spec.kind == "pretrain":
        out.model = model
        if store is not None or not in_process:
            out.weights = _state_bytes(model)
    elif model is not None:  # a corrupt job carries no model
        out.model = model
        if not in_process:
            out.weights = _state_bytes(model.state_dict())
    if store is not None:
        store.save(spec, out, model if spec.kind != "pretrain" else None)
    if not in_process:
        out.model = None
    return out


def _dep_model(dep: JobOutput, dataset: MultimodalDataset, source: ModelSource) -> Any:
    return dep.build(dataset, source)


def _run(
    spec: JobSpec,
    dataset: MultimodalDataset,
    source: ModelSource,
    deps: Mapping[str, JobOutput],
    corrupted: Mapping[str, Any] | None = None,
) -> tuple[Any, dict[str, Any]]:
    import torch

    from edgefuse.train import accuracy, new_model, pretrain_contrastive, snapshot, train

    if spec.kind == "corrupt":  # a finished model (its dependency) under each corrupted split of the sweep
        from edgefuse.degraded import evaluate_corrupted

        missing = [k for k in spec.params["keys"] if k not in (corrupted or {})]
        if missing:
            raise JobStoreError(
                f"job {spec.describe()} needs the corrupted inputs {missing}, which the sweep context does "
                "not carry (internal error: report it)"
            )
        model = _dep_model(deps["model"], dataset, source)
        parts = [corrupted[k] for k in spec.params["keys"]]  # type: ignore[index]
        return None, {"corruption": evaluate_corrupted(model, dataset.split(spec.evaluate or "test"), parts)}
    architecture, factory = source.resolve()
    cfg = spec.config()
    if spec.kind == "pretrain":  # seeded like train(): a scratch model, InfoNCE, its encoders
        torch.manual_seed(cfg.seed)
        scratch = new_model(dataset, architecture, factory)
        history = pretrain_contrastive(scratch, dataset, cfg)
        return snapshot(scratch.encoders), {"history": history}
    if spec.kind == "train":
        pre = deps["pretrained"].state() if "pretrained" in deps else None
        trained = train(dataset, cfg, architecture, model_factory=factory, pretrained_encoders=pre)
        model, extra = trained.model, {"metrics": dict(trained.metrics)}
    elif spec.kind == "wiseft":
        from edgefuse.wiseft import sweep

        theta0 = _dep_model(deps["theta0"], dataset, source)
        theta1 = _dep_model(deps["theta1"], dataset, source)
        swept = sweep(theta0, theta1, dataset, list(spec.params["alphas"]), split=spec.params["select_on"])
        model, extra = swept.model, {"alpha": swept.chosen_alpha, "sweep": swept.rows}
    else:
        raise JobStoreError(f"unknown job kind {spec.kind!r}; allowed: {list(JOB_KINDS)}")
    data = dataset.split(spec.evaluate or "test")
    acc = {format_set(t): accuracy(model, data, t, 1024) for t in subsets(dataset.modality_names)}
    return model, {"accuracy": acc, **extra}


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``path`` as a whole: a temporary file beside it, fsync, ``os.replace``, fsync of the folder."""
    tmp = path.with_name(f".{path.name}.edgefuse-tmp-{os.getpid()}-{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


class JobStore:
    """The folder of finished jobs (layout in the module docstring). Safe for one writer per job at a time.

    Args:
        root: The store folder (created when missing). Every process that runs jobs writes into it, so
            for a Ray cluster it must be on a filesystem every node sees.

    Raises:
        JobStoreError: ``root`` exists and is not a job store of this version, or cannot be created.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).absolute()
        marker = self.root / "store.json"
        try:
            if marker.exists():
                data = json.loads(marker.read_text())
                if data.get("format") != STORE_FORMAT or data.get("version") != STORE_VERSION:
                    raise JobStoreError(
                        f"{self.root} is a job store of another format/version ({data}); this EdgeFuse writes "
                        f"version {STORE_VERSION}: use another --store folder"
                    )
            else:
                if self.root.exists() and any(self.root.iterdir()):
                    raise JobStoreError(
                        f"{self.root} is not empty and is not an EdgeFuse job store (no store.json); choose "
                        "an empty or new --store folder"
                    )
                (self.root / "jobs").mkdir(parents=True, exist_ok=True)
                atomic_write(marker, json.dumps({"format": STORE_FORMAT, "version": STORE_VERSION}).encode())
        except (OSError, ValueError) as exc:
            if isinstance(exc, JobStoreError):
                raise
            raise JobStoreError(
                f"cannot use {self.root} as a job store: {exc}; choose another --store"
            ) from None

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (JobStore, (str(self.root),))

    def job_dir(self, job_id: str) -> Path:
        """The folder of one job."""
        return self.root / "jobs" / job_id

    def finished(self) -> list[str]:
        """Ids of the jobs with a ``result.json`` (not validated; :meth:`load` validates)."""
        jobs = self.root / "jobs"
        return sorted(p.name for p in jobs.iterdir() if (p / _RESULT).is_file()) if jobs.is_dir() else []

    def save(self, spec: JobSpec, out: JobOutput, model: Any = None) -> None:
        """Write a finished job: its files first, then ``result.json`` (the commit point)."""
        from edgefuse.checkpoint import info_sha256, save_checkpoint

        folder = self.job_dir(spec.job_id)
        folder.mkdir(parents=True, exist_ok=True)
        files: dict[str, Any] = {}
        if spec.kind == "corrupt":
            pass  # the result is everything
        elif spec.kind == "pretrain":
            if out.weights is None:
                raise JobStoreError(
                    f"job {spec.job_id}: pre-trained encoders without weights (internal error)"
                )
            atomic_write(folder / _ENCODERS, out.weights)
            files[_ENCODERS] = {"sha256": hashlib.sha256(out.weights).hexdigest(), "size": len(out.weights)}
        else:
            save_checkpoint(
                model,
                folder / _CHECKPOINT,
                recipe=spec.recipe,
                seed=spec.seed,
                metrics={"accuracy": out.result.get("accuracy"), "split": spec.evaluate},
                dataset={"fingerprint": spec.dataset, "job": spec.job_id},
                overwrite=True,
            )
            files[_CHECKPOINT] = {"info_sha256": info_sha256(folder / _CHECKPOINT)}
        doc = {
            "format": _RESULT_FORMAT,
            "version": STORE_VERSION,
            "job_id": spec.job_id,
            "status": "done",
            "spec": spec.to_dict(),
            "result": out.result,
            "info": {**out.info, "finished_at": time.time()},
            "files": files,
        }
        atomic_write(folder / _RESULT, json.dumps(doc, indent=1, sort_keys=True, default=str).encode())
        failed = self.root / "failed" / f"{spec.job_id}.json"
        if failed.exists():
            failed.unlink(missing_ok=True)

    def load(self, spec: JobSpec) -> JobOutput | None:
        """The finished output of ``spec`` with its weights, or None (missing, or not matching: logged)."""
        folder = self.job_dir(spec.job_id)
        path = folder / _RESULT
        if not path.is_file():
            return None
        try:
            if path.stat().st_size > _MAX_RESULT_BYTES:
                raise ValueError("result.json is too large")
            doc = json.loads(path.read_text())
            if doc.get("format") != _RESULT_FORMAT or doc.get("status") != "done":
                raise ValueError("not a finished job")
            if doc.get("job_id") != spec.job_id or doc.get("spec") != spec.to_dict():
                raise ValueError("the stored spec differs from this job")
            weights = None if spec.kind == "corrupt" else self._read_files(folder, doc["files"])
        except (OSError, ValueError, KeyError, TypeError, EdgeFuseError) as exc:
            _log.warning("job %s in %s is not reusable (%s); it runs again", spec.job_id, self.root, exc)
            return None
        return JobOutput(spec.job_id, doc["result"], doc.get("info") or {}, weights=weights, reused=True)

    def _read_files(self, folder: Path, files: Mapping[str, Any]) -> bytes:
        if _ENCODERS in files:
            raw = (folder / _ENCODERS).read_bytes()
            if hashlib.sha256(raw).hexdigest() != files[_ENCODERS]["sha256"]:
                raise ValueError(f"{_ENCODERS} does not match its recorded sha256")
            return raw
        from edgefuse.checkpoint import read_checkpoint_info

        ckpt = folder / _CHECKPOINT
        info = read_checkpoint_info(ckpt, info_sha256=files[_CHECKPOINT]["info_sha256"])
        raw = (ckpt / "model.safetensors").read_bytes()
        if hashlib.sha256(raw).hexdigest() != info["weights_sha256"]:
            raise ValueError("checkpoint/model.safetensors does not match its recorded sha256")
        return raw

    def record_failure(self, spec: JobSpec, error: str, trace: str | None, attempts: int) -> None:
        """Keep the last failure of a job (``failed/<id>.json``) for inspection; never raises."""
        try:
            folder = self.root / "failed"
            folder.mkdir(parents=True, exist_ok=True)
            doc = {"job_id": spec.job_id, "spec": spec.to_dict(), "error": error, "traceback": trace}
            doc["attempts"] = attempts
            atomic_write(folder / f"{spec.job_id}.json", json.dumps(doc, indent=1, default=str).encode())
        except OSError as exc:
            _log.warning("cannot record the failure of job %s: %s", spec.job_id, exc)


def format_exception(exc: BaseException) -> tuple[str, str]:
    """``("Type: message", traceback text)`` of an exception (what a failed job reports)."""
    return f"{type(exc).__name__}: {exc}", "".join(traceback.format_exception(exc))
