"""collect(): every tier and gate on labelled data, resumable, ready to calibrate."""

from __future__ import annotations

import json
import math
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig

from langchain_cascade import CascadingChatModel, GateInput, GateResult
from langchain_cascade.collect import (
    CollectedScores,
    ExampleRecord,
    collect,
    input_hash,
    merge,
    read_jsonl,
)
from langchain_cascade.gates import Gate
from langchain_cascade.pricing import ModelPrice
from tests.unit_tests.fake_models import ScriptedChatModel

USAGE = {"input_tokens": 100, "output_tokens": 10, "total_tokens": 110}


def answering(model: str, answers: dict[str, str]) -> ScriptedChatModel:
    """A model answering each question from ``answers`` (unknown: 'no idea')."""

    def respond(messages: list[BaseMessage]) -> AIMessage:
        question = messages[-1].text
        return AIMessage(
            answers.get(question, "I don't know"),
            usage_metadata=USAGE,
            response_metadata={"model_name": model},
        )

    return ScriptedChatModel(model=model, responder=respond)


class LengthGate(Gate):
    """Score = len(answer) / 10, capped at 1."""

    def evaluate(self, gate_input: GateInput, config: RunnableConfig) -> GateResult:
        score = min(1.0, len(gate_input.text) / 10)
        return GateResult(passed=score >= 0.5, score=score, reason=f"{score:.1f}")


class JudgeModelGate(Gate):
    """Asks a model (so the gate has usage and a cost); scores 0.7."""

    judge: Any

    def evaluate(self, gate_input: GateInput, config: RunnableConfig) -> GateResult:
        self.judge.invoke([HumanMessage("judge: " + gate_input.text)], config)
        return GateResult(passed=True, score=0.7)


QUESTIONS = [f"q{i}" for i in range(6)]
REFERENCES = [str(i) for i in range(6)]
CHEAP = {
    q: (r if i % 2 == 0 else "wrong")
    for i, (q, r) in enumerate(zip(QUESTIONS, REFERENCES, strict=True))
}
STRONG = dict(zip(QUESTIONS, REFERENCES, strict=True))


def exact(answer: AIMessage, reference: Any) -> float:
    return float(answer.text == reference)


def make_cascade(**kwargs: Any) -> CascadingChatModel:
    defaults: dict[str, Any] = {
        "models": [answering("cheap", CHEAP), answering("strong", STRONG)],
        "gates": [LengthGate()],
        "prices": {
            "cheap": ModelPrice(input_per_million=1.0, output_per_million=2.0),
            "strong": ModelPrice(input_per_million=10.0, output_per_million=30.0),
        },
    }
    defaults.update(kwargs)
    return CascadingChatModel(**defaults)


def examples() -> list[tuple[Any, Any]]:
    return list(zip(QUESTIONS, REFERENCES, strict=True))


CHEAP_COST = 100 * 1.0 / 1e6 + 10 * 2.0 / 1e6
STRONG_COST = 100 * 10.0 / 1e6 + 10 * 30.0 / 1e6


def test_collects_every_tier_and_gate() -> None:
    data = collect(make_cascade(), examples(), exact, progress=False)
    assert isinstance(data, CollectedScores)
    assert data.scores.shape == data.correct.shape == (6, 2)
    assert data.costs.shape == data.gate_costs.shape == data.latencies.shape
    assert data.model_names == ("cheap", "strong")
    assert data.indices == tuple(range(6))
    # even examples: cheap is right ("0" -> score 0.1); odd: "wrong" -> 0.5
    assert data.correct[:, 0].tolist() == [1, 0, 1, 0, 1, 0]
    assert data.correct[:, 1].tolist() == [1] * 6
    assert data.scores[:, 0].tolist() == pytest.approx([0.1, 0.5] * 3)
    assert np.isnan(data.scores[:, 1]).all()  # the final tier has no gate
    assert data.costs[:, 0] == pytest.approx([CHEAP_COST] * 6)
    assert data.costs[:, 1] == pytest.approx([STRONG_COST] * 6)
    assert (data.gate_costs[:, 0] == 0).all()  # a rule gate calls no model
    assert np.isnan(data.gate_costs[:, 1]).all()
    assert (data.latencies >= 0).all()


