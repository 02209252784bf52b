"""Training contract models on the CPU: supervised late fusion and contrastive pre-training + fine-tuning.

Deterministic for a seed (same machine, same thread count): weights are initialised from
``torch.manual_seed(seed)`` and batches are shuffled by ``numpy.random.default_rng(seed)``.

* ``supervised``: encoders + masked fusion + head trained end-to-end with cross-entropy on the labelled
  modalities ``S`` (the others are absent: their encoders are not run).
* ``contrastive``: CLIP-style symmetric InfoNCE pre-training of the encoders on unlabelled pairs of
  every modality the model knows (labels unused), then supervised fine-tuning on ``S``. This is the
  setting of the "added" scenario: a modality outside ``S`` was aligned without labels.

The epoch with the best validation accuracy (on ``S``) is kept.
"""

from __future__ import annotations

import copy
import itertools
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor

from edgefuse.data.base import MultimodalDataset, Split
from edgefuse.errors import ContractError
from edgefuse.models.contract import MultimodalModel, build_model
from edgefuse.models.reference import reference_architecture

__all__ = ["METHODS", "TrainConfig", "TrainResult", "accuracy", "pretrain_contrastive", "to_tensors", "train"]

logger = logging.getLogger(__name__)

METHODS = ("supervised", "contrastive")


@dataclass(frozen=True)
class TrainConfig:
    """A training recipe (stored in the checkpoint).

    Attributes:
        modalities: ``S``, the labelled modalities used for (fine-)tuning, in any order.
        method: ``supervised`` or ``contrastive``.
        epochs: Supervised (fine-tuning) epochs.
        batch_size: Mini-batch size.
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        seed: Seed for initialisation and shuffling.
        pretrain_epochs: Contrastive pre-training epochs (``contrastive`` only).
        temperature: InfoNCE temperature.
        finetune_encoder_lr_scale: Learning-rate multiplier of the encoders while fine-tuning a
            contrastively pre-trained model (small values keep the alignment; 0 freezes them: a
            linear probe).
        intervention: Robustness intervention applied while training (``none`` here; see
            :mod:`edgefuse.interventions`).
        intervention_params: Its hyper-parameters.
    """

    modalities: tuple[str, ...]
    method: str = "supervised"
    epochs: int = 20
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-4
    seed: int = 0
    pretrain_epochs: int = 10
    temperature: float = 0.1
    finetune_encoder_lr_scale: float = 0.3
    intervention: str = "none"
    intervention_params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ContractError(f"method {self.method!r} is not one of {METHODS}")
        if not self.modalities:
            raise ContractError("TrainConfig.modalities is empty; train on at least one modality")
        for name, value in (("epochs", self.epochs), ("batch_size", self.batch_size)):
            if int(value) < (0 if name == "epochs" else 1):
                raise ContractError(f"{name} = {value} is out of range")
        object.__setattr__(self, "modalities", tuple(self.modalities))

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable recipe."""
        d = asdict(self)
        d["modalities"] = list(self.modalities)
        d["intervention_params"] = dict(self.intervention_params)
        return d


@dataclass
class TrainResult:
    """The trained model and what happened.

    Attributes:
        model: The model (eval mode) at the best validation epoch.
        config: The recipe used.
        history: One dict per epoch (``phase``, ``epoch``, ``loss``, ``val_accuracy``).
        metrics: ``val_accuracy`` (on ``S``) and ``train_seconds``.
    """

    model: MultimodalModel
    config: TrainConfig
    history: list[dict[str, Any]]
    metrics: dict[str, float]


def to_tensors(split: Split, modalities: Sequence[str] | None = None) -> dict[str, Tensor]:
    """Return the split's inputs as torch tensors (sharing memory with the NumPy arrays)."""
    names = modalities if modalities is not None else list(split.inputs)
    return {n: torch.from_numpy(np.ascontiguousarray(split.inputs[n])) for n in names}


@torch.no_grad()
def accuracy(
    model: MultimodalModel,
    split: Split,
    modalities: Sequence[str],
    batch_size: int = 1024,
    absent: str = "none",
) -> float:
    """Top-1 accuracy of ``model`` on ``split`` with only ``modalities`` present (the others absent).

    Args:
        model: A contract model.
        split: The data.
        modalities: ``T``, the modalities present.
        batch_size: Evaluation batch size.
        absent: How absent modalities are passed: ``none`` (as ``None``, the encoder is not run) or
            ``masked`` (every array is passed and the presence mask is 0 for the absent ones, as the
            runtime's per-row masks do). Both give identical results: absent data is never read.

    Raises:
        ContractError: For an unknown ``absent`` mode or modality.
    """
    if absent not in ("none", "masked"):
        raise ContractError(f"absent={absent!r}; expected 'none' or 'masked'")
    _check_modalities(model, modalities)
    model.eval()
    names = list(modalities) if absent == "none" else list(model.modality_names)
    x = to_tensors(split, names)
    present = torch.tensor([n in modalities for n in model.modality_names], dtype=torch.bool)
    labels = torch.from_numpy(split.labels)
    correct = 0
    for start in range(0, len(split), batch_size):
        batch = {k: v[start : start + batch_size] for k, v in x.items()}
        rows = len(labels[start : start + batch_size])
        mask = present.expand(rows, -1) if absent == "masked" else None
        pred = model(batch, mask).argmax(dim=1)
        correct += int((pred == labels[start : start + batch_size]).sum())
    return correct / max(1, len(split))


