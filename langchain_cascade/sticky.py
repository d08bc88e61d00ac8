"""Sticky escalation: once a conversation needed tier ``i``, start there next time.

An agent calls its model many times per request. When one of those calls
escalated (the cheap tier could not pick the tool, or could not answer), the
next call of the same tool loop is usually no easier: trying the cheap tier
again costs a rejected draft each time and makes the agent bounce between
models. With stickiness the later calls start at the tier that answered,
through the cascade's ``first_tier`` (the tiers below are recorded as skipped,
with the reason).

The state needs no store: every answer of a cascade carries
``response_metadata["cascade"]`` (its tier and model), so the sticky tier is read
back from the conversation itself, which LangGraph keeps per thread (with a
checkpointer, across invocations). Two scopes:

- ``"run"``: the current agent run, the messages since the last human message. A
  new question starts at the cheapest tier again.
- ``"thread"``: the whole conversation (the thread's state).

A message marked by :func:`reset_sticky` ends the look-back: calls after it start
at the cheapest tier again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, TypedDict, TypeVar

from langchain_core.messages import AIMessage, BaseMessage

from langchain_cascade.gates.turns import run_messages

__all__ = [
    "RESET_KEY",
    "StickyScope",
    "StickyTier",
    "reset_sticky",
    "sticky_tier",
]

StickyScope = Literal["run", "thread"]
"""How far back stickiness looks: this agent run, or the whole thread."""

RESET_KEY = "cascade_sticky_reset"
"""The ``additional_kwargs`` key that marks a message as a sticky reset."""

MessageT = TypeVar("MessageT", bound=BaseMessage)


class StickyTier(TypedDict):
    """Where a sticky call starts and why (``response_metadata["cascade"]["sticky"]``).

    Attributes:
        scope: ``"run"`` or ``"thread"``.
        first_tier: The tier the call starts at (``0`` when nothing escalated).
        reason: Why, naming the earlier answer it follows.
    """

    scope: StickyScope
    first_tier: int
    reason: str


def reset_sticky(message: MessageT) -> MessageT:
    """A copy of ``message`` that ends stickiness: later calls start at tier 0.

    Args:
        message: Usually the next human message of the thread.

    Returns:
        The marked copy.

    Example:
        .. code-block:: python

            from langchain_core.messages import HumanMessage
            from langchain_cascade.sticky import reset_sticky

            agent.invoke({"messages": [reset_sticky(HumanMessage("New topic..."))]})
    """
    return message.model_copy(
        update={"additional_kwargs": {**message.additional_kwargs, RESET_KEY: True}}
    )


def _answered_tier(message: AIMessage, model_names: Sequence[str]) -> int | None:
    """The tier that wrote ``message``, when it is this cascade's answer."""
    story: Any = message.response_metadata.get("cascade")
    if not isinstance(story, dict):
        return None
    tier = story.get("tier")
    if not isinstance(tier, int) or isinstance(tier, bool):
        return None
    if not 0 <= tier < len(model_names) or story.get("model") != model_names[tier]:
        return None  # another cascade's answer
    return tier


def sticky_tier(
    messages: Sequence[BaseMessage], scope: StickyScope, model_names: Sequence[str]
) -> StickyTier:
    """The tier a call should start at, from the answers already in the conversation.

    Args:
        messages: The conversation the call answers.
        scope: ``"run"`` (since the last human message) or ``"thread"`` (all of it).
        model_names: The cascade's tiers' model names: an answer counts only when
            its recorded tier and model match this cascade.

    Returns:
        The highest tier that answered in scope, since the last reset marker.
    """
    window = run_messages(list(messages)) if scope == "run" else list(messages)
    first, source = 0, ""
    for index in range(len(window) - 1, -1, -1):
        message = window[index]
        if message.additional_kwargs.get(RESET_KEY):
            break
        if not isinstance(message, AIMessage):
            continue
        tier = _answered_tier(message, model_names)
        if tier is not None and tier > first:
            first, source = tier, message.id or f"message {index}"
    if first == 0:
        return StickyTier(scope=scope, first_tier=0, reason="")
    reason = (
        f"sticky ({scope}): tier {first} ({model_names[first]}) answered earlier "
        f"in this {scope} ({source})"
    )
    return StickyTier(scope=scope, first_tier=first, reason=reason)
