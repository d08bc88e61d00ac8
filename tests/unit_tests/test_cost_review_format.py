"""Costs, budgets, review events and the formatter."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import AIMessage
from pydantic import ValidationError

from langchain_cascade import CascadeError, CascadingChatModel, GateInput, GateResult
from langchain_cascade.gates import HedgingGate
from langchain_cascade.pricing import ModelPrice, price_of, sum_known
from tests.unit_tests.fake_models import ScriptedChatModel, call, cascade_meta, tiers
from tests.unit_tests.run_recorder import RunRecorder

CHEAP = ModelPrice(input_per_million=1.0, output_per_million=2.0)
STRONG = ModelPrice(input_per_million=10.0, output_per_million=30.0, per_call=0.001)


def _usage(inp: int, out: int) -> dict[str, int]:
    return {"input_tokens": inp, "output_tokens": out, "total_tokens": inp + out}


def test_model_price_cost() -> None:
    assert STRONG.cost(_usage(1000, 100)) == pytest.approx(0.001 + 0.01 + 0.003)  # type: ignore[arg-type]
    assert STRONG.cost(None) is None
    assert price_of({"a": CHEAP}, "b", _usage(1, 1)) is None  # type: ignore[arg-type]
    assert sum_known([1.0, None]) is None
    assert sum_known([1.0, 2.0]) == 3.0
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        ModelPrice(input_per_million=-1, output_per_million=0)


def test_costs_of_attempts_total_and_baseline(mode: str) -> None:
    # Each scripted reply spends 3 input and 2 output tokens.
    cascade = CascadingChatModel(
        models=tiers("I am not sure", "Paris"),
        gates=[HedgingGate()],
        prices={"m0": CHEAP, "m1": STRONG},
    )
    meta = cascade_meta(call(cascade, mode, "q"))
    cheap_cost = 3 * 1.0 / 1e6 + 2 * 2.0 / 1e6
    strong_cost = 0.001 + 3 * 10.0 / 1e6 + 2 * 30.0 / 1e6
    assert meta["attempts"][0]["cost"] == pytest.approx(cheap_cost)
    assert meta["attempts"][0]["gate_cost"] == 0.0  # a rule spends nothing
    assert meta["attempts"][1]["cost"] == pytest.approx(strong_cost)
    assert meta["cost"]["total"] == pytest.approx(cheap_cost + strong_cost)
    assert meta["cost"]["baseline"] == pytest.approx(strong_cost)
    assert meta["cost"]["baseline_estimated"] is False
    assert meta["cost"]["savings"] == pytest.approx(-cheap_cost)


def test_accepted_cheap_answer_saves_against_estimated_baseline() -> None:
    cascade = CascadingChatModel(
        models=tiers("Paris", "Paris"),
        gates=[HedgingGate()],
        prices={"m0": CHEAP, "m1": STRONG},
    )
    cost = cascade_meta(cascade.invoke("q"))["cost"]
    assert cost["baseline_estimated"] is True
    assert cost["baseline"] == pytest.approx(0.001 + 30e-6 + 60e-6)
    assert cost["savings"] == pytest.approx(cost["baseline"] - cost["total"])
    assert cost["savings"] > 0


def test_unknown_price_is_unknown_not_zero() -> None:
    cascade = CascadingChatModel(
        models=tiers("I am not sure", "Paris"),
        gates=[HedgingGate()],
        prices={"m0": CHEAP},
    )
    meta = cascade_meta(cascade.invoke("q"))
    assert meta["attempts"][0]["cost"] is not None
    assert meta["attempts"][1]["cost"] is None
    assert meta["cost"]["total"] is None
    assert meta["cost"]["baseline"] is None
    assert meta["cost"]["savings"] is None


def test_gate_model_calls_are_recorded_and_priced() -> None:
    judge = ScriptedChatModel(model="judge", reply="PASS")

    def judged(gate_input: GateInput, config: Any = None) -> GateResult:
        verdict = judge.invoke(f"Judge: {gate_input.text}", config)
        return GateResult(passed=verdict.text == "PASS", score=1.0)

    from langchain_core.runnables import RunnableLambda

    cascade = CascadingChatModel(
        models=tiers("Paris", "Paris"),
        gates=[RunnableLambda(judged)],
        prices={"m0": CHEAP, "m1": STRONG, "judge": CHEAP},
    )
    answer = cascade.invoke("q")
    attempt = cascade_meta(answer)["attempts"][0]
    assert attempt["gate_usage"] == {"judge": _usage(3, 2)}
    assert attempt["gate_cost"] == pytest.approx(3e-6 + 4e-6)
    assert answer.usage_metadata is not None
    assert answer.usage_metadata["total_tokens"] == 10  # the tier and its judge


# --- budget ---------------------------------------------------------------------


def test_budget_returns_best_answer_so_far_flagged(mode: str) -> None:
    recorder = RunRecorder()
    strong = ScriptedChatModel(model="m1", reply="Paris")
    cascade = CascadingChatModel(
        models=[ScriptedChatModel(model="m0", reply="I am not sure, Paris?"), strong],
        gates=[HedgingGate()],
        prices={"m0": CHEAP, "m1": STRONG},
        max_cost=0.0005,
    )
    answer = call(cascade, mode, "q", {"callbacks": [recorder]})
    meta = cascade_meta(answer)
    assert answer.text == "I am not sure, Paris?"
    assert meta["tier"] == 0
    assert meta["needs_review"] is True
    assert meta["review_reason"].startswith("budget: tier 1 (m1) would cost about")
    assert strong.calls == []
    reviews = [d for name, d, _ in recorder.events if name == "cascade_needs_review"]
    assert len(reviews) == 1
    assert reviews[0]["reason"] == meta["review_reason"]


def test_per_call_max_cost_overrides_the_default() -> None:
    cascade = CascadingChatModel(
        models=tiers("I am not sure", "Paris"),
        gates=[HedgingGate()],
        prices={"m0": CHEAP, "m1": STRONG},
        max_cost=0.0005,
    )
    assert cascade.invoke("q", max_cost=1.0).text == "Paris"
    # Tier 0's own estimate (~1e-6) fits; tier 1's does not.
    assert cascade.bind(max_cost=1e-5).invoke("q").text == "I am not sure"


def test_budget_without_prices_does_not_stop_the_call() -> None:
    cascade = CascadingChatModel(
        models=tiers("I am not sure", "Paris"), gates=[HedgingGate()], max_cost=1e-12
    )
    assert cascade.invoke("q").text == "Paris"


def test_budget_with_no_answer_so_far_raises() -> None:
    cascade = CascadingChatModel(
        models=[
            ScriptedChatModel(model="m0", script=[TimeoutError("slow")]),
            ScriptedChatModel(model="m1", reply="Paris"),
        ],
        gates=[HedgingGate()],
        prices={"m0": CHEAP, "m1": STRONG},
        max_cost=1e-4,
    )
    # No usage is known after the failure, but tier 1's estimate from the prompt
    # (its $0.001 a call) is over the budget: the call stops with no answer.
    with pytest.raises(CascadeError, match=r"tier 1 \(m1\) would cost about \$0\.001"):
        cascade.invoke("q")


def test_max_cost_must_be_positive() -> None:
    with pytest.raises(ValidationError, match="greater than 0"):
        CascadingChatModel(models=tiers("a"), max_cost=0)


# --- review event ---------------------------------------------------------------


def test_needs_review_fires_the_review_event(mode: str) -> None:
    recorder = RunRecorder()
    cascade = CascadingChatModel(
        models=tiers("I am not sure", "I don't know"),
        gates=[HedgingGate()],
        review_gate=HedgingGate(),
    )
    call(cascade, mode, "q", {"callbacks": [recorder]})
    reviews = [d for name, d, _ in recorder.events if name == "cascade_needs_review"]
    assert reviews == [
        {
            "tier": 1,
            "model": "m1",
            "reason": 'hedging phrase "i don\'t know"',
            "answer": "I don't know",
            "attempts": 2,
        }
    ]


def test_no_review_event_when_the_answer_is_fine() -> None:
    recorder = RunRecorder()
    cascade = CascadingChatModel(models=tiers("Paris"), review_gate=HedgingGate())
    cascade.invoke("q", {"callbacks": [recorder]})
    assert not [e for e in recorder.events if e[0] == "cascade_needs_review"]


# --- formatter ------------------------------------------------------------------


def test_formatter_applies_to_every_final_answer(mode: str) -> None:
    recorder = RunRecorder()
    cascade = CascadingChatModel(
        models=tiers("I am not sure", "paris"),
        gates=[HedgingGate()],
        formatter=lambda m: f"Answer: {m.text.strip().capitalize()}",
    )
    answer = call(cascade, mode, "q", {"callbacks": [recorder]})
    assert answer.text == "Answer: Paris"
    assert cascade_meta(answer)["tier"] == 1
    (cascade_run,) = recorder.cascade_runs()
    (fmt,) = recorder.tagged("cascade:formatter")
    assert fmt.parent_run_id == cascade_run.run_id


def test_formatter_may_return_a_message_and_a_failing_one_keeps_the_answer() -> None:
    ok = CascadingChatModel(
        models=tiers("paris"), formatter=lambda m: AIMessage(m.text.upper())
    )
    assert ok.invoke("q").text == "PARIS"

    def broken(message: AIMessage) -> str:
        msg = "formatter down"
        raise RuntimeError(msg)

    kept = CascadingChatModel(models=tiers("paris"), formatter=broken)
    answer = kept.invoke("q")
    assert answer.text == "paris"
    assert cascade_meta(answer)["format_error"] == "RuntimeError: formatter down"


def test_formatter_must_be_runnable() -> None:
    with pytest.raises(TypeError, match="formatter must be a Runnable"):
        CascadingChatModel(models=tiers("a"), formatter=42)


def test_cascade_error_names_budget_note() -> None:
    from langchain_cascade._run import Attempt

    err = CascadeError([Attempt(tier=0, model="m0", error="X: y")], note="budget: z")
    assert str(err).startswith("no tier answered: budget: z:")
