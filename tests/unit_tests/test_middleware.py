"""The cascade in agent tool loops: CascadeMiddleware, sticky escalation, turn gates.

Fast fake models only; the same on real local models is in
``tests/integration_tests/test_agents_real.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from pydantic import BaseModel

from langchain_cascade import CascadingChatModel, GateInput
from langchain_cascade.gates import HedgingGate, ToolCallGate
from langchain_cascade.gates.turns import ToolFirstGate, ToolLoopGate, by_turn
from langchain_cascade.middleware import CascadeMiddleware
from langchain_cascade.sticky import reset_sticky, sticky_tier
from tests.langsmith_receiver import LangSmithReceiver
from tests.unit_tests.fake_models import ScriptedChatModel

USAGE = {"input_tokens": 10, "output_tokens": 5, "total_tokens": 15}
DRAFT = "DRAFT-MARKER"


def call(name: str, args: dict[str, Any], id_: str) -> AIMessage:
    return AIMessage(
        DRAFT if id_.startswith("bad") else "",
        tool_calls=[{"name": name, "args": args, "id": id_}],
        usage_metadata=USAGE,
    )


def answer(text: str) -> AIMessage:
    return AIMessage(text, usage_metadata=USAGE)


class Ran:
    def __init__(self) -> None:
        self.calls: list[str] = []


@pytest.fixture
def ran() -> Ran:
    return Ran()


@pytest.fixture
def get_weather(ran: Ran) -> Any:
    @tool
    def get_weather(city: str) -> str:
        """Get today's weather for a city."""
        ran.calls.append(city)
        return f"Sunny and 21 C in {city}."

    return get_weather


def texts(messages: list[BaseMessage]) -> str:
    return " | ".join(
        f"{m.type}:{m.text}:{getattr(m, 'tool_calls', '')}" for m in messages
    )


# --- turn gates ------------------------------------------------------------------


def _gate_input(
    response: AIMessage, messages: list[BaseMessage] | None = None
) -> GateInput:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    }
    return GateInput(
        messages=messages or [HumanMessage("Weather in Oslo?")],
        response=response,
        tools=[
            {
                "type": "function",
                "function": {"name": "get_weather", "parameters": schema},
            }
        ],
    )


def test_by_turn_judges_tool_turns_and_answer_turns_with_their_own_gate() -> None:
    gate = by_turn(tool_calls=ToolCallGate(), answer=HedgingGate())
    bad_call = gate.invoke(_gate_input(call("get_wether", {"city": "Oslo"}, "bad1")))
    assert not bad_call.passed
    assert bad_call.reason.startswith("tool turn: unknown tool 'get_wether'")
    assert bad_call.details["turn"] == "tool"
    good_call = gate.invoke(_gate_input(call("get_weather", {"city": "Oslo"}, "c1")))
    assert good_call.passed
    hedged = gate.invoke(_gate_input(answer("I am not sure.")))
    assert not hedged.passed
    assert hedged.reason.startswith("answer turn: ")
    # The hedging gate never sees tool turns: a call with hedged text passes.
    hedged_call = call("get_weather", {"city": "Oslo"}, "c2")
    hedged_call.content = "I am not sure, let me check."
    assert gate.invoke(_gate_input(hedged_call)).passed


def test_by_turn_without_a_gate_accepts_that_turn() -> None:
    gate = by_turn(tool_calls=ToolCallGate())
    assert gate.invoke(_gate_input(answer("I am not sure."))).passed
    assert asyncio.run(gate.ainvoke(_gate_input(answer("x")))).passed


def test_tool_loop_gate_fails_a_call_repeated_in_the_same_run() -> None:
    first = call("get_weather", {"city": "Oslo"}, "c1")
    history: list[BaseMessage] = [
        HumanMessage("Weather in Oslo?"),
        first,
        ToolMessage("Sunny", tool_call_id="c1"),
    ]
    gate = ToolLoopGate()
    again = gate.invoke(
        _gate_input(call("get_weather", {"city": "Oslo"}, "c2"), history)
    )
    assert not again.passed
    assert "repeats a call" in again.reason
    other = gate.invoke(
        _gate_input(call("get_weather", {"city": "Rome"}, "c3"), history)
    )
    assert other.passed
    # A new question is a new run: the same call is fine again.
    new_run = [*history, AIMessage("Sunny."), HumanMessage("And now?")]
    assert gate.invoke(
        _gate_input(call("get_weather", {"city": "Oslo"}, "c4"), new_run)
    ).passed
    limited = ToolLoopGate(max_calls=1)
    assert not limited.invoke(
        _gate_input(call("get_weather", {"city": "Rome"}, "c5"), history)
    ).passed


