"""Tier selection: which tiers to keep, and whether each pays for itself."""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike

from langchain_cascade.calibration.metrics import CPT_LEVELS
from langchain_cascade.calibration.results import CalibrationResult, TierValue
from langchain_cascade.calibration.search import (
    _COST_RTOL,
    _QUALITY_TOL,
    FloatArray,
    _as_matrix,
    _bounded_choice,
    _calibrate,
    _constraint,
    _evaluate,
    _objective,
    _Problem,
    _Settings,
    _validate,
)

__all__: list[str] = []


def _columns(
    arrays: list[FloatArray | None], keep: list[int]
) -> list[FloatArray | None]:
    return [None if a is None else a[:, keep] for a in arrays]


def _try(
    arrays: list[FloatArray | None], keep: list[int], settings: _Settings
) -> CalibrationResult | None:
    """The optimum on the kept columns, or ``None`` when the target is infeasible."""
    s, c, k, g = _columns(arrays, keep)
    assert s is not None  # noqa: S101
    assert c is not None  # noqa: S101
    assert k is not None  # noqa: S101
    try:
        result = _calibrate(s, c, k, g, settings)
    except ValueError as exc:
        if "infeasible" in str(exc):
            return None
        raise
    return dataclasses.replace(result, tiers=tuple(keep))


def _final_alone(p: _Problem, settings: _Settings) -> CalibrationResult | None:
    """The final tier alone as a one-tier result, or ``None`` if it misses the target.

    It pays the final tier's call cost only (no cheaper call, no gate). With
    ``confidence``, the target must hold at the same bootstrap bound as for a
    cascade. There is no threshold and no cheaper tier, so the cheap baselines
    and the oracle are the final tier itself, and APGR and CPT (gaps recovered
    between a cheap tier and the final one) are NaN.
    """
    one = _Problem(
        gate=p.gate[:, :0],
        correct=p.correct[:, -1:],
        costs=p.costs[:, -1:],
        stop_cost=p.costs[:, -1:],
    )
    chosen = _evaluate(one, np.empty(0))
    q, c = chosen.quality, chosen.cost
    objective = _objective(settings, q, c if c > 0 else 1.0)
    bounds = None
    if settings.confidence is None:
        if not objective.feasible(np.array([q]), np.array([c]))[0]:
            return None
    else:
        try:  # the one policy there is: only its bound is checked
            _, bounds = _bounded_choice(
                one,
                [],
                np.zeros((1, 0), dtype=np.intp),
                np.zeros(1, dtype=np.intp),
                objective=objective,
                settings=settings,
                default=settings.no_target,
            )
        except ValueError as exc:
            if "infeasible" in str(exc):
                return None
            raise
    return CalibrationResult(
        thresholds=(),
        quality=q,
        cost=c,
        escalation_rate=chosen.escalation_rate,
        strong_call_rate=chosen.strong_call_rate,
        tier_rates=chosen.tier_rates,
        tier_quality=chosen.tier_quality,
        frontier=[chosen.to_frontier_point()],
        apgr=math.nan,
        cpt=dict.fromkeys(CPT_LEVELS, math.nan),
        cheap_quality=q,
        premium_quality=q,
        cheap_cost=c,
        premium_cost=c,
        perfect_quality=q,
        perfect_cost=c,
        method="final-tier-alone",
        constraint=_constraint(objective, settings),
        n_queries=p.n,
        n_tiers=1,
        confidence=settings.confidence,
        quality_interval=None if bounds is None else bounds[0],
        cost_interval=None if bounds is None else bounds[1],
        tiers=(p.k - 1,),
    )


def _better(
    a: CalibrationResult, b: CalibrationResult | None, *, by_quality: bool
) -> bool:
    if b is None:
        return True
    if by_quality:
        return (a.quality, -a.cost, -len(a.tiers)) > (b.quality, -b.cost, -len(b.tiers))
    return (a.cost, -a.quality, len(a.tiers)) < (b.cost, -b.quality, len(b.tiers))


