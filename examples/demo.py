"""The main job: a three-tier cascade of real local models answering real questions.

SmolLM2-135M -> Qwen2.5-Coder-0.5B -> Qwen2.5-Coder-1.5B, served on this machine by
xllamacpp, answer a dozen questions from easy facts to two-step word problems.
Each tier's gate (hedging and length rules, then a logprob confidence threshold
fitted on separate labelled questions by ``fit_demo_thresholds.py``) decides
whether its answer is returned or the question escalates. For comparison, the
strongest model also answers every question alone.

Prints, per question: which tier answered, each gate's score and verdict, tokens,
latency and cost under an example price table; then the totals against always
using the strongest model.

Run: ``make demo`` (sets everything up), or ``python -m examples.demo``.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from typing import Any

from examples.demo_cascade import TIERS, build_cascade, load_thresholds, tier_models
from examples.questions import DEMO_QUESTIONS, SYSTEM_PROMPT, Question, is_correct
from langchain_cascade import CascadeMonitor
from langchain_cascade.local_models import (
    EXAMPLE_PRICES_PER_MILLION,
    LocalModels,
    example_prices,
)
from langchain_cascade.pricing import price_of

SHORT = {
    "smollm2-135m": "SmolLM2",
    "qwen2.5-coder-0.5b": "Qwen-0.5B",
    "qwen2.5-coder-1.5b": "Qwen-1.5B",
}


@dataclass
class Row:
    question: Question
    answer: str
    meta: dict[str, Any]
    tokens: int
    latency_s: float
    correct: bool
    strong_answer: str
    strong_correct: bool
    strong_cost: float | None
    strong_latency_s: float


def progress(text: str) -> None:
    """One status line on stderr, overwritten in place."""
    sys.stderr.write("\r\033[K" + text)
    sys.stderr.flush()


def verdicts(meta: dict[str, Any]) -> str:
    """Each gate's score and verdict, e.g. ``0.41 no > 0.93 ok``."""
    parts = []
    for attempt in meta["attempts"]:
        if attempt["gate"] is None:
            parts.append("final" if attempt["error"] is None else "error")
            continue
        score = "-" if attempt["score"] is None else f"{attempt['score']:.2f}"
        parts.append(f"{score} {'ok' if attempt['accepted'] else 'no'}")
    return " > ".join(parts)


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join("-" * w for w in widths)
    fmt = [
        ("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True))) for r in rows
    ]
    head = "  ".join(c.ljust(w) for c, w in zip(header, widths, strict=True))
    return "\n".join([head, line, *fmt])


def money(value: float | None) -> str:
    return "unknown" if value is None else f"${value * 1e6:.2f}e-6"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=int, default=len(DEMO_QUESTIONS))
    args = parser.parse_args(argv)
    questions = DEMO_QUESTIONS[: args.questions]
    fitted = load_thresholds()
    started = time.perf_counter()
    progress("starting the local model servers (first run downloads ~1.7 GB)...")
    rows: list[Row] = []
    with LocalModels(TIERS) as models:
        tiers = tier_models(models)
        cascade = build_cascade(tiers, fitted)
        monitor = CascadeMonitor(escalation_warning=None)
        prices = example_prices()
        for i, question in enumerate(questions, 1):
            messages = [("system", SYSTEM_PROMPT), ("human", question.text)]
            progress(f"[{i}/{len(questions)}] cascade: {question.text[:60]}")
            t0 = time.perf_counter()
            answer = cascade.invoke(messages, {"callbacks": [monitor]})
            latency = time.perf_counter() - t0
            progress(f"[{i}/{len(questions)}] strongest alone: {question.text[:52]}")
            t0 = time.perf_counter()
            strong = tiers[-1].invoke(messages)
            strong_latency = time.perf_counter() - t0
            usage = answer.usage_metadata or {"total_tokens": 0}
            rows.append(
                Row(
                    question=question,
                    answer=answer.text.strip(),
                    meta=answer.response_metadata["cascade"],
                    tokens=usage["total_tokens"],
                    latency_s=latency,
                    correct=is_correct(answer.text, question.answer),
                    strong_answer=strong.text.strip(),
                    strong_correct=is_correct(strong.text, question.answer),
                    strong_cost=price_of(prices, TIERS[-1], strong.usage_metadata),
                    strong_latency_s=strong_latency,
                )
            )
    progress("")
    sys.stderr.write("\r\033[K")
    report(rows, fitted, time.perf_counter() - started)
    print("\nMonitor summary (CascadeMonitor):")
    print(monitor.summary())
    return 0


