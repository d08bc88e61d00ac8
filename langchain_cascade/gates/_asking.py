"""Shared plumbing of the gates that ask a language model for a small verdict.

Ask for a structured reply (``with_structured_output(..., method="json_schema",
include_raw=True)``) where the model supports it and fall back to plain text when
it does not or the server refuses the request; read JSON replies (a surrounding
code fence tolerated) with ``langchain_core``'s ``parse_json_markdown``; sum the
tokens the asking took; clip replies for reasons.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any, cast

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, UsageMetadata
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.utils.json import parse_json_markdown

from langchain_cascade.gates.base import Gate, GateInput, GateResult
from langchain_cascade.pricing import sum_usage

__all__ = [
    "Batch",
    "Build",
    "Call",
    "StepGate",
    "Steps",
    "arun",
    "ask",
    "clip",
    "model_for",
    "parse_json_reply",
    "raw_and_parsed",
    "run",
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


@dataclass(frozen=True)
class Call:
    """A model call a gate's steps ask for: ``runnable.invoke(input)``."""

    runnable: Runnable[Any, Any]
    input: Any


@dataclass(frozen=True)
class Batch:
    """Several calls of one runnable; each output or the exception it raised."""

    runnable: Runnable[Any, Any]
    inputs: list[Any]


Steps = Generator[Call | Batch, Any, GateResult]
"""A gate's logic written once: it yields the model calls it needs, the sync
(:func:`run`) or async (:func:`arun`) driver performs them and sends the
results back (or throws the call's exception in), and it returns the verdict."""


def _batch_config(config: RunnableConfig) -> RunnableConfig:
    # One config for several runs: a fixed run id would collide.
    return cast("RunnableConfig", {k: v for k, v in config.items() if k != "run_id"})


def _next(
    steps: Steps, value: Any, error: Exception | None
) -> Call | Batch | GateResult:
    """The steps' next request, or their verdict when they are done."""
    try:
        return steps.send(value) if error is None else steps.throw(error)
    except StopIteration as done:
        result: GateResult = done.value
        return result


def run(steps: Steps, config: RunnableConfig) -> GateResult:
    """Drive a gate's steps with blocking calls (``invoke``, ``batch``)."""
    value: Any = None
    error: Exception | None = None
    while not isinstance(request := _next(steps, value, error), GateResult):
        value, error = None, None
        try:
            if isinstance(request, Batch):
                batch = _batch_config(config)
                value = request.runnable.batch(
                    request.inputs, batch, return_exceptions=True
                )
            else:
                value = request.runnable.invoke(request.input, config)
        except Exception as exc:  # noqa: BLE001 - thrown into the steps
            error = exc
    return request


async def arun(steps: Steps, config: RunnableConfig) -> GateResult:
    """Drive a gate's steps with async calls (``ainvoke``, concurrent ``abatch``)."""
    value: Any = None
    error: Exception | None = None
    while not isinstance(request := _next(steps, value, error), GateResult):
        value, error = None, None
        try:
            if isinstance(request, Batch):
                value = await request.runnable.abatch(
                    request.inputs, _batch_config(config), return_exceptions=True
                )
            else:
                value = await request.runnable.ainvoke(request.input, config)
        except Exception as exc:  # noqa: BLE001 - thrown into the steps
            error = exc
    return request


class StepGate(Gate):
    """A gate whose logic is :meth:`_steps`, run by :func:`run` or :func:`arun`."""

    def _steps(self, gate_input: GateInput) -> Steps:
        raise NotImplementedError

    def evaluate(self, gate_input: GateInput, config: RunnableConfig) -> GateResult:
        """Run the gate's steps with blocking model calls."""
        return run(self._steps(gate_input), config)

    async def aevaluate(
        self, gate_input: GateInput, config: RunnableConfig
    ) -> GateResult:
        """Run the gate's steps with async model calls."""
        return await arun(self._steps(gate_input), config)


def ask(
    model: BaseChatModel,
    schema: dict[str, Any],
    build: Build,
    *,
    structured: bool,
) -> Generator[Call, Any, tuple[Any, str]]:
    """Ask for a structured reply where possible, else plain text.

    Use with ``yield from`` inside a gate's steps.

    Returns:
        The model's output and the method used (``"json_schema"`` or ``"text"``).
    """
    runnable = _structured(model, schema) if structured else None
    if runnable is not None:
        try:
            return (yield Call(runnable, build("json_schema"))), "json_schema"
        except Exception as exc:
            if not _rejected_request(exc):
                raise
    return (yield Call(model, build("text"))), "text"


def model_for(
    gate: str, model: BaseChatModel | None, gate_input: GateInput
) -> BaseChatModel:
    """The gate's own ``model``, else the tier's (``GateInput.chat_model``).

    Raises:
        ValueError: When there is neither; ``gate`` names the gate in the message.
    """
    chosen = model or gate_input.chat_model
    if chosen is None:
        msg = (
            f"{gate} needs a model: give model=... or run it in a cascade "
            "(GateInput.chat_model)"
        )
        raise ValueError(msg)
    return chosen


def usage_of(messages: Sequence[AIMessage | None]) -> UsageMetadata | None:
    """The summed token usage of the messages that report one (``None``: none)."""
    return sum_usage(m.usage_metadata for m in messages if m is not None)


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
