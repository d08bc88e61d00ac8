"""Latency modes on the real local models (Qwen2.5-Coder 0.5B -> 1.5B).

The hard query makes the 0.5B guess with shaky tokens, so its answer is rejected;
in every mode the stream must then be exactly the 1.5B's own answer. The easy
query is answered by the 0.5B; speculative mode must then have cancelled the
1.5B's run and counted what it spent.
"""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel

from benchmarks.latency import REAL_EASY, REAL_HARD, real_gate, real_tiers
from langchain_cascade import CascadingChatModel
from langchain_cascade.local_models import LocalModels

pytestmark = pytest.mark.real_models

MAX_TOKENS = 16
MODES: list[tuple[str, dict[str, Any]]] = [
    ("stream", {}),
    ("astream", {"speculative": True}),
    ("stream", {"early_abort": True}),
    ("astream", {"speculative": True, "early_abort": True}),
]


def tiers(local_models: LocalModels) -> list[BaseChatModel]:
    return real_tiers(local_models, MAX_TOKENS)


def cascade(models: list[BaseChatModel]) -> CascadingChatModel:
    return CascadingChatModel(models=models, gates=[real_gate()])


async def streamed(
    llm: CascadingChatModel, entry: str, **kwargs: Any
) -> tuple[str, Any]:
    if entry == "stream":
        chunks = list(llm.stream(REAL_HARD, **kwargs))
    else:
        chunks = [c async for c in llm.astream(REAL_HARD, **kwargs)]
    return "".join(c.text for c in chunks), chunks[-1].response_metadata["cascade"]


async def test_every_mode_streams_exactly_the_premium_answer(
    local_models: LocalModels,
) -> None:
    models = tiers(local_models)
    premium_answer = models[1].invoke(REAL_HARD).text
    assert premium_answer
    llm = cascade(models)
    for entry, mode in MODES:
        text, meta = await streamed(llm, entry, **mode)
        assert meta["tier"] == 1, (mode, meta["attempts"][0]["reason"])
        assert not meta["attempts"][0]["accepted"]
        assert text == premium_answer, mode
        if mode.get("early_abort"):
            first = meta["attempts"][0]
            assert first["aborted"], first["reason"]


async def test_speculative_easy_query_cancels_the_premium_run(
    local_models: LocalModels,
) -> None:
    llm = cascade(tiers(local_models))
    answer = await llm.ainvoke(REAL_EASY, speculative=True)
    meta = answer.response_metadata["cascade"]
    assert meta["tier"] == 0
    (cancelled,) = meta["cancelled_attempts"]
    assert cancelled["tier"] == 1
    assert cancelled["usage"]["input_tokens"] > 0
