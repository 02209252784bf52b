"""Model factories: how a user's own architecture reaches training, the robustness grid and checkpoints.

A **model factory** is a callable ``factory(modalities, label_names, **kwargs) -> MultimodalModel``:
given the modality specs (in fusion order) and the class names, it returns a fresh, randomly
initialised contract model over exactly those modalities. Training and the robustness grid call it
once per trained model, always with every modality of the dataset (a specialist is a model whose
labelled training set is a subset; its other encoders exist and are trained without labels or not at
all). A factory meant for other datasets should accept any non-empty list of specs.

In Python a factory is any callable. On the command line and in a checkpoint it is written as a
**reference** ``package.module:function`` plus JSON keyword arguments. Importing a reference runs the
user's code, so :func:`import_factory` refuses unless the caller opted in (``allow_import=True``, the
CLI's ``--allow-import``, ``load_checkpoint(..., trust_code=True)``); nothing imports one by default.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from edgefuse.errors import ContractError, EdgeFuseError

if TYPE_CHECKING:
    from edgefuse.models.contract import MultimodalModel
    from edgefuse.specs import ModalitySpec

__all__ = [
    "FactoryError",
    "FactoryRef",
    "ModelFactory",
    "build_with",
    "import_factory",
    "parse_factory_ref",
]

#: ``factory(modalities, label_names, **kwargs) -> MultimodalModel``
ModelFactory = Callable[..., "MultimodalModel"]

_REF = re.compile(
    r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$"
)
#: Most bytes of a factory's JSON keyword arguments.
MAX_KWARGS_BYTES = 64 << 10


class FactoryError(EdgeFuseError, ValueError):
    """A model factory reference is malformed, not allowed to be imported, or does not build a contract model."""


@dataclass(frozen=True)
class FactoryRef:
    """A factory written as ``package.module:function`` with JSON keyword arguments.

    Attributes:
        callable: ``package.module:function`` (attributes may be dotted: ``pkg.mod:Class.build``).
        kwargs: JSON-serialisable keyword arguments passed after ``modalities`` and ``label_names``.
    """

    callable: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON form (stored in a checkpoint's ``model.json`` under ``factory``)."""
        return {"callable": self.callable, "kwargs": dict(self.kwargs)}


def parse_factory_ref(ref: object, kwargs: object = None) -> FactoryRef:
    """Check a ``package.module:function`` reference and its keyword arguments (nothing is imported).

    Args:
        ref: The reference string.
        kwargs: A mapping, a JSON object string, or ``None``.

    Raises:
        FactoryError: When the reference is not ``package.module:function`` or the arguments are not a
            JSON object of at most 64 KiB.
    """
    if not isinstance(ref, str) or not _REF.match(ref) or len(ref) > 300:
        raise FactoryError(
            f"model factory {str(ref)[:100]!r} is not a reference 'package.module:function' "
            "(e.g. 'mypackage.models:build_model')"
        )
    if kwargs is None:
        parsed: Any = {}
    elif isinstance(kwargs, str):
        if len(kwargs.encode()) > MAX_KWARGS_BYTES:
            raise FactoryError(f"factory kwargs are longer than {MAX_KWARGS_BYTES} bytes")
        try:
            parsed = json.loads(kwargs)
        except ValueError as exc:
            raise FactoryError(f"factory kwargs {kwargs[:80]!r} are not JSON: {exc}") from None
    else:
        parsed = kwargs
    if not isinstance(parsed, Mapping) or not all(isinstance(k, str) for k in parsed):
        raise FactoryError(f"factory kwargs must be a JSON object (keyword -> value); got {str(parsed)[:80]}")
    try:
        text = json.dumps(dict(parsed), sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise FactoryError(f"factory kwargs are not JSON-serialisable: {exc}") from None
    if len(text.encode()) > MAX_KWARGS_BYTES:
        raise FactoryError(f"factory kwargs are longer than {MAX_KWARGS_BYTES} bytes")
    return FactoryRef(ref, json.loads(text))


def import_factory(ref: FactoryRef | str, *, allow_import: bool = False) -> ModelFactory:
    """Import the factory a reference names — only when the caller opted in.

    Args:
        ref: A :class:`FactoryRef` or ``package.module:function``.
        allow_import: Must be true: importing runs the user's code (module top level included).

    Returns:
        The callable, with the reference's keyword arguments bound (``factory(modalities, label_names)``).

    Raises:
        FactoryError: Without ``allow_import``, for a malformed reference, a module that cannot be
            imported (the message has the ImportError), a missing attribute, or a non-callable.
    """
    parsed = (
        parse_factory_ref(ref.callable, ref.kwargs) if isinstance(ref, FactoryRef) else parse_factory_ref(ref)
    )
    if not allow_import:
        raise FactoryError(
            f"the model factory {parsed.callable!r} is user code; importing it runs that code. If you "
            "trust it, pass allow_import=True (or trust_code=True to load_checkpoint)"
        )
    module_name, _, attr = parsed.callable.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or any error the module's top level raises
        raise FactoryError(
            f"cannot import {module_name!r} for the model factory {parsed.callable!r}: {type(exc).__name__}: "
            f"{exc} (is the package installed, or its folder on PYTHONPATH?)"
        ) from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise FactoryError(
                f"{module_name!r} has no attribute {attr!r} (model factory {parsed.callable!r})"
            ) from None
    if not callable(obj):
        raise FactoryError(f"model factory {parsed.callable!r} is a {type(obj).__name__}, not a callable")
    kwargs = dict(parsed.kwargs)

    def bound(modalities: Sequence[ModalitySpec], label_names: Sequence[str]) -> MultimodalModel:
        return obj(modalities, label_names, **kwargs)

    bound.__name__ = parsed.callable
    bound.edgefuse_factory_ref = parsed  # type: ignore[attr-defined]
    return bound


def build_with(
    factory: ModelFactory, modalities: Sequence[ModalitySpec], label_names: Sequence[str]
) -> MultimodalModel:
    """Call a factory and check that it returned a contract model over exactly ``modalities``.

    Raises:
        FactoryError: When the factory raises (the error is named), returns something that is not a
            :class:`~edgefuse.models.contract.MultimodalModel`, or a model over other modalities/labels.
    """
    from edgefuse.models.contract import MultimodalModel

    name = getattr(factory, "__name__", type(factory).__name__)
    try:
        model = factory(list(modalities), list(label_names))
    except (ContractError, FactoryError):
        raise
    except Exception as exc:
        raise FactoryError(f"model factory {name} failed: {type(exc).__name__}: {exc}") from exc
    if not isinstance(model, MultimodalModel):
        raise FactoryError(
            f"model factory {name} returned a {type(model).__name__}; it must return an "
            "edgefuse.MultimodalModel (wrap your encoders and head in one)"
        )
    want = [m.name for m in modalities]
    if list(model.modality_names) != want:
        raise FactoryError(
            f"model factory {name} built a model over {list(model.modality_names)}; it was asked for {want} "
            "(in that order)"
        )
    if list(model.label_names) != list(label_names):
        raise FactoryError(
            f"model factory {name} built a model with labels {list(model.label_names)[:10]}; it was asked for "
            f"{list(label_names)[:10]}"
        )
    return model
