"""Threshold calibration: known optima, brute force, constraints and metrics."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from langchain_cascade.calibration import (
    CalibrationResult,
    apgr,
    calibrate,
    cpt,
    evaluate_thresholds,
    pgr,
    plot_frontier,
    plot_held_out,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# --------------------------------------------------------------------------
# A 2-tier case small enough to solve by hand.
#
# Queries sorted by tier-0 score; tier 0 costs 1, tier 1 costs 10. Accepting the
# top j queries gives (correct answers out of 8, mean cost):
#   j:        0    1    2    3    4    5     6    7     8
#   correct:  7    7    7    6    6    5     6    5     4
#   cost:    11  9.75  8.5 7.25  6  4.75   3.5 2.25   1
# --------------------------------------------------------------------------
HAND_S0 = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2]
HAND_C0 = [1, 1, 0, 1, 0, 1, 0, 0]
HAND_C1 = [1, 1, 1, 1, 1, 0, 1, 1]


def hand_data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    scores = np.column_stack([HAND_S0, np.full(8, np.nan)])  # final tier: no gate
    correct = np.column_stack([HAND_C0, HAND_C1]).astype(float)
    costs = np.tile([1.0, 10.0], (8, 1))
    return scores, correct, costs


def synthetic(
    n: int, k: int, seed: int, *, noise: float = 0.3, decimals: int = 3
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Queries of random difficulty; stronger tiers are right more often.

    Gate scores are noisy estimates of the chance that the tier is right.
    """
    rng = np.random.default_rng(seed)
    difficulty = rng.random(n)
    p_right = np.clip(1.15 - difficulty[:, None] + 0.25 * np.arange(k), 0.0, 1.0)
    correct = (rng.random((n, k)) < p_right).astype(float)
    scores = np.clip(p_right + noise * rng.standard_normal((n, k)), 0.0, 1.0)
    scores = np.round(scores, decimals)
    costs = np.tile(4.0 ** np.arange(k), (n, 1)) * rng.uniform(0.8, 1.2, (n, k))
    return scores, correct, costs


def brute_force(
    scores: np.ndarray, correct: np.ndarray, costs: np.ndarray
) -> list[tuple[tuple[float, ...], float, float]]:
    """(thresholds, quality, cost) of every candidate policy, evaluated naively."""
    n, k = correct.shape
    cands = [
        [-math.inf, *sorted(set(scores[:, j].tolist())), math.inf] for j in range(k - 1)
    ]
    out = []
    for thr in itertools.product(*cands):
        q = c = 0.0
        for r in range(n):
            for j in range(k):
                if j == k - 1 or scores[r, j] >= thr[j]:
                    q += correct[r, j]
                    c += float(costs[r, : j + 1].sum())
                    break
        out.append((thr, q / n, c / n))
    return out


def best_min_quality(
    points: list[tuple[tuple[float, ...], float, float]], target: float
) -> float:
    return min(c for _, q, c in points if q >= target - 1e-9)


def best_max_cost(
    points: list[tuple[tuple[float, ...], float, float]], budget: float
) -> float:
    return max(q for _, q, c in points if c <= budget + 1e-9)


def pareto_set(
    points: list[tuple[tuple[float, ...], float, float]],
) -> set[tuple[float, float]]:
    pairs = {(round(c, 9), round(q, 9)) for _, q, c in points}
    return {
        (c, q)
        for c, q in pairs
        if not any(c2 <= c and q2 >= q and (c2, q2) != (c, q) for c2, q2 in pairs)
    }


def frontier_set(result: CalibrationResult) -> set[tuple[float, float]]:
    return {(round(p.cost, 9), round(p.quality, 9)) for p in result.frontier}


# --------------------------------------------------------------------------
# hand-computed 2-tier optimum
# --------------------------------------------------------------------------


def test_hand_case_default_objective_matches_premium_quality_cheapest() -> None:
    # Neither constraint: cheapest policy with quality >= tier-1-only (7/8): j = 2.
    res = calibrate(*hand_data())
    assert res.method == "exact-sweep"
    assert res.thresholds == (0.8,)
    assert res.quality == pytest.approx(7 / 8)
    assert res.cost == pytest.approx(8.5)
    assert res.escalation_rate == pytest.approx(6 / 8)
    assert res.strong_call_rate == pytest.approx(6 / 8)
    assert res.tier_rates == pytest.approx((2 / 8, 6 / 8))
    assert res.tier_quality == pytest.approx((1.0, 5 / 6))


