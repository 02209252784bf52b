"""Training contract models on the CPU: supervised late fusion and contrastive pre-training + fine-tuning.

Deterministic for a seed (same machine, same thread count): weights are initialised from
``torch.manual_seed(seed)`` and batches are shuffled by ``numpy.random.default_rng(seed)``. The thread
count matters: torch's CPU kernels split reductions (matmul, convolution, their gradients) by thread, so
1 and 2 threads round differently and, over an epoch, train measurably different models. ``train(...,
threads=N)`` (and :func:`deterministic`) pins the intra-op threads and turns on
``torch.use_deterministic_algorithms`` for the run, whatever the caller's setting: then the same seed
gives bit-identical weights on any machine of the same kind (CPU ISA, torch build).

* ``supervised``: encoders + masked fusion + head trained end-to-end with cross-entropy on the labelled
  modalities ``S`` (the others are absent: their encoders are not run).
* ``contrastive``: CLIP-style symmetric InfoNCE pre-training of the encoders on unlabelled pairs of
  every modality the model knows (labels unused), then supervised fine-tuning on ``S``. This is the
  setting of the "added" scenario: a modality outside ``S`` was aligned without labels.

The epoch with the best validation accuracy (on ``S``) is kept.

The model is either built from a JSON architecture (``architecture=``, :func:`build_model`; default:
the reference architecture) or by the user's **model factory** (``model_factory=``, see
:mod:`edgefuse.factory`): ``factory(dataset.modalities, dataset.label_names)`` must return a fresh
:class:`MultimodalModel` over every modality of the dataset (``S`` only selects what is labelled, the
model always knows all of ``U``). Everything here — both methods and every intervention — only uses
the contract (``model.encoders``, ``model(inputs, mask)``, ``state_dict``), so it runs on any
architecture the factory builds.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor

from edgefuse.chance import NearChanceWarning, chance_accuracy, near_chance, not_learned_message
from edgefuse.data.base import MultimodalDataset, Split
from edgefuse.errors import ContractError
from edgefuse.factory import FactoryError, ModelFactory, build_with
from edgefuse.models.contract import MultimodalModel, build_model
from edgefuse.models.reference import reference_architecture

__all__ = [
    "METHODS",
    "TrainConfig",
    "TrainResult",
    "accuracy",
    "check_model_source",
    "deterministic",
    "load_encoders",
    "new_model",
    "pretrain_contrastive",
    "snapshot",
    "to_tensors",
    "train",
]

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
        metrics: ``val_accuracy`` (on ``S``), ``chance`` (the validation split's chance level, see
            :mod:`edgefuse.chance`) and ``train_seconds``.
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
    params = _unique([p for enc in model.encoders.values() for p in enc.parameters()])
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


def check_model_source(architecture: Mapping[str, Any] | None, model_factory: ModelFactory | None) -> None:
    """Refuse ``architecture`` and ``model_factory`` given together (one model source at a time).

    Raises:
        FactoryError: Both are given, or ``model_factory`` is not callable.
    """
    if architecture is not None and model_factory is not None:
        raise FactoryError(
            "pass either architecture= (a JSON architecture for build_model) or model_factory= (your own "
            "model), not both"
        )
    if model_factory is not None and not callable(model_factory):
        raise FactoryError(f"model_factory is a {type(model_factory).__name__}, not a callable")


def new_model(
    dataset: MultimodalDataset,
    architecture: Mapping[str, Any] | None = None,
    model_factory: ModelFactory | None = None,
) -> MultimodalModel:
    """A fresh model over every modality of ``dataset`` (seed torch first for a reproducible init).

    With ``model_factory``, the model is ``build_with(model_factory, dataset.modalities,
    dataset.label_names)`` (checked to be a :class:`MultimodalModel` over exactly those modalities and
    labels); when the factory carries a reference (``edgefuse_factory_ref``, set by
    :func:`~edgefuse.factory.import_factory`) and the model records none, it is stored in
    ``model.factory`` so that checkpoints record how to rebuild it. Otherwise the model is
    :func:`build_model` of ``architecture`` (default: the reference architecture).

    Raises:
        FactoryError: Both sources given, or the factory fails or builds a model over other
            modalities/labels.
        ContractError: A bad architecture, or a model that breaks the contract.
    """
    check_model_source(architecture, model_factory)
    if model_factory is not None:
        model = build_with(model_factory, dataset.modalities, dataset.label_names)
        ref = getattr(model_factory, "edgefuse_factory_ref", None)
        if ref is not None and getattr(model, "factory", None) is None:
            model.factory = ref
        return model
    arch = dict(architecture) if architecture is not None else reference_architecture(dataset.modalities)
    return build_model(arch, dataset.modalities, dataset.label_names)


def snapshot(module: torch.nn.Module) -> dict[str, Tensor]:
    """A detached copy of ``module.state_dict()`` (works for any module: no deep copy of the module)."""
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def load_encoders(model: MultimodalModel, state: Mapping[str, Tensor]) -> None:
    """Load a state dict of ``model.encoders`` (e.g. pre-trained ones), naming what does not match.

    Raises:
        ContractError: The state dict is for other encoders (missing/unexpected tensors or shapes).
    """
    try:
        model.encoders.load_state_dict(state)
    except RuntimeError as exc:
        raise ContractError(
            f"the pre-trained encoders do not match this model's encoders (was it built by the same "
            f"architecture or factory?): {str(exc)[:500]}"
        ) from None


def _unique(params: Sequence[torch.nn.Parameter], skip: set[int] | None = None) -> list[torch.nn.Parameter]:
    """Parameters in order without repeats (a module may share one between encoders or with the head)."""
    seen = set(skip or ())
    out = []
    for p in params:
        if id(p) not in seen:
            seen.add(id(p))
            out.append(p)
    return out


@contextlib.contextmanager
def deterministic(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` torch intra-op threads and deterministic algorithms, then restore.

    Contract: inside the block, results depend on the seed and ``threads``, not on the caller's thread
    setting; ``torch.use_deterministic_algorithms(True, warn_only=True)`` is on (an op without a
    deterministic kernel warns instead of raising). ``threads=None`` keeps the caller's thread count.

    Raises:
        ValueError: ``threads`` is given and < 1.
    """
    if threads is not None and int(threads) < 1:
        raise ValueError(f"threads={threads}; give a thread count >= 1 (or None for the process setting)")
    previous = torch.get_num_threads()
    was = torch.are_deterministic_algorithms_enabled()
    was_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    if threads is not None:
        torch.set_num_threads(int(threads))
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(was, warn_only=was_warn)
        if threads is not None:
            torch.set_num_threads(previous)


