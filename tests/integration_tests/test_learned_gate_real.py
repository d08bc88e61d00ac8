"""LearnedGate on the real local models: fitted, saved, loaded, used live."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage

from examples.questions import SYSTEM_PROMPT, Question, generated_questions, is_correct
from langchain_cascade import CascadingChatModel, calibrate
from langchain_cascade.collect import collect
from langchain_cascade.gates import GateInput, HedgingGate, LogprobGate
from langchain_cascade.gates.learned import (
    LearnedGate,
    fit_learned_gates,
    learned_scores,
    out_of_fold_scores,
)
from langchain_cascade.local_models import LocalModels
from langchain_cascade.pricing import ModelPrice

pytestmark = pytest.mark.real_models

CHEAP, STRONG = "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"
PRICES = {
    CHEAP: ModelPrice(input_per_million=0.1, output_per_million=0.1),
    STRONG: ModelPrice(input_per_million=0.3, output_per_million=0.3),
}
INPUTS = {"hedging": HedgingGate(), "logprob": LogprobGate(threshold=0.0)}
FEATURES = ["logprob_mean", "logprob_min", "answer_chars"]


def _messages(question: Question) -> list[tuple[str, str]]:
    return [("system", SYSTEM_PROMPT), ("human", question.text)]


def _cascade(models: LocalModels, gate: Any) -> CascadingChatModel:
    tier: dict[str, Any] = {"temperature": 0, "max_tokens": 16, "logprobs": True}
    return CascadingChatModel(
        models=[models.chat_model(CHEAP, **tier), models.chat_model(STRONG, **tier)],
        gates=[gate],
        prices=PRICES,
    )


def _right(answer: AIMessage, question: Question) -> bool:
    return is_correct(answer.text, question.answer)


def test_learned_gate_fitted_saved_loaded_and_used_live(
    local_models: LocalModels, tmp_path: Path
) -> None:
    fit = generated_questions(40, seed=11, split="fit")
    data = collect(
        _cascade(local_models, HedgingGate()),
        [(_messages(q), q) for q in fit],
        _right,
        candidates=INPUTS,
        progress=False,
        max_concurrency=2,
    )
    oof = out_of_fold_scores(data, INPUTS, features=FEATURES, folds=4, cv=3)
    fitted = calibrate(oof, data.correct, data.costs)  # no loss vs the strong tier
    (gate,) = fit_learned_gates(data, INPUTS, features=FEATURES, cv=3)
    gate.threshold = float(min(1.0, max(0.0, fitted.thresholds[0])))
    path = gate.save(tmp_path / "tier0.json")
    loaded = LearnedGate.load(path, inputs=INPUTS)
    assert loaded.to_dict() == gate.to_dict()
    in_sample = learned_scores(data, [loaded])[:, 0]
    right = data.correct[:, 0] == 1
    print(
        f"\nfit: 0.5B right on {right.mean():.0%}; mean p right {in_sample[right].mean():.2f}"
        f" wrong {in_sample[~right].mean():.2f}; threshold {loaded.threshold:.3f}"
    )
    assert in_sample[right].mean() > in_sample[~right].mean()

    test = generated_questions(16, seed=11, split="test")
    cascade = _cascade(local_models, loaded)
    answers = cascade.batch([_messages(q) for q in test], {"max_concurrency": 2})
    tiers = [a.response_metadata["cascade"]["tier"] for a in answers]
    accuracy = sum(_right(a, q) for a, q in zip(answers, test, strict=True)) / len(test)
    print(
        f"test: cascade accuracy {accuracy:.0%}, escalated {sum(tiers) / len(test):.0%}"
    )
    cheap = local_models.chat_model(CHEAP, temperature=0, max_tokens=16, logprobs=True)
    for question, answer in zip(test[:4], answers[:4], strict=True):
        first = answer.response_metadata["cascade"]["attempts"][0]
        draft = cheap.invoke(_messages(question))
        again = loaded.invoke(GateInput(messages=[], response=draft))
        # the live score is the loaded model's probability of the tier-0 draft
        assert again.score is not None
        assert first["score"] == pytest.approx(again.score, abs=1e-3)
        assert first["accepted"] == (again.score >= loaded.threshold)
    assert set(tiers) <= {0, 1}