def test_tool_first_gate_wants_a_call_for_a_fresh_question_only() -> None:
    gate = ToolFirstGate()
    from_memory = gate.invoke(_gate_input(answer("Sunny.")))
    assert not from_memory.passed
    assert "without calling" in from_memory.reason
    assert gate.invoke(_gate_input(call("get_weather", {"city": "Oslo"}, "c1"))).passed
    after_result: list[BaseMessage] = [
        HumanMessage("Weather in Oslo?"),
        call("get_weather", {"city": "Oslo"}, "c1"),
        ToolMessage("Sunny", tool_call_id="c1"),
    ]
    assert gate.invoke(_gate_input(answer("Sunny."), after_result)).passed
    no_tools = GateInput(messages=[HumanMessage("Hi")], response=answer("Hello!"))
    assert gate.invoke(no_tools).passed


# --- sticky tiers from the conversation -------------------------------------------


def _answered(tier: int, model: str, text: str = "") -> AIMessage:
    return AIMessage(
        text, response_metadata={"cascade": {"tier": tier, "model": model}}
    )


NAMES = ["cheap", "strong"]


def test_sticky_run_scope_reads_the_answers_since_the_last_question() -> None:
    messages: list[BaseMessage] = [
        HumanMessage("q1"),
        _answered(1, "strong"),
        ToolMessage("r", tool_call_id="x"),
    ]
    start = sticky_tier(messages, "run", NAMES)
    assert start["first_tier"] == 1
    assert "sticky (run): tier 1 (strong)" in start["reason"]
    later = [*messages, _answered(1, "strong", "done"), HumanMessage("q2")]
    assert sticky_tier(later, "run", NAMES)["first_tier"] == 0
    assert sticky_tier(later, "thread", NAMES)["first_tier"] == 1


def test_sticky_ignores_other_cascades_and_stops_at_a_reset() -> None:
    foreign = [HumanMessage("q"), _answered(1, "someone-else")]
    assert sticky_tier(foreign, "thread", NAMES)["first_tier"] == 0
    history = [
        HumanMessage("q1"),
        _answered(1, "strong"),
        reset_sticky(HumanMessage("q2")),
    ]
    assert sticky_tier(history, "thread", NAMES)["first_tier"] == 0
    assert (
        sticky_tier([*history, _answered(1, "strong")], "thread", NAMES)["first_tier"]
        == 1
    )


# --- the middleware in create_agent ----------------------------------------------


def _loop_models() -> tuple[ScriptedChatModel, ScriptedChatModel]:
    """Cheap: a broken call, then a good answer. Strong: the right call."""
    cheap = ScriptedChatModel(
        model="cheap",
        script=[call("get_wether", {"city": "Oslo"}, "bad1"), answer("Sunny in Oslo.")],
    )
    strong = ScriptedChatModel(
        model="strong", script=[call("get_weather", {"city": "Oslo"}, "good1")]
    )
    return cheap, strong


def test_middleware_escalates_a_broken_tool_call_and_never_runs_it(
    get_weather: Any, ran: Ran
) -> None:
    cheap, strong = _loop_models()
    agent = create_agent(
        strong, tools=[get_weather], middleware=[CascadeMiddleware([cheap])]
    )
    result = agent.invoke({"messages": [HumanMessage("Weather in Oslo?")]})
    messages = result["messages"]
    assert ran.calls == ["Oslo"]
    assert [m.type for m in messages] == ["human", "ai", "tool", "ai"], texts(messages)
    assert DRAFT not in texts(messages)
    assert "bad1" not in texts(messages)
    tool_turn, final = messages[1], messages[3]
    story = tool_turn.response_metadata["cascade"]
    assert story["tier"] == 1
    assert story["model"] == "strong"
    assert story["attempts"][0]["reason"].startswith(
        "tool turn: unknown tool 'get_wether'"
    )
    assert story["usage"]["total_tokens"] == 30
    assert final.text == "Sunny in Oslo."
    assert final.response_metadata["cascade"]["tier"] == 0
    assert len(cheap.calls) == 2
    assert len(strong.calls) == 1