def _check_modalities(model: MultimodalModel, names: Sequence[str]) -> None:
    unknown = [n for n in names if n not in model.modality_names]
    if unknown:
        raise ContractError(f"modalities {unknown} are not in the model; it has {list(model.modality_names)}")


def _batches(n: int, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    order = rng.permutation(n)
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]


def info_nce(a: Tensor, b: Tensor, temperature: float) -> Tensor:
    """Symmetric InfoNCE (CLIP) loss between two batches of embeddings ``[B, D]`` paired by row."""
    a = F.normalize(a, dim=1)
    b = F.normalize(b, dim=1)
    logits = a @ b.T / temperature
    target = torch.arange(a.shape[0])
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def pretrain_contrastive(
    model: MultimodalModel,
    dataset: MultimodalDataset,
    config: TrainConfig,
    progress: Callable[[str, int, int], None] | None = None,
) -> list[dict[str, Any]]:
    """Align every encoder of ``model`` with InfoNCE on unlabelled pairs of the train split (in place).

    Every pair of modalities contributes one symmetric InfoNCE term; labels are not used.

    Returns:
        The per-epoch history.
    """
    split = dataset.split("train")
    names = list(model.modality_names)
    if len(names) < 2:
        raise ContractError("contrastive pre-training needs at least two modalities")
    x = to_tensors(split, names)
    rng = np.random.default_rng(config.seed + 1_000_003)
    params = [p for enc in model.encoders.values() for p in enc.parameters()]
    opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    history = []
    model.train()
    for epoch in range(config.pretrain_epochs):
        total, count = 0.0, 0
        for idx in _batches(len(split), config.batch_size, rng):
            if len(idx) < 2:
                continue
            ti = torch.from_numpy(idx)
            emb = {n: model.encoders[n](x[n].index_select(0, ti)) for n in names}
            loss = sum(
                info_nce(emb[a], emb[b], config.temperature) for a, b in itertools.combinations(names, 2)
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
            count += len(idx)
        history.append({"phase": "pretrain", "epoch": epoch, "loss": total / max(1, count)})
        if progress:
            progress("pretrain", epoch + 1, config.pretrain_epochs)
    return history


def train(
    dataset: MultimodalDataset,
    config: TrainConfig,
    architecture: Mapping[str, Any] | None = None,
    *,
    pretrained_encoders: Mapping[str, Any] | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> TrainResult:
    """Train a contract model on ``dataset`` with ``config``.

    Args:
        dataset: Any :class:`MultimodalDataset` with ``train`` and ``val`` splits.
        config: The recipe.
        architecture: JSON architecture for :func:`build_model`; default: the reference architecture.
        pretrained_encoders: For ``contrastive``: a state dict of ``model.encoders`` from an earlier
            :func:`pretrain_contrastive` with the same seed, to skip pre-training (the grid shares one
            pre-training across train sets).
        progress: Optional callback ``(phase, step, total)``.

    Returns:
        The :class:`TrainResult`.
    """
    from edgefuse.interventions import make_loss

    t0 = time.perf_counter()
    torch.manual_seed(config.seed)
    arch = dict(architecture) if architecture is not None else reference_architecture(dataset.modalities)
    model = build_model(arch, dataset.modalities, dataset.label_names)
    _check_modalities(model, config.modalities)
    history: list[dict[str, Any]] = []
    encoder_scale = 1.0
    if config.method == "contrastive":
        if pretrained_encoders is not None:
            model.encoders.load_state_dict(pretrained_encoders)
        else:
            history += pretrain_contrastive(model, dataset, config, progress)
        encoder_scale = config.finetune_encoder_lr_scale

    order = [n for n in model.modality_names if n in config.modalities]  # S in model order
    train_split, val_split = dataset.split("train"), dataset.split("val")
    x = to_tensors(train_split, order)
    y = torch.from_numpy(train_split.labels)
    enc_params = [p for n in order for p in model.encoders[n].parameters()]
    other = [p for name, p in model.named_parameters() if not name.startswith("encoders.")]
    opt = torch.optim.AdamW(
        [{"params": enc_params, "lr": config.lr * encoder_scale}, {"params": other, "lr": config.lr}],
        weight_decay=config.weight_decay,
    )
    loss_fn = make_loss(config)
    rng = np.random.default_rng(config.seed)
    gen = torch.Generator().manual_seed(config.seed + 7)
    best_acc, best_state = -1.0, copy.deepcopy(model.state_dict())
    for epoch in range(config.epochs):
        model.train()
        total, count = 0.0, 0
        for idx in _batches(len(train_split), config.batch_size, rng):
            ti = torch.from_numpy(idx)
            batch = {n: x[n].index_select(0, ti) for n in order}
            loss = loss_fn(model, batch, y.index_select(0, ti), gen)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
            count += len(idx)
        val_acc = accuracy(model, val_split, order)
        history.append(
            {"phase": "train", "epoch": epoch, "loss": total / max(1, count), "val_accuracy": val_acc}
        )
        if val_acc > best_acc:
            best_acc, best_state = val_acc, copy.deepcopy(model.state_dict())
        if progress:
            progress("train", epoch + 1, config.epochs)
        if not math.isfinite(total):
            raise ContractError(f"training diverged at epoch {epoch} (loss {total}); lower the learning rate")
    model.load_state_dict(best_state)
    model.eval()
    metrics = {"val_accuracy": best_acc, "train_seconds": time.perf_counter() - t0}
    return TrainResult(model=model, config=config, history=history, metrics=metrics)