@pytest.mark.parametrize(
    ("kwargs", "thresholds", "quality", "cost"),
    [
        ({"min_quality": 0.75}, (0.4,), 6 / 8, 3.5),
        ({"min_quality": 0.7}, (0.4,), 6 / 8, 3.5),
        ({"max_cost": 4.0}, (0.4,), 6 / 8, 3.5),
        ({"max_cost": 2.25}, (0.3,), 5 / 8, 2.25),  # budget met exactly
        ({"max_cost": 20.0}, (0.8,), 7 / 8, 8.5),  # best quality, then cheapest
        # accepting everything: the lowest observed score is preferred to -inf
        ({"max_cost": 1.0}, (0.2,), 4 / 8, 1.0),
    ],
)
def test_hand_case_constraints(
    kwargs: dict[str, Any], thresholds: tuple[float, ...], quality: float, cost: float
) -> None:
    res = calibrate(*hand_data(), **kwargs)
    assert res.thresholds == thresholds
    assert res.quality == pytest.approx(quality)
    assert res.cost == pytest.approx(cost)


def test_hand_case_frontier_and_baselines() -> None:
    res = calibrate(*hand_data())
    assert [p.thresholds for p in res.frontier] == [(0.2,), (0.3,), (0.4,), (0.8,)]
    got = [(p.cost, p.quality, p.escalation_rate) for p in res.frontier]
    want = [(1.0, 4, 0), (2.25, 5, 1), (3.5, 6, 2), (8.5, 7, 6)]
    for g, (cost, right, escalated) in zip(got, want, strict=True):
        assert g == pytest.approx((cost, right / 8, escalated / 8))
    assert (res.cheap_quality, res.cheap_cost) == pytest.approx((0.5, 1.0))
    assert (res.premium_quality, res.premium_cost) == pytest.approx((7 / 8, 10.0))
    # oracle: 4 queries stop at tier 0 (incl. the one tier 1 gets wrong), 4 go on
    assert (res.perfect_quality, res.perfect_cost) == pytest.approx((1.0, 6.0))


def test_hand_case_apgr_and_cpt() -> None:
    # PGR = (correct - 4) / 3 at x = (8 - j) / 8:  0, 1/3, 2/3, 1/3, 2/3, 2/3, 1, 1, 1
    # trapezoid area = (31/6) / 8
    res = calibrate(*hand_data())
    assert res.apgr == pytest.approx(31 / 48)
    # PGR 0.5 is crossed between x = 1/8 and 2/8; PGR 0.8 between 5/8 and 6/8
    assert res.cpt == pytest.approx({0.5: 1.5 / 8, 0.8: 5.4 / 8})


def test_gate_costs_are_paid_on_non_final_tiers_only() -> None:
    scores, correct, costs = hand_data()
    gates = np.column_stack([np.full(8, 0.5), np.full(8, np.nan)])  # final: ignored
    res = calibrate(scores, correct, costs, gate_costs=gates)
    assert res.thresholds == (0.8,)
    assert res.cost == pytest.approx(8.5 + 0.5)
    assert res.cheap_cost == pytest.approx(1.0)  # baselines are the bare models
    # 3 tiers: stopping at tier i pays costs[0..i] + gates[0..min(i, 1)]
    s = [[0.9, 0.0, np.nan], [0.1, 0.9, np.nan], [0.1, 0.1, np.nan]]
    c = [[1, 1, 1]] * 3
    k = [[1.0, 10.0, 100.0]] * 3
    g = [[0.1, 0.2, 50.0]] * 3
    ev = evaluate_thresholds(s, c, k, [0.5, 0.5], gate_costs=g)
    assert ev.tier_rates == (1 / 3, 1 / 3, 1 / 3)
    assert ev.cost == pytest.approx((1.1 + 11.3 + 111.3) / 3)


# --------------------------------------------------------------------------
# brute force on more tiers
# --------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_three_tiers_exact_grid_matches_brute_force(seed: int) -> None:
    scores, correct, costs = synthetic(12, 3, seed, decimals=1)
    points = brute_force(scores, correct, costs)
    target = float(np.quantile([q for _, q, _ in points], 0.6))
    res = calibrate(scores, correct, costs, min_quality=target)
    assert res.method == "exact-grid"
    assert res.quality >= target - 1e-9
    assert res.cost == pytest.approx(best_min_quality(points, target), abs=1e-9)
    assert frontier_set(res) == pareto_set(points)
    budget = float(np.median([c for _, _, c in points]))
    res_b = calibrate(scores, correct, costs, max_cost=budget)
    assert res_b.cost <= budget + 1e-9
    assert res_b.quality == pytest.approx(best_max_cost(points, budget), abs=1e-9)


