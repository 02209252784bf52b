"""The train × test modality grid and the robustness metrics (definitions: ``docs/metrics.md``).

Notation: ``U`` the modalities a model knows, ``S`` the labelled training modalities, ``T`` the
modalities present at test time, ``P(S→T)`` top-1 accuracy. Definitions used (docs/metrics.md):

* retention ``P(S→T) / P(S→S)``; drop ``P(S→S) − P(S→T)``;
* gap to specialist ``P(S→T) − P(T→T)`` (the specialist: same method and seed, trained on ``T``);
* added gain ``P(S→T) − P(S→S)`` for ``T ⊋ S``;
* mean retention: mean of retention over the non-empty ``T ⊊ S``;
* with ``corruptions=`` (:mod:`edgefuse.grid_corruptions`): for each corruption and severity and each
  ``T`` containing the corrupted modality, fused accuracy, corruption retention and fusion regret.

Every metric is computed per seed, then reported as mean ± standard deviation over seeds (one seed:
the value alone, no spread).

A model whose ``P(S→S)`` (mean over seeds) is within 5 points of the split's chance level
(:mod:`edgefuse.chance`) **did not learn**: its cells keep their accuracy but no retention, drop, gap or
gain, and an improvement verdict involving it says so instead of computing a factor.

Missing modalities are represented as on the device: the modality is absent (mask 0), its encoder is
not run and its input is never read.

:func:`evaluate_grid` works with any contract models and any :class:`MultimodalDataset`;
:func:`run_grid` also trains what the grid needs (specialists included), on the reference
architecture, a JSON architecture or the user's own model factory (:mod:`edgefuse.factory`).
:meth:`GridResult.improvements` compares intervention rows with an explicit baseline row.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgefuse.chance import CHANCE_MARGIN, chance_accuracy, near_chance
from edgefuse.data.base import MultimodalDataset
from edgefuse.errors import ContractError
from edgefuse.factory import ModelFactory
from edgefuse.grid_corruptions import CorruptionResults, corruption_axis
from edgefuse.grid_corruptions import mean_std as _mean_std
from edgefuse.modality_sets import format_set, parse_sets, scenario, subsets

if TYPE_CHECKING:
    from edgefuse.executors import Executor

__all__ = [
    "VARIANTS",
    "GridResult",
    "ModelKey",
    "evaluate_grid",
    "format_set",
    "parse_sets",
    "run_grid",
    "scenario",
    "subsets",
    "variant_label",
]

#: (method, S, seed): which trained model a grid row comes from.
ModelKey = tuple[str, tuple[str, ...], int]


@dataclass
class GridResult:
    """Accuracy ``P(S→T)`` for every trained model and test set, with the derived metrics.

    Attributes:
        modalities: ``U`` in model order.
        scores: ``(method, S, seed) -> {T: accuracy}`` for every non-empty ``T ⊆ U``.
        split: The split the scores were measured on.
        meta: Dataset and recipe description (``sweep``: how :func:`run_grid` ran its jobs).
        failed: Grid rows whose job failed: ``method``, ``train``, ``seed``, ``job``, ``error``...
        corruption: The corruption axis's per-seed results (None: the grid has none).
        chance: Chance level of the evaluated split (the most frequent class's share; None: unknown, e.g.
            an old document). Rows within 5 points of it did not learn (:meth:`not_learned`).
    """

    modalities: tuple[str, ...]
    scores: dict[ModelKey, dict[tuple[str, ...], float]]
    split: str = "test"
    meta: dict[str, Any] = field(default_factory=dict)
    failed: list[dict[str, Any]] = field(default_factory=list)
    corruption: CorruptionResults | None = None
    chance: float | None = None

    @property
    def methods(self) -> list[str]:
        """Methods in first-seen order."""
        return list(dict.fromkeys(k[0] for k in self.scores))

    @property
    def train_sets(self) -> list[tuple[str, ...]]:
        """Train sets ``S`` in first-seen order."""
        return list(dict.fromkeys(k[1] for k in self.scores))

    @property
    def seeds(self) -> list[int]:
        """Seeds in first-seen order."""
        return list(dict.fromkeys(k[2] for k in self.scores))

    @property
    def test_sets(self) -> list[tuple[str, ...]]:
        """Every non-empty ``T ⊆ U``, largest first."""
        return subsets(self.modalities)

    def _seeds_for(self, method: str, s: tuple[str, ...]) -> list[int]:
        return [k[2] for k in self.scores if k[0] == method and k[1] == s]

    def learned(self, method: str, s: tuple[str, ...]) -> bool:
        """False when the row's mean ``P(S→S)`` over seeds is within 5 points of :attr:`chance`."""
        same = [self.scores[(method, s, seed)][s] for seed in self._seeds_for(method, s)]
        return not (same and near_chance(statistics.fmean(same), self.chance))

    def not_learned(self) -> list[dict[str, Any]]:
        """The rows that did not learn (P(S→S) within 5 points of :attr:`chance`).

        Returns:
            One dict per row: ``method``, ``train``, ``accuracy`` (mean ``P(S→S)``), ``chance``,
            ``margin`` and ``seeds``; empty when every row learned or the chance level is unknown.
        """
        out = []
        for method in self.methods:
            for s in self.train_sets:
                seeds = self._seeds_for(method, s)
                if seeds and not self.learned(method, s):
                    acc = statistics.fmean(self.scores[(method, s, k)][s] for k in seeds)
                    out.append(
                        {
                            "method": method,
                            "train": format_set(s),
                            "accuracy": acc,
                            "chance": self.chance,
                            "margin": CHANCE_MARGIN,
                            "seeds": seeds,
                        }
                    )
        return out

    def cell(self, method: str, s: tuple[str, ...], t: tuple[str, ...]) -> dict[str, Any]:
        """Every metric of one ``(method, S, T)`` cell, each as mean/std/n over seeds (None = undefined).

        ``learned`` is False for a row at chance (:meth:`learned`); its retention, drop, gap and gain are
        then None: a ratio of chance-level accuracies measures noise.
        """
        seeds = self._seeds_for(method, s)
        p = [self.scores[(method, s, seed)][t] for seed in seeds]
        same = [self.scores[(method, s, seed)][s] for seed in seeds]
        kind = scenario(s, t)
        out: dict[str, Any] = {"scenario": kind, "accuracy": _mean_std(p), "learned": self.learned(method, s)}
        if not out["learned"]:
            return {**out, "retention": None, "drop": None, "gap_to_specialist": None, "added_gain": None}
        out["retention"] = _mean_std([a / b if b > 0 else float("nan") for a, b in zip(p, same, strict=True)])
        out["drop"] = _mean_std([b - a for a, b in zip(p, same, strict=True)])
        spec = [self.scores.get((method, t, seed), {}).get(t) for seed in seeds]
        out["gap_to_specialist"] = (
            _mean_std([a - b for a, b in zip(p, spec, strict=True)])
            if all(v is not None for v in spec)
            else None
        )
        out["added_gain"] = (
            _mean_std([a - b for a, b in zip(p, same, strict=True)]) if kind == "added" else None
        )
        return out

    def mean_retention(self, method: str, s: tuple[str, ...]) -> dict[str, float] | None:
        """Mean over the non-empty ``T ⊊ S`` of the retention, per seed, then mean ± std.

        None when ``|S| = 1`` or the row did not learn.
        """
        missing = [t for t in self.test_sets if set(t) < set(s)]
        if not missing or not self.learned(method, s):
            return None
        per_seed = []
        for seed in self._seeds_for(method, s):
            row = self.scores[(method, s, seed)]
            per_seed.append(statistics.fmean(row[t] / row[s] for t in missing))
        return _mean_std(per_seed)

    def corruption_summary(self) -> list[dict[str, Any]]:
        """:meth:`CorruptionResults.summary <edgefuse.grid_corruptions.CorruptionResults.summary>` ([]: none)."""
        return self.corruption.summary() if self.corruption is not None else []

    def improvements(
        self, baseline: str = "supervised", variants: Sequence[str] | None = None
    ) -> list[dict[str, Any]]:
        """Improvement factors of intervention rows against an explicit baseline row.

        Matching: by default the variants of ``baseline`` are the rows labelled ``baseline+X`` (what
        :func:`run_grid` writes: ``supervised+moddrop`` is compared with ``supervised``,
        ``contrastive+masd`` with ``contrastive``); ``variants`` names them instead (any row labels,
        e.g. for models evaluated with :func:`evaluate_grid`). A variant is compared with the baseline
        on the same train set ``S`` and test set ``T``; each metric is first computed per seed, and the
        change of full-modality accuracy is paired seed by seed when both rows have the same number of
        seeds. Train sets that only one of the two rows has, and ``|S| = 1``, are skipped.

        For each ``S`` with ``|S| > 1`` and each ``T``: missing scenario -> ``drop_baseline /
        drop_intervention``; added scenario -> ``gain_intervention / gain_baseline`` (only when the
        baseline gain is measurably > 0). A drop (or gain) whose mean is at or below its standard error
        over seeds is "no measurable" drop (gain): no division by ~0 is reported. When the baseline or
        the intervention did not learn (:meth:`learned`), the factor is None and the verdict says which
        did not learn. Also reported: the change of full-modality accuracy ``P(S→S)``.

        Args:
            baseline: The row label every variant is compared with (default ``supervised``).
            variants: Row labels to compare; default: every ``baseline+X`` row.

        Returns:
            One row per (variant, S, T) of the missing and added scenarios (empty when there is no
            variant).

        Raises:
            ContractError: No row has the label ``baseline`` (the message lists the labels present), or a
                label in ``variants`` is not in the grid or is the baseline itself.
        """
        methods = self.methods
        if baseline not in methods:
            raise ContractError(
                f"no grid row has the method label {baseline!r} to compare the interventions with; the rows "
                f"are {methods}; pass improvements(baseline=...) with one of them"
            )
        if variants is None:
            labels = [m for m in methods if m.startswith(f"{baseline}+")]
        else:
            labels = list(dict.fromkeys(variants))
            bad = [v for v in labels if v not in methods or v == baseline]
            if bad:
                raise ContractError(
                    f"variants {bad} are not rows of the grid other than the baseline {baseline!r}; the rows "
                    f"are {methods}"
                )
        out = []
        for label in labels:
            out += self._improvements_of(label, baseline)
        return out

    def _improvements_of(self, label: str, base: str) -> list[dict[str, Any]]:
        out = []
        for s in self.train_sets:
            if len(s) < 2 or not self._seeds_for(label, s) or not self._seeds_for(base, s):
                continue
            cost = _diff_stats(
                [self.scores[(label, s, k)][s] for k in self._seeds_for(label, s)],
                [self.scores[(base, s, k)][s] for k in self._seeds_for(base, s)],
            )
            for t in self.test_sets:
                kind = scenario(s, t)
                if kind not in ("missing", "added"):
                    continue
                metric = "drop" if kind == "missing" else "added_gain"
                b = self.cell(base, s, t)[metric]
                v = self.cell(label, s, t)[metric]
                row = {
                    "intervention": label,
                    "baseline": base,
                    "train": format_set(s),
                    "test": format_set(t),
                    "scenario": kind,
                    "metric": metric,
                    "baseline_value": b,
                    "intervention_value": v,
                    "full_accuracy_change": cost,
                }
                row.update(self._not_learned_verdict(label, base, s) or _factor(kind, b, v))
                out.append(row)
        return out

    def _not_learned_verdict(self, label: str, base: str, s: tuple[str, ...]) -> dict[str, Any] | None:
        """The verdict when either row of a comparison did not learn (None when both learned)."""
        parts = [
            f"{role} {m} did not learn (P(S→S) "
            f"{statistics.fmean(self.scores[(m, s, k)][s] for k in self._seeds_for(m, s)):.3f})"
            for role, m in (("intervention", label), ("baseline", base))
            if not self.learned(m, s)
        ]
        if not parts:
            return None
        return {"factor": None, "verdict": "; ".join(parts) + f", chance {self.chance:.3f}: no factor"}

    def all_improvements(self) -> list[dict[str, Any]]:
        """:meth:`improvements` for every baseline that has ``baseline+X`` rows (what reports show).

        Every row label without ``+`` that has at least one ``label+X`` row is a baseline; a grid
        without such rows gives an empty list (never an error).
        """
        methods = self.methods
        out = []
        for base in methods:
            if "+" not in base and any(m.startswith(f"{base}+") for m in methods):
                out += self.improvements(base)
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready result: raw scores per seed and every metric per cell."""
        cells = []
        for method in self.methods:
            for s in self.train_sets:
                if not self._seeds_for(method, s):
                    continue
                for t in self.test_sets:
                    cells.append(
                        {
                            "method": method,
                            "train": format_set(s),
                            "test": format_set(t),
                            **self.cell(method, s, t),
                        }
                    )
        return {
            "definitions": "docs/metrics.md (EdgeFuse definitions): retention=P(S->T)/P(S->S), drop=P(S->S)-P(S->T), "
            "gap_to_specialist=P(S->T)-P(T->T), added_gain=P(S->T)-P(S->S) for T>S, mean_retention=mean over T<S; "
            "rows whose P(S->S) is within 0.05 of chance did not learn (no retention, drop, gap, gain)",
            "metric": "top-1 accuracy",
            "split": self.split,
            "modalities": list(self.modalities),
            "methods": self.methods,
            "train_sets": [format_set(s) for s in self.train_sets],
            "test_sets": [format_set(t) for t in self.test_sets],
            "seeds": self.seeds,
            "chance": self.chance,
            "not_learned": self.not_learned(),
            "scores": [
                {
                    "method": m,
                    "train": format_set(s),
                    "seed": seed,
                    "test": {format_set(t): v for t, v in row.items()},
                }
                for (m, s, seed), row in self.scores.items()
            ],
            "cells": cells,
            "improvements": self.all_improvements(),
            "mean_retention": [
                {"method": m, "train": format_set(s), **mr}
                for m in self.methods
                for s in self.train_sets
                if self._seeds_for(m, s) and (mr := self.mean_retention(m, s)) is not None
            ],
            "failed": self.failed,
            "meta": self.meta,
            **({"corruption": self.corruption.to_dict()} if self.corruption is not None else {}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GridResult:
        """Rebuild a result from :meth:`to_dict` output (e.g. to re-render reports without retraining).

        Raises:
            ContractError: When the document lacks ``modalities`` or ``scores``, or has a malformed
                ``corruption`` section.
        """
        try:
            u = tuple(data["modalities"])
            scores: dict[ModelKey, dict[tuple[str, ...], float]] = {}
            for row in data["scores"]:
                key = (row["method"], tuple(row["train"].split("+")), int(row["seed"]))
                scores[key] = {tuple(t.split("+")): float(v) for t, v in row["test"].items()}
        except (KeyError, TypeError, AttributeError) as exc:
            raise ContractError(f"not a robustness grid document (missing or malformed {exc})") from None
        return cls(
            modalities=u,
            scores=scores,
            split=data.get("split", "test"),
            meta=dict(data.get("meta", {})),
            failed=[dict(f) for f in data.get("failed") or []],
            corruption=CorruptionResults.from_dict(u, data["corruption"]) if data.get("corruption") else None,
            chance=float(data["chance"]) if data.get("chance") is not None else None,
        )

    def write_json(self, path: str | Path) -> Path:
        """Write :meth:`to_dict` as JSON."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2, default=str))
        return path

    def markdown(self) -> str:
        """A Markdown report: the accuracy matrix per method, then the metrics per cell (:mod:`edgefuse.grid_report`)."""
        from edgefuse.grid_report import grid_markdown

        return grid_markdown(self)

    def heatmap(self, path: str | Path) -> Path:
        """Save a heatmap PNG of mean ``P(S→T)`` (one panel per method), cells labelled with the scenario."""
        from edgefuse.grid_report import grid_heatmap

        return grid_heatmap(self, path)

    def write_report(self, folder: str | Path) -> dict[str, Path]:
        """Write ``grid.json``, ``grid.md``, ``heatmap.png`` and, with corruptions, ``corruption.png``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        md = folder / "grid.md"
        md.write_text("# Robustness grid\n\n" + self.markdown())
        return {
            "json": self.write_json(folder / "grid.json"),
            "markdown": md,
            "heatmap": self.heatmap(folder / "heatmap.png"),
            **({"corruption": self.corruption.plot(folder / "corruption.png")} if self.corruption else {}),
        }


def _sem(stats: Mapping[str, float]) -> float:
    return stats["std"] / (stats["n"] ** 0.5) if stats["n"] > 1 else 0.0


def _diff_stats(a: Sequence[float], b: Sequence[float]) -> dict[str, float]:
    """Mean ± std over seeds of ``a - b`` (paired by position when the lengths agree)."""
    if len(a) == len(b):
        return _mean_std([x - y for x, y in zip(a, b, strict=True)])
    return {"mean": statistics.fmean(a) - statistics.fmean(b), "std": float("nan"), "n": min(len(a), len(b))}


def _factor(kind: str, base: Mapping[str, float], var: Mapping[str, float]) -> dict[str, Any]:
    """Improvement factor with the noise-floor rule of docs/metrics.md."""
    if kind == "missing":
        if base["mean"] <= _sem(base):
            return {"factor": None, "verdict": "baseline has no measurable drop"}
        if var["mean"] <= _sem(var):
            return {"factor": None, "verdict": "no measurable drop"}
        f = base["mean"] / var["mean"]
        return {"factor": f, "verdict": f"drop {f:.2f}x smaller" if f >= 1 else f"drop {1 / f:.2f}x larger"}
    if base["mean"] <= _sem(base):
        verdict = (
            "gain where the baseline has none" if var["mean"] > _sem(var) else "no measurable gain for either"
        )
        return {"factor": None, "verdict": verdict}
    f = var["mean"] / base["mean"]
    return {"factor": f, "verdict": f"gain {f:.2f}x the baseline's"}


def evaluate_grid(
    models: Mapping[ModelKey, Any],
    dataset: MultimodalDataset,
    split: str = "test",
    batch_size: int = 1024,
    meta: Mapping[str, Any] | None = None,
) -> GridResult:
    """Evaluate contract models on every non-empty test set ``T ⊆ U``.

    Args:
        models: ``(method, S, seed) -> model`` for any models following the contract whose modalities
            are the dataset's.
        dataset: Any :class:`MultimodalDataset`.
        split: Split to evaluate on (never tune on ``test``).
        batch_size: Evaluation batch size.
        meta: Extra description stored in the result.

    Returns:
        The :class:`GridResult`.

    Raises:
        ContractError: When a model's modalities differ from the dataset's.
    """
    from edgefuse.train import accuracy

    data = dataset.split(split)
    u = dataset.modality_names
    scores: dict[ModelKey, dict[tuple[str, ...], float]] = {}
    for key, model in models.items():
        if tuple(model.modality_names) != u:
            raise ContractError(f"model {key} has modalities {model.modality_names}; the dataset has {u}")
        scores[key] = {t: accuracy(model, data, t, batch_size) for t in subsets(u)}
    return GridResult(
        modalities=u, scores=scores, split=split, meta=dict(meta or {}), chance=chance_accuracy(data.labels)
    )


#: Variants accepted by :func:`run_grid` ``interventions``; ``X+wiseft`` interpolates the model trained
#: with intervention X (θ₀, robust) and the baseline (θ₁), α chosen on the validation split.
VARIANTS = ("none", "moddrop", "masd", "wiseft", "masd+wiseft", "moddrop+wiseft", "gate+moddrop", "gate+masd")


def variant_label(method: str, variant: str) -> str:
    """Row label of a (method, intervention) pair: ``supervised``, ``supervised+masd``..."""
    return method if variant == "none" else f"{method}+{variant}"


def run_grid(
    dataset: MultimodalDataset,
    train_sets: Sequence[Sequence[str]],
    methods: Sequence[str] = ("supervised",),
    seeds: Sequence[int] = (0,),
    base_config: Any = None,
    architecture: Mapping[str, Any] | None = None,
    *,
    model_factory: ModelFactory | None = None,
    interventions: Sequence[str] = ("none",),
    intervention_params: Mapping[str, Mapping[str, float]] | None = None,
    wiseft_alphas: Sequence[float] = tuple(i / 10 for i in range(11)),
    include_specialists: bool = True,
    split: str = "test",
    on_model: Callable[[ModelKey, Any], None] | None = None,
    progress: bool = False,
    executor: str | Executor = "inline",
    workers: int | None = None,
    threads: int | None = None,
    store: str | Path | None = None,
    resume: bool = False,
    max_retries: int = 2,
    ray_address: str | None = None,
    gpus_per_job: float = 0.0,
    corruptions: str | Sequence[tuple[str, str]] | None = None,
    severities: str | Sequence[int] | None = None,
    corruption_seed: int = 0,
) -> GridResult:
    """Train every (method, intervention, S, seed) the grid needs as jobs, and score each on every ``T``.

    Contrastive pre-training (which does not depend on ``S``) is one job per seed that every train set
    and intervention of that seed depends on. Grid rows are labelled ``method`` (no intervention) or
    ``method+intervention``. With a single labelled modality, every intervention reduces to the baseline
    (modality dropout never drops the only modality, MASD has no proper subset, WiSE-FT interpolates a
    model with itself), so the baseline model is reused for those rows; for a contrastive model with one
    labelled modality (the "added" scenario), the WiSE-FT rows interpolate the linear probe on the
    pre-trained encoders (θ₀) and the fine-tuned model (θ₁), as in the original WiSE-FT.

    Every model of the grid — each row, the specialists ``S = T``, the contrastive pre-training — is a
    fresh model over all of ``U`` (the dataset's modalities; ``S`` only selects the labelled ones, and
    every row is evaluated on every ``T ⊆ U``), built from ``architecture`` or by ``model_factory``
    (``factory(dataset.modalities, dataset.label_names)``, after ``torch.manual_seed(seed)``; see
    :func:`edgefuse.train.new_model`). Pre-trained encoders reach the fine-tuned models as state dicts
    and WiSE-FT interpolates state dicts, so any architecture the factory builds works.

    Each model is a job of :mod:`edgefuse.jobs` keyed by a content hash (data, recipe, method,
    intervention, S, seed, model source, EdgeFuse version) and run by an executor of
    :mod:`edgefuse.executors`. For the same seeds and the same ``threads``, every executor gives the
    same scores (and bit-identical weights on CPU). A job whose worker process or Ray node dies is run
    again (``max_retries``); a job that raises is not: the others finish, then :class:`SweepError` is
    raised with the grid of the others (``exc.result``, failed cells in its ``failed``).

    Args:
        dataset: Any :class:`MultimodalDataset` with train/val/test splits.
        train_sets: The ``S`` to train.
        methods: ``supervised`` and/or ``contrastive``.
        seeds: Seeds; each (method, intervention, S) is trained once per seed.
        base_config: A :class:`~edgefuse.train.TrainConfig` whose hyper-parameters are used (its
            ``modalities``, ``method``, ``seed`` and ``intervention`` are replaced per run).
        architecture: Architecture for every model (default: the reference one).
        model_factory: Your own architecture instead (see :mod:`edgefuse.factory`); not together with
            ``architecture``. Its reference (``edgefuse_factory_ref``) or name is recorded in ``meta``.
            Other processes import it by reference: use :func:`~edgefuse.factory.import_factory` or a
            module-level function (a closure is refused for ``process``/``ray``).
        interventions: Any of :data:`VARIANTS`.
        intervention_params: Hyper-parameters per intervention (``{"masd": {"K": 2}}``).
        wiseft_alphas: α values swept by the WiSE-FT variants (selected on ``val``).
        include_specialists: Also train ``S = T`` for every test set, so gap-to-specialist is defined.
        split: Split to evaluate on.
        on_model: Callback ``(key, model)`` as soon as each row's model is ready (e.g. to save it); with
            ``process``/``ray`` or a reused job, the model is rebuilt here from its weights.
        progress: Show a progress bar (rich) with one status line per worker on stderr.
        executor: ``inline`` (this process), ``process`` or ``ray``, or an
            :class:`~edgefuse.executors.Executor`.
        workers: Worker processes (``process``, default: the cores), most Ray tasks in flight.
        threads: torch threads per job (Ray: also its ``num_cpus``). Default: the process setting
            (inline), ``max(1, cores // workers)`` (process), 1 (ray). Equal threads = identical results.
        store: Job store folder (:class:`~edgefuse.jobs.JobStore`); None: results stay in memory.
        resume: Reuse the finished jobs of ``store``.
        max_retries: Retries of a job whose worker or node died.
        ray_address: ``auto`` or ``HOST:PORT`` of a Ray cluster (default: a local Ray).
        gpus_per_job: ``num_gpus`` of each Ray task.
        corruptions: ``"audio:noise,image:blur"`` or ``(modality, kind)`` pairs: each row's model is also
            evaluated under each corruption x severity, with every ``T`` containing the corrupted modality
            (the grid's ``corruption``; :mod:`edgefuse.grid_corruptions`: a reused store re-evaluates,
            never retrains, with other corruptions). None: no corruption axis.
        severities: Severities 1..5 of the corruptions (default 1, 3, 5).
        corruption_seed: Seed of the corruptions (the same corrupted rows for every model).

    Returns:
        The :class:`GridResult`; ``meta["sweep"]`` records the executor, workers, threads, jobs run,
        reused and retried, and the wall time.

    Raises:
        ContractError: For an unknown intervention variant or executor, ``resume`` without a store,
            ``severities`` without ``corruptions``.
        DataError: A corruption of an unknown kind or of a modality the dataset lacks, a severity outside
            1..5, a bad corruption seed, or a corruption this dataset cannot take (before any training).
        FactoryError: ``architecture`` and ``model_factory`` both given, or a factory that cannot be
            sent to worker processes.
        SweepError: Jobs failed (after the others finished); ``exc.result`` is the partial grid.
        JobStoreError: ``store`` is not a job store.
    """
    from edgefuse.executors import SweepContext, SweepError, make_executor, run_jobs
    from edgefuse.grid_corruptions import plan_corruptions
    from edgefuse.jobs import JobStore, ModelSource
    from edgefuse.train import TrainConfig, check_model_source

    check_model_source(architecture, model_factory)
    bad = [v for v in interventions if v not in VARIANTS]
    if bad:
        raise ContractError(f"unknown intervention(s) {bad}; allowed: {list(VARIANTS)}")
    if resume and store is None:
        raise ContractError("resume=True reuses the jobs of a store: pass store= (CLI: --store)")
    axis = corruption_axis(dataset, corruptions, severities, corruption_seed, split)
    runner = make_executor(
        executor, workers=workers, threads=threads, ray_address=ray_address, gpus_per_job=gpus_per_job
    )
    source = ModelSource.of(architecture, model_factory)
    if runner.name != "inline":
        source.portable()  # refuses a factory that cannot travel, before anything runs
    params = {k: dict(v) for k, v in (intervention_params or {}).items()}
    u = dataset.modality_names
    wanted = [tuple(n for n in u if n in s) for s in train_sets]
    if include_specialists:
        wanted += [t for t in subsets(u) if t not in wanted]
    base = base_config or TrainConfig(modalities=u)
    cells = [(m, s, seed) for m in methods for s in wanted for seed in seeds]
    specs, rows = _plan(dataset, cells, base, interventions, params, wiseft_alphas, split, source)
    corrupted, records, evals = (
        plan_corruptions(dataset, axis, specs, rows.values()) if axis else (None, [], {})
    )
    specs += list(evals.values())
    ctx = SweepContext(dataset, source, None if store is None else JobStore(store), runner.threads, corrupted)
    by_job: dict[str, list[ModelKey]] = {}
    for key, job in rows.items():
        by_job.setdefault(job, []).append(key)

    def on_done(spec: Any, out: Any) -> None:
        if on_model and spec.job_id in by_job:
            model = out.build(dataset, source)
            for key in by_job[spec.job_id]:
                on_model(key, model)

    report = run_jobs(
        specs, runner, ctx, resume=resume, max_retries=max_retries, progress=progress, on_done=on_done
    )
    scores: dict[ModelKey, dict[tuple[str, ...], float]] = {}
    failed, wiseft_alpha, degraded = [], {}, {}
    for (label, s, seed), job in rows.items():
        out = report.outputs.get(job)
        row = {"method": label, "train": format_set(s), "seed": seed}
        if out is None:
            failed.append({**row, **_short(report.failed.get(job, {}))})
            continue
        scores[(label, s, seed)] = {t: float(out.result["accuracy"][format_set(t)]) for t in subsets(u)}
        ev = evals[job].job_id if job in evals else None
        if ev in report.outputs:
            degraded[(label, s, seed)] = report.outputs[ev].result["corruption"]
        elif ev is not None:
            failed.append({**row, "what": "corruptions", **_short(report.failed.get(ev, {}))})
        if "alpha" in out.result:
            wiseft_alpha[f"{label} S={format_set(s)} seed={seed}"] = out.result["alpha"]
    sweep = report.to_dict()
    if sweep["threads"] is None:
        import torch

        sweep["threads"] = f"process setting ({torch.get_num_threads()})"
    sweep["ray_address"] = ray_address
    meta = {
        "dataset": dataset.name,
        "dataset_meta": dataset.summary(),
        "recipe": base.to_dict(),
        "methods": list(methods),
        "interventions": list(interventions),
        "intervention_params": params,
        "wiseft_alpha": wiseft_alpha,
        "model": source.describe(),
        "sweep": sweep,
    }
    corr = CorruptionResults(u, axis.to_dict(), degraded, records) if axis else None
    grid = GridResult(
        modalities=u,
        scores=scores,
        split=split,
        meta=meta,
        failed=failed,
        corruption=corr,
        chance=chance_accuracy(dataset.split(split).labels),
    )
    if report.failed:
        first = next(iter(report.failed.values()))
        raise SweepError(
            f"{len(report.failed)} of {report.jobs} jobs failed ({len(failed)} grid cells); the first: "
            f"{first['describe']}: {first['error']}. The other jobs finished: exc.result is their grid, "
            "with the failed cells in its `failed`; fix the cause and run again with the same store and "
            "resume to run only what is missing",
            list(report.failed.values()),
            grid,
        )
    return grid


def _short(failure: Mapping[str, Any]) -> dict[str, Any]:
    return {k: failure.get(k) for k in ("job", "describe", "error", "attempts")}


def _plan(
    dataset: MultimodalDataset,
    cells: Sequence[tuple[str, tuple[str, ...], int]],
    base: Any,
    interventions: Sequence[str],
    params: Mapping[str, Mapping[str, Any]],
    alphas: Sequence[float],
    split: str,
    source: Any,
) -> tuple[list[Any], dict[ModelKey, str]]:
    """The jobs of a grid (each dependency before its dependents) and the job behind each grid row."""
    from edgefuse import __version__
    from edgefuse.jobs import JobSpec, dataset_fingerprint

    common = {"dataset": dataset_fingerprint(dataset), "model": source.describe(), "version": __version__}
    specs: dict[str, JobSpec] = {}
    rows: dict[ModelKey, str] = {}
    u = dataset.modality_names

    def add(kind: str, method: str, s: tuple[str, ...], seed: int, variant: str, cfg: Any, **kw: Any) -> str:
        spec = JobSpec(kind, method, s, seed, variant, cfg.to_dict(), **common, **kw)
        return specs.setdefault(spec.job_id, spec).job_id

    for method, s, seed in cells:
        deps = {}
        if method == "contrastive":  # one pre-training per seed (it reads every modality, not S)
            pre = replace(base, modalities=u, method=method, seed=seed)
            deps = {"pretrained": add("pretrain", method, u, seed, "pretrain", pre, evaluate=None)}
        cfg = replace(base, modalities=s, method=method, seed=seed)

        def train_job(iv: str, cfg: Any = cfg, s: tuple[str, ...] = s, deps: Any = deps) -> str:
            if iv == "linear-probe":  # pre-trained encoders frozen, head trained: WiSE-FT's theta0
                run_cfg = replace(cfg, finetune_encoder_lr_scale=0.0)
            else:
                iv = "none" if len(s) == 1 else iv
                run_cfg = replace(cfg, intervention=iv, intervention_params=params.get(iv, {}))
            return add("train", cfg.method, s, cfg.seed, iv, run_cfg, deps=deps, evaluate=split)

        for variant in interventions:
            job = None
            if variant.endswith("wiseft"):
                robust = variant.split("+")[0] if "+" in variant else "moddrop"
                if len(s) == 1:
                    # No modality to drop or distil: theta0 is the linear probe on the contrastively
                    # pre-trained encoders (classic WiSE-FT); without pre-training, the baseline.
                    robust = "linear-probe" if method == "contrastive" else "none"
                if robust != "none":
                    theta = {"theta0": train_job(robust), "theta1": train_job("none")}
                    wise = {"alphas": [float(a) for a in alphas], "select_on": "val"}
                    job = add(
                        "wiseft", method, s, seed, variant, cfg, deps=theta, params=wise, evaluate=split
                    )
            rows[(variant_label(method, variant), s, seed)] = job or train_job(
                "none" if variant.endswith("wiseft") else variant
            )
    return list(specs.values()), rows
