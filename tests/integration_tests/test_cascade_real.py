"""The cascade on real local models: real logprobs, real wrong answers, real runs."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage
from pydantic import BaseModel

from examples.questions import SYSTEM_PROMPT, Question, generated_questions, is_correct
from langchain_cascade import CascadingChatModel, calibrate
from langchain_cascade.gates import (
    HedgingGate,
    LogprobGate,
    MinLengthGate,
    StructuredOutputGate,
    all_of,
)
from langchain_cascade.local_models import LocalModels
from tests.unit_tests.run_recorder import RunRecorder

pytestmark = pytest.mark.real_models

CHEAP, STRONG = "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"


def _messages(question: Question) -> list[tuple[str, str]]:
    return [("system", SYSTEM_PROMPT), ("human", question.text)]


def _tier(models: LocalModels, name: str) -> BaseChatModel:
    return models.chat_model(name, temperature=0, max_tokens=16, logprobs=True)


def _answers(model: BaseChatModel, questions: list[Question]) -> list[AIMessage]:
    return [model.invoke(_messages(q)) for q in questions]


def _accuracy(questions: list[Question], answers: list[AIMessage]) -> float:
    right = sum(
        is_correct(a.text, q.answer) for q, a in zip(questions, answers, strict=True)
    )
    return right / len(questions)


def test_logprob_gate_beats_the_cheap_model_alone(local_models: LocalModels) -> None:
    cheap, strong = _tier(local_models, CHEAP), _tier(local_models, STRONG)
    gate = LogprobGate(threshold=0.0)  # scores only; the threshold is fitted below

    # 1. Choose the threshold on a separate set of questions.
    fit = generated_questions(30, seed=3, split="fit")
    fit_cheap, fit_strong = _answers(cheap, fit), _answers(strong, fit)
    scores = [[gate.score(a) or 0.0, float("nan")] for a in fit_cheap]
    correct = [
        [float(is_correct(c.text, q.answer)), float(is_correct(s.text, q.answer))]
        for q, c, s in zip(fit, fit_cheap, fit_strong, strict=True)
    ]
    fitted = calibrate(scores, correct, [[1.0, 3.0]] * len(fit))
    threshold = min(1.0, max(0.0, fitted.thresholds[0]))

    # 2. Cheap alone, strong alone and the cascade on the test questions.
    test = generated_questions(30, seed=3, split="test")
    started = time.perf_counter()
    cheap_acc = _accuracy(test, _answers(cheap, test))
    cheap_s = time.perf_counter() - started
    started = time.perf_counter()
    strong_acc = _accuracy(test, _answers(strong, test))
    strong_s = time.perf_counter() - started
    cascade = CascadingChatModel(
        models=[cheap, strong],
        gates=[
            all_of(
                MinLengthGate(min_chars=1),
                HedgingGate(),
                LogprobGate(threshold=threshold),
            )
        ],
    )
    started = time.perf_counter()
    answers = cascade.batch([_messages(q) for q in test], {"max_concurrency": 2})
    cascade_s = time.perf_counter() - started
    cascade_acc = _accuracy(test, answers)
    escalated = sum(a.response_metadata["cascade"]["escalated"] for a in answers) / len(
        test
    )

    print(
        f"\nthreshold {threshold:.3f} (fitted on {len(fit)} separate questions)"
        f"\ncheap   {CHEAP:20} accuracy {cheap_acc:.0%}  wall {cheap_s:.1f}s"
        f"\nstrong  {STRONG:20} accuracy {strong_acc:.0%}  wall {strong_s:.1f}s"
        f"\ncascade {'':20} accuracy {cascade_acc:.0%}  wall {cascade_s:.1f}s"
        f"  escalated {escalated:.0%}"
    )
    assert cascade_acc > cheap_acc
    assert escalated < 1.0


def _assert_nested(recorder: RunRecorder, calls: int) -> None:
    cascade_runs = recorder.cascade_runs()
    assert len(cascade_runs) == calls
    ids = {r.run_id for r in cascade_runs}
    attempts = [
        r
        for r in recorder.runs.values()
        if any(t.startswith("cascade:tier:") for t in r.tags)
    ]
    gates = recorder.tagged("cascade:gate")
    assert gates
    # Each call's attempts are its direct children; what an attempt runs inside
    # (a structured-output chain's model call) inherits the tag and nests below.
    assert len([r for r in attempts if r.parent_run_id in ids]) >= calls
    for run in (*attempts, *gates):
        assert any(recorder.is_descendant(run, i) for i in ids), run


@pytest.fixture
def small_cascade(local_models: LocalModels) -> CascadingChatModel:
    # stream_usage: ChatOpenAI asks a custom base URL for a stream's usage only
    # when told to, and without it a streamed answer's usage is unknown.
    tier: dict[str, Any] = {
        "temperature": 0,
        "max_tokens": 12,
        "logprobs": True,
        "stream_usage": True,
    }
    return CascadingChatModel(
        models=[
            local_models.chat_model("smollm2-135m", **tier),
            local_models.chat_model(CHEAP, **tier),
        ],
        gates=[all_of(HedgingGate(), LogprobGate(threshold=0.9))],
    )


QUESTION = [("system", SYSTEM_PROMPT), ("human", "What is 6 * 7?")]


def test_stream_on_real_models_nests_attempts(
    small_cascade: CascadingChatModel,
) -> None:
    recorder = RunRecorder()
    chunks = list(small_cascade.stream(QUESTION, {"callbacks": [recorder]}))
    assert chunks[-1].chunk_position == "last"
    merged = chunks[0]
    for chunk in chunks[1:]:
        merged += chunk
    meta = merged.response_metadata["cascade"]
    assert meta["attempts"][0]["score"] is not None  # real logprobs, streamed
    assert merged.usage_metadata is not None
    assert merged.usage_metadata["total_tokens"] > 0
    _assert_nested(recorder, calls=1)


async def test_astream_and_abatch_on_real_models_nest_attempts(
    small_cascade: CascadingChatModel,
) -> None:
    recorder = RunRecorder()
    chunks = [
        c async for c in small_cascade.astream(QUESTION, {"callbacks": [recorder]})
    ]
    assert "".join(c.text for c in chunks).strip()
    _assert_nested(recorder, calls=1)

    recorder = RunRecorder()
    answers = await small_cascade.abatch([QUESTION] * 3, {"callbacks": [recorder]})
    assert all(a.response_metadata["cascade"]["attempts"] for a in answers)
    _assert_nested(recorder, calls=3)

    recorder = RunRecorder()
    answer = await asyncio.wait_for(
        small_cascade.ainvoke(QUESTION, {"callbacks": [recorder]}), timeout=120
    )
    assert answer.response_metadata["cascade"]["model"] in {"smollm2-135m", CHEAP}
    _assert_nested(recorder, calls=1)


class Capital(BaseModel):
    """A country and its capital city."""

    country: str
    capital: str


def test_structured_output_on_real_models(local_models: LocalModels) -> None:
    recorder = RunRecorder()
    tier: dict[str, Any] = {"temperature": 0, "max_tokens": 64}
    cascade = CascadingChatModel(
        models=[
            local_models.chat_model("smollm2-135m", **tier),
            local_models.chat_model(CHEAP, **tier),
        ],
        gates=[StructuredOutputGate(schema=Capital)],
    )
    structured = cascade.with_structured_output(
        Capital, method="json_schema", include_raw=True
    )
    question = "Give the country France and its capital city as JSON."
    result = structured.invoke(question, {"callbacks": [recorder]})
    assert isinstance(result["parsed"], Capital), result
    assert result["parsed"].capital.strip()
    meta = result["raw"].response_metadata["cascade"]
    assert meta["attempts"][0]["gate"] == "StructuredOutputGate"
    _assert_nested(recorder, calls=1)
    chunks = list(
        cascade.with_structured_output(Capital, method="json_schema").stream(question)
    )
    assert isinstance(chunks[-1], Capital)
