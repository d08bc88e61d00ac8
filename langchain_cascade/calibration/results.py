"""The calibration results: frontier points, policy metrics, the fitted result."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from typing_extensions import TypedDict

from langchain_cascade._numeric import json_float

__all__ = ["CalibrationResult", "FrontierPoint", "PolicyEvaluation", "TierValue"]


@dataclass(frozen=True)
class FrontierPoint:
    """One threshold policy on the cost-quality plane.

    Attributes:
        thresholds: One acceptance threshold per non-final tier.
        quality: Mean correctness of the answers the policy returns.
        cost: Mean cost per query.
        escalation_rate: Share of queries that went past tier 0.
        strong_call_rate: Share of queries that reached the final tier (NaN if
            unknown).

    Example:
        >>> FrontierPoint((0.5,), 0.9, 2.0, 0.25).escalation_rate
        0.25
    """

    thresholds: tuple[float, ...]
    quality: float
    cost: float
    escalation_rate: float
    strong_call_rate: float = math.nan

    def to_dict(self) -> dict[str, Any]:
        """Returns a JSON-serialisable dict (infinite thresholds as strings)."""
        return {
            "thresholds": [json_float(t) for t in self.thresholds],
            "quality": json_float(self.quality),
            "cost": json_float(self.cost),
            "escalation_rate": json_float(self.escalation_rate),
            "strong_call_rate": json_float(self.strong_call_rate),
        }


@dataclass(frozen=True)
class PolicyEvaluation:
    """Metrics of fixed thresholds on a data set (see :func:`evaluate_thresholds`).

    Attributes:
        thresholds: The evaluated thresholds, one per non-final tier.
        quality: Mean correctness of the returned answers.
        cost: Mean cost per query.
        escalation_rate: Share of queries that went past tier 0.
        strong_call_rate: Share of queries that reached the final tier.
        tier_rates: Share of queries answered at each tier (sums to 1).
        tier_quality: Mean correctness of the answers accepted at each tier
            (NaN for a tier that answered nothing).
        n_queries: Number of queries evaluated.

    Example:
        >>> from langchain_cascade.calibration import evaluate_thresholds
        >>> ev = evaluate_thresholds([[0.9, 0], [0.1, 0]], [[1, 1], [0, 1]],
        ...                          [[1, 10], [1, 10]], thresholds=[0.5])
        >>> ev.quality, ev.cost, ev.tier_rates
        (1.0, 6.0, (0.5, 0.5))
    """

    thresholds: tuple[float, ...]
    quality: float
    cost: float
    escalation_rate: float
    strong_call_rate: float
    tier_rates: tuple[float, ...]
    tier_quality: tuple[float, ...]
    n_queries: int

    def to_frontier_point(self) -> FrontierPoint:
        """Drops the per-tier details."""
        return _frontier_point(self)

    def to_dict(self) -> dict[str, Any]:
        """Returns a JSON-serialisable dict (NaN -> None, +-inf -> strings)."""
        return {**_policy_dict(self), "n_queries": self.n_queries}


def _frontier_point(policy: PolicyEvaluation | CalibrationResult) -> FrontierPoint:
    """A policy's operating point, without its per-tier details."""
    return FrontierPoint(
        policy.thresholds,
        policy.quality,
        policy.cost,
        policy.escalation_rate,
        policy.strong_call_rate,
    )


def _policy_dict(policy: PolicyEvaluation | CalibrationResult) -> dict[str, Any]:
    """The JSON form of a policy's operating point and its per-tier rates."""
    return {
        **_frontier_point(policy).to_dict(),
        "tier_rates": [json_float(r) for r in policy.tier_rates],
        "tier_quality": [json_float(q) for q in policy.tier_quality],
    }


def _json_pair(pair: tuple[float, float] | None) -> list[float | str | None] | None:
    return None if pair is None else [json_float(v) for v in pair]


class TierValue(TypedDict):
    """Whether one tier pays for itself, at the same target, against its absence.

    ``cost_with`` and ``cost_without``: the optimum's mean cost with the tier
    and without it (the other kept tiers unchanged; ``None`` when that policy
    cannot meet the target). ``pays``: the tier lowers the cost (or, under a
    cost ceiling, raises the quality: ``quality_with`` / ``quality_without``).
    """

    tier: int
    kept: bool
    pays: bool
    cost_with: float | None
    cost_without: float | None
    quality_with: float | None
    quality_without: float | None


