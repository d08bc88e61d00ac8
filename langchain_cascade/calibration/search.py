"""The threshold search: validation, exact sweeps, grid, Lagrangian and coordinate descent.

See the package docstring for the strategy.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np
from numpy.typing import ArrayLike, NDArray

from langchain_cascade.calibration.metrics import CPT_LEVELS, apgr, cpt
from langchain_cascade.calibration.results import (
    CalibrationResult,
    FrontierPoint,
    PolicyEvaluation,
)

__all__ = ["DEFAULT_MAX_GRID", "evaluate_thresholds"]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]

DEFAULT_MAX_GRID = 200_000
"""Largest number of threshold combinations searched exhaustively."""

_QUALITY_TOL = 1e-9
_COST_RTOL = 1e-9
_DECIMALS = 12  # rounding used to treat float sums of the same policy as equal
_MAX_PASSES = 50
_N_RESTARTS = 10
_N_LAMBDAS = 12
_THIN_MIN = 16
_THIN_MAX = 256


# --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Problem:
    """Validated data. ``gate`` holds the scores of the non-final tiers."""

    gate: FloatArray  # (n, k - 1)
    correct: FloatArray  # (n, k)
    costs: FloatArray  # (n, k): call costs only
    stop_cost: FloatArray  # (n, k): total cost of a query that stops at tier i

    @property
    def n(self) -> int:
        return int(self.correct.shape[0])

    @property
    def k(self) -> int:
        return int(self.correct.shape[1])


def _as_matrix(name: str, value: ArrayLike) -> FloatArray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"{name} must be a numeric array-like of shape (queries, tiers)"
        ) from exc
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D with shape (queries, tiers), got shape {arr.shape}"
        )
    return arr


def _bad_columns(mask: NDArray[np.bool_]) -> list[int]:
    return [int(j) for j in np.flatnonzero(mask.any(axis=0))]


def _check_finite_nonnegative(name: str, arr: FloatArray, where: str = "") -> None:
    if not np.isfinite(arr).all():
        raise ValueError(
            f"{name} contains NaN or inf in{where} tier(s) "
            f"{_bad_columns(~np.isfinite(arr))}"
        )
    if (arr < 0).any():
        raise ValueError(
            f"{name} must be >= 0; tier(s) {_bad_columns(arr < 0)} have negative values"
        )


def _check_scores_and_correct(gate: FloatArray, c: FloatArray) -> None:
    if np.isnan(gate).any():
        rows, tiers = np.nonzero(np.isnan(gate))
        more = f" (and {rows.size - 1} more)" if rows.size > 1 else ""
        raise ValueError(
            f"scores contains NaN in non-final tier {int(tiers[0])} at row "
            f"{int(rows[0])}{more}, non-final tier(s) {_bad_columns(np.isnan(gate))}; "
            "only the final tier (which has no gate) may be NaN (use -inf for "
            "'never good enough')"
        )
    if not np.isfinite(c).all():
        raise ValueError(
            f"correct contains NaN or inf in tier(s) {_bad_columns(~np.isfinite(c))}"
        )
    if ((c < 0) | (c > 1)).any():
        raise ValueError(
            f"correct must lie in [0, 1]; tier(s) {_bad_columns((c < 0) | (c > 1))} "
            f"contain values in [{c.min():g}, {c.max():g}]"
        )


def _validate(
    scores: ArrayLike,
    correct: ArrayLike,
    costs: ArrayLike,
    gate_costs: ArrayLike | None,
    *,
    min_tiers: int = 2,
) -> _Problem:
    """The checked problem; ``min_tiers=1`` admits the final tier alone."""
    s = _as_matrix("scores", scores)
    named = [("correct", _as_matrix("correct", correct))]
    named.append(("costs", _as_matrix("costs", costs)))
    if gate_costs is not None:
        named.append(("gate_costs", _as_matrix("gate_costs", gate_costs)))
    for name, arr in named:
        if arr.shape != s.shape:
            raise ValueError(
                f"scores has shape {s.shape} but {name} has shape {arr.shape}"
            )
    n, k = s.shape
    if k < min_tiers:
        raise ValueError(
            f"need at least {min_tiers} tier{'s' if min_tiers > 1 else ''}, got {k}"
        )
    if n < 1:
        raise ValueError("need at least 1 query, got 0")
    c, model_costs = named[0][1], named[1][1]
    _check_scores_and_correct(s[:, :-1], c)
    _check_finite_nonnegative("costs", model_costs)

    stop_cost = np.cumsum(model_costs, axis=1)
    if gate_costs is not None:
        gg = named[2][1][:, :-1]  # the final tier has no gate: its column is ignored
        _check_finite_nonnegative("gate_costs", gg, " non-final")
        if k > 1:  # the final tier alone has no gate to pay for
            gate_cum = np.cumsum(gg, axis=1)
            stop_cost[:, :-1] += gate_cum
            stop_cost[:, -1] += gate_cum[:, -1]
    return _Problem(
        gate=_finite_scores(s[:, :-1]),
        correct=c,
        costs=model_costs,
        stop_cost=stop_cost,
    )


def _finite_scores(gate: FloatArray) -> FloatArray:
    """Infinite scores as finite ones just beyond the observed finite range.

    ``-inf`` is the lowest score and ``+inf`` the highest: every finite
    threshold rejects the first and accepts the second, exactly as a gate
    comparing ``score >= threshold`` would, while the thresholds ``-inf``
    (accept all) and ``+inf`` (accept none) keep their meaning.
    """
    out = np.array(gate, dtype=np.float64, order="C")
    infinite = np.isinf(out)
    if infinite.any():
        finite = out[~infinite]
        low, high = (
            (float(finite.min()), float(finite.max())) if finite.size else (0, 1)
        )
        out[out == -np.inf] = low - 1.0
        out[out == np.inf] = high + 1.0
    return out


def _validate_target(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    out = float(value)
    if not math.isfinite(out):
        raise ValueError(f"{name} must be finite, got {out}")
    return out


# --------------------------------------------------------------------------
# evaluation and sweeps
# --------------------------------------------------------------------------


def _stop_tiers(gate: FloatArray, thresholds: FloatArray) -> IntArray:
    """Index of the tier that answers each query."""
    n, m = gate.shape
    accept = np.ones((n, m + 1), dtype=bool)
    accept[:, :m] = gate >= thresholds
    stop: IntArray = np.argmax(accept, axis=1)
    return stop


def _evaluate(p: _Problem, thresholds: FloatArray) -> PolicyEvaluation:
    stop = _stop_tiers(p.gate, thresholds)
    rows = np.arange(p.n)
    answered = p.correct[rows, stop]
    counts = np.bincount(stop, minlength=p.k)
    sums = np.bincount(stop, weights=answered, minlength=p.k)
    tier_quality = tuple(
        float(sums[i] / counts[i]) if counts[i] else math.nan for i in range(p.k)
    )
    return PolicyEvaluation(
        thresholds=tuple(float(t) for t in thresholds),
        quality=float(answered.mean()),
        cost=float(p.stop_cost[rows, stop].mean()),
        escalation_rate=float(np.mean(stop > 0)),
        strong_call_rate=float(np.mean(stop == p.k - 1)),
        tier_rates=tuple(float(x) for x in counts / p.n),
        tier_quality=tier_quality,
        n_queries=p.n,
    )


@dataclass(frozen=True)
class _Tier:
    """Sweep index of one gated tier."""

    candidates: FloatArray  # ascending: -inf, distinct observed scores, +inf
    order: IntArray  # queries by descending score
    accepted: IntArray  # accepted[j]: number of queries with score >= candidates[j]

    @classmethod
    def build(cls, score: FloatArray) -> _Tier:
        asc = np.sort(score)
        cand = np.concatenate(([-np.inf], np.unique(asc), [np.inf]))
        accepted = score.size - np.searchsorted(asc, cand, side="left")
        order = np.argsort(-score, kind="stable")
        return cls(candidates=cand, order=order, accepted=accepted.astype(np.intp))

    @property
    def size(self) -> int:
        return int(self.candidates.size)


@dataclass
class _Pool:
    """Policies evaluated so far: candidate indices and mean metrics.

    With ``pareto_only``, each added block keeps only its own non-dominated
    points: a point dominated inside its block is dominated overall, and the
    objective's optimum is always non-dominated, so nothing needed is lost.
    """

    cost_scale: float
    pareto_only: bool
    idx: list[IntArray] = field(default_factory=list)
    metrics: list[FloatArray] = field(default_factory=list)

    def add(self, idx: IntArray, metrics: FloatArray) -> None:
        if self.pareto_only:
            keep = _pareto(idx, metrics[0], metrics[1], self.cost_scale)
            idx, metrics = idx[keep], metrics[:, keep]
        self.idx.append(idx)
        self.metrics.append(metrics)

    def arrays(self) -> tuple[IntArray, FloatArray, FloatArray, FloatArray, FloatArray]:
        """Indices, quality, cost, escalation rate and final-tier rate."""
        m = np.concatenate(self.metrics, axis=1)
        return np.concatenate(self.idx), m[0], m[1], m[2], m[3]


def _thresholds(tiers: list[_Tier], idx: IntArray) -> FloatArray:
    return np.array([t.candidates[j] for t, j in zip(tiers, idx, strict=True)])


def _sweep(p: _Problem, tiers: list[_Tier], idx: IntArray, i: int) -> FloatArray:
    """Metrics of every candidate of tier ``i``, the other thresholds fixed.

    Returns an array of shape (4, candidates of tier i): mean quality, mean
    cost, escalation rate and final-tier rate.
    """
    thr = _thresholds(tiers, idx)
    thr[i] = np.inf
    stop = _stop_tiers(p.gate, thr)  # outcome when tier i rejects everything
    rows = np.arange(p.n)
    q_rej = p.correct[rows, stop]
    c_rej = p.stop_cost[rows, stop]
    strong = stop == p.k - 1
    reach = stop > i
    base = np.array([q_rej.sum(), c_rej.sum(), np.sum(stop > 0), strong.sum()])
    delta = np.zeros((4, p.n))  # change when tier i accepts the query instead
    delta[0] = np.where(reach, p.correct[:, i] - q_rej, 0.0)
    delta[1] = np.where(reach, p.stop_cost[:, i] - c_rej, 0.0)
    if i == 0:
        delta[2] = -1.0  # every query reaches tier 0
    delta[3] = -(reach & strong).astype(np.float64)
    tier = tiers[i]
    prefix = np.zeros((4, p.n + 1))
    np.cumsum(delta[:, tier.order], axis=1, out=prefix[:, 1:])
    out: FloatArray = (base[:, None] + prefix[:, tier.accepted]) / p.n
    return out


def _sweep_block(
    p: _Problem, tiers: list[_Tier], idx: IntArray, i: int, pool: _Pool
) -> tuple[IntArray, FloatArray]:
    metrics = _sweep(p, tiers, idx, i)
    block = np.tile(idx, (tiers[i].size, 1))
    block[:, i] = np.arange(tiers[i].size)
    pool.add(block, metrics)
    return block, metrics


# --------------------------------------------------------------------------
# objective
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Objective:
    kind: Literal["min_quality", "max_cost"]
    target: float
    cost_scale: float

    def describe(self) -> str:
        if self.kind == "min_quality":
            return f"min cost s.t. quality >= {self.target:g}"
        return f"max quality s.t. cost <= {self.target:g}"

    def feasible(self, q: FloatArray, c: FloatArray) -> NDArray[np.bool_]:
        if self.kind == "min_quality":
            return np.asarray(q >= self.target - _QUALITY_TOL)
        return np.asarray(c <= self.target + _COST_RTOL * self.cost_scale)

    def keys(self, q: FloatArray, c: FloatArray) -> list[FloatArray]:
        """Sort keys, most significant first; lower is better.

        Feasible points come first. Among them: lowest cost then highest
        quality (min_quality) or highest quality then lowest cost (max_cost).
        Infeasible points are ordered by how close they come to the target.
        """
        qr = np.round(q, _DECIMALS)
        cr = np.round(c / self.cost_scale, _DECIMALS)
        ok = self.feasible(q, c)
        if self.kind == "min_quality":
            k2, k3 = np.where(ok, cr, -qr), np.where(ok, -qr, cr)
        else:
            k2, k3 = np.where(ok, -qr, cr), np.where(ok, cr, -qr)
        return [(~ok).astype(np.float64), k2, k3]

    def order(self, idx: IntArray, q: FloatArray, c: FloatArray) -> IntArray:
        """Ranks points best first.

        Exact ties are broken towards larger thresholds, tier 0 first (the
        more conservative policy on unseen scores).
        """
        ties = [-idx[:, j] for j in range(idx.shape[1] - 1, -1, -1)]
        return np.lexsort([*ties, *reversed(self.keys(q, c))])

    def key(self, q: float, c: float) -> tuple[float, ...]:
        ks = self.keys(np.array([q]), np.array([c]))
        return tuple(float(x[0]) for x in ks)


# --------------------------------------------------------------------------
# search
# --------------------------------------------------------------------------


def _grid(
    p: _Problem,
    tiers: list[_Tier],
    inner: int,
    choices: list[IntArray],
    pool: _Pool,
) -> None:
    """Enumerates ``choices`` for every tier but ``inner``, sweeping ``inner``."""
    outer = [j for j in range(len(tiers)) if j != inner]
    idx = np.zeros(len(tiers), dtype=np.intp)
    for combo in itertools.product(*(choices[j] for j in outer)):
        idx[outer] = combo
        _sweep_block(p, tiers, idx, inner, pool)


def _thin(tier: _Tier, score: FloatArray, count: int) -> IntArray:
    """At most ``count`` candidate indices: +-inf plus score quantiles."""
    if tier.size <= count:
        return np.arange(tier.size)
    levels = (np.arange(count - 2) + 0.5) / (count - 2)
    values = np.unique(np.quantile(score, levels, method="inverted_cdf"))
    inside = np.searchsorted(tier.candidates, values)
    return np.unique(np.concatenate(([0], inside, [tier.size - 1]))).astype(np.intp)


class _Ranker(Protocol):
    def order(self, idx: IntArray, q: FloatArray, c: FloatArray) -> IntArray: ...

    def key(self, q: float, c: float) -> tuple[float, ...]: ...


@dataclass(frozen=True)
class _Lagrangian:
    """Scalarised objective ``cost - lam * quality`` (lower is better)."""

    lam: float
    cost_scale: float

    def _keys(self, q: FloatArray, c: FloatArray) -> FloatArray:
        out: FloatArray = np.round((c - self.lam * q) / self.cost_scale, _DECIMALS)
        return out

    def order(self, idx: IntArray, q: FloatArray, c: FloatArray) -> IntArray:
        ties = [-idx[:, j] for j in range(idx.shape[1] - 1, -1, -1)]
        return np.lexsort([*ties, self._keys(q, c)])

    def key(self, q: float, c: float) -> tuple[float, ...]:
        return (float(self._keys(np.array([q]), np.array([c]))[0]),)


def _coordinate_descent(
    p: _Problem,
    tiers: list[_Tier],
    start: IntArray,
    ranker: _Ranker,
    pool: _Pool,
) -> None:
    """Cycles over the tiers, moving one threshold at a time to its best value.

    Every step is an exact sweep over all candidates of one tier, so the loop
    stops at a coordinate-wise optimum (no single threshold change helps).
    """
    cur = start.copy()
    cur_key: tuple[float, ...] | None = None
    for _ in range(_MAX_PASSES):
        improved = False
        for i in range(len(tiers)):
            block, m = _sweep_block(p, tiers, cur, i, pool)
            if cur_key is None:
                j0 = int(cur[i])
                cur_key = ranker.key(float(m[0, j0]), float(m[1, j0]))
            best = int(ranker.order(block, m[0], m[1])[0])
            best_key = ranker.key(float(m[0, best]), float(m[1, best]))
            if best_key < cur_key:
                cur[i] = best
                cur_key = best_key
                improved = True
        if not improved:
            return


def _lambdas(q: FloatArray, c: FloatArray, scale: float, count: int) -> FloatArray:
    """Quality prices spanning the slopes of a (coarse) frontier."""
    rows = _pareto(np.zeros((q.size, 1), dtype=np.intp), q, c, scale)
    dq, dc = np.diff(q[rows]), np.diff(c[rows])
    slopes = dc[dq > 0] / dq[dq > 0]
    if slopes.size == 0:
        return np.array([scale])
    levels = np.linspace(0.0, 1.0, min(count, slopes.size))
    out: FloatArray = np.unique(np.quantile(slopes, levels))
    return out


def _best_distinct(
    ranker: _Ranker, idx: IntArray, q: FloatArray, c: FloatArray, count: int
) -> list[IntArray]:
    starts: list[IntArray] = []
    seen: set[tuple[int, ...]] = set()
    for row in ranker.order(idx, q, c):
        key = tuple(int(v) for v in idx[row])
        if key not in seen:
            seen.add(key)
            starts.append(idx[row])
            if len(starts) == count:
                break
    return starts


def _search(
    p: _Problem, tiers: list[_Tier], objective: _Objective, max_grid: int
) -> tuple[_Pool, str]:
    # two tiers: keep the whole sweep (APGR is computed over it)
    pool = _Pool(objective.cost_scale, pareto_only=len(tiers) > 1)
    sizes = [t.size for t in tiers]
    inner = int(np.argmax(sizes))
    full = [np.arange(s) for s in sizes]
    if len(tiers) == 1:
        _grid(p, tiers, 0, full, pool)
        return pool, "exact-sweep"
    if math.prod(sizes) <= max_grid:
        _grid(p, tiers, inner, full, pool)
        return pool, "exact-grid"

    # 1. Exhaustive grid on quantile-thinned candidates (inner tier swept in full).
    budget = min(_THIN_MAX, max(_THIN_MIN, max_grid // sizes[inner]))
    per_tier = max(3, int(budget ** (1.0 / (len(tiers) - 1))))
    thinned = [
        full[j] if j == inner else _thin(tiers[j], p.gate[:, j], per_tier)
        for j in range(len(tiers))
    ]
    _grid(p, tiers, inner, thinned, pool)
    idx, q, c, _, _ = pool.arrays()
    # 2. Lagrangian coordinate descent (min cost - lam * quality) for a spread
    #    of quality prices, each from its best grid point: fills in the frontier.
    for lam in _lambdas(q, c, objective.cost_scale, _N_LAMBDAS):
        ranker = _Lagrangian(float(lam), objective.cost_scale)
        for start in _best_distinct(ranker, idx, q, c, 1):
            _coordinate_descent(p, tiers, start, ranker, pool)
    # 3. Constrained coordinate descent from the best distinct points so far.
    idx, q, c, _, _ = pool.arrays()
    for start in _best_distinct(objective, idx, q, c, _N_RESTARTS):
        _coordinate_descent(p, tiers, start, objective, pool)
    return pool, "coordinate-descent"


def _pareto(idx: IntArray, q: FloatArray, c: FloatArray, scale: float) -> IntArray:
    """Rows of the non-dominated points, by increasing cost."""
    qr = np.round(q, _DECIMALS)
    cr = np.round(c / scale, _DECIMALS)
    ties = [-idx[:, j] for j in range(idx.shape[1] - 1, -1, -1)]
    order = np.lexsort([*ties, -qr, cr])
    qs = qr[order]
    best_before = np.maximum.accumulate(np.concatenate(([-np.inf], qs[:-1])))
    out: IntArray = order[qs > best_before]
    return out


# --------------------------------------------------------------------------
# confidence bounds and tier selection
# --------------------------------------------------------------------------


def _resample_weights(n: int, count: int, seed: int) -> FloatArray:
    """Bootstrap weights over queries: ``(count, n)`` rows that sum to 1."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 10:
        raise ValueError(f"n_bootstrap must be an int >= 10, got {count!r}")
    rng = np.random.default_rng(seed)
    weights: FloatArray = rng.multinomial(n, np.full(n, 1.0 / n), size=count) / n
    return weights


