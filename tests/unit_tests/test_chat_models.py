"""The cascade's rules, on fake models, through every entry point."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

import pytest
from langchain_core.callbacks import get_usage_metadata_callback
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda
from pydantic import BaseModel, ValidationError

from langchain_cascade import CascadeError, CascadingChatModel, GateInput, GateResult
from langchain_cascade.gates import HedgingGate, LogprobGate, MinLengthGate
from tests.unit_tests.fake_models import (
    ScriptedChatModel,
    call,
    cascade_meta,
    logprob_meta,
    merge_chunks,
    tiers,
)
from tests.unit_tests.run_recorder import RunRecorder

# --- accept and escalate ---------------------------------------------------------


def test_first_tier_accepted_when_gate_passes(mode: str) -> None:
    cheap, strong = tiers("Paris is the capital.", "PREMIUM")
    cascade = CascadingChatModel(models=[cheap, strong], gates=[HedgingGate()])
    answer = call(cascade, mode, "Capital of France?")
    assert answer.text == "Paris is the capital."
    meta = cascade_meta(answer)
    assert meta["tier"] == 0
    assert meta["model"] == "m0"
    assert meta["escalated"] is False
    assert meta["needs_review"] is False
    assert len(meta["attempts"]) == 1
    attempt = meta["attempts"][0]
    assert attempt["accepted"] is True
    assert attempt["score"] == 1.0
    assert attempt["reason"] == "no hedging"
    assert attempt["latency_s"] >= 0
    assert attempt["error"] is None
    assert strong.calls == []
    assert answer.response_metadata["model_name"] == "cascade"


def test_escalates_when_gate_fails_and_rejected_text_never_returned(mode: str) -> None:
    cheap, mid, strong = tiers("I'm not sure, maybe Lyon", "ok", "Paris, certainly.")
    recorder = RunRecorder()
    cascade = CascadingChatModel(
        models=[cheap, mid, strong],
        gates=[HedgingGate(), MinLengthGate(min_chars=5)],
    )
    answer = call(cascade, mode, "Capital?", {"callbacks": [recorder]})
    assert answer.text == "Paris, certainly."
    assert "Lyon" not in answer.text
    meta = cascade_meta(answer)
    assert meta["tier"] == 2
    assert meta["escalated"] is True
    assert [a["accepted"] for a in meta["attempts"]] == [False, False, True]
    assert "hedging phrase" in meta["attempts"][0]["reason"]
    assert meta["attempts"][1]["reason"] == "2 chars < 5"
    assert meta["attempts"][1]["score"] == pytest.approx(0.4)
    events = [e for e in recorder.events if e[0] == "cascade_escalation"]
    assert [(d["from_tier"], d["to_tier"]) for _, d, _ in events] == [(0, 1), (1, 2)]
    assert events[0][1]["score"] == 0.0
    assert "hedging" in events[0][1]["reason"]
    (cascade_run,) = recorder.cascade_runs()
    assert all(run_id == cascade_run.run_id for _, _, run_id in events)
    if mode in ("stream", "astream"):
        streamed = "".join(
            t for run_id, t in recorder.tokens if run_id == cascade_run.run_id
        )
        assert "Lyon" not in streamed
        assert streamed == "Paris, certainly."


def test_one_gate_serves_every_non_final_tier() -> None:
    cascade = CascadingChatModel(
        models=tiers("I don't know", "I do not know", "42"), gates=HedgingGate()
    )
    assert len(cascade.gates) == 2
    assert cascade.gates[0] is cascade.gates[1]
    assert cascade_meta(cascade.invoke("q"))["tier"] == 2


def test_review_gate_flags_weak_final_answer(mode: str) -> None:
    cascade = CascadingChatModel(
        models=tiers("hmm, I am not sure", "I am not sure either"),
        gates=[HedgingGate()],
        review_gate=HedgingGate(),
    )
    answer = call(cascade, mode, "q")
    meta = cascade_meta(answer)
    assert answer.text == "I am not sure either"
    assert meta["tier"] == 1
    assert meta["needs_review"] is True
    assert "hedging phrase" in meta["review_reason"]
    assert meta["attempts"][-1]["accepted"] is True


def test_final_answer_without_review_gate_is_not_flagged() -> None:
    cascade = CascadingChatModel(
        models=tiers("I do not know", "I am not sure"), gates=[HedgingGate()]
    )
    meta = cascade_meta(cascade.invoke("q"))
    assert meta["needs_review"] is False
    assert meta["attempts"][-1]["reason"] == "final tier"


# --- errors ------------------------------------------------------------------------


def test_failing_tier_escalates_and_records_error(mode: str) -> None:
    broken = ScriptedChatModel(model="broken", script=[TimeoutError("read timed out")])
    strong = ScriptedChatModel(model="strong", reply="fine")
    cascade = CascadingChatModel(models=[broken, strong], gates=[HedgingGate()])
    answer = call(cascade, mode, "q")
    meta = cascade_meta(answer)
    assert answer.text == "fine"
    assert meta["tier"] == 1
    assert meta["attempts"][0]["error"] == "TimeoutError: read timed out"
    assert meta["attempts"][0]["accepted"] is False
    assert meta["attempts"][0]["gate"] is None


def test_final_tier_failure_raises_cascade_error_with_every_attempt(mode: str) -> None:
    cheap = ScriptedChatModel(model="cheap", reply="I'm not sure")
    strong = ScriptedChatModel(model="strong", script=[ConnectionError("503")])
    cascade = CascadingChatModel(models=[cheap, strong], gates=[HedgingGate()])
    with pytest.raises(CascadeError) as info:
        call(cascade, mode, "q")
    attempts = info.value.attempts
    assert [a["tier"] for a in attempts] == [0, 1]
    assert "hedging" in attempts[0]["reason"]
    assert attempts[1]["error"] == "ConnectionError: 503"
    assert "tier 1 (strong): ConnectionError: 503" in str(info.value)
    assert isinstance(info.value.__cause__, ConnectionError)


def test_cascade_error_survives_pickling() -> None:
    import pickle

    cascade = CascadingChatModel(models=[ScriptedChatModel(script=[ValueError("x")])])
    with pytest.raises(CascadeError) as info:
        cascade.invoke("q")
    copy = pickle.loads(pickle.dumps(info.value))  # noqa: S301 - our own object
    assert copy.attempts == info.value.attempts
    assert str(copy) == str(info.value)


def test_raising_gate_fails_closed(mode: str) -> None:
    def broken_gate(gate_input: GateInput) -> bool:
        msg = "gate backend down"
        raise RuntimeError(msg)

    cascade = CascadingChatModel(models=tiers("cheap", "strong"), gates=[broken_gate])
    meta = cascade_meta(call(cascade, mode, "q"))
    assert meta["tier"] == 1
    assert (
        meta["attempts"][0]["reason"] == "gate raised RuntimeError: gate backend down"
    )
    assert meta["attempts"][0]["accepted"] is False


# --- gate forms ------------------------------------------------------------------------


def test_plain_functions_bools_dicts_and_async_functions_are_gates(mode: str) -> None:
    seen: list[GateInput] = []

    def long_enough(gate_input: GateInput) -> bool:
        seen.append(gate_input)
        return len(gate_input.text) > 3

    async def mentions_paris(gate_input: GateInput) -> dict[str, Any]:
        return {"passed": "Paris" in gate_input.text, "score": 0.5, "reason": "looked"}

    cascade = CascadingChatModel(
        models=tiers("no", "Lyon!", "Paris"), gates=[long_enough, mentions_paris]
    )
    meta = cascade_meta(call(cascade, mode, "Capital of France?"))
    assert meta["tier"] == 2
    assert meta["attempts"][0]["score"] == 0.0
    assert meta["attempts"][1]["score"] == 0.5
    assert meta["attempts"][1]["reason"] == "looked"
    assert meta["attempts"][1]["gate"] == "mentions_paris"
    assert seen[0].question == "Capital of France?"
    assert seen[0].tier == 0
    assert seen[0].model == "m0"
    assert seen[0].tools == []
    assert seen[0].chat_model is cascade.models[0]


def test_a_runnable_is_a_gate() -> None:
    gate: RunnableLambda[GateInput, GateResult] = RunnableLambda(
        lambda gi: GateResult(passed="yes" in gi.text, score=0.9)
    )
    cascade = CascadingChatModel(models=tiers("yes", "no"), gates=[gate])
    assert cascade_meta(cascade.invoke("q"))["attempts"][0]["score"] == 0.9


def test_gate_returning_nonsense_fails_closed() -> None:
    cascade = CascadingChatModel(models=tiers("a", "b"), gates=[lambda gi: "sure"])
    reason = cascade_meta(cascade.invoke("q"))["attempts"][0]["reason"]
    assert reason.startswith("gate raised TypeError: lambda_gate returned str")


# --- construction errors ------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"models": []}, "models is empty"),
        ({"models": ["gpt-4o"]}, "models[0] is a str, not a chat model"),
        ({"models": "gpt-4o"}, "models must be a list of chat models"),
        (
            {"models": tiers("a", "b", "c"), "gates": [HedgingGate()] * 3},
            "3 models need 2 gates (one per non-final tier) or 1 gate",
        ),
        ({"models": tiers("a", "b")}, "2 models need 1 gate "),
        ({"models": tiers("a"), "gates": [HedgingGate()]}, "one model needs no gates"),
        ({"models": tiers("a", "b"), "gates": [42]}, "gates[0] must be a Gate"),
        ({"models": tiers("a"), "review_gate": "strict"}, "review_gate must be a Gate"),
    ],
)
def test_bad_configuration_fails_at_construction(
    kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises((ValidationError, TypeError, ValueError)) as info:
        CascadingChatModel(**kwargs)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        (lambda: LogprobGate(threshold=1.5), "less than or equal to 1"),
        (lambda: LogprobGate(threshold=-0.1), "greater than or equal to 0"),
        (lambda: MinLengthGate(min_chars=0), "greater than or equal to 1"),
        (lambda: HedgingGate(phrases=[]), "at least one non-empty phrase"),
        (lambda: HedgingGate(phrases="not sure"), "not one string"),
    ],
)
def test_bad_gate_settings_fail_at_construction(
    factory: Callable[[], Any], message: str
) -> None:
    with pytest.raises((ValidationError, TypeError)) as info:
        factory()
    assert message in str(info.value)


# --- usage -----------------------------------------------------------------------


def test_usage_is_the_total_of_the_call_reported_under_the_cascade_name() -> None:
    cascade = CascadingChatModel(
        models=tiers("I am not sure", "yes"), gates=[HedgingGate()]
    )
    with get_usage_metadata_callback() as cb:
        answer = cascade.invoke("q")
    assert answer.usage_metadata is not None
    assert answer.usage_metadata["total_tokens"] == 10  # two attempts of 5 tokens
    assert [a["usage"]["total_tokens"] for a in cascade_meta(answer)["attempts"]] == [
        5,
        5,
    ]
    # The children are counted under their own names, the call under the cascade's.
    assert cb.usage_metadata["m0"]["total_tokens"] == 5
    assert cb.usage_metadata["m1"]["total_tokens"] == 5
    assert cb.usage_metadata["cascade"]["total_tokens"] == 10


@pytest.mark.parametrize("mode", ["stream", "astream"])
def test_streamed_usage_is_on_one_chunk(mode: str) -> None:
    cascade = CascadingChatModel(
        models=tiers("I am not sure", "yes"), gates=[HedgingGate()]
    )
    chunks = (
        list(cascade.stream("q"))
        if mode == "stream"
        else asyncio.run(_acollect(cascade, "q"))
    )
    with_usage = [c for c in chunks if c.usage_metadata]
    assert len(with_usage) == 1
    usage = with_usage[0].usage_metadata
    assert usage is not None
    assert usage["total_tokens"] == 10
    assert chunks[-1].chunk_position == "last"
    assert sum(1 for c in chunks if c.response_metadata.get("cascade")) == 1


async def _acollect(model: Any, value: Any) -> list[Any]:
    return [c async for c in model.astream(value)]


# --- logprobs through the cascade ---------------------------------------------------


def test_logprob_gate_on_child_logprobs(mode: str) -> None:
    unsure = AIMessage("12", response_metadata=logprob_meta(-0.9, -1.2))
    sure = AIMessage("12", response_metadata=logprob_meta(-0.01, -0.02))
    cheap = ScriptedChatModel(model="cheap", script=[unsure, sure])
    cascade = CascadingChatModel(
        models=[cheap, ScriptedChatModel(model="strong", reply="13")],
        gates=[LogprobGate(threshold=0.8)],
    )
    first = cascade_meta(call(cascade, mode, "q"))
    second = cascade_meta(call(cascade, mode, "q"))
    assert first["tier"] == 1
    assert first["attempts"][0]["score"] == pytest.approx(0.3499, abs=1e-3)
    assert second["tier"] == 0
    assert second["attempts"][0]["score"] == pytest.approx(0.985, abs=1e-3)


def test_live_final_tier_streams_its_tokens_with_logprobs() -> None:
    final = ScriptedChatModel(
        model="strong",
        script=[AIMessage("Paris", response_metadata=logprob_meta(-0.1, -0.2))],
    )
    cascade = CascadingChatModel(
        models=[ScriptedChatModel(reply="I'm not sure"), final], gates=[HedgingGate()]
    )
    chunks = list(cascade.stream("q"))
    assert [c.content for c in chunks] == ["P", "aris", ""]
    merged = merge_chunks(chunks)
    assert len(merged.response_metadata["logprobs"]["content"]) == 2
    assert merged.response_metadata["model_name"] == "cascade"


# --- concurrency -------------------------------------------------------------------


async def test_100_concurrent_ainvoke_calls_each_get_their_own_metadata() -> None:
    def cheap(messages: list[BaseMessage]) -> AIMessage:
        n = int(messages[-1].text)
        return AIMessage("I am not sure" if n % 3 == 0 else f"cheap {n}")

    def strong(messages: list[BaseMessage]) -> AIMessage:
        return AIMessage(f"strong {messages[-1].text}")

    cascade = CascadingChatModel(
        models=[
            ScriptedChatModel(model="cheap", responder=cheap, delay_s=0.01),
            ScriptedChatModel(model="strong", responder=strong, delay_s=0.005),
        ],
        gates=[HedgingGate()],
    )
    random.seed(7)
    order = list(range(100))
    random.shuffle(order)
    answers = await asyncio.gather(*(cascade.ainvoke(str(n)) for n in order))
    for n, answer in zip(order, answers, strict=True):
        meta = cascade_meta(answer)
        escalated = n % 3 == 0
        assert answer.text == (f"strong {n}" if escalated else f"cheap {n}")
        assert meta["tier"] == int(escalated)
        assert len(meta["attempts"]) == 1 + int(escalated)
        assert meta["attempts"][0]["accepted"] is not escalated


def test_batch_calls_are_independent() -> None:
    cascade = CascadingChatModel(
        models=[
            ScriptedChatModel(responder=lambda m: AIMessage(m[-1].text)),
            ScriptedChatModel(model="strong", reply="strong"),
        ],
        gates=[MinLengthGate(min_chars=4)],
    )
    answers = cascade.batch(["a", "long one", "b", "longer"])
    assert [a.text for a in answers] == ["strong", "long one", "strong", "longer"]
    assert [cascade_meta(a)["tier"] for a in answers] == [1, 0, 1, 0]


# --- LCEL ---------------------------------------------------------------------------


def test_cascade_in_an_lcel_chain_nests_attempts_and_gates(mode: str) -> None:
    recorder = RunRecorder()
    cascade = CascadingChatModel(
        models=tiers("I'm not sure", "Paris"), gates=[HedgingGate()]
    )
    chain = (
        ChatPromptTemplate.from_messages([("human", "Capital of {country}?")]) | cascade
    )
    answer = call(chain, mode, {"country": "France"}, {"callbacks": [recorder]})
    assert answer.text == "Paris"
    (cascade_run,) = recorder.cascade_runs()
    tier0, tier1 = recorder.tagged("cascade:tier:0"), recorder.tagged("cascade:tier:1")
    gates = recorder.tagged("cascade:gate")
    assert len(tier0) == len(tier1) == len(gates) == 1
    for run in (*tier0, *tier1, *gates):
        assert run.parent_run_id == cascade_run.run_id, run
        assert "nostream" in run.tags
    assert gates[0].name == "HedgingGate"
    chain_run = next(r for r in recorder.runs.values() if r.parent_run_id is None)
    assert cascade_run.parent_run_id == chain_run.run_id


def test_fake_list_model_is_a_valid_tier() -> None:
    cascade = CascadingChatModel(
        models=[
            FakeListChatModel(responses=["I am not sure."]),
            FakeListChatModel(responses=["ok"]),
        ],
        gates=[HedgingGate()],
    )
    assert cascade.invoke("q").text == "ok"


# --- tools and structured output -----------------------------------------------------


class GetWeather(BaseModel):
    """Get the weather in a city."""

    city: str


def _tool_call(name: str, args: dict[str, Any]) -> AIMessage:
    return AIMessage("", tool_calls=[{"name": name, "args": args, "id": "call_1"}])


def test_bind_tools_reaches_every_tier_and_gates_see_tool_calls(mode: str) -> None:
    recorder = RunRecorder()
    seen: list[GateInput] = []

    def no_unknown_tools(gate_input: GateInput) -> bool:
        seen.append(gate_input)
        names = {t["function"]["name"] for t in gate_input.tools}
        return all(tc["name"] in names for tc in gate_input.response.tool_calls)

    cheap = ScriptedChatModel(
        model="cheap", script=[_tool_call("get_wether", {"city": "Oslo"})]
    )
    strong = ScriptedChatModel(
        model="strong", script=[_tool_call("GetWeather", {"city": "Oslo"})]
    )
    cascade = CascadingChatModel(models=[cheap, strong], gates=[no_unknown_tools])
    bound = cascade.bind_tools([GetWeather], tool_choice="any")
    answer = call(bound, mode, "Weather in Oslo?", {"callbacks": [recorder]})
    assert answer.tool_calls[0]["name"] == "GetWeather"
    assert answer.tool_calls[0]["args"] == {"city": "Oslo"}
    for model in (cheap, strong):
        (only,) = model.calls
        assert only["tools"][0]["function"]["name"] == "GetWeather"
        assert only["tool_choice"] == "any"
    assert seen[0].tools[0]["function"]["name"] == "GetWeather"
    assert seen[0].text == ""
    (cascade_run,) = recorder.cascade_runs()
    for tag in ("cascade:tier:0", "cascade:tier:1", "cascade:gate"):
        (run,) = recorder.tagged(tag)
        assert run.parent_run_id == cascade_run.run_id, (tag, recorder.runs)


@pytest.mark.parametrize("mode", ["invoke", "ainvoke"])
def test_with_structured_output_escalates_on_unparseable_answer(mode: str) -> None:
    cheap = ScriptedChatModel(model="cheap", script=[AIMessage("it is sunny")])
    strong = ScriptedChatModel(
        model="strong", script=[_tool_call("GetWeather", {"city": "Oslo"})]
    )
    cascade = CascadingChatModel(models=[cheap, strong], gates=[lambda gi: True])
    structured = cascade.with_structured_output(GetWeather, include_raw=True)
    result = call(structured, mode, "Weather in Oslo?")
    assert result["parsed"] == GetWeather(city="Oslo")
    assert result["parsing_error"] is None
    meta = cascade_meta(result["raw"])
    assert meta["tier"] == 1
    assert meta["attempts"][0]["reason"].startswith("structured output did not parse")
    assert cheap.calls[0]["tools"][0]["function"]["name"] == "GetWeather"


def test_with_structured_output_plain_returns_the_object() -> None:
    strong = ScriptedChatModel(
        model="strong", script=[_tool_call("GetWeather", {"city": "Oslo"})]
    )
    cascade = CascadingChatModel(models=[strong])
    assert cascade.with_structured_output(GetWeather).invoke("q") == GetWeather(
        city="Oslo"
    )


def test_final_tier_unparseable_structured_output_is_flagged_for_review() -> None:
    cascade = CascadingChatModel(models=[ScriptedChatModel(script=[AIMessage("nope")])])
    result = cascade.with_structured_output(GetWeather, include_raw=True).invoke("q")
    assert result["parsed"] is None
    meta = cascade_meta(result["raw"])
    assert meta["needs_review"] is True
    assert "did not parse" in meta["review_reason"]


# --- identity ------------------------------------------------------------------------


def test_different_children_give_different_cache_keys() -> None:
    a = CascadingChatModel(models=tiers("x", "y"), gates=[HedgingGate()])
    b = CascadingChatModel(models=tiers("x", "z"), gates=[HedgingGate()])
    c = CascadingChatModel(models=tiers("x", "y"), gates=[MinLengthGate(min_chars=3)])
    keys = {m._get_llm_string() for m in (a, b, c)}
    assert len(keys) == 3
    assert (
        a._get_llm_string()
        == CascadingChatModel(
            models=tiers("x", "y"), gates=[HedgingGate()]
        )._get_llm_string()
    )


def test_ls_params_name_the_cascade() -> None:
    params = CascadingChatModel(models=tiers("x"))._get_ls_params()
    assert params["ls_provider"] == "langchain_cascade"
    assert params["ls_model_name"] == "cascade"
