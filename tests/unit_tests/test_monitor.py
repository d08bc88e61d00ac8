"""CascadeMonitor: counts, rates, cost, latency, concurrency and the warning."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any, cast

import pytest
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, LLMResult
from langchain_core.runnables import RunnableConfig, RunnableLambda

from langchain_cascade import CascadeError, CascadingChatModel
from langchain_cascade.gates import HedgingGate
from langchain_cascade.monitor import (
    WARNING_EVENT,
    CascadeMonitor,
    EscalationWarning,
)
from tests.unit_tests.fake_models import ScriptedChatModel
from tests.unit_tests.run_recorder import RunRecorder

HEDGE = "I'm not sure."


def scripted(
    name: str, rule: Callable[[str], str], delay_s: float = 0.0
) -> ScriptedChatModel:
    """A tier whose answer depends on the question; ``"!raise"`` raises."""

    def respond(messages: list[BaseMessage]) -> AIMessage:
        reply = rule(messages[-1].text)
        if reply == "!raise":
            msg = f"{name} is down"
            raise RuntimeError(msg)
        return AIMessage(
            reply,
            usage_metadata={"input_tokens": 3, "output_tokens": 2, "total_tokens": 5},
            response_metadata={"model_name": name},
        )

    return ScriptedChatModel(model=name, responder=respond, delay_s=delay_s)


def hard_or_easy(delay_s: float = 0.0, **kwargs: Any) -> CascadingChatModel:
    """Two tiers: the cheap one hedges on questions starting with "hard"."""
    return CascadingChatModel(
        models=[
            scripted(
                "cheap",
                lambda q: HEDGE if q.startswith("hard") else "ok",
                delay_s,
            ),
            scripted("premium", lambda q: "premium answer", delay_s),
        ],
        gates=[HedgingGate()],
        **kwargs,
    )


def attempt(
    tier: int,
    *,
    accepted: bool,
    cost: float | None = None,
    gate_cost: float | None = None,
    gate: str | None = "HedgingGate",
    latency_s: float = 0.01,
    gate_latency_s: float | None = 0.001,
    error: str | None = None,
) -> dict[str, Any]:
    return {
        "tier": tier,
        "model": f"m{tier}",
        "accepted": accepted,
        "score": None,
        "reason": "",
        "usage": None,
        "latency_s": latency_s,
        "error": error,
        "gate": gate,
        "gate_latency_s": gate_latency_s,
        "gate_usage": {},
        "cost": cost,
        "gate_cost": gate_cost,
    }


def feed(
    monitor: CascadeMonitor,
    attempts: list[dict[str, Any]],
    *,
    cost: dict[str, Any] | None = None,
    needs_review: bool = False,
) -> None:
    """Hand the monitor a cascade answer, as the cascade's own run would end."""
    tier = attempts[-1]["tier"]
    meta: dict[str, Any] = {
        "tier": tier,
        "model": attempts[-1]["model"],
        "escalated": tier > 0,
        "needs_review": needs_review,
        "review_reason": "",
        "attempts": attempts,
    }
    if cost is not None:
        meta["cost"] = cost
    message = AIMessage(
        "answer", response_metadata={"model_name": "cascade", "cascade": meta}
    )
    monitor.on_llm_end(
        LLMResult(generations=[[ChatGeneration(message=message)]]),
        run_id=uuid.uuid4(),
    )


def feed_call(monitor: CascadeMonitor, *, escalated: bool) -> None:
    if escalated:
        feed(monitor, [attempt(0, accepted=False), attempt(1, accepted=True)])
    else:
        feed(monitor, [attempt(0, accepted=True)])


# --- a known mix of calls ------------------------------------------------------------