def _tier_report(
    best: CalibrationResult,
    last: int,
    solve: Callable[[tuple[int, ...]], CalibrationResult | None],
    *,
    by_quality: bool,
) -> list[TierValue]:
    """For every non-final tier: the optimum with it and without it."""
    kept = tuple(t for t in best.tiers if t != last)
    report: list[TierValue] = []
    for tier in range(last):
        with_r = solve(tuple(sorted({*kept, tier})))
        without_r = solve(tuple(t for t in kept if t != tier))
        with_qc = None if with_r is None else (with_r.quality, with_r.cost)
        without = None if without_r is None else (without_r.quality, without_r.cost)
        if by_quality:
            pays = with_qc is not None and (
                without is None or with_qc[0] > without[0] + _QUALITY_TOL
            )
        else:
            pays = with_qc is not None and (
                without is None or with_qc[1] < without[1] * (1 - _COST_RTOL)
            )
        report.append(
            TierValue(
                tier=tier,
                kept=tier in kept,
                pays=bool(pays),
                cost_with=None if with_qc is None else with_qc[1],
                cost_without=None if without is None else without[1],
                quality_with=None if with_qc is None else with_qc[0],
                quality_without=None if without is None else without[0],
            )
        )
    return report


def _select_tiers(
    scores: ArrayLike,
    correct: ArrayLike,
    costs: ArrayLike,
    gate_costs: ArrayLike | None,
    *,
    max_subsets: int,
    settings: _Settings,
) -> CalibrationResult:
    """The best cascade of the allowed tier sets, or the final tier alone.

    Calibrates every set of cheap tiers (or eliminates backwards), weighs the
    final tier alone against the best cascade by :func:`_better`, and reports
    what each cheap tier is worth.
    """
    p = _validate(scores, correct, costs, gate_costs)  # checks the whole input
    arrays: list[FloatArray | None] = [
        _as_matrix("scores", scores),
        p.correct,
        p.costs,
        None if gate_costs is None else _as_matrix("gate_costs", gate_costs),
    ]
    last = p.k - 1
    by_quality = settings.max_cost is not None
    cache: dict[tuple[int, ...], CalibrationResult | None] = {}

    def solve(cheap: tuple[int, ...]) -> CalibrationResult | None:
        """The optimum with these cheap tiers; ``()`` is the final tier alone."""
        if cheap not in cache:
            cache[cheap] = (
                _try(arrays, [*cheap, last], settings)
                if cheap
                else _final_alone(p, settings)
            )
        return cache[cheap]

    subsets = 2**last - 1
    best: CalibrationResult | None = None
    if subsets <= max_subsets:
        for size in range(1, last + 1):
            for cheap in itertools.combinations(range(last), size):
                result = solve(cheap)
                if result is not None and _better(result, best, by_quality=by_quality):
                    best = result
    else:
        current = tuple(range(last))
        best = solve(current)
        while len(current) > 1:
            trials = [tuple(t for t in current if t != drop) for drop in current]
            found = [(r, t) for t in trials if (r := solve(t)) is not None]
            improving = [
                (r, t) for r, t in found if _better(r, best, by_quality=by_quality)
            ]
            if not improving:
                break
            best, current = min(
                improving,
                key=lambda rt: (
                    (-rt[0].quality, rt[0].cost)
                    if by_quality
                    else (rt[0].cost, -rt[0].quality)
                ),
            )
    alone = solve(())
    if alone is not None and _better(alone, best, by_quality=by_quality):
        best = alone
    if best is None:
        raise ValueError(
            f"no set of tiers meets the target "
            f"({'max_cost' if by_quality else 'min_quality'}), "
            "not even the final tier alone"
        )
    report = _tier_report(best, last, solve, by_quality=by_quality)
    return dataclasses.replace(best, tier_report=tuple(report))
