"""Interventions: modality dropout, MASD (hand-computed loss), WiSE-FT (exact endpoints), factors."""

from __future__ import annotations

import math
import statistics
from dataclasses import replace

import pytest

torch = pytest.importorskip("torch")

from edgefuse.errors import CheckpointError, ContractError  # noqa: E402
from edgefuse.interventions import (  # noqa: E402
    interpolate_state,
    make_loss,
    masd_loss,
    modality_dropout_mask,
    proper_subset_mask,
)
from edgefuse.models.contract import build_model  # noqa: E402
from edgefuse.models.reference import reference_architecture  # noqa: E402
from edgefuse.robustness import GridResult, _factor  # noqa: E402
from edgefuse.train import TrainConfig, train  # noqa: E402


@pytest.mark.parametrize("p", [0.0, 0.5, 0.9, 0.999])
def test_modality_dropout_never_drops_everything(p: float) -> None:
    gen = torch.Generator().manual_seed(0)
    mask = modality_dropout_mask(5000, [0, 2, 3], 4, p, gen)
    assert mask.shape == (5000, 4)
    assert mask[:, [0, 2, 3]].any(dim=1).all()
    assert not mask[:, 1].any()
    kept = mask[:, [0, 2, 3]].float().mean().item()
    if p == 0.5:
        # P(keep) = 0.5 plus the rescue of the all-dropped rows (1/8 of rows, 1 of 3 kept).
        assert kept == pytest.approx(0.5 + 1 / 8 / 3, abs=0.02)


def test_proper_subsets_are_non_empty_and_proper() -> None:
    gen = torch.Generator().manual_seed(1)
    mask = proper_subset_mask(3000, [0, 1, 2], 3, gen)
    counts = mask.sum(dim=1)
    assert counts.min() >= 1
    assert counts.max() <= 2
    # Uniform over the 6 proper non-empty subsets: each single modality ~1/6 of rows.
    single0 = ((counts == 1) & mask[:, 0]).float().mean().item()
    assert single0 == pytest.approx(1 / 6, abs=0.03)
    with pytest.raises(ContractError, match="at least two"):
        proper_subset_mask(2, [0], 3, gen)


def test_masd_loss_matches_hand_computation() -> None:
    full = torch.tensor([[2.0, 0.0, -1.0], [0.5, 1.5, 0.0]])
    sub = torch.tensor([[1.0, 0.5, 0.0], [0.0, 0.0, 2.0]])
    y = torch.tensor([0, 1])
    lam, beta, tau = 0.7, 0.3, 2.0

    def softmax(row: list[float]) -> list[float]:
        e = [math.exp(v) for v in row]
        return [v / sum(e) for v in e]

    def ce(logits: list[list[float]]) -> float:
        return sum(-math.log(softmax(r)[t]) for r, t in zip(logits, y.tolist(), strict=True)) / 2

    f, s = full.tolist(), sub.tolist()
    kl = 0.0
    for fr, sr in zip(f, s, strict=True):
        pt = softmax([v / tau for v in fr])
        ps = softmax([v / tau for v in sr])
        kl += sum(a * (math.log(a) - math.log(b)) for a, b in zip(pt, ps, strict=True))
    kl /= 2
    expected = ce(f) + lam * (beta * ce(s) + (1 - beta) * tau**2 * kl)
    got = masd_loss(full, [sub], y, lam, beta, tau)
    assert got.item() == pytest.approx(expected, rel=1e-6)
    # The teacher's targets carry no gradient: only CE(full) reaches the full logits.
    full_g = full.clone().requires_grad_(True)
    masd_loss(full_g, [sub], y, lam, beta, tau).backward()
    ce_only = full.clone().requires_grad_(True)
    torch.nn.functional.cross_entropy(ce_only, y).backward()
    torch.testing.assert_close(full_g.grad, ce_only.grad)


