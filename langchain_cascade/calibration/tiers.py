"""Tier selection: which tiers to keep, and whether each pays for itself."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable

from numpy.typing import ArrayLike

from langchain_cascade.calibration.results import CalibrationResult, TierValue
from langchain_cascade.calibration.search import (
    _COST_RTOL,
    _QUALITY_TOL,
    FloatArray,
    _as_matrix,
    _calibrate,
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


def _final_alone(
    arrays: list[FloatArray | None], settings: _Settings
) -> tuple[float, float] | None:
    """Quality and cost of always asking the final tier, if it meets the target."""
    _, correct, costs, _ = arrays
    assert correct is not None  # noqa: S101
    assert costs is not None  # noqa: S101
    q, c = float(correct[:, -1].mean()), float(costs[:, -1].mean())
    if settings.min_quality is not None and q < settings.min_quality - _QUALITY_TOL:
        return None
    if settings.max_cost is not None and c > settings.max_cost * (1 + _COST_RTOL):
        return None
    return q, c


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
    alone: tuple[float, float] | None,
    *,
    by_quality: bool,
) -> list[TierValue]:
    """For every non-final tier: the optimum with it and without it."""
    kept = tuple(t for t in best.tiers if t != last)
    report: list[TierValue] = []
    for tier in range(last):
        with_set = tuple(sorted({*kept, tier}))
        without_set = tuple(t for t in kept if t != tier)
        with_r = solve(with_set)
        if without_set:
            without_r = solve(without_set)
            without = None if without_r is None else (without_r.quality, without_r.cost)
        else:
            without = alone
        with_qc = None if with_r is None else (with_r.quality, with_r.cost)
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
    """Calibrate every allowed tier subset (or eliminate backwards) and report."""
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
        if cheap not in cache:
            cache[cheap] = _try(arrays, [*cheap, last], settings) if cheap else None
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
    if best is None:
        raise ValueError(
            f"no subset of tiers meets the target "
            f"({'max_cost' if by_quality else 'min_quality'}); "
            "the final tier alone is the only option"
        )
    report = _tier_report(
        best, last, solve, _final_alone(arrays, settings), by_quality=by_quality
    )
    return dataclasses.replace(best, tier_report=tuple(report))
