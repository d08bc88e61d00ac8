"""The cost-quality plots: the fitted frontier, and the fit on held-out data."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from numpy.typing import ArrayLike

from langchain_cascade.calibration.results import CalibrationResult, PolicyEvaluation
from langchain_cascade.calibration.search import evaluate_thresholds

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["plot_frontier", "plot_held_out"]


def plot_frontier(
    result: CalibrationResult,
    path: str | os.PathLike[str],
    *,
    title: str = "Cascade cost-quality frontier",
    cost_label: str = "Mean cost per query",
) -> Path:
    """Writes a PNG of the cost-quality frontier.

    Shows the Pareto frontier, the cheap-only, premium-only and perfect-gate
    baselines, and the chosen operating point. A result that keeps only the
    final tier (``select_tiers`` found no cascade that pays) has no frontier
    and no cheap tier: the plot shows the final tier's point, chosen. Uses
    matplotlib's Agg canvas directly, so no GUI backend or global pyplot state
    is involved.

    Args:
        result: Output of :func:`calibrate`.
        path: Where to write the PNG.
        title: Figure title.
        cost_label: The cost axis' label (say the currency and prices).

    Returns:
        The path written.

    Example:
        >>> import tempfile
        >>> from langchain_cascade.calibration import calibrate
        >>> res = calibrate([[0.9, 0], [0.3, 0]], [[1, 1], [0, 1]], [[1, 10]] * 2)
        >>> with tempfile.TemporaryDirectory() as d:
        ...     plot_frontier(res, Path(d) / "f.png").read_bytes()[1:4]
        b'PNG'
    """
    fig, ax = _figure()
    cascade = bool(result.thresholds)  # else the final tier alone was kept
    if cascade:
        ax.plot(
            [pt.cost for pt in result.frontier],
            [pt.quality for pt in result.frontier],
            marker="o",
            markersize=3,
            linewidth=1.2,
            color="tab:blue",
            label="cascade frontier",
        )
    baselines = [
        (result.cheap_cost, result.cheap_quality, "s", "tab:gray", "cheap tier only"),
        (
            result.premium_cost,
            result.premium_quality,
            "^",
            "tab:red",
            "final tier only",
        ),
        (result.perfect_cost, result.perfect_quality, "D", "tab:green", "perfect gate"),
    ]
    if not cascade:  # one tier: the cheap tier and the oracle are the final tier
        baselines = baselines[1:2]
    for cost, quality, marker, color, label in baselines:
        ax.scatter([cost], [quality], marker=marker, s=60, color=color, label=label)
    chosen = f"chosen{'' if cascade else ': final tier alone'} ({result.constraint})"
    return _finish(
        fig,
        ax,
        (result.cost, result.quality, chosen),
        path,
        title=title,
        cost=cost_label,
    )


def plot_held_out(
    result: CalibrationResult,
    scores: ArrayLike,
    correct: ArrayLike,
    costs: ArrayLike,
    path: str | os.PathLike[str],
    *,
    gate_costs: ArrayLike | None = None,
    tier_names: Sequence[str] = (),
    title: str = "Fitted thresholds on held-out data",
    cost_label: str = "Mean cost per query",
) -> Path:
    """Writes a PNG of fitted thresholds replayed on held-out data.

    Every point of the fitted frontier (its thresholds) is scored on the
    held-out queries with :func:`evaluate_thresholds`, beside each tier alone
    on them and the chosen policy: the picture of whether the fit holds on data
    it was not fitted on. The arrays have the columns :func:`calibrate` was
    given (``result.tiers`` picks the kept ones).

    Args:
        result: Output of :func:`calibrate` on the fitting data.
        scores: Held-out (queries, tiers) gate scores.
        correct: Held-out (queries, tiers) correctness in [0, 1].
        costs: Held-out (queries, tiers) call costs.
        path: Where to write the PNG.
        gate_costs: Optional held-out (queries, tiers) gate costs.
        tier_names: A name per column, for the legend (default ``tier i``).
        title: Figure title.
        cost_label: The cost axis' label (say the currency and prices).

    Returns:
        The path written.

    Example:
        >>> from tempfile import TemporaryDirectory
        >>> from langchain_cascade.calibration import calibrate
        >>> costs = [[1, 10], [1, 10]]
        >>> fitted = calibrate([[0.9, 0], [0.3, 0]], [[1, 1], [0, 1]], costs)
        >>> held_out = ([[0.8, 0], [0.2, 0]], [[1, 1], [1, 1]], costs)  # 2 others
        >>> with TemporaryDirectory() as tmp:
        ...     png = plot_held_out(fitted, *held_out, Path(tmp) / "held_out.png")
        ...     png.stat().st_size > 0
        True
    """
    import numpy as np  # noqa: PLC0415 - the calibration extra

    arrays = [np.asarray(a, dtype=np.float64) for a in (scores, correct, costs)]
    gates = None if gate_costs is None else np.asarray(gate_costs, dtype=np.float64)
    kept = list(result.tiers) or list(range(arrays[0].shape[1]))

    def replay(thresholds: Sequence[float]) -> PolicyEvaluation:
        s, c, k = (a[:, kept] for a in arrays)
        return evaluate_thresholds(
            s, c, k, thresholds, None if gates is None else gates[:, kept]
        )

    points = sorted((replay(p.thresholds) for p in result.frontier), key=_cost)
    fig, ax = _figure()
    ax.plot(
        [p.cost for p in points],
        [p.quality for p in points],
        marker="o",
        markersize=3,
        linewidth=1.0,
        label="fitted frontier's thresholds, held out",
    )
    markers = ("s", "v", "^", "P", "X")
    for j in range(arrays[0].shape[1]):
        name = tier_names[j] if j < len(tier_names) else f"tier {j}"
        ax.scatter(
            [float(arrays[2][:, j].mean())],
            [float(arrays[1][:, j].mean())],
            marker=markers[j % len(markers)],
            s=60,
            label=f"{name} alone",
        )
    chosen = replay(result.thresholds)
    return _finish(
        fig,
        ax,
        (chosen.cost, chosen.quality, "chosen (fitted on the fitting data)"),
        path,
        title=title,
        cost=cost_label,
    )


def _cost(evaluation: PolicyEvaluation) -> float:
    return evaluation.cost


def _figure() -> tuple[Figure, Axes]:
    """A figure on matplotlib's Agg canvas (no GUI backend, no pyplot state)."""
    # matplotlib is an optional dependency (the "calibration" extra): import lazily
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415
    from matplotlib.figure import Figure  # noqa: PLC0415

    fig = Figure(figsize=(7.0, 5.0), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _finish(
    fig: Figure,
    ax: Axes,
    chosen: tuple[float, float, str],
    path: str | os.PathLike[str],
    *,
    title: str,
    cost: str,
) -> Path:
    """Marks the chosen policy, labels the axes and writes the PNG."""
    x, y, label = chosen
    ax.scatter(
        [x],
        [y],
        marker="*",
        s=220,
        color="tab:orange",
        edgecolors="black",
        label=label,
        zorder=4,
    )
    ax.set_xlabel(cost)
    ax.set_ylabel("Quality (mean correctness)")
    ax.set_title(title)
    ax.grid(visible=True, alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    out = Path(path)
    fig.savefig(out, format="png", dpi=120)
    return out
