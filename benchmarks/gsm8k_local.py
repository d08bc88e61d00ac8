"""GSM8K on the real local models: a 2-tier logprob-gated cascade.

Qwen2.5-Coder-0.5B -> Qwen2.5-Coder-1.5B solve grade-school maths problems
(``gsm8k/test.jsonl``; the gold number follows ``####``). Both tiers answer
every problem once (train and test); gate candidates are ``LogprobGate``
aggregations (quantile, min_prob, geometric_mean), alone and combined with a
format rule (``all_of(RegexGate("Answer: <number>"), LogprobGate)``). Thresholds
are fitted on train with ``calibrate``, replayed on test with
``evaluate_thresholds``, and the real ``CascadingChatModel`` answers the first
``--n-live`` test problems to confirm the replay.

SmolLM2-135M is not a tier: it only answers ``--smollm-probe`` train problems,
to show that it cannot solve them (a tier that is never right only adds cost).

Run (writes ``benchmarks/results/gsm8k_local.*``)::

    python -m benchmarks.gsm8k_local [--n-test 100] [--n-train 50] [--max-tokens 128]
    python -m benchmarks.gsm8k_local --from-cache   # re-analyse without the models
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from numpy.typing import NDArray

from benchmarks import common
from benchmarks.common import (
    NO_SCORE,
    PRICE_NOTE,
    SHORT_NAMES,
    Analysis,
    Answers,
    FloatArray,
    Query,
    fmt_seconds,
    logprob_scores,
    markdown_table,
    pct,
)
from langchain_cascade._numeric import json_float
from langchain_cascade.gates import LogprobGate, RegexGate, all_of
from langchain_cascade.gates.base import Gate
from langchain_cascade.gates.logprob import Aggregation
from langchain_cascade.gates.numbers import last_number, parse_number

NAME = "gsm8k_local"
MODELS = ("qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b")
PROBE_MODEL = "smollm2-135m"
INSTRUCTION = (
    "Solve the math word problem briefly: a few short lines of arithmetic, no code, "
    "no LaTeX. End with 'Answer: <number>'."
)
# One invented worked example (not from GSM8K) showing the expected brevity:
# without it both Qwen models wrote 160+ tokens of prose, LaTeX or Python and
# almost never the 'Answer:' line. The shared prefix stays in the servers'
# prompt cache, so it costs (example-priced) input tokens but little time.
SHOT = (
    "A shop sells pens at $3 each. Mia buys 4 pens and pays with a $20 bill. "
    "How much change does she get?",
    "4 pens cost 4 * 3 = 12 dollars.\nChange: 20 - 12 = 8 dollars.\nAnswer: 8",
)
FORMAT_PATTERN = r"Answer:\s*\**\s*\$?\s*-?\d[\d,]*(?:\.\d+)?"
QUANTILE = 0.1


@dataclass(frozen=True)
class Candidate:
    """A gate candidate: a logprob aggregation, optionally behind the format rule."""

    aggregation: Aggregation
    with_format: bool

    @property
    def name(self) -> str:
        agg = self.recorded_as
        return f"all_of(format, {agg})" if self.with_format else agg

    def logprob_gate(self, threshold: float) -> LogprobGate:
        return LogprobGate(
            threshold=threshold, aggregation=self.aggregation, quantile=QUANTILE
        )

    def gate(self, threshold: float) -> Gate:
        """The live gate for a threshold in [0, 1]."""
        if not self.with_format:
            return self.logprob_gate(threshold)
        return all_of(format_gate(), self.logprob_gate(threshold))

    @property
    def recorded_as(self) -> str:
        """The name of its logprob gate among the recorded gates."""
        return (
            f"quantile({QUANTILE:g})"
            if self.aggregation == "quantile"
            else self.aggregation
        )

    def scores(self, answers: Answers) -> FloatArray:
        """Replay score: the logprob score; ``NO_SCORE`` when the format fails.

        ``all_of(format, LogprobGate(t))`` passes exactly when the format rule
        passes and the logprob score is at least ``t``: with thresholds in
        [0, 1] this is ``replay score >= t``.
        """
        scores = logprob_scores(answers, self.recorded_as)
        if not self.with_format:
            return scores
        return np.where(has_format(answers), scores, NO_SCORE)


CANDIDATES = tuple(
    Candidate(agg, fmt)
    for fmt in (False, True)
    for agg in ("quantile", "min_prob", "geometric_mean")
)


def format_gate() -> RegexGate:
    return RegexGate(pattern=FORMAT_PATTERN, description="an 'Answer: <number>'")


RECORDED: dict[str, Gate] = {
    "format": format_gate(),
    **{c.recorded_as: c.logprob_gate(0.0) for c in CANDIDATES if not c.with_format},
}
"""What collect records on every answer: the format rule and each logprob score."""


def build_messages(question: str) -> list[BaseMessage]:
    """System instruction, the worked example as chat turns, then the problem."""
    return [
        SystemMessage(INSTRUCTION),
        HumanMessage(SHOT[0]),
        AIMessage(SHOT[1]),
        HumanMessage(question),
    ]


def gold_number(answer: str) -> str:
    return answer.rsplit("####", 1)[1].strip()


def has_format(answers: Answers) -> NDArray[np.bool_]:
    """Which answers have the 'Answer: <number>' line the prompt asks (recorded)."""
    return answers.data.candidate_scores["format"] >= 1.0


def load_problems(
    data_dir: Path, n_test: int, n_train: int
) -> tuple[list[Query], list[Query]]:
    """Test: problems 0..n_test-1; train: the next n_train problems."""
    path = data_dir / "gsm8k" / "test.jsonl"
    rows = [
        json.loads(line)
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    if len(rows) < n_test + n_train:
        msg = f"{path} has {len(rows)} problems, {n_test + n_train} asked"
        raise SystemExit(msg)

    def query(split: str, i: int) -> Query:
        row = rows[i]
        return Query(
            split, str(i), build_messages(row["question"]), gold_number(row["answer"])
        )

    test = [query("test", i) for i in range(n_test)]
    train = [query("train", i) for i in range(n_test, n_test + n_train)]
    return train, test


def chat_kwargs(max_tokens: int) -> dict[str, Any]:
    return {"temperature": 0, "max_tokens": max_tokens, "logprobs": True}


class Gsm8kLocal:
    """The GSM8K benchmark for the skeleton in :mod:`benchmarks.common`."""

    name = NAME
    title = "GSM8K, local 2-tier cascade"
    what = "problems"
    models = MODELS
    also_served = (PROBE_MODEL,)
    recorded = RECORDED
    candidates = CANDIDATES
    tag_key = "gate"

    def queries(self, args: argparse.Namespace, data_dir: Path) -> list[Query]:
        train, test = load_problems(data_dir, args.n_test, args.n_train)
        return train + test

    def grade(self, answer: str, gold: str) -> bool:
        """The last number of the answer equals the gold number."""
        value = last_number(answer)
        return value is not None and value == parse_number(gold)

    def fingerprint(self, args: argparse.Namespace) -> str:
        blob = json.dumps(
            {
                "instruction": INSTRUCTION,
                "shot": SHOT,
                "kwargs": chat_kwargs(args.max_tokens),
            },
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def chat_kwargs(self, args: argparse.Namespace) -> dict[str, Any]:
        return chat_kwargs(args.max_tokens)

    def report(self, a: Analysis, data_dir: Path) -> tuple[dict[str, Any], list[str]]:
        return report(a)


def probe(
    chats: Mapping[str, BaseChatModel],
    queries: Sequence[Query],
    live_path: Path,
    *,
    n: int,
    fingerprint: str,
) -> dict[str, Any]:
    """SmolLM2 answers the first ``n`` train problems; one ``probe`` record each."""
    started = time.perf_counter()
    grade = Gsm8kLocal().grade
    for query in [q for q in queries if q.split == "train"][:n]:
        answer = chats[PROBE_MODEL].invoke(query.messages)
        common.append_jsonl(
            live_path,
            {
                "kind": "probe",
                "fingerprint": fingerprint,
                "qid": query.qid,
                "answer": answer.text,
                "correct": grade(answer.text, query.gold),
            },
        )
    return {"probe_s": time.perf_counter() - started}


def probe_records(a: Analysis) -> list[dict[str, Any]]:
    """SmolLM2's answers to the first train problems (the last probe's; empty when none)."""
    found = {
        r["qid"]: r
        for r in common.read_jsonl(a.files.live)
        if r.get("kind") == "probe"
        and r.get("fingerprint") == Gsm8kLocal().fingerprint(a.args)
    }
    train = [a.answers.queries[i].qid for i in a.answers.rows("train")]
    return [found[q] for q in train[: a.args.smollm_probe] if q in found]


def report(a: Analysis) -> tuple[dict[str, Any], list[str]]:
    """The GSM8K summary and markdown."""
    ev, args = a.ev, a.args
    n_train, n_test = len(a.train.qids), len(a.test.qids)
    tokens = {m: a.answers.feature("output_tokens", m) for m in MODELS}
    out_tokens = {m: float(t.mean()) for m, t in tokens.items()}
    truncated = {m: float((t >= args.max_tokens).mean()) for m, t in tokens.items()}
    formatted = dict(
        zip(MODELS, map(float, has_format(a.answers).mean(axis=0)), strict=True)
    )
    tier0_share = float(a.test.costs[:, 0].mean()) / a.top_cost
    points = [
        common.operating_point(
            a.answers, CANDIDATES, MODELS, retain=retain, rule=rule, key="gate"
        )
        for retain, rule in ((1.0, "no loss"), (0.95, "95%"))
    ]
    probe = probe_records(a)
    probe_acc = (
        sum(bool(r["correct"]) for r in probe) / len(probe) if probe else math.nan
    )
    single = common.single_tiers(a)
    for m in MODELS:
        single[m] |= {
            "mean_output_tokens": out_tokens[m],
            "share_cut_at_max_tokens": truncated[m],
            "share_with_answer_format": formatted[m],
        }
    summary = common.summary(
        a,
        "GSM8K on local models",
        {
            "data": {
                "test": f"gsm8k/test.jsonl problems 0-{n_test - 1}",
                "train": f"gsm8k/test.jsonl problems {n_test}-{n_test + n_train - 1}",
            },
            "prompt": {
                "system": INSTRUCTION,
                "example": list(SHOT),
                "chat_kwargs": chat_kwargs(args.max_tokens),
            },
            "format_rule": FORMAT_PATTERN,
            "single_tiers": single,
            "operating_points": points,
            "tier0_cost_share_of_top_tier": tier0_share,
            "smollm2_probe": {
                "n": len(probe),
                "accuracy": json_float(probe_acc),
                "problems": "the first train problems",
            },
        },
    )
    run = a.run
    lines = [
        "# GSM8K on the local models",
        "",
        common.produced_by(a, "benchmarks.gsm8k_local"),
        "",
        "**Setup.** 2-tier cascade Qwen2.5-Coder-0.5B -> Qwen2.5-Coder-1.5B (Q4 GGUF, "
        "xllamacpp, 1 CPU thread per server). Test: GSM8K test problems "
        f"0-{n_test - 1}; train (threshold fitting): problems {n_test}-"
        f'{n_test + n_train - 1}. Prompt: system "{INSTRUCTION}", one invented '
        "worked example (3 short lines ending 'Answer: 8'), then the problem; "
        f"temperature 0, max_tokens {args.max_tokens}, logprobs. Correct = the last "
        "number of the answer equals the gold number after `####`. Both tiers answered "
        "every problem once.",
        "",
        f"**Fit.** `calibrate(min_quality=target)` on train, target = the best single "
        f"tier's train accuracy ({pct(a.fitted.target)}). Gate candidates: `LogprobGate` "
        f"quantile({QUANTILE:g}) / min_prob / geometric_mean, alone and as "
        "`all_of(RegexGate('Answer: <number>'), LogprobGate)`; the candidate is picked "
        "on train only (lowest train cost at the target, ties -> higher APGR). "
        "Thresholds replayed on test with `evaluate_thresholds`.",
        "",
        f"**Prices.** {PRICE_NOTE}",
        "",
        f"## Test set ({n_test} problems)",
        "",
        common.tiers_table(a, latency_digits=1),
        "",
        common.headline_sentence(a),
        "",
        (
            f"**Why no saving.** A 0.5B call costs {pct(tier0_share)} of a 1.5B call "
            "here (example prices; the 0.5B also writes longer answers), and every "
            "query pays it: the cascade saves money only if it stops at the 0.5B on "
            f"more than {pct(tier0_share)} of queries, but the 0.5B is right on only "
            f"{pct(float(a.train.correct[:, 0].mean()))} of train problems. At the "
            "no-loss target the cheapest cascade therefore costs more than the 1.5B "
            "alone, which is the better choice on this pair."
            if ev.cost > a.top_cost
            else f"A 0.5B call costs {pct(tier0_share)} of a 1.5B call here."
        ),
        "",
        markdown_table(
            ["tier", "mean output tokens", "cut at max_tokens", "has 'Answer: <n>'"],
            [
                [
                    SHORT_NAMES[m],
                    f"{out_tokens[m]:.0f}",
                    pct(truncated[m]),
                    pct(formatted[m]),
                ]
                for m in MODELS
            ],
        ),
        "",
        "## Gate candidates (fitted on train, then replayed on test)",
        "",
        common.candidates_table(a, CANDIDATES),
        "",
        f"Train frontier: `{NAME}_frontier.png`; the train-frontier thresholds "
        f"replayed on test: `{NAME}_test.png`.",
        "",
        "## Other operating points (same cached answers, fitted on train, on test)",
        "",
        "*95%* = keep at least 95% of the best single tier's train accuracy (the "
        "quality-retention level RouteLLM reports)."
        + (
            f" Both rules pick the same policy: with {n_train} train problems "
            f"accuracy moves in {100 / n_train:.0f}-point steps, so the 95% target "
            "needs the same number of right answers."
            if points[0]["thresholds"] == points[1]["thresholds"]
            and points[0]["gate"] == points[1]["gate"]
            else ""
        ),
        "",
        common.points_table(points, "gate"),
        "",
        *common.live_section(a.live_cmp, "problems"),
        "## Why SmolLM2-135M is not tier 0",
        "",
        f"On the first {len(probe)} train problems (same prompt and settings) it "
        f"answered {pct(probe_acc)} correctly. A tier 0 that is almost never right "
        "adds its cost and latency to nearly every query and cannot let the cascade "
        "stop early, so it is left out."
        if probe
        else "Not probed in this run.",
        "",
        *common.wall_time_section(
            a,
            [
                [
                    f"{SHORT_NAMES[PROBE_MODEL]}: {len(probe)} problems (the probe)",
                    fmt_seconds(run["probe_s"]),
                ]
            ]
            if "probe_s" in run
            else [],
        ),
        "## For context (different models)",
        "",
        "RouteLLM (arXiv 2406.18665), as summarised in the data README: on GSM8K its "
        "best routers between Mixtral-8x7B and GPT-4 cut GPT-4 calls by about 35% while "
        "keeping 95% of GPT-4's quality.",
        "",
    ]
    return summary, lines


def main() -> None:
    parser = common.arguments(__doc__.split("\n\n")[0])
    parser.add_argument("--n-test", type=int, default=100)
    parser.add_argument("--n-train", type=int, default=50)
    parser.add_argument("--n-live", type=int, default=15)
    parser.add_argument("--smollm-probe", type=int, default=10)
    parser.add_argument("--max-tokens", type=int, default=128)
    args = parser.parse_args()
    spec = Gsm8kLocal()

    def before(
        chats: Mapping[str, BaseChatModel], queries: Sequence[Query], live: Path
    ) -> dict[str, Any]:
        return probe(
            chats,
            queries,
            live,
            n=args.smollm_probe,
            fingerprint=spec.fingerprint(args),
        )

    common.run(spec, args, before=before)


if __name__ == "__main__":
    main()
