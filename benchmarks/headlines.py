"""FrugalGPT HEADLINES on the real local models: a 3-tier logprob-gated cascade.

SmolLM2-135M -> Qwen2.5-Coder-0.5B -> Qwen2.5-Coder-1.5B classify gold-price news
headlines as up / down / neutral / none (FrugalGPT's HEADLINES task, data in
``frugalgpt-headlines/``). Every tier answers every headline once (train and
test); a ``LogprobGate`` scores each answer from its token logprobs; thresholds
are fitted on train with ``calibrate`` and replayed on test with
``evaluate_thresholds``; the real ``CascadingChatModel`` with the fitted gates
then answers the first ``--n-live`` test headlines to confirm the replay.

Run (about 15-20 min on 2 cores; writes ``benchmarks/results/headlines.*``)::

    python -m benchmarks.headlines [--n-train 150] [--n-test 300] [--n-live 50]
    python -m benchmarks.headlines --from-cache   # re-analyse without the models
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

from benchmarks import common
from benchmarks.common import (
    PRICE_NOTE,
    Analysis,
    Answers,
    FloatArray,
    Query,
    logprob_scores,
    markdown_table,
    money,
    pct,
)
from langchain_cascade.gates import Gate, LogprobGate
from langchain_cascade.gates.logprob import Aggregation

NAME = "headlines"
MODELS = ("smollm2-135m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b")
LABELS = ("up", "down", "neutral", "none")
CHAT_KWARGS: dict[str, Any] = {
    "temperature": 0,
    "max_tokens": 3,
    "logprobs": True,
    "top_logprobs": 5,
}

INSTRUCTION = (
    "Classify the gold-market news headline by what it says about the gold price. "
    "Reply with one word: up (the price rose), down (the price fell), neutral "
    "(the price was steady or little changed) or none (no price move reported)."
)
# Four invented examples (not from the data set), one per label. Without them
# SmolLM2-135M never answered with a label (0/20 in a probe on train); the
# shared prefix stays in each server's prompt cache, so they cost no time.
SHOTS = (
    ("Gold jumps 2% as the dollar weakens", "up"),
    ("Gold slides to a two-week low after strong jobs data", "down"),
    ("Gold holds steady ahead of the central bank meeting", "neutral"),
    ("Miner reports record quarterly output at its gold mine", "none"),
)

FRUGALGPT_ROWS = (
    ("gpt-4-turbo", None),
    ("gpt-4o-mini", None),
    ("gemini-1.5-flash", None),
    ("gemini-1.5-flash-8b", None),
    ("Meta-Llama-3-70B-Instruct-Turbo", None),
    ("FrugalGPT", 0),
    ("FrugalGPT", 1),
    ("FrugalGPT", 7),
)


@dataclass(frozen=True)
class LogprobCandidate:
    """A ``LogprobGate`` aggregation as a gate candidate."""

    aggregation: Aggregation

    @property
    def name(self) -> str:
        return self.aggregation

    def gate(self, threshold: float) -> LogprobGate:
        return LogprobGate(threshold=threshold, aggregation=self.aggregation)

    def scores(self, answers: Answers) -> FloatArray:
        return logprob_scores(answers, self.name)


CANDIDATES = (
    LogprobCandidate("first_token_margin"),
    LogprobCandidate("geometric_mean"),
)
RECORDED: dict[str, Gate] = {c.name: c.gate(0.0) for c in CANDIDATES}
"""What collect records on every answer: each candidate's score."""

_WORD = re.compile(r"[a-z]+")


def build_messages(headline: str) -> list[BaseMessage]:
    """The prompt: instruction, four examples as chat turns, then the headline."""
    messages: list[BaseMessage] = [SystemMessage(INSTRUCTION)]
    for text, label in SHOTS:
        messages += [HumanMessage(f"Headline: {text}"), AIMessage(label)]
    messages.append(HumanMessage(f"Headline: {headline}"))
    return messages


