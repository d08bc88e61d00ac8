"""Gates for agent turns: judge a tool call and a final answer differently.

In a tool loop a model answers in two kinds of turns. A *tool turn* picks the
next tool: it is judged on the call's validity (the tool exists, the arguments
fit its schema, the loop is not going round in circles). An *answer turn* ends
the loop with text for the user: it is judged on its quality. :func:`by_turn`
dispatches one answer to the gate of its kind; :class:`ToolLoopGate` catches a
model that repeats a call it already made in the same run.
"""

from __future__ import annotations

import json
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.runnables import RunnableConfig
from pydantic import field_validator

from langchain_cascade.gates.base import Gate, GateInput, GateResult, coerce_gate

__all__ = [
    "ByTurn",
    "ToolFirstGate",
    "ToolLoopGate",
    "by_turn",
    "calls_tools",
    "run_messages",
]


def calls_tools(message: AIMessage) -> bool:
    """Whether an answer is a tool turn: it holds tool calls, valid or not.

    Args:
        message: A model's answer.

    Returns:
        ``True`` for a tool turn, ``False`` for an answer turn.
    """
    return bool(message.tool_calls or message.invalid_tool_calls)


def run_messages(messages: list[BaseMessage]) -> list[BaseMessage]:
    """The messages of the current agent run: from the last human message on.

    Args:
        messages: A conversation.

    Returns:
        Its tail starting at the last human message (all of it when none).
    """
    for index in range(len(messages) - 1, -1, -1):
        if messages[index].type == "human":
            return messages[index:]
    return list(messages)


class _Passes(Gate):
    """Accepts every answer (the turn kind has no gate of its own)."""

    def evaluate(self, gate_input: GateInput, config: RunnableConfig) -> GateResult:
        """Pass."""
        return GateResult(passed=True, score=1.0, reason="no gate for this turn")


class ByTurn(Gate):
    """Judges tool turns with ``tool_calls`` and answer turns with ``answer``.

    The verdict is the chosen gate's, with its reason prefixed by the turn kind
    (``"tool turn: ..."`` or ``"answer turn: ..."``) and ``details["turn"]``
    set, so an attempt's record says which policy judged it. Build it with
    :func:`by_turn`.
    """

    tool_calls: Gate
    """The gate for answers that call tools."""

    answer: Gate
    """The gate for answers without tool calls."""

    @field_validator("tool_calls", "answer", mode="before")
    @classmethod
    def _coerce(cls, value: object) -> Gate:
        return _Passes() if value is None else coerce_gate(value, where="by_turn")

    def _pick(self, gate_input: GateInput) -> tuple[str, Gate]:
        if calls_tools(gate_input.response):
            return "tool", self.tool_calls
        return "answer", self.answer

    @staticmethod
    def _label(turn: str, result: GateResult) -> GateResult:
        return result.model_copy(
            update={
                "reason": f"{turn} turn: {result.reason}",
                "details": {**result.details, "turn": turn},
            }
        )

    def evaluate(self, gate_input: GateInput, config: RunnableConfig) -> GateResult:
        """Run the gate of the answer's turn kind."""
        turn, gate = self._pick(gate_input)
        return self._label(turn, gate.evaluate(gate_input, config))

    async def aevaluate(
        self, gate_input: GateInput, config: RunnableConfig
    ) -> GateResult:
        """Run the gate of the answer's turn kind, asynchronously."""
        turn, gate = self._pick(gate_input)
        return self._label(turn, await gate.aevaluate(gate_input, config))


def by_turn(*, tool_calls: object = None, answer: object = None) -> ByTurn:
    """A gate that judges tool turns and answer turns with different gates.

    Args:
        tool_calls: Gate (or function, or Runnable) for answers that call tools;
            ``None`` accepts every tool turn.
        answer: Gate for answers without tool calls; ``None`` accepts every one.

    Returns:
        The combined gate.

    Example:
        .. code-block:: python

            from langchain_cascade.gates import HedgingGate, ToolCallGate, by_turn

            gate = by_turn(tool_calls=ToolCallGate(), answer=HedgingGate())
    """
    return ByTurn(tool_calls=tool_calls, answer=answer)


def _call_key(name: str, args: Any) -> str:
    return f"{name}({json.dumps(args, sort_keys=True, default=str)})"


class ToolLoopGate(Gate):
    """Fails a tool turn that repeats a call already made in this agent run.

    A small model in a tool loop often calls the same tool with the same
    arguments again after the result came back, instead of answering. The run is
    the conversation since the last human message. With ``max_calls`` set, a
    turn that would take the run past that many tool calls fails too. Answer
    turns pass.
    """

    max_calls: int | None = None
    """Most tool calls one run may make, ``None`` for no limit."""

    def evaluate(self, gate_input: GateInput, config: RunnableConfig) -> GateResult:
        """Compare the answer's calls with the run's earlier ones."""
        calls = gate_input.response.tool_calls
        if not calls:
            return GateResult(passed=True, score=1.0, reason="no tool calls")
        earlier = [
            _call_key(call["name"], call["args"])
            for message in run_messages(gate_input.messages)
            if isinstance(message, AIMessage)
            for call in message.tool_calls
        ]
        repeated = [
            key
            for call in calls
            if (key := _call_key(call["name"], call["args"])) in earlier
        ]
        if repeated:
            return GateResult(
                passed=False,
                score=0.0,
                reason=f"repeats a call made earlier in this run: {repeated[0]}",
                details={"repeated": repeated},
            )
        total = len(earlier) + len(calls)
        if self.max_calls is not None and total > self.max_calls:
            return GateResult(
                passed=False,
                score=0.0,
                reason=f"{total} tool calls in this run, over max_calls "
                f"{self.max_calls}",
            )
        return GateResult(passed=True, score=1.0, reason="no repeated call")


class ToolFirstGate(Gate):
    """Fails a plain answer to a fresh question while tools are bound.

    For agents whose every question needs a tool (a lookup, a calculation): a
    cheap model that answers from memory instead of calling one is escalated.
    Once the run holds a tool result, a plain answer passes: that is the turn
    that should answer. Tool turns pass (judge them with ``ToolCallGate``).
    """

    def evaluate(self, gate_input: GateInput, config: RunnableConfig) -> GateResult:
        """Check that a fresh question got a tool call."""
        if calls_tools(gate_input.response) or not gate_input.tools:
            return GateResult(passed=True, score=1.0, reason="tool use not required")
        if any(m.type == "tool" for m in run_messages(gate_input.messages)):
            return GateResult(passed=True, score=1.0, reason="answers a tool result")
        return GateResult(
            passed=False,
            score=0.0,
            reason="answered a fresh question without calling a bound tool",
        )
