"""WiSE-FT sweep: interpolate two checkpoints of one architecture and choose α on a validation split.

Selection rule (ROBUSTNESS.md): among the α whose full-modality accuracy is within ``tolerance``
(default 1 point) of the best full-modality accuracy of the sweep, take the one with the best mean
retention (mean over the non-empty proper subsets ``T`` of the model's modalities of
``P(T) / P(full)``). Never select on the test split.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgefuse.data.base import MultimodalDataset
from edgefuse.errors import CheckpointError, ContractError
from edgefuse.models.contract import MultimodalModel

__all__ = ["WiseFTResult", "check_same_architecture", "parse_alphas", "sweep"]


def parse_alphas(text: str) -> list[float]:
    """``"0:1:0.1"`` -> 0, 0.1, ..., 1 (inclusive); ``"0,0.5,1"`` -> a list. Values must be in [0, 1].

    Raises:
        ContractError: For a malformed range or a value outside [0, 1].
    """
    try:
        if ":" in text:
            start, stop, step = (float(x) for x in text.split(":"))
            if step <= 0:
                raise ValueError
            n = round((stop - start) / step)
            values = [round(start + i * step, 10) for i in range(n + 1)]
        else:
            values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ContractError(
            f"--alphas {text!r}: write start:stop:step (0:1:0.1) or a list (0,0.5,1)"
        ) from None
    if not values or any(not 0.0 <= v <= 1.0 for v in values):
        raise ContractError(f"--alphas {text!r}: every alpha must be in [0, 1]")
    return values


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
    if model0.modalities != model1.modalities:
        problems.append(f"modalities differ: {model0.modality_names} vs {model1.modality_names}")
    if model0.label_names != model1.label_names:
        problems.append("label names differ")
    diff = describe_state_difference(model0.state_dict(), model1.state_dict())
    if diff:
        problems.append(diff)
    if problems:
        raise CheckpointError("theta0 and theta1 do not share one architecture: " + "; ".join(problems))


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
    from edgefuse.robustness import format_set, subsets
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
