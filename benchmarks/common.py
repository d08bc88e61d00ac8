"""The skeleton of the benchmarks on the real local models, and what they share.

``headlines.py`` and ``gsm8k_local.py`` are one method on two data sets, built
on the package: :func:`~langchain_cascade.collect.collect` runs every query
through the cascade's own decision loop with every gate a recorder, so every
tier answers once, priced by the cascade's price table, and the gates a
benchmark names (``Spec.recorded``) score every answer; the records are cached
in a JSONL file that a rerun resumes. Each gate candidate reads its replay
scores from those verdicts; thresholds are fitted on the train split with
:func:`langchain_cascade.calibrate` and replayed on the test split with
:func:`~langchain_cascade.calibration.evaluate_thresholds`; a subset of the test
split is then answered by the real ``CascadingChatModel`` with the fitted gates,
to check that the replay matches the live cascade.

A benchmark supplies a :class:`Spec` (its models, the gates to record, the
candidates, queries, grading and prose); :func:`run` does the rest. Costs come
from the package's example price table
(``langchain_cascade.local_models.example_prices``); the train frontier is
drawn by :func:`~langchain_cascade.calibration.plot_frontier`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from numpy.typing import NDArray

from langchain_cascade import CascadingChatModel
from langchain_cascade._numeric import json_float
from langchain_cascade.calibration import (
    CalibrationResult,
    PolicyEvaluation,
    calibrate,
    evaluate_thresholds,
    plot_frontier,
    plot_held_out,
)
from langchain_cascade.collect import (
    CollectedScores,
    TierRecord,
    collect,
    input_hash,
)
from langchain_cascade.collect import read_jsonl as collect_jsonl
from langchain_cascade.gates.base import Gate, GateInput
from langchain_cascade.local_models import example_prices
from langchain_cascade.pricing import ModelPrice

DATA_ENV_VAR = "CASCADE_DATA_DIR"
REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"

EXAMPLE_PRICES: dict[str, ModelPrice] = example_prices()
"""The local models' EXAMPLE price table (see ``langchain_cascade.local_models``)."""

PRICE_NOTE = (
    "Costs use the EXAMPLE price table (the models run locally for free; the "
    "prices are each model's measured compute on this machine, seconds per input "
    "and per output token at $1 per hour), in $ per 1M tokens in/out: "
    + ", ".join(
        f"{name} {p.input_per_million:g}/{p.output_per_million:g}"
        for name, p in EXAMPLE_PRICES.items()
    )
    + ". Cost per query = input_tokens x in-price + output_tokens x out-price."
)

COST_LABEL = "Mean cost per query ($, example prices)"

SHORT_NAMES = {
    "smollm2-135m": "SmolLM2-135M",
    "qwen2.5-coder-0.5b": "Qwen2.5-Coder-0.5B",
    "qwen2.5-coder-1.5b": "Qwen2.5-Coder-1.5B",
}

FloatArray = NDArray[np.float64]


# --------------------------------------------------------------------------- data


def resolve_data_dir(cli_value: str | None = None) -> Path:
    """The benchmark data directory.

    Order: ``--data-dir``, then ``$CASCADE_DATA_DIR``, then ``../shared/data``
    relative to the repository root.
    """
    raw = cli_value or os.environ.get(DATA_ENV_VAR)
    path = Path(raw).expanduser() if raw else REPO_ROOT.parent / "shared" / "data"
    path = path.resolve()
    if not path.is_dir():
        msg = (
            f"data directory {path} does not exist: pass --data-dir or set "
            f"{DATA_ENV_VAR}"
        )
        raise SystemExit(msg)
    return path


WRITTEN_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
"""A number as an answer writes it: an optional minus, digits (commas among them
allowed) and optional decimals."""


def written_numbers(text: str) -> list[str]:
    """The numbers written in ``text`` (``WRITTEN_NUMBER``), in order, commas dropped.

    >>> written_numbers("6 notebooks cost $1,200.50, not -3.")
    ['6', '1200.50', '-3']
    """
    return [raw.replace(",", "") for raw in WRITTEN_NUMBER.findall(text)]


def regenerate_command(
    module: str, argv: Sequence[str], machine_options: Sequence[str]
) -> str:
    """The command that made a report, without the options naming this machine.

    ``machine_options`` (``--base-url``, ``--data-dir``...) are dropped with
    their values, written ``--opt value`` or ``--opt=value``.

    >>> regenerate_command("benchmarks.x", ["--n", "5", "--data-dir", "/d"], ["--data-dir"])
    '.venv/bin/python -m benchmarks.x --n 5'
    """
    kept: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in machine_options:
            skip = True
            continue
        if arg.startswith(tuple(f"{o}=" for o in machine_options)):
            continue
        kept.append(arg)
    return " ".join([f".venv/bin/python -m {module}", *kept])


def regenerate_block(command: str) -> list[str]:
    """A report's "Regenerate:" lines: ``command`` in a bash block.

    >>> regenerate_block("make x")
    ['Regenerate:', '', '```bash', 'make x', '```']
    """
    return ["Regenerate:", "", "```bash", command, "```"]


