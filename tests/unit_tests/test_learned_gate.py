"""LearnedGate: fitted on collect output, saved, loaded, used live and by calibrate."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.runnables import RunnableConfig

from langchain_cascade import CascadingChatModel, GateInput, GateResult
from langchain_cascade.calibration import calibrate, evaluate_thresholds
from langchain_cascade.collect import CollectedScores, collect
from langchain_cascade.gates import Gate, HedgingGate
from langchain_cascade.gates.learned import (
    LearnedGate,
    _fit_one,
    answer_features,
    fit_learned_gates,
    learned_scores,
    out_of_fold_scores,
)
from langchain_cascade.pricing import ModelPrice
from tests.unit_tests.fake_models import ScriptedChatModel, logprob_meta

USAGE = {"input_tokens": 20, "output_tokens": 5, "total_tokens": 25}
PRICES = {
    "cheap": ModelPrice(input_per_million=1.0, output_per_million=1.0),
    "strong": ModelPrice(input_per_million=20.0, output_per_million=20.0),
}


class Digits(Gate):
    """Score: share of digits in the answer (a weak, noisy signal)."""

    def evaluate(self, gate_input: GateInput, config: RunnableConfig) -> GateResult:
        text = gate_input.text
        share = sum(ch.isdigit() for ch in text) / max(1, len(text))
        return GateResult(passed=share > 0.5, score=share)


def cheap_answers(n: int, seed: int = 0) -> dict[str, tuple[str, bool, float]]:
    """Question -> (answer, right, logprob): right answers are more confident."""
    rng = random.Random(seed)
    out = {}
    for i in range(n):
        right = rng.random() < 0.55
        lp = rng.gauss(-0.2 if right else -1.2, 0.35)
        text = str(i) if right else rng.choice([f"{i}?", "maybe 7", f"{i + 1}"])
        out[f"q{i}"] = (text, right, lp)
    return out


def cascade_for(answers: dict[str, tuple[str, bool, float]], gate: Any) -> Any:
    def cheap(messages: list[BaseMessage]) -> AIMessage:
        text, _, lp = answers[messages[-1].text]
        return AIMessage(
            text, usage_metadata=USAGE, response_metadata=logprob_meta(lp, lp)
        )

    def strong(messages: list[BaseMessage]) -> AIMessage:
        return AIMessage(messages[-1].text[1:], usage_metadata=USAGE)

    return CascadingChatModel(
        models=[
            ScriptedChatModel(model="cheap", responder=cheap),
            ScriptedChatModel(model="strong", responder=strong),
        ],
        gates=[gate],
        prices=PRICES,
    )


def exact(answer: AIMessage, reference: Any) -> bool:
    return bool(answer.text == reference)


INPUTS = {"digits": Digits(), "hedging": HedgingGate()}
FEATURES = ["logprob_mean", "answer_chars"]


@pytest.fixture(scope="module")
def collected() -> tuple[CollectedScores, dict[str, tuple[str, bool, float]]]:
    answers = cheap_answers(120)
    data = collect(
        cascade_for(answers, HedgingGate()),
        [(q, q[1:]) for q in answers],
        exact,
        candidates=INPUTS,
        progress=False,
    )
    return data, answers


def test_fit_predicts_like_sklearn(collected: Any) -> None:
    data, _ = collected
    x = np.column_stack(
        [data.candidate_scores["digits"][:, 0], data.features["logprob_mean"][:, 0]]
    )
    fit = _fit_one(x, data.correct[:, 0], c=1.0, method="sigmoid", cv=5)
    gate = LearnedGate(
        inputs={"digits": Digits()},
        features=["logprob_mean"],
        **{k: fit[k] for k in ("low", "high", "mean", "scale", "folds")},
    )
    expected = fit["sklearn"].predict_proba(fit["z"])[:, 1]
    np.testing.assert_allclose(gate.score_matrix(x), expected, rtol=1e-9)


def test_isotonic_predicts_like_sklearn(collected: Any) -> None:
    data, _ = collected
    x = data.features["logprob_mean"][:, :1]
    fit = _fit_one(x, data.correct[:, 0], c=1.0, method="isotonic", cv=3)
    gate = LearnedGate(
        features=["logprob_mean"],
        **{k: fit[k] for k in ("low", "high", "mean", "scale", "folds")},
    )
    expected = fit["sklearn"].predict_proba(fit["z"])[:, 1]
    np.testing.assert_allclose(gate.score_matrix(x), expected, rtol=1e-9)


def test_learned_gate_separates_and_calibrates(collected: Any) -> None:
    data, _ = collected
    (gate,) = fit_learned_gates(data, INPUTS, features=FEATURES)
    scores = learned_scores(data, [gate])
    p = scores[:, 0]
    right = data.correct[:, 0] == 1
    assert p[right].mean() > p[~right].mean() + 0.3
    # calibrated: the mean probability is close to the share of right answers
    assert abs(p.mean() - right.mean()) < 0.05
    assert np.isnan(scores[:, 1]).all()
    result = calibrate(scores, data.correct, data.costs, min_quality=0.95)
    assert result.quality >= 0.95
    assert result.escalation_rate < 0.8


def test_save_load_and_use_in_a_live_cascade(collected: Any, tmp_path: Path) -> None:
    data, answers = collected
    oof = out_of_fold_scores(data, INPUTS, features=FEATURES)
    threshold = calibrate(oof, data.correct, data.costs, min_quality=0.95).thresholds[0]
    (gate,) = fit_learned_gates(data, INPUTS, features=FEATURES)
    gate.threshold = threshold
    path = gate.save(tmp_path / "tier0.json")
    saved = json.loads(path.read_text())
    assert saved["inputs"] == ["digits", "hedging"]
    assert saved["features"] == FEATURES
    with pytest.raises(ValueError, match="input gate"):
        LearnedGate.load(path)
    loaded = LearnedGate.load(path, inputs=INPUTS)
    np.testing.assert_array_equal(
        learned_scores(data, [loaded]), learned_scores(data, [gate])
    )

    # live: the cascade with the loaded gate answers like the policy predicts
    cascade = cascade_for(answers, loaded)
    live_tiers = [
        cascade.invoke(q).response_metadata["cascade"]["tier"] for q in answers
    ]
    policy = evaluate_thresholds(
        learned_scores(data, [loaded]),
        data.correct,
        data.costs,
        thresholds=[threshold],
    )
    assert np.mean(live_tiers) == pytest.approx(policy.tier_rates[1])
    # and collect treats it like any gate
    again = collect(cascade, [(q, q[1:]) for q in answers][:10], exact, progress=False)
    np.testing.assert_allclose(again.scores[:, 0], learned_scores(data, [gate])[:10, 0])


def test_a_raising_input_scores_minus_inf_and_nan_fails_closed() -> None:
    class Boom(Gate):
        def evaluate(self, gate_input: GateInput, config: RunnableConfig) -> GateResult:
            raise RuntimeError

    gate = LearnedGate(
        inputs={"boom": Boom()},
        features=["logprob_mean"],
        low=[0.0, -3.0],
        high=[1.0, 0.0],
        mean=[0.5, -1.0],
        scale=[0.5, 1.0],
        folds=[
            {
                "coef": [1.0, 1.0],
                "intercept": 0.0,
                "calibrator": {
                    "kind": "sigmoid",
                    "a": -1.0,
                    "b": 0.0,
                    "x": [],
                    "y": [],
                },
            }
        ],
    )
    answer = AIMessage("x", response_metadata=logprob_meta(-0.5))
    result = gate.invoke(GateInput(messages=[], response=answer))
    # boom -> -inf -> clipped to its lowest (0.0): z = -1; lp -0.5: z = 0.5
    assert result.score == pytest.approx(1 / (1 + math.exp(0.5)))
    no_logprobs = gate.invoke(GateInput(messages=[], response=AIMessage("x")))
    assert no_logprobs.passed is False
    assert "logprob_mean" in no_logprobs.reason


def test_nan_inputs_in_fitting_name_tier_and_row(collected: Any) -> None:
    data, _ = collected
    broken = data.subset(np.arange(data.n_queries))
    broken.features["logprob_mean"][3, 0] = np.nan
    with pytest.raises(ValueError, match=r"tier 0: 'logprob_mean' is NaN at row 3"):
        fit_learned_gates(broken, INPUTS, features=FEATURES)
    with pytest.raises(ValueError, match="no candidate gate 'other'"):
        fit_learned_gates(data, {"other": Digits()})
    with pytest.raises(ValueError, match="unknown feature"):
        fit_learned_gates(data, INPUTS, features=["colour"])


def test_answer_features() -> None:
    message = AIMessage(
        "four", usage_metadata=USAGE, response_metadata=logprob_meta(-1, -3)
    )
    assert answer_features(message) == {
        "answer_chars": 4.0,
        "output_tokens": 5.0,
        "logprob_mean": -2.0,
        "logprob_min": -3.0,
    }
    bare = answer_features(AIMessage("x"))
    assert math.isnan(bare["output_tokens"])
    assert math.isnan(bare["logprob_mean"])