def test_summary_after_a_known_mix_of_calls() -> None:
    # easy: tier 0. hard: tier 1. harder: tier 2, flagged for review.
    # boom: tier 0 raises, tier 1 answers. doomed: the final tier raises.
    def rule0(q: str) -> str:
        return {"easy": "ok", "boom": "!raise"}.get(q, HEDGE)

    def rule1(q: str) -> str:
        return HEDGE if q in ("harder", "doomed") else "fine"

    def rule2(q: str) -> str:
        return {"harder": HEDGE, "doomed": "!raise"}.get(q, "sure")

    cascade = CascadingChatModel(
        models=[scripted("m0", rule0), scripted("m1", rule1), scripted("m2", rule2)],
        gates=HedgingGate(),
        review_gate=HedgingGate(),
    )
    monitor = CascadeMonitor()
    config: RunnableConfig = {"callbacks": [monitor]}
    questions = ["easy"] * 4 + ["hard"] * 3 + ["harder"] * 2 + ["boom"]

    async def astream(q: str) -> None:
        async for _ in cascade.astream(q, config):
            pass

    for i, q in enumerate(questions):  # every entry point is counted alike
        mode = i % 4
        if mode == 0:
            cascade.invoke(q, config)
        elif mode == 1:
            asyncio.run(cascade.ainvoke(q, config))
        elif mode == 2:
            list(cascade.stream(q, config))
        else:
            asyncio.run(astream(q))
    with pytest.raises(CascadeError):
        cascade.invoke("doomed", config)

    s = monitor.summary()
    assert (s.calls, s.failed_calls, s.escalated_calls) == (10, 1, 6)
    assert s.escalation_rate == pytest.approx(0.6)
    assert s.needs_review == 2
    assert s.review_rate == pytest.approx(0.2)
    assert s.attempt_errors == 2  # boom at tier 0, doomed at tier 2
    rows = [
        (t.tier, t.models, t.answered, t.attempts, t.accepted, t.escalations, t.errors)
        for t in s.tiers
    ]
    assert rows == [
        (0, ("m0",), 4, 11, 4, 7, 1),
        (1, ("m1",), 4, 7, 4, 3, 0),
        (2, ("m2",), 2, 3, 2, 0, 1),
    ]
    assert [t.escalation_rate for t in s.tiers] == [
        pytest.approx(7 / 11),
        pytest.approx(3 / 7),
        0.0,
    ]
    # The events cross-check the metadata, failed call included.
    assert s.escalation_events == sum(t.escalations for t in s.tiers) == 10
    assert s.review_events in (0, s.needs_review)  # once the cascade emits them
    # Latency: one sample per call, one per attempt of each tier.
    assert s.latency.count == 10
    assert s.latency.p50 is not None
    assert s.latency.p90 is not None
    assert s.latency.p99 is not None
    assert 0 < s.latency.p50 <= s.latency.p90 <= s.latency.p99 < 5
    assert [t.latency.count for t in s.tiers] == [11, 7, 3]
    # Unknown prices are counted, never summed as zero.
    assert s.cost.known_calls + s.cost.unknown_calls == 10
    assert s.window.calls == 10
    assert s.warnings == 0
    assert monitor.in_flight == 0

    data = s.to_dict()
    json.dumps(data)
    assert data["tiers"][0]["escalations"] == 7
    text = str(s)
    assert "10 calls, 1 failed" in text
    assert "60.0%" in text
    assert "esc.rate" in text


def test_reset_forgets_everything() -> None:
    monitor = CascadeMonitor(window=1, escalation_warning=0.5)
    feed_call(monitor, escalated=True)
    assert monitor.summary().calls == 1
    assert len(monitor.warnings) == 1
    monitor.reset()
    s = monitor.summary()
    assert (s.calls, s.escalated_calls, s.tiers, s.warnings) == (0, 0, (), 0)
    assert s.escalation_rate is None
    assert s.latency.p50 is None
    assert s.cost.total is None
    assert s.window.armed is True
    assert monitor.warnings == []
    str(s)  # an empty summary prints


def test_latency_falls_back_to_attempt_times_without_a_start() -> None:
    monitor = CascadeMonitor()
    feed(
        monitor,
        [
            attempt(0, accepted=False, latency_s=0.2, gate_latency_s=0.05),
            attempt(1, accepted=True, latency_s=0.5, gate=None, gate_latency_s=None),
        ],
    )
    s = monitor.summary()
    assert s.latency.p50 == pytest.approx(0.75)
    assert s.tiers[0].latency.p50 == pytest.approx(0.25)
    assert s.tiers[1].latency.p50 == pytest.approx(0.5)