@dataclass(frozen=True)
class Query:
    """One benchmark item."""

    split: str
    qid: str
    messages: list[BaseMessage]
    gold: str


Grader = Callable[[str, str], bool]


# --------------------------------------------------------------------------- files


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The records of a JSONL file (empty when it does not exist)."""
    if not path.exists():
        return []
    records = []
    with path.open(encoding="utf-8") as handle:
        for raw in handle:
            line = raw.strip()
            if line:
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:  # a line cut by an interrupted run
                    continue
    return records


def append_jsonl(path: Path, record: Mapping[str, Any]) -> None:
    """Append one record and flush it, so an interrupted run can resume."""
    line = json.dumps(record, ensure_ascii=False) + "\n"
    with path.open("a", encoding="utf-8") as handle:
        handle.write(line)
        handle.flush()


def write_json(path: Path, obj: Any) -> None:
    """Write JSON without NaN (``allow_nan=False``)."""
    path.write_text(
        json.dumps(obj, indent=2, allow_nan=False, ensure_ascii=False) + "\n",
        encoding="utf-8",
    )


# --------------------------------------------------------------------------- answers


@dataclass(frozen=True)
class Answers:
    """Every tier's answer to every query, as :func:`~langchain_cascade.collect.collect` recorded it.

    ``data`` holds collect's ``(queries, tiers)`` arrays, rows in query order;
    ``tiers`` each query's tier records (answer text, candidate verdicts).
    """

    queries: Sequence[Query]
    data: CollectedScores
    tiers: Sequence[tuple[TierRecord, ...]]

    @classmethod
    def read(cls, path: Path, queries: Sequence[Query]) -> Answers:
        """The answers collected in ``path``; exits when one query lacks them."""
        hashes = [input_hash(q.messages) for q in queries]
        found = {r.index: r for r in collect_jsonl(path)} if path.exists() else {}
        missing = [
            i
            for i, h in enumerate(hashes)
            if i not in found or found[i].input_hash != h
        ]
        if missing:
            msg = (
                f"{path} lacks the answers to {len(missing)} of {len(queries)} "
                "queries for these settings: run without --from-cache first"
            )
            raise SystemExit(msg)
        ordered = [found[i] for i in range(len(queries))]
        return cls(
            queries, CollectedScores.from_records(ordered), [r.tiers for r in ordered]
        )

    @property
    def models(self) -> tuple[str, ...]:
        """The tiers' model names, cheapest first."""
        return self.data.model_names

    def rows(self, split: str) -> list[int]:
        """The rows of one split, in query order."""
        return [i for i, q in enumerate(self.queries) if q.split == split]

    def row_of(self, split: str, qid: str) -> int:
        """The row of one query."""
        return next(
            i for i, q in enumerate(self.queries) if (q.split, q.qid) == (split, qid)
        )

    def feature(self, name: str, model: str) -> FloatArray:
        """One answer feature of one tier's answers (every split)."""
        return self.data.features[name][:, self.models.index(model)]


def collect_answers(
    cascade: CascadingChatModel,
    queries: Sequence[Query],
    path: Path,
    *,
    grade: Grader,
    recorded: Mapping[str, Gate],
    workers: int,
) -> None:
    """Every tier answers every query once, through :func:`collect`.

    ``collect`` runs each query through the cascade's own decision loop with
    every gate a recorder, so each tier is called and priced as a live call
    would, and the ``recorded`` gates score every answer. Finished queries are
    appended to ``path`` at once; a rerun resumes.
    """

    def evaluate(answer: AIMessage, gold: str) -> bool:
        return grade(answer.text, gold)

    collect(
        cascade,
        [(q.messages, q.gold) for q in queries],
        evaluate,
        candidates=recorded,
        path=path,
        max_concurrency=workers,
    )


# --------------------------------------------------------------------------- replay

NO_SCORE = -1.0
"""Replay score of an answer the gate cannot score: below every threshold in [0, 1]."""


class Candidate(Protocol):
    """A gate candidate: its replay scores from the recorded verdicts, and its live gate."""

    @property
    def name(self) -> str:
        """The candidate's name in the report."""
        ...

    def scores(self, answers: Answers) -> FloatArray:
        """Its replay score of every answer, ``(queries, tiers)``.

        Read from the verdicts collect recorded (``answers.data.candidate_scores``);
        ``NO_SCORE`` where the live gate rejects whatever its threshold.
        """
        ...

    def gate(self, threshold: float) -> Gate:
        """The live gate for a threshold in [0, 1]: passes when score >= it."""
        ...


