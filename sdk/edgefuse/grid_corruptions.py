"""The robustness grid's corruption axis: every grid model under degraded sensors.

For each grid row (the model of a row label, a train set ``S`` and a seed), each corruption
(``modality:kind`` of :mod:`edgefuse.data.corruptions`) at each severity, on the grid's split, and every
test set ``T ⊆ U`` that contains the corrupted modality (``P`` clean accuracy, ``P_c`` on the corrupted
rows; definitions in docs/metrics.md):

* **fused accuracy** ``P_c(S→T)``: every modality of ``T`` present, the corrupted one corrupted (a row
  the corruption makes invalid, a NaN row, is marked absent for that modality, never fused);
* **single-modality accuracy** ``P_c(S→{m})`` of each ``m ∈ T``, the same model on the same rows;
* **corruption retention** ``P_c(S→T) / P(S→T)``;
* **fusion regret** ``max over m ∈ T of P_c(S→{m}) − P_c(S→T)``, for ``|T| ≥ 2`` (None for one
  modality: nothing is fused). **≤ 0 is good.**

Every metric is computed per seed, then reported as mean ± standard deviation over seeds, like the
grid's other metrics.

How it runs (:func:`edgefuse.robustness.run_grid` ``corruptions=``): :func:`prepare` builds each
corrupted split once per sweep in the main process (audio corruptions re-featurise recordings that a
worker or Ray node may not have) and the sweep context ships them to the workers; one ``corrupt`` job per
model job (:func:`corruption_jobs`) evaluates that model where the executor runs it
(:func:`edgefuse.degraded.evaluate_corrupted`). A ``corrupt`` job's id covers the corruption settings and
the sha256 of the corrupted inputs and depends on its model's job, so a store reused with other
corruptions evaluates again and never retrains. :class:`CorruptionResults` holds the per-seed results
(the grid's ``corruption``): JSON, a Markdown section, a plot, and :meth:`CorruptionResults.summary`.
"""

from __future__ import annotations

import hashlib
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgefuse.errors import ContractError, DataError
from edgefuse.modality_sets import format_set, subsets

__all__ = [
    "DEFAULT_SEVERITIES",
    "CorruptionAxis",
    "CorruptionResults",
    "corruption_axis",
    "corruption_jobs",
    "corruption_key",
    "mean_std",
    "plan_corruptions",
    "prepare",
]

#: Severities evaluated when corruptions are given without severities.
DEFAULT_SEVERITIES = (1, 3, 5)

#: ``(row label, S, seed)``, as :data:`edgefuse.robustness.ModelKey`.
_Key = tuple[str, tuple[str, ...], int]

DEFINITIONS = (
    "docs/metrics.md: P_c(S->T) accuracy with T present and one modality of T corrupted (invalid rows absent); "
    "retention=P_c(S->T)/P(S->T); regret=max over m in T of P_c(S->{m}) - P_c(S->T), |T|>=2 (<= 0 is good); "
    "each per seed, then mean/std over seeds"
)


def mean_std(values: Sequence[float]) -> dict[str, float]:
    """``{"mean", "std" (sample; 0 for one value), "n"}`` of ``values``."""
    vals = [float(v) for v in values]
    return {
        "mean": statistics.fmean(vals),
        "std": statistics.stdev(vals) if len(vals) > 1 else 0.0,
        "n": len(vals),
    }


def corruption_key(modality: str, kind: str, severity: int) -> str:
    """``audio:noise@3``: the key of one corrupted split of a sweep."""
    return f"{modality}:{kind}@{int(severity)}"


@dataclass(frozen=True)
class CorruptionAxis:
    """What the corruption axis evaluates (checked by :func:`corruption_axis`).

    Attributes:
        corruptions: ``(modality, kind)`` pairs, in the given order.
        severities: Sorted severities in 1..5.
        seed: The corruption seed (the same corrupted rows for every model).
        split: The split evaluated (the grid's).
    """

    corruptions: tuple[tuple[str, str], ...]
    severities: tuple[int, ...]
    seed: int = 0
    split: str = "test"

    def keys(self) -> list[str]:
        """Every :func:`corruption_key`, corruption-major."""
        return [corruption_key(m, k, s) for m, k in self.corruptions for s in self.severities]

    def to_dict(self) -> dict[str, Any]:
        """JSON form: ``{"corruptions": ["audio:noise"], "severities": [1, 3, 5], "seed", "split"}``."""
        return {
            "corruptions": [f"{m}:{k}" for m, k in self.corruptions],
            "severities": list(self.severities),
            "seed": self.seed,
            "split": self.split,
        }


