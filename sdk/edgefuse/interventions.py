"""Training losses, including the robustness interventions (``TrainConfig.intervention``), and WiSE-FT.

* ``none``: cross-entropy with every labelled modality of ``S`` present.
* ``moddrop`` (modality dropout, Neverova et al.): each modality of each sample is dropped with
  probability ``p`` (default 0.5), never all of them: a sample whose draw drops everything keeps one
  modality chosen uniformly. Parameters: ``p``.
* ``masd`` (modality-augmented self-distillation): per batch a teacher pass with every modality of
  ``S`` (its targets carry no gradient) and ``K`` student passes, each with a random non-empty proper
  subset of ``S`` per sample (uniform over the subsets)::

      loss = CE(full, y) + λ · mean_k[ β·CE(sub_k, y) + (1−β)·τ²·KL(softmax(t/τ) ‖ softmax(s_k/τ)) ]

  Parameters (defaults): ``K`` (1), ``lambda`` (1.0), ``beta`` (0.5), ``tau`` (2.0). With one modality
  in ``S`` there is no proper subset and MASD is plain cross-entropy.
* ``gate+moddrop`` / ``gate+masd`` (reliability-aware fusion): the model's fusion gets one
  :class:`~edgefuse.models.fusion.ReliabilityGate` per modality (``hidden`` units), so each row weighs each
  modality by a reliability computed from that modality's own embedding; the loss is ``moddrop``'s or
  ``masd``'s, and every epoch trains on a corrupted copy of the train split: each row of each labelled
  modality is corrupted with probability ``corrupt_p`` by a kind and severity (1-5) drawn uniformly from
  the kinds the dataset supports for it (:func:`augmentation_kinds`); ``copies`` different copies are
  made once (seeds disjoint from evaluation seeds) and cycled over the epochs; on waveforms every row
  gets another random microphone. Each gate is also taught what degradation looks like: ``gate_weight``
  × binary cross-entropy between its output and the row's quality (1 clean, ``(1 - severity / 5) **
  target_power`` corrupted; :func:`reliability_loss`), on detached embeddings (it trains the gates only). The target is
  the known severity, not the model's confidence on the train speakers: a corrupted recording of a
  training speaker is still classified confidently, so a confidence target taught the gates little
  (measured: audio reliability 0.90 clean vs 0.89 under severity-5 EQ). The encoders run once per batch
  on every row; dropout/subset masks are applied at the fusion. The first ``warmup`` epochs train on
  clean data (measured: corrupting from the first epoch left one seed's audio encoder at chance). Parameters:
  those of the loss plus ``hidden`` (32), ``corrupt_p`` (0.8), ``copies`` (8), ``gate_weight`` (1.0),
  ``warmup`` (5), ``target_power`` (1.0). Chosen on AV-digits seeds 0-3 (test rows under another
  microphone, supervised gate+moddrop): ``corrupt_p`` 0.8 over 0.5 (mean EQ regret at severity 3/4/5
  -2.3/+2.5/-1.6 points vs +3.7/+6.5/-2.3); ``target_power`` 2, 32 extra units with ``gate_weight`` 3,
  and freezing the encoders on corrupted rows were each worse on the seeds tried.

WiSE-FT (weight-space ensembling, Wortsman et al.) is :func:`interpolate_state`: ``θ(α) = (1−α)·θ₀ +
α·θ₁`` for two models of one architecture.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Generator, Tensor

from edgefuse.errors import CheckpointError, ContractError

if TYPE_CHECKING:
    from edgefuse.models.contract import MultimodalModel


class LossConfig(Protocol):
    """What a loss needs from a training config (:class:`edgefuse.train.TrainConfig` has it).

    A protocol, so this module does not import :mod:`edgefuse.train`, which imports it.
    """

    intervention: str
    intervention_params: Mapping[str, Any]


__all__ = [
    "AUGMENT_SEED_BASE",
    "DEFAULT_PARAMS",
    "GATE_PARAMS",
    "INTERVENTIONS",
    "LossFn",
    "augmentation_kinds",
    "describe_state_difference",
    "gate_params",
    "interpolate_state",
    "make_loss",
    "masd_loss",
    "modality_dropout_mask",
    "proper_subset_mask",
    "reliability_loss",
]

LossFn = Callable[["MultimodalModel", Mapping[str, Tensor], Tensor, Generator], Tensor]

INTERVENTIONS = ("none", "moddrop", "masd", "gate+moddrop", "gate+masd")
#: The parameters a reliability gate intervention adds to its loss's.
GATE_PARAMS: dict[str, float] = {
    "hidden": 32,
    "corrupt_p": 0.8,
    "copies": 8,
    "gate_weight": 1.0,
    "warmup": 5,
    "target_power": 1.0,
}
DEFAULT_PARAMS: dict[str, dict[str, float]] = {
    "none": {},
    "moddrop": {"p": 0.5},
    "masd": {"K": 1, "lambda": 1.0, "beta": 0.5, "tau": 2.0},
}
DEFAULT_PARAMS["gate+moddrop"] = {**DEFAULT_PARAMS["moddrop"], **GATE_PARAMS}
DEFAULT_PARAMS["gate+masd"] = {**DEFAULT_PARAMS["masd"], **GATE_PARAMS}
#: Training augmentation seeds start here (evaluation corruptions use small seeds: never the same draws).
AUGMENT_SEED_BASE = 1_000_003


def _present_mask(model: MultimodalModel, batch: Mapping[str, Tensor]) -> tuple[Tensor, list[int]]:
    """The all-present mask ``[B, M]`` of a batch and the columns of the modalities it holds."""
    names = model.modality_names
    cols = [i for i, n in enumerate(names) if batch.get(n) is not None]
    b = next(v for v in batch.values() if v is not None).shape[0]
    mask = torch.zeros(b, len(names), dtype=torch.bool)
    mask[:, cols] = True
    return mask, cols


def modality_dropout_mask(batch: int, columns: list[int], total: int, p: float, gen: Generator) -> Tensor:
    """Drop each of ``columns`` with probability ``p`` per row, never all of them.

    Returns:
        Bool ``[batch, total]``; every row keeps at least one of ``columns``; other columns are False.
    """
    keep = torch.rand(batch, len(columns), generator=gen) >= p
    empty = ~keep.any(dim=1)
    if bool(empty.any()):
        pick = torch.randint(len(columns), (int(empty.sum()),), generator=gen)
        keep[empty.nonzero(as_tuple=True)[0], pick] = True
    mask = torch.zeros(batch, total, dtype=torch.bool)
    mask[:, columns] = keep
    return mask


def proper_subset_mask(batch: int, columns: list[int], total: int, gen: Generator) -> Tensor:
    """One non-empty proper subset of ``columns`` per row, uniform over those subsets.

    Raises:
        ContractError: When ``columns`` has fewer than two entries (no proper non-empty subset).
    """
    if len(columns) < 2:
        raise ContractError("a proper non-empty subset needs at least two modalities")
    choices = [c for k in range(1, len(columns)) for c in itertools.combinations(columns, k)]
    pick = torch.randint(len(choices), (batch,), generator=gen)
    mask = torch.zeros(batch, total, dtype=torch.bool)
    for row, idx in enumerate(pick.tolist()):
        mask[row, list(choices[idx])] = True
    return mask


def masd_loss(
    full_logits: Tensor, sub_logits: list[Tensor], labels: Tensor, lam: float, beta: float, tau: float
) -> Tensor:
    """The MASD objective from the teacher (full) logits and the K student (subset) logits."""
    loss = F.cross_entropy(full_logits, labels)
    if not sub_logits:
        return loss
    target = F.softmax(full_logits.detach() / tau, dim=1)
    terms = []
    for s in sub_logits:
        kl = F.kl_div(F.log_softmax(s / tau, dim=1), target, reduction="batchmean")
        terms.append(beta * F.cross_entropy(s, labels) + (1 - beta) * tau**2 * kl)
    return loss + lam * torch.stack(terms).mean()


def _plain_loss(
    model: MultimodalModel, batch: Mapping[str, Tensor], labels: Tensor, gen: Generator
) -> Tensor:
    return F.cross_entropy(model(batch), labels)


def _params(config: LossConfig) -> dict[str, Any]:
    allowed = DEFAULT_PARAMS[config.intervention]
    given = dict(config.intervention_params)
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise ContractError(
            f"intervention {config.intervention!r} has no parameter(s) {unknown}; allowed: {sorted(allowed)}"
        )
    params = {**allowed, **given}
    for k, v in params.items():
        if not isinstance(v, (int, float)) or v < 0:
            raise ContractError(f"intervention parameter {k} = {v!r} must be a number >= 0")
    if "p" in params and not params["p"] < 1:
        raise ContractError(f"moddrop p = {params['p']} must be < 1")
    if "beta" in params and params["beta"] > 1:
        raise ContractError(f"masd beta = {params['beta']} must be in [0, 1]")
    if "tau" in params and params["tau"] <= 0:
        raise ContractError(f"masd tau = {params['tau']} must be > 0")
    for k, low in (("K", 1), ("hidden", 1), ("copies", 1), ("warmup", 0)):
        if k in params and (int(params[k]) != params[k] or params[k] < low):
            raise ContractError(f"{config.intervention} {k} = {params[k]} must be an integer >= {low}")
    if "corrupt_p" in params and params["corrupt_p"] > 1:
        raise ContractError(f"corrupt_p = {params['corrupt_p']} must be a probability in [0, 1]")
    return params


def gate_params(config: LossConfig) -> dict[str, Any] | None:
    """``{"hidden", "corrupt_p", "copies", "warmup", "target_power"}`` of a ``gate+...`` intervention, else ``None``.

    Raises:
        ContractError: For an unknown intervention or a bad parameter.
    """
    if config.intervention not in INTERVENTIONS:
        raise ContractError(f"intervention {config.intervention!r} is not one of {INTERVENTIONS}")
    if not config.intervention.startswith("gate+"):
        return None
    params = _params(config)
    return {
        "hidden": int(params["hidden"]),
        "corrupt_p": float(params["corrupt_p"]),
        "copies": int(params["copies"]),
        "warmup": int(params["warmup"]),
        "target_power": float(params["target_power"]),
    }


def augmentation_kinds(dataset: Any, modalities: Sequence[str]) -> list[tuple[str, str]]:
    """The ``(modality, kind)`` corruptions a gate is trained with, for the labelled ``modalities``.

    Audio: every audio kind when the dataset records its recordings (``meta["audio_files"]``), else the
    kinds with a feature-domain variant; images: every image kind; other modalities: none (their gate
    still learns from modality dropout, but sees no degraded rows).
    """
    from edgefuse.data.corruptions import CORRUPTIONS
    from edgefuse.data.corruptions.specs import FEATURE_LEVELS

    pairs = []
    for m in modalities:
        if m not in ("audio", "image"):
            continue
        for kind in CORRUPTIONS[m]:
            if m == "audio" and "audio_files" not in dataset.meta and kind not in FEATURE_LEVELS:
                continue
            pairs.append((m, kind))
    return pairs


def make_loss(config: LossConfig) -> LossFn:
    """Return the training loss of ``config.intervention`` with its (validated) parameters.

    Raises:
        ContractError: For an unknown intervention or a bad/unknown parameter.
    """
    if config.intervention not in INTERVENTIONS:
        raise ContractError(f"intervention {config.intervention!r} is not one of {INTERVENTIONS}")
    params = _params(config)
    if config.intervention.startswith("gate+"):
        return _gated_loss(config.intervention.removeprefix("gate+"), params)
    loss = config.intervention
    if loss == "none":
        return _plain_loss
    if loss == "moddrop":
        p = float(params["p"])

        def moddrop(
            model: MultimodalModel, batch: Mapping[str, Tensor], labels: Tensor, gen: Generator
        ) -> Tensor:
            full, cols = _present_mask(model, batch)
            mask = modality_dropout_mask(full.shape[0], cols, full.shape[1], p, gen)
            return F.cross_entropy(model(batch, mask), labels)

        return moddrop

    k, lam, beta, tau = int(params["K"]), float(params["lambda"]), float(params["beta"]), float(params["tau"])

    def masd(model: MultimodalModel, batch: Mapping[str, Tensor], labels: Tensor, gen: Generator) -> Tensor:
        full, cols = _present_mask(model, batch)
        full_logits = model(batch, full)
        subs = []
        if len(cols) >= 2:
            for _ in range(k):
                subs.append(model(batch, proper_subset_mask(full.shape[0], cols, full.shape[1], gen)))
        return masd_loss(full_logits, subs, labels, lam, beta, tau)

    return masd


def reliability_loss(
    model: MultimodalModel,
    embeddings: list[Tensor | None],
    columns: list[int],
    quality: Mapping[str, Tensor] | None,
) -> Tensor:
    """Mean over ``columns`` of BCE(gate_m(e_m), quality_m): the gates learn to see degradation.

    ``quality[m]`` is 1 for a clean row and ``(1 - severity / 5) ** target_power`` for a row corrupted at
    that severity (so a severity-5 row targets 0). A modality without a quality entry (no corruption kinds for it)
    targets 1. The embeddings are detached: this term trains the gates only.
    """
    fusion = model.fusion
    names = model.modality_names
    terms = []
    for m in columns:
        e = embeddings[m]
        if e is None:
            continue
        e = e.detach()
        target = (quality or {}).get(names[m])
        target = torch.ones(e.shape[0], 1, dtype=e.dtype) if target is None else target.reshape(-1, 1)
        terms.append(F.binary_cross_entropy(fusion.reliability(m, e), target))
    return torch.stack(terms).mean()


def _gated_loss(inner: str, params: Mapping[str, Any]) -> LossFn:
    """``inner`` (moddrop or masd) on a gated model, plus ``gate_weight`` × :func:`reliability_loss`."""
    gate_weight = float(params["gate_weight"])
    p = float(params.get("p", 0.0))
    k = int(params.get("K", 1))
    lam, beta, tau = (float(params.get(n, d)) for n, d in (("lambda", 1.0), ("beta", 0.5), ("tau", 2.0)))

    def gated(
        model: MultimodalModel,
        batch: Mapping[str, Tensor],
        labels: Tensor,
        gen: Generator,
        quality: Mapping[str, Tensor] | None = None,
    ) -> Tensor:
        if not model.fusion.gated:
            raise ContractError("a gate+ intervention needs a model with reliability gates (train adds them)")
        full, cols = _present_mask(model, batch)
        emb = model.encode(batch)  # once per batch; masks below only choose what is fused

        def logits(mask: Tensor) -> Tensor:
            return model.head(model.fusion(emb, mask))

        if inner == "moddrop":
            loss = F.cross_entropy(
                logits(modality_dropout_mask(full.shape[0], cols, full.shape[1], p, gen)), labels
            )
        else:
            subs = []
            if len(cols) >= 2:
                subs = [logits(proper_subset_mask(full.shape[0], cols, full.shape[1], gen)) for _ in range(k)]
            loss = masd_loss(logits(full), subs, labels, lam, beta, tau)
        return loss + gate_weight * reliability_loss(model, emb, cols, quality)

    return gated


def interpolate_state(
    theta0: Mapping[str, Tensor], theta1: Mapping[str, Tensor], alpha: float
) -> dict[str, Tensor]:
    """WiSE-FT: ``(1−α)·θ₀ + α·θ₁`` for every floating-point tensor (others must be equal and are copied).

    Exception: BatchNorm step counters (integer tensors named ``*.num_batches_tracked``, which differ
    when the two trainings ran an encoder a different number of times) are interpolated and rounded.
    α = 0 returns θ₀ and α = 1 returns θ₁ exactly (no rounding through the interpolation).

    Raises:
        CheckpointError: When the two state dicts differ in tensor names or shapes (each difference named)
            or ``alpha`` is outside [0, 1].
    """
    if not 0.0 <= alpha <= 1.0:
        raise CheckpointError(f"alpha = {alpha}; WiSE-FT interpolates with alpha in [0, 1]")
    diff = describe_state_difference(theta0, theta1)
    if diff:
        raise CheckpointError(f"theta0 and theta1 do not share one architecture: {diff}")
    out: dict[str, Tensor] = {}
    for name, a in theta0.items():
        b = theta1[name]
        if alpha == 0.0:
            out[name] = a.clone()
        elif alpha == 1.0:
            out[name] = b.clone()
        elif a.is_floating_point():
            out[name] = (1.0 - alpha) * a + alpha * b
        elif name.rsplit(".", 1)[-1] == "num_batches_tracked":
            # a BatchNorm step counter: it differs whenever the two trainings ran the encoders a different
            # number of times (MASD runs them 1 + K times a batch); interpolated and rounded
            mixed = (1.0 - alpha) * a.to(torch.float64) + alpha * b.to(torch.float64)
            out[name] = torch.round(mixed).to(a.dtype)
        else:
            if not torch.equal(a, b):
                raise CheckpointError(f"non-float tensor {name!r} differs between theta0 and theta1")
            out[name] = a.clone()
    return out


def describe_state_difference(theta0: Mapping[str, Tensor], theta1: Mapping[str, Tensor]) -> str:
    """Return a readable description of how two state dicts differ ('' when names and shapes agree)."""
    parts = []
    only0 = sorted(set(theta0) - set(theta1))
    only1 = sorted(set(theta1) - set(theta0))
    if only0:
        parts.append(f"only in theta0: {only0}")
    if only1:
        parts.append(f"only in theta1: {only1}")
    shapes = [
        f"{k}: {tuple(theta0[k].shape)} vs {tuple(theta1[k].shape)}"
        for k in sorted(set(theta0) & set(theta1))
        if theta0[k].shape != theta1[k].shape
    ]
    if shapes:
        parts.append(f"different shapes: {shapes}")
    return "; ".join(parts)