def test_review_gate_scores_the_final_tier() -> None:
    data = collect(
        make_cascade(review_gate=LengthGate()), examples(), exact, progress=False
    )
    # strong answers are "0".."5": one character, score 0.1
    assert data.scores[:, 1].tolist() == pytest.approx([0.1] * 6)
    assert (
        data.calibrate().thresholds
        == collect(make_cascade(), examples(), exact, progress=False)
        .calibrate()
        .thresholds
    )


def test_every_tier_runs_even_when_the_gate_would_pass() -> None:
    cheap = answering("cheap", CHEAP)
    strong = answering("strong", STRONG)
    collect(make_cascade(models=[cheap, strong]), examples(), exact, progress=False)
    assert len(cheap.calls) == len(strong.calls) == 6


def test_three_tiers_one_shared_gate() -> None:
    cascade = make_cascade(
        models=[answering("a", CHEAP), answering("b", CHEAP), answering("c", STRONG)],
        gates=[LengthGate()],
        prices={},
    )
    data = collect(cascade, examples(), exact, progress=False, max_concurrency=1)
    assert data.scores.shape == (6, 3)
    assert np.isfinite(data.scores[:, :2]).all()
    assert np.isnan(data.costs).all()  # no prices: unknown, never zero
    with pytest.raises(ValueError, match="cost of tier"):
        data.calibrate()
    result = data.calibrate(costs=np.tile([1.0, 2.0, 10.0], (6, 1)))
    assert result.n_tiers == 3


def test_gate_cost_from_the_gate_models_usage() -> None:
    judge = ScriptedChatModel(model="judge", reply="ok")  # 3 in, 2 out
    prices = {
        "cheap": ModelPrice(input_per_million=1.0, output_per_million=2.0),
        "strong": ModelPrice(input_per_million=10.0, output_per_million=30.0),
        "judge": ModelPrice(input_per_million=1000.0, output_per_million=1000.0),
    }
    cascade = make_cascade(gates=[JudgeModelGate(judge=judge)], prices=prices)
    data = collect(cascade, examples(), exact, progress=False)
    assert data.gate_costs[:, 0] == pytest.approx([5 * 1000 / 1e6] * 6)
    assert data.scores[:, 0] == pytest.approx([0.7] * 6)
    result = data.calibrate()
    assert result.cheap_cost == pytest.approx(CHEAP_COST)


def test_unpriced_gate_model_is_unknown_not_free() -> None:
    judge = ScriptedChatModel(model="judge", reply="ok")
    cascade = make_cascade(gates=[JudgeModelGate(judge=judge)])
    data = collect(cascade, examples()[:2], exact, progress=False)
    assert np.isnan(data.gate_costs[:, 0]).all()
    with pytest.raises(ValueError, match="gate cost"):
        data.calibrate()
    assert data.calibrate(include_gate_costs=False).n_queries == 2


def test_gate_input_is_what_the_cascade_would_give() -> None:
    seen: list[GateInput] = []

    def spy(gate_input: GateInput) -> GateResult:
        seen.append(gate_input)
        return GateResult(passed=True)  # no score: counts 1.0

    cheap = answering("cheap", CHEAP)
    cascade = make_cascade(models=[cheap, answering("strong", STRONG)], gates=[spy])
    prompt = [SystemMessage("be brief"), HumanMessage("q0")]
    data = collect(cascade, [(prompt, "0")], exact, progress=False)
    (gi,) = seen
    assert [m.text for m in gi.messages] == ["be brief", "q0"]
    assert gi.response.text == "0"
    assert gi.tier == 0
    assert gi.model == "cheap"
    assert gi.chat_model is cheap
    assert data.scores[0, 0] == 1.0


def test_callbacks_and_tags_reach_the_children() -> None:
    class Tags(BaseCallbackHandler):
        def __init__(self) -> None:
            self.tags: list[list[str]] = []
            self.lock = threading.Lock()

        def on_chat_model_start(
            self, serialized: Any, messages: Any, **kw: Any
        ) -> None:
            with self.lock:
                self.tags.append(kw.get("tags") or [])

    handler = Tags()
    collect(
        make_cascade(),
        examples()[:1],
        exact,
        progress=False,
        config={"callbacks": [handler], "tags": ["mine"]},
    )
    assert len(handler.tags) == 2
    assert all("mine" in t and "cascade:collect" in t for t in handler.tags)


