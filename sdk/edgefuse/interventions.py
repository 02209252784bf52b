"""Training losses, including the robustness interventions (selected by ``TrainConfig.intervention``).

``none``: cross-entropy with every labelled modality of ``S`` present.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import torch.nn.functional as F  # noqa: N812
from torch import Generator, Tensor

from edgefuse.errors import ContractError

if TYPE_CHECKING:
    from edgefuse.models.contract import MultimodalModel
    from edgefuse.train import TrainConfig

__all__ = ["INTERVENTIONS", "LossFn", "make_loss"]

LossFn = Callable[["MultimodalModel", Mapping[str, Tensor], Tensor, Generator], Tensor]

INTERVENTIONS = ("none",)


def _plain_loss(
    model: MultimodalModel, batch: Mapping[str, Tensor], labels: Tensor, gen: Generator
) -> Tensor:
    return F.cross_entropy(model(batch), labels)


def make_loss(config: TrainConfig) -> LossFn:
    """Return the loss function of ``config.intervention``.

    Raises:
        ContractError: For an unknown intervention or hyper-parameter.
    """
    if config.intervention == "none":
        if config.intervention_params:
            raise ContractError(
                f"intervention 'none' takes no parameters; got {dict(config.intervention_params)}"
            )
        return _plain_loss
    raise ContractError(f"intervention {config.intervention!r} is not one of {INTERVENTIONS}")
