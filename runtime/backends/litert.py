"""LiteRT (TFLite): runs ``.tflite`` graphs with ``ai_edge_litert.interpreter.Interpreter``.

litert-torch writes one *signature* per fixed batch size into a single file (its dynamic batch fails
wherever a graph reshapes), so this backend accepts any batch size transparently: a batch is split into
chunks of the signatures' sizes and the last chunk is zero-padded (rows are independent in an exported,
eval-mode graph; padded rows' outputs are dropped). The manifest's graph ``batch`` entry says which:

* ``{"fixed": [1, 8], "signatures": {"1": "<key>", "8": "<key>"}}``: one signature per size (when
  ``signatures`` is absent, each signature's size is read from its first input's shape);
* ``{"dynamic": True, ...}``: one signature (``batch["signature"]`` or the file's only one) resized per
  call.

Signature tensor names (litert-torch writes ``args_0``, ``output_0``...) are mapped to the graph's names
by, in order: a mapping in the graph ``details`` (``signature_keys = {"inputs": {graph name: key},
"outputs": {...}}`` as the TFLite exporter writes it, or ``input_names``/``output_names``, each a dict
graph name -> signature name or a list in graph order), the same names, or position (natural order of
the signature's names). The interpreter is not thread-safe, so :meth:`Backend.run` serialises calls.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from edgefuse.runtime.backends.base import Backend, IOSpec, TensorSpec, plan_chunks, run_chunked
from edgefuse.runtime.errors import BackendError

__all__ = ["LiteRTBackend"]


def _natural(name: str) -> tuple[Any, ...]:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name))


def _mapping(
    graph_names: Sequence[str], file_names: Sequence[str], given: Any, what: str, where: str
) -> dict[str, str]:
    """Graph name -> signature name."""
    if isinstance(given, Mapping) and given:
        mapping = {str(k): str(v) for k, v in given.items()}
    elif isinstance(given, Sequence) and not isinstance(given, str) and given:
        mapping = dict(zip(graph_names, (str(v) for v in given), strict=False))
    elif set(graph_names) <= set(file_names):
        mapping = {n: n for n in graph_names}
    elif len(graph_names) == len(file_names):
        mapping = dict(zip(graph_names, sorted(file_names, key=_natural), strict=True))
    else:
        raise BackendError(
            f"{where}: signature {what} {sorted(file_names)} cannot be matched to the graph's {list(graph_names)}"
        )
    missing = [n for n in graph_names if mapping.get(n) not in file_names]
    if missing:
        raise BackendError(
            f"{where}: graph {what} {missing} have no signature tensor (mapping {mapping}, "
            f"signature has {sorted(file_names)})"
        )
    return mapping


class LiteRTBackend(Backend):
    """LiteRT backend (``pip install 'edgefuse[litert]'``); XNNPACK on CPU with ``threads`` threads."""

    name: ClassVar[str] = "litert"
    formats: ClassVar[tuple[str, ...]] = ("tflite",)
    package: ClassVar[str] = "ai-edge-litert"
    module: ClassVar[str] = "ai_edge_litert"
    extra: ClassVar[str] = "litert"
    thread_safe: ClassVar[bool] = False

    def __init__(self) -> None:
        super().__init__()
        self._interpreter: Any = None
        self._runners: dict[int | None, Any] = {}  # batch size (None: dynamic) -> signature runner
        self._in_map: dict[str, str] = {}
        self._out_map: dict[str, str] = {}
        self._fixed: tuple[int, ...] | None = None
        self._keys: dict[int | None, str] = {}

    def _load(self, path: Path, threads: int | None, batch: dict[str, Any], details: dict[str, Any]) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self._interpreter = Interpreter(model_path=str(path), num_threads=threads)
        signatures = self._interpreter.get_signature_list()
        if not signatures:
            raise BackendError(f"{path} has no signatures; re-export it with litert-torch")
        if batch.get("fixed"):
            wanted = batch.get("signatures") or {}
            if wanted:
                keys = {int(size): str(key) for size, key in wanted.items()}
            else:
                keys = {}
                for key in signatures:
                    runner = self._interpreter.get_signature_runner(key)
                    first = next(iter(runner.get_input_details().values()))
                    keys[int(first["shape"][0])] = key
            absent = [k for k in keys.values() if k not in signatures]
            if absent:
                raise BackendError(
                    f"{path}: manifest names signatures {absent}; the file has {sorted(signatures)}"
                )
            sizes = sorted(int(s) for s in batch["fixed"])
            if sorted(keys) != sizes:
                raise BackendError(
                    f"{path}: the manifest lists batch sizes {sizes} but signatures for {sorted(keys)}"
                )
            self._fixed = tuple(sizes)
            self._keys = dict(keys)
        else:
            key = batch.get("signature") or (next(iter(signatures)) if len(signatures) == 1 else None)
            if key is None or key not in signatures:
                raise BackendError(
                    f"{path}: dynamic batch but the signature to use is unclear ({sorted(signatures)}); "
                    "the manifest's batch entry should name it as 'signature'"
                )
            self._fixed = None
            self._keys = {None: str(key)}
        first_key = next(iter(self._keys.values()))
        sig = signatures[first_key]
        in_names = [s.name for s in self._inputs]
        out_names = [s.name for s in self._outputs]
        keys = details.get("signature_keys") or {}
        self._in_map = _mapping(
            in_names,
            sig["inputs"],
            details.get("input_names") or keys.get("inputs"),
            "inputs",
            f"{path} [{first_key}]",
        )
        self._out_map = _mapping(
            out_names,
            sig["outputs"],
            details.get("output_names") or keys.get("outputs"),
            "outputs",
            f"{path} [{first_key}]",
        )
        for size, key in self._keys.items():
            runner = self._interpreter.get_signature_runner(key)
            found = runner.get_input_details()
            for spec in self._inputs:
                info = found.get(self._in_map[spec.name])
                if info is None:
                    raise BackendError(f"{path} [{key}]: no input {self._in_map[spec.name]!r}")
                shape = tuple(int(d) for d in info["shape"])
                if size is not None and shape[0] != size:
                    raise BackendError(
                        f"{path} [{key}]: input {spec.name!r} has batch {shape[0]}, expected {size}"
                    )
                if np.dtype(info["dtype"]) != np.dtype(spec.dtype) or shape[1:] != tuple(spec.shape[1:]):
                    raise BackendError(
                        f"{path} [{key}]: input {spec.name!r} is {list(shape)} {np.dtype(info['dtype'])}; "
                        f"the manifest says {spec.describe()}"
                    )
            self._runners[size] = runner

    def _call(self, part: dict[str, np.ndarray], size: int) -> dict[str, np.ndarray]:
        runner = self._runners[size if self._fixed else None]
        result = runner(**{self._in_map[name]: value for name, value in part.items()})
        return {name: result[sig] for name, sig in self._out_map.items()}

    def _run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        batch = next(iter(feeds.values())).shape[0]
        chunks = plan_chunks(batch, fixed=self._fixed)
        return run_chunked({n: np.ascontiguousarray(v) for n, v in feeds.items()}, chunks, self._call)

    def _io_spec(self) -> IOSpec:
        sizes = sorted(self._keys, key=lambda s: -1 if s is None else s)
        runner = self._runners[sizes[-1]]
        inv_in = {v: k for k, v in self._in_map.items()}
        inv_out = {v: k for k, v in self._out_map.items()}

        def specs(found: Mapping[str, Any], names: Mapping[str, str]) -> tuple[TensorSpec, ...]:
            return tuple(
                TensorSpec(
                    names.get(k, k), (None, *(int(d) for d in v["shape"][1:])), np.dtype(v["dtype"]).name
                )
                for k, v in found.items()
            )

        return IOSpec(specs(runner.get_input_details(), inv_in), specs(runner.get_output_details(), inv_out))

    @property
    def batch_sizes(self) -> tuple[int, ...] | None:
        """The fixed batch sizes of the loaded file (``None``: dynamic)."""
        return self._fixed

    def _close(self) -> None:
        self._runners.clear()
        self._interpreter = None
