"""Latency modes on fake tiers that write token by token: speculative, early
abort, max_latency and the router, through invoke, ainvoke, stream and astream."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncGenerator, Generator
from typing import Any, cast

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage
from langchain_core.runnables import RunnableLambda
from langchain_core.tracers.run_collector import (
    RunCollectorCallbackHandler as RunCollector,
)

from benchmarks.paced import PacedChatModel, split_tokens
from langchain_cascade import CascadingChatModel, ModelPrice
from langchain_cascade.events import ROUTER_TAG
from langchain_cascade.gates import Gate, GateInput, GateResult, HedgingGate
from langchain_cascade.routing import RouteRule, RuleRouter

ANSWER = "Paris is the capital of France, on the Seine."
HEDGE = "I'm not sure, it could be Lyon or Marseille or maybe some other city there."
GOOD = "The capital of France is Paris."
PRICES = {
    "cheap": ModelPrice(input_per_million=1.0, output_per_million=2.0),
    "premium": ModelPrice(input_per_million=10.0, output_per_million=20.0),
}
MODES: dict[str, dict[str, Any]] = {
    "sequential": {},
    "speculative": {"speculative": True},
    "early_abort": {"early_abort": True},
    "both": {"speculative": True, "early_abort": True},
}


def tiers(cheap_reply: str, *, token_s: float = 0.005) -> list[PacedChatModel]:
    return [
        PacedChatModel(model="cheap", reply=cheap_reply, token_s=token_s),
        PacedChatModel(model="premium", reply=ANSWER, token_s=token_s),
    ]


def cascade(
    models: list[PacedChatModel], gate: Any = None, **kw: Any
) -> CascadingChatModel:
    return CascadingChatModel(
        models=models, gates=[gate or HedgingGate()], prices=PRICES, **kw
    )


def streamed_text(chunks: list[AIMessageChunk]) -> str:
    return "".join(c.text for c in chunks)


class FullAnswerGate(Gate):
    """Rejects the cheap answer, but only once it is complete (no partial verdict)."""

    def evaluate(self, gate_input: GateInput, config: Any) -> GateResult:
        return GateResult(passed=False, reason="rejected when complete")


# --- Must show 1: a stream in every mode equals the accepted answer -----------------


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("gate", ["hedging", "full_answer"])
def test_sync_stream_is_exactly_the_accepted_answer(mode: str, gate: str) -> None:
    models = tiers(HEDGE)
    llm = cascade(models, FullAnswerGate() if gate == "full_answer" else None)
    chunks = list(llm.stream("Capital of France?", **MODES[mode]))
    assert streamed_text(chunks) == ANSWER
    meta = chunks[-1].response_metadata["cascade"]
    assert meta["tier"] == 1
    assert llm.invoke("Capital of France?", **MODES[mode]).content == ANSWER
    assert all(m.open_streams == 0 for m in models)


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("gate", ["hedging", "full_answer"])
async def test_async_stream_is_exactly_the_accepted_answer(
    mode: str, gate: str
) -> None:
    models = tiers(HEDGE)
    llm = cascade(models, FullAnswerGate() if gate == "full_answer" else None)
    chunks = [c async for c in llm.astream("Capital of France?", **MODES[mode])]
    assert streamed_text(chunks) == ANSWER
    assert chunks[-1].response_metadata["cascade"]["tier"] == 1
    answer = await llm.ainvoke("Capital of France?", **MODES[mode])
    assert answer.content == ANSWER
    assert all(m.open_streams == 0 for m in models)


# --- speculative -------------------------------------------------------------------


async def test_speculative_starts_the_premium_tier_at_once_and_uses_it() -> None:
    models = tiers(HEDGE, token_s=0.01)
    llm = cascade(models, speculative=True)
    answer = await llm.ainvoke("Capital of France?")
    cheap, premium = models
    # The premium tier started before the cheap one had finished its answer.
    assert premium.start_times[0] - cheap.start_times[0] < 0.05
    meta = answer.response_metadata["cascade"]
    assert meta["tier"] == 1
    assert [a["speculative"] for a in meta["attempts"]] == [False, True]
    assert meta["cancelled_attempts"] == []


@pytest.mark.parametrize("entry", ["invoke", "ainvoke", "stream", "astream"])
async def test_speculative_cancels_the_premium_tier_when_the_cheap_one_passes(
    entry: str,
) -> None:
    cheap = PacedChatModel(model="cheap", reply=GOOD, token_s=0.005)
    premium = PacedChatModel(model="premium", reply=ANSWER * 5, token_s=0.01)
    llm = cascade([cheap, premium], speculative=True)
    if entry == "invoke":
        message: Any = llm.invoke("q")
    elif entry == "ainvoke":
        message = await llm.ainvoke("q")
    elif entry == "stream":
        chunks = list(llm.stream("q"))
        assert streamed_text(chunks) == GOOD
        message = chunks[-1]
    else:
        chunks = [c async for c in llm.astream("q")]
        assert streamed_text(chunks) == GOOD
        message = chunks[-1]
    # Nothing of the premium tier is left running once the call returned.
    assert premium.open_streams == 0
    assert not [t for t in threading.enumerate() if t.name == "cascade-speculative"]
    assert premium.stopped_early == 1
    meta = message.response_metadata["cascade"]
    assert meta["tier"] == 0
    (cancelled,) = meta["cancelled_attempts"]
    assert cancelled["tier"] == 1
    assert cancelled["cancelled"]
    assert cancelled["usage_estimated"]
    # What it spent: the prompt (as the cheap tier counted it) and its tokens.
    assert (
        cancelled["usage"]["input_tokens"]
        == meta["attempts"][0]["usage"]["input_tokens"]
    )
    assert 0 < cancelled["usage"]["output_tokens"] <= premium.tokens_sent
    expected = PRICES["premium"].cost(cancelled["usage"])
    assert cancelled["cost"] == pytest.approx(expected)
    assert meta["cost"]["speculative"] == pytest.approx(expected)
    cheap_cost = meta["attempts"][0]["cost"]
    assert meta["cost"]["total"] == pytest.approx(cheap_cost + expected)
    usage = message.usage_metadata
    assert usage["output_tokens"] == (
        meta["attempts"][0]["usage"]["output_tokens"]
        + cancelled["usage"]["output_tokens"]
    )


class SwallowsOneCancel(PacedChatModel):
    """A tier whose stack swallows the first cancellation it gets, then streams on.

    anyio's ``connect_tcp`` can do this to a native ``Task.cancel()`` that lands
    while it cancels its own Happy Eyeballs task group (agronholm/anyio#1214): the
    request then runs to its end, and a speculative tier stayed open on the server
    (seen in test_latency_server, about one call in a few hundred).
    """

    pause_s: float = 0.01

    async def _astream(self, *args: Any, **kwargs: Any) -> Any:
        swallowed = False
        async for chunk in super()._astream(*args, **kwargs):
            try:  # the pause between tokens, where the cancellation lands
                await asyncio.sleep(self.pause_s)
            except asyncio.CancelledError:
                if swallowed:
                    raise
                swallowed = True  # returns normally, as the anyio scope does
            yield chunk


async def test_a_cancellation_a_library_swallowed_is_delivered_again() -> None:
    cheap = PacedChatModel(model="cheap", reply=GOOD, first_token_s=0.05)
    premium = SwallowsOneCancel(model="premium", reply=ANSWER * 5)
    llm = cascade([cheap, premium], speculative=True)
    message = await llm.ainvoke("q")
    assert message.response_metadata["cascade"]["tier"] == 0
    assert premium.open_streams == 0
    assert premium.stopped_early == 1
    assert premium.tokens_sent < len(split_tokens(ANSWER * 5))


async def test_speculative_with_three_tiers_and_depth_one() -> None:
    models = [
        PacedChatModel(model="a", reply=HEDGE, token_s=0.002),
        PacedChatModel(model="b", reply=HEDGE, token_s=0.002),
        PacedChatModel(model="c", reply=ANSWER, token_s=0.002),
    ]
    llm = CascadingChatModel(models=models, gates=[HedgingGate()], speculative=1)
    answer = await llm.ainvoke("q")
    meta = answer.response_metadata["cascade"]
    assert meta["tier"] == 2
    assert [a["speculative"] for a in meta["attempts"]] == [False, True, False]
    assert all(m.open_streams == 0 for m in models)


def test_a_consumer_closing_the_stream_leaves_nothing_running() -> None:
    cheap = PacedChatModel(model="cheap", reply=HEDGE, token_s=0.01)
    premium = PacedChatModel(model="premium", reply=ANSWER * 3, token_s=0.01)
    llm = cascade([cheap, premium], speculative=True)
    stream = cast("Generator[AIMessageChunk, None, None]", llm.stream("q"))
    next(stream)  # the first premium token
    stream.close()
    deadline = time.monotonic() + 2
    while premium.open_streams and time.monotonic() < deadline:
        time.sleep(0.01)
    assert premium.open_streams == 0
    assert cheap.open_streams == 0


async def test_an_async_consumer_closing_the_stream_cancels_everything() -> None:
    cheap = PacedChatModel(model="cheap", reply=HEDGE, token_s=0.01)
    premium = PacedChatModel(model="premium", reply=ANSWER * 3, token_s=0.01)
    llm = cascade([cheap, premium], speculative=True)
    stream = cast("AsyncGenerator[AIMessageChunk, None]", llm.astream("q"))
    await anext(stream)
    await stream.aclose()
    assert premium.open_streams == 0
    assert cheap.open_streams == 0


async def test_cancelling_the_caller_cancels_the_speculative_task() -> None:
    cheap = PacedChatModel(model="cheap", reply=HEDGE, token_s=0.05)
    premium = PacedChatModel(model="premium", reply=ANSWER * 3, token_s=0.05)
    llm = cascade([cheap, premium], speculative=True)
    task = asyncio.ensure_future(llm.ainvoke("q"))
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert premium.open_streams == 0
    assert cheap.open_streams == 0


# --- early abort -------------------------------------------------------------------


@pytest.mark.parametrize("entry", ["invoke", "ainvoke"])
async def test_early_abort_stops_a_hedging_draft_at_the_phrase(entry: str) -> None:
    models = tiers(HEDGE, token_s=0.01)
    llm = cascade(models, early_abort=True)
    answer = llm.invoke("q") if entry == "invoke" else await llm.ainvoke("q")
    cheap = models[0]
    assert cheap.stopped_early == 1
    assert cheap.open_streams == 0
    # "I'm not sure," is the third token of the draft's fifteen.
    assert cheap.tokens_sent == 3
    (attempt, final) = answer.response_metadata["cascade"]["attempts"]
    assert attempt["aborted"]
    assert attempt["reason"] == 'early abort: hedging phrase "i\'m not sure"'
    assert attempt["usage"]["output_tokens"] == 3
    assert attempt["usage_estimated"]
    assert final["tier"] == 1
    assert answer.content == ANSWER


async def test_early_abort_never_stops_a_draft_its_gate_cannot_judge() -> None:
    models = tiers(HEDGE)
    llm = cascade(models, FullAnswerGate(), early_abort=True)
    answer = await llm.ainvoke("q")
    assert models[0].stopped_early == 0
    assert not answer.response_metadata["cascade"]["attempts"][0]["aborted"]


async def test_early_abort_on_collapsing_confidence() -> None:
    from langchain_cascade.gates import LogprobGate

    cheap = PacedChatModel(
        model="cheap",
        reply=" ".join(f"w{i}" for i in range(40)),
        logprobs=[-3.0] * 10 + [-0.01] * 30,
        max_tokens=40,
    )
    premium = PacedChatModel(model="premium", reply=ANSWER)
    llm = cascade([cheap, premium], LogprobGate(threshold=0.8), early_abort=True)
    answer = await llm.ainvoke("q")
    # exp(-3k / 40) < 0.8 from k = 3 tokens on: stopped in the first quarter.
    assert cheap.tokens_sent == 3
    attempt = answer.response_metadata["cascade"]["attempts"][0]
    assert attempt["aborted"]
    assert attempt["score"] == pytest.approx(0.7985, abs=1e-3)
    assert answer.content == ANSWER


# --- max_latency -------------------------------------------------------------------


async def test_max_latency_goes_straight_to_the_final_tier_when_time_is_short() -> None:
    cheap = PacedChatModel(model="cheap", reply=HEDGE, token_s=0.01)  # ~0.14 s
    premium = PacedChatModel(model="premium", reply=ANSWER, token_s=0.01)
    llm = cascade([cheap, premium])
    await llm.ainvoke("q")  # the estimator learns both tiers' latency
    answer = await llm.ainvoke("q", max_latency=0.1)
    meta = answer.response_metadata["cascade"]
    assert [a["tier"] for a in meta["attempts"]] == [1]
    (skip,) = meta["skipped_tiers"]
    assert skip["tier"] == 0
    assert skip["reason"].startswith("max_latency: ")
    # With time to spare, the cheap tier is tried.
    roomy = await llm.ainvoke("q", max_latency=10.0)
    assert [a["tier"] for a in roomy.response_metadata["cascade"]["attempts"]] == [0, 1]
    # A tier never seen has no estimate, and is tried.
    fresh = cascade(tiers(HEDGE))
    first = await fresh.ainvoke("q", max_latency=0.001)
    assert first.response_metadata["cascade"]["skipped_tiers"] == []


def test_max_latency_is_validated() -> None:
    llm = cascade(tiers(GOOD))
    with pytest.raises(ValueError, match="max_latency must be"):
        llm.invoke("q", max_latency=0)
    with pytest.raises(ValueError, match="greater than 0"):
        cascade(tiers(GOOD), max_latency=-1)


# --- router ------------------------------------------------------------------------


def test_the_router_picks_the_first_tier_and_the_skip_is_recorded() -> None:
    models = tiers(GOOD)
    router = RuleRouter(rules=[RouteRule(tier=1, keywords=["prove"])])
    llm = cascade(models, router=router)
    hard = llm.invoke("Prove that the capital of France is Paris.")
    meta = hard.response_metadata["cascade"]
    assert models[0].started == 0
    assert meta["tier"] == 1
    assert meta["skipped_tiers"] == [
        {
            "tier": 0,
            "model": "cheap",
            "reason": "router: keyword in ['prove'] -> tier 1",
        }
    ]
    assert meta["route"]["first_tier"] == 1
    easy = llm.invoke("Capital of France?")
    assert easy.response_metadata["cascade"]["tier"] == 0
    assert easy.response_metadata["cascade"]["skipped_tiers"] == []


def test_a_function_router_per_call_and_first_tier() -> None:
    models = tiers(GOOD)
    llm = cascade(models)
    routed = llm.invoke("q", router=lambda messages: "premium")
    assert routed.response_metadata["cascade"]["tier"] == 1
    direct = llm.invoke("q", first_tier=1)
    meta = direct.response_metadata["cascade"]
    assert meta["skipped_tiers"][0]["reason"] == "first_tier=1"
    with pytest.raises(ValueError, match="first_tier must be"):
        llm.invoke("q", first_tier=2)


async def test_an_async_call_awaits_the_router() -> None:
    """The router is an effect of the decision loop: async calls ``ainvoke`` it
    (an LLM router must not block the event loop)."""

    async def premium(messages: list[Any]) -> str:
        await asyncio.sleep(0)
        return "premium"

    router = RunnableLambda(lambda messages: "cheap", afunc=premium)
    llm = cascade(tiers(GOOD), router=router)
    assert (await llm.ainvoke("q")).response_metadata["cascade"]["tier"] == 1
    streamed = [c async for c in llm.astream("q")]
    assert streamed[-1].response_metadata["cascade"]["tier"] == 1
    assert llm.invoke("q").response_metadata["cascade"]["tier"] == 0


@pytest.mark.parametrize("entry", ["invoke", "ainvoke"])
async def test_the_router_runs_inside_the_cascades_trace(entry: str) -> None:
    runs = RunCollector()
    llm = cascade(tiers(GOOD), router=RunnableLambda(lambda messages: "premium"))
    config: Any = {"callbacks": [runs]}
    if entry == "invoke":
        answer = llm.invoke("q", config)
    else:
        answer = await llm.ainvoke("q", config)
    assert answer.response_metadata["cascade"]["tier"] == 1
    (root,) = runs.traced_runs  # the cascade's run; the router is one of its children
    (router_run,) = [r for r in root.child_runs if r.name == "router"]
    assert ROUTER_TAG in (router_run.tags or [])
    assert router_run.outputs == {"output": "premium"}


def test_a_broken_router_starts_at_tier_0_and_says_why() -> None:
    def broken(messages: list[Any]) -> int:
        raise RuntimeError("router down")

    llm = cascade(tiers(GOOD), router=broken)
    answer = llm.invoke("q")
    meta = answer.response_metadata["cascade"]
    assert meta["tier"] == 0
    assert meta["route"]["error"] == "RuntimeError: router down"


def test_the_router_sees_the_bound_tools() -> None:
    models = tiers(GOOD)
    router = RuleRouter(rules=[RouteRule(tier=1, tools=True)])
    llm = cascade(models, router=router)
    plain = llm.invoke([HumanMessage("q")])
    assert plain.response_metadata["cascade"]["tier"] == 0

    def get_weather(city: str) -> str:
        """Weather in a city."""
        return city

    tool_bound = llm.bind(
        tools=[
            {"type": "function", "function": {"name": "get_weather", "parameters": {}}}
        ]
    )
    answer = tool_bound.invoke("q")
    assert isinstance(answer, AIMessage)
    assert answer.response_metadata["cascade"]["tier"] == 1


# --- the monitor -------------------------------------------------------------------


async def test_the_monitor_reports_skips_and_cancelled_runs() -> None:
    from langchain_cascade import CascadeMonitor

    monitor = CascadeMonitor()
    cheap = PacedChatModel(model="cheap", reply=GOOD, token_s=0.005)
    premium = PacedChatModel(model="premium", reply=ANSWER * 5, token_s=0.01)
    llm = cascade([cheap, premium], speculative=True, callbacks=[monitor])
    passed = await llm.ainvoke("q")
    await llm.ainvoke("q", first_tier=1)
    summary = monitor.summary()
    tier0, tier1 = summary.tiers
    assert tier0.skipped == 1
    assert tier1.skipped == 0
    assert tier1.cancelled == 1
    (run,) = passed.response_metadata["cascade"]["cancelled_attempts"]
    assert tier1.cancelled_tokens == run["usage"]["total_tokens"]
    assert tier1.cancelled_cost == pytest.approx(run["cost"])
    assert tier1.attempts == 1  # the routed call's; the cancelled run is not one
    assert "cancelled" in str(summary)


@pytest.mark.parametrize("entry", ["invoke", "ainvoke"])
async def test_a_speculative_tier_past_its_timeout_times_out(entry: str) -> None:
    from langchain_cascade import CascadeError

    cheap = PacedChatModel(model="cheap", reply=HEDGE, token_s=0.001)
    premium = PacedChatModel(model="premium", reply=ANSWER, first_token_s=3.0)
    llm = cascade([cheap, premium], speculative=True, timeout=[None, 0.3])
    started = time.monotonic()

    async def run() -> None:
        if entry == "invoke":
            llm.invoke("q")
        else:
            await llm.ainvoke("q")

    with pytest.raises(CascadeError) as raised:
        await run()
    assert time.monotonic() - started < 2.0
    assert raised.value.attempts[-1]["reason"] == "timeout after 0.3s"
    assert premium.open_streams == 0