@dataclass(frozen=True)
class CalibrationResult:
    """Chosen thresholds, their metrics, the frontier and the baselines.

    Attributes:
        thresholds: Chosen threshold per non-final tier (accept when
            ``score >= threshold``; ``inf`` never accepts, ``-inf`` always);
            ``()`` when ``select_tiers`` kept only the final tier.
        quality: Mean correctness of the chosen policy on the calibration set.
        cost: Its mean cost per query (call costs plus gate costs).
        escalation_rate: Share of queries that went past tier 0 (0 when only
            the final tier is kept).
        strong_call_rate: Share of queries that reached the final tier.
        tier_rates: Share of queries answered at each (kept) tier.
        tier_quality: Accuracy of the answers accepted at each tier (NaN if
            the tier answered nothing).
        frontier: Non-dominated policies sorted by increasing cost (and so
            strictly increasing quality). Exact for two tiers and for the
            exhaustive grid; the Pareto set of all evaluated policies otherwise;
            the one point of the final tier when only it is kept.
        apgr: Average performance gap recovered (RouteLLM): area under PGR as
            a function of the share of queries sent to the final tier. Two
            tiers: over the full threshold sweep. More tiers: over
            ``frontier`` with ``strong_call_rate`` as x. See :func:`apgr`.
            NaN when the two ends are equally good, and so when only the final
            tier is kept.
        cpt: ``{level: share of final-tier calls needed to reach PGR >= level}``
            for the levels in :data:`CPT_LEVELS`, on the same curve (NaN
            where :attr:`apgr` is).
        cheap_quality: Quality of tier 0 alone (of the first kept tier with
            ``select_tiers``: the final tier when it is kept alone; likewise
            for ``cheap_cost`` and the perfect gate).
        premium_quality: Quality of the final tier alone.
        cheap_cost: Mean call cost of tier 0 alone (no gate).
        premium_cost: Mean call cost of the final tier alone (no gate, no
            cheaper tiers).
        perfect_quality: Quality with an oracle gate that stops at the first
            tier whose answer is as good as any later tier's (binary
            correctness: the first correct tier, or tier 0 if none is).
        perfect_cost: Mean cost of that oracle cascade, gate costs included.
        method: ``"exact-sweep"``, ``"exact-grid"``, ``"coordinate-descent"``,
            or ``"final-tier-alone"`` when ``select_tiers`` kept only the
            final tier (nothing to search).
        constraint: The constraint that was optimised, e.g.
            ``"min cost s.t. quality >= 0.9"``.
        n_queries: Number of calibration queries.
        n_tiers: Number of tiers (of the kept tiers, with ``select_tiers``).
        confidence: The confidence level of the quality (or cost) bound, or
            ``None`` when the constraint was met on the mean.
        quality_interval: With ``confidence``: the ``1 - confidence`` and
            ``confidence`` bootstrap quantiles of the chosen policy's quality
            (the lower one is the bound the constraint used).
        cost_interval: The same quantiles of its mean cost.
        tiers: The tiers the policy uses, as indices into the input columns
            (all of them unless ``select_tiers`` dropped some); ``thresholds``
            has one entry per kept non-final tier. ``(last,)`` means no cascade
            pays: call the final model alone.
        tier_report: With ``select_tiers``: for every non-final tier, whether
            it pays for itself (see :class:`TierValue`).
    """

    thresholds: tuple[float, ...]
    quality: float
    cost: float
    escalation_rate: float
    strong_call_rate: float
    tier_rates: tuple[float, ...]
    tier_quality: tuple[float, ...]
    frontier: list[FrontierPoint]
    apgr: float
    cpt: dict[float, float]
    cheap_quality: float
    premium_quality: float
    cheap_cost: float
    premium_cost: float
    perfect_quality: float
    perfect_cost: float
    method: str
    constraint: str
    n_queries: int
    n_tiers: int
    confidence: float | None = None
    quality_interval: tuple[float, float] | None = None
    cost_interval: tuple[float, float] | None = None
    tiers: tuple[int, ...] = ()
    tier_report: tuple[TierValue, ...] = ()

    @property
    def dropped_tiers(self) -> tuple[int, ...]:
        """Tiers of the input that the policy does not use."""
        if not self.tiers:
            return ()
        return tuple(i for i in range(self.tiers[-1] + 1) if i not in self.tiers)

    @property
    def point(self) -> FrontierPoint:
        """The chosen operating point as a :class:`FrontierPoint`."""
        return _frontier_point(self)

    def to_dict(self) -> dict[str, Any]:
        """Returns a JSON-serialisable dict.

        NaN becomes ``None`` and infinite thresholds become ``"inf"`` /
        ``"-inf"``, so ``json.dumps(result.to_dict(), allow_nan=False)`` works.
        CPT keys become strings such as ``"0.5"``.
        """
        return {
            **_policy_dict(self),
            "frontier": [p.to_dict() for p in self.frontier],
            "apgr": json_float(self.apgr),
            "cpt": {str(k): json_float(v) for k, v in self.cpt.items()},
            "cheap_quality": json_float(self.cheap_quality),
            "premium_quality": json_float(self.premium_quality),
            "cheap_cost": json_float(self.cheap_cost),
            "premium_cost": json_float(self.premium_cost),
            "perfect_quality": json_float(self.perfect_quality),
            "perfect_cost": json_float(self.perfect_cost),
            "method": self.method,
            "constraint": self.constraint,
            "n_queries": self.n_queries,
            "n_tiers": self.n_tiers,
            "confidence": self.confidence,
            "quality_interval": _json_pair(self.quality_interval),
            "cost_interval": _json_pair(self.cost_interval),
            "tiers": list(self.tiers),
            "tier_report": [dict(t) for t in self.tier_report],
        }


# --------------------------------------------------------------------------
# validation
