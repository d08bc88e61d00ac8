"""Watch a cascade in production: escalations, failures, cost and latency.

:class:`CascadeMonitor` is a callback handler. Pass it with the call's callbacks
(``config={"callbacks": [monitor]}``) or the cascade's own
(``CascadingChatModel(..., callbacks=[monitor])``) and it aggregates every call of
the cascade from the ``response_metadata["cascade"]`` of the cascade's own run.
:meth:`CascadeMonitor.summary` returns a :class:`MonitorSummary`.

Example:
    .. code-block:: python

        from langchain_cascade.monitor import CascadeMonitor

        monitor = CascadeMonitor(window=100, escalation_warning=0.6)
        cascade.batch(questions, config={"callbacks": [monitor]})
        print(monitor.summary())  # a table: calls, tiers, cost, latency
        monitor.summary().to_dict()  # the same as plain data

Escalation warning: past 50-60% of escalated calls a cascade costs more than
calling the premium model alone. Over the last ``window`` calls, when the share
of calls answered past tier 0 rises above ``escalation_warning``, the monitor warns
once (see :class:`EscalationWarning`) and re-arms only after the rate has fallen
to ``rearm_below`` (hysteresis: a rate hovering at the threshold warns once).
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, cast
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler, dispatch_custom_event
from langchain_core.messages import BaseMessage
from langchain_core.outputs import LLMResult
from langchain_core.runnables import ensure_config

from langchain_cascade._numeric import quantile
from langchain_cascade.errors import CascadeError
from langchain_cascade.events import (
    ESCALATION_EVENT,
    LS_PROVIDER,
    REVIEW_EVENT,
    WARNING_EVENT,
)
from langchain_cascade.types import AttemptInfo, CascadeMetadata

__all__ = [
    "REVIEW_EVENT",
    "WARNING_EVENT",
    "CascadeMonitor",
    "CostSummary",
    "EscalationWarning",
    "MonitorSummary",
    "Percentiles",
    "TierSummary",
    "WindowSummary",
]

logger = logging.getLogger("langchain_cascade")


_CANCELLED = (asyncio.CancelledError, GeneratorExit, KeyboardInterrupt)
"""What a call ends with when its caller stopped it: not a failure."""

_EPS = 1e-9  # rates are ratios of counts: compare them with a hair of tolerance


# --- the summary ---------------------------------------------------------------


@dataclass(frozen=True)
class Percentiles:
    """Latency percentiles in seconds (``None`` without samples).

    Attributes:
        count: The samples they were computed from (the most recent ones, at most
            the monitor's ``latency_samples``).
        p50: The median.
        p90: The 90th percentile.
        p99: The 99th percentile.
    """

    count: int
    p50: float | None
    p90: float | None
    p99: float | None

    @classmethod
    def of(cls, samples: Sequence[float]) -> Percentiles:
        """Percentiles of ``samples``, linearly interpolated between ranks."""
        if not samples:
            return cls(0, None, None, None)
        return cls(
            len(samples),
            quantile(samples, 0.5),
            quantile(samples, 0.9),
            quantile(samples, 0.99),
        )


@dataclass(frozen=True)
class TierSummary:
    """One tier's record.

    Attributes:
        tier: The tier's index, 0 the cheapest.
        models: The model names seen at this tier.
        answered: Calls this tier answered.
        attempts: Times this tier was tried (in answered and failed calls).
        accepted: Attempts whose answer was kept.
        escalations: Attempts that passed the call on to the next tier (a failed
            gate or an error).
        escalation_rate: ``escalations / attempts``.
        errors: Attempts that raised.
        cost: Total known cost of the attempts (model plus gate); ``None`` when no
            attempt's cost is known.
        cost_unknown_attempts: Attempts whose cost is unknown, left out of ``cost``.
        latency: Time per attempt (the model call plus its gate).
        skipped: Calls that did not try this tier (a router, ``first_tier`` or
            ``max_latency`` sent them past it).
        cancelled: Speculative runs of this tier cancelled because an earlier
            tier's answer passed (not counted in ``attempts``).
        cancelled_tokens: The tokens those runs spent (prompt and answer).
        cancelled_cost: Their known cost, also counted in the calls' cost.
    """

    tier: int
    models: tuple[str, ...]
    answered: int
    attempts: int
    accepted: int
    escalations: int
    escalation_rate: float | None
    errors: int
    cost: float | None
    cost_unknown_attempts: int
    latency: Percentiles
    skipped: int = 0
    cancelled: int = 0
    cancelled_tokens: int = 0
    cancelled_cost: float = 0.0


@dataclass(frozen=True)
class CostSummary:
    """What the calls cost, and what the premium model alone would have cost.

    Unknown costs (a model without a price) are counted, never summed as zero.

    Attributes:
        currency: The currency of the costs, ``None`` before any is known.
        total: Sum of the known call costs, ``None`` when none is known.
        known_calls: Calls whose cost is known.
        unknown_calls: Calls whose cost is unknown.
        baseline: Sum of the known baselines (the premium model alone).
        baseline_unknown_calls: Calls whose baseline is unknown.
        savings: ``baseline - cost`` over the calls where both are known
            (negative when the cascade cost more).
        savings_rate: ``savings`` as a share of those calls' baseline.
        comparable_calls: The calls ``savings`` is computed over.
    """

    currency: str | None
    total: float | None
    known_calls: int
    unknown_calls: int
    baseline: float | None
    baseline_unknown_calls: int
    savings: float | None
    savings_rate: float | None
    comparable_calls: int


@dataclass(frozen=True)
class WindowSummary:
    """The sliding window the escalation warning watches.

    Attributes:
        size: Calls the window holds when full.
        calls: Calls in it now.
        escalated: Of them, the calls answered past tier 0.
        escalation_rate: ``escalated / calls``.
        threshold: The warning's threshold (``None``: warnings are off).
        armed: Whether the next crossing warns.
    """

    size: int
    calls: int
    escalated: int
    escalation_rate: float | None
    threshold: float | None
    armed: bool


@dataclass(frozen=True)
class MonitorSummary:
    """Everything the monitor saw since it was created or reset.

    Attributes:
        calls: Calls the cascade answered.
        failed_calls: Calls that raised (the final tier failed).
        cancelled_calls: Calls cancelled by their caller (``asyncio`` cancellation,
            a client timeout) or streams the consumer closed before the end;
            neither answered nor failed.
        escalated_calls: Answered calls answered past tier 0.
        escalation_rate: ``escalated_calls / calls``.
        needs_review: Answered calls flagged for human review.
        review_rate: ``needs_review / calls``.
        attempt_errors: Attempts that raised, at any tier (failures).
        escalation_events: ``cascade_escalation`` events received; equals the sum
            of the tiers' ``escalations`` when the monitor gets the events (passed
            in the call's callbacks, not only the cascade's constructor).
        review_events: ``cascade_needs_review`` events received.
        latency: Wall time of the answered calls.
        tiers: One entry per tier.
        cost: Cost, baseline and savings.
        window: The escalation warning's window.
        warnings: Escalation warnings issued.
    """

    calls: int
    failed_calls: int
    cancelled_calls: int
    escalated_calls: int
    escalation_rate: float | None
    needs_review: int
    review_rate: float | None
    attempt_errors: int
    escalation_events: int
    review_events: int
    latency: Percentiles
    tiers: tuple[TierSummary, ...]
    cost: CostSummary
    window: WindowSummary
    warnings: int

    def to_dict(self) -> dict[str, Any]:
        """The summary as plain JSON-ready data."""
        return asdict(self)

    def __str__(self) -> str:
        cost = self.cost
        lines = [
            f"cascade monitor: {self.calls} calls, {self.failed_calls} failed,"
            f" {self.cancelled_calls} cancelled",
            f"  escalated   {self.escalated_calls} ({_pct(self.escalation_rate)})"
            f"   window {self.window.escalated}/{self.window.calls}"
            f" ({_pct(self.window.escalation_rate)},"
            f" warn above {_pct(self.window.threshold)}, {self.warnings} warnings)",
            f"  review      {self.needs_review} ({_pct(self.review_rate)})"
            f"   attempt errors {self.attempt_errors}"
            f"   escalation events {self.escalation_events}",
            f"  latency     p50 {_secs(self.latency.p50)}"
            f"  p90 {_secs(self.latency.p90)}  p99 {_secs(self.latency.p99)}",
            f"  cost        {_money(cost.total, cost.currency)}"
            f" ({cost.known_calls} known, {cost.unknown_calls} unknown)"
            f"   baseline {_money(cost.baseline, cost.currency)}"
            f"   savings {_money(cost.savings, cost.currency)}"
            f" ({_pct(cost.savings_rate)} of {cost.comparable_calls} calls)",
            "",
        ]
        header = (
            "tier",
            "models",
            "answered",
            "attempts",
            "accepted",
            "escalated",
            "esc.rate",
            "errors",
            "p50",
            "p90",
            "p99",
            "cost",
            "skipped",
            "cancelled",
        )
        rows = [header]
        rows.extend(
            (
                str(t.tier),
                ",".join(t.models) or "-",
                str(t.answered),
                str(t.attempts),
                str(t.accepted),
                str(t.escalations),
                _pct(t.escalation_rate),
                str(t.errors),
                _secs(t.latency.p50),
                _secs(t.latency.p90),
                _secs(t.latency.p99),
                _money(t.cost, cost.currency)
                + (
                    f" (+{t.cost_unknown_attempts}?)" if t.cost_unknown_attempts else ""
                ),
                str(t.skipped),
                f"{t.cancelled} ({t.cancelled_tokens} tok)" if t.cancelled else "0",
            )
            for t in self.tiers
        )
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        lines.extend(
            "  ".join(
                cell.ljust(w) for cell, w in zip(row, widths, strict=True)
            ).rstrip()
            for row in rows
        )
        return "\n".join(lines)


@dataclass(frozen=True)
class EscalationWarning:
    """The escalation rate over a full window passed the threshold.

    Attributes:
        rate: The window's escalation rate.
        threshold: The threshold it passed.
        window: The window's size in calls.
        escalated: Escalated calls in the window.
        calls: Answered calls the monitor had seen in all.
        cascade: The name of the cascade whose call crossed it.
        run_id: That call's run.
    """

    rate: float
    threshold: float
    window: int
    escalated: int
    calls: int
    cascade: str | None
    run_id: UUID | None

    @property
    def message(self) -> str:
        """A readable explanation, as logged."""
        return (
            f"cascade {self.cascade or '?'}: {self.escalated} of the last "
            f"{self.window} calls escalated ({self.rate:.0%} > {self.threshold:.0%}); "
            "past 50-60% a cascade costs more than its premium model alone: "
            "loosen the gates or start from a stronger tier"
        )

    def to_dict(self) -> dict[str, Any]:
        """The warning as plain JSON-ready data (the custom event's payload)."""
        data = asdict(self)
        data["run_id"] = None if self.run_id is None else str(self.run_id)
        data["message"] = self.message
        return data


# --- the handler ---------------------------------------------------------------


@dataclass
class _Run:
    """A cascade run in flight."""

    started: float
    nested: bool  # a tier of another cascade: its caller is counted, not it


@dataclass
class _TierStats:
    models: set[str]
    latencies: deque[float]
    answered: int = 0
    attempts: int = 0
    accepted: int = 0
    escalations: int = 0
    errors: int = 0
    cost: float = 0.0
    cost_known: int = 0
    cost_unknown: int = 0
    skipped: int = 0
    cancelled: int = 0
    cancelled_tokens: int = 0
    cancelled_cost: float = 0.0

    def summary(self, tier: int) -> TierSummary:
        return TierSummary(
            tier=tier,
            models=tuple(sorted(self.models)),
            answered=self.answered,
            attempts=self.attempts,
            accepted=self.accepted,
            escalations=self.escalations,
            escalation_rate=_ratio(self.escalations, self.attempts),
            errors=self.errors,
            cost=self.cost if self.cost_known else None,
            cost_unknown_attempts=self.cost_unknown,
            latency=Percentiles.of(list(self.latencies)),
            skipped=self.skipped,
            cancelled=self.cancelled,
            cancelled_tokens=self.cancelled_tokens,
            cancelled_cost=self.cancelled_cost,
        )


@dataclass
class _CostStats:
    currency: str | None = None
    total: float = 0.0
    known: int = 0
    unknown: int = 0
    baseline: float = 0.0
    baseline_known: int = 0
    baseline_unknown: int = 0
    savings: float = 0.0
    comparable_baseline: float = 0.0
    comparable: int = 0

    def add(self, cost: object) -> None:
        """Add one call's ``cascade["cost"]`` (absent or partial: unknown)."""
        data = cost if isinstance(cost, Mapping) else {}
        currency = data.get("currency")
        total, baseline = _amount(data.get("total")), _amount(data.get("baseline"))
        if isinstance(currency, str) and (total is not None or baseline is not None):
            if self.currency is None:
                self.currency = currency
            elif currency != self.currency:  # never add up two currencies
                total = baseline = None
        if total is None:
            self.unknown += 1
        else:
            self.known += 1
            self.total += total
        if baseline is None:
            self.baseline_unknown += 1
        else:
            self.baseline_known += 1
            self.baseline += baseline
        if total is not None and baseline is not None:
            self.comparable += 1
            self.savings += baseline - total
            self.comparable_baseline += baseline

    def summary(self) -> CostSummary:
        return CostSummary(
            currency=self.currency,
            total=self.total if self.known else None,
            known_calls=self.known,
            unknown_calls=self.unknown,
            baseline=self.baseline if self.baseline_known else None,
            baseline_unknown_calls=self.baseline_unknown,
            savings=self.savings if self.comparable else None,
            savings_rate=(
                self.savings / self.comparable_baseline
                if self.comparable_baseline > 0
                else None
            ),
            comparable_calls=self.comparable,
        )


class CascadeMonitor(BaseCallbackHandler):
    """Aggregates a cascade's calls: escalations, failures, reviews, cost, latency.

    It reads each call from the cascade's own run (``on_llm_end`` of the run whose
    answer carries ``response_metadata["cascade"]``) and ignores the tiers' and
    gates' child runs. Calls that raise are counted as ``failed_calls`` (calls
    cancelled by their caller and streams closed early as ``cancelled_calls``), and the
    attempts a :class:`~langchain_cascade.CascadeError` carries are added to the
    tiers. A cascade used as a tier of another cascade is not counted itself: its
    caller is. One monitor per cascade: the tiers of different cascades would be
    added up together.

    Thread- and asyncio-safe: every update takes one lock, per-run state is keyed
    by ``run_id``, and ``run_inline`` makes async runs call it inline.

    Latency is the wall time of the cascade's run (``on_chat_model_start`` to
    ``on_llm_end``); when the start was not seen, the sum of the attempts' model
    and gate latencies. Percentiles use the most recent ``latency_samples`` values.

    Escalation warning: when the window is full and more than
    ``escalation_warning`` of its calls were escalated, the monitor, once:

    * appends an :class:`EscalationWarning` to :attr:`warnings`;
    * logs it on the ``langchain_cascade`` logger (level WARNING);
    * calls ``on_warning(warning)``;
    * dispatches the custom event ``cascade_escalation_warning`` (data:
      ``EscalationWarning.to_dict()``) into the callback tree of the run that
      called the cascade, when there is one (the ambient LangChain config has a
      parent run: the cascade inside a chain, a graph node, a tool). A callback
      handler is given no callback manager, so the event goes to the caller's
      run, where ``astream_events`` and the user's handlers see it; a top-level
      ``cascade.invoke`` has no caller run and only the log and the hook fire.

    It re-arms when the window's rate falls to ``rearm_below`` (default 0.1 under
    the threshold), so a rate hovering at the threshold does not warn every call.

    Args:
        window: Calls in the sliding window.
        escalation_warning: Escalation rate above which to warn; ``None`` turns
            the warning off.
        rearm_below: Rate at or below which the warning re-arms (default
            ``escalation_warning - 0.1``).
        on_warning: Called with each :class:`EscalationWarning`. Its exceptions
            are logged, never raised into the call.
        dispatch_warnings: Dispatch the ``cascade_escalation_warning`` event.
        latency_samples: Latencies kept per series for the percentiles.

    Raises:
        ValueError: On a non-positive ``window`` or ``latency_samples``, or rates
            outside [0, 1].
    """

    run_inline: bool = True

    def __init__(
        self,
        *,
        window: int = 100,
        escalation_warning: float | None = 0.6,
        rearm_below: float | None = None,
        on_warning: Callable[[EscalationWarning], None] | None = None,
        dispatch_warnings: bool = True,
        latency_samples: int = 10_000,
    ) -> None:
        if window < 1:
            msg = f"window must be at least 1 call, got {window}"
            raise ValueError(msg)
        if latency_samples < 1:
            msg = f"latency_samples must be at least 1, got {latency_samples}"
            raise ValueError(msg)
        if escalation_warning is not None and not 0 <= escalation_warning <= 1:
            msg = f"escalation_warning must be in [0, 1], got {escalation_warning}"
            raise ValueError(msg)
        if rearm_below is None and escalation_warning is not None:
            rearm_below = max(0.0, round(escalation_warning - 0.1, 12))
        if (
            rearm_below is not None
            and escalation_warning is not None
            and not 0 <= rearm_below <= escalation_warning
        ):
            msg = (
                f"rearm_below must be in [0, escalation_warning="
                f"{escalation_warning}], got {rearm_below}"
            )
            raise ValueError(msg)
        self.window = window
        self.escalation_warning = escalation_warning
        self.rearm_below = rearm_below
        self.on_warning = on_warning
        self.dispatch_warnings = dispatch_warnings
        self.latency_samples = latency_samples
        self._lock = threading.Lock()
        self._runs: dict[UUID, _Run] = {}
        self._clear()

    def _clear(self) -> None:
        """Forget every aggregate (the lock is held or not yet shared)."""
        self._calls = 0
        self._failed_calls = 0
        self._cancelled_calls = 0
        self._escalated = 0
        self._needs_review = 0
        self._attempt_errors = 0
        self._escalation_events = 0
        self._review_events = 0
        self._latencies: deque[float] = deque(maxlen=self.latency_samples)
        self._tiers: dict[int, _TierStats] = {}
        self._cost = _CostStats()
        self._recent: deque[bool] = deque(maxlen=self.window)
        self._recent_escalated = 0
        self._armed = True
        self._warnings: list[EscalationWarning] = []

    # --- public -------------------------------------------------------------------

    @property
    def warnings(self) -> list[EscalationWarning]:
        """The escalation warnings issued so far, oldest first (a copy)."""
        with self._lock:
            return list(self._warnings)

    @property
    def in_flight(self) -> int:
        """Cascade runs started and not yet ended."""
        with self._lock:
            return len(self._runs)

    def reset(self) -> None:
        """Start afresh: forget every call, warning and window; re-arm.

        Runs in flight are still timed and counted when they end.
        """
        with self._lock:
            self._clear()

    def summary(self) -> MonitorSummary:
        """A consistent snapshot of everything seen so far."""
        with self._lock:
            latencies = list(self._latencies)
            top = max(self._tiers, default=-1)
            tiers = [
                self._tiers.get(i) or self._new_tier_stats() for i in range(top + 1)
            ]
            tier_summaries = tuple(stats.summary(i) for i, stats in enumerate(tiers))
            window = WindowSummary(
                size=self.window,
                calls=len(self._recent),
                escalated=self._recent_escalated,
                escalation_rate=_ratio(self._recent_escalated, len(self._recent)),
                threshold=self.escalation_warning,
                armed=self._armed,
            )
            return MonitorSummary(
                calls=self._calls,
                failed_calls=self._failed_calls,
                cancelled_calls=self._cancelled_calls,
                escalated_calls=self._escalated,
                escalation_rate=_ratio(self._escalated, self._calls),
                needs_review=self._needs_review,
                review_rate=_ratio(self._needs_review, self._calls),
                attempt_errors=self._attempt_errors,
                escalation_events=self._escalation_events,
                review_events=self._review_events,
                latency=Percentiles.of(latencies),
                tiers=tier_summaries,
                cost=self._cost.summary(),
                window=window,
                warnings=len(self._warnings),
            )

    # --- callbacks ------------------------------------------------------------------

    @property
    def ignore_chain(self) -> bool:
        """Chains (gates, prompts) tell the monitor nothing: skip them."""
        return True

    @property
    def ignore_agent(self) -> bool:
        """Agent actions tell the monitor nothing: skip them."""
        return True

    @property
    def ignore_retriever(self) -> bool:
        """Retrievers tell the monitor nothing: skip them."""
        return True

    @property
    def ignore_retry(self) -> bool:
        """Retries tell the monitor nothing: skip them."""
        return True

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Time a cascade run from its start."""
        if (metadata or {}).get("ls_provider") != LS_PROVIDER:
            return
        started = time.perf_counter()
        with self._lock:
            nested = parent_run_id is not None and parent_run_id in self._runs
            self._runs[run_id] = _Run(started=started, nested=nested)

    def on_llm_end(
        self,
        response: LLMResult,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        """Count a cascade call; child runs carry no cascade metadata and pass."""
        ended = time.perf_counter()
        meta, cascade = _cascade_metadata(response)
        warning = None
        with self._lock:
            run = self._runs.pop(run_id, None)
            if meta is None:
                return
            if run is None:  # the start was not seen: is its caller a cascade?
                nested = parent_run_id is not None and parent_run_id in self._runs
            else:
                nested = run.nested
            if nested:
                return
            wall = ended - run.started if run is not None else _attempts_time(meta)
            warning = self._record_call(meta, wall, cascade, run_id)
        if warning is not None:
            self._warn(warning)

    def on_llm_error(
        self,
        error: BaseException,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        """Count a cascade call that raised, and the attempts its error carries.

        A cancelled call (``CancelledError``, ``KeyboardInterrupt``) or a stream the
        consumer closed early (``GeneratorExit``) is forgotten and counted as
        cancelled, not failed.
        """
        with self._lock:
            run = self._runs.pop(run_id, None)
            if run is None or run.nested:
                return
            if isinstance(error, _CANCELLED):
                self._cancelled_calls += 1
                return
            self._failed_calls += 1
            if isinstance(error, CascadeError):
                self._record_attempts(error.attempts)

    def on_custom_event(
        self,
        name: str,
        data: Any,
        *,
        run_id: UUID,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Count the cascade's ``cascade_escalation`` and review events."""
        if name not in (ESCALATION_EVENT, REVIEW_EVENT):
            return
        with self._lock:
            run = self._runs.get(run_id)
            if run is not None and run.nested:
                return
            if name == ESCALATION_EVENT:
                self._escalation_events += 1
            else:
                self._review_events += 1

    # --- aggregation (under the lock) -----------------------------------------------

    def _new_tier_stats(self) -> _TierStats:
        return _TierStats(models=set(), latencies=deque(maxlen=self.latency_samples))

    def _tier(self, tier: int) -> _TierStats:
        stats = self._tiers.get(tier)
        if stats is None:
            stats = self._tiers[tier] = self._new_tier_stats()
        return stats

    def _record_call(
        self,
        meta: CascadeMetadata,
        wall_s: float,
        cascade: str | None,
        run_id: UUID,
    ) -> EscalationWarning | None:
        self._calls += 1
        tier = _index(meta.get("tier"))
        escalated = bool(meta.get("escalated", tier is not None and tier > 0))
        self._record_attempts(meta.get("attempts"))
        self._record_latency_modes(meta)
        if tier is not None:
            stats = self._tier(tier)
            stats.answered += 1
            if isinstance(meta.get("model"), str):
                stats.models.add(meta["model"])
        if escalated:
            self._escalated += 1
        if meta.get("needs_review"):
            self._needs_review += 1
        self._latencies.append(wall_s)
        self._cost.add(meta.get("cost"))
        return self._slide(escalated=escalated, cascade=cascade, run_id=run_id)

    def _record_latency_modes(self, meta: Mapping[str, Any]) -> None:
        """Count skipped tiers and cancelled speculative runs."""
        for skip in _mappings(meta.get("skipped_tiers")):
            if (tier := _index(skip.get("tier"))) is not None:
                self._tier(tier).skipped += 1
        for run in _mappings(meta.get("cancelled_attempts")):
            if (tier := _index(run.get("tier"))) is None:
                continue
            stats = self._tier(tier)
            stats.cancelled += 1
            usage = run.get("usage")
            if isinstance(usage, Mapping):
                stats.cancelled_tokens += _index(usage.get("total_tokens")) or 0
            stats.cancelled_cost += _amount(run.get("cost")) or 0.0

    def _record_attempts(self, attempts: Sequence[AttemptInfo] | None) -> None:
        # Hand-built or older metadata may lack fields: read what is there.
        if not isinstance(attempts, Sequence):
            return
        last = len(attempts) - 1
        for i, attempt in enumerate(attempts):
            tier = _index(attempt.get("tier")) if isinstance(attempt, Mapping) else None
            if tier is None:
                continue
            stats = self._tier(tier)
            stats.attempts += 1
            if isinstance(attempt.get("model"), str):
                stats.models.add(attempt["model"])
            if attempt.get("accepted"):
                stats.accepted += 1
            if i < last:
                stats.escalations += 1
            if attempt.get("error"):
                stats.errors += 1
                self._attempt_errors += 1
            stats.latencies.append(
                _seconds(attempt.get("latency_s"))
                + _seconds(attempt.get("gate_latency_s"))
            )
            model_cost = _amount(attempt.get("cost"))
            gate_cost = (
                _amount(attempt.get("gate_cost"))
                if attempt.get("gate") is not None
                else 0.0
            )
            if model_cost is None or gate_cost is None:
                stats.cost_unknown += 1
            else:
                stats.cost_known += 1
                stats.cost += model_cost + gate_cost

    def _slide(
        self, *, escalated: bool, cascade: str | None, run_id: UUID
    ) -> EscalationWarning | None:
        """Slide the window; the warning to issue when this call crosses the limit."""
        recent = self._recent
        if len(recent) == recent.maxlen and recent[0]:
            self._recent_escalated -= 1
        recent.append(escalated)
        self._recent_escalated += escalated
        threshold = self.escalation_warning
        if threshold is None or len(recent) < self.window:
            return None
        rate = self._recent_escalated / self.window
        if self._armed and rate > threshold + _EPS:
            self._armed = False
            warning = EscalationWarning(
                rate=rate,
                threshold=threshold,
                window=self.window,
                escalated=self._recent_escalated,
                calls=self._calls,
                cascade=cascade,
                run_id=run_id,
            )
            self._warnings.append(warning)
            return warning
        if not self._armed and rate <= (self.rearm_below or 0.0) + _EPS:
            self._armed = True
        return None

    # --- warning (outside the lock: handlers and hooks may call back in) -------------

    def _warn(self, warning: EscalationWarning) -> None:
        """Tell the world about a warning already recorded in :attr:`warnings`."""
        logger.warning("%s", warning.message)
        if self.on_warning is not None:
            try:
                self.on_warning(warning)
            except Exception:  # a broken hook must not break the call
                logger.exception("CascadeMonitor on_warning hook raised")
        if self.dispatch_warnings:
            self._dispatch(warning)

    @staticmethod
    def _dispatch(warning: EscalationWarning) -> None:
        config = ensure_config()
        if config.get("callbacks") is None:
            return  # a top-level call: there is no caller run to attach it to
        try:
            dispatch_custom_event(WARNING_EVENT, warning.to_dict(), config=config)
        except Exception:  # best effort: the log and the hook fired already
            logger.debug("could not dispatch %s", WARNING_EVENT, exc_info=True)


# --- helpers -------------------------------------------------------------------------


def _cascade_metadata(
    response: LLMResult,
) -> tuple[CascadeMetadata | None, str | None]:
    """The ``cascade`` metadata of a run's answer and the cascade's name."""
    for generations in response.generations:
        for generation in generations:
            message = getattr(generation, "message", None)
            if not isinstance(message, BaseMessage):
                continue
            meta = message.response_metadata.get("cascade")
            if isinstance(meta, Mapping):
                name = message.response_metadata.get("model_name")
                typed = cast("CascadeMetadata", meta)
                return typed, name if isinstance(name, str) else None
    return None, None


def _attempts_time(meta: CascadeMetadata) -> float:
    attempts = meta.get("attempts")
    if not isinstance(attempts, Sequence):
        return 0.0
    return sum(
        _seconds(a.get("latency_s")) + _seconds(a.get("gate_latency_s"))
        for a in attempts
        if isinstance(a, Mapping)
    )


def _mappings(value: object) -> list[Mapping[str, Any]]:
    if not isinstance(value, Sequence):
        return []
    return [v for v in value if isinstance(v, Mapping)]


def _index(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _amount(value: object) -> float | None:
    """A cost, or ``None`` when unknown (absent, ``None``, not a finite number)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _seconds(value: object) -> float:
    amount = _amount(value)
    return 0.0 if amount is None else amount


def _ratio(part: float, whole: float) -> float | None:
    return part / whole if whole else None


def _pct(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.1%}"


def _secs(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.1f}ms" if value < 1 else f"{value:.2f}s"


def _money(value: float | None, currency: str | None) -> str:
    if value is None:
        return "-"
    return f"{value:.6g} {currency or ''}".rstrip()
