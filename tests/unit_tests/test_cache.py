"""LangChain's cache, on a real SQLite database, in front of the cascade."""

from __future__ import annotations

from pathlib import Path

from langchain_community.cache import SQLiteCache

from langchain_cascade import CascadingChatModel
from langchain_cascade.gates import HedgingGate
from tests.unit_tests.fake_models import ScriptedChatModel


def _cascade(
    cache: SQLiteCache, strong_reply: str
) -> tuple[CascadingChatModel, list[ScriptedChatModel]]:
    tiers = [
        ScriptedChatModel(model="cheap", reply="I am not sure"),
        ScriptedChatModel(model="strong", reply=strong_reply),
    ]
    return CascadingChatModel(models=tiers, gates=[HedgingGate()], cache=cache), tiers


def test_cached_repeat_runs_no_tier(tmp_path: Path) -> None:
    cache = SQLiteCache(database_path=str(tmp_path / "cache.db"))
    cascade, tiers = _cascade(cache, "Paris")
    first = cascade.invoke("Capital of France?")
    assert [len(t.calls) for t in tiers] == [1, 1]
    second = cascade.invoke("Capital of France?")
    assert [len(t.calls) for t in tiers] == [1, 1], "a cached repeat ran a tier"
    assert second.text == first.text == "Paris"
    assert second.response_metadata["cascade"]["tier"] == 1
    # A new process (a new cache object on the same file) is served too.
    again, again_tiers = _cascade(
        SQLiteCache(database_path=str(tmp_path / "cache.db")), "Paris"
    )
    assert again.invoke("Capital of France?").text == "Paris"
    assert [len(t.calls) for t in again_tiers] == [0, 0]


def test_cascades_with_different_tiers_never_share_entries(tmp_path: Path) -> None:
    cache = SQLiteCache(database_path=str(tmp_path / "cache.db"))
    paris, _ = _cascade(cache, "Paris")
    lyon, lyon_tiers = _cascade(cache, "Lyon")
    assert paris.invoke("Capital of France?").text == "Paris"
    assert lyon.invoke("Capital of France?").text == "Lyon"
    assert [len(t.calls) for t in lyon_tiers] == [1, 1]
    other_gate = CascadingChatModel(
        models=[
            ScriptedChatModel(model="cheap", reply="I am not sure"),
            ScriptedChatModel(model="strong", reply="Paris"),
        ],
        gates=[lambda gi: True],
        cache=cache,
    )
    assert other_gate.invoke("Capital of France?").text == "I am not sure"
