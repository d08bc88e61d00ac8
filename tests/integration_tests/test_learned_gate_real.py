"""LearnedGate on the real local models: fitted, saved, loaded, used live."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, LLMResult

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
    tier: dict[str, Any] = {"temperature": 0, "max_tokens": 12, "logprobs": True}
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
    fit = generated_questions(24, seed=11, split="fit")
    data = collect(
        _cascade(local_models, HedgingGate()),
        [(_messages(q), q) for q in fit],
        _right,
        candidates=INPUTS,
        progress=False,
        max_concurrency=2,
    )
    oof = out_of_fold_scores(data, INPUTS, features=FEATURES, folds=3, cv=2)
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

    test = generated_questions(8, seed=11, split="test")
    cascade = _cascade(local_models, loaded)
    drafts = _TierAnswers()
    answers = cascade.batch(
        [_messages(q) for q in test], {"max_concurrency": 2, "callbacks": [drafts]}
    )
    tiers = [a.response_metadata["cascade"]["tier"] for a in answers]
    accuracy = sum(_right(a, q) for a, q in zip(answers, test, strict=True)) / len(test)
    print(
        f"test: cascade accuracy {accuracy:.0%}, escalated {sum(tiers) / len(test):.0%}"
    )
    live = sorted(
        a.response_metadata["cascade"]["attempts"][0]["score"] for a in answers
    )
    # the live gate is the loaded model: re-scoring the same tier-0 drafts offline
    # gives the same probabilities, and the verdicts follow the saved threshold
    offline = sorted(
        loaded.invoke(GateInput(messages=[], response=d)).score or 0.0
        for d in drafts.messages
    )
    assert live == pytest.approx(offline, abs=1e-9)
    for answer in answers:
        first = answer.response_metadata["cascade"]["attempts"][0]
        assert first["accepted"] == (first["score"] >= loaded.threshold)
    assert set(tiers) <= {0, 1}


class _TierAnswers(BaseCallbackHandler):
    """Collects the tier-0 answers of the cascade's calls."""

    def __init__(self) -> None:
        self.messages: list[AIMessage] = []
        self._tier0: set[Any] = set()

    def on_chat_model_start(
        self, serialized: Any, messages: Any, *, run_id: Any, **kwargs: Any
    ) -> None:
        if "cascade:tier:0" in (kwargs.get("tags") or []):
            self._tier0.add(run_id)

    def on_llm_end(self, response: LLMResult, *, run_id: Any, **kwargs: Any) -> None:
        generation = response.generations[0][0]
        if run_id in self._tier0 and isinstance(generation, ChatGeneration):
            message = generation.message
            assert isinstance(message, AIMessage)
            self.messages.append(message)
