"""The cascade's decision loop, written once for invoke, async and streaming.

:func:`decide` is a generator: it never calls a model or a gate itself. It yields
an *effect* (call tier ``i``, call a gate, announce an escalation) and the driver
in ``chat_models.py`` (sync, async, streaming or async streaming) performs it and
sends back the result, or throws the exception it raised. So the rules of the
cascade (when to escalate, what an attempt records, when the call fails) live
here, in one place, and the drivers differ only in how they do I/O.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, UsageMetadata
from langchain_core.messages.ai import add_usage

from langchain_cascade.errors import CascadeError
from langchain_cascade.gates.base import Gate, GateInput, GateResult

__all__ = [
    "Attempt",
    "CallGate",
    "CallTier",
    "Effect",
    "Escalation",
    "Outcome",
    "Plan",
    "TierOutput",
    "decide",
]

ESCALATION_EVENT = "cascade_escalation"


@dataclass
class Attempt:
    """One tier's try at answering: what it said, what the gate thought, what it cost.

    ``to_dict()`` is the form stored in ``response_metadata["cascade"]["attempts"]``.
    """

    tier: int
    model: str
    accepted: bool = False
    score: float | None = None
    reason: str = ""
    usage: UsageMetadata | None = None
    latency_s: float = 0.0
    error: str | None = None
    gate: str | None = None
    gate_latency_s: float | None = None
    gate_usage: dict[str, UsageMetadata] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The attempt as plain JSON-ready data."""
        return {
            "tier": self.tier,
            "model": self.model,
            "accepted": self.accepted,
            "score": self.score,
            "reason": self.reason,
            "usage": dict(self.usage) if self.usage else None,
            "latency_s": round(self.latency_s, 6),
            "error": self.error,
            "gate": self.gate,
            "gate_latency_s": (
                None if self.gate_latency_s is None else round(self.gate_latency_s, 6)
            ),
            "gate_usage": {k: dict(v) for k, v in self.gate_usage.items()},
        }


@dataclass(frozen=True)
class Plan:
    """Everything the loop needs to know about one call, fixed before it starts."""

    messages: list[BaseMessage]
    models: Sequence[BaseChatModel]
    model_names: Sequence[str]
    gates: Sequence[Gate]
    review_gate: Gate | None
    tools: list[dict[str, Any]]


@dataclass(frozen=True)
class CallTier:
    """Effect: call tier ``tier``. ``live`` lets a streaming driver pass its tokens on.

    The driver answers with a :class:`TierOutput`.
    """

    tier: int
    live: bool


@dataclass(frozen=True)
class TierOutput:
    """What a tier answered; ``parse_error`` when structured output did not parse."""

    message: AIMessage
    parse_error: str | None = None


@dataclass(frozen=True)
class CallGate:
    """Effect: run ``gate`` on ``gate_input``; the driver answers ``(result, usage)``."""

    gate: Gate
    gate_input: GateInput


@dataclass(frozen=True)
class Escalation:
    """Effect: announce an escalation (the ``cascade_escalation`` custom event)."""

    data: dict[str, Any]


Effect = CallTier | CallGate | Escalation