def train(
    dataset: MultimodalDataset,
    config: TrainConfig,
    architecture: Mapping[str, Any] | None = None,
    *,
    model_factory: ModelFactory | None = None,
    pretrained_encoders: Mapping[str, Any] | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    threads: int | None = None,
) -> TrainResult:
    """Train a contract model on ``dataset`` with ``config``.

    Args:
        dataset: Any :class:`MultimodalDataset` with ``train`` and ``val`` splits.
        config: The recipe.
        architecture: JSON architecture for :func:`build_model`; default: the reference architecture.
        model_factory: Your own architecture instead: ``factory(modalities, label_names) ->
            MultimodalModel`` (see :mod:`edgefuse.factory`), called once after ``torch.manual_seed``
            with every modality of the dataset; see :func:`new_model`. Not together with
            ``architecture``.
        pretrained_encoders: For ``contrastive``: a state dict of ``model.encoders`` from an earlier
            :func:`pretrain_contrastive` with the same seed and architecture (or factory), to skip
            pre-training (the grid shares one pre-training across train sets).
        progress: Optional callback ``(phase, step, total)``.
        threads: torch intra-op threads for this training (see :func:`deterministic`); the same seed and
            ``threads`` give bit-identical weights whatever the caller's thread setting. None: the
            caller's setting (deterministic algorithms are on either way).

    Returns:
        The :class:`TrainResult`.

    Raises:
        FactoryError: ``architecture`` and ``model_factory`` both given, or the factory fails or builds
            a model over other modalities/labels.
        ContractError: A bad recipe/intervention, unknown modalities, pre-trained encoders that do not
            match, or a diverged training.

    Warns:
        NearChanceWarning: The best validation accuracy on ``S`` is within 5 points of the validation
            split's chance level (:mod:`edgefuse.chance`): the model did not learn. It is still returned.
    """
    with deterministic(threads):
        return _train(dataset, config, architecture, model_factory, pretrained_encoders, progress)