def test_middleware_keeps_drafts_out_of_the_message_stream(get_weather: Any) -> None:
    cheap, strong = _loop_models()
    agent = create_agent(
        strong, tools=[get_weather], middleware=[CascadeMiddleware([cheap])]
    )
    seen: list[Any] = []
    for chunk, _meta in agent.stream(
        {"messages": [HumanMessage("Weather in Oslo?")]}, stream_mode="messages"
    ):
        seen.append(chunk)
    streamed = " ".join(
        f"{c.text} {getattr(c, 'tool_calls', '')} {getattr(c, 'tool_call_chunks', '')}"
        for c in seen
    )
    assert "good1" in streamed
    assert "Sunny in Oslo." in streamed
    assert DRAFT not in streamed
    assert "bad1" not in streamed
    assert "get_wether" not in streamed


def test_middleware_async(get_weather: Any, ran: Ran) -> None:
    cheap, strong = _loop_models()
    agent = create_agent(
        strong, tools=[get_weather], middleware=[CascadeMiddleware([cheap])]
    )
    result = asyncio.run(
        agent.ainvoke({"messages": [HumanMessage("Weather in Oslo?")]})
    )
    assert ran.calls == ["Oslo"]
    assert result["messages"][1].response_metadata["cascade"]["tier"] == 1
    assert result["messages"][-1].text == "Sunny in Oslo."


def test_middleware_answer_turns_use_the_configured_gate(get_weather: Any) -> None:
    cheap = ScriptedChatModel(model="cheap", script=[answer("I am not sure.")])
    strong = ScriptedChatModel(model="strong", script=[answer("Paris.")])
    agent = create_agent(
        strong,
        tools=[get_weather],
        middleware=[CascadeMiddleware([cheap], gates=HedgingGate())],
    )
    result = agent.invoke({"messages": [HumanMessage("Capital of France?")]})
    final = result["messages"][-1]
    assert final.text == "Paris."
    assert final.response_metadata["cascade"]["attempts"][0]["reason"].startswith(
        "answer turn: "
    )


class Weather(BaseModel):
    city: str
    sky: str


def _structured_weather() -> AIMessage:
    """A tier's structured answer for Oslo: a ``Weather`` call, as agents ask it."""
    call = {"name": "Weather", "args": {"city": "Oslo", "sky": "sunny"}, "id": "s1"}
    return AIMessage("", tool_calls=[call], usage_metadata=USAGE)


def test_middleware_structured_response_from_the_accepted_tier(
    get_weather: Any,
) -> None:
    cheap = ScriptedChatModel(
        model="cheap",
        script=[_structured_weather()],
    )
    strong = ScriptedChatModel(model="strong", reply="unused")
    agent = create_agent(
        strong,
        tools=[get_weather],
        response_format=Weather,
        middleware=[CascadeMiddleware([cheap])],
    )
    result = agent.invoke({"messages": [HumanMessage("Weather in Oslo, structured.")]})
    assert result["structured_response"] == Weather(city="Oslo", sky="sunny")
    assert strong.calls == []
    ai = next(m for m in result["messages"] if m.type == "ai")
    assert ai.response_metadata["cascade"]["tier"] == 0


def test_middleware_validates_its_arguments() -> None:
    with pytest.raises(ValueError, match="at least one"):
        CascadeMiddleware([])
    with pytest.raises(TypeError, match="not a chat model"):
        CascadeMiddleware(["gpt"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="sticky"):
        CascadeMiddleware([ScriptedChatModel()], sticky="always")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="2 gates"):
        CascadeMiddleware(
            [ScriptedChatModel(), ScriptedChatModel()], gates=[HedgingGate()] * 3
        )


# --- sticky escalation in a multi-turn tool loop, both forms ------------------------