def test_resume_after_an_interruption(tmp_path: Path) -> None:
    out = tmp_path / "scores.jsonl"
    boom = RuntimeError("rate limited")
    strong_script: list[Any] = [
        AIMessage("0", usage_metadata=USAGE),
        AIMessage("1", usage_metadata=USAGE),
        AIMessage("2", usage_metadata=USAGE),
        boom,  # example 3 fails: the run stops here
    ]
    strong = ScriptedChatModel(model="strong", script=strong_script)
    cheap = answering("cheap", CHEAP)
    cascade = make_cascade(models=[cheap, strong])
    with pytest.raises(RuntimeError, match="rate limited"):
        collect(cascade, examples(), exact, path=out, progress=False, max_concurrency=1)
    finished = read_jsonl(out)
    assert [r.index for r in finished] == [0, 1, 2]
    assert len(cheap.calls) == 4  # example 3's cheap call ran before the failure

    # restart: only examples 3..5 run again
    cheap2 = answering("cheap", CHEAP)
    strong2 = answering("strong", STRONG)
    cascade2 = make_cascade(models=[cheap2, strong2])
    data = collect(cascade2, examples(), exact, path=out, progress=False)
    assert [m.messages[-1].text for m in _calls(cheap2)] == ["q3", "q4", "q5"]
    assert len(strong2.calls) == 3
    assert data.indices == tuple(range(6))
    assert data.correct[:, 1].tolist() == [1] * 6
    assert sorted(r.index for r in read_jsonl(out)) == list(range(6))

    # a third run has nothing left to do
    cheap3 = answering("cheap", CHEAP)
    again = collect(
        make_cascade(models=[cheap3, answering("strong", STRONG)]),
        examples(),
        exact,
        path=out,
        progress=False,
    )
    assert cheap3.calls == []
    np.testing.assert_array_equal(again.correct, data.correct)
    np.testing.assert_array_equal(CollectedScores.load(out).scores, data.scores)


class _Call:
    def __init__(self, messages: list[BaseMessage]) -> None:
        self.messages = messages


def _calls(model: ScriptedChatModel) -> list[_Call]:
    return sorted(
        (_Call(c["messages"]) for c in model.calls), key=lambda c: c.messages[-1].text
    )


def _strong_fails_on(
    question: str, error: type[Exception], message: str
) -> CascadingChatModel:
    """The cascade whose strong tier raises ``error(message)`` on ``question``."""

    def flaky(messages: list[BaseMessage]) -> AIMessage:
        if messages[-1].text == question:
            raise error(message)
        return AIMessage(STRONG[messages[-1].text], usage_metadata=USAGE)

    return make_cascade(
        models=[
            answering("cheap", CHEAP),
            ScriptedChatModel(model="strong", responder=flaky),
        ]
    )


def test_resume_with_concurrency_keeps_finished_examples(tmp_path: Path) -> None:
    out = tmp_path / "scores.jsonl"
    cascade = _strong_fails_on("q4", ConnectionError, "server error")
    with pytest.raises(ConnectionError):
        collect(cascade, examples(), exact, path=out, progress=False, max_concurrency=3)
    done = {r.index for r in read_jsonl(out)}
    assert 4 not in done
    cheap2 = answering("cheap", CHEAP)
    data = collect(
        make_cascade(models=[cheap2, answering("strong", STRONG)]),
        examples(),
        exact,
        path=out,
        progress=False,
        max_concurrency=3,
    )
    assert len(cheap2.calls) == 6 - len(done)
    assert data.n_queries == 6


def test_skip_leaves_failures_out_and_retries_them_later(tmp_path: Path) -> None:
    out = tmp_path / "s.jsonl"
    cascade = _strong_fails_on("q2", TimeoutError, "timeout")
    with pytest.warns(UserWarning, match="1 example"):
        data = collect(
            cascade, examples(), exact, path=out, progress=False, on_error="skip"
        )
    assert data.indices == (0, 1, 3, 4, 5)
    data = collect(make_cascade(), examples(), exact, path=out, progress=False)
    assert data.indices == tuple(range(6))


def test_a_cut_last_line_is_redone(tmp_path: Path) -> None:
    out = tmp_path / "s.jsonl"
    collect(make_cascade(), examples()[:2], exact, path=out, progress=False)
    text = out.read_text()
    out.write_text(text[: len(text) - 20])  # the process died mid-write
    assert [r.index for r in read_jsonl(out)] == [0]
    data = collect(make_cascade(), examples()[:2], exact, path=out, progress=False)
    assert data.indices == (0, 1)
    assert [r.index for r in read_jsonl(out)] == [0, 1]


