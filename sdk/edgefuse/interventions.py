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

WiSE-FT (weight-space ensembling, Wortsman et al.) is :func:`interpolate_state`: ``θ(α) = (1−α)·θ₀ +
α·θ₁`` for two models of one architecture.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
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
    "DEFAULT_PARAMS",
    "INTERVENTIONS",
    "LossFn",
    "describe_state_difference",
    "interpolate_state",
    "make_loss",
    "masd_loss",
    "modality_dropout_mask",
    "proper_subset_mask",
]

LossFn = Callable[["MultimodalModel", Mapping[str, Tensor], Tensor, Generator], Tensor]

INTERVENTIONS = ("none", "moddrop", "masd")
DEFAULT_PARAMS: dict[str, dict[str, float]] = {
    "none": {},
    "moddrop": {"p": 0.5},
    "masd": {"K": 1, "lambda": 1.0, "beta": 0.5, "tau": 2.0},
}


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
    if "K" in params and (int(params["K"]) != params["K"] or params["K"] < 1):
        raise ContractError(f"masd K = {params['K']} must be an integer >= 1")
    return params


def make_loss(config: LossConfig) -> LossFn:
    """Return the training loss of ``config.intervention`` with its (validated) parameters.

    Raises:
        ContractError: For an unknown intervention or a bad/unknown parameter.
    """
    if config.intervention not in INTERVENTIONS:
        raise ContractError(f"intervention {config.intervention!r} is not one of {INTERVENTIONS}")
    params = _params(config)
    if config.intervention == "none":
        return _plain_loss
    if config.intervention == "moddrop":
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
