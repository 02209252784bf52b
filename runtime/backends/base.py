"""The :class:`Backend` base class, in the style of Polygraphy's runners.

The public methods (:meth:`Backend.load`, :meth:`Backend.run`, :meth:`Backend.io_spec`,
:meth:`Backend.close`) check the state and the inputs; a subclass implements only ``_load``, ``_run``,
``_io_spec`` and ``_close`` (and, optionally, ``_requirements`` for platform or GPU needs). A backend's
package is imported inside ``_load`` (never at import time), so a missing package only makes that backend
*unavailable, with the reason* (:meth:`Backend.unavailable_reason`).

Life cycle::

    backend = OnnxRuntimeBackend()            # state "new"
    backend.load(path, inputs, outputs, 4)    # -> "loaded"; a second load raises BackendStateError
    backend.run({"audio": x})                 # checked: names, dtype, rank, trailing dims, batch
    backend.close()                           # -> "closed"; run/io_spec now raise BackendStateError
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
from edgefuse.errors import BackendUnavailableError, did_you_mean
from edgefuse.runtime.errors import BackendError, BackendStateError, InputError

__all__ = [
    "MAX_THREADS",
    "Backend",
    "IOSpec",
    "TensorSpec",
    "check_threads",
    "module_found",
    "plan_chunks",
    "run_chunked",
]

_NEW, _LOADED, _CLOSED = "new", "loaded", "closed"
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of a graph.

    Attributes:
        name: Tensor name (the graph's own name; a backend maps it to its file's names).
        shape: Full shape; ``None`` for a dynamic dimension (the batch, usually).
        dtype: NumPy dtype name (``float32``, ``bool``...).
    """

    name: str
    shape: tuple[int | None, ...]
    dtype: str

    @classmethod
    def from_manifest(cls, entry: Mapping[str, Any]) -> TensorSpec:
        """Build from a manifest graph entry ``{"name", "shape" (batch = -1), "dtype"}``."""
        shape = tuple(None if (d is None or int(d) < 0) else int(d) for d in entry["shape"])
        return cls(str(entry["name"]), shape, str(entry.get("dtype", "float32")))

    def describe(self) -> str:
        """``name [B, 1, 32, 61] float32`` (``B`` for a dynamic dimension)."""
        dims = ", ".join("B" if d is None else str(d) for d in self.shape)
        return f"{self.name} [{dims}] {self.dtype}"