@dataclass(frozen=True)
class Matrices:
    """The (queries, tiers) inputs of ``calibrate`` / ``evaluate_thresholds``."""

    qids: list[str]
    scores: FloatArray
    correct: FloatArray
    costs: FloatArray
    latency: FloatArray
    unscored: int

    def rows(self, qids: Sequence[str]) -> Matrices:
        """The sub-matrices of the given queries, in that order."""
        index = {qid: i for i, qid in enumerate(self.qids)}
        idx = np.array([index[q] for q in qids], dtype=np.intp)
        return Matrices(
            list(qids),
            self.scores[idx],
            self.correct[idx],
            self.costs[idx],
            self.latency[idx],
            0,
        )

    def evaluate(self, thresholds: Sequence[float]) -> PolicyEvaluation:
        """Replay fixed thresholds on these answers."""
        return evaluate_thresholds(self.scores, self.correct, self.costs, thresholds)

    def latency_sum(self, thresholds: Sequence[float]) -> float:
        """Summed latency of the tiers each query visits under ``thresholds``."""
        visited = evaluate_thresholds(
            self.scores, self.correct, self.latency, thresholds
        )
        return visited.cost * len(self.qids)

    def stop_tier(self, row: int, thresholds: Sequence[float]) -> int:
        """The tier query ``row`` stops at under ``thresholds``."""
        one = evaluate_thresholds(
            self.scores[row : row + 1],
            self.correct[row : row + 1],
            self.costs[row : row + 1],
            thresholds,
        )
        return one.tier_rates.index(1.0)


def matrices(
    answers: Answers, split: str, models: Sequence[str], candidate: Candidate
) -> Matrices:
    """Arrange one split's answers as calibration matrices of ``models``' tiers.

    The final tier's score is unused by the cascade; it is set to NaN. An
    answer without token logprobs counts as unscored.
    """
    rows = answers.rows(split)
    columns = [answers.models.index(m) for m in models]
    pick = np.ix_(rows, columns)
    scores = candidate.scores(answers)[pick].astype(np.float64)
    scores[:, -1] = np.nan
    data = answers.data
    no_logprobs = np.isnan(data.features["logprob_mean"][pick][:, :-1])
    return Matrices(
        [answers.queries[i].qid for i in rows],
        scores,
        data.correct[pick],
        data.costs[pick],
        data.latencies[pick],
        int(no_logprobs.sum()),
    )


def logprob_scores(answers: Answers, name: str) -> FloatArray:
    """A recorded ``LogprobGate`` candidate's scores; ``NO_SCORE`` without logprobs.

    A ``LogprobGate`` cannot score an answer that has no token logprobs and
    rejects it at any threshold.
    """
    data = answers.data
    scores = data.candidate_scores[name]
    return np.where(np.isnan(data.features["logprob_mean"]), NO_SCORE, scores)


@dataclass(frozen=True)
class Fit:
    """Every candidate fitted on train, and the one picked on train only."""

    chosen: Candidate
    results: dict[str, CalibrationResult]
    train: dict[str, Matrices]
    target: float
    models: tuple[str, ...]

    @property
    def result(self) -> CalibrationResult:
        """The chosen candidate's fit."""
        return self.results[self.chosen.name]


def fit(
    answers: Answers,
    candidates: Sequence[Candidate],
    models: Sequence[str],
    retain: float = 1.0,
) -> Fit:
    """Fit every candidate's thresholds on train; pick one on train only.

    Quality target: ``retain`` x the best single tier's train accuracy
    (``retain=1``: no loss against the best single model). The candidate with
    the lowest train cost at that target wins; ties go to the higher APGR.
    """
    train = {c.name: matrices(answers, "train", models, c) for c in candidates}
    first = train[candidates[0].name]
    target = retain * float(first.correct.mean(axis=0).max())
    results = {
        name: calibrate(m.scores, m.correct, m.costs, min_quality=target)
        for name, m in train.items()
    }

    def key(c: Candidate) -> tuple[float, float]:
        apgr = results[c.name].apgr
        return (
            round(results[c.name].cost, 12),
            -(apgr if not math.isnan(apgr) else -1),
        )

    return Fit(min(candidates, key=key), results, train, target, tuple(models))


def live_gate(
    threshold: float, make: Callable[[float], Gate]
) -> Gate | Callable[[GateInput], bool]:
    """The gate the live cascade uses for a fitted threshold.

    ``-inf`` (always accept) and ``+inf`` (never accept) have no gate threshold
    in ``[0, 1]`` that means the same on every answer, so they become a gate
    that always passes or always fails.
    """
    if threshold == -math.inf:

        def always_accept(_: GateInput) -> bool:
            return True

        return always_accept
    if threshold == math.inf:

        def never_accept(_: GateInput) -> bool:
            return False

        return never_accept
    return make(float(threshold))


# --------------------------------------------------------------------------- live


def live_tag(
    key: str, candidate: Candidate, thresholds: Sequence[float]
) -> dict[str, Any]:
    """What identifies a live run's configuration in the cache."""
    return {key: candidate.name, "thresholds": [json_float(t) for t in thresholds]}


