"""Gates judging partial (still streaming) answers, for ``early_abort``."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage

from langchain_cascade.gates import (
    Gate,
    GateInput,
    GateResult,
    HedgingGate,
    LogprobGate,
    MinLengthGate,
    RegexGate,
    ToolCallGate,
    all_of,
    any_of,
    weighted,
)
from tests.unit_tests.fake_models import ScriptedChatModel, logprob_meta

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def partial(text: str = "", **kwargs: Any) -> GateInput:
    return GateInput(
        messages=[HumanMessage("q")],
        response=AIMessage(text, **kwargs),
        tools=[WEATHER],
    )


def test_hedging_fails_once_the_phrase_is_written() -> None:
    gate = HedgingGate()
    assert gate.judges_partial
    assert gate.evaluate_partial(partial("The answer is")) is None
    verdict = gate.evaluate_partial(partial("Hmm, I'm not sure"))
    assert verdict is not None
    assert not verdict.passed
    assert "not sure" in verdict.reason


def test_rules_that_cannot_judge_partial_answers_never_abort() -> None:
    for gate in (MinLengthGate(min_chars=50), RegexGate(pattern=r"\d+$")):
        assert not gate.judges_partial
        assert gate.evaluate_partial(partial("x")) is None


def test_logprob_aborts_only_when_a_perfect_rest_could_not_rescue() -> None:
    gate = LogprobGate(threshold=0.8, max_answer_tokens=64)
    # 16 of 64 tokens at logprob -2: at best exp(-32 / 64) = 0.61 < 0.8.
    collapsed = partial("x", response_metadata=logprob_meta(*[-2.0] * 16))
    verdict = gate.evaluate_partial(collapsed)
    assert verdict is not None
    assert not verdict.passed
    assert verdict.score == pytest.approx(0.6065, abs=1e-3)
    # 4 such tokens: exp(-8 / 64) = 0.88, the rest could still rescue it.
    early = partial("x", response_metadata=logprob_meta(*[-2.0] * 4))
    assert gate.evaluate_partial(early) is None


def test_logprob_reads_the_tier_max_tokens_and_needs_a_bound() -> None:
    gate = LogprobGate(threshold=0.8)
    meta = logprob_meta(*[-2.0] * 16)
    unbounded = partial("x", response_metadata=meta)
    assert gate.evaluate_partial(unbounded) is None  # no length bound: can't tell

    class Limited(ScriptedChatModel):
        max_tokens: int = 64

    bounded = GateInput(
        messages=[HumanMessage("q")],
        response=AIMessage("x", response_metadata=meta),
        chat_model=Limited(),
    )
    verdict = gate.evaluate_partial(bounded)
    assert verdict is not None
    assert not verdict.passed


def test_min_prob_needs_no_bound() -> None:
    gate = LogprobGate(threshold=0.5, aggregation="min_prob")
    verdict = gate.evaluate_partial(
        partial("x", response_metadata=logprob_meta(-0.1, -3.0))
    )
    assert verdict is not None
    assert not verdict.passed
    assert (
        gate.evaluate_partial(partial("x", response_metadata=logprob_meta(-0.1)))
        is None
    )


def test_tool_call_gate_fails_on_an_unknown_streamed_tool_name() -> None:
    gate = ToolCallGate()
    unknown = partial(
        tool_calls=[{"name": "get_wether", "args": {}, "id": "1", "type": "tool_call"}]
    )
    verdict = gate.evaluate_partial(unknown)
    assert verdict is not None
    assert "get_wether" in verdict.reason
    # A prefix of a bound name may still be streaming: can't tell.
    prefix = partial(
        tool_calls=[{"name": "get_", "args": {}, "id": "1", "type": "tool_call"}]
    )
    assert gate.evaluate_partial(prefix) is None
    known = partial(
        tool_calls=[{"name": "get_weather", "args": {}, "id": "1", "type": "tool_call"}]
    )
    assert gate.evaluate_partial(known) is None


class Blind(Gate):
    def evaluate(self, gate_input: GateInput, config: Any) -> GateResult:
        return GateResult(passed=True)


def test_combinators_combine_partial_verdicts() -> None:
    hedge = partial("I don't know")
    assert all_of(Blind(), HedgingGate()).judges_partial
    verdict = all_of(Blind(), HedgingGate()).evaluate_partial(hedge)
    assert verdict is not None
    assert not verdict.passed
    # any_of fails only when every part will fail; a blind part never will.
    assert not any_of(Blind(), HedgingGate()).judges_partial
    assert any_of(Blind(), HedgingGate()).evaluate_partial(hedge) is None
    both = any_of(HedgingGate(), HedgingGate(phrases=["know"]))
    assert both.judges_partial
    assert both.evaluate_partial(hedge) is not None
    # weighted: a blind part may still score 1 (best 0.5 reaches 0.5, not 0.75).
    assert (
        weighted({Blind(): 1.0, HedgingGate(): 1.0}, threshold=0.5).evaluate_partial(
            hedge
        )
        is None
    )
    assert (
        weighted({Blind(): 1.0, HedgingGate(): 3.0}, threshold=0.5).evaluate_partial(
            hedge
        )
        is not None
    )


def test_a_gate_that_cannot_judge_never_aborts() -> None:
    assert not Blind().judges_partial
    assert Blind().evaluate_partial(partial("I don't know")) is None