def test_masd_training_loss_uses_teacher_and_students(toy_dataset) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    model = build_model(
        reference_architecture(toy_dataset.modalities, 16), toy_dataset.modalities, toy_dataset.label_names
    )
    cfg = TrainConfig(modalities=("audio", "image"), intervention="masd", intervention_params={"K": 2})
    batch = {k: torch.from_numpy(v[:8]) for k, v in toy_dataset.split("train").inputs.items() if k != "imu"}
    y = torch.from_numpy(toy_dataset.split("train").labels[:8])
    seen = []
    hook = model.register_forward_pre_hook(lambda _m, args: seen.append(args[1].clone()))
    loss = make_loss(cfg)(model, batch, y, torch.Generator().manual_seed(0))
    hook.remove()
    assert len(seen) == 3  # teacher + K=2 students
    assert seen[0][:, :2].all()
    assert not seen[0][:, 2].any()
    for m in seen[1:]:
        assert (m[:, :2].sum(dim=1) == 1).all()  # proper subset of {audio, image}
        assert not m[:, 2].any()
    # Exactly MASD of the teacher's logits (full mask) and the students' (their masks), with the
    # default lambda = 1, beta = 0.5, tau = 2: the same model, inputs and masks give the same loss.
    teacher, students = model(batch, seen[0]), [model(batch, m) for m in seen[1:]]
    expected = masd_loss(teacher, students, y, 1.0, 0.5, 2.0)
    torch.testing.assert_close(loss, expected, rtol=0, atol=0)


def test_wiseft_endpoints_are_exact_and_midpoint_interpolates() -> None:
    a = {"w": torch.randn(3, 4), "b": torch.randn(4), "steps": torch.tensor(5)}
    b = {"w": torch.randn(3, 4), "b": torch.randn(4), "steps": torch.tensor(5)}
    for k, v in interpolate_state(a, b, 0.0).items():
        assert torch.equal(v, a[k])
    for k, v in interpolate_state(a, b, 1.0).items():
        assert torch.equal(v, b[k])
    mid = interpolate_state(a, b, 0.25)
    torch.testing.assert_close(mid["w"], 0.75 * a["w"] + 0.25 * b["w"])
    with pytest.raises(CheckpointError, match=r"only in theta1: \['extra'\]"):
        interpolate_state(a, {**b, "extra": torch.zeros(1)}, 0.5)
    with pytest.raises(CheckpointError, match=r"different shapes: \['w: \(3, 4\) vs \(4, 3\)'\]"):
        interpolate_state(a, {**b, "w": torch.zeros(4, 3)}, 0.5)
    with pytest.raises(CheckpointError, match=r"alpha = 1\.5"):
        interpolate_state(a, b, 1.5)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"intervention": "moddrop", "intervention_params": {"q": 0.1}}, r"no parameter\(s\) \['q'\]"),
        ({"intervention": "moddrop", "intervention_params": {"p": 1.0}}, r"p = 1\.0 must be < 1"),
        ({"intervention": "masd", "intervention_params": {"beta": 2}}, "beta = 2"),
        ({"intervention": "masd", "intervention_params": {"K": 1.5}}, r"K = 1\.5"),
        ({"intervention": "masd", "intervention_params": {"tau": 0}}, "tau = 0"),
    ],
)
def test_bad_intervention_params(params: dict, match: str) -> None:
    with pytest.raises(ContractError, match=match):
        make_loss(TrainConfig(modalities=("audio",), **params))


