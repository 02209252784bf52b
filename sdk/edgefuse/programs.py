"""Graphs of a user's model stored without its source code: ``torch.export`` programs as checked JSON.

A checkpoint of a model that was not built from an EdgeFuse JSON architecture stores each encoder and
the head as a ``torch.export`` program (the ATen graph, dynamic batch), so that export, the runtime's
torch reference backend and benchmarks run it **without importing the user's code**.

Only the program's *graph* is stored here (``torch._export.serde`` JSON, no weights, no pickle): the
weights live in the checkpoint's ``model.safetensors`` and are handed to the deserializer as tensors.
Deserializing a ``.pt2`` from someone else is not safe as such: torch's loader unpickles constants,
``sympify``s (``eval``s) shape expressions and compiles ``guards_code`` into Python. So before torch
sees a program, :func:`check_program` requires that

* every node target is an ATen/prims operator (``torch.ops.aten.*``) or one of a few arithmetic
  ``_operator``/``torch.sym_*`` functions for symbolic sizes (no higher-order ops, no custom ops, no
  extension operators);
* every shape expression is made of ``Symbol('s<n>', ...)``, integers and a fixed list of sympy
  function names (no attribute access, no other names);
* there is no ``guards_code``, no custom objects and no stored state (those would be unpickled).

Programs are traced in eval mode with PyTorch's fused transformer fast path turned off, so the graph
holds the composable ops every converter (ONNX, LiteRT, Core ML) knows.
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from edgefuse.errors import CheckpointError

if TYPE_CHECKING:
    from torch import Tensor, nn

__all__ = [
    "MAX_PROGRAM_BATCH",
    "canonical",
    "check_program",
    "expected_state",
    "load_program",
    "no_fastpath",
    "program_of",
    "save_program",
]

#: The largest batch a stored program accepts (its dynamic batch dimension is 1..this).
MAX_PROGRAM_BATCH = 4096
_ATEN = re.compile(r"^torch\.ops\.(aten|prims)\.[A-Za-z0-9_]+\.[A-Za-z0-9_]+$")
_SYMBOLIC = {
    *(
        f"_operator.{op}"
        for op in ("add", "sub", "mul", "floordiv", "truediv", "mod", "neg", "pow", "getitem")
    ),
    *(f"_operator.{op}" for op in ("eq", "ne", "lt", "le", "gt", "ge", "and_", "or_", "not_")),
    *(
        f"torch.{fn}"
        for fn in ("sym_int", "sym_float", "sym_max", "sym_min", "sym_not", "sym_sqrt", "sym_ite")
    ),
    *(f"math.{fn}" for fn in ("ceil", "floor", "trunc")),
}
_EXPR_NAMES = {
    "Symbol",
    "Integer",
    "Rational",
    "Add",
    "Mul",
    "Pow",
    "Max",
    "Min",
    "Mod",
    "Abs",
    "Eq",
    "Ne",
    "Lt",
    "Le",
    "Gt",
    "Ge",
    "StrictLessThan",
    "StrictGreaterThan",
    "LessThan",
    "GreaterThan",
    "Equality",
    "Unequality",
    "And",
    "Or",
    "Not",
    "FloorDiv",
    "CeilDiv",
    "CleanDiv",
    "ModularIndexing",
    "PythonMod",
    "IntTrueDiv",
    "FloatTrueDiv",
    "TruncToInt",
    "CeilToInt",
    "FloorToInt",
    "RoundToInt",
    "ToFloat",
    "floor",
    "ceiling",
    "oo",
    "int_oo",
    "True",
    "False",
    "positive",
    "integer",
    "nonnegative",
    "real",
    "finite",
}
_EXPR_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|'[^']*'|\d+|\s+|.")
_EXPR_PUNCT = set("(),=+-*/")
_MAX_EXPR = 2000
# torch._export.serde.schema.ScalarType -> torch dtype name
_SCALAR_TYPES = {
    1: "uint8",
    2: "int8",
    3: "int16",
    4: "int32",
    5: "int64",
    6: "float16",
    7: "float32",
    8: "float64",
    12: "bool",
    13: "bfloat16",
}


@contextlib.contextmanager
def no_fastpath() -> Iterator[None]:
    """Turn PyTorch's fused ``nn.MultiheadAttention``/transformer fast path off (restored on exit).

    In eval mode under ``no_grad`` PyTorch runs ``_transformer_encoder_layer_fwd``, one fused op no
    converter knows; tracing with the fast path off gives the composable ops instead.
    """
    import torch

    before = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(before)


def save_program(module: nn.Module, example: Tensor, label: str) -> bytes:
    """Trace ``module`` (eval mode, dynamic batch) with ``torch.export`` and return the graph as JSON bytes.

    Stack traces (which hold the user's file paths) are dropped. The module's state is not stored: the
    weights go to the checkpoint's safetensors file, keyed like ``module.state_dict()``.

    Raises:
        CheckpointError: When ``torch.export`` cannot trace the module (the message has torch's reason
            and says what usually causes it), or the program holds something that is not a plain tensor
            (a custom object) or a lifted constant tensor, which this format does not store.
    """
    import torch
    from torch._export.serde.serialize import serialize

    stored = program_of(module)
    if stored is not None:  # a loaded program (e.g. a WiSE-FT result): its graph is unchanged
        return stored
    batch = torch.export.Dim("batch", min=1, max=MAX_PROGRAM_BATCH)
    flags = {m: m.training for m in module.modules()}
    module.eval()
    try:
        with no_fastpath():
            program = torch.export.export(module, (example,), dynamic_shapes=({0: batch},))
    except Exception as exc:
        raise CheckpointError(
            f"torch.export cannot trace {label} ({type(module).__name__}) for a checkpoint: {type(exc).__name__}: "
            f"{str(exc)[:600]}. Data-dependent Python control flow or a batch size written into the code "
            "(e.g. x.view(2, -1)) are the usual causes; rewrite that part with torch ops (torch.where, x.flatten(1))"
        ) from None
    finally:
        for m, flag in flags.items():
            m.training = flag
    if program.constants:
        raise CheckpointError(
            f"{label} ({type(module).__name__}) creates tensors or objects inside forward "
            f"({sorted(program.constants)[:5]}); register them as buffers (self.register_buffer) so they are "
            "stored with the weights"
        )
    state_names = set(module.state_dict())
    for spec in program.graph_signature.input_specs:
        if spec.kind.name in ("PARAMETER", "BUFFER") and spec.target not in state_names:
            raise CheckpointError(
                f"{label}: {spec.target!r} is a non-persistent buffer; make it persistent so it is stored"
            )
    artifact = serialize(
        program, serialize_state_dict=False, serialize_constants=False, serialize_example_inputs=False
    )
    data = json.loads(artifact.exported_program)
    _strip_stack_traces(data)
    return canonical(data)


def _strip_stack_traces(node: Any) -> None:
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            meta = item.get("metadata")
            if isinstance(meta, dict):
                meta.pop("stack_trace", None)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def check_program(data: Any, what: str) -> dict[str, Any]:
    """Check a program's JSON (already parsed with bounded size and nesting) before torch deserializes it.

    See the module docstring for the rules.

    Raises:
        CheckpointError: Naming ``what`` and the first thing that is not allowed.
    """

    def bad(why: str) -> CheckpointError:
        return CheckpointError(f"{what} is not a program EdgeFuse loads: {why}")

    if not isinstance(data, dict) or not isinstance(data.get("graph_module"), dict):
        raise bad("it is not a torch.export program (no graph_module)")
    if data.get("guards_code") not in (None, []):
        raise bad("it holds guards_code (Python source torch would compile); EdgeFuse never writes any")
    graph = data["graph_module"].get("graph")
    if not isinstance(graph, dict):
        raise bad("graph_module has no graph")
    if graph.get("custom_obj_values") not in (None, {}):
        raise bad("it holds custom objects (they would be unpickled)")
    stack: list[Any] = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            target = item.get("target")  # only graph nodes have a target in the schema: check every one
            if "target" in item and not (
                isinstance(target, str) and (_ATEN.match(target) or target in _SYMBOLIC)
            ):
                raise bad(
                    f"node target {str(target)[:120]!r} is not an ATen operator (custom and "
                    "higher-order operators are not loaded)"
                )
            expr = item.get("expr_str")
            if expr is not None:
                _check_expr(expr, bad)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return data


def _check_expr(expr: Any, bad: Any) -> None:
    if not isinstance(expr, str) or len(expr) > _MAX_EXPR:
        raise bad(f"a shape expression is not a string of at most {_MAX_EXPR} characters")
    for token in _EXPR_TOKEN.findall(expr):
        if token.isspace() or token.isdigit() or token in _EXPR_PUNCT:
            continue
        if token.startswith("'"):
            if not re.fullmatch(r"'[a-z]+[0-9]+'", token):
                raise bad(f"shape expression {expr[:120]!r} names symbol {token[:40]}")
            continue
        if token not in _EXPR_NAMES:
            raise bad(f"shape expression {expr[:120]!r} uses {token[:40]!r}, which is not allowed")


def expected_state(data: Mapping[str, Any], what: str) -> dict[str, tuple[str, tuple[int, ...]]]:
    """``{state name: (dtype, shape)}`` of the parameters and buffers a checked program reads.

    Raises:
        CheckpointError: When an entry has a symbolic or malformed size or an unknown dtype.
    """
    gm = data["graph_module"]
    values = gm["graph"].get("tensor_values") or {}
    out: dict[str, tuple[str, tuple[int, ...]]] = {}
    for spec in gm.get("signature", {}).get("input_specs") or []:
        if not isinstance(spec, dict):
            raise CheckpointError(f"{what}: malformed input spec")
        for kind, key in (("parameter", "parameter_name"), ("buffer", "buffer_name")):
            entry = spec.get(kind)
            if not isinstance(entry, dict):
                continue
            name = entry.get(key)
            arg = (entry.get("arg") or {}).get("name")
            meta = values.get(arg) if isinstance(arg, str) else None
            if not isinstance(name, str) or not isinstance(meta, dict):
                raise CheckpointError(f"{what}: {kind} {str(name)[:80]!r} has no tensor description")
            sizes = meta.get("sizes")
            dims = []
            for s in sizes if isinstance(sizes, list) else [None]:
                v = s.get("as_int") if isinstance(s, dict) else None
                if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                    raise CheckpointError(f"{what}: {kind} {name!r} has a size that is not a fixed integer")
                dims.append(v)
            dtype = _SCALAR_TYPES.get(meta.get("dtype"))
            if dtype is None:
                raise CheckpointError(f"{what}: {kind} {name!r} has dtype code {meta.get('dtype')!r:.20}")
            out[name] = (dtype, tuple(dims))
        for kind in ("constant_input", "tensor_constant", "custom_obj", "token"):
            if spec.get(kind) is not None:
                raise CheckpointError(f"{what}: the program reads a {kind}, which EdgeFuse does not store")
    return out


def load_program(data: Mapping[str, Any], state: Mapping[str, Tensor], what: str) -> nn.Module:
    """Deserialize a checked program with its weights and return it as a module (``ExportedProgram.module()``).

    Args:
        data: JSON that passed :func:`check_program`.
        state: The program's parameters and buffers (names as in :func:`expected_state`).
        what: The file, for messages.

    Raises:
        CheckpointError: When torch cannot rebuild the program (e.g. written by an incompatible torch).
    """
    import torch
    from torch._export.serde import schema
    from torch._export.serde.serialize import ExportedProgramDeserializer, _dict_to_dataclass

    params = {
        spec["parameter"].get("parameter_name")
        for spec in data["graph_module"]["signature"].get("input_specs") or []
        if isinstance(spec, dict) and isinstance(spec.get("parameter"), dict)
    }
    tensors = {k: torch.nn.Parameter(v) if k in params else v for k, v in state.items()}
    try:
        serialized = _dict_to_dataclass(schema.ExportedProgram, dict(data))
        program = ExportedProgramDeserializer().deserialize(serialized, tensors, {}, None)
        module = program.module()
    except Exception as exc:
        raise CheckpointError(
            f"{what} cannot be rebuilt by torch {torch.__version__}: {type(exc).__name__}: {str(exc)[:400]} "
            f"(written by torch {str(data.get('torch_version'))[:20]}?)"
        ) from None
    module.edgefuse_program = canonical(data)
    return _fixed_in_eval(module, what)


def canonical(data: Mapping[str, Any]) -> bytes:
    """The bytes a program's JSON is stored as (sorted keys, no spaces): equal graphs, equal sha256."""
    return json.dumps(data, separators=(",", ":"), sort_keys=True).encode()


def program_of(module: nn.Module) -> bytes | None:
    """The stored program JSON of a module loaded by :func:`load_program`, else None."""
    stored = getattr(module, "edgefuse_program", None)
    return stored if isinstance(stored, bytes) else None


def _fixed_in_eval(module: nn.Module, what: str) -> nn.Module:
    """Make ``eval()`` a no-op and ``train()`` a clear error on a program's module, deep copies included.

    torch's unlifted program module raises ``NotImplementedError`` from both (instance attributes that a
    deep copy loses, after which ``train()`` silently "works"). The graph was traced in eval mode, so
    eval is already what it computes, and training it would keep BatchNorm and dropout in eval
    behaviour without a word. The module's class becomes a subclass with these methods, which
    ``GraphModule.__deepcopy__`` keeps (it re-creates the instance from ``type(self)``).
    """
    for name in ("train", "eval"):
        module.__dict__.pop(name, None)
    # torch's per-call pre-hooks re-check the input shapes against the program's ranges (callers here
    # have checked them: the contract, the runtime's input validation) and cost 0.1-0.4 ms a call
    module._forward_pre_hooks.clear()
    module._forward_pre_hooks_with_kwargs.clear()
    # like GraphModule.__new__: one class per instance (it holds the generated forward), below ours
    base = next(t for t in type(module).__mro__ if t.__qualname__.split(".")[-1] != "GraphModuleImpl")
    module.__class__ = type("GraphModuleImpl", (_program_class(base),), {})
    module.recompile()
    module.edgefuse_what = what
    module.training = False
    return module


@functools.cache
def _program_class(impl: type) -> type:
    from edgefuse.errors import ContractError

    class ProgramModule(impl):  # type: ignore[misc, valid-type]
        """A stored torch.export program (fixed in eval mode); see :func:`_fixed_in_eval`."""

        def train(self, mode: bool = True) -> ProgramModule:
            if mode:
                raise ContractError(
                    f"{self.edgefuse_what} is a stored torch.export program, fixed in eval mode; it cannot be "
                    "trained. Load the checkpoint with trust_code=True and a recorded "
                    "model factory to train"
                )
            self.training = False
            return self

        def eval(self) -> ProgramModule:
            return self.train(False)

        def __deepcopy__(self, memo: dict[int, Any]) -> ProgramModule:
            import warnings

            with warnings.catch_warnings():  # torch's own pytree spec copy warns about its LeafSpec API
                warnings.filterwarnings("ignore", message=".*LeafSpec.*", category=FutureWarning)
                res = super().__deepcopy__(memo)
            res.edgefuse_program = self.edgefuse_program
            res.edgefuse_what = self.edgefuse_what
            res.training = False
            return res

    return ProgramModule


def jit_traceable(module: nn.Module) -> nn.Module:
    """A copy of ``module`` whose stored programs ``torch.jit.trace`` records with a dynamic batch.

    A program reads its batch with ``aten.sym_size`` and passes sizes to ops such as ``aten.view``
    through the operator objects; the tracer sees Python ints there and bakes in the example's batch
    (and refuses SymInts in the input checks torch attaches). In the copy, sizes are read with
    ``Tensor.size`` (traced values) and ops that take a computed size list are called through their
    Python bindings, which record those sizes as dynamic. Modules that are not stored programs are
    copied unchanged. Used by converters that trace (Core ML).
    """
    import copy

    import torch
    from torch import fx

    copied = copy.deepcopy(module)
    for sub in copied.modules():
        if program_of(sub) is None or not isinstance(sub, fx.GraphModule):
            continue
        sub._forward_pre_hooks.clear()
        for node in sub.graph.nodes:
            if node.op != "call_function":
                continue
            if node.target is torch.ops.aten.sym_size.int:
                node.target = _size
            elif isinstance(node.target, torch._ops.OpOverload) and any(
                isinstance(a, (list, tuple)) and any(isinstance(e, fx.Node) for e in a) for a in node.args
            ):
                name = node.target._opname
                binding = getattr(torch.Tensor, name, None) or getattr(torch, name, None)
                if binding is not None:
                    node.target = binding
        sub.recompile()
    return copied


def _size(x: Tensor, dim: int) -> Any:
    return x.size(dim)