@dataclass(frozen=True)
class Outcome:
    """The loop's result: the chosen answer and the story of the call."""

    message: AIMessage
    tier: int
    needs_review: bool
    review_reason: str
    attempts: list[Attempt]

    @property
    def usage(self) -> UsageMetadata | None:
        """Tokens of every attempt and every gate's model calls in this call."""
        total: UsageMetadata | None = None
        for attempt in self.attempts:
            parts = [attempt.usage, *attempt.gate_usage.values()]
            for part in parts:
                if part:
                    total = part if total is None else add_usage(total, part)
        return total

    def metadata(self) -> dict[str, Any]:
        """The ``response_metadata["cascade"]`` dict."""
        chosen = self.attempts[-1]
        return {
            "tier": self.tier,
            "model": chosen.model,
            "escalated": self.tier > 0,
            "needs_review": self.needs_review,
            "review_reason": self.review_reason,
            "attempts": [a.to_dict() for a in self.attempts],
        }


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _judge(
    plan: Plan, tier: int, message: AIMessage, gate: Gate, attempt: Attempt
) -> Generator[Effect, Any, GateResult]:
    """Run one gate on one answer and record it on the attempt (fail closed)."""
    gate_input = GateInput(
        messages=plan.messages,
        response=message,
        tier=tier,
        model=plan.model_names[tier],
        tools=plan.tools,
        chat_model=plan.models[tier],
    )
    attempt.gate = gate.gate_name
    started = time.perf_counter()
    try:
        result, usage = yield CallGate(gate, gate_input)
    except Exception as exc:  # noqa: BLE001 - a broken gate must not lose the call
        result, usage = (
            GateResult(passed=False, reason=f"gate raised {_error_text(exc)}"),
            {},
        )
    attempt.gate_latency_s = time.perf_counter() - started
    attempt.gate_usage = usage
    attempt.score = result.score
    attempt.reason = result.reason
    return cast("GateResult", result)


def decide(plan: Plan) -> Generator[Effect, Any, Outcome]:
    """The cascade: try each tier in order until a gate passes or the last answers.

    Non-final tiers: an error or a failed gate escalates. The final tier is the
    safety net: its answer is returned whatever its quality, checked by the review
    gate when there is one. When the final tier raises, :class:`CascadeError`
    carries every attempt.

    Args:
        plan: The call.

    Yields:
        Effects for the driver to perform.

    Returns:
        The outcome.

    Raises:
        CascadeError: When the final tier raises.
    """
    attempts: list[Attempt] = []
    last = len(plan.models) - 1
    for tier in range(last + 1):
        final = tier == last
        attempt = Attempt(tier=tier, model=plan.model_names[tier])
        attempts.append(attempt)
        started = time.perf_counter()
        try:
            output: TierOutput = yield CallTier(tier, live=final)
        except Exception as exc:
            attempt.latency_s = time.perf_counter() - started
            attempt.error = _error_text(exc)
            attempt.reason = f"tier raised {attempt.error}"
            if final:
                raise CascadeError(attempts) from exc
            yield Escalation(_escalation(attempt, to_tier=tier + 1))
            continue
        attempt.latency_s = time.perf_counter() - started
        message = output.message
        attempt.usage = message.usage_metadata

        if final:
            attempt.accepted = True
            needs_review, review_reason = False, ""
            if output.parse_error is not None:
                needs_review = True
                review_reason = f"structured output did not parse: {output.parse_error}"
                attempt.reason = review_reason
            elif plan.review_gate is not None:
                review = yield from _judge(
                    plan, tier, message, plan.review_gate, attempt
                )
                needs_review, review_reason = not review.passed, review.reason
            else:
                attempt.reason = "final tier"
            return Outcome(
                message,
                tier,
                needs_review=needs_review,
                review_reason=review_reason,
                attempts=attempts,
            )

        if output.parse_error is not None:
            attempt.reason = f"structured output did not parse: {output.parse_error}"
            passed = False
        else:
            result = yield from _judge(plan, tier, message, plan.gates[tier], attempt)
            passed = result.passed
        if passed:
            attempt.accepted = True
            return Outcome(
                message, tier, needs_review=False, review_reason="", attempts=attempts
            )
        yield Escalation(_escalation(attempt, to_tier=tier + 1))
    msg = "unreachable: the final tier always returns or raises"
    raise AssertionError(msg)


def _escalation(attempt: Attempt, *, to_tier: int) -> dict[str, Any]:
    return {
        "from_tier": attempt.tier,
        "to_tier": to_tier,
        "model": attempt.model,
        "score": attempt.score,
        "reason": attempt.reason,
        "error": attempt.error,
    }
