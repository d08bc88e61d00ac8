"""Numeric helpers shared by the package: quantiles, floats made JSON-safe."""

from __future__ import annotations

import math
from collections.abc import Iterable

__all__ = ["json_float", "quantile"]


def quantile(values: Iterable[float], q: float) -> float:
    """The ``q``-quantile of ``values``, interpolated linearly between ranks.

    The standard library's ``statistics.quantiles(values, n, method="inclusive")``
    (numpy's default ``linear`` method) at any ``q`` in [0, 1], not only at its
    cut points ``i / n``, and of a single value too (which ``statistics`` refuses
    before Python 3.13).

    Args:
        values: At least one number, in any order.
        q: The level, from 0 (the lowest value) to 1 (the highest).

    Returns:
        The interpolated value.

    Raises:
        ValueError: When ``values`` is empty or ``q`` is outside [0, 1].

    Example:
        >>> import statistics
        >>> data = [3.0, 1.0, 4.0, 1.5, 9.0]
        >>> quantile(data, 0.9) == statistics.quantiles(data, n=10, method="inclusive")[8]
        True
        >>> quantile(data, 0.5), quantile(data, 0.0), quantile([7.0], 0.99)
        (3.0, 1.0, 7.0)
    """
    ordered = sorted(values)
    if not ordered:
        msg = "quantile of no values"
        raise ValueError(msg)
    if not 0.0 <= q <= 1.0:
        msg = f"quantile level must lie in [0, 1], got {q}"
        raise ValueError(msg)
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def json_float(value: float) -> float | str | None:
    """A float made JSON-safe: NaN becomes ``None``, infinities ``"inf"`` / ``"-inf"``.

    So ``json.dumps(..., allow_nan=False)`` takes it; ``float()`` reads the
    strings back.

    Args:
        value: Any float.

    Returns:
        The float itself when it is finite.

    Example:
        >>> json_float(0.5), json_float(float("nan")), json_float(float("-inf"))
        (0.5, None, '-inf')
    """
    if math.isnan(value):
        return None
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value
