"""The typed contract: what the cascade reports, as ``TypedDict`` s.

* :class:`CascadeMetadata` -- ``answer.response_metadata["cascade"]``;
* :class:`AttemptInfo` -- one entry of its ``attempts`` (and of
  :attr:`CascadeError.attempts <langchain_cascade.CascadeError>`);
* :class:`CostReport` -- its ``cost``; :class:`SkippedTier` -- its ``skipped_tiers``;
* :class:`EscalationEvent`, :class:`ReviewEvent` -- the data of the custom events
  named in :mod:`langchain_cascade.events`.

Example:
    .. code-block:: python

        from typing import cast

        from langchain_cascade.types import CascadeMetadata

        meta = cast(CascadeMetadata, answer.response_metadata["cascade"])
        meta["attempts"][0]["reason"]
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict

from langchain_core.messages import UsageMetadata

__all__ = [
    "AttemptInfo",
    "CascadeMetadata",
    "CostReport",
    "EscalationEvent",
    "ReviewEvent",
    "SkippedTier",
]


class AttemptInfo(TypedDict):
    """One tier's try at answering.

    Attributes:
        tier: The tier's index, 0 the cheapest.
        model: The tier's model name.
        accepted: Whether this attempt's answer was returned.
        score: The gate's score in ``[0, 1]``, ``None`` without one.
        reason: Why it was accepted or rejected (the gate's reason, ``"tier raised
            ..."``, ``"timeout after Xs"``, ``"final tier"``...).
        usage: The tier's tokens, ``None`` when unknown (not reported, or raised).
        latency_s: Seconds the tier took.
        error: ``"Type: message"`` when the tier raised (cut to 2,000 characters).
        gate: The gate's name, ``None`` when no gate ran.
        gate_latency_s: Seconds the gate took.
        gate_usage: Tokens the gate's model calls spent, by model name.
        cost: The tier's cost in dollars, ``None`` when unknown.
        gate_cost: The gate's cost, ``None`` when unknown (0 without model calls).
        speculative: The tier was started early (``speculative``), at the same
            time as an earlier one.
        cancelled: A speculative run cancelled because an earlier tier's answer
            passed (only in ``cancelled_attempts``).
        aborted: Stopped while streaming by its gate's verdict on the partial
            answer (``early_abort``).
        usage_estimated: ``usage`` is estimated (a run cut short reports none):
            its streamed chunks as output tokens, the prompt as another tier
            counted it.
    """

    tier: int
    model: str
    accepted: bool
    score: float | None
    reason: str
    usage: UsageMetadata | None
    latency_s: float
    error: str | None
    gate: str | None
    gate_latency_s: float | None
    gate_usage: dict[str, UsageMetadata]
    cost: float | None
    gate_cost: float | None
    speculative: bool
    cancelled: bool
    aborted: bool
    usage_estimated: bool


class CostReport(TypedDict):
    """The call's cost against always asking the final tier.

    Attributes:
        total: Dollars of every attempt and gate, ``None`` when any is unknown.
        baseline: What the final tier alone would have cost.
        baseline_estimated: Whether the baseline is an estimate (the final tier
            was not called: the chosen answer's tokens at its price).
        savings: ``baseline - total``, ``None`` when either is unknown.
        speculative: The part of ``total`` spent by cancelled speculative runs.
        currency: Always ``"USD"``.
    """

    total: float | None
    baseline: float | None
    baseline_estimated: bool
    savings: float | None
    speculative: float | None
    currency: str


class SkippedTier(TypedDict):
    """A tier the call did not try (below ``first_tier``, or left out by ``max_latency``)."""

    tier: int
    model: str
    reason: str


class CascadeMetadata(TypedDict):
    """``response_metadata["cascade"]``: the whole story of one call.

    Attributes:
        tier: The tier whose answer was returned.
        model: Its model name.
        escalated: Whether the answer came from a later tier than the first one
            tried (``first_tier``, 0 by default).
        needs_review: Whether the answer is flagged for human review.
        review_reason: Why (empty when not flagged).
        cost: The cost report.
        attempts: Every attempt, in order.
        skipped_tiers: The tiers not tried: below ``first_tier`` (the router's
            choice) or left out by ``max_latency``.
        cancelled_attempts: Speculative runs cancelled once an earlier answer
            passed, with what they spent (counted in ``cost`` and the usage).
        route: The router's decision (``router``, ``first_tier``, ``reason``,
            ``error``), when a router chose the first tier.
        usage_unknown_tiers: Tiers whose attempt's tokens are unknown; when not
            empty, the answer's ``usage_metadata`` is ``None`` (never a partial sum).
        format_error: Present when the formatter raised (the answer is unformatted).
    """

    tier: int
    model: str
    escalated: bool
    needs_review: bool
    review_reason: str
    cost: CostReport
    attempts: list[AttemptInfo]
    skipped_tiers: list[SkippedTier]
    usage_unknown_tiers: list[int]
    cancelled_attempts: list[AttemptInfo]
    route: NotRequired[dict[str, Any]]
    format_error: NotRequired[str]


class EscalationEvent(TypedDict):
    """Data of the ``cascade_escalation`` event: one tier handing the call on."""

    from_tier: int
    to_tier: int
    model: str
    score: float | None
    reason: str
    error: str | None


class ReviewEvent(TypedDict):
    """Data of the ``cascade_needs_review`` event."""

    tier: int
    model: str
    reason: str
    answer: str
    attempts: int
