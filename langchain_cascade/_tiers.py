"""Tiers: a chat model, or a Runnable wrapper of one (retry, bind, configurable).

A tier is invoked through what the user gave (so ``with_retry()`` retries and
``bind(...)`` arguments reach the model), while its name, price, profile and tool
binding come from the chat model inside, found by :func:`chat_model_of`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import Runnable
from langchain_core.runnables.base import RunnableBindingBase
from langchain_core.runnables.configurable import (
    RunnableConfigurableAlternatives,
    RunnableConfigurableFields,
)

__all__ = ["bound_kwargs", "chat_model_of", "fingerprint", "model_name", "with_tools"]

_MAX_DEPTH = 16


def _layers(tier: object) -> Iterator[object]:
    """``tier`` and what it wraps, outermost first (at most ``_MAX_DEPTH``).

    Through ``RunnableBinding`` / ``RunnableRetry`` layers (``.bound``) and
    ``configurable_fields`` (``.default``); the last one yielded wraps nothing
    more of those kinds.
    """
    current = tier
    for _ in range(_MAX_DEPTH):
        yield current
        if isinstance(current, RunnableBindingBase):
            current = current.bound
        elif isinstance(current, RunnableConfigurableFields):
            current = current.default
        else:
            return


def chat_model_of(tier: object, *, where: str) -> BaseChatModel:
    """The chat model a tier wraps, or a ``TypeError`` saying why it is refused.

    Accepted: a ``BaseChatModel``; ``RunnableBinding`` and ``RunnableRetry``
    (``bind``, ``with_config``, ``with_retry``) and ``configurable_fields``
    wrappers of one, nested in any order.

    Refused: ``configurable_alternatives`` (an alternative is another model, so
    the tier's name and price would be wrong: give it its own tier),
    ``with_fallbacks`` (its fallbacks are other models: make them tiers), and any
    other Runnable (a chain's output is not a chat model's answer).

    Args:
        tier: What was given as a tier.
        where: Where it was given, for the message (``"models[1]"``).

    Returns:
        The chat model inside.

    Raises:
        TypeError: When ``tier`` is not a chat model or a sound wrapper of one.
    """
    current = tier
    for current in _layers(tier):
        if isinstance(current, BaseChatModel):
            return current
        if isinstance(current, RunnableConfigurableAlternatives):
            msg = (
                f"{where} is a configurable_alternatives wrapper: each alternative "
                "is another model, so the tier's name and price would be wrong; "
                "make each alternative its own tier or its own cascade"
            )
            raise TypeError(msg)
    if isinstance(tier, type):
        name = tier.__name__
        msg = f"{where} is the class {name}: pass an instance, {name}(...)"
        raise TypeError(msg)
    kind = type(tier).__name__
    article = "an" if kind[:1].lower() in "aeiou" else "a"
    hint = ""
    if type(current).__name__ == "RunnableWithFallbacks":
        hint = ": its fallbacks are other models, give them as the next tiers"
    elif isinstance(current, Runnable):
        hint = (
            " (a chain's output is not a chat model's answer; accepted wrappers: "
            "bind, with_config, with_retry, configurable_fields)"
        )
    msg = (
        f"{where} is {article} {kind}, not a chat model "
        f"(langchain_core BaseChatModel){hint}"
    )
    raise TypeError(msg)


def bound_kwargs(tier: object) -> dict[str, Any]:
    """The call arguments a tier's ``bind`` layers add (outermost wins)."""
    merged: dict[str, Any] = {}
    for layer in reversed(list(_layers(tier))):
        if isinstance(layer, RunnableBindingBase):
            merged.update(layer.kwargs)
    return merged


def model_name(model: BaseChatModel) -> str:
    """A chat model's name for metadata: its LangSmith model name, else its class.

    Args:
        model: Any chat model.

    Returns:
        The name.
    """
    try:
        name = model._get_ls_params().get("ls_model_name")
    except Exception:  # noqa: BLE001 - a child's tracing params are best effort
        name = None
    return str(name) if name else type(model).__name__


def fingerprint(tier: object, model: BaseChatModel) -> str:
    """A short hash of the tier's cache key: its model and its bound arguments."""
    kwargs = bound_kwargs(tier)
    llm_string = model._get_llm_string(**kwargs)
    if tier is not model:
        llm_string += json.dumps(type(tier).__name__)
    return hashlib.sha256(llm_string.encode()).hexdigest()[:16]


def with_tools(
    tier: Runnable[Any, Any],
    model: BaseChatModel,
    tools: list[dict[str, Any]],
    tool_choice: Any,
    tool_kwargs: dict[str, Any],
    *,
    where: str,
) -> Runnable[Any, Any]:
    """``tier`` with ``tools`` bound through its model's own ``bind_tools``.

    For a wrapper, the model's binding arguments are bound on the wrapper, so the
    retry or configuration still wraps the call.

    Raises:
        NotImplementedError: When the model does not support tools (named).
        TypeError: When the model's ``bind_tools`` gives no plain binding, so the
            tools cannot be passed through the wrapper.
    """
    choice = {} if tool_choice is None else {"tool_choice": tool_choice}
    try:
        bound = model.bind_tools(tools, **choice, **tool_kwargs)
    except NotImplementedError as exc:
        msg = (
            f"{where} ({model_name(model)}, {type(model).__name__}) does not support "
            f"tool calling (bind_tools): {exc or 'not implemented'}"
        )
        raise NotImplementedError(msg) from exc
    if tier is model:
        return bound
    if isinstance(bound, RunnableBindingBase) and bound.bound is model:
        return tier.bind(**bound.kwargs)
    msg = (
        f"{where}: {type(model).__name__}.bind_tools returned a "
        f"{type(bound).__name__}, which cannot be bound through the tier's "
        f"{type(tier).__name__} wrapper; give the chat model itself as the tier"
    )
    raise TypeError(msg)