@pytest.mark.parametrize("seed", range(3))
def test_four_tiers_exact_grid_matches_brute_force(seed: int) -> None:
    scores, correct, costs = synthetic(8, 4, seed, decimals=1)
    points = brute_force(scores, correct, costs)
    target = float(np.quantile([q for _, q, _ in points], 0.5))
    res = calibrate(scores, correct, costs, min_quality=target)
    assert res.method == "exact-grid"
    assert res.cost == pytest.approx(best_min_quality(points, target), abs=1e-9)
    assert frontier_set(res) == pareto_set(points)


# Seeds 19, 24, 38 (3 tiers) and 5 (4 tiers) are cases where a single descent
# from the best thinned-grid point gets stuck; the restarts and the Lagrangian
# phase are needed there.
CD_CASES = [(3, 40, s) for s in (0, 1, 2, 3, 19, 24, 38)] + [
    (4, 14, s) for s in (0, 1, 5)
]


@pytest.mark.parametrize(("k", "n", "seed"), CD_CASES)
def test_coordinate_descent_finds_brute_force_optimum(
    k: int, n: int, seed: int
) -> None:
    # max_grid=1 forces the thinned-grid + coordinate-descent search
    scores, correct, costs = synthetic(n, k, seed, decimals=4)
    points = brute_force(scores, correct, costs)
    target = float(correct[:, -1].mean()) - 0.05
    res = calibrate(scores, correct, costs, min_quality=target, max_grid=1)
    assert res.method == "coordinate-descent"
    assert res.quality >= target - 1e-9
    assert res.cost == pytest.approx(best_min_quality(points, target), abs=1e-9)


