"""The quiet path: no handler listens, so an unwrapped tier runs without a run."""

from __future__ import annotations

import asyncio
from typing import Any

from langchain_core.caches import InMemoryCache
from langchain_core.language_models.fake_chat_models import FakeListChatModel

from langchain_cascade import CascadingChatModel
from langchain_cascade.gates import HedgingGate
from tests.unit_tests.fake_models import cascade_meta
from tests.unit_tests.run_recorder import RunRecorder


class CountingChild(FakeListChatModel):
    """Counts the runs LangChain builds around it (``invoke``/``ainvoke``)."""

    invokes: int = 0

    def invoke(self, *args: Any, **kwargs: Any) -> Any:
        """Count, then invoke."""
        self.invokes += 1
        return super().invoke(*args, **kwargs)

    async def ainvoke(self, *args: Any, **kwargs: Any) -> Any:
        """Count, then ainvoke."""
        self.invokes += 1
        return await super().ainvoke(*args, **kwargs)


def test_quiet_call_skips_the_tiers_run_and_keeps_its_cache() -> None:
    cache = InMemoryCache()
    child = CountingChild(responses=["Paris", "Lyon"], cache=cache)
    cascade = CascadingChatModel(
        models=[child, FakeListChatModel(responses=["x"])], gates=[HedgingGate()]
    )
    first = cascade.invoke("q")
    second = asyncio.run(cascade.ainvoke("q"))
    assert child.invokes == 0  # no run built around the tier
    assert (first.text, second.text) == ("Paris", "Paris")  # the second from cache
    assert cascade_meta(second)["tier"] == 0


def test_with_a_handler_the_tiers_run_is_produced() -> None:
    child = CountingChild(responses=["Paris"])
    cascade = CascadingChatModel(
        models=[child, FakeListChatModel(responses=["x"])], gates=[HedgingGate()]
    )
    recorder = RunRecorder()
    cascade.invoke("q", {"callbacks": [recorder]})
    assert child.invokes == 1
