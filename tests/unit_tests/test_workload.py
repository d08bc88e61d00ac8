"""The realistic workload, its answer cache, its replay and the demo's summary line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration

from benchmarks import workload
from benchmarks.workload import (
    CALCULATION,
    EVERYDAY,
    HEADLINE,
    SAMPLES,
    WORD_PROBLEM,
    AnswerCache,
    Item,
    SampleData,
    api_prices,
    calculator_question,
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


def _gsm8k_row(item: Item) -> int:
    return int(item.source_id.rsplit("/", 1)[1])


def test_calculations_come_from_gsm8k_problems_no_other_part_uses() -> None:
    samples = {name: load_sample(data_dir(), name) for name in SAMPLES}
    calc_rows = {
        name: {_gsm8k_row(it) for it in items if it.kind == CALCULATION}
        for name, items in samples.items()
    }
    problem_rows = {
        _gsm8k_row(it)
        for items in samples.values()
        for it in items
        if it.kind == WORD_PROBLEM
    }
    names = list(SAMPLES)
    for i, a in enumerate(names):
        assert calc_rows[a], a
        assert not calc_rows[a] & problem_rows  # no word problem's own step
        for b in names[i + 1 :]:
            assert not calc_rows[a] & calc_rows[b]
    for items in samples.values():
        everyday = sum(it.kind in EVERYDAY for it in items) / len(items)
        assert everyday > 0.75  # mostly everyday
        calcs = [it for it in items if it.kind == CALCULATION]
        assert all(re.fullmatch(r"What is \S+ [-+*/] \S+\?", it.text) for it in calcs)


def test_the_calculations_gold_is_the_annotated_exact_result() -> None:
    lines = (data_dir() / "gsm8k" / "test.jsonl").read_text().splitlines()
    for item in load_sample(data_dir(), "fit"):
        if item.kind != CALCULATION:
            continue
        solution = json.loads(lines[_gsm8k_row(item)])["answer"]
        a, op, b = item.text.removeprefix("What is ").removesuffix("?").split()
        assert f"<<{a}{op}{b}={item.gold}>>" in solution.replace(" ", "")
        exact = {"+": float(a) + float(b), "-": float(a) - float(b)}
        exact |= {"*": float(a) * float(b), "/": float(a) / float(b)}
        assert exact[op] == pytest.approx(float(item.gold))


def test_calculator_question_takes_the_first_exact_single_step() -> None:
    solution = (
        "He pays 3*(2+1)=<<3*(2+1)=9>>9. Then 10/3=<<10/3=3.33>>3.33. "
        "So 48/2=<<48/2=24>>24 and 24+6=<<24+6=30>>30.\n#### 30"
    )
    assert calculator_question(solution) == ("What is 48 / 2?", "24")
    assert calculator_question("no steps\n#### 5") is None
    assert calculator_question("<<5/0=0>> <<2-7=-5>>") == ("What is 2 - 7?", "-5")


def test_grading_by_kind() -> None:
    headline = Item(HEADLINE, "h", "Gold rises", "up")
    problem = Item(WORD_PROBLEM, "g", "2+2?", "4")
    assert is_correct(" Up.", headline)
    assert not is_correct("down", headline)
    assert is_correct("2 + 2 = 4\nAnswer: 4", problem)
    assert not is_correct("Answer: 5", problem)
    calculation = Item(CALCULATION, "c", "What is 48 / 2?", "24")
    assert is_correct("24", calculation)
    assert is_correct("48 / 2 = 24", calculation)
    assert not is_correct("2", calculation)
    assert not is_correct("24.5", calculation)
    assert calculation.messages[-1].content == "What is 48 / 2?"


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
    assert run(_answer("24", -0.01))  # a calculation's bare number
    assert not run(_answer("It is 24", -0.01))


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


def test_routed_rows_pay_only_the_tiers_from_their_first() -> None:
    data = _data()
    first = np.array([0, 0, 0, 1])
    policy = replay(data, 0.5, [0.5], first=first)
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
    for first in workload.routings(len(data.names)):  # the cheapest routing wins
        assert fitted.cost <= workload.fit_shape(data, first).cost + 1e-15


def _three_tier_data() -> SampleData:
    """Headlines the cheapest tier answers; calculations it gets wrong, confidently
    (no gate can tell), that the middle tier answers."""
    items = [Item(HEADLINE, str(i), "x", "up") for i in range(4)] + [
        Item(CALCULATION, str(i), "What is 1 + 1?", "2") for i in range(4)
    ]
    return SampleData(
        items=items,
        names=("smollm2-135m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"),
        scores={0.5: np.array([[0.9, 0.9, np.nan]] * 8)},
        correct=np.array([[1, 1, 1]] * 4 + [[0, 1, 1]] * 4, dtype=float),
        in_tokens=np.full((8, 3), 100.0),
        out_tokens=np.full((8, 3), 10.0),
        latencies=np.array([[1.0, 2.0, 4.0]] * 8),
        ratio=16.0,
    )


def test_a_kind_routed_to_the_middle_tier_skips_the_cheapest_and_may_escalate() -> None:
    data = _three_tier_data()
    first = data.first({CALCULATION: 1})
    assert first.tolist() == [0] * 4 + [1] * 4
    policy = replay(data, 0.5, [0.5, 0.95], first=first)
    # headlines stop at tier 0; calculations skip it, fail tier 1's bar, end at 2
    assert policy.stops == (0.5, 0.0, 0.5)
    assert policy.latency == pytest.approx((4 * 1 + 4 * (2 + 4)) / 8)
    costs = data.costs
    assert policy.cost == pytest.approx((costs[0, 0] + costs[0, 1:].sum()) / 2)


def test_fit_starts_a_kind_where_the_cheapest_tier_fails_it() -> None:
    data = _three_tier_data()
    fitted = workload.fit(data)
    assert fitted.first == {HEADLINE: 0, CALCULATION: 1, WORD_PROBLEM: 0}
    policy = workload.run_policy(data, fitted)
    assert policy.accuracy == 1.0
    assert policy.stops == (0.5, 0.5, 0.0)