def _outcomes(p: _Problem, thresholds: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Per-query correctness and cost of one policy."""
    stop = _stop_tiers(p.gate, thresholds)
    rows = np.arange(p.n)
    return p.correct[rows, stop], p.stop_cost[rows, stop]


def _bounded_choice(
    p: _Problem,
    tiers: list[_Tier],
    idx: IntArray,
    rows: IntArray,
    *,
    objective: _Objective,
    settings: _Settings,
    default: bool,
) -> tuple[int, tuple[tuple[float, float], tuple[float, float]]]:
    """The best frontier policy whose bootstrap bound meets the constraint.

    Returns its pool row and its quality and cost intervals (the
    ``1 - confidence`` and ``confidence`` quantiles).
    """
    level = _validate_target("confidence", settings.confidence)
    if not 0.5 <= level < 1.0:
        raise ValueError(f"confidence must be in [0.5, 1), got {level}")
    never = np.full(p.k - 1, np.inf)  # always ask the final tier
    candidates = [_thresholds(tiers, idx[r]) for r in rows] + [never]
    outcomes = [_outcomes(p, t) for t in candidates]
    a = np.stack([o[0] for o in outcomes])  # (policies, queries)
    c = np.stack([o[1] for o in outcomes])
    w = _resample_weights(p.n, settings.n_bootstrap, settings.seed)
    qb, cb = w @ a.T, w @ c.T  # (resamples, policies)
    q_lo = np.quantile(qb, 1.0 - level, axis=0)
    q_hi = np.quantile(qb, level, axis=0)
    c_lo = np.quantile(cb, 1.0 - level, axis=0)
    c_hi = np.quantile(cb, level, axis=0)
    q_mean, c_mean = a.mean(axis=1), c.mean(axis=1)
    if objective.kind == "max_cost":
        ok = c_hi <= objective.target + _COST_RTOL * objective.cost_scale
        order = np.lexsort([c_mean, -q_mean])
        what = f"the upper {level:g} bound of the cost"
    else:
        if default:  # paired: no worse than the final tier alone
            ok = np.quantile(qb - qb[:, -1:], 1.0 - level, axis=0) >= -_QUALITY_TOL
        else:
            ok = q_lo >= objective.target - _QUALITY_TOL
        order = np.lexsort([-q_mean, c_mean])
        what = f"the lower {level:g} bound of the quality"
    feasible = [int(j) for j in order if ok[j]]
    if not feasible:
        best_bound = float(q_lo.max()) if objective.kind != "max_cost" else None
        detail = (
            f"the best lower bound is {best_bound:.6g}"
            if best_bound is not None
            else f"the lowest upper bound is {float(c_hi.min()):.6g}"
        )
        raise ValueError(
            f"{objective.describe()} is infeasible at confidence {level:g}: "
            f"no policy's {what} meets it ({detail})"
        )
    j = feasible[0]
    if j == len(rows):  # the final tier alone: find it in the pool
        at_never = np.flatnonzero((idx == [t.size - 1 for t in tiers]).all(axis=1))
        row = int(at_never[0])
    else:
        row = int(rows[j])
    return row, ((float(q_lo[j]), float(q_hi[j])), (float(c_lo[j]), float(c_hi[j])))


@dataclass(frozen=True)
class _Settings:
    min_quality: float | None
    max_cost: float | None
    max_grid: int
    confidence: float | None
    n_bootstrap: int
    seed: int

    @property
    def no_target(self) -> bool:
        """Neither target given: keep the final tier's own quality."""
        return self.min_quality is None and self.max_cost is None


def _objective(
    settings: _Settings, premium_quality: float, cost_scale: float
) -> _Objective:
    """The constraint to optimise (without a target: ``premium_quality``)."""
    min_quality, max_cost = settings.min_quality, settings.max_cost
    if min_quality is not None and max_cost is not None:
        raise ValueError(
            "give at most one of min_quality and max_cost, not both "
            f"(got min_quality={min_quality!r}, max_cost={max_cost!r})"
        )
    if max_cost is not None:
        return _Objective(
            "max_cost", _validate_target("max_cost", max_cost), cost_scale
        )
    if min_quality is not None:
        return _Objective(
            "min_quality", _validate_target("min_quality", min_quality), cost_scale
        )
    return _Objective("min_quality", premium_quality, cost_scale)


def _constraint(objective: _Objective, settings: _Settings) -> str:
    """The ``constraint`` text of a result, e.g. ``"min cost s.t. quality >= 0.9"``."""
    at = "" if settings.confidence is None else f" at {settings.confidence:g}"
    return objective.describe() + at


def _calibrate(
    scores: ArrayLike,
    correct: ArrayLike,
    costs: ArrayLike,
    gate_costs: ArrayLike | None,
    settings: _Settings,
) -> CalibrationResult:
    max_grid = settings.max_grid
    p = _validate(scores, correct, costs, gate_costs)
    cheap_quality = float(p.correct[:, 0].mean())
    premium_quality = float(p.correct[:, -1].mean())
    cost_scale = float(p.stop_cost[:, -1].mean())
    if not cost_scale > 0:
        cost_scale = 1.0
    objective = _objective(settings, premium_quality, cost_scale)
    if isinstance(max_grid, bool) or not isinstance(max_grid, int):
        raise TypeError(f"max_grid must be an int, got {max_grid!r}")
    if max_grid < 1:
        raise ValueError(f"max_grid must be >= 1, got {max_grid}")

    tiers = [_Tier.build(p.gate[:, i]) for i in range(p.k - 1)]
    pool, method = _search(p, tiers, objective, max_grid)
    idx, q, c, _e, s = pool.arrays()
    rows = _pareto(idx, q, c, cost_scale)
    best, bounds = (
        _bounded_choice(
            p,
            tiers,
            idx,
            rows,
            objective=objective,
            settings=settings,
            default=settings.no_target,
        )
        if settings.confidence is not None
        else (int(objective.order(idx, q, c)[0]), None)
    )
    if (
        bounds is None
        and not objective.feasible(q[best : best + 1], c[best : best + 1])[0]
    ):
        if objective.kind == "max_cost":
            cheapest = float(p.stop_cost[:, 0].mean())
            raise ValueError(
                f"max_cost={objective.target:g} is infeasible: the cheapest policy "
                f"(always accept tier 0) costs {cheapest:.6g} per query"
            )
        found = "" if method.startswith("exact") else " found"
        raise ValueError(
            f"min_quality={objective.target:g} is infeasible: the best achievable "
            f"quality{found} is {q[best]:.6g} (at mean cost {c[best]:.6g})"
        )

    chosen = _evaluate(p, _thresholds(tiers, idx[best]))
    frontier = [
        FrontierPoint(
            thresholds=tuple(float(t) for t in _thresholds(tiers, idx[r])),
            quality=float(q[r]),
            cost=float(c[r]),
            escalation_rate=float(_e[r]),
            strong_call_rate=float(s[r]),
        )
        for r in rows
    ]
    if p.k == 2:
        curve_x, curve_q = s, q  # the full threshold sweep
    else:
        curve_x, curve_q = s[rows], q[rows]
    apgr_value = apgr(curve_x, curve_q, cheap_quality, premium_quality)
    cpt_values = {
        level: cpt(curve_x, curve_q, cheap_quality, premium_quality, level)
        for level in CPT_LEVELS
    }

    suffix_best = np.maximum.accumulate(p.correct[:, ::-1], axis=1)[:, ::-1]
    oracle_stop = np.argmax(p.correct >= suffix_best, axis=1)
    all_rows = np.arange(p.n)

    return CalibrationResult(
        thresholds=chosen.thresholds,
        quality=chosen.quality,
        cost=chosen.cost,
        escalation_rate=chosen.escalation_rate,
        strong_call_rate=chosen.strong_call_rate,
        tier_rates=chosen.tier_rates,
        tier_quality=chosen.tier_quality,
        frontier=frontier,
        apgr=apgr_value,
        cpt=cpt_values,
        cheap_quality=cheap_quality,
        premium_quality=premium_quality,
        cheap_cost=float(p.costs[:, 0].mean()),
        premium_cost=float(p.costs[:, -1].mean()),
        perfect_quality=float(p.correct[all_rows, oracle_stop].mean()),
        perfect_cost=float(p.stop_cost[all_rows, oracle_stop].mean()),
        method=method,
        constraint=_constraint(objective, settings),
        n_queries=p.n,
        n_tiers=p.k,
        confidence=settings.confidence,
        quality_interval=None if bounds is None else bounds[0],
        cost_interval=None if bounds is None else bounds[1],
        tiers=tuple(range(p.k)),
    )


def evaluate_thresholds(
    scores: ArrayLike,
    correct: ArrayLike,
    costs: ArrayLike,
    thresholds: ArrayLike,
    gate_costs: ArrayLike | None = None,
) -> PolicyEvaluation:
    """Scores fixed thresholds on (typically held-out) data.

    Uses the same policy and cost model as :func:`calibrate`. One column with
    ``thresholds=()`` scores the final tier alone (what ``calibrate(...,
    select_tiers=True)`` returns when no cheap tier pays): pass the columns of
    the result's ``tiers``.

    Args:
        scores: (queries, tiers) gate scores; the final column is ignored.
        correct: (queries, tiers) correctness in [0, 1].
        costs: (queries, tiers) non-negative call costs.
        thresholds: One threshold per non-final tier (``+-inf`` allowed; none
            for a single tier).
        gate_costs: Optional (queries, tiers) gate costs; final column ignored.

    Returns:
        Quality, cost, escalation and per-tier metrics of the policy.

    Raises:
        ValueError: On malformed inputs or a wrong number of thresholds.

    Example:
        >>> evaluate_thresholds([[0.9, 0], [0.1, 0]], [[1, 1], [0, 1]],
        ...                     [[1, 10], [1, 10]], [0.5]).escalation_rate
        0.5
        >>> evaluate_thresholds([[0], [0]], [[1], [0]], [[10], [10]], ()).cost
        10.0
    """
    p = _validate(scores, correct, costs, gate_costs, min_tiers=1)
    thr = np.asarray(thresholds, dtype=np.float64).ravel()
    if thr.size != p.k - 1:
        raise ValueError(
            f"need {p.k - 1} threshold(s) (one per non-final tier), got {thr.size}"
        )
    if np.isnan(thr).any():
        raise ValueError("thresholds must not be NaN")
    return _evaluate(p, thr)