def run_live(
    cascade: CascadingChatModel,
    queries: Sequence[Query],
    *,
    grade: Grader,
    cache_path: Path,
    fingerprint: str,
    tag: Mapping[str, Any],
) -> list[dict[str, Any]]:
    """Answer ``queries`` with the real cascade; cache one ``live`` record each.

    ``tag`` (gate name, thresholds) is stored in every record, so that
    :func:`cached_live` finds the records of the same configuration.
    """
    out = []
    started = time.perf_counter()
    for i, query in enumerate(queries, 1):
        t0 = time.perf_counter()
        answer = cascade.invoke(query.messages)
        latency = time.perf_counter() - t0
        meta = answer.response_metadata["cascade"]
        record = {
            "kind": "live",
            "fingerprint": fingerprint,
            **tag,
            "split": query.split,
            "qid": query.qid,
            "answer": answer.text,
            "correct": grade(answer.text, query.gold),
            "tier": meta["tier"],
            "cost": meta["cost"]["total"],
            "scores": [a["score"] for a in meta["attempts"]],
            "latency_s": round(latency, 4),
        }
        append_jsonl(cache_path, record)
        out.append(record)
        if i % 10 == 0 or i == len(queries):
            elapsed = time.perf_counter() - started
            print(
                f"    live cascade: {i}/{len(queries)} in {elapsed:.0f} s", flush=True
            )
    return out


def cached_live(
    cache_path: Path, *, fingerprint: str, tag: Mapping[str, Any], n: int
) -> list[dict[str, Any]]:
    """The cached live records of the configuration ``tag`` (the last run wins)."""
    wanted = json.loads(json.dumps(dict(tag)))
    live = [
        r
        for r in read_jsonl(cache_path)
        if r.get("kind") == "live"
        and r.get("fingerprint") == fingerprint
        and all(r.get(k) == v for k, v in wanted.items())
    ]
    by_qid = {r["qid"]: r for r in live}
    return list(by_qid.values())[:n]


def compare_live(
    live: Sequence[Mapping[str, Any]],
    answers: Answers,
    test: Matrices,
    thresholds: Sequence[float],
    models: Sequence[str],
) -> dict[str, Any]:
    """Replay the live queries from the cache and compare with the live cascade."""
    if not live:
        return {}
    sub = test.rows([r["qid"] for r in live])
    replay = sub.evaluate(thresholds)
    same_tier = same_answer = 0
    score_diffs = []
    for row, r in enumerate(live):
        same_tier += int(r["tier"] == sub.stop_tier(row, thresholds))
        tiers = answers.tiers[answers.row_of(r["split"], r["qid"])]
        tier = answers.models.index(models[r["tier"]])
        same_answer += int(r["answer"] == tiers[tier].answer)
        for j, s in enumerate(r["scores"][: len(models) - 1]):
            cached_score = sub.scores[row, j]
            if s is not None and not math.isnan(cached_score) and cached_score >= 0:
                score_diffs.append(abs(float(s) - float(cached_score)))
    n = len(live)
    return {
        "n": n,
        "live_accuracy": sum(bool(r["correct"]) for r in live) / n,
        "live_cost_per_query": sum(float(r["cost"] or 0.0) for r in live) / n,
        "live_tier_rates": [
            sum(r["tier"] == j for r in live) / n for j in range(len(models))
        ],
        "live_wall_s": float(sum(r["latency_s"] for r in live)),
        "replay_accuracy": replay.quality,
        "replay_cost_per_query": replay.cost,
        "replay_tier_rates": list(replay.tier_rates),
        "replay_wall_s_estimate": sub.latency_sum(thresholds),
        "same_stopping_tier": same_tier,
        "same_answer_as_cached": same_answer,
        "max_abs_score_diff": max(score_diffs) if score_diffs else None,
    }


# --------------------------------------------------------------------------- output


def markdown_table(
    headers: Sequence[str], rows: Iterable[Sequence[object]], align: str | None = None
) -> str:
    """A GitHub markdown table; ``align`` is one of ``l``/``r`` per column."""
    align = align or "l" + "r" * (len(headers) - 1)
    marks = {"l": ":---", "r": "---:", "c": ":---:"}
    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join(marks[a] for a in align) + "|",
    ]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def pct(value: float) -> str:
    """``0.8558`` -> ``"85.6%"``."""
    return "n/a" if math.isnan(value) else f"{100 * value:.1f}%"


def money(value: float) -> str:
    """A small dollar amount in scientific notation: ``0.00333`` -> ``"$3.33e-3"``."""
    if math.isnan(value):
        return "n/a"
    mantissa, exponent = f"{value:.2e}".split("e")
    return f"${mantissa}e{int(exponent)}"


def threshold_text(values: Sequence[float]) -> str:
    """Thresholds as text (``-inf``: always accept, ``inf``: never accept)."""
    return ", ".join(
        "always accept"
        if v == -math.inf
        else "never accept"
        if v == math.inf
        else f"{v:.4f}"
        for v in values
    )


def fmt_seconds(seconds: float) -> str:
    """``754.2`` -> ``"12 min 34 s"``; NaN (not measured) -> ``"n/a"``."""
    if math.isnan(seconds):
        return "n/a"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s"


