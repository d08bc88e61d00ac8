"""The package's one quantile helper agrees with the standard library and numpy."""

from __future__ import annotations

import random
import statistics

import pytest

from langchain_cascade._numeric import quantile


def test_quantile_is_the_inclusive_method_at_every_level() -> None:
    np = pytest.importorskip("numpy")
    rng = random.Random(12)
    for size in (1, 2, 3, 10, 101):
        data = [rng.uniform(-5, 5) for _ in range(size)]
        for q in (0.0, 0.1, 0.123, 0.5, 0.9, 0.99, 1.0):
            assert quantile(data, q) == pytest.approx(float(np.quantile(data, q)))
        if size > 1:
            cuts = statistics.quantiles(data, n=100, method="inclusive")
            assert [quantile(data, i / 100) for i in range(1, 100)] == pytest.approx(
                cuts
            )


def test_quantile_refuses_no_values_and_levels_outside_0_1() -> None:
    with pytest.raises(ValueError, match="no values"):
        quantile([], 0.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        quantile([1.0], 1.5)