def headline_text(raw: str) -> str:
    """``"Q: <headline>\\nA:"`` -> ``"<headline>"``."""
    text = raw.strip()
    text = text.removeprefix("Q:").strip()
    return text.removesuffix("A:").strip()


def load_split(data_dir: Path, split: str, n: int) -> list[Query]:
    """The first ``n`` rows of ``train.csv`` / ``test.csv`` (the files are shuffled)."""
    path = data_dir / "frugalgpt-headlines" / f"{split}.csv"
    queries: list[Query] = []
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.reader(handle):
            if len(queries) == n:
                break
            raw, label, qid = row[0], row[1].strip().lower(), row[2]
            queries.append(Query(split, qid, build_messages(headline_text(raw)), label))
    if len(queries) < n:
        msg = f"{path} has only {len(queries)} rows, {n} asked"
        raise SystemExit(msg)
    return queries


def normalise_label(text: str) -> str | None:
    """The label an answer gives: its first word, lower-cased, if it is a label.

    ``" Up."``, ``"up\\n"`` and ``"UP - gold rose"`` all read ``"up"``;
    ``"The headline is"`` reads ``None``.
    """
    match = _WORD.search(text.lower())
    if match is None:
        return None
    word = match.group(0)
    return word if word in LABELS else None


def frugalgpt_rows(data_dir: Path) -> list[dict[str, Any]]:
    path = data_dir / "frugalgpt-headlines" / "summary_HEADLINES_e8_full_2024.csv"
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    out = []
    for method, index in FRUGALGPT_ROWS:
        for row in rows:
            if row["Method"] == method and (index is None or row[""] == str(index)):
                out.append(
                    {
                        "method": method,
                        "provider": row["Provider"],
                        "budget": float(row["Budget"])
                        if method == "FrugalGPT"
                        else None,
                        "test_acc": float(row["Test_acc"]),
                        "test_cost": float(row["Test_cost"]),
                    }
                )
                break
    return out