def corruption_axis(
    dataset: Any,
    corruptions: str | Sequence[tuple[str, str]] | Sequence[str] | None,
    severities: str | Sequence[int] | None = None,
    seed: int = 0,
    split: str = "test",
) -> CorruptionAxis | None:
    """Check the corruption arguments of a grid against its dataset (before anything is trained).

    Args:
        dataset: The grid's :class:`~edgefuse.data.base.MultimodalDataset`.
        corruptions: ``"audio:noise,image:blur"``, ``("audio", "noise")`` pairs or ``"audio:noise"``
            items; None: no corruption axis.
        severities: Severities 1..5 (``"1,3,5"`` or ints); default :data:`DEFAULT_SEVERITIES`.
        seed: Corruption seed, a non-negative int.
        split: The split evaluated.

    Returns:
        The axis, or None when ``corruptions`` is None.

    Raises:
        DataError: An unknown modality or kind, a modality the dataset does not have, a malformed item,
            a severity outside 1..5, a bad seed or an unknown split (the message lists what is allowed).
        ContractError: ``severities`` without ``corruptions``.
    """
    from edgefuse.data.corruptions import parse_corruptions, parse_severities

    if corruptions is None:
        if severities is not None:
            raise ContractError("severities are the levels of the corruptions: give corruptions= as well")
        return None
    u = list(dataset.modality_names)
    if isinstance(corruptions, str):
        pairs = parse_corruptions(corruptions, u)
    else:
        items = []
        for c in corruptions:
            if isinstance(c, str):
                items.append(c)
            elif isinstance(c, tuple | list) and len(c) == 2 and all(isinstance(x, str) for x in c):
                items.append(f"{c[0]}:{c[1]}")
            else:
                raise DataError(f"corruption {c!r} is not a (modality, kind) pair nor 'modality:kind' text")
        pairs = parse_corruptions(items, u)
    sevs = parse_severities(DEFAULT_SEVERITIES if severities is None else severities)
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise DataError(f"corruption seed={seed!r} is not allowed; use a non-negative int")
    dataset.split(split)  # DataError naming the available splits
    return CorruptionAxis(tuple(pairs), sevs, int(seed), split)


def prepare(dataset: Any, axis: CorruptionAxis) -> tuple[dict[str, Any], list[dict[str, Any]], str]:
    """Build every corrupted split of ``axis`` once (in this process), for the sweep context.

    Returns:
        ``(parts, records, digest)``: key (:func:`corruption_key`) -> a
        :class:`~edgefuse.data.corruptions.CorruptedSplit` holding only the corrupted modality's inputs
        and validity (the other modalities are the clean split's); the JSON record of each (``key``,
        ``domain``, ``params``, ``invalid_rows``...); the sha256 of every corrupted array and validity
        flag (what a ``corrupt`` job's id covers).

    Raises:
        DataError: A corruption that cannot be applied to this dataset (e.g. audio ``eq`` without
            recordings), from :func:`edgefuse.data.corruptions.corrupt_split`.
    """
    import json

    from edgefuse.data.corruptions import CorruptedSplit, corrupt_split

    h = hashlib.sha256()
    parts: dict[str, Any] = {}
    records = []
    for m, kind in axis.corruptions:
        for sev in axis.severities:
            key = corruption_key(m, kind, sev)
            c = corrupt_split(dataset, axis.split, m, kind, sev, axis.seed)
            arr, valid = np.ascontiguousarray(c.inputs[m]), np.ascontiguousarray(c.valid[m])
            parts[key] = CorruptedSplit({m: arr}, c.labels, {m: valid}, dict(c.record))
            records.append(json.loads(json.dumps({"key": key, **c.record}, default=str)))
            for a in (arr, valid):
                h.update(f"\n{key}:{a.dtype.str}:{a.shape}\n".encode())
                h.update(memoryview(a).cast("B"))
    return parts, records, h.hexdigest()


def corruption_jobs(axis: CorruptionAxis, models: Sequence[Any], digest: str) -> dict[str, Any]:
    """The ``corrupt`` job of each model job (:class:`~edgefuse.jobs.JobSpec`), by the model job's id.

    Each depends on its model job (role ``model``); its ``params`` hold the axis, the keys of the
    corrupted splits and their ``digest`` (:func:`prepare`), so its id changes with any of them.
    """
    from edgefuse.jobs import JobSpec

    params = {**axis.to_dict(), "keys": axis.keys(), "data": digest}
    params.pop("split")  # the job's evaluate field
    out = {}
    for spec in models:
        out[spec.job_id] = JobSpec(
            "corrupt",
            spec.method,
            spec.train_set,
            spec.seed,
            spec.variant,
            {},
            spec.dataset,
            spec.model,
            deps={"model": spec.job_id},
            params=params,
            evaluate=axis.split,
            version=spec.version,
        )
    return out


