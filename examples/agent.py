"""A cascade inside a ``create_agent`` tool loop, on real local tool-calling models.

Both tiers are real: Qwen2.5-Coder-0.5B and Qwen2.5-Coder-1.5B, served with the
package's tool-calling chat template (``*-tools`` in the local model registry),
which makes the server return proper OpenAI tool calls. The gate differs by turn:

- a tool turn of the 0.5B passes when its calls name a bound tool with valid
  arguments (``ToolCallGate``) and it is the run's first call
  (``ToolLoopGate(max_calls=1)``): measured, the 0.5B picks the first tool well
  but keeps calling tools after the result comes back;
- an answer turn passes when it is not hedged or empty, and is not an answer
  from memory to a fresh question (``ToolFirstGate``).

With ``sticky="run"``, once a call of the run escalated, the later calls of the
same run start at the 1.5B. The same policy is shown a second time as
``CascadeMiddleware`` around the 1.5B as the agent's own model.

Run: ``python -m examples.agent``
"""

from __future__ import annotations

from typing import Any

from langchain.agents import create_agent
from langchain_core.messages import BaseMessage, HumanMessage
from langchain_core.tools import tool

from langchain_cascade import CascadingChatModel
from langchain_cascade.gates import (
    HedgingGate,
    MinLengthGate,
    ToolCallGate,
    ToolFirstGate,
    ToolLoopGate,
    all_of,
    by_turn,
)
from langchain_cascade.local_models import LocalModels, example_prices
from langchain_cascade.middleware import CascadeMiddleware

CHEAP, STRONG = "qwen2.5-coder-0.5b-tools", "qwen2.5-coder-1.5b-tools"
TOOL_GATE = all_of(ToolCallGate(), ToolLoopGate(max_calls=1))
ANSWER_GATE = all_of(MinLengthGate(min_chars=2), HedgingGate(), ToolFirstGate())


@tool
def get_weather(city: str) -> str:
    """Get today's weather for a city."""
    return f"Sunny and 21 C in {city}."


def show(messages: list[BaseMessage]) -> None:
    """Print the agent's messages and, for model turns, which tier wrote them."""
    for message in messages:
        story: Any = message.response_metadata.get("cascade")
        where = ""
        if story:
            tried = ", ".join(
                f"tier {a['tier']} {'accepted' if a['accepted'] else 'rejected'}"
                f" ({a['reason']})"
                for a in story["attempts"]
            )
            skipped = "".join(
                f"; skipped tier {s['tier']}: {s['reason']}"
                for s in story.get("skipped_tiers", [])
            )
            where = f"\n        [{story['model']}: {tried}{skipped}]"
        calls = getattr(message, "tool_calls", None)
        text = message.text or str(
            [(c["name"], c["args"]) for c in calls] if calls else ""
        )
        print(f"{message.type:>5}: {text}{where}")


def main() -> None:
    question = HumanMessage("What is the weather in Oslo today?")
    with LocalModels([CHEAP, STRONG]) as models:
        cheap = models.chat_model(CHEAP, temperature=0, max_tokens=48)
        strong = models.chat_model(STRONG, temperature=0, max_tokens=48)

        print("== CascadingChatModel as the agent's model (sticky per run) ==")
        cascade = CascadingChatModel(
            models=[cheap, strong],
            gates=[by_turn(tool_calls=TOOL_GATE, answer=ANSWER_GATE)],
            prices=example_prices(),
            sticky="run",
        )
        agent = create_agent(cascade, tools=[get_weather])
        show(agent.invoke({"messages": [question]})["messages"])

        print("\n== CascadeMiddleware around the 1.5B (sticky per run) ==")
        layer = CascadeMiddleware(
            [cheap],
            gates=ANSWER_GATE,
            tool_gate=TOOL_GATE,
            prices=example_prices(),
            sticky="run",
        )
        agent = create_agent(strong, tools=[get_weather], middleware=[layer])
        show(agent.invoke({"messages": [question]})["messages"])


if __name__ == "__main__":
    main()
