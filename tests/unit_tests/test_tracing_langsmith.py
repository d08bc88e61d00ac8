"""The cascade's runs as LangSmith receives them, over HTTP on 127.0.0.1.

The real ``langsmith.Client`` sends to a local receiver that speaks the ingest
protocol (``tests/langsmith_receiver.py``); the assertions read what arrived.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import tool
from langchain_core.tracers import LangChainTracer

from langchain_cascade import CascadingChatModel
from langchain_cascade.gates import HedgingGate
from tests.langsmith_receiver import LangSmithReceiver
from tests.unit_tests.fake_models import ScriptedChatModel, call


@pytest.fixture(scope="module")
def receiver() -> Iterator[LangSmithReceiver]:
    with LangSmithReceiver() as rx:
        yield rx


def _traced(rx: LangSmithReceiver) -> tuple[LangChainTracer, RunnableConfig]:
    rx.clear()
    tracer = rx.tracer(project_name="cascade-tests")
    return tracer, {"callbacks": [tracer]}


def _cascade_run(rx: LangSmithReceiver) -> dict[str, Any]:
    runs = [
        r
        for r in rx.runs.values()
        if r["run_type"] == "llm"
        and (r.get("extra") or {}).get("metadata", {}).get("ls_provider")
        == "langchain_cascade"
    ]
    assert len(runs) == 1, rx.tree()
    return runs[0]


def _assert_nested(rx: LangSmithReceiver, tiers: int, gates: int) -> dict[str, Any]:
    cascade = _cascade_run(rx)
    children = rx.children_of(cascade["id"])
    tags = [set(c["tags"] or []) for c in children]
    for i in range(tiers):
        assert sum(f"cascade:tier:{i}" in t for t in tags) == 1, rx.tree()
    assert sum("cascade:gate" in t for t in tags) == gates, rx.tree()
    for child in children:
        assert child["trace_id"] == cascade["trace_id"]
        assert child["dotted_order"].startswith(cascade["dotted_order"])
        assert child["end_time"] is not None
    return cascade


def test_attempt_and_gate_runs_nest_under_the_cascade_run(
    receiver: LangSmithReceiver, mode: str
) -> None:
    tracer, config = _traced(receiver)
    cascade = CascadingChatModel(
        models=[
            ScriptedChatModel(model="cheap", reply="I am not sure"),
            ScriptedChatModel(model="strong", reply="Paris"),
        ],
        gates=[HedgingGate()],
    )
    assert call(cascade, mode, "Capital of France?", config).text == "Paris"
    tracer.wait_for_futures()
    assert receiver.wait_for(lambda runs: len(runs) >= 4), receiver.tree()
    cascade_run = _assert_nested(receiver, tiers=2, gates=1)
    (gate_run,) = receiver.find(tag="cascade:gate")
    assert gate_run["name"] == "HedgingGate"
    assert gate_run["outputs"]["output"]["passed"] is False
    assert gate_run["inputs"]["input"]["response"]["content"] == "I am not sure"
    (generation,) = cascade_run["outputs"]["generations"][0]
    meta = generation["message"]["kwargs"]["response_metadata"]["cascade"]
    assert meta["tier"] == 1
    assert [a["accepted"] for a in meta["attempts"]] == [False, True]
    assert receiver.unexpected_requests == []


def test_runs_nest_when_the_child_is_reached_through_bind_tools(
    receiver: LangSmithReceiver, mode: str
) -> None:
    @tool
    def get_weather(city: str) -> str:
        """Weather in a city."""
        return "sunny"

    tracer, config = _traced(receiver)
    call_ = {"name": "get_weather", "args": {"city": "Oslo"}, "id": "c1"}
    cascade = CascadingChatModel(
        models=[
            ScriptedChatModel(model="cheap", reply="I am not sure"),
            ScriptedChatModel(
                model="strong", script=[AIMessage("", tool_calls=[call_])]
            ),
        ],
        gates=[HedgingGate()],
    )
    prompt = ChatPromptTemplate.from_messages([("human", "{q}")])
    chain = prompt | cascade.bind_tools([get_weather])
    answer = call(chain, mode, {"q": "Weather in Oslo?"}, config)
    assert answer.tool_calls[0]["name"] == "get_weather"
    tracer.wait_for_futures()
    assert receiver.wait_for(lambda runs: len(runs) >= 6), receiver.tree()
    cascade_run = _assert_nested(receiver, tiers=2, gates=1)
    (root,) = receiver.roots()
    assert cascade_run["parent_run_id"] == root["id"], receiver.tree()


def test_runs_nest_inside_create_agent(receiver: LangSmithReceiver) -> None:
    from langchain.agents import create_agent

    ran: list[str] = []

    @tool
    def get_weather(city: str) -> str:
        """Weather in a city."""
        ran.append(city)
        return f"sunny in {city}"

    tracer, config = _traced(receiver)
    call_ = {"name": "get_weather", "args": {"city": "Oslo"}, "id": "c1"}
    strong = ScriptedChatModel(
        model="strong",
        script=[AIMessage("", tool_calls=[call_]), AIMessage("It is sunny in Oslo.")],
    )
    cheap = ScriptedChatModel(model="cheap", reply="I am not sure")
    cascade = CascadingChatModel(models=[cheap, strong], gates=[HedgingGate()])
    agent = create_agent(cascade, tools=[get_weather])
    result = asyncio.run(
        agent.ainvoke({"messages": [HumanMessage("Weather in Oslo?")]}, config)
    )
    assert ran == ["Oslo"]
    assert result["messages"][-1].text == "It is sunny in Oslo."
    tracer.wait_for_futures()

    def is_cascade(run: dict[str, Any]) -> bool:
        metadata = (run.get("extra") or {}).get("metadata", {})
        return bool(
            run["run_type"] == "llm"
            and metadata.get("ls_provider") == "langchain_cascade"
        )

    def two_cascade_calls(runs: dict[str, Any]) -> bool:
        return sum(is_cascade(r) for r in runs.values()) == 2

    assert receiver.wait_for(two_cascade_calls), receiver.tree()
    cascade_runs = [r for r in receiver.runs.values() if is_cascade(r)]
    for cascade_run in cascade_runs:
        children = receiver.children_of(cascade_run["id"])
        tags = [set(c["tags"] or []) for c in children]
        assert any("cascade:tier:0" in t for t in tags), receiver.tree()
        assert any("cascade:tier:1" in t for t in tags), receiver.tree()
        assert any("cascade:gate" in t for t in tags), receiver.tree()
    # No attempt was attached to the graph's nodes instead of the cascade.
    for run in receiver.find(tag="cascade:tier:0"):
        parent = receiver.runs[str(run["parent_run_id"])]
        assert parent["run_type"] == "llm", receiver.tree()