def live_section(live_cmp: Mapping[str, Any], what: str) -> list[str]:
    """Markdown lines comparing the replay with the live cascade."""
    if not live_cmp:
        return []
    n = live_cmp["n"]
    tiers = "/".join(str(j) for j in range(len(live_cmp["live_tier_rates"])))
    return [
        f"## Live check: the real `CascadingChatModel` on the first {n} test {what}",
        "",
        markdown_table(
            ["", "accuracy", "cost / query", f"answered at tier {tiers}", "wall time"],
            [
                [
                    "replay (cached answers)",
                    pct(live_cmp["replay_accuracy"]),
                    money(live_cmp["replay_cost_per_query"]),
                    " / ".join(pct(r) for r in live_cmp["replay_tier_rates"]),
                    fmt_seconds(live_cmp["replay_wall_s_estimate"]) + " (est.)",
                ],
                [
                    "live cascade",
                    pct(live_cmp["live_accuracy"]),
                    money(live_cmp["live_cost_per_query"]),
                    " / ".join(pct(r) for r in live_cmp["live_tier_rates"]),
                    fmt_seconds(live_cmp["live_wall_s"]),
                ],
            ],
        ),
        "",
        f"Same stopping tier on {live_cmp['same_stopping_tier']}/{n} {what}; same "
        f"answer text as the cached tier answer on {live_cmp['same_answer_as_cached']}"
        f"/{n}; largest gate-score difference live vs cached: "
        f"{live_cmp['max_abs_score_diff']}. The replay's wall time is the sum of the "
        "visited tiers' latencies measured during collection, when two servers "
        "were busy at once (so it runs higher than the live cascade's).",
        "",
    ]


# --------------------------------------------------------------------------- skeleton


@dataclass(frozen=True)
class Analysis:
    """What the skeleton computes once; a benchmark's report reads it."""

    args: argparse.Namespace
    answers: Answers
    fitted: Fit
    test: Matrices
    ev: PolicyEvaluation
    live_cmp: dict[str, Any]
    run: dict[str, Any]
    mode: str
    what: str
    files: Files

    @property
    def thresholds(self) -> tuple[float, ...]:
        """The chosen candidate's fitted thresholds."""
        return self.fitted.result.thresholds

    @property
    def train(self) -> Matrices:
        """The chosen candidate's train matrices."""
        return self.fitted.train[self.fitted.chosen.name]

    @property
    def top_cost(self) -> float:
        """Mean test cost of the final tier alone."""
        return float(self.test.costs[:, -1].mean())

    @property
    def top_accuracy(self) -> float:
        """Test accuracy of the final tier alone."""
        return float(self.test.correct[:, -1].mean())

    @property
    def latency_sum(self) -> float:
        """Replayed test latency of the chosen cascade (sum over queries)."""
        return self.test.latency_sum(self.thresholds)

    def on_test(
        self, candidate: Candidate, result: CalibrationResult
    ) -> PolicyEvaluation:
        """A candidate's train-fitted thresholds replayed on test."""
        test = matrices(self.answers, "test", self.fitted.models, candidate)
        return test.evaluate(result.thresholds)


class Spec(Protocol):
    """What a benchmark supplies to the skeleton."""

    @property
    def name(self) -> str:
        """File stem of the results and the cache."""
        ...

    @property
    def title(self) -> str:
        """Plot title, e.g. ``"GSM8K, local 2-tier cascade"``."""
        ...

    @property
    def what(self) -> str:
        """What a query is called in the report (``"problems"``)."""
        ...

    @property
    def models(self) -> tuple[str, ...]:
        """The cascade's tiers, cheapest first."""
        ...

    @property
    def also_served(self) -> tuple[str, ...]:
        """Models served beside the tiers (for a benchmark's own probe)."""
        ...

    @property
    def candidates(self) -> Sequence[Candidate]:
        """The gate candidates fitted on train."""
        ...

    @property
    def recorded(self) -> Mapping[str, Gate]:
        """The gates collect records on every answer, by name (the candidates read them)."""
        ...

    @property
    def tag_key(self) -> str:
        """The key naming the gate in cached live records."""
        ...

    def queries(self, args: argparse.Namespace, data_dir: Path) -> list[Query]:
        """Train and test queries."""
        ...

    def grade(self, answer: str, gold: str) -> bool:
        """Whether an answer is right."""
        ...

    def fingerprint(self, args: argparse.Namespace) -> str:
        """Identifies the prompt and settings the cached answers were made with."""
        ...

    def chat_kwargs(self, args: argparse.Namespace) -> dict[str, Any]:
        """The settings of every tier's chat model."""
        ...

    def report(self, a: Analysis, data_dir: Path) -> tuple[dict[str, Any], list[str]]:
        """The summary JSON and the markdown lines of the report."""
        ...


