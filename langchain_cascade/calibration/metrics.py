"""Routing metrics of RouteLLM (Ong et al., 2024, arXiv:2406.18665): PGR, APGR, CPT."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["CPT_LEVELS", "apgr", "cpt", "pgr"]

FloatArray = NDArray[np.float64]

CPT_LEVELS: tuple[float, ...] = (0.5, 0.8)
"""PGR levels reported in :attr:`CalibrationResult.cpt`."""


def pgr(quality: float, cheap_quality: float, premium_quality: float) -> float:
    """Performance gap recovered (RouteLLM, arXiv:2406.18665).

    ``(quality - cheap_quality) / (premium_quality - cheap_quality)``; NaN when
    the two models are equally good.

    Args:
        quality: Quality of the routed/cascaded system.
        cheap_quality: Quality of the cheap model alone.
        premium_quality: Quality of the strong model alone.

    Returns:
        The PGR (0 = cheap model, 1 = strong model; can exceed 1).

    Example:
        >>> pgr(0.75, 0.5, 1.0)
        0.5
    """
    gap = premium_quality - cheap_quality
    if abs(gap) < 1e-12:
        return math.nan
    return (quality - cheap_quality) / gap


def _pgr_curve(
    strong_call_rate: ArrayLike,
    quality: ArrayLike,
    cheap_quality: float,
    premium_quality: float,
) -> tuple[FloatArray, FloatArray] | None:
    x = np.asarray(strong_call_rate, dtype=np.float64).ravel()
    q = np.asarray(quality, dtype=np.float64).ravel()
    if x.shape != q.shape:
        raise ValueError(
            f"strong_call_rate has {x.size} values but quality has {q.size}"
        )
    if not (np.isfinite(x).all() and np.isfinite(q).all()):
        raise ValueError("strong_call_rate and quality must be finite")
    if ((x < 0) | (x > 1)).any():
        raise ValueError("strong_call_rate must lie in [0, 1]")
    gap = premium_quality - cheap_quality
    if not math.isfinite(gap) or abs(gap) < 1e-12:
        return None
    g = (q - cheap_quality) / gap
    if not (x == 0).any():  # cheap model only
        x, g = np.concatenate(([0.0], x)), np.concatenate(([0.0], g))
    if not (x == 1).any():  # strong model only
        x, g = np.concatenate((x, [1.0])), np.concatenate((g, [1.0]))
    order = np.lexsort((-g, x))  # by x, best PGR first within equal x
    x, g = x[order], g[order]
    first = np.concatenate(([True], x[1:] != x[:-1]))
    return x[first], g[first]


def apgr(
    strong_call_rate: ArrayLike,
    quality: ArrayLike,
    cheap_quality: float,
    premium_quality: float,
) -> float:
    """Average performance gap recovered (RouteLLM, arXiv:2406.18665).

    The area under PGR as a function of the share of queries sent to the
    strong (final-tier) model, for x from 0 to 1, with linear interpolation
    between the given points (a point between two thresholds is reachable in
    expectation by randomising the decision on the queries between them).
    Where x = 0 or x = 1 is missing, the cheap-only (PGR 0) and strong-only
    (PGR 1) end points are used; for repeated x the best quality is used.
    A random router scores about 0.5.

    Args:
        strong_call_rate: Share of queries reaching the strong model, per policy.
        quality: Mean quality of each policy.
        cheap_quality: Quality of the cheap model alone.
        premium_quality: Quality of the strong model alone.

    Returns:
        The APGR, or NaN when both models are equally good.

    Raises:
        ValueError: On mismatched lengths, non-finite values or rates
            outside [0, 1].

    Example:
        >>> apgr([0.0, 0.5, 1.0], [0.5, 0.75, 1.0], 0.5, 1.0)
        0.5
    """
    curve = _pgr_curve(strong_call_rate, quality, cheap_quality, premium_quality)
    if curve is None:
        return math.nan
    x, g = curve
    return float(np.sum(np.diff(x) * (g[1:] + g[:-1]) / 2.0))


def cpt(
    strong_call_rate: ArrayLike,
    quality: ArrayLike,
    cheap_quality: float,
    premium_quality: float,
    target_pgr: float,
) -> float:
    """Call-performance threshold (RouteLLM, arXiv:2406.18665).

    The smallest share of strong-model calls at which the PGR curve (the
    piecewise-linear curve of :func:`apgr`) reaches ``target_pgr``.

    Args:
        strong_call_rate: Share of queries reaching the strong model, per policy.
        quality: Mean quality of each policy.
        cheap_quality: Quality of the cheap model alone.
        premium_quality: Quality of the strong model alone.
        target_pgr: PGR to reach, e.g. 0.5 for CPT(50%).

    Returns:
        The share of strong calls in [0, 1], or NaN if the models are equally
        good or the target is never reached.

    Example:
        >>> cpt([0.0, 0.5, 1.0], [0.5, 0.75, 1.0], 0.5, 1.0, 0.8)
        0.8
    """
    curve = _pgr_curve(strong_call_rate, quality, cheap_quality, premium_quality)
    if curve is None:
        return math.nan
    x, g = curve
    hit = np.flatnonzero(g >= target_pgr)
    if hit.size == 0:
        return math.nan
    j = int(hit[0])
    if j == 0:
        return float(x[0])
    frac = (target_pgr - g[j - 1]) / (g[j] - g[j - 1])
    return float(x[j - 1] + frac * (x[j] - x[j - 1]))


# --------------------------------------------------------------------------
# public entry points
