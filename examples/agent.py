"""A cascade as the model of a ``create_agent`` agent, with tool-call validation.

The local models cannot call tools (they write a fenced JSON block instead of a
tool call; see the README), so the strong tier here is a scripted stand-in for a
tool-calling model. The cheap tier is the real local Qwen2.5-Coder-0.5B. The gate
combines ``ToolCallGate`` (every call names a bound tool with valid arguments)
with a plain function: when the user has just asked, the answer must be a tool
call. So the local model's JSON-in-text answer escalates, and the agent only ever
sees valid tool calls.

Run: ``python -m examples.agent``
"""

from __future__ import annotations

from typing import Any

from langchain.agents import create_agent
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.tools import tool

from langchain_cascade import CascadingChatModel, GateInput, GateResult
from langchain_cascade.gates import ToolCallGate, all_of
from langchain_cascade.local_models import LocalModels


@tool
def get_weather(city: str) -> str:
    """Get today's weather for a city."""
    return f"Sunny and 21 C in {city}."


class ToolCallingStandIn(GenericFakeChatModel):
    """A scripted model standing in for a tool-calling strong model."""

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self


def calls_a_tool_when_asked(gate_input: GateInput) -> GateResult:
    """A question from the user needs a tool call; after a tool result, text is fine."""
    asked = gate_input.messages[-1].type == "human"
    if asked and not gate_input.response.tool_calls:
        return GateResult(
            passed=False, score=0.0, reason="answered without calling a tool"
        )
    return GateResult(passed=True, score=1.0, reason="tool use as expected")


def main() -> None:
    strong = ToolCallingStandIn(
        messages=iter(
            [
                AIMessage(
                    "",
                    tool_calls=[
                        {
                            "name": "get_weather",
                            "args": {"city": "Oslo"},
                            "id": "call_1",
                        }
                    ],
                ),
                AIMessage("It is sunny and 21 C in Oslo today."),
            ]
        )
    )
    with LocalModels(["qwen2.5-coder-0.5b"]) as models:
        cheap = models.chat_model("qwen2.5-coder-0.5b", temperature=0, max_tokens=48)
        cascade = CascadingChatModel(
            models=[cheap, strong],
            gates=[all_of(ToolCallGate(), calls_a_tool_when_asked)],
        )
        agent = create_agent(cascade, tools=[get_weather])
        result = agent.invoke(
            {"messages": [HumanMessage("What is the weather in Oslo?")]}
        )
    for message in result["messages"]:
        story = message.response_metadata.get("cascade")
        where = (
            f"  [tier {story['tier']}: {story['attempts'][0]['reason']}]"
            if story
            else ""
        )
        text = message.text or str(getattr(message, "tool_calls", ""))
        print(f"{message.type:>5}: {text}{where}")


if __name__ == "__main__":
    main()
