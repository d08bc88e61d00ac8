"""The cascade in a real ``create_agent`` tool loop, traced to a local LangSmith receiver.

Real tiers: Qwen2.5-Coder-0.5B and 1.5B with the package's tool-calling template,
gated by the policy of ``examples/agent.py``.
A weather question runs through the cascade as the agent's model and through
``CascadeMiddleware``, both sticky per thread: the 0.5B picks the tool, its
second draft (another call after the result) is rejected and the 1.5B answers.
The traces must show every attempt nested under the agent's model node and the
agent's state must hold no rejected draft's tool call. A second question on the
same thread must then start at the 1.5B (only its first model step is run).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver

from examples.agent import ANSWER_GATE, CHEAP, STRONG, TOOL_GATE
from langchain_cascade import CascadingChatModel
from langchain_cascade.gates import by_turn
from langchain_cascade.local_models import LocalModels
from langchain_cascade.middleware import CascadeMiddleware
from tests.langsmith_receiver import LangSmithReceiver

pytestmark = pytest.mark.real_models

QUESTION = "What is the weather in Oslo today?"


@pytest.fixture(scope="module")
def receiver() -> Iterator[LangSmithReceiver]:
    with LangSmithReceiver() as rx:
        yield rx


def _agent(form: str, tool_models: LocalModels, ran: list[str]) -> Any:
    @tool
    def get_weather(city: str) -> str:
        """Get today's weather for a city."""
        ran.append(city)
        return f"Sunny and 21 C in {city}."

    cheap = tool_models.chat_model(CHEAP, temperature=0, max_tokens=48, timeout=300)
    strong = tool_models.chat_model(STRONG, temperature=0, max_tokens=48, timeout=300)
    if form == "cascade":
        cascade = CascadingChatModel(
            models=[cheap, strong],
            gates=[by_turn(tool_calls=TOOL_GATE, answer=ANSWER_GATE)],
            sticky="thread",
        )
        return create_agent(cascade, tools=[get_weather], checkpointer=InMemorySaver())
    layer = CascadeMiddleware(
        [cheap], gates=ANSWER_GATE, tool_gate=TOOL_GATE, sticky="thread"
    )
    return create_agent(
        strong, tools=[get_weather], middleware=[layer], checkpointer=InMemorySaver()
    )


def _state_call_ids(messages: list[BaseMessage]) -> set[str]:
    return {
        str(c["id"]) for m in messages if isinstance(m, AIMessage) for c in m.tool_calls
    }


def _output_call_ids(run: dict[str, Any]) -> set[str]:
    """Tool-call ids in a traced chat-model run's output message."""
    ids: set[str] = set()
    for generation in (run.get("outputs") or {}).get("generations", [[]])[0]:
        message = generation.get("message", {})
        kwargs = message.get("kwargs", message)
        ids |= {str(c.get("id")) for c in kwargs.get("tool_calls", [])}
    return ids


@pytest.mark.parametrize("form", ["cascade", "middleware"])
def test_traced_agent_run_on_real_tool_calling_models(
    form: str, tool_models: LocalModels, receiver: LangSmithReceiver
) -> None:
    receiver.clear()
    tracer = receiver.tracer(project_name=f"agents-real-{form}")
    ran: list[str] = []
    agent = _agent(form, tool_models, ran)
    thread: Any = {"configurable": {"thread_id": f"real-{form}"}}
    result = agent.invoke(
        {"messages": [HumanMessage(QUESTION)]},
        {**thread, "callbacks": [tracer], "recursion_limit": 8},
    )
    messages = result["messages"]
    stories = [
        m.response_metadata["cascade"] for m in messages if isinstance(m, AIMessage)
    ]
    # Real tool calls, run by the agent, and a final answer from the results.
    assert ran == ["Oslo"], messages
    assert isinstance(messages[-1], AIMessage)
    assert not messages[-1].tool_calls
    assert "21" in messages[-1].text or "sunny" in messages[-1].text.lower()

    tracer.wait_for_futures()
    assert receiver.wait_for(
        lambda runs: bool(runs) and all(r["end_time"] for r in runs.values())
    ), receiver.tree()
    attempts = [
        *receiver.find(tag="cascade:tier:0"),
        *receiver.find(tag="cascade:tier:1"),
    ]
    assert len(attempts) == sum(len(s["attempts"]) for s in stories), receiver.tree()
    for run in [*attempts, *receiver.find(tag="cascade:gate")]:
        assert receiver.ancestor(run, "model") is not None, receiver.tree()

    # A rejected draft's tool calls are traced but never reach the agent's state.
    rejected = [a for s in stories for a in s["attempts"] if not a["accepted"]]
    assert rejected, stories
    drafted = set().union(*(_output_call_ids(r) for r in attempts))
    kept = _state_call_ids(messages)
    assert kept <= drafted
    assert drafted - kept, "the rejected draft made tool calls that were traced"

    # Sticky per thread: the next question's first model call starts at tier 1.
    assert stories[-1]["tier"] == 1, stories
    for update in agent.stream(
        {"messages": [HumanMessage("And is it warm there?")]},
        thread,
        stream_mode="updates",
    ):
        if "model" in update:
            (first,) = [
                m for m in update["model"]["messages"] if isinstance(m, AIMessage)
            ]
            break
    story = first.response_metadata["cascade"]
    assert [a["tier"] for a in story["attempts"]] == [1], story
    assert story["skipped_tiers"][0]["reason"].startswith("sticky (thread)"), story