def test_percentiles_interpolate_between_ranks() -> None:
    monitor = CascadeMonitor()
    for ms in range(1, 101):
        feed(
            monitor, [attempt(0, accepted=True, latency_s=ms / 1000, gate_latency_s=0)]
        )
    latency = monitor.summary().latency
    assert latency.count == 100
    assert latency.p50 == pytest.approx(0.0505)
    assert latency.p90 == pytest.approx(0.0901)
    assert latency.p99 == pytest.approx(0.09901)


# --- cost ------------------------------------------------------------------------------


def test_cost_aggregation_counts_unknown_costs_apart() -> None:
    monitor = CascadeMonitor()
    usd = "USD"
    # A: tier 0 answered cheaply.
    feed(
        monitor,
        [attempt(0, accepted=True, cost=0.001, gate_cost=0.0)],
        cost={"total": 0.001, "baseline": 0.01, "savings": 0.009, "currency": usd},
    )
    # B: the premium price is unknown: the total is unknown.
    feed(
        monitor,
        [
            attempt(0, accepted=False, cost=0.001, gate_cost=None),
            attempt(1, accepted=True, cost=None, gate=None),
        ],
        cost={"total": None, "baseline": 0.01, "savings": None, "currency": usd},
    )
    # C: escalated, dearer than the premium model alone.
    feed(
        monitor,
        [
            attempt(0, accepted=False, cost=0.01, gate_cost=0.002),
            attempt(1, accepted=True, cost=0.008, gate=None),
        ],
        cost={"total": 0.02, "baseline": 0.01, "savings": -0.01, "currency": usd},
    )
    # D: a cascade that reports no cost at all.
    feed(monitor, [attempt(0, accepted=True)])

    cost = monitor.summary().cost
    assert cost.currency == "USD"
    assert cost.total == pytest.approx(0.021)
    assert (cost.known_calls, cost.unknown_calls) == (2, 2)
    assert cost.baseline == pytest.approx(0.03)
    assert cost.baseline_unknown_calls == 1
    assert cost.comparable_calls == 2  # A and C
    assert cost.savings == pytest.approx(-0.001)
    assert cost.savings_rate == pytest.approx(-0.05)

    tier0, tier1 = monitor.summary().tiers
    # Known: A (0.001), C (0.012). Unknown: B (its gate's price), D (no fields).
    assert tier0.cost == pytest.approx(0.013)
    assert tier0.cost_unknown_attempts == 2
    # Known: C (no gate ran on the final tier). Unknown: B.
    assert tier1.cost == pytest.approx(0.008)
    assert tier1.cost_unknown_attempts == 1
    assert "0.021 USD" in str(monitor.summary())


def test_no_known_cost_reports_none_not_zero() -> None:
    monitor = CascadeMonitor()
    feed(
        monitor,
        [attempt(0, accepted=True)],
        cost={"total": None, "baseline": None, "savings": None, "currency": "USD"},
    )
    cost = monitor.summary().cost
    assert (cost.total, cost.baseline, cost.savings, cost.savings_rate) == (
        None,
        None,
        None,
        None,
    )
    assert (cost.unknown_calls, cost.baseline_unknown_calls) == (1, 1)
    assert monitor.summary().tiers[0].cost is None


def test_two_currencies_are_never_added_up() -> None:
    monitor = CascadeMonitor()
    feed(monitor, [attempt(0, accepted=True)], cost={"total": 1.0, "currency": "USD"})
    feed(monitor, [attempt(0, accepted=True)], cost={"total": 1.0, "currency": "EUR"})
    cost = monitor.summary().cost
    assert (cost.currency, cost.total, cost.unknown_calls) == ("USD", 1.0, 1)


# --- concurrency -------------------------------------------------------------------------