def plan_corruptions(
    dataset: Any, axis: CorruptionAxis, specs: Sequence[Any], model_jobs: Iterable[str]
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """:func:`prepare` the corrupted splits and plan a ``corrupt`` job for each of ``model_jobs``.

    Args:
        dataset: The grid's dataset.
        axis: The corruption axis.
        specs: The sweep's jobs (the model jobs among them).
        model_jobs: Ids of the jobs whose models are evaluated (duplicates are planned once).

    Returns:
        ``(parts, records, jobs)``: what :func:`prepare` returns, and model job id -> its ``corrupt``
        job (:func:`corruption_jobs`).
    """
    parts, records, digest = prepare(dataset, axis)
    by_id = {spec.job_id: spec for spec in specs}
    return parts, records, corruption_jobs(axis, [by_id[j] for j in dict.fromkeys(model_jobs)], digest)


def _pm(v: Mapping[str, float] | None, sign: bool = False) -> str:
    """``mean ± std``; the mean alone for one seed (the spread of one value is unknown, not 0)."""
    if v is None:
        return "–"
    mean = f"{v['mean']:{'+' if sign else ''}.3f}"
    return mean if v.get("n", 2) < 2 else f"{mean} ± {v['std']:.3f}"


@dataclass
class CorruptionResults:
    """Per-seed results of the corruption axis of a grid, and the metrics derived from them.

    Attributes:
        modalities: ``U`` in model order.
        settings: :meth:`CorruptionAxis.to_dict`.
        scores: ``(row label, S, seed)`` -> what the row's ``corrupt`` job measured
            (:func:`edgefuse.degraded.evaluate_corrupted`: clean and corrupted fused accuracy per ``T``,
            single-modality accuracy per modality).
        records: What was done to each corrupted split (:func:`prepare`).
    """

    modalities: tuple[str, ...]
    settings: dict[str, Any]
    scores: dict[_Key, dict[str, Any]] = field(default_factory=dict)
    records: list[dict[str, Any]] = field(default_factory=list)

    @property
    def corruptions(self) -> list[tuple[str, str]]:
        """``(modality, kind)`` pairs in the settings' order."""
        return [tuple(c.split(":", 1)) for c in self.settings["corruptions"]]  # type: ignore[misc]

    def summary(self) -> list[dict[str, Any]]:
        """One row per (row label, S, corruption, severity, T ∋ corrupted modality), metrics over seeds.

        Returns:
            Dicts with ``method`` (the row label), ``train``, ``modality``, ``kind``, ``severity``,
            ``test``, ``seeds``; ``fused``, ``retention``, ``regret`` and ``single`` (modality of ``T``
            -> accuracy alone on the same rows) each as mean/std/n over seeds (``regret`` None when
            ``|T| = 1``; ``retention`` None when a clean accuracy is 0); ``fused_per_seed`` and
            ``regret_per_seed`` (None when ``|T| = 1``); ``best_single`` (highest mean); ``clean``: the
            same model on the clean rows, ``{"fused", "single", "regret"}``.
        """
        out = []
        for label in dict.fromkeys(k[0] for k in self.scores):
            for s in dict.fromkeys(k[1] for k in self.scores):
                seeds = [k[2] for k in self.scores if k[:2] == (label, s)]
                if seeds:
                    out += self._rows(label, s, seeds)
        return out

    def _rows(self, label: str, s: tuple[str, ...], seeds: list[int]) -> list[dict[str, Any]]:
        raws = [self.scores[(label, s, seed)] for seed in seeds]
        index = [{(c["modality"], c["kind"], c["severity"]): c for c in r["curves"]} for r in raws]
        out = []
        for m, kind in self.corruptions:
            for sev in self.settings["severities"]:
                curves = [by.get((m, kind, sev)) for by in index]
                if any(c is None for c in curves):
                    continue
                for t in (t for t in subsets(self.modalities) if m in t):
                    name = format_set(t)
                    clean = _metrics([r["clean"] for r in raws], t)
                    row = _metrics(curves, t)  # type: ignore[arg-type]
                    fused, clean_fused = row.pop("per_seed"), clean.pop("per_seed")
                    ret = (
                        [f / c for f, c in zip(fused, clean_fused, strict=True)] if all(clean_fused) else None
                    )
                    out.append(
                        {
                            "method": label,
                            "train": format_set(s),
                            "modality": m,
                            "kind": kind,
                            "severity": sev,
                            "test": name,
                            "seeds": seeds,
                            **row,
                            "fused_per_seed": fused,
                            "retention": mean_std(ret) if ret is not None else None,
                            "clean": {k: clean[k] for k in ("fused", "single", "regret")},
                        }
                    )
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON: ``definitions``, ``settings``, ``records``, per-seed ``scores`` and the :meth:`summary`."""
        return {
            "definitions": DEFINITIONS,
            "settings": dict(self.settings),
            "records": list(self.records),
            "scores": [
                {"method": label, "train": format_set(s), "seed": seed, **raw}
                for (label, s, seed), raw in self.scores.items()
            ],
            "summary": self.summary(),
        }

    @classmethod
    def from_dict(cls, modalities: Sequence[str], data: Mapping[str, Any]) -> CorruptionResults:
        """Inverse of :meth:`to_dict` (the summary is recomputed).

        Raises:
            ContractError: A malformed document.
        """
        try:
            scores = {
                (r["method"], tuple(r["train"].split("+")), int(r["seed"])): {
                    "clean": r["clean"],
                    "curves": list(r["curves"]),
                }
                for r in data["scores"]
            }
            settings = dict(data["settings"])
            if not isinstance(settings["corruptions"], list) or not isinstance(settings["severities"], list):
                raise TypeError("settings")
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise ContractError(f"not a grid corruption document (missing or malformed {exc})") from None
        return cls(tuple(modalities), settings, scores, [dict(r) for r in data.get("records") or []])

    def regret_rows(self) -> list[dict[str, Any]]:
        """The :meth:`summary` rows with ``T = S`` and ``|S| ≥ 2`` (what the CLI prints).

        That is each model with the modalities it was trained on, one of them corrupted.
        """
        return [r for r in self.summary() if r["test"] == r["train"] and r["regret"] is not None]

    def markdown(self) -> str:
        """A Markdown section: per row label and corrupted modality, one table with a column per ``T``.

        Rows: per ``S`` and corruption, the clean rows, then each severity. Cells: fused accuracy
        (retention), each modality alone on the same rows, and the regret per ``T`` with ``|T| ≥ 2``;
        mean ± std over seeds (retention: mean).
        """
        st = self.settings
        lines = [
            "### Degraded sensors: corruption retention and fusion regret",
            "",
            f"Each corruption applied to one modality on the {st['split']} split (seed {st['seed']}, "
            f"severities {', '.join(map(str, st['severities']))}); every modality of T present, a row the "
            "corruption makes invalid marked absent for that modality. Fused: the model with T (retention: "
            "fused / clean fused, same T); alone: each modality alone on the same rows; regret: the best "
            "modality of T alone − fused (≤ 0 is good). Mean ± std over seeds; definitions in docs/metrics.md.",
            "",
        ]
        if self.records:
            lines += [
                "Corrupted splits: "
                + "; ".join(
                    f"{r['key']} ({r.get('domain')}, {_params_text(r.get('params'))}, "
                    f"{r.get('invalid_rows', 0)} invalid rows)"
                    for r in self.records
                ),
                "",
            ]
        rows = self.summary()
        by = {(r["method"], r["train"], r["modality"], r["kind"], r["severity"], r["test"]): r for r in rows}
        for label in dict.fromkeys(r["method"] for r in rows):
            for m in dict.fromkeys(r["modality"] for r in rows if r["method"] == label):
                mine = [r for r in rows if (r["method"], r["modality"]) == (label, m)]
                tests = [format_set(t) for t in subsets(self.modalities) if m in t]  # tests[0] = U
                regrets = [t for t in tests if len(t.split("+")) > 1]
                head = ["S", "corruption", "severity", *(f"fused {t} (retention)" for t in tests), "alone"]
                head += [f"regret {t}" for t in regrets]
                lines += [f"#### {label}: {m} corrupted", "", "| " + " | ".join(head) + " |"]
                lines.append("|" + "---|" * len(head))
                for s in dict.fromkeys(r["train"] for r in mine):
                    for kind in dict.fromkeys(r["kind"] for r in mine if r["train"] == s):
                        sevs = [v for v in st["severities"] if (label, s, m, kind, v, tests[0]) in by]
                        cells = {v: {t: by[(label, s, m, kind, v, t)] for t in tests} for v in sevs}
                        clean = {t: r["clean"] for t, r in cells[sevs[0]].items()}
                        lines.append(
                            f"| {s} | {m}:{kind} | clean | "
                            + " | ".join(_pm(clean[t]["fused"]) for t in tests)
                            + f" | {_singles(clean[tests[0]]['single'])} | "
                            + " | ".join(_pm(clean[t]["regret"], sign=True) for t in regrets)
                            + " |"
                        )
                        for v, by_t in cells.items():
                            lines.append(
                                f"| {s} | {m}:{kind} | {v} | "
                                + " | ".join(f"{_pm(by_t[t]['fused'])} ({_ret(by_t[t])})" for t in tests)
                                + f" | {_singles(by_t[tests[0]]['single'])} | "
                                + " | ".join(_pm(by_t[t]["regret"], sign=True) for t in regrets)
                                + " |"
                            )
                lines.append("")
        return "\n".join(lines)

    def plot(self, path: str | Path) -> Path:
        """Save a PNG of accuracy vs severity (0 = clean): one panel per train set S x corruption.

        In each panel, per row label: the fused accuracy with every modality present (``T = U``, solid)
        and each modality alone on the same rows (dashed, same colour, one marker per modality).
        """
        from edgefuse.plots import pyplot, save_figure

        plt = pyplot()
        u = format_set(self.modalities)
        rows = [r for r in self.summary() if r["test"] == u]
        trains = list(dict.fromkeys(r["train"] for r in rows))
        labels = list(dict.fromkeys(r["method"] for r in rows))
        pairs = self.corruptions
        fig, axes = plt.subplots(
            max(1, len(trains)),
            len(pairs),
            figsize=(4.2 * len(pairs), 3.2 * max(1, len(trains))),
            squeeze=False,
            constrained_layout=True,
        )
        colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        markers = "osD^vP*X"
        for i, s in enumerate(trains):
            for j, (m, kind) in enumerate(pairs):
                ax = axes[i][j]
                for c, label in enumerate(labels):
                    mine = [
                        r
                        for r in rows
                        if (r["method"], r["train"], r["modality"], r["kind"]) == (label, s, m, kind)
                    ]
                    if not mine:
                        continue
                    color = colors[c % len(colors)]
                    x = [0] + [r["severity"] for r in mine]
                    fused = [mine[0]["clean"]["fused"]["mean"]] + [r["fused"]["mean"] for r in mine]
                    ax.plot(x, fused, "-", color=color, marker="o", label=f"{label}: fused ({u})")
                    for k, name in enumerate(self.modalities):
                        alone = [mine[0]["clean"]["single"][name]["mean"]] + [
                            r["single"][name]["mean"] for r in mine
                        ]
                        ax.plot(
                            x,
                            alone,
                            "--",
                            color=color,
                            marker=markers[k % len(markers)],
                            markersize=4,
                            linewidth=1,
                            label=f"{label}: {name} alone",
                        )
                ax.set_title(f"S={s}: {m}:{kind}", fontsize=10)
                ax.set_ylim(0, 1)
                ax.set_xticks([0, *self.settings["severities"]])
                if i == len(trains) - 1:
                    ax.set_xlabel("severity (0 = clean)")
                if j == 0:
                    ax.set_ylabel(f"top-1 accuracy ({self.settings['split']})")
        if rows:
            axes[0][0].legend(fontsize=6, loc="lower left")
        fig.suptitle(
            "Accuracy under a corrupted sensor: fused (solid) and each modality alone (dashed)", fontsize=10
        )
        return save_figure(fig, path)


def _metrics(points: Sequence[Mapping[str, Any]], t: tuple[str, ...]) -> dict[str, Any]:
    """Fused, single and regret over seeds for ``T`` from per-seed ``{"fused": {T: acc}, "single"}``."""
    name = format_set(t)
    fused = [float(p["fused"][name]) for p in points]
    singles = {m: [float(p["single"][m]) for p in points] for m in t}
    regret = [max(singles[m][i] for m in t) - f for i, f in enumerate(fused)] if len(t) > 1 else None
    single = {m: mean_std(v) for m, v in singles.items()}
    return {
        "per_seed": fused,
        "fused": mean_std(fused),
        "single": single,
        "best_single": max(single, key=lambda m: single[m]["mean"]),
        "regret": mean_std(regret) if regret is not None else None,
        "regret_per_seed": regret,
    }


def _ret(row: Mapping[str, Any]) -> str:
    return "–" if row["retention"] is None else f"{row['retention']['mean']:.3f}"


def _singles(single: Mapping[str, Mapping[str, float]]) -> str:
    return "; ".join(f"{m} {_pm(v)}" for m, v in single.items())


def _params_text(params: Any) -> str:
    if isinstance(params, Mapping):
        return ", ".join(f"{k}={v}" for k, v in params.items())
    return str(params)
