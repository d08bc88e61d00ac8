"""The realistic workload, its answer cache, its replay and the demo's summary line."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration

from benchmarks import workload
from benchmarks.workload import (
    HEADLINE,
    SAMPLES,
    WORD_PROBLEM,
    AnswerCache,
    Item,
    SampleData,
    api_prices,
    is_correct,
    load_sample,
    make_gate,
    needed_acceptance,
    replay,
    stop_tiers,
)
from langchain_cascade.gates.base import GateInput
from tests.data_paths import data_dir


def test_samples_are_disjoint_and_mostly_everyday() -> None:
    samples = {name: load_sample(data_dir(), name) for name in SAMPLES}
    ids = {name: {it.source_id for it in items} for name, items in samples.items()}
    assert not ids["fit"] & ids["heldout"]
    assert not ids["fit"] & ids["demo"]
    assert not ids["heldout"] & ids["demo"]
    for items in samples.values():
        share = sum(it.kind == WORD_PROBLEM for it in items) / len(items)
        assert 0.05 < share < 0.25  # a hard minority
    # fitting comes from HEADLINES' train split, the others from its test split
    assert all(
        "/train/" in it.source_id for it in samples["fit"] if it.kind == HEADLINE
    )
    assert load_sample(data_dir(), "demo") == samples["demo"]  # fixed order


def test_grading_by_kind() -> None:
    headline = Item(HEADLINE, "h", "Gold rises", "up")
    problem = Item(WORD_PROBLEM, "g", "2+2?", "4")
    assert is_correct(" Up.", headline)
    assert not is_correct("down", headline)
    assert is_correct("2 + 2 = 4\nAnswer: 4", problem)
    assert not is_correct("Answer: 5", problem)


def _answer(text: str, *logprobs: float) -> AIMessage:
    content = [
        {
            "token": f"t{i}",
            "logprob": lp,
            "top_logprobs": [
                {"token": "a", "logprob": lp},
                {"token": "b", "logprob": -5.0},
            ],
        }
        for i, lp in enumerate(logprobs)
    ]
    return AIMessage(text, response_metadata={"logprobs": {"content": content}})


def test_gate_needs_the_format_and_confidence() -> None:
    gate = make_gate(0.5, 0.6)

    def run(message: AIMessage) -> bool:
        return gate.invoke(GateInput(messages=[], response=message)).passed

    assert run(_answer("up", -0.01))
    assert not run(_answer("The headline says", -0.01))  # not a label
    assert not run(_answer("down", -2.0))  # unsure
    assert run(_answer("4 * 3 = 12\nAnswer: 12", -0.01, -0.02))


def test_answer_cache_ignores_the_port(tmp_path: Path) -> None:
    cache = AnswerCache(tmp_path / "a.sqlite")
    gen = ChatGeneration(message=_answer("up", -0.1))
    cache.update("p", '{"base": "http://127.0.0.1:4242/v1"}', [gen])
    again = AnswerCache(tmp_path / "a.sqlite")  # a later run, another port
    found = again.lookup("p", '{"base": "http://127.0.0.1:5151/v1"}')
    assert found is not None
    (hit,) = found
    assert isinstance(hit, ChatGeneration)
    assert (
        hit.message.response_metadata["logprobs"]
        == gen.message.response_metadata["logprobs"]
    )
    assert again.lookup("other prompt", '{"base": "http://127.0.0.1:1/v1"}') is None


def _data() -> SampleData:
    items = [Item(HEADLINE, str(i), "x", "up") for i in range(4)]
    return SampleData(
        items=items,
        names=("qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"),
        scores={
            0.5: np.array([[0.9, np.nan], [0.8, np.nan], [0.2, np.nan], [0.1, np.nan]])
        },
        correct=np.array([[1, 1], [0, 1], [0, 1], [1, 0]], dtype=float),
        in_tokens=np.full((4, 2), 100.0),
        out_tokens=np.full((4, 2), 10.0),
        latencies=np.array([[1.0, 2.0]] * 4),
        ratio=16.0,
    )


def test_replay_follows_the_cascade_rule() -> None:
    data = _data()
    assert stop_tiers(data.scores[0.5], [0.5]).tolist() == [0, 0, 1, 1]
    policy = replay(data, 0.5, [0.5])
    assert policy.accuracy == pytest.approx(0.5)  # right, wrong, right, wrong
    assert policy.latency == pytest.approx((1 + 1 + 3 + 3) / 4)
    assert policy.stops == (0.5, 0.5)
    costs = data.costs
    assert policy.cost == pytest.approx((2 * costs[0, 0] + 2 * costs[0].sum()) / 4)


def test_api_prices_keep_the_ratio() -> None:
    prices = api_prices(["a", "b"], 16.0)
    assert prices["b"].input_per_million == 2.5
    assert prices["b"].input_per_million / prices[
        "a"
    ].input_per_million == pytest.approx(16)
    data = _data()
    ratio = data.api_costs[:, 1] / data.api_costs[:, 0]
    assert ratio == pytest.approx(np.full(4, 16.0))


def test_needed_acceptance() -> None:
    # cheap costs half: keeping 75% of the strong cost needs 75% kept at the cheap tier
    assert needed_acceptance(0.5, 1.0, 0.75) == pytest.approx(0.75)
    assert needed_acceptance(1 / 16, 1.0, 0.35) == pytest.approx(0.7125)


def test_demo_summary_line_shape() -> None:
    from examples.demo import Row, summary_line

    item = Item(HEADLINE, "h", "x", "up")

    def row(cost: float, right: bool, strong_right: bool) -> Row:
        return Row(
            item=item,
            answer="up",
            meta={"cost": {"total": cost}},
            latency_s=1.0,
            correct=right,
            api_cost=0.0,
            strong_answer="up",
            strong_correct=strong_right,
            strong_cost=2.0,
            strong_api_cost=0.0,
            strong_latency_s=4.0,
        )

    line = summary_line([row(1.0, True, True), row(2.0, False, True)], "Qwen-1.5B")
    assert line == (
        "cascade vs Qwen-1.5B alone: accuracy 1/2 vs 2/2, cost 75% of it, "
        "mean latency 25% of it"
    )
    assert re.fullmatch(
        r"cascade vs \S+ alone: accuracy \d+/\d+ vs \d+/\d+, cost \d+% of it, "
        r"mean latency \d+% of it",
        line,
    )


def test_workload_module_names_its_sources() -> None:
    assert any("Apache-2.0" in s for s in workload.SOURCES)
    assert any("MIT" in s for s in workload.SOURCES)


def test_routed_rows_pay_only_the_final_tier() -> None:
    data = _data()
    direct = np.array([False, False, False, True])
    policy = replay(data, 0.5, [0.5], direct=direct)
    # rows 0, 1 stop at tier 0, row 2 escalates, row 3 goes straight to tier 1
    assert policy.stops == (0.5, 0.5)
    assert policy.accuracy == pytest.approx((1 + 0 + 1 + 0) / 4)
    assert policy.latency == pytest.approx((1 + 1 + 3 + 2) / 4)
    costs = data.costs
    expected = (2 * costs[0, 0] + costs[0].sum() + costs[0, 1]) / 4
    assert policy.cost == pytest.approx(expected)


def test_fit_keeps_the_strongest_tiers_accuracy_on_the_fitting_rows() -> None:
    data = _data()
    fitted = workload.fit(data)
    policy = workload.run_policy(data, fitted)
    assert policy.accuracy >= data.correct[:, -1].mean() - 1e-9
    assert fitted.cost == pytest.approx(policy.cost)
    for route in (False, True):  # the cheaper shape wins
        assert fitted.cost <= workload.fit_shape(data, route=route).cost + 1e-15