class Headlines:
    """The HEADLINES benchmark for the skeleton in :mod:`benchmarks.common`."""

    name = NAME
    title = "HEADLINES, local 3-tier cascade"
    what = "headlines"
    models = MODELS
    also_served = ()
    recorded = RECORDED
    candidates = CANDIDATES
    tag_key = "aggregation"

    def queries(self, args: argparse.Namespace, data_dir: Path) -> list[Query]:
        return load_split(data_dir, "train", args.n_train) + load_split(
            data_dir, "test", args.n_test
        )

    def grade(self, answer: str, gold: str) -> bool:
        """Normalised label match."""
        return normalise_label(answer) == gold

    def fingerprint(self, args: argparse.Namespace) -> str:
        blob = json.dumps(
            {"instruction": INSTRUCTION, "shots": SHOTS, "kwargs": CHAT_KWARGS},
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def chat_kwargs(self, args: argparse.Namespace) -> dict[str, Any]:
        return CHAT_KWARGS

    def report(self, a: Analysis, data_dir: Path) -> tuple[dict[str, Any], list[str]]:
        return report(a, data_dir)


def operating_points(answers: Answers) -> list[dict[str, Any]]:
    """Both target rules, with and without SmolLM2, fitted on train, on test."""
    return [
        {
            "tiers": " -> ".join(m.rsplit("-", 1)[-1].upper() for m in models),
            "models": list(models),
            **common.operating_point(
                answers, CANDIDATES, models, retain=retain, rule=rule, key="aggregation"
            ),
        }
        for models in (MODELS, MODELS[1:])
        for retain, rule in ((1.0, "no loss"), (0.95, "95%"))
    ]


def report(a: Analysis, data_dir: Path) -> tuple[dict[str, Any], list[str]]:
    """The HEADLINES summary and markdown."""
    n_train, n_test = len(a.train.qids), len(a.test.qids)
    points = operating_points(a.answers)
    fg = frugalgpt_rows(data_dir)
    summary = common.summary(
        a,
        "FrugalGPT HEADLINES on local models",
        {
            "data": {
                "train": f"first {n_train} rows of frugalgpt-headlines/train.csv",
                "test": f"first {n_test} rows of frugalgpt-headlines/test.csv",
            },
            "prompt": {
                "instruction": INSTRUCTION,
                "shots": [list(s) for s in SHOTS],
                "chat_kwargs": CHAT_KWARGS,
            },
            "single_tiers": common.single_tiers(a),
            "operating_points": points,
            "frugalgpt_published": fg,
        },
    )
    lines = [
        "# FrugalGPT HEADLINES on the local models",
        "",
        common.produced_by(a, "benchmarks.headlines"),
        "",
        "**Setup.** 3-tier cascade SmolLM2-135M -> Qwen2.5-Coder-0.5B -> Qwen2.5-Coder-1.5B "
        "(Q4 GGUF, xllamacpp, 1 CPU thread per server). "
        f"Train: first {n_train} rows of `train.csv`; test: first {n_test} rows of `test.csv` "
        "(both files are shuffled). Every tier answered every headline once "
        "(temperature 0, max_tokens 3, logprobs with top_logprobs 5); correctness = "
        "first word of the answer, lower-cased, equals the label. Prompt: an instruction "
        "listing the 4 labels, 4 invented one-line examples (one per label: without them "
        "SmolLM2 never answered with a label), then the headline.",
        "",
        f"**Fit.** `calibrate(min_quality=target)` on train, target = the best single "
        f"tier's train accuracy ({pct(a.fitted.target)}): the cheapest cascade that loses nothing "
        "against the best single model on train. Gate = `LogprobGate`; the aggregation "
        "is picked on train only (lowest train cost at the target, ties -> higher APGR). "
        "Thresholds replayed on test with `evaluate_thresholds`.",
        "",
        f"**Prices.** {PRICE_NOTE}",
        "",
        f"## Test set ({n_test} headlines)",
        "",
        common.tiers_table(a, latency_digits=2),
        "",
        common.headline_sentence(a),
        "",
        "## Gate candidates (fitted on train, then replayed on test)",
        "",
        common.candidates_table(a, CANDIDATES),
        "",
        f"Train frontier: `{NAME}_frontier.png`; the train-frontier thresholds replayed "
        f"on test: `{NAME}_test.png`.",
        "",
        "## Other operating points (same cached answers, fitted on train, replayed on test)",
        "",
        "Rules: *no loss* = the primary rule above; *95%* = keep at least 95% of the "
        "best single tier's train accuracy (the quality-retention level RouteLLM "
        "reports). The 2-tier rows drop SmolLM2 (an ablation computed from the same "
        "answers, no extra model calls). Cost change is against the 1.5B alone on test.",
        "",
        common.points_table(points, "aggregation"),
        "",
        *common.live_section(a.live_cmp, "headlines"),
        *common.wall_time_section(a),
        "## For context: FrugalGPT's published HEADLINES results (different models, same task)",
        "",
        "From `frugalgpt-headlines/summary_HEADLINES_e8_full_2024.csv` (FrugalGPT, "
        "Chen, Zaharia & Zou, arXiv 2305.05176; 2024 models, full 5,000-headline test "
        "split, real API prices per query):",
        "",
        markdown_table(
            ["method", "provider", "test acc", "test cost / query"],
            [
                [
                    row["method"]
                    + (
                        f" (budget ${row['budget']:.3g})"
                        if row["budget"] is not None
                        else ""
                    ),
                    row["provider"],
                    f"{row['test_acc']:.4f}",
                    money(row["test_cost"]),
                ]
                for row in fg
            ],
        ),
        "",
        "Not comparable head to head: different (much larger) models, real API prices "
        f"instead of example ones, and {n_test} instead of 5,000 test headlines.",
        "",
    ]
    return summary, lines


def main() -> None:
    parser = common.arguments(__doc__.split("\n\n")[0])
    parser.add_argument("--n-train", type=int, default=150)
    parser.add_argument("--n-test", type=int, default=300)
    parser.add_argument("--n-live", type=int, default=50)
    common.run(Headlines(), parser.parse_args())


if __name__ == "__main__":
    main()
