"""LangSmith paths of collect: a dataset in, an experiment out, replay of traffic.

Everything runs against the local receiver on 127.0.0.1 with the real
``langsmith.Client``: the dataset is created and read through the client, the
experiment is traced through it, and the replay reads runs with its v2 runs
query (``POST /api/v2/runs/query``; the deprecated ``list_runs`` is neither
called nor served), without a deprecation warning.
"""

from __future__ import annotations

import contextlib
import json
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.runnables import RunnableConfig
from langsmith.utils import LangSmithNotFoundError

from langchain_cascade import CascadingChatModel, GateInput, GateResult
from langchain_cascade.collect import (
    LangSmithDataset,
    collect,
    logged_cascades,
    replay_gates,
    replay_thresholds,
)
from langchain_cascade.gates import Gate
from langchain_cascade.pricing import ModelPrice
from tests.langsmith_receiver import LangSmithReceiver
from tests.unit_tests.fake_models import ScriptedChatModel

USAGE = {"input_tokens": 100, "output_tokens": 10, "total_tokens": 110}
PRICES = {
    "cheap": ModelPrice(input_per_million=1.0, output_per_million=2.0),
    "strong": ModelPrice(input_per_million=10.0, output_per_million=30.0),
}
QUESTIONS = [f"q{i}" for i in range(6)]


def cheap_answers(questions: Sequence[str]) -> dict[str, str]:
    """Right (and short) for the even questions, long and wrong for the odd ones."""
    return {
        q: (str(i) if i % 2 == 0 else f"wrong answer {i}")
        for i, q in enumerate(questions)
    }


CHEAP = cheap_answers(QUESTIONS)


def answering(name: str, answers: dict[str, str]) -> ScriptedChatModel:
    def respond(messages: list[BaseMessage]) -> AIMessage:
        return AIMessage(answers[messages[-1].text], usage_metadata=USAGE)

    return ScriptedChatModel(model=name, responder=respond)


class LengthGate(Gate):
    """Score = len(answer) / 20: short answers pass at 0.0, not at 0.5."""

    def evaluate(self, gate_input: GateInput, config: RunnableConfig) -> GateResult:
        score = min(1.0, len(gate_input.text) / 20)
        return GateResult(passed=score >= 0.5, score=score, reason=f"{score:.2f}")


def cascade(questions: Sequence[str] = QUESTIONS) -> CascadingChatModel:
    return CascadingChatModel(
        models=[
            answering("cheap", cheap_answers(questions)),
            answering("strong", {q: q[1:] for q in questions}),
        ],
        gates=[LengthGate()],
        prices=PRICES,
    )


def exact(answer: AIMessage, reference: Any) -> bool:
    return bool(answer.text == reference)


@pytest.fixture
def rx() -> Iterator[LangSmithReceiver]:
    with LangSmithReceiver() as receiver:
        yield receiver


