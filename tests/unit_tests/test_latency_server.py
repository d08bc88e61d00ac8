"""Latency modes against a real OpenAI-compatible HTTP server with real ChatOpenAI
tiers: a cancelled speculative request is closed (checked on the server side), and
every mode's stream is exactly the accepted answer."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_openai import ChatOpenAI

from langchain_cascade import CascadingChatModel
from langchain_cascade.gates import HedgingGate
from tests.openai_server import OpenAIServer, answer

GOOD = "Paris is the capital of France."
HEDGE = "I'm not sure, it might be Lyon or Marseille or some other big city."
PREMIUM = " ".join(["Paris, on the Seine, is the capital of France."] * 6)
ENTRIES = ["invoke", "ainvoke", "stream", "astream"]
MODES: dict[str, dict[str, Any]] = {
    "sequential": {},
    "speculative": {"speculative": True},
    "early_abort": {"early_abort": True},
    "both": {"speculative": True, "early_abort": True},
}


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer() as started:
        yield started


def tier(server: OpenAIServer, model: str) -> ChatOpenAI:
    return ChatOpenAI(
        model=model,
        base_url=server.base_url,
        api_key="x",
        max_retries=0,
        stream_usage=True,
    )


async def call(llm: CascadingChatModel, entry: str, **kwargs: Any) -> str:
    if entry == "invoke":
        return llm.invoke("Capital of France?", **kwargs).text
    if entry == "ainvoke":
        return (await llm.ainvoke("Capital of France?", **kwargs)).text
    if entry == "stream":
        return "".join(c.text for c in llm.stream("Capital of France?", **kwargs))
    return "".join([c.text async for c in llm.astream("Capital of France?", **kwargs)])


@pytest.mark.parametrize("entry", ENTRIES)
async def test_no_premium_request_is_left_open_after_the_cheap_tier_passed(
    server: OpenAIServer, entry: str
) -> None:
    server.behave("cheap", answer(GOOD))
    server.behave("premium", answer(PREMIUM, token_delay_s=0.05))  # about 3 s
    llm = CascadingChatModel(
        models=[tier(server, "cheap"), tier(server, "premium")],
        gates=[HedgingGate()],
        speculative=True,
    )
    started = time.monotonic()
    assert await call(llm, entry) == GOOD
    returned = time.monotonic()
    (premium,) = server.requests_for("premium")
    assert premium.stream  # the speculative request was sent, streamed
    # On the server: the request ended, its client gone before the answer was sent.
    # (The server notices at its next token write, 0.05 s at most.)
    assert server.wait_idle(timeout=1.0)
    assert premium.finished
    assert premium.disconnected
    assert not premium.completed
    assert premium.ended is not None
    assert premium.ended - started < 2.0
    assert premium.ended - returned < 0.5


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("entry", ENTRIES)
async def test_every_mode_answers_exactly_the_premium_answer_when_the_cheap_hedges(
    server: OpenAIServer, entry: str, mode: str
) -> None:
    server.behave("cheap", answer(HEDGE, token_delay_s=0.01))
    server.behave("premium", answer(GOOD, token_delay_s=0.01))
    llm = CascadingChatModel(
        models=[tier(server, "cheap"), tier(server, "premium")], gates=[HedgingGate()]
    )
    assert await call(llm, entry, **MODES[mode]) == GOOD
    assert server.wait_idle(timeout=1.0)
    (cheap,) = server.requests_for("cheap")
    if MODES[mode].get("early_abort"):
        # Stopped at "I'm not sure," (the server notices at its next write).
        assert cheap.disconnected
    else:
        assert cheap.completed
