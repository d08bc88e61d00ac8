"""``calibrate``: the entry point (thresholds, confidence bounds, tier selection)."""

from __future__ import annotations

from numpy.typing import ArrayLike

from langchain_cascade.calibration.results import CalibrationResult
from langchain_cascade.calibration.search import (
    DEFAULT_MAX_GRID,
    _calibrate,
    _Settings,
)
from langchain_cascade.calibration.tiers import _select_tiers

__all__ = ["calibrate"]


def calibrate(
    scores: ArrayLike,
    correct: ArrayLike,
    costs: ArrayLike,
    *,
    min_quality: float | None = None,
    max_cost: float | None = None,
    gate_costs: ArrayLike | None = None,
    max_grid: int = DEFAULT_MAX_GRID,
    confidence: float | None = None,
    n_bootstrap: int = 1000,
    seed: int = 0,
    select_tiers: bool = False,
    max_subsets: int = 64,
) -> CalibrationResult:
    """Fits cascade thresholds on labelled data.

    Objective: with ``min_quality``, minimise mean cost subject to mean
    quality >= ``min_quality``; with ``max_cost``, maximise mean quality
    subject to mean cost <= ``max_cost``; with neither, minimise mean cost
    subject to quality >= the final tier's own quality (the cheapest cascade
    that loses nothing against always asking the final tier; always feasible).
    Exact ties are broken towards larger thresholds. See the module docstring
    for the search strategy.

    Args:
        scores: (queries, tiers) gate scores, higher = more confident. The
            final column is ignored and may be NaN; the others must not be NaN.
            ``-inf`` is the lowest score (no finite threshold accepts it, e.g.
            a gate that raised), ``+inf`` the highest.
        correct: (queries, tiers) correctness of each tier's answer in [0, 1].
        costs: (queries, tiers) non-negative cost of each tier's call.
        min_quality: Quality floor (mutually exclusive with ``max_cost``).
        max_cost: Mean cost ceiling per query.
        gate_costs: Optional (queries, tiers) non-negative cost of running each
            tier's gate; the final column is ignored.
        max_grid: Largest product of per-tier candidate counts searched
            exhaustively when there are more than two tiers.
        confidence: When given (e.g. ``0.9``), the constraint must hold at
            this confidence, not only on the mean of this sample: the quality
            floor at the lower ``1 - confidence`` bootstrap quantile over
            queries (resampled with replacement, ``n_bootstrap`` times), the
            cost ceiling at the upper ``confidence`` quantile. The policy is
            the cheapest (or best) point of the cost-quality frontier that
            satisfies the bound; without a target, the bound is on its quality
            minus the final tier's (paired on the same resamples).
            ``quality_interval`` and ``cost_interval`` report the bounds.
        n_bootstrap: Bootstrap resamples for ``confidence``.
        seed: Seed of the resamples.
        select_tiers: Also choose which tiers to use. The final tier is always
            kept (it answers whatever reaches it); any of the others may be
            dropped, all of them included. With at most ``max_subsets`` sets
            of cheap tiers every one is calibrated (exact); with more,
            backward elimination: starting from all tiers, drop the tier whose
            removal lowers the optimum most, until no removal improves it.
            The final tier alone is then weighed against the best cascade:
            when it meets the target and is cheaper (with ``max_cost``: more
            accurate; on a tie, fewer tiers win), the result is that one tier:
            ``tiers == (last,)``, ``thresholds == ()``, ``n_tiers == 1``,
            ``method == "final-tier-alone"``, its frontier is that single
            point and ``apgr`` and ``cpt`` are NaN (no cheap tier, no gap to
            recover). Apply it by calling the final model alone, without a
            cascade (``cascade.models[-1]``): no cascade of these tiers pays
            at this target. ``tiers`` names the kept columns and
            ``tier_report`` says, for each cheap tier, what the optimum costs
            with and without it ("without" the only cheap tier kept, or
            "with" a tier when none is kept, is against the final tier alone).
        max_subsets: Largest number of sets of cheap tiers (cascades) searched
            exhaustively.

    Returns:
        The chosen thresholds, their metrics, the frontier and baselines.

    Raises:
        ValueError: On malformed inputs, when both constraints are given, or
            when the constraint cannot be met (the message states the best
            achievable quality or the lowest achievable cost; with
            ``select_tiers``, that no set of tiers meets it, not even the final
            tier alone).
        TypeError: When a target or ``max_grid`` is not a number.

    Example:
        >>> res = calibrate(
        ...     scores=[[0.9, 0], [0.8, 0], [0.3, 0], [0.2, 0]],
        ...     correct=[[1, 1], [1, 1], [0, 1], [1, 1]],
        ...     costs=[[1, 10]] * 4,
        ... )
        >>> res.thresholds, res.quality, res.cost
        ((0.8,), 1.0, 6.0)
        >>> calibrate([[0.9, 0], [0.3, 0]], [[1, 1], [0, 1]], [[1, 10]] * 2,
        ...           max_cost=6.0).thresholds
        (0.9,)

        A cheap tier that is never right does not pay: the final tier alone
        (column 1) is kept, to be called without a cascade.

        >>> alone = calibrate([[0.9, 0], [0.3, 0]], [[0, 1], [0, 1]],
        ...                   [[1, 10]] * 2, select_tiers=True)
        >>> alone.tiers, alone.thresholds, alone.cost, alone.premium_cost
        ((1,), (), 10.0, 10.0)
        >>> [(v["tier"], v["kept"], v["cost_with"]) for v in alone.tier_report]
        [(0, False, 11.0)]
    """
    if select_tiers:
        return _select_tiers(
            scores,
            correct,
            costs,
            gate_costs,
            max_subsets=max_subsets,
            settings=_Settings(
                min_quality, max_cost, max_grid, confidence, n_bootstrap, seed
            ),
        )
    return _calibrate(
        scores,
        correct,
        costs,
        gate_costs,
        _Settings(min_quality, max_cost, max_grid, confidence, n_bootstrap, seed),
    )