def tiers_table(a: Analysis, latency_digits: int) -> str:
    """Each tier alone and the chosen cascade: accuracy, cost, latency, tiers."""
    digits = latency_digits
    rows = [
        [
            SHORT_NAMES[model] + " alone",
            pct(float(a.train.correct[:, j].mean())),
            pct(float(a.test.correct[:, j].mean())),
            money(float(a.test.costs[:, j].mean())),
            f"{float(a.test.latency[:, j].mean()):.{digits}f} s",
            "-",
        ]
        for j, model in enumerate(a.fitted.models)
    ]
    rows.append(
        [
            f"**cascade** ({a.fitted.chosen.name}, replay)",
            pct(a.fitted.result.quality),
            f"**{pct(a.ev.quality)}**",
            f"**{money(a.ev.cost)}**",
            f"{a.latency_sum / len(a.test.qids):.{digits}f} s",
            " / ".join(pct(r) for r in a.ev.tier_rates),
        ]
    )
    tiers = "/".join(str(j) for j in range(len(a.fitted.models)))
    return markdown_table(
        [
            "system",
            "train acc",
            "test acc",
            "test cost / query",
            "latency / query",
            f"answered at tier {tiers}",
        ],
        rows,
    )


def candidates_table(a: Analysis, candidates: Sequence[Candidate]) -> str:
    """Every gate candidate fitted on train, then replayed on test."""
    rows = []
    for c in candidates:
        res = a.fitted.results[c.name]
        e = a.on_test(c, res)
        rows.append(
            [
                c.name + (" (chosen)" if c.name == a.fitted.chosen.name else ""),
                threshold_text(res.thresholds),
                pct(res.quality),
                money(res.cost),
                f"{res.apgr:.3f}",
                pct(e.quality),
                money(e.cost),
                pct(e.escalation_rate),
            ]
        )
    return markdown_table(
        [
            "gate",
            "thresholds",
            "train acc",
            "train cost",
            "train APGR",
            "test acc",
            "test cost",
            "test escalated",
        ],
        rows,
    )


def operating_point(
    answers: Answers,
    candidates: Sequence[Candidate],
    models: Sequence[str],
    *,
    retain: float,
    rule: str,
    key: str,
) -> dict[str, Any]:
    """One target rule fitted on train (``retain`` x best tier), replayed on test."""
    f = fit(answers, candidates, models, retain)
    res = f.result
    test = matrices(answers, "test", models, f.chosen)
    ev = test.evaluate(res.thresholds)
    top_cost = float(test.costs[:, -1].mean())
    return {
        "rule": rule,
        "target": f.target,
        key: f.chosen.name,
        "thresholds": [json_float(t) for t in res.thresholds],
        "thresholds_text": threshold_text(res.thresholds),
        "train_accuracy": res.quality,
        "train_cost_per_query": res.cost,
        "test_accuracy": ev.quality,
        "test_cost_per_query": ev.cost,
        "test_cost_vs_top_tier": ev.cost / top_cost,
        "test_escalation_rate": ev.escalation_rate,
        "test_strong_call_rate": ev.strong_call_rate,
        "test_tier_rates": list(ev.tier_rates),
    }


def points_table(points: Sequence[Mapping[str, Any]], key: str) -> str:
    """The operating points: rule, gate, thresholds, train/test accuracy and cost.

    A ``"tiers"`` entry in the points adds a first column naming the tiers.
    """
    tiers = bool(points) and "tiers" in points[0]
    return markdown_table(
        [
            *(["tiers"] if tiers else []),
            "rule",
            "gate",
            "thresholds",
            "train acc",
            "test acc",
            "test cost / query",
            "cost vs 1.5B",
            "reached 1.5B",
        ],
        [
            [
                *([p["tiers"]] if tiers else []),
                p["rule"],
                p[key],
                p["thresholds_text"],
                pct(p["train_accuracy"]),
                pct(p["test_accuracy"]),
                money(p["test_cost_per_query"]),
                f"{100 * (p['test_cost_vs_top_tier'] - 1):+.0f}%",
                pct(p["test_strong_call_rate"]),
            ]
            for p in points
        ],
    )


def summary(a: Analysis, benchmark: str, extra: Mapping[str, Any]) -> dict[str, Any]:
    """The report's JSON: the fitted cascade on train and test, and ``extra``."""
    result = a.fitted.result
    return {
        "benchmark": benchmark,
        "produced_by": a.mode,
        "full_run": dict(a.run),
        "models": list(a.fitted.models),
        "prices_per_million": {
            m: [p.input_per_million, p.output_per_million]
            for m, p in EXAMPLE_PRICES.items()
        },
        "price_note": PRICE_NOTE,
        "quality_target": {
            "rule": "best single tier's train accuracy",
            "value": a.fitted.target,
        },
        "gate_selection": "lowest train cost at the target; ties -> higher APGR",
        "chosen_gate": a.fitted.chosen.name,
        "thresholds": [json_float(t) for t in a.thresholds],
        **extra,
        "cascade_train": result.to_dict(),
        "cascade_test": a.ev.to_dict(),
        "cascade_test_wall_s_estimate": a.latency_sum,
        "cost_saving_vs_top_tier": 1 - a.ev.cost / a.top_cost if a.top_cost else None,
        "gates": {
            name: {k: v for k, v in res.to_dict().items() if k != "frontier"}
            for name, res in a.fitted.results.items()
        },
        "unscored_answers": {"train": a.train.unscored, "test": a.test.unscored},
        "live_check": a.live_cmp,
    }