def test_1000_concurrent_batch_calls_give_exact_counts() -> None:
    cascade = hard_or_easy()
    monitor = CascadeMonitor()
    inputs: list[Any] = [
        ("hard " if i % 3 == 0 else "easy ") + str(i) for i in range(1000)
    ]
    answers = cascade.batch(
        inputs, config={"callbacks": [monitor], "max_concurrency": 32}
    )
    assert len(answers) == 1000
    s = monitor.summary()
    assert (s.calls, s.failed_calls, s.escalated_calls) == (1000, 0, 334)
    assert s.escalation_rate == pytest.approx(0.334)
    tier0, tier1 = s.tiers
    assert (tier0.answered, tier0.attempts, tier0.accepted, tier0.escalations) == (
        666,
        1000,
        666,
        334,
    )
    assert (tier1.answered, tier1.attempts, tier1.accepted, tier1.escalations) == (
        334,
        334,
        334,
        0,
    )
    assert s.escalation_events == 334
    assert s.latency.count == 1000
    assert monitor.in_flight == 0
    assert monitor.warnings == []


async def test_1000_concurrent_ainvoke_calls_give_exact_counts() -> None:
    cascade = hard_or_easy(delay_s=0.001)  # the calls interleave at every await
    monitor = CascadeMonitor()
    config: RunnableConfig = {"callbacks": [monitor]}
    inputs = [("hard " if i % 4 == 0 else "easy ") + str(i) for i in range(1000)]
    answers = await asyncio.gather(*(cascade.ainvoke(q, config) for q in inputs))
    assert [a.response_metadata["cascade"]["tier"] for a in answers] == [
        1 if q.startswith("hard") else 0 for q in inputs
    ]
    s = monitor.summary()
    assert (s.calls, s.escalated_calls, s.escalation_events) == (1000, 250, 250)
    assert [(t.answered, t.attempts, t.escalations) for t in s.tiers] == [
        (750, 1000, 250),
        (250, 250, 0),
    ]
    assert s.latency.count == 1000
    assert s.latency.p50 is not None
    assert s.latency.p50 >= 0.001  # wall time of the run, sleeps included
    assert monitor.in_flight == 0


def test_escalation_burst_under_threads_warns_exactly_once() -> None:
    cascade = hard_or_easy()
    hooked: list[EscalationWarning] = []
    monitor = CascadeMonitor(on_warning=hooked.append)
    inputs: list[Any] = [f"hard {i}" for i in range(500)]
    cascade.batch(inputs, config={"callbacks": [monitor], "max_concurrency": 32})
    assert monitor.summary().escalated_calls == 500
    assert len(monitor.warnings) == len(hooked) == 1


async def test_escalation_burst_under_asyncio_warns_and_dispatches_once() -> None:
    cascade = hard_or_easy(delay_s=0.001)
    monitor = CascadeMonitor()
    recorder = RunRecorder()
    chain = RunnableLambda(lambda q: q) | cascade
    config: RunnableConfig = {"callbacks": [monitor, recorder]}
    await asyncio.gather(*(chain.ainvoke(f"hard {i}", config) for i in range(300)))
    assert len(monitor.warnings) == 1
    events = [e for e in recorder.events if e[0] == WARNING_EVENT]
    assert len(events) == 1
    assert events[0][1]["rate"] == 1.0


# --- the escalation warning ------------------------------------------------------------


