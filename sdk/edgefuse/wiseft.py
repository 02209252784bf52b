"""WiSE-FT sweep: interpolate two checkpoints of one architecture and choose α on a validation split.

Selection rule (docs/metrics.md): among the α whose full-modality accuracy is within ``tolerance``
(default 1 point) of the best full-modality accuracy of the sweep, take the one with the best mean
retention (mean over the non-empty proper subsets ``T`` of the model's modalities of
``P(T) / P(full)``). Never select on the test split.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgefuse.errors import CheckpointError, ContractError

if TYPE_CHECKING:  # torch-free at import: the CLI parses --alphas with parse_alphas
    from edgefuse.data.base import MultimodalDataset
    from edgefuse.models.contract import MultimodalModel

__all__ = ["MAX_ALPHAS", "WiseFTResult", "check_same_architecture", "parse_alphas", "sweep"]

#: Most alphas one sweep evaluates (``0:1:0.001`` gives 1001): each alpha is one full evaluation.
MAX_ALPHAS = 1001


def parse_alphas(text: str) -> list[float]:
    """``"0:1:0.1"`` -> 0, 0.1, ..., 1 (inclusive); ``"0,0.5,1"`` -> a list.

    Every alpha is a finite number in [0, 1]; a range needs ``start <= stop`` and a finite ``step > 0``
    (``start + i * step`` for every ``i`` that stays within ``stop``, up to rounding); at most
    :data:`MAX_ALPHAS` values.

    Raises:
        ContractError: For a malformed range or list, a non-finite value, a value outside [0, 1], a step
            <= 0, ``stop < start``, or more than :data:`MAX_ALPHAS` values. The message says what is allowed.
    """
    form = "write start:stop:step (0:1:0.1) or a comma-separated list (0,0.5,1)"
    parts = text.split(":") if ":" in text else text.split(",")
    try:
        numbers = [float(x) for x in parts if ":" in text or x.strip()]
    except ValueError:
        raise ContractError(f"--alphas {text!r}: {form}") from None
    if ":" in text and len(numbers) != 3:
        raise ContractError(f"--alphas {text!r}: {form}")
    names = ("start", "stop", "step") if ":" in text else ("alpha",) * len(numbers)
    for name, value in zip(names, numbers, strict=True):
        if name == "step" and not (math.isfinite(value) and value > 0):
            raise ContractError(f"--alphas {text!r}: step = {value}; the step must be a finite number > 0")
        if name != "step" and not 0.0 <= value <= 1.0:  # also refuses nan and inf
            raise ContractError(
                f"--alphas {text!r}: {name} = {value} is not allowed; every alpha is a finite number in [0, 1]"
            )
    if ":" not in text:
        if not numbers:
            raise ContractError(f"--alphas {text!r}: give at least one alpha; {form}")
        if len(numbers) > MAX_ALPHAS:
            raise ContractError(f"--alphas {text!r}: {len(numbers)} alphas; at most {MAX_ALPHAS}")
        return numbers
    start, stop, step = numbers
    if stop < start:
        raise ContractError(
            f"--alphas {text!r}: stop = {stop} is below start = {start}; write start:stop:step with "
            "start <= stop, e.g. 0:1:0.1"
        )
    intervals = (stop - start) / step
    if intervals + 1 > MAX_ALPHAS:  # checked before anything is allocated
        raise ContractError(
            f"--alphas {text!r}: the range gives {intervals + 1:.4g} alphas, more than "
            f"{MAX_ALPHAS} (each alpha is one evaluation of the model); use a larger step, e.g. 0:1:0.01"
        )
    n = math.floor(intervals + 1e-9)
    return [min(stop, round(start + i * step, 10)) for i in range(n + 1)]


def check_same_architecture(model0: MultimodalModel, model1: MultimodalModel) -> None:
    """Raise :class:`CheckpointError` saying what differs when two models cannot be interpolated."""
    from edgefuse.interventions import describe_state_difference

    problems = []
    if model0.architecture != model1.architecture:
        keys = sorted(
            k
            for k in set(model0.architecture) | set(model1.architecture)
            if model0.architecture.get(k) != model1.architecture.get(k)
        )
        problems.append(f"architecture differs in {keys}")
    problems += _program_differences(model0, model1)
    if model0.modalities != model1.modalities:
        problems.append(f"modalities differ: {model0.modality_names} vs {model1.modality_names}")
    if model0.label_names != model1.label_names:
        problems.append("label names differ")
    diff = describe_state_difference(model0.state_dict(), model1.state_dict())
    if diff:
        problems.append(diff)
    if problems:
        raise CheckpointError("theta0 and theta1 do not share one architecture: " + "; ".join(problems))


def _program_differences(model0: MultimodalModel, model1: MultimodalModel) -> list[str]:
    """Graphs of program checkpoints (stored torch.export programs) that differ between the two models."""
    from edgefuse.programs import program_of

    other = dict(model1.encoders.items())
    parts = [(f"encoders[{n!r}]", model0.encoders[n], other.get(n)) for n in model0.modality_names]
    parts.append(("head", model0.head, model1.head))
    out = []
    for label, a, b in parts:
        pa, pb = program_of(a), None if b is None else program_of(b)
        if (pa is None) != (pb is None) or (pa is not None and pa != pb):
            out.append(f"{label} runs different graphs (stored programs)")
    return out


@dataclass
class WiseFTResult:
    """The α sweep and the chosen model."""

    rows: list[dict[str, Any]]
    chosen_alpha: float
    model: MultimodalModel
    split: str
    tolerance: float
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready sweep."""
        return {
            "split": self.split,
            "chosen_alpha": self.chosen_alpha,
            "tolerance": self.tolerance,
            "rule": "best mean retention among alphas whose full-modality accuracy is within tolerance of the best",
            "rows": self.rows,
            **self.meta,
        }

    def markdown(self) -> str:
        """The sweep as a Markdown table (the chosen α marked)."""
        tests = [k for k in self.rows[0]["accuracy"]]
        head = "| α | " + " | ".join(tests) + " | mean retention | |"
        lines = [head, "|---|" + "---|" * (len(tests) + 2)]
        for r in self.rows:
            mark = "**chosen**" if r["alpha"] == self.chosen_alpha else ""
            accs = " | ".join(f"{r['accuracy'][t]:.3f}" for t in tests)
            lines.append(f"| {r['alpha']:.2f} | {accs} | {r['mean_retention']:.3f} | {mark} |")
        return "\n".join(lines)

    def plot(self, path: str | Path) -> Path:
        """Save accuracy per test set and mean retention against α as a PNG."""
        from edgefuse.plots import pyplot, save_figure

        plt = pyplot()

        alphas = [r["alpha"] for r in self.rows]
        fig, ax = plt.subplots(figsize=(6, 3.6))
        for t in self.rows[0]["accuracy"]:
            ax.plot(alphas, [r["accuracy"][t] for r in self.rows], marker="o", label=f"accuracy, T={t}")
        ax.plot(alphas, [r["mean_retention"] for r in self.rows], "k--", label="mean retention")
        ax.axvline(self.chosen_alpha, color="red", alpha=0.5, label=f"chosen α={self.chosen_alpha:g}")
        ax.set_xlabel("α  (θ = (1−α)·θ₀ + α·θ₁)")
        ax.set_ylabel(f"{self.split} split")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
        return save_figure(fig, path)

    def write(self, folder: str | Path) -> dict[str, Path]:
        """Write ``wiseft.json``, ``wiseft.md`` and ``wiseft.png`` into ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "wiseft.json").write_text(json.dumps(self.to_dict(), indent=2))
        (folder / "wiseft.md").write_text(self.markdown() + "\n")
        return {
            "json": folder / "wiseft.json",
            "markdown": folder / "wiseft.md",
            "plot": self.plot(folder / "wiseft.png"),
        }


def sweep(
    model0: MultimodalModel,
    model1: MultimodalModel,
    dataset: MultimodalDataset,
    alphas: Sequence[float],
    split: str = "val",
    tolerance: float = 0.01,
) -> WiseFTResult:
    """Evaluate ``θ(α)`` for every α on ``split`` and choose α by the selection rule.

    Args:
        model0: θ₀, the robust model (pre-trained or trained with an intervention).
        model1: θ₁, the standard fine-tuned model.
        dataset: Data with the split to select on.
        alphas: Values in [0, 1].
        split: Selection split (``val``; ``test`` is refused).
        tolerance: Allowed full-modality accuracy loss from the sweep's best (0.01 = 1 point).

    Returns:
        The :class:`WiseFTResult` with the chosen model (eval mode).

    Raises:
        CheckpointError: When the two models do not share one architecture.
        ContractError: When asked to select on the test split or given no alphas.
    """
    import copy

    from edgefuse.interventions import interpolate_state
    from edgefuse.modality_sets import format_set, subsets
    from edgefuse.train import accuracy

    if split == "test":
        raise ContractError("WiSE-FT must not select alpha on the test split; use --select-on val")
    if not alphas:
        raise ContractError("no alphas to sweep")
    check_same_architecture(model0, model1)
    data = dataset.split(split)
    u = model0.modality_names
    tests = subsets(u)
    s0, s1 = model0.state_dict(), model1.state_dict()
    work = copy.deepcopy(model1)
    rows = []
    for alpha in alphas:
        work.load_state_dict(interpolate_state(s0, s1, alpha))
        acc = {format_set(t): accuracy(work, data, t) for t in tests}
        full = acc[format_set(u)]
        proper = [acc[format_set(t)] / full if full > 0 else 0.0 for t in tests if len(t) < len(u)]
        rows.append(
            {
                "alpha": alpha,
                "accuracy": acc,
                "full_accuracy": full,
                "mean_retention": statistics.fmean(proper) if proper else 1.0,
            }
        )
    best_full = max(r["full_accuracy"] for r in rows)
    eligible = [r for r in rows if r["full_accuracy"] >= best_full - tolerance - 1e-12]
    chosen = max(eligible, key=lambda r: (r["mean_retention"], r["full_accuracy"]))
    work.load_state_dict(interpolate_state(s0, s1, chosen["alpha"]))
    work.eval()
    return WiseFTResult(rows=rows, chosen_alpha=chosen["alpha"], model=work, split=split, tolerance=tolerance)