def test_grid_with_interventions_and_factors(toy_dataset) -> None:  # type: ignore[no-untyped-def]
    from edgefuse.robustness import run_grid

    # 4 epochs: at 2 the moddrop row was at chance (0.344 vs 0.325) and its "factor" measured noise
    cfg = TrainConfig(modalities=toy_dataset.modality_names, epochs=4, batch_size=64)
    g = run_grid(
        toy_dataset,
        [("audio", "image")],
        ["supervised"],
        [0, 1],
        cfg,
        interventions=["none", "moddrop", "masd+wiseft"],
        include_specialists=False,
        wiseft_alphas=[0.0, 0.5, 1.0],
    )
    assert g.methods == ["supervised", "supervised+moddrop", "supervised+masd+wiseft"]
    assert len(g.meta["wiseft_alpha"]) == 2
    assert g.not_learned() == []  # every row learned: the factors below are about robustness
    imp = g.improvements()
    assert {r["intervention"] for r in imp} == {"supervised+moddrop", "supervised+masd+wiseft"}
    s = ("audio", "image")
    # Per intervention: the missing scenarios T = audio, image and the added one T = audio+image+imu.
    assert sorted((r["intervention"], r["scenario"], r["test"]) for r in imp) == sorted(
        (label, scenario, test)
        for label in ("supervised+moddrop", "supervised+masd+wiseft")
        for scenario, test in (("missing", "audio"), ("missing", "image"), ("added", "audio+image+imu"))
    )
    for r in imp:
        # The values and the verdict, recomputed from the raw scores with the rule of docs/metrics.md:
        # a drop (gain) is measurable when its mean over seeds exceeds its standard error.
        t = tuple(r["test"].split("+"))
        sign = 1 if r["scenario"] == "missing" else -1  # drop = P(S->S) - P(S->T); gain = -drop

        def per_seed(label: str, t: tuple[str, ...] = t, sign: int = sign) -> list[float]:
            return [sign * (g.scores[(label, s, k)][s] - g.scores[(label, s, k)][t]) for k in (0, 1)]

        base, var = per_seed("supervised"), per_seed(r["intervention"])
        for got, want in ((r["baseline_value"], base), (r["intervention_value"], var)):
            assert got["mean"] == pytest.approx(statistics.fmean(want), abs=1e-12)
            assert got["std"] == pytest.approx(statistics.stdev(want), abs=1e-12)
            assert got["n"] == 2

        def measurable(v: list[float]) -> bool:
            return statistics.fmean(v) > statistics.stdev(v) / math.sqrt(len(v))

        b, v = statistics.fmean(base), statistics.fmean(var)
        if r["scenario"] == "missing":
            if not measurable(base):
                expected = {"factor": None, "verdict": "baseline has no measurable drop"}
            elif not measurable(var):
                expected = {"factor": None, "verdict": "no measurable drop"}
            else:
                f = b / v
                verdict = f"drop {f:.2f}x smaller" if f >= 1 else f"drop {1 / f:.2f}x larger"
                expected = {"factor": pytest.approx(f), "verdict": verdict}
        elif not measurable(base):
            verdict = (
                "gain where the baseline has none" if measurable(var) else "no measurable gain for either"
            )
            expected = {"factor": None, "verdict": verdict}
        else:
            expected = {"factor": pytest.approx(v / b), "verdict": f"gain {v / b:.2f}x the baseline's"}
        assert {"factor": r["factor"], "verdict": r["verdict"]} == expected, r


def test_noise_floor_rule() -> None:
    base = {"mean": 0.20, "std": 0.02, "n": 3}
    assert _factor("missing", base, {"mean": 0.10, "std": 0.01, "n": 3})["factor"] == pytest.approx(2.0)
    tiny = _factor("missing", base, {"mean": 0.004, "std": 0.01, "n": 3})
    assert tiny == {"factor": None, "verdict": "no measurable drop"}
    assert _factor("added", {"mean": -0.05, "std": 0.01, "n": 3}, {"mean": 0.03, "std": 0.01, "n": 3})[
        "verdict"
    ] == ("gain where the baseline has none")


def test_single_modality_interventions_reuse_the_baseline(toy_dataset) -> None:  # type: ignore[no-untyped-def]
    cfg = TrainConfig(modalities=("image",), epochs=1)
    a = train(toy_dataset, cfg).model
    b = train(toy_dataset, replace(cfg, intervention="moddrop")).model
    for (ka, va), (_, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(va, vb), ka
    empty = GridResult(modalities=("image",), scores={})  # an empty grid is valid: no rows, no factors
    assert (empty.methods, empty.train_sets, empty.seeds) == ([], [], [])
    assert empty.test_sets == [("image",)]
    assert empty.all_improvements() == []
    assert empty.to_dict()["cells"] == []
