"""The workload's collection on the real local models: answers, cache, replay."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchmarks.workload import (
    CHAT_KWARGS,
    HEADLINE,
    AnswerCache,
    collect_sample,
    compute_prices,
    load_sample,
    offline_tiers,
)
from langchain_cascade.local_models import LocalModels
from tests.data_paths import data_dir

pytestmark = pytest.mark.real_models

TIERS = ("smollm2-135m", "qwen2.5-coder-1.5b")


def test_cached_answers_replay_without_the_servers(
    local_models: LocalModels, tmp_path: Path
) -> None:
    items = [it for it in load_sample(data_dir(), "demo") if it.kind == HEADLINE][:2]
    cache = AnswerCache(tmp_path / "answers.sqlite")
    live = [local_models.chat_model(n, cache=cache, **CHAT_KWARGS) for n in TIERS]
    first = collect_sample(live, TIERS, items, compute_prices(TIERS))
    assert np.isfinite(first.scores[:, 0]).all()
    assert (first.latencies > 0.01).all()  # real calls, not cache hits
    # The same answers again, from the cache alone (the servers are not asked).
    again = collect_sample(
        offline_tiers(TIERS, AnswerCache(tmp_path / "answers.sqlite")),
        TIERS,
        items,
        compute_prices(TIERS),
    )
    np.testing.assert_allclose(again.scores[:, 0], first.scores[:, 0])
    np.testing.assert_array_equal(again.correct, first.correct)
    np.testing.assert_allclose(again.costs, first.costs)