def _sticky_models() -> tuple[ScriptedChatModel, ScriptedChatModel]:
    """Cheap always breaks its calls; strong calls twice, then answers."""
    cheap = ScriptedChatModel(
        model="cheap", responder=lambda _m: call("get_wether", {"city": "X"}, "bad")
    )
    strong = ScriptedChatModel(
        model="strong",
        script=[
            call("get_weather", {"city": "Oslo"}, "s1"),
            call("get_weather", {"city": "Rome"}, "s2"),
            answer("Oslo and Rome are sunny."),
            call("get_weather", {"city": "Oslo"}, "s3"),
            answer("Still sunny."),
        ],
    )
    return cheap, strong


def _agent(form: str, sticky: str | None, get_weather: Any, **kwargs: Any) -> Any:
    cheap, strong = _sticky_models()
    if form == "middleware":
        agent = create_agent(
            strong,
            tools=[get_weather],
            middleware=[CascadeMiddleware([cheap], sticky=sticky)],  # type: ignore[arg-type]
            **kwargs,
        )
    else:
        cascade = CascadingChatModel(
            models=[cheap, strong], gates=[ToolCallGate()], sticky=sticky
        )
        agent = create_agent(cascade, tools=[get_weather], **kwargs)
    return agent, cheap, strong


def _stories(messages: list[BaseMessage]) -> list[dict[str, Any]]:
    return [m.response_metadata["cascade"] for m in messages if m.type == "ai"]


FORMS = ["middleware", "cascade"]


@pytest.mark.parametrize("form", FORMS)
def test_without_sticky_every_call_tries_the_cheap_tier_again(
    form: str, get_weather: Any
) -> None:
    agent, cheap, _strong = _agent(form, None, get_weather)
    result = agent.invoke({"messages": [HumanMessage("Weather in Oslo and Rome?")]})
    stories = _stories(result["messages"])
    assert [s["tier"] for s in stories] == [1, 1, 1]
    assert len(cheap.calls) == 3
    assert all(not s["skipped_tiers"] for s in stories)


@pytest.mark.parametrize("form", FORMS)
def test_sticky_run_starts_later_calls_at_the_escalated_tier(
    form: str, get_weather: Any, ran: Ran
) -> None:
    agent, cheap, _strong = _agent(form, "run", get_weather)
    result = agent.invoke({"messages": [HumanMessage("Weather in Oslo and Rome?")]})
    assert ran.calls == ["Oslo", "Rome"]
    stories = _stories(result["messages"])
    assert [s["tier"] for s in stories] == [1, 1, 1]
    assert len(cheap.calls) == 1  # only the first call tried it
    assert stories[0]["skipped_tiers"] == []
    for story in stories[1:]:
        assert [a["tier"] for a in story["attempts"]] == [1]
        assert story["escalated"] is False
        (skipped,) = story["skipped_tiers"]
        assert skipped["tier"] == 0
        assert skipped["reason"].startswith("sticky (run): tier 1 (strong)")


@pytest.mark.parametrize("form", FORMS)
def test_sticky_run_resets_on_a_new_question_and_thread_keeps_it(
    form: str, get_weather: Any
) -> None:
    for sticky, cheap_calls in (("run", 2), ("thread", 1)):
        agent, cheap, _ = _agent(
            form, sticky, get_weather, checkpointer=InMemorySaver()
        )
        config: Any = {"configurable": {"thread_id": f"t-{sticky}"}}
        agent.invoke({"messages": [HumanMessage("Weather in Oslo and Rome?")]}, config)
        assert len(cheap.calls) == 1
        result = agent.invoke({"messages": [HumanMessage("And Oslo again?")]}, config)
        # run: the new question tries the cheap tier once more; thread: never again.
        assert len(cheap.calls) == cheap_calls, sticky
        assert result["messages"][-1].text == "Still sunny."


@pytest.mark.parametrize("form", FORMS)
def test_sticky_thread_is_reset_by_a_marked_message(
    form: str, get_weather: Any
) -> None:
    agent, cheap, _ = _agent(form, "thread", get_weather, checkpointer=InMemorySaver())
    config: Any = {"configurable": {"thread_id": "t-reset"}}
    agent.invoke({"messages": [HumanMessage("Weather in Oslo and Rome?")]}, config)
    assert len(cheap.calls) == 1
    agent.invoke({"messages": [reset_sticky(HumanMessage("And Oslo again?"))]}, config)
    assert len(cheap.calls) == 2


