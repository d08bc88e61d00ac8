"""collect() and the live cascade agree: one decision loop, one set of drivers.

For every example, the tiers a live call reaches must show in collect's record
the same verdicts, reasons, scores and costs, whatever the gates do (pass, fail,
raise), with tools bound and with structured output.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.runnables import Runnable, RunnableConfig
from pydantic import BaseModel

from langchain_cascade import CascadingChatModel, GateInput, GateResult
from langchain_cascade.collect import ExampleRecord, collect, read_jsonl
from langchain_cascade.gates import Gate, ToolCallGate
from langchain_cascade.pricing import ModelPrice
from tests.unit_tests.fake_models import ScriptedChatModel

USAGE = {"input_tokens": 100, "output_tokens": 10, "total_tokens": 110}
PRICES = {
    "a": ModelPrice(input_per_million=1.0, output_per_million=2.0),
    "b": ModelPrice(input_per_million=3.0, output_per_million=6.0),
    "c": ModelPrice(input_per_million=10.0, output_per_million=30.0),
    "judge": ModelPrice(input_per_million=500.0, output_per_million=500.0),
}


def model(name: str, answers: dict[str, Any]) -> ScriptedChatModel:
    """Answers each question from ``answers``: text, an AIMessage or an error."""

    def respond(messages: list[BaseMessage]) -> AIMessage:
        answer = answers.get(messages[-1].text, "I don't know")
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, AIMessage):
            return answer
        return AIMessage(answer, usage_metadata=USAGE)

    return ScriptedChatModel(model=name, responder=respond)


class MixedGate(Gate):
    """Raises on 'boom', asks a priced judge on 'judge', else scores by length."""

    judge: Any

    def evaluate(self, gate_input: GateInput, config: RunnableConfig) -> GateResult:
        text = gate_input.text
        if "boom" in text:
            msg = "gate exploded"
            raise RuntimeError(msg)
        if "judge" in text:
            self.judge.invoke([HumanMessage("judge: " + text)], config)
            return GateResult(passed=True, score=0.9, reason="judge liked it")
        score = min(1.0, len(text) / 10)
        return GateResult(passed=score >= 0.5, score=score, reason=f"len {score:.1f}")


class ReviewGate(Gate):
    """Passes answers mentioning 'ok'; no score."""

    def evaluate(self, gate_input: GateInput, config: RunnableConfig) -> GateResult:
        ok = "ok" in gate_input.text
        return GateResult(passed=ok, reason="has ok" if ok else "no ok")


def live_and_collected(
    runnable: Runnable[Any, Any], questions: list[str]
) -> list[tuple[dict[str, Any], ExampleRecord]]:
    """Each question's live metadata next to collect's record of it."""
    live = []
    for q in questions:
        out = runnable.invoke(q)
        message = out["raw"] if isinstance(out, dict) else out
        live.append(message.response_metadata["cascade"])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "r.jsonl"
        data = collect(
            runnable,
            [(q, "") for q in questions],
            lambda _a, _r: 1.0,
            progress=False,
            path=path,
            max_concurrency=2,
        )
        records = sorted(read_jsonl(path), key=lambda r: r.index)
    assert data.n_queries == len(questions)
    return list(zip(live, records, strict=True))


def live_score(value: float | None, reason: str) -> float:
    """What collect records for a live attempt's score (``None`` -> fail closed)."""
    if reason.startswith(("gate raised", "tier raised", "structured output")):
        return -math.inf
    return math.nan if value is None else value


def assert_agree(pairs: list[tuple[dict[str, Any], ExampleRecord]]) -> None:
    for meta, record in pairs:
        last = len(record.tiers) - 1
        assert len(record.tiers) == last + 1  # collect walks every tier
        for attempt in meta["attempts"]:
            tier = record.tiers[attempt["tier"]]
            assert tier.reason == attempt["reason"]
            assert tier.error == attempt["error"]
            if attempt["tier"] < last:
                assert tier.passed == attempt["accepted"]
            expected = live_score(attempt["score"], attempt["reason"])
            if math.isnan(expected) and tier.passed is not None:
                expected = float(tier.passed)  # a score-less verdict
            if not (math.isnan(expected) and math.isnan(tier.score)):
                assert tier.score == pytest.approx(expected)
            if attempt["error"] is None:
                assert tier.cost == pytest.approx(attempt["cost"])
            else:
                assert attempt["cost"] is None
                assert tier.cost == 0.0  # no usage came back
            if attempt["gate"] is not None and attempt["gate_cost"] is not None:
                assert tier.gate_cost == pytest.approx(attempt["gate_cost"])
        chosen = meta["tier"]
        if chosen == last and meta["needs_review"]:
            assert record.tiers[last].reason == meta["review_reason"]