def single_tiers(a: Analysis) -> dict[str, dict[str, float]]:
    """Each tier alone, for the JSON summary."""
    return {
        m: {
            "train_accuracy": float(a.train.correct[:, j].mean()),
            "test_accuracy": float(a.test.correct[:, j].mean()),
            "test_cost_per_query": float(a.test.costs[:, j].mean()),
            "test_mean_latency_s": float(a.test.latency[:, j].mean()),
            "test_wall_s": float(a.test.latency[:, j].sum()),
        }
        for j, m in enumerate(a.fitted.models)
    }


def produced_by(a: Analysis, module: str) -> str:
    """The report's first line: its command, and where its answers come from."""
    run = a.run
    return (
        f"Produced by `python -m {module}` ({a.mode}). Every tier answered every "
        f"one of the {len(a.answers.queries)} {a.what} once through "
        "`langchain_cascade.collect.collect` (the cascade's own decision loop, "
        "with every gate recording its verdict and never passing), cached in "
        f"`{a.files.answers.name}` by a full run"
        + (f" on {run.get('finished', '?')}" if run else "")
        + ", so `--from-cache` redoes this analysis without the models."
    )


def headline_sentence(a: Analysis) -> str:
    """Thresholds, escalation, cost and accuracy against the final tier alone."""
    ev = a.ev
    return (
        f"Cascade thresholds ({a.fitted.chosen.name}): {threshold_text(a.thresholds)}. "
        f"Escalation rate (past tier 0): {pct(ev.escalation_rate)}; reached the final "
        f"tier: {pct(ev.strong_call_rate)}. Cost vs the final tier alone: "
        f"{100 * (ev.cost / a.top_cost - 1):+.1f}%; accuracy "
        f"{100 * (ev.quality - a.top_accuracy):+.1f} points. Accuracy of the answers "
        "accepted at each tier: "
        + " / ".join(pct(q) for q in ev.tier_quality)
        + ". Latency per query of the cascade is the replayed sum of the visited "
        "tiers' measured latencies."
    )


def wall_time_section(
    a: Analysis, extra_rows: Sequence[Sequence[str]] = ()
) -> list[str]:
    """The full run's wall-time table (empty when re-analysed without one).

    Each tier's row sums the seconds of its calls as collect measured them.
    """
    run = a.run
    if not run:
        return []
    seconds = a.answers.data.latencies.sum(axis=0)
    n = len(a.answers.queries)
    workers = run.get("workers", 1)
    return [
        "## Wall time (full run)",
        "",
        markdown_table(
            ["step", "wall time"],
            [
                ["start the servers", fmt_seconds(run["startup_s"])],
                *[
                    [
                        f"{SHORT_NAMES[m]}: {n} {a.what} (sum of its calls)",
                        fmt_seconds(t),
                    ]
                    for m, t in zip(a.answers.models, seconds, strict=True)
                ],
                [
                    f"`collect`: every tier answering every one of the {n} {a.what} "
                    + (
                        f"({workers} {a.what} at a time)"
                        if workers > 1
                        else "(one at a time)"
                    ),
                    fmt_seconds(run["collect_wall_s"]),
                ],
                *extra_rows,
                [
                    f"live cascade: {a.live_cmp.get('n', 0)} {a.what}",
                    fmt_seconds(run["live_s"]),
                ],
                ["total", fmt_seconds(run["wall_s"])],
            ],
        ),
        "",
        "The machine (2 cores) was shared with other jobs during the run.",
        "",
    ]


def _analyse(
    spec: Spec,
    args: argparse.Namespace,
    answers: Answers,
    files: Files,
    *,
    live: list[dict[str, Any]],
    run: dict[str, Any],
    mode: str,
    data_dir: Path,
) -> None:
    fitted = fit(answers, spec.candidates, spec.models)
    test = matrices(answers, "test", spec.models, fitted.chosen)
    ev = test.evaluate(fitted.result.thresholds)
    live_cmp = compare_live(live, answers, test, fitted.result.thresholds, spec.models)
    a = Analysis(args, answers, fitted, test, ev, live_cmp, run, mode, spec.what, files)
    out_dir: Path = args.out_dir
    plot_frontier(
        fitted.result,
        out_dir / f"{spec.name}_frontier.png",
        title=f"{spec.title}: train frontier ({fitted.chosen.name})",
        cost_label=COST_LABEL,
    )
    plot_held_out(
        fitted.result,
        test.scores,
        test.correct,
        test.costs,
        out_dir / f"{spec.name}_test.png",
        tier_names=[SHORT_NAMES.get(m, m) for m in spec.models],
        title=f"{spec.title.split(',')[0]}, local models: test set",
        cost_label=COST_LABEL,
    )
    summary, lines = spec.report(a, data_dir)
    write_json(out_dir / f"{spec.name}.json", summary)
    (out_dir / f"{spec.name}.md").write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