def test_an_explicit_first_tier_wins_over_sticky() -> None:
    cheap = ScriptedChatModel(model="cheap", reply="cheap")
    strong = ScriptedChatModel(model="strong", reply="strong")
    cascade = CascadingChatModel(
        models=[cheap, strong], gates=[HedgingGate()], sticky="thread"
    )
    history = [HumanMessage("q"), _answered(1, "strong"), HumanMessage("q2")]
    assert cascade.invoke(history).text == "strong"
    assert cascade.invoke(history, first_tier=0).text == "cheap"


# --- the cascade as the agent's model -----------------------------------------------


def test_cascade_model_keeps_a_rejected_drafts_calls_out_of_the_agent(
    get_weather: Any, ran: Ran
) -> None:
    cheap, strong = _loop_models()
    cascade = CascadingChatModel(
        models=[cheap, strong], gates=[by_turn(tool_calls=ToolCallGate())]
    )
    agent = create_agent(cascade, tools=[get_weather])
    seen = list(
        agent.stream(
            {"messages": [HumanMessage("Weather in Oslo?")]}, stream_mode="messages"
        )
    )
    streamed = " ".join(
        f"{c.text} {getattr(c, 'tool_call_chunks', '')}"
        for c, _ in seen
        if isinstance(c, BaseMessage)
    )
    assert "good1" in streamed
    assert DRAFT not in streamed
    assert "bad1" not in streamed
    assert ran.calls == ["Oslo"]


def test_cascade_model_structured_response_and_profile(get_weather: Any) -> None:
    cheap = ScriptedChatModel(
        model="cheap",
        script=[_structured_weather()],
        profile={
            "tool_calling": True,
            "structured_output": False,
            "max_input_tokens": 4096,
        },
    )
    strong = ScriptedChatModel(
        model="strong",
        reply="unused",
        profile={
            "tool_calling": True,
            "structured_output": True,
            "max_input_tokens": 32768,
        },
    )
    cascade = CascadingChatModel(models=[cheap, strong], gates=[ToolCallGate()])
    assert cascade.profile == {
        "tool_calling": True,
        "structured_output": False,
        "max_input_tokens": 4096,
    }
    agent = create_agent(cascade, tools=[get_weather], response_format=Weather)
    result = agent.invoke({"messages": [HumanMessage("Weather in Oslo, structured.")]})
    assert result["structured_response"] == Weather(city="Oslo", sky="sunny")
    assert strong.calls == []


# --- traces: the local LangSmith receiver --------------------------------------------


@pytest.fixture(scope="module")
def receiver() -> Iterator[LangSmithReceiver]:
    with LangSmithReceiver() as rx:
        yield rx


def test_middleware_attempts_nest_under_the_model_node(
    receiver: LangSmithReceiver, get_weather: Any
) -> None:
    receiver.clear()
    tracer = receiver.tracer(project_name="cascade-middleware")
    cheap, strong = _loop_models()
    agent = create_agent(
        strong, tools=[get_weather], middleware=[CascadeMiddleware([cheap])]
    )
    result = agent.invoke(
        {"messages": [HumanMessage("Weather in Oslo?")]}, {"callbacks": [tracer]}
    )
    tracer.wait_for_futures()
    assert receiver.wait_for(
        lambda runs: (
            sum("cascade:gate" in (r["tags"] or []) for r in runs.values()) == 2
            and all(r["end_time"] for r in runs.values())
        )
    ), receiver.tree()
    tiers0 = receiver.find(tag="cascade:tier:0")
    tiers1 = receiver.find(tag="cascade:tier:1")
    gates = receiver.find(tag="cascade:gate")
    assert (len(tiers0), len(tiers1), len(gates)) == (2, 1, 2), receiver.tree()
    for run in [*tiers0, *tiers1, *gates]:
        node = receiver.ancestor(run, "model")
        assert node is not None, receiver.tree()
    # The draft was traced (the attempt is visible) but is not in the agent's state.
    draft = next(r for r in tiers0 if "bad1" in str(r.get("outputs")))
    assert "get_wether" in str(draft["outputs"])
    assert "bad1" not in texts(result["messages"])
