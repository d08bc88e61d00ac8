"""The benchmark skeleton's pieces that need no model."""

from __future__ import annotations

import math

import numpy as np

from benchmarks.common import Matrices, fmt_seconds, regenerate_command


def test_regenerate_command_drops_machine_options_in_both_spellings() -> None:
    argv = ["--n", "5", "--base-url", "http://x", "--json=out.json", "--fresh"]
    assert (
        regenerate_command("benchmarks.j", argv, ["--base-url", "--json"])
        == ".venv/bin/python -m benchmarks.j --n 5 --fresh"
    )


def test_matrices_replay_latency_and_stop_tiers() -> None:
    # Query 0 stops at tier 0 (0.9 >= 0.5), query 1 at tier 1.
    m = Matrices(
        ["a", "b"],
        scores=np.array([[0.9, np.nan], [0.1, np.nan]]),
        correct=np.array([[1.0, 1.0], [0.0, 1.0]]),
        costs=np.array([[1.0, 10.0], [1.0, 10.0]]),
        latency=np.array([[2.0, 5.0], [3.0, 7.0]]),
        unscored=0,
    )
    assert m.latency_sum([0.5]) == 2.0 + (3.0 + 7.0)
    assert [m.stop_tier(i, [0.5]) for i in range(2)] == [0, 1]
    assert m.rows(["b"]).latency.tolist() == [[3.0, 7.0]]
    assert m.evaluate([0.5]).cost == (1.0 + 11.0) / 2


def test_fmt_seconds_says_when_nothing_was_measured() -> None:
    assert fmt_seconds(754.2) == "12 min 34 s"
    assert fmt_seconds(math.nan) == "n/a"