@dataclass(frozen=True)
class Files:
    """Where one benchmark's answers and live checks are cached.

    Both names carry the fingerprint of the prompt, settings and queries, so a
    run with other settings never reads or resumes another's answers.
    """

    answers: Path
    live: Path

    @classmethod
    def of(
        cls, spec: Spec, args: argparse.Namespace, queries: Sequence[Query]
    ) -> Files:
        """The files of this benchmark, settings and queries."""
        blob = json.dumps(
            [spec.fingerprint(args), [input_hash(q.messages) for q in queries]]
        )
        fp = hashlib.sha256(blob.encode()).hexdigest()[:12]
        out: Path = args.out_dir
        return cls(
            out / f"{spec.name}_collect_{fp}.jsonl",
            out / f"{spec.name}_live_{fp}.jsonl",
        )


Probe = Callable[[Mapping[str, BaseChatModel], Sequence[Query], Path], dict[str, Any]]
"""``before(chats, queries, live_path)``: a benchmark's own step with the servers up."""


def run(spec: Spec, args: argparse.Namespace, before: Probe | None = None) -> None:
    """Collect (or read from the cache), fit, check live and report one benchmark.

    ``before``, when given, runs first with the servers up (a benchmark's own
    probe); what it returns joins the run's record.
    """
    data_dir = resolve_data_dir(args.data_dir)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    queries = spec.queries(args, data_dir)
    files = Files.of(spec, args, queries)
    if args.from_cache:
        answers = Answers.read(files.answers, queries)
        fitted = fit(answers, spec.candidates, spec.models)
        live = cached_live(
            files.live,
            fingerprint=spec.fingerprint(args),
            tag=live_tag(spec.tag_key, fitted.chosen, fitted.result.thresholds),
            n=args.n_live,
        )
        runs = [r for r in read_jsonl(files.live) if r.get("kind") == "run"]
        record, mode = (runs[-1] if runs else {}), "re-analysed from the cache"
    else:
        answers, live, record = _full_run(spec, args, queries, files, before)
        mode = "full run"
    _analyse(
        spec,
        args,
        answers,
        files,
        live=live,
        run=record,
        mode=mode,
        data_dir=data_dir,
    )


def _full_run(
    spec: Spec,
    args: argparse.Namespace,
    queries: Sequence[Query],
    files: Files,
    before: Probe | None,
) -> tuple[Answers, list[dict[str, Any]], dict[str, Any]]:
    """Start the servers, collect every answer, fit, and run the live check."""
    from langchain_cascade.local_models import LocalModels

    fp = spec.fingerprint(args)
    names = list(dict.fromkeys([*spec.models, *spec.also_served]))
    kwargs = spec.chat_kwargs(args)
    started = time.perf_counter()
    with LocalModels(names, n_threads=1, n_parallel=args.workers) as lm:
        startup = time.perf_counter() - started
        print(f"servers up in {startup:.1f} s", flush=True)
        chats = {m: lm.chat_model(m, **kwargs) for m in names}
        extra = before(chats, queries, files.live) if before is not None else {}
        tiers = [chats[m] for m in spec.models]
        recording = CascadingChatModel(
            models=tiers,
            gates=[next(iter(spec.recorded.values()))] * (len(tiers) - 1),
            prices=EXAMPLE_PRICES,
        )
        t0 = time.perf_counter()
        collect_answers(
            recording,
            queries,
            files.answers,
            grade=spec.grade,
            recorded=spec.recorded,
            workers=args.workers,
        )
        collect_wall = time.perf_counter() - t0
        answers = Answers.read(files.answers, queries)
        fitted = fit(answers, spec.candidates, spec.models)
        thresholds = fitted.result.thresholds
        print(f"fitted {fitted.chosen.name}: {threshold_text(thresholds)}", flush=True)
        cascade = CascadingChatModel(
            models=tiers,
            gates=[live_gate(t, fitted.chosen.gate) for t in thresholds],
            prices=EXAMPLE_PRICES,
        )
        t0 = time.perf_counter()
        live = run_live(
            cascade,
            [q for q in queries if q.split == "test"][: args.n_live],
            grade=spec.grade,
            cache_path=files.live,
            fingerprint=fp,
            tag=live_tag(spec.tag_key, fitted.chosen, thresholds),
        )
        live_s = time.perf_counter() - t0
    record = {
        "kind": "run",
        "fingerprint": fp,
        "finished": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "startup_s": startup,
        "collect_wall_s": collect_wall,
        "live_s": live_s,
        "wall_s": time.perf_counter() - started,
        **extra,
        **{
            key: getattr(args, key)
            for key in ("n_train", "n_test", "n_live", "max_tokens", "workers")
            if hasattr(args, key)
        },
    }
    append_jsonl(files.live, record)
    return answers, live, record


def arguments(
    description: str,
    *,
    from_cache_help: str = "re-analyse the cached answers without starting the models",
) -> argparse.ArgumentParser:
    """The options every local benchmark takes.

    Args:
        description: The parser's description.
        from_cache_help: The help of ``--from-cache``: what the benchmark reuses.

    Returns:
        The parser with ``--data-dir``, ``--out-dir``, ``--from-cache`` and
        ``--workers``.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--from-cache", action="store_true", help=from_cache_help)
    parser.add_argument(
        "--workers",
        type=int,
        default=2,
        help="queries collected at once (each server gets as many request slots)",
    )
    return parser
