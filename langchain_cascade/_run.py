"""The cascade's decision loop, written once for invoke, async and streaming.

:func:`decide` is a generator: it never calls a model or a gate itself. It yields
an *effect* (call tier ``i``, call a gate, dispatch an event, format the answer)
and the driver in ``chat_models.py`` (sync, async, streaming or async streaming)
performs it and sends back the result, or throws the exception it raised. So the
rules of the cascade (when to escalate, what an attempt records, what it costs,
when the call fails) live here, in one place, and the drivers differ only in how
they do I/O.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, UsageMetadata
from langchain_core.runnables import Runnable

from langchain_cascade.errors import (
    CascadeError,
    GateTimeoutError,
    TierTimeoutError,
)
from langchain_cascade.events import ESCALATION_EVENT, REVIEW_EVENT
from langchain_cascade.gates.base import Gate, GateInput, GateResult
from langchain_cascade.pricing import PriceTable, price_of, sum_known, sum_usage
from langchain_cascade.routing import RouteInput
from langchain_cascade.types import (
    AttemptInfo,
    CascadeMetadata,
    CostReport,
    EscalationEvent,
    ReviewEvent,
    SkippedTier,
)

__all__ = [
    "ESCALATION_EVENT",
    "REVIEW_EVENT",
    "Attempt",
    "CallFormatter",
    "CallGate",
    "CallTier",
    "CancelTier",
    "Effect",
    "Event",
    "LatencyEstimator",
    "Outcome",
    "Partial",
    "Plan",
    "StartTier",
    "TierOutput",
    "decide",
]


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
    cost: float | None = None
    gate_cost: float | None = 0.0
    speculative: bool = False
    cancelled: bool = False
    aborted: bool = False
    usage_estimated: bool = False
    message: AIMessage | None = field(default=None, repr=False)

    @property
    def total_cost(self) -> float | None:
        """The tier's call plus its gate, ``None`` when either is unknown."""
        return sum_known([self.cost, self.gate_cost])

    def to_dict(self) -> AttemptInfo:
        """The attempt as plain JSON-ready data."""
        return {
            "tier": self.tier,
            "model": self.model,
            "accepted": self.accepted,
            "score": self.score,
            "reason": self.reason,
            "usage": self.usage.copy() if self.usage else None,
            "latency_s": round(self.latency_s, 6),
            "error": self.error,
            "gate": self.gate,
            "gate_latency_s": (
                None if self.gate_latency_s is None else round(self.gate_latency_s, 6)
            ),
            "gate_usage": {k: v.copy() for k, v in self.gate_usage.items()},
            "cost": self.cost,
            "gate_cost": self.gate_cost,
            "speculative": self.speculative,
            "cancelled": self.cancelled,
            "aborted": self.aborted,
            "usage_estimated": self.usage_estimated,
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
    prices: PriceTable = field(default_factory=dict)
    max_cost: float | None = None
    formats: bool = False
    first_tier: int = 0
    """The tier the call starts from; the tiers below it are skipped."""
    router: Runnable[Any, Any] | None = None
    """Asked where the call starts (:class:`CallRouter`) when set; ``first_tier``
    is then ignored."""
    speculative: int = 0
    """How many tiers start their successor at the same time as themselves."""
    early_abort: bool = False
    max_latency: float | None = None
    latency: LatencyEstimator | None = None
    started_s: float = field(default_factory=time.perf_counter)

    skip_reason: str = ""
    timeouts: Sequence[float | None] = ()

    def timeout(self, tier: int) -> float | None:
        """Seconds tier ``tier`` may take, ``None`` for no limit."""
        return self.timeouts[tier] if tier < len(self.timeouts) else None


class LatencyEstimator:
    """Each tier's recent latencies (model call plus gate), shared by a cascade's calls.

    Thread-safe; keeps the last ``window`` samples per tier and estimates a tier's
    next latency as their median.

    Example:
        >>> estimator = LatencyEstimator()
        >>> estimator.estimate(0) is None
        True
        >>> for seconds in (1.0, 3.0, 2.0):
        ...     estimator.observe(0, seconds)
        >>> estimator.estimate(0)
        2.0
    """

    def __init__(self, window: int = 32) -> None:
        """An empty estimator.

        Args:
            window: Samples kept per tier.
        """
        self._window = window
        self._samples: dict[int, deque[float]] = {}
        self._lock = threading.Lock()

    def observe(self, tier: int, seconds: float) -> None:
        """Record one finished attempt of ``tier``.

        Args:
            tier: The tier's index.
            seconds: Its model call plus gate time.
        """
        with self._lock:
            samples = self._samples.setdefault(tier, deque(maxlen=self._window))
            samples.append(seconds)

    def estimate(self, tier: int) -> float | None:
        """The median recent latency of ``tier``, ``None`` before any was seen.

        Args:
            tier: The tier's index.

        Returns:
            Seconds, or ``None``.
        """
        with self._lock:
            samples = self._samples.get(tier)
            return statistics.median(samples) if samples else None


@dataclass(frozen=True)
class CallTier:
    """Effect: call tier ``tier``. ``live`` lets a streaming driver pass its tokens on.

    When the tier was started by :class:`StartTier`, the driver joins that run
    (a live driver first passes on the tokens it buffered). When ``watch`` is
    given, the driver streams the tier and calls ``watch`` with the answer so far
    after each chunk; when it returns ``True`` the driver stops the tier at once
    and answers the partial message with ``aborted=True``.

    The driver answers with a :class:`TierOutput`. With a ``timeout``, the driver
    cancels the tier past that many seconds and throws
    :class:`~langchain_cascade.errors.TierTimeoutError`.
    """

    tier: int
    live: bool
    watch: Callable[[AIMessage], bool] | None = None
    timeout: float | None = None


@dataclass(frozen=True)
class TierOutput:
    """What a tier answered; ``parse_error`` when structured output did not parse.

    ``chunks`` counts the content or tool-call chunks of a streamed answer
    (``0`` when it was not streamed); ``aborted`` marks an answer stopped by
    ``watch``.
    """

    message: AIMessage
    parse_error: str | None = None
    aborted: bool = False
    chunks: int = 0


@dataclass(frozen=True)
class StartTier:
    """Effect: start tier ``tier`` in the background now (speculation); answers None."""

    tier: int


@dataclass(frozen=True)
class CancelTier:
    """Effect: stop the background run of ``tier``; the driver answers a :class:`Partial`.

    After it, nothing of that run is left running (the task is cancelled, the
    request closed).
    """

    tier: int


@dataclass(frozen=True)
class Partial:
    """What a cancelled run had produced: the answer so far and its chunk count."""

    message: AIMessage | None
    chunks: int


@dataclass(frozen=True)
class CallGate:
    """Effect: run ``gate`` on ``gate_input``; the driver answers ``(result, usage)``.

    ``usage`` maps each model the gate called to the tokens it spent. With a
    ``timeout`` (the tier's), the driver stops waiting for the gate past that many
    seconds (cancelling it where it can) and throws
    :class:`~langchain_cascade.errors.GateTimeoutError`.
    """

    gate: Gate
    gate_input: GateInput
    timeout: float | None = None


@dataclass(frozen=True)
class Event:
    """Effect: dispatch the custom event ``name`` on the cascade's run."""

    name: str
    data: dict[str, Any]


@dataclass(frozen=True)
class CallRouter:
    """Effect: ask ``router`` where the call starts.

    The driver answers a :class:`~langchain_cascade.routing.RouteDecision`; a
    router that fails decides tier 0, with its error.
    """

    router: Runnable[Any, Any]
    route_input: RouteInput


@dataclass(frozen=True)
class CallFormatter:
    """Effect: run the formatter on the final answer; the driver answers an AIMessage."""

    message: AIMessage


Effect = (
    CallTier | CallGate | Event | CallFormatter | StartTier | CancelTier | CallRouter
)


@dataclass(frozen=True)
class Outcome:
    """The loop's result: the chosen answer and the story of the call."""

    message: AIMessage
    tier: int
    needs_review: bool
    review_reason: str
    attempts: list[Attempt]
    cost: CostReport
    format_error: str | None = None
    cancelled: list[Attempt] = field(default_factory=list)
    skipped: list[SkippedTier] = field(default_factory=list)
    route: dict[str, Any] | None = None
    first_tier: int = 0

    @property
    def usage_unknown_tiers(self) -> list[int]:
        """The tiers whose attempt's tokens are unknown (no usage reported, or raised)."""
        return [a.tier for a in self.attempts if a.usage is None]

    @property
    def usage(self) -> UsageMetadata | None:
        """Tokens of every attempt, cancelled ones too, and every gate's model calls.

        ``None`` when any attempt's usage is unknown: a partial sum is never
        reported as the call's total (see ``usage_unknown_tiers``).
        """
        if self.usage_unknown_tiers:
            return None
        return sum_usage(
            part
            for attempt in [*self.attempts, *self.cancelled]
            for part in [attempt.usage, *attempt.gate_usage.values()]
        )

    def metadata(self) -> CascadeMetadata:
        """The ``response_metadata["cascade"]`` dict."""
        metadata: CascadeMetadata = {
            "tier": self.tier,
            "model": self.attempts[self.tier_index].model,
            "escalated": self.tier > self.first_tier,
            "needs_review": self.needs_review,
            "review_reason": self.review_reason,
            "cost": self.cost,
            "attempts": [a.to_dict() for a in self.attempts],
            "cancelled_attempts": [a.to_dict() for a in self.cancelled],
            "skipped_tiers": self.skipped,
            "usage_unknown_tiers": self.usage_unknown_tiers,
        }
        if self.route is not None:
            metadata["route"] = self.route
        if self.format_error is not None:
            metadata["format_error"] = self.format_error
        return metadata

    @property
    def tier_index(self) -> int:
        """The position of the answering attempt in ``attempts``."""
        return next(i for i, a in enumerate(self.attempts) if a.tier == self.tier)


MAX_ERROR_CHARS = 2000
"""Longest exception text kept in an attempt's ``error`` (the rest is cut)."""


def _error_text(exc: BaseException) -> str:
    """``"Type: message"``, cut to :data:`MAX_ERROR_CHARS`, whatever ``str`` does."""
    try:
        text = str(exc)
    except Exception as inner:  # noqa: BLE001 - a broken __str__ must not lose the call
        text = f"<str() raised {type(inner).__name__}>"
    text = f"{type(exc).__name__}: {text}"
    if len(text) > MAX_ERROR_CHARS:
        text = f"{text[:MAX_ERROR_CHARS]}... [{len(text)} chars]"
    return text


def _gate_input(plan: Plan, tier: int, message: AIMessage) -> GateInput:
    # Built from values the cascade already holds: no need to validate them again.
    return GateInput.model_construct(
        messages=plan.messages,
        response=message,
        tier=tier,
        model=plan.model_names[tier],
        tools=plan.tools,
        chat_model=plan.models[tier],
    )


def _judge(
    plan: Plan, tier: int, message: AIMessage, gate: Gate, attempt: Attempt
) -> Generator[Effect, Any, GateResult]:
    """Run one gate on one answer and record it on the attempt (fail closed)."""
    gate_input = _gate_input(plan, tier, message)
    attempt.gate = gate.gate_name
    started = time.perf_counter()
    usage: dict[str, UsageMetadata] = {}
    try:
        value, usage = yield CallGate(gate, gate_input, timeout=plan.timeout(tier))
        result = GateResult.coerce(value, name=gate.gate_name)
    except GateTimeoutError as exc:
        result = GateResult(passed=False, reason=str(exc))
    except Exception as exc:  # noqa: BLE001 - a broken gate must not lose the call
        result = GateResult(passed=False, reason=f"gate raised {_error_text(exc)}")
    attempt.gate_latency_s = time.perf_counter() - started
    if not usage and result.usage:
        # The gate's models reported nothing the cascade saw; trust its verdict.
        usage = {gate.gate_name: result.usage}
    attempt.gate_usage = usage
    attempt.gate_cost = sum_known(
        price_of(plan.prices, model, u) for model, u in usage.items()
    )
    attempt.score = result.score
    attempt.reason = result.reason
    return result


@dataclass
class _Watch:
    """The early-abort hook of one attempt: the gate's verdict on partial answers."""

    plan: Plan
    tier: int
    gate: Gate
    verdict: GateResult | None = None

    def __call__(self, partial: AIMessage) -> bool:
        try:
            result = self.gate.evaluate_partial(
                _gate_input(self.plan, self.tier, partial)
            )
        except Exception:  # noqa: BLE001 - a gate that can't judge never aborts
            return False
        if isinstance(result, GateResult) and not result.passed:
            self.verdict = result
            return True
        return False


@dataclass
class _Call:
    """The loop's state across one call."""

    plan: Plan
    attempts: list[Attempt] = field(default_factory=list)
    cancelled: list[Attempt] = field(default_factory=list)
    skipped: list[SkippedTier] = field(default_factory=list)
    started: set[int] = field(default_factory=set)
    """Tiers running in the background, not yet joined or cancelled."""
    first_tier: int = 0
    route: dict[str, Any] | None = None
    """The router's decision (``RouteDecision``), for the metadata."""

    def skip(self, tiers: range, reason: str) -> None:
        self.skipped.extend(
            {"tier": t, "model": self.plan.model_names[t], "reason": reason}
            for t in tiers
        )


def decide(plan: Plan) -> Generator[Effect, Any, Outcome]:
    """The cascade: try each tier in order until a gate passes or the last answers.

    The call starts where the router says (:class:`CallRouter`), else at
    ``plan.first_tier``; the tiers below are skipped. Non-final
    tiers: an error or a failed gate escalates, unless ``max_cost`` forbids the
    next tier, in which case the best answer so far is returned, flagged for
    review; when ``max_latency`` leaves no time for another gated attempt, the
    call goes straight to the final tier. The final tier is the safety net: its
    answer is returned whatever its quality, checked by the review gate when
    there is one. When the final tier raises, :class:`CascadeError` carries
    every attempt.

    Latency modes: with ``speculative`` the next tiers start at once and run
    while the earlier ones answer and are judged; the ones not needed are
    cancelled, and what they spent is recorded in ``cancelled_attempts`` and
    counted in the cost. With ``early_abort`` a gated tier whose gate can judge
    partial answers is watched while it streams and stopped as soon as its gate
    says it will fail.

    Args:
        plan: The call.

    Yields:
        Effects for the driver to perform.

    Returns:
        The outcome.

    Raises:
        CascadeError: When the final tier raises, or the budget stops the call
            before any tier answered.
    """
    call = _Call(plan)
    try:
        return (yield from _loop(call))
    except CascadeError:
        yield from _cancel_started(call, "the call failed")
        raise


def _loop(call: _Call) -> Generator[Effect, Any, Outcome]:
    plan, attempts = call.plan, call.attempts
    last = len(plan.models) - 1
    first, skip_reason = plan.first_tier, plan.skip_reason
    if plan.router is not None:
        decision = yield CallRouter(
            plan.router, RouteInput(messages=plan.messages, tools=plan.tools)
        )
        call.route = dict(decision)
        first, skip_reason = decision["first_tier"], f"router: {decision['reason']}"
    first = call.first_tier = min(max(first, 0), last)
    call.skip(range(first), skip_reason or f"first_tier={first}")
    for ahead in range(first + 1, min(first + plan.speculative, last) + 1):
        call.started.add(ahead)
        yield StartTier(ahead)
    tier = first
    while tier <= last:
        if (over := _over_budget(plan, tier, attempts)) is not None:
            return (yield from _finish(call, _best(attempts), over))
        if tier < last and (late := _out_of_time(plan, tier)) is not None:
            call.skip(range(tier, last), late)
            tier = last
        final = tier == last
        attempt = Attempt(
            tier=tier, model=plan.model_names[tier], speculative=tier in call.started
        )
        call.started.discard(tier)
        attempts.append(attempt)
        watch = None
        if plan.early_abort and not final and plan.gates[tier].judges_partial:
            watch = _Watch(plan, tier, plan.gates[tier])
        started = time.perf_counter()
        try:
            output: TierOutput = yield CallTier(
                tier,
                live=final and not plan.formats,
                watch=watch,
                timeout=plan.timeout(tier),
            )
        except Exception as exc:
            _record_error(attempt, exc, started)
            if final:
                raise CascadeError([a.to_dict() for a in attempts]) from exc
            yield Event(ESCALATION_EVENT, _escalation(attempt, to_tier=tier + 1))
            tier += 1
            continue
        attempt.latency_s = time.perf_counter() - started
        attempt.message = output.message
        _record_usage(
            plan,
            attempt,
            output.message,
            output.chunks,
            attempts,
            cut_short=output.aborted,
        )

        if final:
            review_reason = yield from _review(plan, output, attempt)
            return (yield from _finish(call, attempt, review_reason))
        if (yield from _passes(plan, output, watch, attempt)):
            return (yield from _finish(call, attempt, ""))
        yield Event(ESCALATION_EVENT, _escalation(attempt, to_tier=tier + 1))
        tier += 1
    msg = "unreachable: the final tier always returns or raises"
    raise AssertionError(msg)


def _review(
    plan: Plan, output: TierOutput, attempt: Attempt
) -> Generator[Effect, Any, str]:
    """Check the final tier's answer; the review reason, empty when it is fine."""
    review_reason = ""
    if output.parse_error is not None:
        review_reason = f"structured output did not parse: {output.parse_error}"
        attempt.reason = review_reason
    elif plan.review_gate is not None:
        review = yield from _judge(
            plan, attempt.tier, output.message, plan.review_gate, attempt
        )
        review_reason = "" if review.passed else review.reason
    else:
        attempt.reason = "final tier"
    _observe(plan, attempt)
    return review_reason


def _passes(
    plan: Plan, output: TierOutput, watch: _Watch | None, attempt: Attempt
) -> Generator[Effect, Any, bool]:
    """Whether a non-final tier's answer may be returned."""
    if output.aborted and watch is not None and watch.verdict is not None:
        attempt.aborted = True
        attempt.gate = watch.gate.gate_name
        attempt.score = watch.verdict.score
        attempt.reason = f"early abort: {watch.verdict.reason}"
        return False
    if output.parse_error is not None:
        attempt.reason = f"structured output did not parse: {output.parse_error}"
        return False
    gate = plan.gates[attempt.tier]
    result = yield from _judge(plan, attempt.tier, output.message, gate, attempt)
    _observe(plan, attempt)
    return result.passed


def _observe(plan: Plan, attempt: Attempt) -> None:
    """Feed a finished attempt's time to the estimator ``max_latency`` reads."""
    if plan.latency is not None:
        plan.latency.observe(
            attempt.tier, attempt.latency_s + (attempt.gate_latency_s or 0.0)
        )


def _out_of_time(plan: Plan, tier: int) -> str | None:
    """Why ``max_latency`` leaves no time to try tier ``tier`` before the final one.

    A tier never seen has no estimate and is tried.
    """
    if plan.max_latency is None or plan.latency is None:
        return None
    need = plan.latency.estimate(tier)
    if need is None:
        return None
    last = len(plan.models) - 1
    fallback = plan.latency.estimate(last) or 0.0
    left = plan.max_latency - (time.perf_counter() - plan.started_s)
    if need + fallback <= left:
        return None
    return (
        f"max_latency: {left:.3g}s left, tier {tier} takes about {need:.3g}s "
        f"and the final tier {fallback:.3g}s"
    )


def _record_usage(
    plan: Plan,
    attempt: Attempt,
    message: AIMessage | None,
    chunks: int,
    prompt_from: Sequence[Attempt],
    *,
    cut_short: bool,
) -> None:
    """Set the attempt's usage and cost; estimate them when the answer has none.

    A streamed answer cut short (aborted or cancelled) usually carries no usage:
    its output tokens are then counted as its chunks (one token each, as
    OpenAI-style servers stream) and its prompt as the prompt tokens another
    tier reported for the same messages.
    """
    usage = message.usage_metadata if message is not None else None
    if usage is None and cut_short:
        prompt = next(
            (a.usage["input_tokens"] for a in prompt_from if a.usage is not None), 0
        )
        usage = _usage(prompt, chunks)
        attempt.usage_estimated = True
    attempt.usage = usage
    attempt.cost = price_of(plan.prices, attempt.model, usage)


def _cancel_started(call: _Call, why: str) -> Generator[Effect, Any, None]:
    """Cancel every tier still running in the background; record what it spent."""
    for tier in sorted(call.started):
        attempt = Attempt(
            tier=tier,
            model=call.plan.model_names[tier],
            speculative=True,
            cancelled=True,
            reason=f"speculative run cancelled: {why}",
        )
        partial: Partial = yield CancelTier(tier)
        attempt.latency_s = time.perf_counter() - call.plan.started_s
        _record_usage(
            call.plan,
            attempt,
            partial.message,
            partial.chunks,
            [*call.attempts, *call.cancelled],
            cut_short=True,
        )
        call.cancelled.append(attempt)
    call.started.clear()


def _record_error(attempt: Attempt, exc: Exception, started: float) -> None:
    """Record on ``attempt`` that its tier raised (or timed out)."""
    attempt.latency_s = time.perf_counter() - started
    attempt.error = _error_text(exc)
    if isinstance(exc, TierTimeoutError):
        attempt.reason = f"timeout after {exc.seconds:g}s"
    else:
        attempt.reason = f"tier raised {attempt.error}"


def _finish(
    call: _Call, chosen: Attempt | None, review_reason: str
) -> Generator[Effect, Any, Outcome]:
    """Accept ``chosen``, format it, and announce a review flag."""
    plan, attempts = call.plan, call.attempts
    if chosen is not None:
        yield from _cancel_started(call, f"tier {chosen.tier} answered")
    if chosen is None or chosen.message is None:
        raise CascadeError([a.to_dict() for a in attempts], note=review_reason)
    chosen.accepted = True
    message, format_error = chosen.message, None
    if plan.formats:
        try:
            message = yield CallFormatter(message)
        except Exception as exc:  # noqa: BLE001 - keep the answer unformatted
            format_error = _error_text(exc)
    outcome = Outcome(
        message=message,
        tier=chosen.tier,
        needs_review=bool(review_reason),
        review_reason=review_reason,
        attempts=attempts,
        cost=_cost_report(plan, attempts, chosen, call.cancelled),
        format_error=format_error,
        cancelled=call.cancelled,
        skipped=call.skipped,
        route=call.route,
        first_tier=call.first_tier,
    )
    if outcome.needs_review:
        review: ReviewEvent = {
            "tier": chosen.tier,
            "model": chosen.model,
            "reason": review_reason,
            "answer": message.text,
            "attempts": len(attempts),
        }
        yield Event(REVIEW_EVENT, dict(review))
    return outcome


def _escalation(attempt: Attempt, *, to_tier: int) -> dict[str, Any]:
    event: EscalationEvent = {
        "from_tier": attempt.tier,
        "to_tier": to_tier,
        "model": attempt.model,
        "score": attempt.score,
        "reason": attempt.reason,
        "error": attempt.error,
    }
    return dict(event)


def _best(attempts: Sequence[Attempt]) -> Attempt | None:
    """The answered attempt with the highest gate score (the later tier on ties)."""
    answered = [a for a in attempts if a.message is not None]
    if not answered:
        return None
    return max(
        answered, key=lambda a: (a.score if a.score is not None else -1.0, a.tier)
    )


def _estimated_cost(plan: Plan, tier: int, attempts: Sequence[Attempt]) -> float | None:
    """What tier ``tier`` would cost on this call, from the tokens seen so far.

    The prompt is the same for every tier and the answer is assumed as long as
    the last answer seen. Before any answer with usage (the first tier tried, or
    earlier usage unknown), the prompt alone is estimated at about four characters
    a token, with no answer tokens: a rough lower bound. ``None`` without a price.
    """
    usage = next((a.usage for a in reversed(attempts) if a.usage), None)
    if usage is None:
        prompt = _prompt_tokens(plan.messages)
        usage = _usage(prompt, 0)
    return price_of(plan.prices, plan.model_names[tier], usage)


def _usage(input_tokens: int, output_tokens: int) -> UsageMetadata:
    """An estimated usage: these token counts and their total."""
    return UsageMetadata(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        total_tokens=input_tokens + output_tokens,
    )


def _prompt_tokens(messages: Sequence[BaseMessage]) -> int:
    """A rough token count of the prompt: one token per four characters."""
    return -(-sum(len(m.text) for m in messages) // 4)


def _over_budget(plan: Plan, tier: int, attempts: Sequence[Attempt]) -> str | None:
    """Why ``max_cost`` forbids tier ``tier``, or ``None`` when it does not.

    Known costs are judged even when others are unknown: a next tier whose
    estimate alone is over ``max_cost`` is never called. Without a price for the
    tier, the budget cannot be judged and does not stop the call.
    """
    if plan.max_cost is None or plan.model_names[tier] not in plan.prices:
        return None
    estimate = _estimated_cost(plan, tier, attempts)
    if estimate is None:
        return None
    where = f"tier {tier} ({plan.model_names[tier]}) would cost about ${estimate:.6g}"
    spent = sum_known(a.total_cost for a in attempts if a.error is None)
    if spent is None:
        if estimate <= plan.max_cost:
            return None
        return (
            f"budget: {where} alone (earlier costs unknown), over max_cost "
            f"${plan.max_cost:.6g}"
        )
    if spent + estimate <= plan.max_cost:
        return None
    return (
        f"budget: {where} on top of ${spent:.6g} spent, over max_cost "
        f"${plan.max_cost:.6g}"
    )


def _cost_report(
    plan: Plan,
    attempts: Sequence[Attempt],
    chosen: Attempt,
    cancelled: Sequence[Attempt] = (),
) -> CostReport:
    """The call's cost against the baseline of always asking the final tier.

    When the final tier was not called on this call, its cost is estimated from
    the tokens of the chosen answer at the final tier's price. Cancelled
    speculative runs count in the total, and alone in ``speculative``.
    """
    speculative = sum_known(a.cost for a in cancelled) if cancelled else 0.0
    total = sum_known([*(a.total_cost for a in attempts), speculative])
    last = len(plan.model_names) - 1
    final_attempt = next((a for a in attempts if a.tier == last and a.usage), None)
    if final_attempt is not None:
        baseline, estimated = final_attempt.cost, False
    else:
        baseline = price_of(plan.prices, plan.model_names[last], chosen.usage)
        estimated = True
    savings = None if total is None or baseline is None else baseline - total
    return {
        "total": total,
        "baseline": baseline,
        "baseline_estimated": estimated,
        "savings": savings,
        "speculative": speculative,
        "currency": "USD",
    }