@contextlib.contextmanager
def no_deprecation_warning() -> Iterator[None]:
    """Fails if the block warns a DeprecationWarning (langsmith's own included)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    deprecated = [w for w in caught if issubclass(w.category, DeprecationWarning)]
    assert deprecated == [], [
        f"{w.filename}:{w.lineno}: {w.message}" for w in deprecated
    ]


def runs_queries(rx: LangSmithReceiver) -> list[dict[str, Any]]:
    """The bodies of the v2 runs queries the receiver answered, in order."""
    return [
        json.loads(r.body)
        for r in rx.requests
        if (r.method, r.path, r.status) == ("POST", "/api/v2/runs/query", 200)
    ]


def test_collect_reads_a_dataset_and_logs_an_experiment(rx: LangSmithReceiver) -> None:
    client = rx.client()
    dataset = client.create_dataset("arithmetic")
    client.create_examples(
        dataset_id=dataset.id,
        examples=[
            {"inputs": {"question": q}, "reference_outputs": {"answer": q[1:]}}
            for q in QUESTIONS
        ],
    )
    examples = LangSmithDataset("arithmetic", client=client)
    assert len(examples) == 6
    assert sorted(examples) == sorted((q, q[1:]) for q in QUESTIONS)
    data = collect(cascade(), examples, exact, progress=False, experiment="exp-1")
    assert data.correct[:, 1].tolist() == [1.0] * 6
    assert data.correct[:, 0].tolist() == [
        float(examples[i][0] in ("q0", "q2", "q4")) for i in range(6)
    ]
    (session,) = [s for s in rx.sessions.values() if s["name"] == "exp-1"]
    assert session["reference_dataset_id"] == examples.id
    roots = [r for r in rx.roots() if r["session_name"] == "exp-1"]
    assert sorted(str(r["reference_example_id"]) for r in roots) == sorted(
        examples.example_ids
    )
    for root in roots:
        assert root["name"].startswith("collect example ")
        assert len(root["outputs"]["tiers"]) == 2  # every tier's record
        tiers = [c for c in rx.children_of(root["id"]) if c["run_type"] == "llm"]
        assert len(tiers) == 2  # each tier's call is in the experiment too
    with pytest.raises(TypeError, match="LangSmithDataset"):
        collect(cascade(), [("q0", "0")], exact, progress=False, experiment="x")


def test_dataset_keys_are_chosen_or_refused(rx: LangSmithReceiver) -> None:
    rx.add_dataset(
        "two-inputs",
        [{"inputs": {"question": "q0", "context": "c"}, "outputs": {"answer": "0"}}],
    )
    client = rx.client()
    assert LangSmithDataset("two-inputs", client=client)[0] == (
        {"question": "q0", "context": "c"},
        "0",
    )
    chosen = LangSmithDataset("two-inputs", client=client, input_key="question")
    assert chosen[0] == ("q0", "0")
    with pytest.raises(KeyError, match="no 'prompt'"):
        LangSmithDataset("two-inputs", client=client, input_key="prompt")


def test_replay_rescores_logged_traffic_without_calling_a_model(
    rx: LangSmithReceiver,
) -> None:
    live = cascade()
    tracer = rx.tracer(project_name="traffic")
    answers = [live.invoke(q, config={"callbacks": [tracer]}) for q in QUESTIONS]
    rx.flush()
    metas = [a.response_metadata["cascade"] for a in answers]
    assert rx.wait_for(lambda runs: len(runs) >= len(QUESTIONS) * 3)
    with no_deprecation_warning():
        logged = logged_cascades("traffic", client=rx.client())
    assert sorted(m["tier"] for m in logged) == sorted(m["tier"] for m in metas)
    (query,) = runs_queries(rx)  # one page: selects, type and window as sent
    assert (query["run_type"], query["selects"]) == ("LLM", ["ID", "OUTPUTS"])
    assert query["min_start_time"] < min(r["start_time"] for r in rx.runs.values())
    assert rx.unexpected_requests == [], rx.tree()

    with no_deprecation_warning():
        same = replay_thresholds("traffic", [0.5], client=rx.client())
    assert same.n_runs == 6
    assert same.unknown == 0
    assert same.escalation_rate == pytest.approx(same.live_escalation_rate)
    assert same.cost == pytest.approx(same.live_cost)

    lenient = replay_thresholds("traffic", [0.0], client=rx.client())
    assert lenient.tier_counts == (6, 0)  # every logged tier-0 answer now passes
    assert lenient.escalation_rate == 0.0
    assert lenient.cost is not None
    assert same.cost is not None
    assert lenient.cost < same.cost  # the strong calls are saved

    strict = replay_thresholds("traffic", [0.99], client=rx.client())
    accepted_live = sum(m["tier"] == 0 for m in metas)
    assert strict.unknown == accepted_live  # they would need the strong model
    assert strict.tier_counts == (0, 6 - accepted_live)
    plain = answering("cheap", CHEAP)
    plain.invoke("q0", config={"callbacks": [rx.tracer(project_name="plain")]})
    rx.flush()
    assert rx.wait_for(
        lambda runs: any(r["session_name"] == "plain" for r in runs.values())
    )
    with pytest.raises(ValueError, match="no cascade runs"):
        replay_thresholds("plain", [0.5], client=rx.client())
    with pytest.raises(LangSmithNotFoundError):
        replay_thresholds("no-such-project", [0.5], client=rx.client())
    with pytest.raises(LangSmithNotFoundError):
        logged_cascades("no-such-project", client=rx.client())
    assert rx.errors == [], rx.tree()


def test_replay_gates_judges_the_logged_answers_offline(rx: LangSmithReceiver) -> None:
    live = cascade()
    tracer = rx.tracer(project_name="traffic-gates")
    answers = [live.invoke(q, config={"callbacks": [tracer]}) for q in QUESTIONS]
    rx.flush()
    assert rx.wait_for(lambda runs: len(runs) >= len(QUESTIONS) * 3)

    class Digits(Gate):
        """1.0 when the answer is a number."""

        def evaluate(self, gate_input: GateInput, config: RunnableConfig) -> GateResult:
            ok = gate_input.text.strip().isdigit()
            assert gate_input.question.startswith("q")  # the logged conversation
            return GateResult(passed=ok, score=float(ok))

    with no_deprecation_warning():
        rows = replay_gates("traffic-gates", [Digits()], client=rx.client())
    assert len(rows) == len(QUESTIONS)
    expected = sorted(float(CHEAP[q].isdigit()) for q in QUESTIONS)
    assert sorted(r[0] for r in rows) == expected  # tier 0 answered every call
    queries = runs_queries(rx)  # the project's chat-model runs, then each trace's
    assert [q.get("trace_id") for q in queries[1:]] == [
        r["trace_id"] for r in rx.roots()
    ]
    with no_deprecation_warning():
        same = replay_gates("traffic-gates", [LengthGate()], client=rx.client())
    live_scores = sorted(
        a.response_metadata["cascade"]["attempts"][0]["score"] for a in answers
    )
    assert sorted(r[0] for r in same) == pytest.approx(live_scores)
    with pytest.raises(LangSmithNotFoundError):
        replay_gates("no-such-project", [LengthGate()], client=rx.client())
    assert (rx.unexpected_requests, rx.errors) == ([], []), rx.tree()


def test_readers_follow_the_runs_query_pages(rx: LangSmithReceiver) -> None:
    """More chat-model runs than one page (the server's default, 100) hold."""
    questions = [f"q{i}" for i in range(70)]  # 70 cascade + 70 + 35 tier runs
    live = cascade(questions)
    tracer = rx.tracer(project_name="busy")
    metas = [
        live.invoke(q, config={"callbacks": [tracer]}).response_metadata["cascade"]
        for q in questions
    ]
    rx.flush()
    assert rx.wait_for_runs(70 * 2 + 35), rx.tree()
    with no_deprecation_warning():
        logged = logged_cascades("busy", client=rx.client())
    pages = runs_queries(rx)
    assert len(pages) == 2  # the second asks for what the first one's cursor says
    assert "cursor" not in pages[0]
    assert pages[1] == {**pages[0], "cursor": pages[1]["cursor"]}

    def canonical(found: list[dict[str, Any]]) -> list[str]:
        return sorted(json.dumps(m, sort_keys=True) for m in found)

    assert canonical(logged) == canonical(metas)
    with no_deprecation_warning():
        replayed = replay_thresholds("busy", [0.5], client=rx.client())
        rows = replay_gates("busy", [LengthGate()], client=rx.client())
    assert replayed.n_runs == len(rows) == 70
    assert replayed.tier_counts == (35, 35)
    assert sorted(r[0] for r in rows) == pytest.approx(
        sorted(m["attempts"][0]["score"] for m in metas)
    )
    assert (rx.unexpected_requests, rx.errors) == ([], []), rx.tree()


def test_a_client_without_the_synchronous_runs_query_is_named() -> None:
    class OtherClient:
        def read_project(self, *, project_name: str) -> Any:
            return type("Project", (), {"id": "p", "start_time": None})()

    with pytest.raises(RuntimeError, match="no synchronous runs query"):
        logged_cascades("traffic", client=OtherClient())
