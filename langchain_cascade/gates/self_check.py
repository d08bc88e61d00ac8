"""The self-check gate: the tier's own model rates its answer from 1 to 5."""

from __future__ import annotations

import re
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from pydantic import Field

from langchain_cascade.gates._asking import (
    StepGate,
    Steps,
    ask,
    clip,
    model_for,
    parse_json_reply,
    raw_and_parsed,
    usage_of,
)
from langchain_cascade.gates.base import GateInput, GateResult

__all__ = ["SelfCheckGate", "parse_rating"]

_RATING_SCHEMA: dict[str, Any] = {
    "title": "confidence_rating",
    "description": "How likely the answer is correct, 1 (surely wrong) to 5 (surely right).",
    "type": "object",
    "properties": {"rating": {"type": "integer", "enum": [1, 2, 3, 4, 5]}},
    "required": ["rating"],
    "additionalProperties": False,
}

_SELF_CHECK_PROMPT = (
    "Check your answer above. How likely is it to be correct? Rate it from "
    "1 (surely wrong) to 5 (surely right)."
)
_SELF_CHECK_JSON = ' Reply with JSON only: {"rating": <1-5>}.'
_SELF_CHECK_TEXT = " Reply with one digit only."

_LONE_RATING = re.compile(r"(?<![\w.,/-])([1-5])(?![\w/]|[.,]\d|\s*-\s*\d)")
_RATING_OUT_OF_5 = re.compile(
    r"(?<![\w.])([1-5])\s*(?:/|out of|of)\s*5\b", re.IGNORECASE
)
_RATING_LABELLED = re.compile(
    r"\b(?:rating|confidence|score|rate it|rate)\b\s*(?:is|of|:|=|-)?\s*\**\s*([1-5])(?!\w|[.,]\d)",
    re.IGNORECASE,
)


def parse_rating(text: str) -> int | None:
    """Read a 1-5 rating from a model's reply, or ``None`` when it holds none.

    Accepts ``{"rating": 4}``, ``4``, ``4/5``, ``4 out of 5``, ``Rating: 4`` and a
    sentence with exactly one lone digit from 1 to 5. A reply with several
    different candidate digits (``3 or 4``, or an echo of ``1 ... to 5``) is
    ambiguous and yields ``None``.

    Args:
        text: The reply.

    Returns:
        The rating, from 1 to 5.

    Example:
        >>> parse_rating('```json {"rating": 4} ```'), parse_rating("I'd say 4/5.")
        (4, 4)
        >>> parse_rating("3 or 4") is None
        True
    """
    data = parse_json_reply(text)
    if isinstance(data, dict):
        value = data.get("rating")
        ok = isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 5
        return value if ok else None
    if isinstance(data, int) and not isinstance(data, bool):
        return data if 1 <= data <= 5 else None
    for pattern in (_RATING_OUT_OF_5, _RATING_LABELLED):
        found = {int(m) for m in pattern.findall(text)}
        if len(found) == 1:
            return found.pop()
        if len(found) > 1:
            return None
    found = {int(m) for m in _LONE_RATING.findall(text)}
    return found.pop() if len(found) == 1 else None


class SelfCheckGate(StepGate):
    """Asks a model how likely the answer is correct, on a 1-5 scale.

    By default the tier's own model rates its own answer: the gate replays the
    conversation with the answer and asks for a rating (on a local llama.cpp
    server the conversation is still in the prompt cache, so this costs little
    more than the rating). Structured output (``method="json_schema"``) is used
    where the model supports it; otherwise the reply is read by
    :func:`parse_rating`. A reply without a rating fails the gate.

    The score is ``(rating - 1) / 4``; the gate passes when ``score >= threshold``
    (the default ``0.75`` needs a rating of 4 or 5).

    Small models are overconfident: on 50 GSM8K problems qwen2.5-coder-0.5b rated
    every one of its answers 4 or 5, and 45 were wrong
    (``benchmarks/results/llm_gate_quality.md``). Prefer a
    :class:`JudgeGate` or a :class:`~langchain_cascade.gates.ConsistencyGate` there.

    Example:
        >>> from langchain_cascade.gates import SelfCheckGate
        >>> gate = SelfCheckGate(threshold=0.75)  # a rating of 4 or 5 passes
        >>> gate.model is None  # the tier's own model rates its answer
        True
    """

    model: BaseChatModel | None = None
    """The rater; ``None`` for the tier's own model (``GateInput.chat_model``)."""

    threshold: float = Field(default=0.75, ge=0.0, le=1.0)
    """Lowest passing score; a rating ``r`` scores ``(r - 1) / 4``."""

    structured: bool = True
    """Ask for ``{"rating": n}`` through ``json_schema`` structured output first."""

    prompt: str = _SELF_CHECK_PROMPT
    """The request appended after the answer."""

    def _messages(self, gate_input: GateInput, method: str) -> list[BaseMessage]:
        suffix = _SELF_CHECK_JSON if method == "json_schema" else _SELF_CHECK_TEXT
        return [
            *gate_input.messages,
            AIMessage(gate_input.text),
            HumanMessage(self.prompt + suffix),
        ]

    def _prepare(self, gate_input: GateInput) -> GateResult | BaseChatModel:
        if gate_input.tool_calls_only:
            return GateResult(passed=True, reason="tool calls only: nothing to rate")
        if not gate_input.text.strip():
            return GateResult(passed=False, score=0.0, reason="empty answer")
        return model_for("SelfCheckGate", self.model, gate_input)

    def _result(self, value: Any, method: str) -> GateResult:
        raw, parsed = raw_and_parsed(value)
        reply = raw.text if raw is not None else ""
        rating: int | None = None
        if isinstance(parsed, dict):
            candidate = parsed.get("rating")
            if type(candidate) is int and 1 <= candidate <= 5:
                rating = candidate
        if rating is None:
            rating = parse_rating(reply)
        details: dict[str, Any] = {"method": method, "reply": reply, "rating": rating}
        usage = usage_of([raw])
        if rating is None:
            return GateResult(
                passed=False,
                score=None,
                reason=f"self-check reply holds no 1-5 rating: {clip(reply, 80)!r}",
                usage=usage,
                details=details,
            )
        score = (rating - 1) / 4
        passed = score >= self.threshold
        return GateResult(
            passed=passed,
            score=score,
            reason=(
                f"self-check rating {rating}/5 (score {score:.2f} "
                f"{'>=' if passed else '<'} {self.threshold})"
            ),
            usage=usage,
            details=details,
        )

    def _steps(self, gate_input: GateInput) -> Steps:
        model = self._prepare(gate_input)
        if isinstance(model, GateResult):
            return model
        value, method = yield from ask(
            model,
            _RATING_SCHEMA,
            lambda method: self._messages(gate_input, method),
            structured=self.structured,
        )
        return self._result(value, method)
