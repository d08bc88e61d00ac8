"""calibrate's thresholds hold the quality target on held-out data (RouteLLM GSM8K).

Runs the replay's core on the real RouteLLM csv (1,307 queries after removing
the 12 contaminated prompts; a few seconds, no model calls). Each fold fits the
threshold on one half for quality >= 95% of GPT-4's accuracy there and scores
it on the other half; the held-out accuracy must not fall more than
``HELD_OUT_TOLERANCE`` (0.03, about two standard errors of an accuracy measured
on ~650 queries) below the fitted floor.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from langchain_core.messages import AIMessage, HumanMessage

from benchmarks import routellm_replay as replay
from langchain_cascade.gates import GateInput
from langchain_cascade.gates.learned import fit_learned_gates, learned_scores

DATA = replay.default_data_dir()
CSV = DATA / "routellm-gsm8k" / "gsm8k_responses.csv"

pytestmark = pytest.mark.skipif(
    not CSV.is_file(), reason=f"RouteLLM data not found at {CSV}"
)


@pytest.fixture(scope="module")
def results() -> dict[str, Any]:
    return replay.run_replay(DATA, robustness_seeds=0)


def test_data_as_published(results: dict[str, Any]) -> None:
    source = results["data_source"]
    assert source["queries_total"] == 1319
    assert source["excluded_contaminated"] == 12
    assert source["queries"] == 1307
    # README (all 1,319 rows): Mixtral 63.8%, GPT-4 85.7%
    assert results["cheap_accuracy"] == pytest.approx(0.637, abs=0.005)
    assert results["premium_accuracy"] == pytest.approx(0.858, abs=0.005)


@pytest.mark.parametrize("signal", ["learned", "weighted", "arithmetic", "format"])
def test_fitted_thresholds_hold_the_quality_target_on_held_out_data(
    results: dict[str, Any], signal: str
) -> None:
    assert signal in results["signals"], f"the replay did not score the {signal} gate"
    for fold in results["signals"][signal]["folds"]:
        assert fold["train"]["quality"] >= fold["min_quality_train"] - 1e-9
        held_out = fold["held_out"]["quality"]
        assert held_out >= fold["min_quality_train"] - replay.HELD_OUT_TOLERANCE, (
            f"{signal}: held-out accuracy {held_out:.4f} vs fitted floor "
            f"{fold['min_quality_train']:.4f}"
        )


def test_pooled_primary_result_is_close_to_the_target(results: dict[str, Any]) -> None:
    target = results["target"]["min_accuracy"]
    assert results["accuracy"] >= target - replay.HELD_OUT_TOLERANCE
    assert results["escalation_rate"] < 1.0  # the cascade does save GPT-4 calls
    assert 0 < results["cost_ratio"] < 1
    assert results["apgr"] > 0.6  # a random router scores about 0.5
    assert 0 < results["cpt50"] < results["cpt80"] < 1


def test_results_are_json_ready(results: dict[str, Any], tmp_path: Path) -> None:
    paths = replay.write_outputs(results, tmp_path)
    data = json.loads(paths[0].read_text())
    for key in [
        "accuracy",
        "escalation_rate",
        "cost_ratio",
        "premium_accuracy",
        "cheap_accuracy",
        "apgr",
        "cpt50",
        "cpt80",
        "thresholds",
        "gate",
        "data_source",
        "command",
    ]:
        assert key in data
    assert "| learned |" in paths[1].read_text()
    assert paths[2].read_bytes()[:4] == b"\x89PNG"


def test_learned_gate_is_a_real_gate(results: dict[str, Any]) -> None:
    """The package's LearnedGate scores a GateInput exactly as the replay does."""
    signals = results["_signals"]
    ds = results["_dataset"]
    data = signals.data
    (gate,) = fit_learned_gates(data, replay.base_gates(), features=replay.GENERIC)
    batch = learned_scores(data, [gate])[:, 0]
    for i in [0, 5, 100]:
        answer = AIMessage(
            ds.cheap_text[i],
            usage_metadata={
                "input_tokens": replay.estimated_tokens(ds.prompts[i]),
                "output_tokens": replay.estimated_tokens(ds.cheap_text[i]),
                "total_tokens": 0,
            },
        )
        got = gate.invoke(
            GateInput(messages=[HumanMessage(ds.prompts[i])], response=answer)
        )
        assert got.score == pytest.approx(batch[i])
        assert (
            signals.scores["hedging"][i]
            == replay.base_gates()["hedging"]
            .invoke(GateInput(messages=[HumanMessage(ds.prompts[i])], response=answer))
            .score
        )
    assert np.isfinite(batch).all()
    assert np.isin(signals.scores["format"], [0.0, 1.0]).all()
    # no dataset-specific feature: only the package's gates and generic features
    assert gate.columns == [*replay.base_gates(), *replay.GENERIC]


def test_collected_costs_are_the_replay_prices(results: dict[str, Any]) -> None:
    ds = results["_dataset"]
    np.testing.assert_allclose(results["_signals"].data.costs, replay.call_costs(ds))