QUESTIONS = ["short", "long", "boom", "judge", "tier-error", "final"]


def mixed_cascade() -> CascadingChatModel:
    judge = ScriptedChatModel(model="judge", reply="fine")
    a = model(
        "a",
        {
            "short": "tiny",  # fails (0.4)
            "long": "a long enough answer",  # passes
            "boom": "boom",  # the gate raises: fails closed
            "judge": "judge me",  # the gate calls a priced model
            "tier-error": TimeoutError("tier a timed out"),
            "final": "no",
        },
    )
    b = model(
        "b",
        {
            "short": "still no",
            "boom": "boom again",
            "tier-error": "b is ok here",
            "final": "no",
        },
    )
    c = model("c", {"short": "ok", "boom": "ok", "final": "nope"})
    return CascadingChatModel(
        models=[a, b, c],
        gates=[MixedGate(judge=judge)],
        review_gate=ReviewGate(),
        prices=PRICES,
    )


def test_plain_cascade_pass_fail_raise() -> None:
    cascade = mixed_cascade()
    pairs = live_and_collected(cascade, QUESTIONS)
    assert_agree(pairs)
    by_q = dict(zip(QUESTIONS, (r for _, r in pairs), strict=True))
    assert by_q["boom"].tiers[0].score == -math.inf
    assert by_q["boom"].tiers[0].reason.startswith("gate raised RuntimeError")
    assert by_q["tier-error"].tiers[0].error == "TimeoutError: tier a timed out"
    assert by_q["judge"].tiers[0].gate_cost == pytest.approx((3 * 500 + 2 * 500) / 1e6)
    assert by_q["final"].tiers[2].reason == "no ok"  # the review gate's verdict
    # every reached tier was checked, and the set covers pass, fail and raise
    reasons = {m["attempts"][0]["reason"].split(" ")[0] for m, _ in pairs}
    assert {"len", "gate", "tier", "judge"} <= reasons


def weather(city: str) -> str:
    """Weather of a city.

    Args:
        city: The city.
    """
    return city


def call(name: str, args: dict[str, Any]) -> AIMessage:
    return AIMessage(
        "",
        tool_calls=[{"name": name, "args": args, "id": "1", "type": "tool_call"}],
        usage_metadata=USAGE,
    )


def test_tools_reach_the_gates_as_live() -> None:
    a = model(
        "a",
        {
            "good": call("weather", {"city": "Paris"}),
            "bad": call("weather", {"town": "Paris"}),  # wrong argument: fails
            "unknown": call("forecast", {"city": "Paris"}),  # unbound tool
        },
    )
    b = model("b", {q: call("weather", {"city": "Rome"}) for q in ("bad", "unknown")})
    cascade = CascadingChatModel(models=[a, b], gates=[ToolCallGate()], prices=PRICES)
    bound = cascade.bind_tools([weather])
    pairs = live_and_collected(bound, ["good", "bad", "unknown"])
    assert_agree(pairs)
    first = [r.tiers[0] for _, r in pairs]
    assert [t.passed for t in first] == [True, False, False]
    assert "city" in first[1].reason
    # the tier was called with the tools bound, as live
    assert all(c.get("tools") for c in a.calls)


class Answer(BaseModel):
    """The answer."""

    value: int


def test_structured_output_as_live() -> None:
    def answer(value: Any) -> AIMessage:
        return call("Answer", {"value": value})

    a = model(
        "a",
        {
            "parses": answer(4),
            "broken": AIMessage("not a tool call", usage_metadata=USAGE),
        },
    )
    b = model("b", {"broken": answer(5), "parses": answer(6)})
    gate = MixedGate(judge=ScriptedChatModel(model="judge", reply="x"))
    cascade = CascadingChatModel(models=[a, b], gates=[gate], prices=PRICES)
    structured = cascade.with_structured_output(Answer, include_raw=True)
    pairs = live_and_collected(structured, ["parses", "broken"])
    assert_agree(pairs)
    broken = pairs[1][1].tiers[0]
    assert broken.score == -math.inf
    assert broken.reason.startswith("structured output did not parse")
    assert broken.passed is False
