"""Issue #8 on real local models: a final tier that does not stream, timeouts, wrappers."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from langchain_cascade import CascadingChatModel
from langchain_cascade.local_models import LocalModels
from tests.unit_tests.fake_models import stray_threads

pytestmark = pytest.mark.real_models

QUESTION = "What is 6 * 7? Answer with the number."


def _never(gate_input: Any) -> bool:
    return False


def _merge(chunks: list[Any]) -> Any:
    merged = chunks[0]
    for chunk in chunks[1:]:
        merged += chunk
    return merged


def _disabled_streaming_cascade(local_models: LocalModels) -> CascadingChatModel:
    return CascadingChatModel(
        models=[
            local_models.chat_model("smollm2-135m", temperature=0, max_tokens=8),
            local_models.chat_model(
                "qwen2.5-coder-0.5b",
                temperature=0,
                max_tokens=8,
                disable_streaming=True,
            ),
        ],
        gates=[_never],
    )


def test_final_tier_with_disable_streaming_streams_through_the_cascade(
    local_models: LocalModels,
) -> None:
    cascade = _disabled_streaming_cascade(local_models)
    merged = _merge(list(cascade.stream(QUESTION)))
    meta = merged.response_metadata["cascade"]
    assert meta["tier"] == 1
    assert merged.text.strip()
    # The total is reported only when every attempt's usage is known.
    assert (merged.usage_metadata is None) == bool(meta["usage_unknown_tiers"])


def _timeout_cascade(local_models: LocalModels) -> CascadingChatModel:
    return CascadingChatModel(
        models=[
            local_models.chat_model("qwen2.5-coder-0.5b", max_tokens=64).with_retry(
                stop_after_attempt=2
            ),
            local_models.chat_model("smollm2-135m", temperature=0, max_tokens=8),
        ],
        gates=[lambda gi: True],
        timeout=[0.001, None],
    )


async def test_final_tier_with_disable_streaming_astreams_through_the_cascade(
    local_models: LocalModels,
) -> None:
    cascade = _disabled_streaming_cascade(local_models)
    chunks = [c async for c in cascade.astream(QUESTION)]
    merged = _merge(chunks)
    assert merged.response_metadata["cascade"]["tier"] == 1
    assert merged.text.strip()


def test_a_real_tier_past_its_timeout_escalates_and_leaves_nothing_running(
    local_models: LocalModels,
) -> None:
    from langchain_cascade._sync import pending_tasks

    cascade = _timeout_cascade(local_models)
    threads = stray_threads()
    for _ in range(2):  # twice: the worker loop's pooled connections stay usable
        started = time.perf_counter()
        answer = cascade.invoke(QUESTION)
        meta = answer.response_metadata["cascade"]
        assert meta["tier"] == 1
        assert meta["attempts"][0]["reason"] == "timeout after 0.001s"
        assert meta["attempts"][0]["model"] == "qwen2.5-coder-0.5b"
        assert answer.text.strip()
        assert time.perf_counter() - started < 30
    assert stray_threads() == threads
    assert pending_tasks() == 0


async def test_a_real_tier_past_its_timeout_async(local_models: LocalModels) -> None:
    cascade = _timeout_cascade(local_models)
    before = asyncio.all_tasks()
    answer = await cascade.ainvoke(QUESTION)
    await asyncio.sleep(0)
    meta = answer.response_metadata["cascade"]
    assert meta["attempts"][0]["reason"] == "timeout after 0.001s"
    assert meta["tier"] == 1
    assert asyncio.all_tasks() - before == set()
