"""The benchmark skeleton's pieces that need no real model."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

from benchmarks.common import (
    NO_SCORE,
    Answers,
    FloatArray,
    Matrices,
    Query,
    collect_answers,
    fmt_seconds,
    logprob_scores,
    matrices,
    regenerate_command,
)
from langchain_cascade import CascadingChatModel
from langchain_cascade.gates import LogprobGate
from langchain_cascade.pricing import ModelPrice
from tests.unit_tests.fake_models import ScriptedChatModel, logprob_meta


def test_regenerate_command_drops_machine_options_in_both_spellings() -> None:
    argv = ["--n", "5", "--base-url", "http://x", "--json=out.json", "--fresh"]
    assert (
        regenerate_command("benchmarks.j", argv, ["--base-url", "--json"])
        == ".venv/bin/python -m benchmarks.j --n 5 --fresh"
    )


def test_matrices_replay_latency_and_stop_tiers() -> None:
    # Query 0 stops at tier 0 (0.9 >= 0.5), query 1 at tier 1.
    m = Matrices(
        ["a", "b"],
        scores=np.array([[0.9, np.nan], [0.1, np.nan]]),
        correct=np.array([[1.0, 1.0], [0.0, 1.0]]),
        costs=np.array([[1.0, 10.0], [1.0, 10.0]]),
        latency=np.array([[2.0, 5.0], [3.0, 7.0]]),
        unscored=0,
    )
    assert m.latency_sum([0.5]) == 2.0 + (3.0 + 7.0)
    assert [m.stop_tier(i, [0.5]) for i in range(2)] == [0, 1]
    assert m.rows(["b"]).latency.tolist() == [[3.0, 7.0]]
    assert m.evaluate([0.5]).cost == (1.0 + 11.0) / 2


def test_fmt_seconds_says_when_nothing_was_measured() -> None:
    assert fmt_seconds(754.2) == "12 min 34 s"
    assert fmt_seconds(math.nan) == "n/a"


def _answers_of_a_collect_run(tmp_path: Path) -> tuple[Answers, list[Query]]:
    """Two scripted tiers answer three queries through collect, as a benchmark does."""

    def cheap(messages: list[BaseMessage]) -> AIMessage:
        question = messages[-1].text
        meta = (
            {} if question == "q2" else logprob_meta(-0.1 if question == "q0" else -2.0)
        )
        return AIMessage(
            "up" if question == "q0" else "down",
            usage_metadata={"input_tokens": 10, "output_tokens": 1, "total_tokens": 11},
            response_metadata={"model_name": "cheap", **meta},
        )

    def strong(messages: list[BaseMessage]) -> AIMessage:
        return AIMessage(
            "up",
            usage_metadata={"input_tokens": 10, "output_tokens": 1, "total_tokens": 11},
            response_metadata={"model_name": "strong", **logprob_meta(-0.01)},
        )

    queries = [
        Query("train", "0", [HumanMessage("q0")], "up"),
        Query("test", "1", [HumanMessage("q1")], "up"),
        Query("test", "2", [HumanMessage("q2")], "up"),
    ]
    cascade = CascadingChatModel(
        models=[
            ScriptedChatModel(model="cheap", responder=cheap),
            ScriptedChatModel(model="strong", responder=strong),
        ],
        gates=[LogprobGate(threshold=0.5)],
        prices={
            "cheap": ModelPrice(input_per_million=1.0, output_per_million=1.0),
            "strong": ModelPrice(input_per_million=10.0, output_per_million=10.0),
        },
    )
    path = tmp_path / "answers.jsonl"
    collect_answers(
        cascade,
        queries,
        path,
        grade=str.__eq__,
        recorded={"geometric_mean": LogprobGate(threshold=0.0)},
        workers=1,
    )
    return Answers.read(path, queries), queries


class _Geometric:
    name = "geometric_mean"

    def scores(self, answers: Answers) -> FloatArray:
        return logprob_scores(answers, self.name)

    def gate(self, threshold: float) -> LogprobGate:
        return LogprobGate(threshold=threshold)


def test_collected_answers_become_the_replay_matrices(tmp_path: Path) -> None:
    answers, _ = _answers_of_a_collect_run(tmp_path)
    test = matrices(answers, "test", answers.models, _Geometric())
    assert test.qids == ["1", "2"]
    # q1: the recorded LogprobGate score of the cheap answer; q2 had no logprobs
    assert test.scores[0, 0] == pytest.approx(math.exp(-2.0))
    assert test.scores[1, 0] == NO_SCORE
    assert test.unscored == 1
    assert np.isnan(test.scores[:, -1]).all()
    assert test.correct.tolist() == [[0.0, 1.0], [0.0, 1.0]]
    assert test.costs[0].tolist() == pytest.approx([11e-6, 110e-6])
    assert answers.tiers[0][0].answer == "up"


def test_answers_of_other_queries_are_refused(tmp_path: Path) -> None:
    _, queries = _answers_of_a_collect_run(tmp_path)
    other = [*queries[:2], Query("test", "2", [HumanMessage("another")], "up")]
    with pytest.raises(SystemExit, match="lacks the answers to 1 of 3"):
        Answers.read(tmp_path / "answers.jsonl", other)
