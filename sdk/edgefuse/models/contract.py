"""The multimodal model contract and a builder for contract models from a JSON architecture.

A contract model has

* one encoder per modality, ``[B, *spec.shape] -> [B, D]``;
* a :class:`~edgefuse.models.fusion.MaskedFusion` (the kernel's math);
* a head ``[B, D] -> [B, C]``;
* modality specs (name, input shape without batch, dtype, preprocessing id) and label names.

``forward(inputs, mask)`` takes a dict of per-modality tensors (``None`` or a missing key = absent for
the whole batch) and an optional bool presence mask ``[B, M]``. An absent modality's encoder is **not
run**; for a modality present in only some rows, the encoder runs on those rows only, so the data of an
absent row is never read (NaN there cannot change the result, in training or evaluation). This is how
the runtime represents missing modalities, so accuracy measured here is what a device will see.

Every later stage (training, robustness, export, runtime) only relies on this contract.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from edgefuse.errors import ContractError
from edgefuse.models.fusion import MaskedFusion
from edgefuse.specs import ModalitySpec

__all__ = [
    "Conv2dEncoder",
    "MLPEncoder",
    "MultimodalModel",
    "add_gates",
    "build_model",
    "check_contract",
    "gate_hidden_of",
]


class Conv2dEncoder(nn.Module):
    """Conv2d stack + global mean pooling + linear projection: ``[B, C, H, W] -> [B, D]``.

    Pure Conv2d/ReLU/mean/Linear (no reshape), which every export backend converts with a dynamic batch.

    Args:
        in_shape: ``(C, H, W)`` without batch.
        channels: Output channels of each 3x3 conv; convs after the first use stride 2 while the
            spatial size allows it.
        embed_dim: D.
        pool: ``global`` (mean over H and W: position-invariant, for images) or ``time`` (a conv whose
            kernel spans the remaining H, e.g. the mel axis of a spectrogram, then the mean over W: keeps
            the frequency pattern, invariant to when the sound starts).
    """

    def __init__(
        self, in_shape: Sequence[int], channels: Sequence[int], embed_dim: int, pool: str = "global"
    ) -> None:
        super().__init__()
        if len(in_shape) != 3:
            raise ContractError(f"a conv2d encoder needs an input shape (C, H, W); got {tuple(in_shape)}")
        c, h, w = in_shape
        layers: list[nn.Module] = []
        for i, out_c in enumerate(channels):
            stride = 2 if i > 0 and min(h, w) >= 4 else 1
            layers += [nn.Conv2d(c, out_c, 3, stride=stride, padding=1), nn.ReLU()]
            c = out_c
            h, w = (h - 1) // stride + 1, (w - 1) // stride + 1  # 3x3 conv, padding 1
        if pool == "time":
            layers += [nn.Conv2d(c, c, (h, 1)), nn.ReLU()]
        elif pool != "global":
            raise ContractError(f"conv2d pool {pool!r} is not one of ['global', 'time']")
        self.features = nn.Sequential(*layers)
        self.proj = nn.Linear(c, embed_dim)

    def forward(self, x: Tensor) -> Tensor:
        """Encode ``x`` of shape ``[B, C, H, W]`` into ``[B, D]``."""
        return self.proj(self.features(x).mean(dim=(2, 3)))


class MLPEncoder(nn.Module):
    """Flatten + MLP: ``[B, *shape] -> [B, D]`` (for vector-like modalities).

    Args:
        in_shape: Input shape without batch.
        hidden: Hidden layer sizes.
        embed_dim: D.
    """

    def __init__(self, in_shape: Sequence[int], hidden: Sequence[int], embed_dim: int) -> None:
        super().__init__()
        size = 1
        for s in in_shape:
            size *= int(s)
        layers: list[nn.Module] = [nn.Flatten()]
        for h in hidden:
            layers += [nn.Linear(size, h), nn.ReLU()]
            size = h
        layers.append(nn.Linear(size, embed_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """Encode ``x`` into ``[B, D]``."""
        return self.net(x)


_ENCODERS = {"conv2d": Conv2dEncoder, "mlp": MLPEncoder}


class MultimodalModel(nn.Module):
    """A model that follows the multimodal contract (see the module docstring).

    Args:
        encoders: Modality name -> encoder ``[B, *shape] -> [B, D]``; keys must match ``modalities``.
        fusion: The masked fusion over the modalities in ``modalities`` order.
        head: ``[B, D] -> [B, C]``.
        modalities: Specs in fusion order.
        label_names: Class names (C of them).
        architecture: The JSON architecture it was built from (stored in checkpoints), if any.
        factory: The :class:`~edgefuse.factory.FactoryRef` (``package.module:function`` + kwargs) that
            builds this architecture, if any; recorded in checkpoints so that training and WiSE-FT can
            rebuild the modules (imported only on opt-in).
        check: Run the contract check (below). Turn it off only for a model checked already.

    The contract is checked at construction on a dummy batch of 2 rows of zeros (each encoder on the
    device of its own parameters, in eval mode under ``no_grad``; training flags are restored and no
    BatchNorm statistic changes): each encoder must map ``[2, *spec.shape]`` to ``[2, D]`` with ``D =
    fusion.dim`` and the head ``[2, D]`` to ``[2, C]`` with ``C = len(label_names)``.

    Raises:
        ContractError: Duplicate modality names, encoders that do not match the modalities, a fusion
            over another number of modalities, no labels, or a module that breaks the contract on the
            dummy batch (the message names the module, the input shape and what it returned).
    """

    def __init__(
        self,
        encoders: Mapping[str, nn.Module],
        fusion: MaskedFusion,
        head: nn.Module,
        modalities: Sequence[ModalitySpec],
        label_names: Sequence[str],
        architecture: Mapping[str, Any] | None = None,
        *,
        factory: Any = None,
        check: bool = True,
    ) -> None:
        super().__init__()
        names = [m.name for m in modalities]
        if len(set(names)) != len(names):
            raise ContractError(f"modality names must be unique; got {names}")
        if set(encoders) != set(names):
            raise ContractError(f"encoders are for {sorted(encoders)} but the modalities are {names}")
        if fusion.num_modalities != len(names):
            raise ContractError(
                f"the fusion has {fusion.num_modalities} modalities; the model has {len(names)}"
            )
        if not label_names:
            raise ContractError("label_names is empty; a classifier needs at least one class")
        self.encoders = nn.ModuleDict({n: encoders[n] for n in names})
        self.fusion = fusion
        self.head = head
        self.modalities: tuple[ModalitySpec, ...] = tuple(modalities)
        self.label_names: tuple[str, ...] = tuple(label_names)
        self.architecture: dict[str, Any] = copy.deepcopy(dict(architecture or {}))
        self.factory = factory
        if check:
            check_contract(self)

    @property
    def modality_names(self) -> tuple[str, ...]:
        """Modality names in fusion order."""
        return tuple(m.name for m in self.modalities)

    @property
    def embed_dim(self) -> int:
        """D, the embedding size."""
        return self.fusion.dim

    def encode(self, inputs: Mapping[str, Tensor | None], mask: Tensor | None = None) -> list[Tensor | None]:
        """Run the encoders of the modalities present; absent ones give ``None``.

        Args:
            inputs: Modality name -> ``[B, *shape]`` tensor, or ``None``/missing for absent.
            mask: Optional bool ``[B, M]``; rows where a modality is absent are not encoded.

        Returns:
            One ``[B, D]`` tensor (or ``None``) per modality, in fusion order. Rows of a partially
            present modality that are absent hold zeros (the fusion ignores them).

        Raises:
            ContractError: For an unknown modality name, a wrong shape, or an inconsistent batch size.
        """
        unknown = set(inputs) - set(self.modality_names)
        if unknown:
            raise ContractError(
                f"inputs name unknown modalities {sorted(unknown)}; this model has {list(self.modality_names)}"
            )
        batch = self._batch_size(inputs, mask)
        if mask is not None and tuple(mask.shape) != (batch, len(self.modalities)):
            raise ContractError(
                f"mask has shape {tuple(mask.shape)}; expected (B, M) = ({batch}, {len(self.modalities)})"
            )
        out: list[Tensor | None] = []
        for m, spec in enumerate(self.modalities):
            x = inputs.get(spec.name)
            if x is None:
                if mask is not None and bool(mask[:, m].any()):
                    raise ContractError(
                        f"mask says {spec.name!r} is present in some rows but its input is None"
                    )
                out.append(None)
                continue
            if tuple(x.shape[1:]) != spec.shape:
                raise ContractError(
                    f"input {spec.name!r} has shape {tuple(x.shape)}; expected (B, {', '.join(map(str, spec.shape))})"
                )
            encoder = self.encoders[spec.name]
            if mask is None or bool(mask[:, m].all()):
                out.append(encoder(x))
                continue
            rows = torch.nonzero(mask[:, m], as_tuple=True)[0]
            if rows.numel() == 0:
                out.append(None)
                continue
            emb = encoder(x.index_select(0, rows))
            full = emb.new_zeros((batch, emb.shape[1]))
            out.append(full.index_copy(0, rows, emb))
        return out

    def _batch_size(self, inputs: Mapping[str, Tensor | None], mask: Tensor | None) -> int:
        sizes = {int(x.shape[0]) for x in inputs.values() if x is not None}
        if mask is not None:
            sizes.add(int(mask.shape[0]))
        if len(sizes) != 1:
            if not sizes:
                raise ContractError("every modality is absent and no mask gives the batch size")
            raise ContractError(f"inputs disagree on the batch size: {sorted(sizes)}")
        return sizes.pop()

    def presence(self, inputs: Mapping[str, Tensor | None], mask: Tensor | None = None) -> Tensor:
        """Return the effective bool presence mask ``[B, M]`` for ``inputs`` and ``mask``."""
        batch = self._batch_size(inputs, mask)
        if mask is not None:
            return mask.to(torch.bool)
        cols = [inputs.get(n) is not None for n in self.modality_names]
        return torch.tensor(cols, dtype=torch.bool).expand(batch, len(cols))

    def forward(self, inputs: Mapping[str, Tensor | None], mask: Tensor | None = None) -> Tensor:
        """Return logits ``[B, C]``; see the module docstring for the contract."""
        return self.head(self.fuse(inputs, mask))

    def fuse(self, inputs: Mapping[str, Tensor | None], mask: Tensor | None = None) -> Tensor:
        """Encoders of the present modalities, then masked fusion: the fused embedding ``[B, D]``."""
        mask = None if mask is None else mask.to(torch.bool)
        embeddings = self.encode(inputs, mask)
        if all(e is None for e in embeddings):
            batch = self._batch_size(inputs, mask)
            mask = torch.zeros(batch, len(self.modalities), dtype=torch.bool)
        return self.fusion(embeddings, mask)


def _module_device(module: nn.Module) -> torch.device:
    for t in itertools.chain(module.parameters(), module.buffers()):
        return t.device
    return torch.device("cpu")


def _describe(out: object) -> str:
    if isinstance(out, Tensor):
        return f"a tensor of shape {tuple(out.shape)} ({str(out.dtype).removeprefix('torch.')})"
    if isinstance(out, (tuple, list)):
        return f"a {type(out).__name__} of {len(out)} items (return one tensor [B, D])"
    return f"a {type(out).__name__}"


def check_contract(model: MultimodalModel) -> None:
    """Run each encoder and the head on a dummy batch and check the shapes the contract requires.

    See :class:`MultimodalModel`. Modules are put in eval mode for the check (no BatchNorm statistic
    or dropout state changes) and their training flags are restored afterwards.

    Raises:
        ContractError: Naming the module (``encoders['audio']``, ``head``), its input shape and what it
            returned or raised.
    """
    batch, dim, classes = 2, model.fusion.dim, len(model.label_names)
    modules = [(f"encoders[{spec.name!r}]", model.encoders[spec.name], spec) for spec in model.modalities]
    flags = {m: m.training for m in model.modules()}
    try:
        model.eval()
        with torch.no_grad():
            for label, module, spec in modules:
                device = _module_device(module)
                dtype = getattr(torch, spec.dtype)
                x = torch.zeros((batch, *spec.shape), dtype=dtype, device=device)
                _check_module(label, module, x, (batch, dim), "[B, D]")
            fused = torch.zeros((batch, dim), device=_module_device(model.head))
            _check_module("head", model.head, fused, (batch, classes), "[B, C]")
    finally:
        for m, flag in flags.items():
            m.training = flag


def _check_module(label: str, module: nn.Module, x: Tensor, want: tuple[int, int], form: str) -> None:
    shape = f"[{', '.join(map(str, x.shape))}]"
    try:
        out = module(x)
    except Exception as exc:
        raise ContractError(
            f"{label} ({type(module).__name__}) failed on a dummy input of shape {shape}: "
            f"{type(exc).__name__}: {str(exc)[:300]}"
        ) from None
    if not isinstance(out, Tensor) or tuple(out.shape) != want or not out.is_floating_point():
        raise ContractError(
            f"{label} ({type(module).__name__}) maps {shape} to {_describe(out)}; the contract needs "
            f"{form} = [{', '.join(map(str, want))}] floats"
        )


def build_model(
    architecture: Mapping[str, Any], modalities: Sequence[ModalitySpec], label_names: Sequence[str]
) -> MultimodalModel:
    """Build a contract model from a JSON architecture.

    Architecture keys: ``embed_dim`` (int), ``encoders`` (modality -> ``{"type": "conv2d", "channels":
    [...]}`` or ``{"type": "mlp", "hidden": [...]}``), ``head_hidden`` (list of ints, may be empty),
    ``fusion`` (optional ``{"learn_weights": bool, "eps": float, "gate_hidden": int}``; ``gate_hidden`` > 0
    adds a per-modality reliability gate, see :class:`~edgefuse.models.fusion.MaskedFusion`), ``name``
    (free text).

    Raises:
        ContractError: When a key is missing/unknown or an encoder type is not supported.
    """
    allowed = {"name", "embed_dim", "encoders", "head_hidden", "fusion", "dropout"}
    unknown = set(architecture) - allowed
    if unknown:
        raise ContractError(f"architecture has unknown keys {sorted(unknown)}; allowed: {sorted(allowed)}")
    for key in ("embed_dim", "encoders"):
        if key not in architecture:
            raise ContractError(f"architecture is missing {key!r}")
    dim = int(architecture["embed_dim"])
    enc_cfg = architecture["encoders"]
    names = [m.name for m in modalities]
    if set(enc_cfg) != set(names):
        raise ContractError(f"architecture has encoders for {sorted(enc_cfg)}; the modalities are {names}")
    encoders: dict[str, nn.Module] = {}
    for spec in modalities:
        cfg = dict(enc_cfg[spec.name])
        kind = cfg.pop("type", None)
        if kind not in _ENCODERS:
            raise ContractError(
                f"encoder {spec.name!r} has type {kind!r}; supported types: {sorted(_ENCODERS)}"
            )
        try:
            if kind == "conv2d":
                encoders[spec.name] = Conv2dEncoder(
                    spec.shape, cfg.pop("channels"), dim, cfg.pop("pool", "global")
                )
            else:
                encoders[spec.name] = MLPEncoder(spec.shape, cfg.pop("hidden", []), dim)
        except KeyError as exc:
            raise ContractError(f"encoder {spec.name!r} ({kind}) is missing {exc}") from None
        if cfg:
            raise ContractError(f"encoder {spec.name!r} ({kind}) has unknown keys {sorted(cfg)}")
    fusion_cfg = dict(architecture.get("fusion", {}))
    unknown_fusion = set(fusion_cfg) - {"eps", "learn_weights", "gate_hidden"}
    if unknown_fusion:
        raise ContractError(
            f"architecture fusion has unknown keys {sorted(unknown_fusion)}; allowed: eps, gate_hidden, "
            "learn_weights"
        )
    fusion = MaskedFusion(
        len(modalities),
        dim,
        eps=float(fusion_cfg.get("eps", 1e-5)),
        learn_weights=bool(fusion_cfg.get("learn_weights", False)),
        gate_hidden=fusion_cfg.get("gate_hidden", 0),
    )
    head_layers: list[nn.Module] = []
    size = dim
    for h in architecture.get("head_hidden", []):
        head_layers += [nn.Linear(size, int(h)), nn.ReLU()]
        if architecture.get("dropout"):
            head_layers.append(nn.Dropout(float(architecture["dropout"])))
        size = int(h)
    head_layers.append(nn.Linear(size, len(label_names)))
    return MultimodalModel(
        encoders, fusion, nn.Sequential(*head_layers), modalities, label_names, architecture
    )


def add_gates(model: MultimodalModel, hidden: int) -> MultimodalModel:
    """Give ``model``'s fusion one reliability gate per modality (in place; returns ``model``).

    The new :class:`~edgefuse.models.fusion.MaskedFusion` keeps the fixed weights, LayerNorm and eps of
    the old one (the same device), with fresh gates drawn from torch's current RNG (seed it first). A
    model built from a JSON architecture records ``fusion.gate_hidden`` in it, so its checkpoint
    rebuilds the gates. A model that already has gates of that size is returned unchanged.

    Raises:
        ContractError: The model already has gates of another size.
        FusionInputError: A bad ``hidden`` (from the gate).
    """
    old = model.fusion
    if old.gated:
        if old.gate_hidden == int(hidden):
            return model
        raise ContractError(
            f"the model already has reliability gates of {old.gate_hidden} units, not {hidden}"
        )
    new = MaskedFusion(
        old.num_modalities,
        old.dim,
        eps=old.eps,
        learn_weights=isinstance(old.log_weights, nn.Parameter),
        affine=old.norm.weight is not None,
        gate_hidden=int(hidden),
    ).to(_module_device(old))
    with torch.no_grad():
        new.log_weights.copy_(old.log_weights)
        if old.norm.weight is not None:
            new.norm.weight.copy_(old.norm.weight)
            new.norm.bias.copy_(old.norm.bias)
    new.train(old.training)
    model.fusion = new
    if model.architecture:
        fusion_cfg = dict(model.architecture.get("fusion", {}))
        fusion_cfg["gate_hidden"] = int(hidden)
        model.architecture["fusion"] = fusion_cfg
    return model


def gate_hidden_of(state: Mapping[str, Tensor]) -> int:
    """The gate size a model state dict was saved with (0: no gates), read from its tensor shapes."""
    w = state.get("fusion.gates.0.net.0.weight")
    return 0 if w is None else int(w.shape[0])
