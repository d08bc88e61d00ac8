"""Shared plumbing of the gates that ask a language model for a small verdict.

Ask for a structured reply (``with_structured_output(..., method="json_schema",
include_raw=True)``) where the model supports it and fall back to plain text when
it does not or the server refuses the request; read JSON replies (a surrounding
code fence tolerated) with ``langchain_core``'s ``parse_json_markdown``; sum the
tokens the asking took; clip replies for reasons.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, UsageMetadata
from langchain_core.messages.ai import add_usage
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.utils.json import parse_json_markdown

__all__ = [
    "Build",
    "aask",
    "ask",
    "clip",
    "parse_json_reply",
    "raw_and_parsed",
    "usage_of",
]


# Errors ``with_structured_output`` raises when a model cannot do structured output
# (or not with ``method="json_schema"``): the gate then asks for plain text.
_UNSUPPORTED = (NotImplementedError, ValueError, TypeError)


def raw_and_parsed(value: Any) -> tuple[AIMessage | None, Any]:
    """Split what a model returned: ``include_raw`` dicts or a plain message."""
    if isinstance(value, AIMessage):
        return value, None
    if isinstance(value, dict):
        raw = value.get("raw")
        return (raw if isinstance(raw, AIMessage) else None), value.get("parsed")
    return None, None


def _rejected_request(exc: Exception) -> bool:
    """Whether a structured call failed because the server refused the request.

    A server without ``json_schema`` support answers 400, 404 or 422 (the OpenAI
    client's errors carry ``status_code``); timeouts and server errors are not
    retried as text, they propagate.
    """
    return isinstance(exc, NotImplementedError) or getattr(
        exc, "status_code", None
    ) in {400, 404, 422}


Build = Callable[[str], list[BaseMessage]]


def _structured(
    model: BaseChatModel, schema: dict[str, Any]
) -> Runnable[Any, Any] | None:
    try:
        return model.with_structured_output(
            schema, method="json_schema", include_raw=True
        )
    except _UNSUPPORTED:
        return None


def ask(
    model: BaseChatModel,
    schema: dict[str, Any],
    build: Build,
    config: RunnableConfig,
    *,
    structured: bool,
) -> tuple[Any, str]:
    """Ask for a structured reply where possible, else plain text.

    Returns:
        The model's output and the method used (``"json_schema"`` or ``"text"``).
    """
    runnable = _structured(model, schema) if structured else None
    if runnable is not None:
        try:
            return runnable.invoke(build("json_schema"), config), "json_schema"
        except Exception as exc:
            if not _rejected_request(exc):
                raise
    return model.invoke(build("text"), config), "text"


async def aask(
    model: BaseChatModel,
    schema: dict[str, Any],
    build: Build,
    config: RunnableConfig,
    *,
    structured: bool,
) -> tuple[Any, str]:
    """Async :func:`ask`."""
    runnable = _structured(model, schema) if structured else None
    if runnable is not None:
        try:
            return await runnable.ainvoke(build("json_schema"), config), "json_schema"
        except Exception as exc:
            if not _rejected_request(exc):
                raise
    return await model.ainvoke(build("text"), config), "text"


def usage_of(messages: Sequence[AIMessage | None]) -> UsageMetadata | None:
    """The summed token usage of the messages that report one (``None``: none)."""
    total: UsageMetadata | None = None
    for message in messages:
        usage = message.usage_metadata if message is not None else None
        if usage:
            total = usage if total is None else add_usage(total, usage)
    return total


def clip(text: str, limit: int = 200) -> str:
    """The text on one line, cut to ``limit`` characters."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_json_reply(text: str) -> Any:
    """The JSON value a reply consists of, or ``None``.

    The whole reply must be the JSON value, optionally inside one code fence
    (```` ```json ... ``` ````); prose around it makes the reply unreadable.
    ``None`` is also returned for a reply that is JSON ``null``.
    """
    stripped = text.strip()
    if "```" in stripped and not stripped.startswith("```"):
        return None
    try:
        return parse_json_markdown(stripped, parser=json.loads)
    except ValueError:
        return None
