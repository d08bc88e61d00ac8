"""Fit the demo's gate thresholds on labelled questions, instead of guessing them.

Runs every tier on a seeded set of generated questions (separate from the demo's
own), collects each tier's logprob score, correctness and cost, and asks
``calibrate`` for the cheapest thresholds that keep the strongest model's
accuracy on this set within 5%. The review threshold flags final answers whose score is
in the range where the strongest model was wrong more often than right.

Run: ``python examples/fit_demo_thresholds.py [--questions 45]``
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage

from examples.demo_cascade import AGGREGATION, THRESHOLDS_FILE, TIERS, tier_models
from examples.questions import SYSTEM_PROMPT, generated_questions, is_correct
from langchain_cascade import CascadingChatModel
from langchain_cascade.collect import collect
from langchain_cascade.gates import LogprobGate
from langchain_cascade.local_models import LocalModels, example_prices

QUALITY_SHARE = 0.95


def review_threshold(scores: list[float], correct: list[bool]) -> float:
    """The score below which the strongest model was wrong more often than right."""
    best, best_errors = 0.0, math.inf
    for candidate in sorted({0.0, *scores}):
        errors = sum(
            (s < candidate) == ok for s, ok in zip(scores, correct, strict=True)
        )
        if errors < best_errors:
            best, best_errors = candidate, errors
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=int, default=45)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--resume-file", default=".cache/fit_demo_thresholds.jsonl", type=Path
    )
    args = parser.parse_args()
    questions = generated_questions(args.questions, seed=args.seed)
    with LocalModels(TIERS) as models:
        scoring = CascadingChatModel(
            models=tier_models(models),
            gates=[LogprobGate(threshold=0.0, aggregation=AGGREGATION)] * 2,
            # Scores the final tier too (collect records it), for the review gate.
            review_gate=LogprobGate(threshold=0.0, aggregation=AGGREGATION),
            prices=example_prices(),
        )
        examples = [
            ([("system", SYSTEM_PROMPT), ("human", q.text)], q.answer)
            for q in questions
        ]

        def evaluate(answer: AIMessage, expected: str) -> float:
            return float(is_correct(answer.text, expected))

        # Resumable: an interrupted run picks up where it stopped.
        data = collect(
            scoring, examples, evaluate, path=args.resume_file, max_concurrency=1
        )
    strongest = data.correct[:, -1].tolist()
    final_scores = [0.0 if math.isnan(s) else s for s in data.scores[:, -1].tolist()]
    # The cheapest thresholds that keep 95% of the strongest model's accuracy
    # (the quality bar RouteLLM reports against).
    target = QUALITY_SHARE * float(sum(strongest)) / len(strongest)
    result = data.calibrate(min_quality=target)
    fitted: dict[str, Any] = {
        "aggregation": AGGREGATION,
        # A threshold of +inf ("never accept this tier") or -inf ("always") is
        # clamped to the score's range [0, 1].
        "thresholds": [min(1.0, max(0.0, float(t))) for t in result.thresholds],
        "review_threshold": review_threshold(
            final_scores, [bool(c) for c in strongest]
        ),
        "fitted_on": f"{args.questions} generated questions, seed {args.seed}",
        "rule": f"cheapest thresholds with accuracy >= {QUALITY_SHARE:.0%} of the strongest tier's",
        "accuracy_per_tier": [float(x) for x in data.correct.mean(axis=0)],
        "cascade_quality": result.quality,
        "cascade_cost_per_query": result.cost,
        "escalation_rate": result.escalation_rate,
        "command": "python examples/fit_demo_thresholds.py",
    }
    THRESHOLDS_FILE.write_text(json.dumps(fitted, indent=2) + "\n")
    print(json.dumps(fitted, indent=2))


if __name__ == "__main__":
    main()
