"""Property-based tests (hypothesis) of the gate combinators and of calibration.

Combinators, judged by what the cascade does with them (a gate that raises fails
the attempt closed): ``all_of`` accepts iff every part passes; ``any_of`` iff a
part passes before any part raises (parts run in order and stop once settled);
``weighted`` accepts iff no part raises and the weighted mean reaches the
threshold, and its score never falls when one part's score rises.

Calibration (:func:`~langchain_cascade.calibration.evaluate_thresholds` and
:func:`~langchain_cascade.calibration.calibrate`): a stricter threshold never
lowers the escalation rate, the final-tier rate or the cost (costs are
non-negative and a later tier's cost includes the earlier ones'); quality never
falls with a stricter threshold when every later tier is right wherever an
earlier one is; tier rates sum to 1; and a stricter quality floor never makes the
optimal two-tier cascade cheaper.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessage

from langchain_cascade import CascadingChatModel, GateInput, GateResult
from langchain_cascade.calibration import calibrate, evaluate_thresholds
from langchain_cascade.gates import all_of, any_of, weighted
from tests.unit_tests.fake_models import ScriptedChatModel

Kind = Literal["pass", "fail", "raise"]
Part = tuple[Kind, float | None]

PROFILE = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

scores = st.one_of(st.none(), st.floats(min_value=0.0, max_value=1.0))
parts = st.lists(
    st.tuples(st.sampled_from(["pass", "fail", "raise"]), scores),
    min_size=1,
    max_size=5,
)


def _gate(kind: Kind, score: float | None) -> Any:
    def gate(gate_input: GateInput) -> GateResult:
        if kind == "raise":
            msg = "part broke"
            raise RuntimeError(msg)
        return GateResult(passed=kind == "pass", score=score, reason=kind)

    return gate


def _accepted(gate: Any) -> bool:
    """Whether a two-tier cascade with ``gate`` on tier 0 answers from tier 0."""
    cascade = CascadingChatModel(
        models=[ScriptedChatModel(reply="cheap"), ScriptedChatModel(reply="strong")],
        gates=[gate],
    )
    answer = cascade.invoke("q")
    return bool(answer.response_metadata["cascade"]["tier"] == 0)


@PROFILE
@given(parts)
def test_all_of_accepts_iff_every_part_passes(spec: list[Part]) -> None:
    gate = all_of(*(_gate(k, s) for k, s in spec))
    assert _accepted(gate) == all(k == "pass" for k, _ in spec)


@PROFILE
@given(parts)
def test_any_of_accepts_iff_a_part_passes_before_any_raises(spec: list[Part]) -> None:
    gate = any_of(*(_gate(k, s) for k, s in spec))
    first_settled = next((k for k, _ in spec if k != "fail"), "fail")
    assert _accepted(gate) == (first_settled == "pass")


def _mean(spec: list[Part], weights: list[float]) -> float:
    values = [
        (s if s is not None else float(k == "pass")) for k, s in spec
    ]  # a part without a score counts as its verdict
    return sum(w * v for w, v in zip(weights, values, strict=True)) / sum(weights)


weights = st.floats(min_value=0.0, max_value=10.0)


@PROFILE
@given(
    st.lists(st.tuples(parts.map(lambda p: p[0]), weights), min_size=1, max_size=5),
    st.floats(min_value=0.0, max_value=1.0),
)
def test_weighted_accepts_iff_no_part_raises_and_the_mean_reaches_the_threshold(
    spec: list[tuple[Part, float]], threshold: float
) -> None:
    if sum(w for _, w in spec) <= 0:
        spec = [(part, 1.0) for part, _ in spec]
    gate = weighted([(_gate(*part), w) for part, w in spec], threshold=threshold)
    raises = any(part[0] == "raise" for part, _ in spec)
    if raises:
        assert not _accepted(gate)
        return
    mean = _mean([p for p, _ in spec], [w for _, w in spec])
    if abs(mean - threshold) > 1e-9:  # the two sides of the threshold, not its edge
        assert _accepted(gate) == (mean >= threshold)


@PROFILE
@given(
    st.lists(
        st.tuples(st.floats(min_value=0.0, max_value=1.0), st.floats(0.01, 10.0)),
        min_size=1,
        max_size=5,
    ),
    st.integers(min_value=0, max_value=4),
    st.floats(min_value=0.0, max_value=1.0),
)
def test_weighted_score_is_monotone_in_each_part(
    spec: list[tuple[float, float]], which: int, raised_to: float
) -> None:
    which %= len(spec)
    if raised_to < spec[which][0]:
        return
    higher = list(spec)
    higher[which] = (raised_to, spec[which][1])

    def score(rows: list[tuple[float, float]]) -> float:
        gate = weighted(
            [(_gate("pass", s), w) for s, w in rows],
            threshold=0.5,
        )
        gate_input = GateInput(messages=[], response=AIMessage("x"))
        result = gate.invoke(gate_input)
        assert result.score is not None
        return result.score

    assert score(higher) >= score(spec) - 1e-12


# --- calibration ---------------------------------------------------------------------

N = st.integers(min_value=1, max_value=30)


@st.composite
def problems(draw: st.DrawFn, tiers: int | None = None) -> dict[str, Any]:
    """Scores, correctness and costs of ``n`` queries on ``k`` tiers."""
    n = draw(N)
    k = tiers if tiers is not None else draw(st.integers(min_value=2, max_value=4))
    unit = st.floats(min_value=0.0, max_value=1.0)
    score = draw(
        st.lists(st.lists(unit, min_size=k, max_size=k), min_size=n, max_size=n)
    )
    correct = draw(
        st.lists(st.lists(st.sampled_from([0.0, 1.0]), min_size=k, max_size=k),
                 min_size=n, max_size=n)
    )  # fmt: skip
    cost = draw(
        st.lists(st.lists(st.floats(0.0, 10.0), min_size=k, max_size=k),
                 min_size=n, max_size=n)
    )  # fmt: skip
    return {"scores": score, "correct": correct, "costs": cost, "k": k}


def _evaluate(problem: dict[str, Any], thresholds: list[float]) -> Any:
    return evaluate_thresholds(
        problem["scores"], problem["correct"], problem["costs"], thresholds
    )


@st.composite
def stricter(draw: st.DrawFn) -> tuple[dict[str, Any], list[float], list[float]]:
    """A problem, thresholds, and the same thresholds with one raised."""
    problem = draw(problems())
    k = problem["k"]
    low = draw(st.lists(st.floats(0.0, 1.0), min_size=k - 1, max_size=k - 1))
    which = draw(st.integers(min_value=0, max_value=k - 2))
    high = list(low)
    high[which] = draw(st.floats(min_value=low[which], max_value=1.0))
    return problem, low, high


@PROFILE
@given(stricter())
def test_a_stricter_threshold_never_lowers_escalation_final_rate_or_cost(
    case: tuple[dict[str, Any], list[float], list[float]],
) -> None:
    problem, low, high = case
    loose, strict = _evaluate(problem, low), _evaluate(problem, high)
    assert strict.escalation_rate >= loose.escalation_rate
    assert strict.strong_call_rate >= loose.strong_call_rate
    assert strict.cost >= loose.cost - 1e-9
    assert math.isclose(sum(strict.tier_rates), 1.0)


@PROFILE
@given(stricter())
def test_a_stricter_threshold_never_lowers_quality_when_later_tiers_know_more(
    case: tuple[dict[str, Any], list[float], list[float]],
) -> None:
    problem, low, high = case
    # Make correctness nested: a later tier is right wherever an earlier one is.
    nested = np.maximum.accumulate(np.asarray(problem["correct"]), axis=1)
    problem = {**problem, "correct": nested.tolist()}
    assert _evaluate(problem, high).quality >= _evaluate(problem, low).quality - 1e-12


@PROFILE
@given(problems(tiers=2), st.floats(0.0, 1.0), st.floats(0.0, 1.0))
def test_a_stricter_quality_floor_never_makes_the_two_tier_optimum_cheaper(
    problem: dict[str, Any], floor_a: float, floor_b: float
) -> None:
    low, high = sorted([floor_a, floor_b])
    args = (problem["scores"], problem["correct"], problem["costs"])
    best_quality = max(
        _evaluate(problem, [t]).quality for t in (-math.inf, math.inf)
    )  # either extreme: all tier 0 or all final tier
    if high > best_quality:
        return  # possibly infeasible; nothing to compare
    loose = calibrate(*args, min_quality=low)
    strict = calibrate(*args, min_quality=high)
    assert strict.quality >= high - 1e-9
    assert strict.cost >= loose.cost - 1e-9
