"""The cost-quality frontier plot."""

from __future__ import annotations

import os
from pathlib import Path

from langchain_cascade.calibration.results import CalibrationResult

__all__ = ["plot_frontier"]


def plot_frontier(
    result: CalibrationResult,
    path: str | os.PathLike[str],
    *,
    title: str = "Cascade cost-quality frontier",
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
    # matplotlib is an optional dependency (the "calibration" extra): import lazily
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415
    from matplotlib.figure import Figure  # noqa: PLC0415

    out = Path(path)
    fig = Figure(figsize=(7.0, 5.0), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
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
    ax.scatter(
        [result.cost],
        [result.quality],
        marker="*",
        s=220,
        color="tab:orange",
        edgecolors="black",
        label=f"chosen{'' if cascade else ': final tier alone'} ({result.constraint})",
        zorder=4,
    )
    ax.set_xlabel("Mean cost per query")
    ax.set_ylabel("Quality (mean correctness)")
    ax.set_title(title)
    ax.grid(visible=True, alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    fig.savefig(out, format="png", dpi=120)
    return out
