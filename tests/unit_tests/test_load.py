"""A small version of ``python -m benchmarks.load``: correctness under load, not speed.

Hundreds of concurrent ``ainvoke`` and an ``abatch`` with ``max_concurrency`` on
one cascade: every result is its own question's, from the tier its number
implies, and the monitor's counts add up. Timing is printed by the benchmark,
never asserted here.
"""

from __future__ import annotations

import asyncio

from langchain_core.messages import AIMessage

from benchmarks.load import Setup, check_monitor, check_results, run_phase
from langchain_cascade import CascadeMonitor

SETUP = Setup(cheap_s=0.002, strong_s=0.004, hedge_every=3)


def test_concurrent_calls_each_get_their_own_answer_and_the_monitor_adds_up() -> None:
    phase = asyncio.run(run_phase(SETUP, "concurrent", 210, 210))
    assert phase.wrong_results == []
    assert phase.monitor_problems == []
    assert phase.escalated == 70  # every third of 0..209


def test_abatch_with_max_concurrency_keeps_every_result_its_own() -> None:
    phase = asyncio.run(run_phase(SETUP, "batch", 300, 25, start=1000))
    assert phase.wrong_results == []
    assert phase.monitor_problems == []
    assert phase.escalated == 100  # every third of 1000..1299 (1002, 1005, ...)


def test_the_checks_catch_a_swapped_answer_and_a_miscount() -> None:
    # The checks themselves must be able to fail.
    numbers = [0, 1]
    answers = asyncio.run(SETUP.cascade().abatch([f"question #{n}" for n in numbers]))
    assert check_results(SETUP, numbers, answers) == []
    swapped = [answers[1], answers[0]]
    assert len(check_results(SETUP, numbers, swapped)) == 2
    fake = AIMessage("cheap answers #1", response_metadata={"cascade": {"tier": 1}})
    assert check_results(SETUP, [1], [fake]) == ["#1: tier 1, 0 attempts"]
    empty = CascadeMonitor()
    problems = check_monitor(empty, numbers, SETUP, answers)
    assert "calls: monitor 0, expected 2" in problems