def report(rows: list[Row], fitted: dict[str, Any], wall_s: float) -> None:
    prices = ", ".join(
        f"{SHORT[m]} ${i}/${o}" for m, (i, o) in EXAMPLE_PRICES_PER_MILLION.items()
    )
    print(
        "Cascade SmolLM2-135M -> Qwen2.5-Coder-0.5B -> Qwen2.5-Coder-1.5B "
        "(local, xllamacpp, 2 CPU threads)"
    )
    print(
        f"Gates: hedging + length rules, then logprob {fitted['aggregation']} >= "
        f"{', '.join(f'{t:.3f}' for t in fitted['thresholds'])} (fitted on "
        f"{fitted['fitted_on']}); review gate flags final answers below "
        f"{fitted['review_threshold']:.3f}"
    )
    print(f"Example prices per 1M tokens (in/out): {prices}\n")
    body = [
        [
            str(n),
            r.question.text
            if len(r.question.text) <= 44
            else r.question.text[:41] + "...",
            r.question.answer,
            (r.answer if len(r.answer) <= 16 else r.answer[:13] + "...").replace(
                "\n", " "
            ),
            "yes" if r.correct else "NO",
            f"{r.meta['tier']} {SHORT[r.meta['model']]}"
            + (" (review)" if r.meta["needs_review"] else ""),
            verdicts(r.meta),
            str(r.tokens),
            f"{r.latency_s:.2f}s",
            money(r.meta["cost"]["total"]),
        ]
        for n, r in enumerate(rows, 1)
    ]
    header = [
        "#",
        "question",
        "expected",
        "answer",
        "right",
        "answered by",
        "gates (score verdict)",
        "tokens",
        "latency",
        "cost",
    ]
    print(table(body, header))

    n = len(rows)
    cascade_cost = [r.meta["cost"]["total"] for r in rows]
    strong_cost = [r.strong_cost for r in rows]
    total_cascade = (
        None if None in cascade_cost else sum(c for c in cascade_cost if c is not None)
    )
    total_strong = (
        None if None in strong_cost else sum(c for c in strong_cost if c is not None)
    )
    escalated = sum(r.meta["escalated"] for r in rows)
    by_tier = [sum(r.meta["tier"] == t for r in rows) for t in range(len(TIERS))]
    totals = [
        [
            "cascade",
            f"{sum(r.correct for r in rows)}/{n}",
            money(total_cascade),
            f"{sum(r.latency_s for r in rows):.1f}s",
            f"{escalated}/{n} ({escalated / n:.0%})",
            " / ".join(str(c) for c in by_tier),
        ],
        [
            "Qwen-1.5B alone",
            f"{sum(r.strong_correct for r in rows)}/{n}",
            money(total_strong),
            f"{sum(r.strong_latency_s for r in rows):.1f}s",
            "-",
            f"0 / 0 / {n}",
        ],
    ]
    print("\nTotals")
    print(
        table(
            totals,
            [
                "",
                "accuracy",
                "cost",
                "latency (sum)",
                "escalated",
                "answered by tier 0/1/2",
            ],
        )
    )
    if total_cascade is not None and total_strong:
        print(
            f"\nCost: the cascade spent {total_cascade / total_strong:.0%} of always asking Qwen-1.5B."
        )
    print(
        f"Wall time {wall_s:.0f}s, including server start and the strongest-alone comparison."
    )


if __name__ == "__main__":
    raise SystemExit(main())