def _augmented_copies(
    dataset: MultimodalDataset, order: Sequence[str], config: TrainConfig, gate: Mapping[str, Any]
) -> list[tuple[dict[str, Tensor], dict[str, Tensor]]]:
    """``gate["copies"]`` corrupted copies of the train split's ``order`` inputs (a gate intervention).

    Each copy is ``(inputs, quality)``: ``quality[m]`` is float ``(N,)``, 1 for a clean row and ``(1 -
    severity / 5) ** target_power`` for a row corrupted at that severity (the gates' training target). Seeds
    ``AUGMENT_SEED_BASE + 64 * config.seed + copy`` (never an evaluation seed); the kinds never make a
    row non-finite.
    """
    from edgefuse.data.corruptions import augment_split
    from edgefuse.interventions import AUGMENT_SEED_BASE, augmentation_kinds

    kinds = augmentation_kinds(dataset, order)
    if not kinds:
        return []
    out = []
    power = float(gate["target_power"])
    for copy in range(int(gate["copies"])):
        seed = AUGMENT_SEED_BASE + 64 * config.seed + copy
        split = augment_split(dataset, "train", kinds, p=float(gate["corrupt_p"]), seed=seed)
        applied = split.record["applied"]
        quality = {
            m: torch.tensor(
                [(1.0 - int(tag.split("@")[1]) / 5.0) ** power if tag else 1.0 for tag in applied[m]],
                dtype=torch.float32,
            )
            for m in order
            if m in applied
        }
        out.append((to_tensors(split, order), quality))
    return out


def _train(
    dataset: MultimodalDataset,
    config: TrainConfig,
    architecture: Mapping[str, Any] | None,
    model_factory: ModelFactory | None,
    pretrained_encoders: Mapping[str, Any] | None,
    progress: Callable[[str, int, int], None] | None,
) -> TrainResult:
    from edgefuse.interventions import gate_params, make_loss
    from edgefuse.models.contract import add_gates

    t0 = time.perf_counter()
    loss_fn = make_loss(config)  # refuses a bad intervention before any work
    gate = gate_params(config)
    torch.manual_seed(config.seed)
    model = new_model(dataset, architecture, model_factory)  # checks the model source first
    _check_modalities(model, config.modalities)
    if gate is not None:
        add_gates(model, gate["hidden"])
    history: list[dict[str, Any]] = []
    encoder_scale = 1.0
    if config.method == "contrastive":
        if pretrained_encoders is not None:
            load_encoders(model, pretrained_encoders)
        else:
            history += pretrain_contrastive(model, dataset, config, progress)
        encoder_scale = config.finetune_encoder_lr_scale

    order = [n for n in model.modality_names if n in config.modalities]  # S in model order
    train_split, val_split = dataset.split("train"), dataset.split("val")
    x = to_tensors(train_split, order)
    copies = _augmented_copies(dataset, order, config, gate) if gate is not None else []
    y = torch.from_numpy(train_split.labels)
    enc_params = _unique([p for n in order for p in model.encoders[n].parameters()])
    other = _unique(
        [p for name, p in model.named_parameters() if not name.startswith("encoders.")],
        skip={id(p) for p in enc_params},
    )
    opt = torch.optim.AdamW(
        [{"params": enc_params, "lr": config.lr * encoder_scale}, {"params": other, "lr": config.lr}],
        weight_decay=config.weight_decay,
    )
    rng = np.random.default_rng(config.seed)
    gen = torch.Generator().manual_seed(config.seed + 7)
    best_acc, best_state = -1.0, snapshot(model)
    for epoch in range(config.epochs):
        model.train()
        total, count = 0.0, 0
        warm = gate is None or epoch < int(gate["warmup"])  # clean epochs first: the encoders learn
        xe, quality = (x, {}) if warm or not copies else copies[epoch % len(copies)]
        for idx in _batches(len(train_split), config.batch_size, rng):
            ti = torch.from_numpy(idx)
            batch = {n: xe[n].index_select(0, ti) for n in order}
            if gate is None:
                loss = loss_fn(model, batch, y.index_select(0, ti), gen)
            else:
                q = {n: v.index_select(0, ti) for n, v in quality.items()}
                loss = loss_fn(model, batch, y.index_select(0, ti), gen, quality=q)
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
            best_acc, best_state = val_acc, snapshot(model)
        if progress:
            progress("train", epoch + 1, config.epochs)
        if not math.isfinite(total):
            raise ContractError(f"training diverged at epoch {epoch} (loss {total}); lower the learning rate")
    model.load_state_dict(best_state)
    model.eval()
    chance = chance_accuracy(val_split.labels)
    metrics = {"val_accuracy": best_acc, "chance": chance, "train_seconds": time.perf_counter() - t0}
    if near_chance(best_acc, chance):
        label = config.method if config.intervention == "none" else f"{config.method}+{config.intervention}"
        what = f"{label} S={'+'.join(order)} (seed {config.seed})"
        warnings.warn(NearChanceWarning(not_learned_message(what, best_acc, chance)), stacklevel=3)
    return TrainResult(model=model, config=config, history=history, metrics=metrics)