def test_frontier_is_sorted_non_dominated_and_reproducible() -> None:
    scores, correct, costs = synthetic(3000, 3, 7)
    res = calibrate(scores, correct, costs, min_quality=0.9)
    assert res.method == "coordinate-descent"
    costs_f = [p.cost for p in res.frontier]
    quals_f = [p.quality for p in res.frontier]
    assert all(a < b for a, b in itertools.pairwise(costs_f))
    assert all(a < b for a, b in itertools.pairwise(quals_f))
    for p in res.frontier[:: max(1, len(res.frontier) // 25)]:
        ev = evaluate_thresholds(scores, correct, costs, p.thresholds)
        assert (ev.quality, ev.cost) == pytest.approx((p.quality, p.cost))
        assert ev.escalation_rate == pytest.approx(p.escalation_rate)
        assert ev.strong_call_rate == pytest.approx(p.strong_call_rate)
    # the chosen point is on the frontier
    assert (round(res.cost, 9), round(res.quality, 9)) in frontier_set(res)


# --------------------------------------------------------------------------
# constraints
# --------------------------------------------------------------------------


@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("slack", [0.0, 0.02, 0.08])
def test_min_quality_is_met(k: int, slack: float) -> None:
    scores, correct, costs = synthetic(2000, k, 1, noise=0.15)
    min_quality = float(correct[:, -1].mean()) - slack
    res = calibrate(scores, correct, costs, min_quality=min_quality)
    assert res.quality >= min_quality - 1e-9
    ev = evaluate_thresholds(scores, correct, costs, res.thresholds)
    assert (ev.quality, ev.cost) == pytest.approx((res.quality, res.cost))
    all_tiers = float(costs.sum(axis=1).mean())
    assert res.cost <= all_tiers + 1e-9
    if slack > 0:
        assert res.cost < all_tiers  # giving up some quality buys savings
    assert sum(res.tier_rates) == pytest.approx(1.0)


@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("share", [0.2, 0.5, 0.9])
def test_max_cost_is_met(k: int, share: float) -> None:
    scores, correct, costs = synthetic(2000, k, 2)
    cheapest = float(costs[:, 0].mean())
    budget = cheapest + share * (float(costs.sum(axis=1).mean()) - cheapest)
    res = calibrate(scores, correct, costs, max_cost=budget)
    assert res.cost <= budget + 1e-9
    assert res.quality > res.cheap_quality


def test_infeasible_min_quality_reports_best_quality() -> None:
    with pytest.raises(ValueError, match=r"best achievable quality is 0\.875"):
        calibrate(*hand_data(), min_quality=0.95)


def test_infeasible_max_cost_reports_cheapest_cost() -> None:
    with pytest.raises(ValueError, match=r"max_cost=0\.5 is infeasible.* costs 1 per"):
        calibrate(*hand_data(), max_cost=0.5)


def test_both_constraints_rejected() -> None:
    with pytest.raises(ValueError, match="at most one of min_quality and max_cost"):
        calibrate(*hand_data(), min_quality=0.8, max_cost=5.0)


def test_non_numeric_constraint_rejected() -> None:
    with pytest.raises(TypeError, match="min_quality must be a real number"):
        calibrate(*hand_data(), min_quality="high")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_cost must be finite"):
        calibrate(*hand_data(), max_cost=math.inf)


# --------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------


def test_shape_mismatch_message() -> None:
    s = np.zeros((10, 2))
    with pytest.raises(
        ValueError, match=r"scores has shape \(10, 2\) but correct has shape \(10, 3\)"
    ):
        calibrate(s, np.zeros((10, 3)), np.zeros((10, 2)))
    with pytest.raises(ValueError, match=r"but costs has shape \(9, 2\)"):
        calibrate(s, np.zeros((10, 2)), np.zeros((9, 2)))
    with pytest.raises(ValueError, match=r"but gate_costs has shape \(10, 1\)"):
        calibrate(s, s, s, gate_costs=np.zeros((10, 1)))


@pytest.mark.parametrize(
    ("scores", "correct", "costs", "message"),
    [
        ([[0.5], [0.2]], [[1], [0]], [[1], [1]], "need at least 2 tiers, got 1"),
        ([0.5, 0.2], [1, 0], [1, 1], r"scores must be 2-D .* got shape \(2,\)"),
        (np.zeros((0, 2)), np.zeros((0, 2)), np.zeros((0, 2)), "need at least 1 query"),
        (
            [[np.nan, 0], [0.2, 0]],
            [[1, 1], [0, 1]],
            [[1, 2]] * 2,
            r"NaN in non-final tier 0 at row 0",
        ),
        (
            [[0.5, 0], [0.2, 0]],
            [[1, 1.5], [0, 1]],
            [[1, 2]] * 2,
            r"correct must lie in \[0, 1\]",
        ),
        (
            [[0.5, 0], [0.2, 0]],
            [[1, np.nan], [0, 1]],
            [[1, 2]] * 2,
            "correct contains NaN",
        ),
        ([[0.5, 0], [0.2, 0]], [[1, 1], [0, 1]], [[1, -2]] * 2, "costs must be >= 0"),
        (
            [[0.5, 0], [0.2, 0]],
            [[1, 1], [0, 1]],
            [[1, np.nan]] * 2,
            "costs contains NaN",
        ),
        (
            [["a", 0], [0.2, 0]],
            [[1, 1], [0, 1]],
            [[1, 2]] * 2,
            "scores must be a numeric",
        ),
    ],
)
def test_invalid_inputs(
    scores: object, correct: object, costs: object, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        calibrate(scores, correct, costs)  # type: ignore[arg-type]


def test_final_tier_scores_may_be_nan_and_are_ignored() -> None:
    scores, correct, costs = hand_data()
    other = scores.copy()
    other[:, 1] = 123.0
    assert calibrate(other, correct, costs) == calibrate(scores, correct, costs)


def test_evaluate_thresholds_validates_count() -> None:
    scores, correct, costs = hand_data()
    with pytest.raises(ValueError, match=r"need 1 threshold\(s\).* got 2"):
        evaluate_thresholds(scores, correct, costs, [0.5, 0.5])
    with pytest.raises(ValueError, match="must not be NaN"):
        evaluate_thresholds(scores, correct, costs, [math.nan])


def test_fractional_correctness() -> None:
    scores = [[0.9, 0.9, 0], [0.2, 0.8, 0], [0.1, 0.1, 0]]
    correct = [[0.5, 0.25, 1.0], [0.0, 0.75, 0.5], [1.0, 0.0, 0.0]]
    costs = [[1, 2, 4]] * 3
    res = calibrate(scores, correct, costs, min_quality=0.0)
    assert res.thresholds[0] == pytest.approx(0.1)  # cheapest: answer everything at 0
    # oracle takes each query's best answer, stopping as early as possible
    assert res.perfect_quality == pytest.approx((1.0 + 0.75 + 1.0) / 3)
    assert res.perfect_cost == pytest.approx((7 + 3 + 1) / 3)


# --------------------------------------------------------------------------
# RouteLLM metrics
# --------------------------------------------------------------------------


def two_model_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    correct = np.column_stack([rng.random(n) < 0.6, rng.random(n) < 0.8]).astype(float)
    costs = np.tile([1.0, 20.0], (n, 1))
    return correct, costs


def test_apgr_of_random_scores_is_one_half() -> None:
    correct, costs = two_model_data(20_000, 3)
    scores = np.column_stack(
        [np.random.default_rng(4).random(20_000), np.zeros(20_000)]
    )
    res = calibrate(scores, correct, costs)
    assert res.apgr == pytest.approx(0.5, abs=0.03)
    assert res.cpt[0.5] == pytest.approx(0.5, abs=0.05)
    assert res.cpt[0.8] == pytest.approx(0.8, abs=0.05)


def test_apgr_of_perfect_scores_is_the_maximum() -> None:
    correct, costs = two_model_data(20_000, 5)
    c0, c1 = correct[:, 0], correct[:, 1]
    gain = float(np.mean((c0 == 0) & (c1 == 1)))  # escalating helps
    loss = float(np.mean((c0 == 1) & (c1 == 0)))  # escalating hurts
    delta = gain - loss
    # Best possible curve: escalate gains first (PGR rises to gain/delta at
    # x = gain), then neutral queries (flat), then losses (falls to 1).
    top = gain / delta
    best = 0.5 * gain * top + (1 - gain - loss) * top + loss * (top + 1) / 2
    oracle = np.column_stack([c0 - c1, np.zeros_like(c0)])  # escalate lowest first
    res = calibrate(oracle, correct, costs)
    assert res.apgr == pytest.approx(best, abs=1e-9)
    assert res.cpt == pytest.approx({0.5: 0.5 * delta, 0.8: 0.8 * delta})
    # a gate that only knows whether tier 0 is right is good but not optimal,
    # random scores are worse still
    gate = np.column_stack([c0, np.zeros_like(c0)])
    rand = np.column_stack(
        [np.random.default_rng(6).random(c0.size), np.zeros_like(c0)]
    )
    apgr_gate = calibrate(gate, correct, costs).apgr
    apgr_rand = calibrate(rand, correct, costs).apgr
    assert best > apgr_gate > apgr_rand + 0.3


def test_apgr_and_cpt_helpers() -> None:
    x = [0.0, 0.25, 0.5, 1.0]
    q = [0.5, 0.8, 0.9, 1.0]  # PGR 0, 0.6, 0.8, 1
    area = 0.25 * 0.3 + 0.25 * 0.7 + 0.5 * 0.9
    assert apgr(x, q, 0.5, 1.0) == pytest.approx(area)
    assert apgr(x[::-1], q[::-1], 0.5, 1.0) == pytest.approx(area)  # order-free
    assert apgr([0.5], [0.75], 0.5, 1.0) == pytest.approx(0.5)  # end points added
    assert cpt(x, q, 0.5, 1.0, 0.5) == pytest.approx(0.25 * 0.5 / 0.6)
    assert cpt(x, q, 0.5, 1.0, 0.8) == pytest.approx(0.5)
    assert math.isnan(cpt(x, q, 0.5, 1.0, 1.5))  # never reached
    assert math.isnan(apgr(x, q, 0.7, 0.7))  # equal models: PGR undefined
    assert pgr(0.9, 0.5, 1.0) == pytest.approx(0.8)
    with pytest.raises(ValueError, match=r"strong_call_rate must lie in \[0, 1\]"):
        apgr([1.5], [0.5], 0.5, 1.0)
    with pytest.raises(ValueError, match="has 2 values but quality has 1"):
        cpt([0.0, 1.0], [0.5], 0.5, 1.0, 0.5)


def test_three_tier_apgr_uses_final_tier_share() -> None:
    scores, correct, costs = synthetic(2000, 3, 8)
    res = calibrate(scores, correct, costs)
    xs = [p.strong_call_rate for p in res.frontier]
    qs = [p.quality for p in res.frontier]
    assert res.apgr == pytest.approx(
        apgr(xs, qs, res.cheap_quality, res.premium_quality)
    )
    assert res.apgr > 0.5  # the gate scores are informative


# --------------------------------------------------------------------------
# held-out data, plotting, serialisation
# --------------------------------------------------------------------------


@pytest.mark.parametrize("k", [2, 3])
def test_fitted_thresholds_hold_on_held_out_half(k: int) -> None:
    scores, correct, costs = synthetic(40_000, k, 11, noise=0.25)
    fit, held = slice(0, 20_000), slice(20_000, None)
    target = float(correct[fit, -1].mean()) - 0.03
    res = calibrate(scores[fit], correct[fit], costs[fit], min_quality=target)
    ev = evaluate_thresholds(scores[held], correct[held], costs[held], res.thresholds)
    # standard error of a 20k-sample mean of 0/1 values near 0.9 is ~0.002
    assert ev.quality >= target - 0.01
    assert ev.quality == pytest.approx(res.quality, abs=0.01)
    assert ev.cost == pytest.approx(res.cost, rel=0.05)
    assert ev.escalation_rate == pytest.approx(res.escalation_rate, abs=0.02)


@pytest.mark.parametrize("k", [2, 3])
def test_plot_frontier_writes_png(tmp_path: Path, k: int) -> None:
    scores, correct, costs = synthetic(300, k, 12)
    res = calibrate(scores, correct, costs)
    out = plot_frontier(res, tmp_path / "frontier.png", title="test")
    data = out.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > 5_000


@pytest.fixture
def figures(monkeypatch: pytest.MonkeyPatch) -> list[Figure]:
    """Every matplotlib figure saved during the test, in order."""
    from matplotlib.figure import Figure

    saved: list[Figure] = []
    savefig = Figure.savefig

    def record(fig: Figure, *args: Any, **kwargs: Any) -> None:
        saved.append(fig)
        savefig(fig, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", record)
    return saved


def test_plot_frontier_of_the_final_tier_alone(
    tmp_path: Path, figures: list[Figure]
) -> None:
    scores, correct, costs = _cheap_tiers_never_pay(300, 5)
    alone = calibrate(scores, correct, costs, select_tiers=True)
    out = plot_frontier(alone, tmp_path / "alone.png")
    assert out.read_bytes()[:8] == PNG_SIGNATURE
    (ax,) = figures[0].axes
    legend = ax.get_legend()
    assert legend is not None
    assert [t.get_text() for t in legend.get_texts()] == [
        "final tier only",
        f"chosen: final tier alone ({alone.constraint})",
    ]
    assert ax.get_lines() == []  # no cascade frontier to draw


def test_to_dict_is_strict_json() -> None:
    res = calibrate(*hand_data(), min_quality=0.0)
    data = json.loads(json.dumps(res.to_dict(), allow_nan=False))
    assert data["thresholds"] == [0.2]
    assert data["cpt"] == {"0.5": pytest.approx(0.1875), "0.8": pytest.approx(0.675)}
    assert data["frontier"][0]["cost"] == pytest.approx(1.0)
    # never accepting tier 0 is a frontier point only with +inf threshold
    res3 = calibrate([[0.1, 0.0]] * 2, [[0, 1]] * 2, [[1, 1]] * 2)
    d3 = json.loads(json.dumps(res3.to_dict(), allow_nan=False))
    assert d3["thresholds"] == ["inf"]
    assert d3["tier_quality"] == [None, 1.0]


def test_infinite_scores_are_the_lowest_and_the_highest() -> None:
    # tier 0: -inf (a gate that raised) is wrong, +inf right, finite mixed
    scores = [[-np.inf, 0], [np.inf, 0], [0.9, 0], [0.1, 0]]
    correct = [[0, 1], [1, 1], [1, 1], [0, 1]]
    costs = [[1, 10]] * 4
    result = calibrate(scores, correct, costs, min_quality=1.0)
    # accept +inf and 0.9, escalate 0.1 and -inf
    chosen = evaluate_thresholds(scores, correct, costs, thresholds=result.thresholds)
    assert chosen.tier_rates == pytest.approx((0.5, 0.5))
    assert math.isfinite(result.thresholds[0])
    assert 0.1 < result.thresholds[0] <= 0.9
    accept_all = evaluate_thresholds(scores, correct, costs, thresholds=[-np.inf])
    assert accept_all.tier_rates == (1.0, 0.0)
    accept_none = evaluate_thresholds(scores, correct, costs, thresholds=[np.inf])
    assert accept_none.tier_rates == (0.0, 1.0)
    just_above = evaluate_thresholds(scores, correct, costs, thresholds=[0.95])
    assert just_above.tier_rates == (0.25, 0.75)  # only +inf passes


def test_nan_score_names_tier_and_row() -> None:
    scores = [[0.5, 0, 0], [0.2, np.nan, 0], [0.3, 0.1, 0]]
    with pytest.raises(ValueError, match="tier 1 at row 1"):
        calibrate(scores, [[1, 1, 1]] * 3, [[1, 2, 3]] * 3)


def _noisy_two_tier(n: int, seed: int) -> tuple[Any, Any, Any]:
    rng = np.random.default_rng(seed)
    score = rng.random(n)
    right = rng.random(n) < 0.3 + 0.6 * score
    scores = np.column_stack([score, np.zeros(n)])
    correct = np.column_stack([right, rng.random(n) < 0.95]).astype(float)
    costs = np.tile([1.0, 10.0], (n, 1))
    return scores, correct, costs


def test_confidence_bound_holds_and_costs_more() -> None:
    scores, correct, costs = _noisy_two_tier(300, 1)
    plain = calibrate(scores, correct, costs, min_quality=0.85)
    bounded = calibrate(scores, correct, costs, min_quality=0.85, confidence=0.9)
    assert plain.confidence is None
    assert plain.quality_interval is None
    assert bounded.confidence == 0.9
    assert bounded.quality_interval is not None
    assert bounded.cost_interval is not None
    low, high = bounded.quality_interval
    assert low >= 0.85 - 1e-9
    assert low <= bounded.quality <= high
    assert bounded.cost_interval[0] <= bounded.cost <= bounded.cost_interval[1]
    assert bounded.cost >= plain.cost
    assert bounded.quality >= plain.quality
    assert "at 0.9" in bounded.constraint
    # the default is unchanged by the new arguments' defaults
    same = calibrate(scores, correct, costs, min_quality=0.85, select_tiers=False)
    assert same.thresholds == plain.thresholds
    assert same.cost == plain.cost


def test_confidence_cost_ceiling_and_default_objective() -> None:
    scores, correct, costs = _noisy_two_tier(300, 2)
    capped = calibrate(scores, correct, costs, max_cost=5.0, confidence=0.9)
    assert capped.cost_interval is not None
    assert capped.cost_interval[1] <= 5.0 + 1e-9
    default = calibrate(scores, correct, costs, confidence=0.9)
    assert default.quality_interval is not None  # paired against the final tier


def test_confidence_infeasible_names_the_bound() -> None:
    scores, correct, costs = _noisy_two_tier(100, 3)
    best = correct[:, 1].mean()
    with pytest.raises(ValueError, match=r"infeasible at confidence 0\.95"):
        calibrate(scores, correct, costs, min_quality=best, confidence=0.95)
    with pytest.raises(ValueError, match="confidence must be in"):
        calibrate(scores, correct, costs, confidence=0.2)


def _three_tiers_useless_middle(n: int, seed: int) -> tuple[Any, Any, Any]:
    rng = np.random.default_rng(seed)
    s0 = rng.random(n)
    right0 = rng.random(n) < s0
    s1 = rng.random(n)  # the middle tier's gate says nothing
    right1 = rng.random(n) < 0.5
    scores = np.column_stack([s0, s1, np.zeros(n)])
    correct = np.column_stack([right0, right1, np.ones(n)]).astype(float)
    costs = np.tile([1.0, 4.0, 10.0], (n, 1))
    return scores, correct, costs


def test_select_tiers_drops_a_tier_that_does_not_pay() -> None:
    scores, correct, costs = _three_tiers_useless_middle(400, 4)
    full = calibrate(scores, correct, costs, min_quality=0.9)
    chosen = calibrate(scores, correct, costs, min_quality=0.9, select_tiers=True)
    assert chosen.tiers == (0, 2)
    assert chosen.dropped_tiers == (1,)
    assert len(chosen.thresholds) == 1
    assert chosen.cost < full.cost
    assert chosen.quality >= 0.9
    report = {r["tier"]: r for r in chosen.tier_report}
    assert report[0]["kept"]
    assert report[0]["pays"]
    assert not report[1]["kept"]
    assert not report[1]["pays"]
    assert report[1]["cost_without"] == pytest.approx(chosen.cost)
    assert report[0]["cost_without"] == pytest.approx(10.0)  # the final tier alone
    # backward elimination (forced by max_subsets) finds the same here
    greedy = calibrate(
        scores, correct, costs, min_quality=0.9, select_tiers=True, max_subsets=1
    )
    assert greedy.tiers == chosen.tiers
    assert greedy.cost == pytest.approx(chosen.cost)
    json.dumps(chosen.to_dict(), allow_nan=False)


def _cheap_tiers_never_pay(n: int, seed: int) -> tuple[Any, Any, Any]:
    """Two cheap tiers right half the time, with gates that say nothing."""
    rng = np.random.default_rng(seed)
    scores = np.column_stack([rng.random(n), rng.random(n), np.full(n, np.nan)])
    correct = np.column_stack(
        [rng.random(n) < 0.5, rng.random(n) < 0.5, np.ones(n)]
    ).astype(float)
    costs = np.tile([1.0, 4.0, 10.0], (n, 1))
    return scores, correct, costs


@pytest.mark.parametrize(
    ("target", "max_subsets"),
    [({}, 64), ({}, 1), ({"max_cost": 10.0}, 64), ({"min_quality": 0.99}, 1)],
    ids=["no-loss", "no-loss-eliminating", "max-cost", "min-quality-eliminating"],
)
def test_select_tiers_keeps_the_final_tier_alone_when_no_cheap_tier_pays(
    target: dict[str, Any], max_subsets: int
) -> None:
    scores, correct, costs = _cheap_tiers_never_pay(300, 5)
    alone = calibrate(
        scores, correct, costs, select_tiers=True, max_subsets=max_subsets, **target
    )
    assert alone.tiers == (2,)
    assert alone.dropped_tiers == (0, 1)
    assert alone.thresholds == ()
    assert alone.n_tiers == 1
    assert alone.method == "final-tier-alone"
    assert (alone.quality, alone.cost) == (1.0, 10.0)
    assert (alone.premium_quality, alone.premium_cost) == (1.0, 10.0)
    assert (alone.escalation_rate, alone.strong_call_rate) == (0.0, 1.0)
    assert (alone.tier_rates, alone.tier_quality) == ((1.0,), (1.0,))
    assert alone.frontier == [alone.point]
    assert math.isnan(alone.apgr)
    assert all(math.isnan(v) for v in alone.cpt.values())
    assert [(v["tier"], v["kept"], v["pays"]) for v in alone.tier_report] == [
        (0, False, False),
        (1, False, False),
    ]
    assert all(v["cost_without"] == 10.0 for v in alone.tier_report)
    # every cascade of these tiers is worse: dearer at no loss, or less accurate
    for v in alone.tier_report:
        assert v["cost_with"] is None or (
            (v["cost_with"], -(v["quality_with"] or 0.0)) > (10.0, -1.0)
        )
    data = json.loads(json.dumps(alone.to_dict(), allow_nan=False))
    assert (data["tiers"], data["thresholds"], data["apgr"]) == ([2], [], None)
    # held out: the kept column with no threshold is the final tier alone
    ev = evaluate_thresholds(scores[:, [2]], correct[:, [2]], costs[:, [2]], ())
    assert (ev.quality, ev.cost, ev.tier_rates) == (1.0, 10.0, (1.0,))


def test_select_tiers_final_tier_alone_with_confidence() -> None:
    scores, correct, costs = _cheap_tiers_never_pay(300, 6)
    alone = calibrate(scores, correct, costs, select_tiers=True, confidence=0.9)
    assert alone.tiers == (2,)
    assert alone.constraint == "min cost s.t. quality >= 1 at 0.9"
    assert alone.quality_interval == pytest.approx((1.0, 1.0))
    assert alone.cost_interval == pytest.approx((10.0, 10.0))


def test_select_tiers_final_tier_alone_meets_a_cap_no_cascade_can() -> None:
    # the final tier is the cheaper model: every cascade pays tier 0 first
    scores, correct, costs = [[0.9, 0], [0.2, 0]], [[1, 1], [0, 1]], [[5, 1]] * 2
    with pytest.raises(ValueError, match="max_cost=2 is infeasible"):
        calibrate(scores, correct, costs, max_cost=2.0)
    alone = calibrate(scores, correct, costs, max_cost=2.0, select_tiers=True)
    assert (alone.tiers, alone.cost, alone.quality) == ((1,), 1.0, 1.0)
    (report,) = alone.tier_report
    assert (report["kept"], report["cost_with"], report["cost_without"]) == (
        False,
        None,
        1.0,
    )
    with pytest.raises(ValueError, match="not even the final tier alone"):
        calibrate(scores, correct, costs, max_cost=0.5, select_tiers=True)


def test_evaluate_thresholds_on_the_final_tier_alone() -> None:
    ev = evaluate_thresholds([[np.nan]] * 2, [[1], [0]], [[3], [3]], (), [[9], [9]])
    assert (ev.quality, ev.cost, ev.escalation_rate, ev.tier_rates) == (
        0.5,
        3.0,  # the final tier has no gate to pay for
        0.0,
        (1.0,),
    )
    with pytest.raises(ValueError, match=r"need 0 threshold\(s\)"):
        evaluate_thresholds([[0]], [[1]], [[3]], [0.5])
    with pytest.raises(ValueError, match="need at least 1 tier, got 0"):
        evaluate_thresholds(np.zeros((1, 0)), np.zeros((1, 0)), np.zeros((1, 0)), ())


def test_plot_held_out_replays_the_fitted_frontier_on_the_held_out_data(
    tmp_path: Path, figures: list[Figure]
) -> None:
    fit, held = synthetic(60, 3, seed=1), synthetic(60, 3, seed=2)
    res = calibrate(*fit, min_quality=0.0)
    out = plot_held_out(res, *held, tmp_path / "held.png", tier_names=["a", "b"])
    assert out.read_bytes()[:8] == PNG_SIGNATURE
    (ax,) = figures[0].axes
    (line,) = ax.get_lines()
    replayed = sorted(
        (evaluate_thresholds(*held, p.thresholds) for p in res.frontier),
        key=lambda e: e.cost,
    )
    xs, ys = np.asarray(line.get_xdata()), np.asarray(line.get_ydata())
    assert xs.tolist() == pytest.approx([e.cost for e in replayed])
    assert ys.tolist() == pytest.approx([e.quality for e in replayed])
    chosen = evaluate_thresholds(*held, res.thresholds)
    star = np.asarray(ax.collections[-1].get_offsets())[0]
    assert star.tolist() == pytest.approx([chosen.cost, chosen.quality])
    legend = ax.get_legend()
    assert legend is not None
    assert [t.get_text() for t in legend.get_texts()][1:4] == [
        "a alone",
        "b alone",
        "tier 2 alone",
    ]