def test_results_of_other_inputs_are_refused(tmp_path: Path) -> None:
    out = tmp_path / "s.jsonl"
    collect(make_cascade(), examples()[:2], exact, path=out, progress=False)
    other = [("different question", "0"), *examples()[1:2]]
    with pytest.raises(ValueError, match="other data"):
        collect(make_cascade(), other, exact, path=out, progress=False)


def test_jsonl_record_format(tmp_path: Path) -> None:
    out = tmp_path / "s.jsonl"
    collect(make_cascade(), examples()[:1], exact, path=out, progress=False)
    (line,) = out.read_text().splitlines()
    record = json.loads(line)
    assert record["index"] == 0
    assert record["input_hash"] == input_hash("q0")
    tier0, tier1 = record["tiers"]
    assert tier0["model"] == "cheap"
    assert tier0["answer"] == "0"
    assert tier0["passed"] is False
    assert tier1["score"] is None  # NaN is stored as null
    assert tier1["gate_cost"] is None
    assert ExampleRecord.from_dict(record).tiers[0].correct == 1.0


def test_evaluate_must_return_a_share() -> None:
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        collect(make_cascade(), examples()[:1], lambda a, r: 2.0, progress=False)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="at least 2 tiers"):
        collect(CascadingChatModel(models=[answering("a", {})]), examples(), exact)
    with pytest.raises(ValueError, match="max_concurrency"):
        collect(make_cascade(), examples(), exact, max_concurrency=0)
    with pytest.raises(TypeError, match="pair"):
        collect(make_cascade(), ["q0"], exact)  # type: ignore[list-item]


def test_calibrate_save_load_roundtrip(tmp_path: Path) -> None:
    data = collect(make_cascade(), examples(), exact, progress=False)
    result = data.calibrate()
    # cheap right on even rows with score 0.1, wrong on odd rows with 0.5: the
    # gate is anti-correlated, so keeping GPT-4 quality means escalating all.
    assert result.quality == 1.0
    assert result.escalation_rate == 1.0
    path = data.save(tmp_path / "scores")
    assert path.suffix == ".npz"
    loaded = CollectedScores.load(path)
    np.testing.assert_array_equal(loaded.correct, data.correct)
    np.testing.assert_array_equal(loaded.costs, data.costs)
    assert loaded.model_names == data.model_names
    assert loaded.indices == data.indices
    ev = loaded.evaluate_thresholds([math.inf])
    assert ev.quality == 1.0


def test_load_plain_npz_defaults(tmp_path: Path) -> None:
    path = tmp_path / "plain.npz"
    np.savez(path, scores=[[0.5, np.nan]], correct=[[1, 1]], costs=[[1, 2]])
    data = CollectedScores.load(path)
    assert data.gate_costs.tolist() == [[0.0, 0.0]]
    assert data.indices == (0,)
    np.savez(path, scores=[[0.5, np.nan]], correct=[[1, 1]])
    with pytest.raises(ValueError, match="costs"):
        CollectedScores.load(path)


def test_progress_is_drawn_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    collect(make_cascade(), examples(), exact, progress=True)
    assert "6/6" in capsys.readouterr().err


def test_shards_merge_into_one_run(tmp_path: Path) -> None:
    whole = collect(make_cascade(), examples(), exact, progress=False)
    paths = []
    for i in range(3):
        path = tmp_path / f"shard{i}.jsonl"
        part = collect(
            make_cascade(), examples(), exact, progress=False, shard=(i, 3), path=path
        )
        assert part.indices == tuple(range(i, 6, 3))
        paths.append(path)
    merged = merge(*paths)
    assert merged.indices == whole.indices
    np.testing.assert_array_equal(merged.scores, whole.scores)
    np.testing.assert_array_equal(merged.correct, whole.correct)
    np.testing.assert_array_equal(merged.costs, whole.costs)
    assert merged.calibrate().thresholds == whole.calibrate().thresholds
    with pytest.raises(ValueError, match="shard"):
        collect(make_cascade(), examples(), exact, progress=False, shard=(3, 3))