def test_warning_fires_once_per_crossing_logged_hooked_and_dispatched(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cascade = hard_or_easy(name="faq-bot")
    hooked: list[EscalationWarning] = []
    monitor = CascadeMonitor(window=10, on_warning=hooked.append)
    recorder = RunRecorder()
    chain = RunnableLambda(lambda q: q) | cascade
    config: RunnableConfig = {"callbacks": [monitor, recorder]}

    def ask(*questions: str) -> None:
        for q in questions:
            chain.invoke(q, config)

    with caplog.at_level(logging.WARNING, logger="langchain_cascade"):
        ask(*["easy"] * 10, *["hard"] * 6)
        assert monitor.warnings == []  # 6/10 = 60%: at the threshold, not past it
        ask("hard")  # 7/10: past it
        assert len(monitor.warnings) == len(hooked) == 1
        ask(*["hard"] * 10)  # still above: no new warning
        assert len(hooked) == 1

    (warning,) = hooked
    assert warning is monitor.warnings[0]
    assert (warning.rate, warning.threshold, warning.window) == (0.7, 0.6, 10)
    assert (warning.escalated, warning.calls, warning.cascade) == (7, 17, "faq-bot")
    records = [r for r in caplog.records if r.name == "langchain_cascade"]
    assert len(records) == 1
    assert records[0].levelno == logging.WARNING
    assert "7 of the last 10 calls escalated" in records[0].getMessage()
    # The event reaches the caller's run (the chain), with the warning as data.
    events = [e for e in recorder.events if e[0] == WARNING_EVENT]
    assert len(events) == 1
    _, data, run_id = events[0]
    assert data["rate"] == 0.7
    assert data["run_id"] == str(warning.run_id)
    assert "message" in data
    assert warning.run_id is not None
    assert run_id == recorder.runs[warning.run_id].parent_run_id  # the chain
    assert recorder.runs[run_id].name == "RunnableSequence"
    # The monitor ignores its own event and its counts stay right.
    assert monitor.summary().escalation_events == 17


def test_hysteresis_rearms_only_after_falling_to_rearm_below() -> None:
    monitor = CascadeMonitor(window=4, escalation_warning=0.5, rearm_below=0.25)
    f, t = False, True
    sequence = [
        *[f, f, f, f],  # full window, 0%
        *[t, t, t],  # 25%, 50% (not past), 75%: warning 1
        *[f, f, t, t, t],  # 75, 50, 50, 50, 75: hovering, disarmed
        *[f, f, f],  # 75, 50, 25: re-armed
        *[t, t, t],  # 25, 50, 75: warning 2
        t,  # 100%: disarmed
    ]
    fired_at = []
    for i, escalated in enumerate(sequence):
        before = len(monitor.warnings)
        feed_call(monitor, escalated=escalated)
        if len(monitor.warnings) > before:
            fired_at.append(i)
    assert fired_at == [6, 17]
    assert monitor.summary().window.armed is False


def test_no_warning_below_threshold_or_before_the_window_fills(
    caplog: pytest.LogCaptureFixture,
) -> None:
    hooked: list[EscalationWarning] = []
    monitor = CascadeMonitor(window=10, on_warning=hooked.append)
    with caplog.at_level(logging.WARNING, logger="langchain_cascade"):
        for _ in range(9):  # 100% escalated, but the window is not full
            feed_call(monitor, escalated=True)
        assert monitor.warnings == []
        monitor.reset()
        for i in range(200):  # 50%, forever
            feed_call(monitor, escalated=i % 2 == 0)
    assert monitor.summary().window.escalation_rate == 0.5
    assert hooked == []
    assert monitor.warnings == []
    assert not [r for r in caplog.records if r.name == "langchain_cascade"]


def test_warning_can_be_turned_off() -> None:
    monitor = CascadeMonitor(window=2, escalation_warning=None)
    for _ in range(5):
        feed_call(monitor, escalated=True)
    assert monitor.warnings == []
    assert monitor.summary().window.threshold is None


def test_top_level_call_warns_without_a_run_to_dispatch_to(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cascade = hard_or_easy()
    hooked: list[EscalationWarning] = []
    monitor = CascadeMonitor(window=3, on_warning=hooked.append)
    with caplog.at_level(logging.DEBUG, logger="langchain_cascade"):
        for _ in range(3):
            cascade.invoke("hard", {"callbacks": [monitor]})
    assert len(hooked) == 1
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not [r for r in caplog.records if "could not dispatch" in r.getMessage()]


def test_a_raising_hook_never_breaks_the_call(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(warning: EscalationWarning) -> None:
        msg = "hook bug"
        raise ValueError(msg)

    cascade = hard_or_easy()
    monitor = CascadeMonitor(window=1, escalation_warning=0.5, on_warning=broken)
    with caplog.at_level(logging.WARNING, logger="langchain_cascade"):
        answer = cascade.invoke("hard", {"callbacks": [monitor]})
    assert answer.text == "premium answer"
    assert len(monitor.warnings) == 1
    assert any("on_warning hook raised" in r.getMessage() for r in caplog.records)


# --- which runs count ------------------------------------------------------------------


def test_constructor_callbacks_count_calls_but_see_no_events() -> None:
    monitor = CascadeMonitor()
    cascade = hard_or_easy(callbacks=[monitor])
    cascade.invoke("easy")
    cascade.invoke("hard")
    s = monitor.summary()
    assert (s.calls, s.escalated_calls) == (2, 1)
    assert s.tiers[0].escalations == 1
    assert s.escalation_events == 0  # custom events go to inheritable handlers only


def test_a_cascade_used_as_a_tier_is_not_counted_itself() -> None:
    inner = CascadingChatModel(
        name="inner",
        models=[
            scripted("small", lambda q: HEDGE),
            scripted("medium", lambda q: "fine"),
        ],
        gates=[HedgingGate()],
    )
    outer = CascadingChatModel(
        name="outer",
        models=[inner, scripted("large", lambda q: "large")],
        gates=[HedgingGate()],
    )
    monitor = CascadeMonitor()
    answer = outer.invoke("q", {"callbacks": [monitor]})
    assert answer.response_metadata["model_name"] == "outer"
    s = monitor.summary()
    assert (s.calls, s.escalated_calls, s.escalation_events) == (1, 0, 0)
    assert [(t.tier, t.models, t.attempts) for t in s.tiers] == [(0, ("inner",), 1)]
    assert monitor.in_flight == 0


def test_child_runs_and_other_models_are_ignored() -> None:
    monitor = CascadeMonitor()
    plain = ScriptedChatModel(reply="hi")
    plain.invoke("q", {"callbacks": [monitor]})
    assert monitor.summary().calls == 0
    assert monitor.in_flight == 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"window": 0},
        {"latency_samples": 0},
        {"escalation_warning": 1.5},
        {"escalation_warning": 0.6, "rearm_below": 0.7},
    ],
)
def test_rejects_bad_settings(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must be"):
        CascadeMonitor(**kwargs)


# --- #8 item 7: cancelled calls and streams closed early --------------------------------


def _cancel_cascade(delay_s: float = 0.0) -> CascadingChatModel:
    return CascadingChatModel(
        models=[
            ScriptedChatModel(model="m0", reply="I'm not sure", delay_s=delay_s),
            ScriptedChatModel(model="m1", reply="Paris is nice"),
        ],
        gates=[HedgingGate()],
    )


def test_a_cancelled_ainvoke_is_forgotten_not_failed() -> None:
    monitor = CascadeMonitor()
    cascade = _cancel_cascade(delay_s=5)

    async def main() -> None:
        for _ in range(3):
            task = asyncio.create_task(
                cascade.ainvoke("q", config={"callbacks": [monitor]})
            )
            await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(main())
    summary = monitor.summary()
    assert monitor.in_flight == 0
    assert (summary.calls, summary.failed_calls, summary.cancelled_calls) == (0, 0, 3)


def test_a_stream_closed_early_is_cancelled_not_failed() -> None:
    monitor = CascadeMonitor()
    cascade = _cancel_cascade()
    stream = cast(
        "Generator[Any, None, None]",
        cascade.stream("q", config={"callbacks": [monitor]}),
    )
    next(stream)
    stream.close()

    async def main() -> None:
        astream = cast(
            "AsyncGenerator[Any, None]",
            cascade.astream("q", config={"callbacks": [monitor]}),
        )
        await anext(astream)
        await astream.aclose()

    asyncio.run(main())
    summary = monitor.summary()
    assert monitor.in_flight == 0
    assert (summary.calls, summary.failed_calls, summary.cancelled_calls) == (0, 0, 2)
    assert "2 cancelled" in str(summary)