@dataclass(frozen=True)
class IOSpec:
    """Inputs and outputs of a loaded graph, as the backend sees them."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]


#: Most intra-op threads a graph may be given (far above any edge device; keeps a typo from spawning
#: thousands of threads).
MAX_THREADS = 256


def check_threads(threads: object) -> None:
    """Refuse a ``threads`` argument that is not ``None`` or an int in ``[1, MAX_THREADS]``.

    Raises:
        InputError: Naming the value and the allowed range.
    """
    if threads is not None and (
        isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= MAX_THREADS
    ):
        raise InputError(
            f"threads must be a positive int (at most {MAX_THREADS}) or None; got {threads!r:.40}"
        )


def module_found(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it (parents of a dotted name are imported)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a blocked or half-initialised package counts as missing
        return False


def plan_chunks(
    batch: int, fixed: Sequence[int] | None = None, max_batch: int | None = None, min_batch: int = 1
) -> list[tuple[int, int, int]]:
    """Split a batch for a graph that takes fixed batch sizes or has a largest batch.

    With ``fixed`` sizes, each chunk uses the smallest size that holds the remaining rows (padded), or the
    largest size when none does. Otherwise (a ranged batch) chunks hold at most ``max_batch`` rows and a
    chunk of fewer than ``min_batch`` rows is padded to ``min_batch``.

    Args:
        batch: Rows to process (>= 1).
        fixed: The batch sizes the graph accepts, or ``None`` for a dynamic batch.
        max_batch: The largest batch of a dynamic graph, or ``None`` for no limit.
        min_batch: The smallest batch of a dynamic graph.

    Returns:
        ``(start, rows, size)`` per chunk: rows ``start:start+rows`` run padded to ``size`` rows.
    """
    if fixed:
        sizes = sorted({int(s) for s in fixed})
        chunks, start = [], 0
        while start < batch:
            rest = batch - start
            size = next((s for s in sizes if s >= rest), sizes[-1])
            rows = min(rest, size)
            chunks.append((start, rows, size))
            start += rows
        return chunks
    step = batch if not max_batch else int(max_batch)
    low = max(1, int(min_batch))
    return [(s, min(step, batch - s), max(low, min(step, batch - s))) for s in range(0, batch, step)]


def run_chunked(
    feeds: Mapping[str, np.ndarray],
    chunks: Sequence[tuple[int, int, int]],
    call: Callable[[dict[str, np.ndarray], int], Mapping[str, np.ndarray]],
) -> dict[str, np.ndarray]:
    """Run ``call(part, size)`` per chunk (inputs sliced and zero-padded to ``size``) and join the outputs.

    Rows of a graph in eval mode are independent, so padding rows never change the real rows' outputs;
    the padded rows' outputs are dropped. Outputs are always fresh arrays (never a backend's buffer).
    """
    if len(chunks) == 1 and chunks[0][1] == chunks[0][2]:
        return {k: np.array(v, copy=True) for k, v in call(dict(feeds), chunks[0][2]).items()}
    parts: dict[str, list[np.ndarray]] = {}
    for start, rows, size in chunks:
        part = {}
        for name, value in feeds.items():
            piece = value[start : start + rows]
            if rows < size:
                padded = np.zeros((size, *value.shape[1:]), dtype=value.dtype)
                padded[:rows] = piece
                piece = padded
            part[name] = np.ascontiguousarray(piece)
        for name, value in call(part, size).items():
            parts.setdefault(name, []).append(np.asarray(value)[:rows])
    return {name: np.concatenate(values, axis=0) for name, values in parts.items()}


class Backend:
    """Base class of the runtime backends: checked public API, ``_`` methods for subclasses.

    Class attributes:
        name: Registry name (``onnxruntime``, ``litert``, ``coreml``, ``tensorrt``).
        formats: Artifact formats this backend runs (``("onnx",)``...).
        package: The pip distribution that provides it (named in "unavailable" reasons).
        module: Its import name (checked with ``find_spec``, imported only in ``_load``).
        extra: The ``edgefuse`` extra that installs it (``pip install 'edgefuse[<extra>]'``).
        thread_safe: Whether ``_run`` may be called from several threads at once; when ``False``,
            :meth:`run` serialises calls with a per-instance lock.
    """

    name: ClassVar[str] = ""
    formats: ClassVar[tuple[str, ...]] = ()
    package: ClassVar[str] = ""
    module: ClassVar[str] = ""
    extra: ClassVar[str] = ""
    thread_safe: ClassVar[bool] = False

    def __init__(self) -> None:
        self._state = _NEW
        self._lock = threading.Lock()
        self._path: Path | None = None
        self._inputs: tuple[TensorSpec, ...] = ()
        self._outputs: tuple[TensorSpec, ...] = ()
        self._checks: tuple[tuple[str, np.dtype, int, tuple[int | None, ...]], ...] = ()
        self._input_names: frozenset[str] = frozenset()

    # ---- availability ---------------------------------------------------------------------------------
    @classmethod
    def _requirements(cls) -> list[str]:
        """Unmet platform/hardware needs (e.g. macOS, a GPU); must not import the backend's package."""
        return []

    @classmethod
    def unavailable_reason(cls) -> str | None:
        """Why this backend cannot run here, or ``None`` when it can.

        Checks, in order: the package is installed (without importing it), the platform/hardware needs
        (:meth:`_requirements`), and finally that the package imports. The reason names the package and
        the extra to install.
        """
        reasons = []
        if cls.module and not module_found(cls.module):
            reasons.append(
                f"the Python package {cls.package!r} is not installed; install it with "
                f"`pip install 'edgefuse[{cls.extra}]'`"
            )
        reasons.extend(cls._requirements())
        if reasons:
            return f"backend {cls.name!r}: " + "; ".join(reasons)
        if cls.module:
            try:
                importlib.import_module(cls.module)
            except Exception as exc:  # a broken install: say what the import said
                return (
                    f"backend {cls.name!r}: importing {cls.module!r} failed ({type(exc).__name__}: {exc}); "
                    f"reinstall it with `pip install --force-reinstall 'edgefuse[{cls.extra}]'`"
                )
        return None

    # ---- public, checked API --------------------------------------------------------------------------
    @property
    def state(self) -> str:
        """``new``, ``loaded`` or ``closed``."""
        return self._state

    def load(
        self,
        path: str | Path,
        inputs_spec: Sequence[Mapping[str, Any] | TensorSpec],
        outputs_spec: Sequence[Mapping[str, Any] | TensorSpec],
        threads: int | None = None,
        *,
        batch: Mapping[str, Any] | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> Self:
        """Load one graph file.

        Args:
            path: The graph file (or Core ML package folder).
            inputs_spec: The graph's inputs, as manifest entries (``name``, ``shape`` with -1 for the
                batch, ``dtype``) or :class:`TensorSpec`.
            outputs_spec: The graph's outputs, likewise.
            threads: Intra-op threads for the backend (``None``: the backend's default).
            batch: The manifest's batch entry of the graph (``{"dynamic": True, ...}`` or
                ``{"fixed": [...], "signatures": {...}}``); ``None`` means dynamic.
            details: The manifest's format-specific details of the graph (e.g. tensor name mapping).

        Returns:
            ``self``, loaded.

        Raises:
            BackendStateError: When already loaded or closed.
            BackendUnavailableError: When the backend cannot run here (the reason says why).
            BackendError: When the file is missing or the backend cannot load it.
            InputError: When ``threads`` is not a positive integer.
        """
        if self._state != _NEW:
            raise BackendStateError(
                f"{self.name} backend is {self._state}; load() is allowed once on a new backend"
            )
        check_threads(threads)
        reason = self.unavailable_reason()
        if reason:
            raise BackendUnavailableError(reason)
        p = Path(path)
        if not p.exists():
            raise BackendError(f"{self.name}: graph file {p} does not exist")
        self._inputs = tuple(
            s if isinstance(s, TensorSpec) else TensorSpec.from_manifest(s) for s in inputs_spec
        )
        self._outputs = tuple(
            s if isinstance(s, TensorSpec) else TensorSpec.from_manifest(s) for s in outputs_spec
        )
        self._checks = tuple((s.name, np.dtype(s.dtype), len(s.shape), s.shape) for s in self._inputs)
        self._input_names = frozenset(s.name for s in self._inputs)
        self._path = p
        try:
            self._load(p, threads, dict(batch or {"dynamic": True}), dict(details or {}))
        except (BackendError, BackendUnavailableError, InputError):
            raise
        except Exception as exc:
            raise BackendError(f"{self.name} cannot load {p}: {type(exc).__name__}: {exc}") from exc
        self._state = _LOADED
        return self

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the graph on one batch.

        Args:
            feeds: Every input of the graph by name: ``np.ndarray`` of the spec's dtype and rank, the
                spec's non-batch dimensions, and one batch size >= 1 across inputs.

        Returns:
            Every output of the graph by name (arrays the caller owns).

        Raises:
            BackendStateError: Before :meth:`load` or after :meth:`close`.
            InputError: A missing or unknown input, a non-array, wrong dtype, rank or dimension, an
                empty batch, or inconsistent batch sizes.
            BackendError: When the backend fails or does not return every output.
        """
        if self._state != _LOADED:
            raise self._state_error("run()")
        self._check_feeds(feeds)
        out = self._execute(feeds)
        for spec in self._outputs:
            if spec.name not in out:
                raise BackendError(
                    f"{self.name}: {self._path} returned {sorted(out)}; output {spec.name!r} is missing"
                )
        return out

    def _execute(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """:meth:`run` without the input checks, for a caller that validated the feeds itself.

        The state is still checked, calls are serialised for backends that are not thread-safe, and
        backend failures become :class:`BackendError`. Used by the session's predict path.
        """
        try:
            if self.thread_safe:
                if self._state != _LOADED:
                    raise self._state_error("run()")
                return self._run(feeds)
            with self._lock:
                if self._state != _LOADED:
                    raise self._state_error("run()")
                return self._run(feeds)
        except (BackendError, InputError):
            raise
        except Exception as exc:
            raise BackendError(
                f"{self.name} failed to run {self._path}: {type(exc).__name__}: {exc}"
            ) from exc

    def _execute1(self, in_name: str, x: np.ndarray, out_name: str) -> np.ndarray:
        """:meth:`_execute` for one input and one output, returning the output array.

        The split session's hot path. A backend may override it with a path that builds no dicts (its
        state and error handling as in :meth:`_execute`); the default delegates to :meth:`_execute`.
        """
        return self._execute({in_name: x})[out_name]

    def _execute_n(self, in_name: str, x: np.ndarray, out_names: Sequence[str]) -> list[np.ndarray]:
        """:meth:`_execute` for one input and several outputs (a gated encoder: embedding, reliability).

        Returns the outputs in the order of ``out_names``. The default delegates to :meth:`_execute`;
        a backend may override it like :meth:`_execute1`.

        Raises:
            BackendError: The backend fails, or does not return one of ``out_names``.
        """
        out = self._execute({in_name: x})
        missing = [n for n in out_names if n not in out]
        if missing:
            raise BackendError(
                f"{self.name}: {self._path} returned {sorted(out)}; outputs {missing} are missing"
            )
        return [out[n] for n in out_names]

    def check_manifest_io(self, graph: Mapping[str, Any], where: str) -> None:
        """Refuse a loaded graph whose real inputs/outputs contradict its manifest entry (at load, not predict).

        Every declared output must exist (a gated encoder's ``reliability`` included) with the declared
        trailing dimensions and dtype; a declared input may be missing (an exporter may drop unused
        inputs). A backend that cannot describe its graph is left to ``Session.verify()``.

        Args:
            graph: The manifest's graph entry (``inputs``, ``outputs``).
            where: What to name in the message (the artifact folder and graph).

        Raises:
            ManifestError: Naming the tensor, what the file holds and what the manifest declares (the
                backend is closed first).
        """
        from edgefuse.manifest import ManifestError

        try:
            real = self.io_spec()
        except Exception:  # a backend that cannot describe its graph is checked by verify() instead
            _log.debug("%s: io_spec unavailable", where, exc_info=True)
            return
        for kind, declared, found in (
            ("input", graph["inputs"], real.inputs),
            ("output", graph["outputs"], real.outputs),
        ):
            by_name = {t.name: t for t in found}
            for entry in declared:
                t = by_name.get(str(entry["name"]))
                if t is None and kind == "output" and found:
                    self.close()
                    raise ManifestError(
                        f"{where} has no output {entry['name']!r} (it has {sorted(by_name)}), which the "
                        "manifest declares; re-export the artifact"
                    )
                if t is None:
                    continue  # an exporter may drop unused inputs
                want = [None if d is None or d < 0 else int(d) for d in entry["shape"]][1:]
                got = list(t.shape[1:])
                bad_shape = len(want) != len(got) or any(
                    w is not None and g is not None and w != g for w, g in zip(want, got, strict=False)
                )
                if bad_shape or np.dtype(entry.get("dtype", "float32")) != np.dtype(t.dtype):
                    self.close()
                    raise ManifestError(
                        f"{where} {kind} {t.name!r} is {t.describe()} in the file but the manifest declares "
                        f"[B, {', '.join(str(d) for d in want)}] {entry.get('dtype', 'float32')}; the manifest "
                        "does not describe this graph: re-export the artifact"
                    )

    def io_spec(self) -> IOSpec:
        """The inputs and outputs of the loaded graph as the backend reports them.

        Raises:
            BackendStateError: Before :meth:`load` or after :meth:`close`.
        """
        if self._state != _LOADED:
            raise self._state_error("io_spec()")
        return self._io_spec()

    def close(self) -> None:
        """Release the backend's resources; idempotent. The backend cannot be used afterwards."""
        if self._state == _CLOSED:
            return
        was_loaded = self._state == _LOADED
        with self._lock:
            self._state = _CLOSED
            if was_loaded:
                self._close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self._state} {self._path or ''}>"

    # ---- helpers --------------------------------------------------------------------------------------
    def _state_error(self, what: str) -> BackendStateError:
        if self._state == _NEW:
            return BackendStateError(f"{self.name} backend: {what} before load(); call load(path, ...) first")
        return BackendStateError(f"{self.name} backend: {what} after close(); create and load a new backend")

    def _check_feeds(self, feeds: Mapping[str, np.ndarray]) -> int:
        if not isinstance(feeds, Mapping):
            raise InputError(
                f"{self.name}: feeds must be a dict of name -> np.ndarray; got {type(feeds).__name__}"
            )
        if len(feeds) != len(self._checks) or not self._input_names.issuperset(feeds):
            unknown = [k for k in feeds if k not in self._input_names]
            if unknown:
                names = sorted(self._input_names)
                raise InputError(
                    f"{self.name}: unknown input {unknown[0]!r}{did_you_mean(str(unknown[0]), names)}; "
                    f"the graph takes {names}"
                )
        batch = -1
        for name, dtype, rank, shape in self._checks:
            value = feeds.get(name)
            if value is None:
                raise InputError(
                    f"{self.name}: input {name!r} is missing; the graph takes {sorted(self._input_names)}"
                )
            if not isinstance(value, np.ndarray):
                raise InputError(
                    f"{self.name}: input {name!r} must be a np.ndarray; got {type(value).__name__}"
                )
            if value.dtype != dtype:
                raise InputError(
                    f"{self.name}: input {name!r} has dtype {value.dtype}; "
                    f"expected {TensorSpec(name, shape, dtype.name).describe()}"
                )
            if value.ndim != rank or any(
                want is not None and got != want for got, want in zip(value.shape[1:], shape[1:], strict=True)
            ):
                raise InputError(
                    f"{self.name}: input {name!r} has shape {tuple(value.shape)}; "
                    f"expected {TensorSpec(name, shape, dtype.name).describe()}"
                )
            if batch < 0:
                batch = value.shape[0]
            elif value.shape[0] != batch:
                raise InputError(
                    f"{self.name}: inputs have different batch sizes ({batch} and {value.shape[0]} for {name!r})"
                )
        if batch == 0:
            raise InputError(f"{self.name}: empty batch (0 rows); pass at least one row")
        return batch

    # ---- what subclasses implement ----------------------------------------------------------------------
    def _load(self, path: Path, threads: int | None, batch: dict[str, Any], details: dict[str, Any]) -> None:
        raise NotImplementedError

    def _run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _io_spec(self) -> IOSpec:
        return IOSpec(self._inputs, self._outputs)

    def _close(self) -> None:
        return None