def test_shards_of_other_data_do_not_merge(tmp_path: Path) -> None:
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    collect(make_cascade(), examples(), exact, progress=False, path=a, shard=(0, 2))
    other = [(q + "?", r) for q, r in examples()]
    collect(make_cascade(), other, exact, progress=False, path=b, shard=(0, 2))
    with pytest.raises(ValueError, match="different datasets"):
        merge(a, b)


def test_candidate_gates_and_features_are_recorded(tmp_path: Path) -> None:
    def always(gate_input: GateInput) -> GateResult:
        return GateResult(passed=True, score=0.25)

    path = tmp_path / "c.jsonl"
    data = collect(
        make_cascade(),
        examples(),
        exact,
        progress=False,
        candidates={"quarter": always},
        path=path,
    )
    assert set(data.candidate_scores) == {"gate", "quarter"}
    np.testing.assert_array_equal(
        data.candidate_scores["gate"][:, 0], data.scores[:, 0]
    )
    assert (data.candidate_scores["quarter"] == 0.25).all()  # every tier, final too
    assert np.isnan(data.candidate_scores["gate"][:, 1]).all()
    assert data.features["answer_chars"][:, 1].tolist() == [1.0] * 6
    assert (data.features["output_tokens"] == 10).all()
    loaded = CollectedScores.load(path)
    np.testing.assert_array_equal(loaded.candidate_scores["quarter"], 0.25)
    npz = data.save(tmp_path / "c.npz")
    again = CollectedScores.load(npz)
    assert set(again.candidate_scores) == {"gate", "quarter"}
    np.testing.assert_array_equal(
        again.features["answer_chars"], data.features["answer_chars"]
    )
    with pytest.raises(ValueError, match="taken"):
        collect(make_cascade(), examples(), exact, candidates={"gate": always})


def test_a_non_final_tier_that_raises_escalates_as_live() -> None:
    cheap = ScriptedChatModel(
        model="cheap",
        script=[TimeoutError("slow"), AIMessage("0", usage_metadata=USAGE)],
    )
    data = collect(
        make_cascade(models=[cheap, answering("strong", STRONG)]),
        examples()[:2],
        exact,
        progress=False,
        max_concurrency=1,
    )
    assert data.scores[:, 0].tolist() == [-math.inf, 0.1]
    assert data.correct[:, 0].tolist() == [0.0, 0.0]
    assert data.costs[0, 0] == 0.0
    assert data.calibrate().n_queries == 2  # -inf is a score calibrate accepts


def test_every_tier_answers_whatever_the_call_skips_or_budgets() -> None:
    cheap = answering("cheap", CHEAP)
    cascade = make_cascade(models=[cheap, answering("strong", STRONG)])
    bound = cascade.bind(first_tier=1, max_cost=1e-12, max_latency=1e-9, speculative=1)
    strong = cascade.models[1]
    assert isinstance(strong, ScriptedChatModel)
    data = collect(bound, examples(), exact, progress=False)
    assert len(cheap.calls) == 6  # the live call would have skipped tier 0
    assert len(strong.calls) == 6  # once per example: no speculative extra run
    assert np.isfinite(data.scores[:, 0]).all()


def test_summary_says_to_call_the_final_tier_alone_when_no_cheap_tier_pays() -> None:
    rng = np.random.default_rng(3)
    n = 100
    nan = np.full(n, np.nan)
    data = CollectedScores(
        scores=np.column_stack([rng.random(n), rng.random(n), nan]),
        correct=np.column_stack(
            [rng.random(n) < 0.5, rng.random(n) < 0.5, np.ones(n)]
        ).astype(float),
        costs=np.tile([1.0, 4.0, 10.0], (n, 1)),
        gate_costs=np.column_stack([np.zeros((n, 2)), nan]),
        latencies=np.zeros((n, 3)),
        gate_latencies=np.column_stack([np.zeros((n, 2)), nan]),
        model_names=("cheap", "middle", "strong"),
    )
    lines = data.summary().splitlines()
    assert lines[0] == "Tier check (min cost s.t. quality >= 1):"
    assert lines[1].startswith("  tier 0 (cheap): does not pay: drop it")
    assert lines[2].startswith("  tier 1 (middle): does not pay: drop it")
    assert lines[3] == (
        "Drop tier 0 (cheap), tier 1 (middle): call tier 2 (strong) alone, "
        "without a cascade (no cascade of these tiers pays)."
    )
    assert len(lines) == 4
