"""Offline calibration of cascade thresholds.

A cascade asks tier 0 (the cheapest model) first. For every tier ``i`` except the
last, a quality gate scores the answer; the answer is accepted when
``score >= thresholds[i]``, otherwise the query moves on to tier ``i + 1``. The
last tier has no gate and always answers.

Given a labelled calibration set -- for every query and tier: the gate score,
whether the tier's answer was right and what the call cost -- :func:`calibrate`
picks the thresholds that minimise mean cost subject to a quality floor, or
maximise quality subject to a cost ceiling, and reports the whole cost-quality
Pareto frontier plus the routing metrics of RouteLLM (Ong et al., 2024,
"RouteLLM: Learning to Route LLMs with Preference Data", arXiv:2406.18665):
PGR, APGR and CPT.

Cost model: a query that stops at tier ``i`` pays the call costs of tiers
``0..i`` plus, when ``gate_costs`` is given, the gate costs of the non-final
tiers it visited (``0..min(i, last - 1)``; the final tier has no gate).

Search strategy (the problem is the threshold search of FrugalGPT's LLM
cascade, Chen, Zaharia & Zou, 2023, arXiv:2305.05176: choose per-tier
acceptance thresholds to trade mean quality against mean cost):

* The candidate thresholds of a tier are its distinct observed scores plus
  ``+inf`` (never accept) and ``-inf`` (always accept). Any other threshold
  produces the same decisions on the calibration set as one of these.
* With the other thresholds fixed, every candidate of one tier is scored at
  once by a vectorised sweep: sort the queries by that tier's score, take
  prefix sums of the change in quality/cost caused by accepting each query,
  and read the sums off at every candidate. O(n log n), exact.
* Two tiers: the sweep is the whole search (exact).
* More tiers, when the product of candidate counts is at most ``max_grid``:
  exhaustive grid over all tiers but the one with the most candidates, which
  is swept (exact).
* Otherwise, three phases that all use exact single-tier sweeps:
  (1) the same grid on quantile-thinned candidates (the swept tier keeps all
  of its candidates); (2) Lagrangian relaxation -- coordinate descent on
  ``cost - lam * quality`` for a spread of prices ``lam`` taken from the
  slopes of the coarse frontier (Everett, 1963, "Generalized Lagrange
  multiplier method for solving problems of optimum allocation of
  resources"), which fills in the frontier; (3) coordinate descent on the
  constrained objective itself, restarted from the best few policies found so
  far, until no single threshold change improves it. The result is a
  coordinate-wise optimum, not a guaranteed global one; the reported frontier
  is the Pareto set of every policy evaluated.

Constraints hold on the calibration data up to a tolerance of 1e-9 (quality)
and 1e-9 relative (cost), which absorbs floating-point summation error.

Modules: :mod:`~langchain_cascade.calibration.api` (:func:`calibrate`),
:mod:`~langchain_cascade.calibration.search` (the search and
:func:`evaluate_thresholds`), :mod:`~langchain_cascade.calibration.tiers` (tier
selection), :mod:`~langchain_cascade.calibration.metrics` (PGR, APGR, CPT),
:mod:`~langchain_cascade.calibration.results` (the result types) and
:mod:`~langchain_cascade.calibration.plotting` (:func:`plot_frontier`, and
:func:`plot_held_out`: the fitted thresholds on held-out data).
"""

from langchain_cascade.calibration.api import calibrate
from langchain_cascade.calibration.metrics import CPT_LEVELS, apgr, cpt, pgr
from langchain_cascade.calibration.plotting import plot_frontier, plot_held_out
from langchain_cascade.calibration.results import (
    CalibrationResult,
    FrontierPoint,
    PolicyEvaluation,
    TierValue,
)
from langchain_cascade.calibration.search import DEFAULT_MAX_GRID, evaluate_thresholds

__all__ = [
    "CPT_LEVELS",
    "DEFAULT_MAX_GRID",
    "CalibrationResult",
    "FrontierPoint",
    "PolicyEvaluation",
    "TierValue",
    "apgr",
    "calibrate",
    "cpt",
    "evaluate_thresholds",
    "pgr",
    "plot_frontier",
    "plot_held_out",
]
