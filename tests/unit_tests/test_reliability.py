"""Issue #8: streaming, gates, drafts, usage, budget, timeouts, wrappers, arguments.

Each test names the defect it guards against; each failed on the code before its fix.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import RunnableConfig
from pydantic import BaseModel

from langchain_cascade import CascadingChatModel, GateInput, GateResult
from langchain_cascade.gates import Gate, HedgingGate, all_of
from tests.unit_tests.fake_models import ScriptedChatModel
from tests.unit_tests.test_chat_models import MODES, call, cascade_meta, tiers


class NoStreamModel(BaseChatModel):
    """A chat model without ``_stream``: ``.stream()`` yields one AIMessage."""

    reply: str = "final answer"
    tool_call: bool = False

    @property
    def _llm_type(self) -> str:
        return "no-stream"

    def _message(self) -> AIMessage:
        calls = (
            [{"name": "get_weather", "args": {"city": "Paris"}, "id": "c1"}]
            if self.tool_call
            else []
        )
        return AIMessage(
            self.reply,
            tool_calls=calls,
            usage_metadata={"input_tokens": 4, "output_tokens": 3, "total_tokens": 7},
        )

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self._message())])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return self._generate(messages, stop)

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self.bind(tools=tools, **kwargs)


class GetWeather(BaseModel):
    """Get the weather of a city."""

    city: str


# --- 1. a final tier that does not stream itself ----------------------------------


def _final_tiers() -> list[tuple[str, BaseChatModel, bool]]:
    return [
        ("no _stream", NoStreamModel(), False),
        (
            "disable_streaming=True",
            ScriptedChatModel(model="m1", reply="final answer", disable_streaming=True),
            False,
        ),
        (
            "disable_streaming='tool_calling' with tools",
            ScriptedChatModel(
                model="m1",
                reply="final answer",
                disable_streaming="tool_calling",
            ),
            True,
        ),
        ("no _stream, tool call", NoStreamModel(tool_call=True), True),
    ]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", _final_tiers(), ids=[c[0] for c in _final_tiers()])
def test_final_tier_that_does_not_stream_streams_through_the_cascade(
    mode: str, case: tuple[str, BaseChatModel, bool]
) -> None:
    _, final, with_tools = case
    cascade = CascadingChatModel(
        models=[ScriptedChatModel(model="m0", reply="I'm not sure"), final],
        gates=[HedgingGate()],
    )
    model: Any = cascade.bind_tools([GetWeather]) if with_tools else cascade
    answer = call(model, mode, "q")
    assert answer.text == "final answer"
    meta = cascade_meta(answer)
    assert meta["tier"] == 1
    assert [a["accepted"] for a in meta["attempts"]] == [False, True]
    if isinstance(final, NoStreamModel) and final.tool_call:
        assert [tc["args"] for tc in answer.tool_calls] == [{"city": "Paris"}]


@pytest.mark.parametrize("mode", ["stream", "astream"])
def test_streamed_answer_keeps_invalid_tool_calls(mode: str) -> None:
    broken = AIMessage(
        "",
        invalid_tool_calls=[
            {
                "name": "get_weather",
                "args": "{not json",
                "id": "c9",
                "error": "bad json",
                "type": "invalid_tool_call",
            }
        ],
    )
    cascade = CascadingChatModel(
        models=[ScriptedChatModel(model="m0", script=[broken]), *tiers("x")],
        gates=[lambda gi: True],
    )
    answer = call(cascade, mode, "q")
    assert cascade_meta(answer)["tier"] == 0
    assert [(c["name"], c["args"]) for c in answer.invalid_tool_calls] == [
        ("get_weather", "{not json")
    ]


# --- 2. a gate returning something that is not a GateResult -----------------------


class _Returns(Gate):
    value: Any = None

    def evaluate(self, gate_input: GateInput, config: RunnableConfig) -> Any:
        return self.value


def _np_bool(value: bool) -> Any:
    numpy = pytest.importorskip("numpy")
    return numpy.bool_(value)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("where", ["gate", "review_gate", "all_of part"])
@pytest.mark.parametrize(
    ("value", "passed", "reason"),
    [
        (None, False, "returned NoneType"),
        ({"score": 0.9}, False, "passed"),
        ("sure", False, "returned str"),
        (True, True, "returned True"),
        ("np_true", True, "returned True"),
        ("np_false", False, "returned False"),
        ({"passed": True, "score": 0.7}, True, ""),
    ],
)
def test_gate_subclass_returning_anything_fails_closed_never_crashes(
    mode: str, where: str, value: Any, passed: bool, reason: str
) -> None:
    if value in ("np_true", "np_false"):
        value = _np_bool(value == "np_true")
    gate = _Returns(value=value)
    if where == "review_gate":
        cascade = CascadingChatModel(models=tiers("only"), review_gate=gate)
        meta = cascade_meta(call(cascade, mode, "q"))
        assert meta["tier"] == 0
        assert meta["needs_review"] is (not passed)
        assert reason in meta["attempts"][0]["reason"]
        return
    used: Gate = gate if where == "gate" else all_of(HedgingGate(), gate)
    cascade = CascadingChatModel(models=tiers("cheap", "strong"), gates=[used])
    meta = cascade_meta(call(cascade, mode, "q"))
    assert meta["tier"] == (0 if passed else 1)
    assert reason in meta["attempts"][0]["reason"]


def test_gate_invoke_returns_a_gate_result_whatever_evaluate_returns() -> None:
    gate = _Returns(value=True)
    gate_input = GateInput(messages=[], response=AIMessage("x"))
    assert gate.invoke(gate_input) == GateResult(
        passed=True, score=1.0, reason="_Returns returned True"
    )
    assert asyncio.run(gate.ainvoke(gate_input)).passed is True


def test_numpy_bool_verdict_is_a_bool() -> None:
    verdict = GateResult.coerce(_np_bool(True), name="np_gate")
    assert verdict.passed is True
    assert verdict.score == 1.0
