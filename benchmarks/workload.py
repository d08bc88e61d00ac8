"""A realistic workload on the local models: everyday queries, a few word problems.

The traffic a cascade is for: mostly everyday queries a small model can answer, a
minority of hard ones. Every part is real public data nobody here wrote, read in
place from the data directory (``--data-dir``, ``$CASCADE_DATA_DIR`` or
``../shared/data``):

- everyday classification: FrugalGPT's HEADLINES (gold-market news headlines
  labelled up / down / neutral / none; stanford-futuredata/FrugalGPT,
  Apache-2.0), one word per answer;
- everyday calculations: single-step calculator questions ("What is 48 / 2?")
  built from the calculator annotations (``<<48/2=24>>``) in GSM8K's reference
  solutions (openai/grade-school-math, MIT): the numbers, the operation and the
  result are the data's; the question wording is ours. One per GSM8K problem
  (its first annotation that is two numbers and one of + - * / whose annotated
  result is exact), from problem ranges no word problem uses;
- the hard minority: GSM8K word problems (openai/grade-school-math, MIT), with
  up to 256 tokens to reason.

Three disjoint samples of the same mix (about one word problem in ten):
``fit`` (thresholds and gates are fitted on it, and tiers are selected on it),
``heldout`` (this benchmark's figures) and ``demo`` (the questions ``make demo``
asks; nothing is fitted or tuned on them).

Method: every tier answers every query once through ``collect`` (the package's
collection loop), answers cached outside git in a LangChain SQLite cache (they
hold dataset labels) under ``$LANGCHAIN_CASCADE_CACHE/../answers``; each gate
candidate is scored by ``collect`` on the cached answers; ``calibrate`` fits the
thresholds on ``fit``; the fitted policy is replayed on ``heldout`` under the
compute-proportional example prices and under an API price ratio.

Run::

    python -m benchmarks.workload            # collects what is missing (~15 min)
    python -m benchmarks.workload --from-cache
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import random
import re
import sqlite3
import sys
import threading
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core._api import LangChainBetaWarning
from langchain_core.caches import RETURN_VAL_TYPE, BaseCache
from langchain_core.language_models import BaseChatModel
from langchain_core.load import dumps, loads
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

from benchmarks import gsm8k_local, headlines
from benchmarks.common import RESULTS_DIR, resolve_data_dir
from langchain_cascade import CascadingChatModel, CollectedScores, collect
from langchain_cascade.calibration import CalibrationResult, calibrate, plot_frontier
from langchain_cascade.gates import LogprobGate, RegexGate, all_of, weighted
from langchain_cascade.gates.base import Gate
from langchain_cascade.local_models import (
    DEFAULT_MODEL_NAMES,
    EXAMPLE_PRICES_PER_MILLION,
    LocalModels,
    default_cache_dir,
    example_prices,
)
from langchain_cascade.pricing import ModelPrice

ALL_TIERS = DEFAULT_MODEL_NAMES
"""The candidate tiers (every registered model), cheapest first."""

HEADLINE = "headline"
CALCULATION = "calculation"
WORD_PROBLEM = "word problem"
EVERYDAY = (HEADLINE, CALCULATION)
"""The kinds a small model is meant to answer."""

SOURCES = (
    "FrugalGPT HEADLINES (stanford-futuredata/FrugalGPT, Apache-2.0): "
    "frugalgpt-headlines/{train,test}.csv",
    "GSM8K (openai/grade-school-math, MIT): gsm8k/test.jsonl (word problems; "
    "calculator questions built from its solutions' <<a op b=c>> annotations, "
    "question wording ours)",
)

# (headlines split, first row, count), (first GSM8K problem, count). Disjoint.
SAMPLES: Mapping[str, tuple[tuple[str, int, int], tuple[int, int]]] = {
    "fit": (("train", 0, 36), (1000, 6)),
    "heldout": (("test", 0, 60), (0, 8)),
    "demo": (("test", 1000, 10), (500, 2)),
}

# (first GSM8K problem scanned, count of calculator questions). The problem
# ranges scanned are disjoint from each other and from every word problem above.
CALCULATIONS: Mapping[str, tuple[int, int]] = {
    "fit": (200, 24),
    "heldout": (300, 36),
    "demo": (400, 5),
}
CALCULATION_SPAN = 100
"""How many GSM8K problems each sample's calculator range may scan."""

CHAT_KWARGS: dict[str, Any] = {
    "temperature": 0,
    "max_tokens": 256,
    "logprobs": True,
    "top_logprobs": 5,
}
"""One setting for every query: a headline answer stops after a word, a word
problem gets up to 256 tokens to reason."""

FORMAT = RegexGate(
    pattern=r"^\W*(?:up|down|neutral|none)\b|Answer:\s*\**\s*\$?\s*-?\d"
    r"|^\s*-?\d[\d,]*(?:\.\d+)?\s*$",
    description="a label, an 'Answer: <number>' line or a bare number",
)

THREADS = 1
"""CPU threads per model server in the benchmarks: on 2 cores shared with other
jobs, two threads per server spin-wait on each other (SmolLM2 generated at
1.2 tokens/s with 2 threads under load); one thread per server does not."""

API_PRICES = {
    "gpt-4o-mini": ModelPrice(input_per_million=0.15, output_per_million=0.60),
    "gpt-4o": ModelPrice(input_per_million=2.50, output_per_million=10.00),
}
"""List prices ($ per 1M tokens in/out) the default API ratio comes from (1:16)."""


@dataclass(frozen=True)
class Item:
    """One query of the workload: its kind, where it comes from, its gold answer."""

    kind: str
    source_id: str
    text: str
    gold: str

    @property
    def messages(self) -> list[BaseMessage]:
        """The prompt the application sends for this kind of query."""
        if self.kind == HEADLINE:
            return headlines.build_messages(self.text)
        if self.kind == CALCULATION:
            return calculation_messages(self.text)
        return gsm8k_local.build_messages(self.text)


CALCULATION_INSTRUCTION = "Calculate. Reply with only the result, a number."
CALCULATION_SHOTS = (("What is 7 * 6?", "42"), ("What is 90 - 35?", "55"))
"""Invented examples (not from the data), shown as chat turns. (A first version
had "90 / 4" -> "22.5": on the fitting sample SmolLM2 then wrote decimals such
as "10 * 5" -> "10.5"; the examples now have whole results like most of the data.)"""


def calculation_messages(question: str) -> list[BaseMessage]:
    """The calculator prompt: instruction, two invented examples, the question."""
    messages: list[BaseMessage] = [SystemMessage(CALCULATION_INSTRUCTION)]
    for text, answer in CALCULATION_SHOTS:
        messages += [HumanMessage(text), AIMessage(answer)]
    messages.append(HumanMessage(question))
    return messages


_ANNOTATION = re.compile(r"<<([^=<>]+)=([^<>]+)>>")
_BINARY = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([-+*/])\s*(\d+(?:\.\d+)?)\s*")
_OPS = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: a / b,
}


def calculator_question(solution: str) -> tuple[str, str] | None:
    """The first single-step calculation of a GSM8K solution, as (question, result).

    Only ``<<a op b=c>>`` annotations with two plain numbers, one of + - * / and
    an annotated result equal to the exact one count; the question reads
    ``What is a op b?`` and the gold answer is the annotated result.
    """
    for expr, result in _ANNOTATION.findall(solution):
        match = _BINARY.fullmatch(expr)
        if match is None:
            continue
        a, op, b = match.groups()
        try:
            value = float(result)
        except ValueError:
            continue
        if op == "/" and float(b) == 0:
            continue
        if abs(_OPS[op](float(a), float(b)) - value) > 1e-9:
            continue
        return f"What is {a} {op} {b}?", result.strip()
    return None


def _headlines(data_dir: Path, split: str, start: int, n: int) -> list[Item]:
    path = data_dir / "frugalgpt-headlines" / f"{split}.csv"
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))[start : start + n]
    if len(rows) < n:
        msg = f"{path} has too few rows for {start}+{n}"
        raise SystemExit(msg)
    return [
        Item(
            HEADLINE,
            f"headlines/{split}/{row[2]}",
            headlines.headline_text(row[0]),
            row[1].strip().lower(),
        )
        for row in rows
    ]


def _word_problems(data_dir: Path, start: int, n: int) -> list[Item]:
    path = data_dir / "gsm8k" / "test.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()[start : start + n]
    if len(lines) < n:
        msg = f"{path} has too few problems for {start}+{n}"
        raise SystemExit(msg)
    rows = [json.loads(line) for line in lines]
    return [
        Item(
            WORD_PROBLEM,
            f"gsm8k/{start + i}",
            row["question"],
            gsm8k_local.gold_number(row["answer"]),
        )
        for i, row in enumerate(rows)
    ]


def _calculations(data_dir: Path, start: int, n: int) -> list[Item]:
    path = data_dir / "gsm8k" / "test.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    out: list[Item] = []
    for row in range(start, min(start + CALCULATION_SPAN, len(lines))):
        found = calculator_question(json.loads(lines[row])["answer"])
        if found is not None:
            out.append(Item(CALCULATION, f"gsm8k-calc/{row}", *found))
        if len(out) == n:
            return out
    msg = f"{path}: fewer than {n} calculator questions in rows {start}+{CALCULATION_SPAN}"
    raise SystemExit(msg)


def load_sample(data_dir: Path, name: str) -> list[Item]:
    """One of :data:`SAMPLES`, its parts shuffled together (fixed seeds).

    HEADLINES and word problems keep the order they had before the calculator
    part was added (their seed is unchanged); the calculations are inserted at
    positions drawn with a seed of their own.
    """
    (split, h_start, h_n), (g_start, g_n) = SAMPLES[name]
    items = _headlines(data_dir, split, h_start, h_n)
    items += _word_problems(data_dir, g_start, g_n)
    random.Random(f"workload-{name}").shuffle(items)
    rng = random.Random(f"workload-{name}-calculations")
    for item in _calculations(data_dir, *CALCULATIONS[name]):
        items.insert(rng.randint(0, len(items)), item)
    return items


_HEADLINES = headlines.Headlines()
_WORD_PROBLEMS = gsm8k_local.Gsm8kLocal()


def is_correct(answer: str, item: Item) -> bool:
    """The label (headlines) or the last number (calculations, word problems) matches."""
    if item.kind == HEADLINE:
        return _HEADLINES.grade(answer, item.gold)
    return _WORD_PROBLEMS.grade(answer, item.gold)


def evaluate(answer: AIMessage, item: Item) -> float:
    """``collect``'s evaluator."""
    return float(is_correct(answer.text, item))


# --------------------------------------------------------------------------- gates

# A gate candidate: the format rule, then a weighted mix of two logprob signals
# (mean token confidence and the first token's margin); the weight is chosen on
# the fitting sample, the pass mark by ``calibrate``.
WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)


def gate_name(weight: float) -> str:
    """``w=0.25`` etc.: the weight of ``geometric_mean`` against the margin."""
    return f"w={weight:g}"


def make_gate(weight: float, threshold: float) -> Gate:
    """all_of(format, weighted({geometric_mean: w, first_token_margin: 1-w}))."""
    parts: list[tuple[object, float]] = [
        (LogprobGate(threshold=0.0, aggregation="geometric_mean"), weight),
        (LogprobGate(threshold=0.0, aggregation="first_token_margin"), 1.0 - weight),
    ]
    parts = [(g, w) for g, w in parts if w > 0]
    return all_of(FORMAT, weighted(parts, threshold=min(1.0, max(0.0, threshold))))


# --------------------------------------------------------------------------- cache


class AnswerCache(BaseCache):
    """A LangChain LLM cache in one SQLite file, keyed without the server's port.

    The servers listen on random free ports, which LangChain's cache key would
    otherwise include. Answers are stored as LangChain serializes them
    (``dumps``), token logprobs and usage included.
    """

    _PORT = re.compile(r"(127\.0\.0\.1|localhost):\d+")

    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False)
        with self._lock, self._db:
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS full_llm_cache (prompt VARCHAR NOT NULL, "
                "llm VARCHAR NOT NULL, idx INTEGER NOT NULL, response VARCHAR, "
                "PRIMARY KEY (prompt, llm, idx))"
            )

    def _key(self, llm_string: str) -> str:
        return self._PORT.sub(r"\1", llm_string)

    def lookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        """The cached generations of a prompt, or None."""
        with self._lock:
            rows = self._db.execute(
                "SELECT response FROM full_llm_cache WHERE prompt = ? AND llm = ? "
                "ORDER BY idx",
                (prompt, self._key(llm_string)),
            ).fetchall()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LangChainBetaWarning)
            found = [loads(row[0], allowed_objects="core") for row in rows]
        return found or None

    def update(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        """Store the generations of a prompt."""
        with self._lock, self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO full_llm_cache VALUES (?, ?, ?, ?)",
                [
                    (prompt, self._key(llm_string), i, dumps(gen))
                    for i, gen in enumerate(return_val)
                ],
            )

    def clear(self, **kwargs: Any) -> None:
        """Forget every answer."""
        with self._lock, self._db:
            self._db.execute("DELETE FROM full_llm_cache")


def answers_dir() -> Path:
    """Where model answers are cached: beside the model cache, outside git."""
    path = default_cache_dir().parent / "answers"
    path.mkdir(parents=True, exist_ok=True)
    return path


def answer_cache() -> AnswerCache:
    return AnswerCache(answers_dir() / "workload.sqlite")


def offline_tiers(names: Sequence[str], cache: AnswerCache) -> list[BaseChatModel]:
    """Chat models that can only answer from the cache (no server behind them).

    Built like :meth:`LocalModels.chat_model`'s, so that their cache keys match
    (:class:`AnswerCache` ignores the port).
    """
    from langchain_openai import ChatOpenAI

    return [
        ChatOpenAI(
            base_url="http://127.0.0.1:9/v1",
            api_key="local",
            model=name,
            cache=cache,
            **CHAT_KWARGS,
        )
        for name in names
    ]


def live_tiers(
    models: LocalModels, names: Sequence[str], cache: AnswerCache | None
) -> list[BaseChatModel]:
    return [
        models.chat_model(name, cache=cache, **CHAT_KWARGS)
        if cache
        else models.chat_model(name, **CHAT_KWARGS)
        for name in names
    ]


# --------------------------------------------------------------------------- prices


def compute_prices(names: Sequence[str]) -> dict[str, ModelPrice]:
    """The registry's example prices (proportional to measured compute here)."""
    table = example_prices()
    return {name: table[name] for name in names}


def api_prices(names: Sequence[str], ratio: float) -> dict[str, ModelPrice]:
    """gpt-4o prices for the strongest tier, 1/ratio of them for the cheapest.

    Tiers in between get geometric steps.
    """
    top = API_PRICES["gpt-4o"]
    k = len(names)
    out = {}
    for i, name in enumerate(names):
        factor = ratio ** (-(k - 1 - i) / max(1, k - 1))
        out[name] = ModelPrice(
            input_per_million=top.input_per_million * factor,
            output_per_million=top.output_per_million * factor,
        )
    return out


# --------------------------------------------------------------------------- collect


def collect_sample(
    tiers: Sequence[BaseChatModel],
    names: Sequence[str],
    items: Sequence[Item],
    prices: Mapping[str, ModelPrice],
    weight: float = 0.5,
    *,
    path: Path | None = None,
) -> CollectedScores:
    """Every tier answers every item (``collect``); one gate candidate scores them."""
    cascade = CascadingChatModel(
        models=list(tiers),
        gates=[make_gate(weight, 0.5) for _ in names[:-1]],
        prices=dict(prices),
    )
    examples = [(item.messages, item) for item in items]
    return collect(
        cascade,
        examples,
        evaluate,
        path=path,
        progress=path is not None,
        max_concurrency=1,  # one query at a time: latencies are not inflated
    )


@dataclass
class SampleData:
    """A sample's answers: correctness, tokens, latencies, every gate's scores."""

    items: list[Item]
    names: tuple[str, ...]
    scores: dict[float, np.ndarray]  # weight -> (queries, tiers)
    correct: np.ndarray
    in_tokens: np.ndarray
    out_tokens: np.ndarray
    latencies: np.ndarray  # measured during the collection (one query at a time)
    ratio: float  # the API price ratio of :attr:`api_costs`
    prices: Mapping[str, ModelPrice] | None = None  # None: the registry's example

    def kind_mask(self, kind: str) -> np.ndarray:
        return np.array([it.kind == kind for it in self.items])

    def first(self, first_tier: Mapping[str, int]) -> np.ndarray:
        """Each query's first tier under a routing by kind (default tier 0)."""
        return np.array([first_tier.get(it.kind, 0) for it in self.items], dtype=int)

    def costs_under(self, prices: Mapping[str, ModelPrice]) -> np.ndarray:
        """(queries, tiers) call costs under a price table."""
        p_in = np.array([prices[n].input_per_million for n in self.names]) / 1e6
        p_out = np.array([prices[n].output_per_million for n in self.names]) / 1e6
        return self.in_tokens * p_in + self.out_tokens * p_out

    @property
    def costs(self) -> np.ndarray:
        """Costs under the compute-proportional prices (the registry's by default)."""
        return self.costs_under(self.prices or compute_prices(self.names))

    @property
    def api_costs(self) -> np.ndarray:
        """Costs under the API price ratio (cheapest tier 1:ratio of the strongest)."""
        return self.costs_under(api_prices(self.names, self.ratio))

    def take(self, rows: np.ndarray) -> SampleData:
        """The same tiers on some of the queries (a boolean mask)."""
        idx = np.flatnonzero(rows)
        return SampleData(
            items=[self.items[i] for i in idx],
            names=self.names,
            scores={w: s[idx] for w, s in self.scores.items()},
            correct=self.correct[idx],
            in_tokens=self.in_tokens[idx],
            out_tokens=self.out_tokens[idx],
            latencies=self.latencies[idx],
            ratio=self.ratio,
            prices=self.prices,
        )

    def subset(self, names: Sequence[str]) -> SampleData:
        """The same answers seen by a cascade of fewer tiers (columns picked)."""
        cols = [self.names.index(n) for n in names]
        return SampleData(
            items=self.items,
            names=tuple(names),
            scores={w: s[:, cols] for w, s in self.scores.items()},
            correct=self.correct[:, cols],
            in_tokens=self.in_tokens[:, cols],
            out_tokens=self.out_tokens[:, cols],
            latencies=self.latencies[:, cols],
            ratio=self.ratio,
            prices=self.prices,
        )


_ONE_PER_INPUT = ModelPrice(input_per_million=1e6, output_per_million=0.0)
_ONE_PER_OUTPUT = ModelPrice(input_per_million=0.0, output_per_million=1e6)


def gather(
    sample: str,
    data_dir: Path,
    ratio: float,
    models: LocalModels | None,
    names: Sequence[str] = ALL_TIERS,
) -> SampleData:
    """Every candidate tier answers a sample (live when ``models``, else from cache).

    The first pass records correctness and latencies (``collect`` with a results
    file, so an interrupted run resumes); it always runs every candidate tier, so
    that a latency is never read off a cache hit. Gate candidates are then scored,
    and token counts read (as costs at $1 per token), on the cached answers.
    """
    items = load_sample(data_dir, sample)
    cache = answer_cache()
    tiers = live_tiers(models, names, cache) if models else offline_tiers(names, cache)
    correct = np.zeros((len(items), len(names)))
    latencies = np.zeros((len(items), len(names)))
    # One results file per part: the calculator part came later, and a results
    # file resumes only the examples it was started with.
    for part, suffix in ((False, ""), (True, "_calculations")):
        rows = [i for i, it in enumerate(items) if (it.kind == CALCULATION) == part]
        first = collect_sample(
            tiers,
            names,
            [items[i] for i in rows],
            compute_prices(names),
            path=answers_dir() / f"workload_{sample}{suffix}.jsonl",
        )
        correct[rows], latencies[rows] = first.correct, first.latencies
    offline = offline_tiers(names, cache)  # every answer is cached by now
    scores = {
        w: collect_sample(offline, names, items, compute_prices(names), w).scores
        for w in WEIGHTS
    }
    tokens = [
        collect_sample(offline, names, items, dict.fromkeys(names, unit)).costs
        for unit in (_ONE_PER_INPUT, _ONE_PER_OUTPUT)
    ]
    return SampleData(
        items=items,
        names=tuple(names),
        scores=scores,
        correct=correct,
        in_tokens=np.rint(tokens[0]),
        out_tokens=np.rint(tokens[1]),
        latencies=latencies,
        ratio=ratio,
    )


# --------------------------------------------------------------------------- replay


def stop_tiers(scores: np.ndarray, thresholds: Sequence[float]) -> np.ndarray:
    """The tier each query stops at under ``thresholds`` (the cascade's rule)."""
    n, k = scores.shape
    stop = np.full(n, k - 1)
    for j in reversed(range(k - 1)):
        stop = np.where(scores[:, j] >= thresholds[j], j, stop)
    return stop


@dataclass(frozen=True)
class Policy:
    """Replayed figures of one operating point on one sample."""

    accuracy: float
    cost: float
    api_cost: float
    latency: float
    stops: tuple[float, ...]  # share answered at each tier


def skipped_tiers(start: np.ndarray, k: int) -> np.ndarray:
    """(queries, tiers) mask of the tiers below each query's first tier."""
    return np.arange(k)[None, :] < start[:, None]


def replay(
    data: SampleData,
    weight: float,
    thresholds: Sequence[float],
    mask: np.ndarray | None = None,
    *,
    first: np.ndarray | None = None,
) -> Policy:
    """Accuracy, mean cost and mean latency of the cascade on (part of) a sample.

    ``first`` (a tier per query of the whole sample, default 0) is where each
    query starts, as ``first_tier`` does: the tiers below it are neither asked
    nor paid.
    """
    rows = np.arange(len(data.items)) if mask is None else np.flatnonzero(mask)
    k = len(data.names)
    start = np.zeros(len(rows), dtype=int) if first is None else first[rows]
    skipped = skipped_tiers(start, k)
    stop = stop_tiers(np.where(skipped, -np.inf, data.scores[weight][rows]), thresholds)
    stop = np.maximum(stop, start)  # a threshold of -inf accepts a -inf score
    visited = ~skipped & (np.arange(k)[None, :] <= stop[:, None])
    picked = data.correct[rows, stop]
    return Policy(
        accuracy=float(picked.mean()),
        cost=float((data.costs[rows] * visited).sum(axis=1).mean()),
        api_cost=float((data.api_costs[rows] * visited).sum(axis=1).mean()),
        latency=float((data.latencies[rows] * visited).sum(axis=1).mean()),
        stops=tuple(float((stop == j).mean()) for j in range(k)),
    )


def run_policy(
    data: SampleData, fitted: Fitted, mask: np.ndarray | None = None
) -> Policy:
    """The fitted policy (gate, thresholds, routing) replayed on a sample."""
    return replay(
        data, fitted.weight, fitted.thresholds, mask, first=data.first(fitted.first)
    )


def alone(data: SampleData, tier: int, mask: np.ndarray | None = None) -> Policy:
    """One tier answering everything."""
    rows = np.arange(len(data.items)) if mask is None else np.flatnonzero(mask)
    k = len(data.names)
    return Policy(
        accuracy=float(data.correct[rows, tier].mean()),
        cost=float(data.costs[rows, tier].mean()),
        api_cost=float(data.api_costs[rows, tier].mean()),
        latency=float(data.latencies[rows, tier].mean()),
        stops=tuple(float(j == tier) for j in range(k)),
    )


@dataclass(frozen=True)
class Fitted:
    """The policy chosen on the fitting sample: gate, thresholds, routing."""

    weight: float
    thresholds: tuple[float, ...]
    target: float
    first: dict[str, int]  # kind -> the tier its queries start at (first_tier)
    cost: float  # mean cost on the fitting sample (compute prices)
    result: CalibrationResult
    by_weight: dict[float, CalibrationResult]

    @property
    def routed(self) -> bool:
        """Whether some kind of query skips the cheapest tier."""
        return any(self.first.values())


KINDS = (HEADLINE, CALCULATION, WORD_PROBLEM)


def routings(k: int) -> list[dict[str, int]]:
    """Every first tier per kind of query, for a cascade of ``k`` tiers."""
    return [
        dict(zip(KINDS, t, strict=True)) for t in itertools.product(range(k), repeat=3)
    ]


def fit_shape(
    data: SampleData, first: Mapping[str, int], retain: float = 1.0
) -> Fitted:
    """The cheapest gate and thresholds of one routing on the fitting sample.

    ``first`` maps a kind of query to the tier it starts at (the application
    knows a query's kind: it wrote its prompt; the cascade's ``first_tier``).
    ``calibrate`` sees the skipped tiers as never accepted (score ``-inf``),
    never right and free; each frontier point it finds is replayed with the
    routing, and the cheapest that keeps ``retain`` x the strongest tier's
    accuracy wins, over every gate candidate.
    """
    start = data.first(first)
    skipped = skipped_tiers(start, len(data.names))
    target = retain * float(data.correct[:, -1].mean())
    results: dict[float, CalibrationResult] = {}

    def option(w: float, thresholds: Sequence[float], cost: float) -> Fitted:
        return Fitted(
            weight=w,
            thresholds=tuple(float(t) for t in thresholds),
            target=target,
            first=dict(first),
            cost=cost,
            result=results[w],
            by_weight=results,
        )

    options: list[Fitted] = []
    for w, scores in data.scores.items():
        res = results[w] = calibrate(
            np.where(skipped, -np.inf, scores),
            np.where(skipped, 0.0, data.correct),
            np.where(skipped, 0.0, data.costs),
            min_quality=target,
        )
        for thresholds in [res.thresholds, *(p.thresholds for p in res.frontier)]:
            policy = replay(data, w, thresholds, first=start)
            if policy.accuracy >= target - 1e-9:
                options.append(option(w, thresholds, policy.cost))
    if not options:  # no point keeps the target: the routing's most accurate
        w = max(results, key=lambda w: results[w].quality)
        cost = replay(data, w, results[w].thresholds, first=start).cost
        options.append(option(w, results[w].thresholds, cost))
    return min(options, key=lambda f: (round(f.cost, 15), -f.weight))


def fit(data: SampleData, retain: float = 1.0) -> Fitted:
    """The cheapest routing (see :func:`fit_shape`) on the fitting sample; ties
    keep more queries at the cheaper tiers."""
    shapes = [fit_shape(data, first, retain) for first in routings(len(data.names))]
    return min(shapes, key=lambda f: (round(f.cost, 15), sum(f.first.values())))


def demo_config(
    fitted: Fitted, names: Sequence[str], fit_data: SampleData
) -> dict[str, Any]:
    """What ``examples/demo_thresholds.json`` holds."""
    pol = run_policy(fit_data, fitted)
    strong_cost = alone(fit_data, len(names) - 1).cost
    first = fit_data.first(fitted.first)
    return {
        "tiers": list(names),
        "gate": f"all_of(format, weighted(geometric_mean: {fitted.weight:g}, "
        f"first_token_margin: {1 - fitted.weight:g}))",
        "weight_geometric_mean": fitted.weight,
        "thresholds": [float(t) for t in fitted.thresholds],
        "first_tier_by_kind": dict(fitted.first),
        "fitted_on": (
            f"the workload's fitting sample: {len(fit_data.items)} queries "
            f"({int(fit_data.kind_mask(HEADLINE).sum())} HEADLINES train rows, "
            f"{int(fit_data.kind_mask(CALCULATION).sum())} calculator questions "
            "from GSM8K solutions, "
            f"{int(fit_data.kind_mask(WORD_PROBLEM).sum())} GSM8K problems), "
            "never the demo's questions"
        ),
        "rule": "cheapest thresholds keeping the strongest tier's accuracy on the "
        "fitting sample; gate weight chosen there too",
        "fit_accuracy": pol.accuracy,
        "fit_strong_accuracy": float(fit_data.correct[:, -1].mean()),
        "fit_answered_per_tier": list(pol.stops),
        "chat_kwargs": CHAT_KWARGS,
        "frontier": [
            {
                "thresholds": list(point.thresholds),
                "cost_vs_strongest": p.cost / strong_cost,
                "accuracy": p.accuracy,
            }
            for point in fitted.result.frontier
            for p in [replay(fit_data, fitted.weight, point.thresholds, first=first)]
        ],
        "command": "python -m examples.fit_demo_thresholds --from-cache",
    }


# --------------------------------------------------------------------------- report


def pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def needed_acceptance(cheap_cost: float, strong_cost: float, target: float) -> float:
    """Share of queries the cheap tier must keep for cost <= target x strong alone:
    cheap + (1 - a) * strong <= target * strong."""
    return 1.0 - (target * strong_cost - cheap_cost) / strong_cost


def report(
    fit_data: SampleData,
    test: SampleData,
    fitted: Fitted,
    ratio: float,
    *,
    out_dir: Path,
    collected: Mapping[str, str],
) -> str:
    names = test.names
    short = {
        n: n.replace("qwen2.5-coder-", "Qwen-").replace("smollm2-", "SmolLM2-")
        for n in names
    }
    strong = alone(test, len(names) - 1)
    casc = run_policy(test, fitted)
    first = test.first(fitted.first)
    lines = [
        "# Held-out workload: a cascade of local models on everyday + hard queries",
        "",
        f"Produced by `python -m benchmarks.workload` on {collected['finished']}. "
        f"Data (read in place): {'; '.join(SOURCES)}. Machine: 2 cores shared with "
        f"other sessions ({collected['load']}); latencies were measured one query at a time, "
        "every tier answering every query in turn, so load hits all tiers alike; "
        "the ratios are what to read.",
        "",
        f"**Workload.** Fitting sample: {len(fit_data.items)} queries; held-out: "
        f"{len(test.items)} queries ({int(test.kind_mask(HEADLINE).sum())} HEADLINES "
        f"test rows, {int(test.kind_mask(CALCULATION).sum())} calculator questions "
        "built from GSM8K solutions' annotations (the numbers and results are the "
        "data's, the wording 'What is a op b?' ours), "
        f"{int(test.kind_mask(WORD_PROBLEM).sum())} GSM8K problems). "
        f"Tiers: {' -> '.join(short[n] for n in names)}; {CHAT_KWARGS}.",
        "",
        f"**Gate** (chosen on the fitting sample): all_of(format rule, weighted("
        f"geometric_mean {fitted.weight:g}, first_token_margin "
        f"{1 - fitted.weight:g})), thresholds {', '.join(f'{t:.4f}' for t in fitted.thresholds)}, "
        f"fitted by `calibrate` to keep the strongest tier's fitting accuracy "
        f"({pct(fitted.target)}).",
        "",
        "**Routing** (chosen on the fitting sample among every first tier per kind, "
        "the cascade's `first_tier`): "
        + ", ".join(
            f"{kind}s start at {short[names[t]]}" for kind, t in fitted.first.items()
        )
        + ".",
        "",
        "**Prices.** Compute-proportional (the registry's example table: $ per 1M "
        "tokens = measured seconds per token on this machine at $1 per hour): "
        + ", ".join(
            f"{short[n]} {EXAMPLE_PRICES_PER_MILLION[n][0]:.3g}/{EXAMPLE_PRICES_PER_MILLION[n][1]:.3g}"
            for n in names
        )
        + f". API ratio 1:{ratio:g} (gpt-4o-mini : gpt-4o list prices, strongest tier at gpt-4o's $2.50/$10.00).",
        "",
        "## Held-out results",
        "",
        f"| system | accuracy | cost (compute) | cost (1:{ratio:g} API) | mean latency "
        "| answered per tier |",
        "|:---|---:|---:|---:|---:|---:|",
    ]
    for j, n in enumerate(names):
        p = alone(test, j)
        lines.append(
            f"| {short[n]} alone | {pct(p.accuracy)} | {p.cost / strong.cost:.0%} | "
            f"{p.api_cost / strong.api_cost:.0%} | {p.latency:.2f} s | - |"
        )
    shapes = {
        "cascade, every query": {},
        "cascade, word problems straight to the final tier": {
            WORD_PROBLEM: len(names) - 1
        },
        "cascade, first tier fitted per kind": fitted.first,
    }
    for label, routing in shapes.items():
        chosen = dict.fromkeys(KINDS, 0) | dict(routing) == fitted.first
        if not chosen and routing is fitted.first:
            continue  # the fitted routing is one of the two above
        shape = fitted if chosen else fit_shape(fit_data, routing)
        p = run_policy(test, shape)
        mark = "**" if chosen else ""
        lines.append(
            f"| {mark}{label}{' (chosen on the fitting sample)' if chosen else ''}{mark} "
            f"| {pct(p.accuracy)} | {mark}{p.cost / strong.cost:.0%}{mark} | "
            f"{mark}{p.api_cost / strong.api_cost:.0%}{mark} | {p.latency:.2f} s "
            f"({p.latency / strong.latency:.0%}) | "
            + " / ".join(pct(x) for x in p.stops)
            + " |"
        )
    lines += [
        "",
        "Costs are relative to the strongest tier alone on the same queries.",
        "",
    ]
    acc_ratio = casc.accuracy / strong.accuracy
    targets = [
        (
            "cost <= 75% (compute prices)",
            casc.cost / strong.cost <= 0.75,
            f"{casc.cost / strong.cost:.0%}",
        ),
        (
            "mean latency <= 75%",
            casc.latency / strong.latency <= 0.75,
            f"{casc.latency / strong.latency:.0%}",
        ),
        (
            ">= 97% of the strongest tier's accuracy",
            acc_ratio >= 0.97,
            f"{acc_ratio:.1%}",
        ),
        (
            f"cost <= 35% (1:{ratio:g} API prices)",
            casc.api_cost / strong.api_cost <= 0.35,
            f"{casc.api_cost / strong.api_cost:.0%}",
        ),
    ]
    lines += [
        "## Against the targets",
        "",
        "| target | measured | met |",
        "|:---|---:|:---:|",
    ]
    lines += [f"| {t} | {m} | {'yes' if ok else 'NO'} |" for t, ok, m in targets]
    lines += [
        "",
        "## By part of the workload (same policy, held-out)",
        "",
        "| part | queries | cascade acc | strongest acc | cost (compute) | cost (API) | latency | answered at the cheap tier |",
        "|:---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for kind in (HEADLINE, CALCULATION, WORD_PROBLEM):
        m = test.kind_mask(kind)
        c, s = (
            run_policy(test, fitted, m),
            alone(test, len(names) - 1, m),
        )
        lines.append(
            f"| {kind}s | {int(m.sum())} | {pct(c.accuracy)} | {pct(s.accuracy)} | "
            f"{c.cost / s.cost:.0%} | {c.api_cost / s.api_cost:.0%} | "
            f"{c.latency / s.latency:.0%} | {pct(c.stops[0])} |"
        )
    cheap = alone(test, 0)
    a_c = needed_acceptance(cheap.cost, strong.cost, 0.75)
    a_api = needed_acceptance(cheap.api_cost, strong.api_cost, 0.35)
    lines += [
        "",
        "## What would reach the targets",
        "",
        f"A query pays the cheap tier ({cheap.cost / strong.cost:.0%} of the strongest "
        f"tier's cost under compute prices, {cheap.api_cost / strong.api_cost:.0%} "
        "under API prices) and, when escalated, the strongest too. Cost <= 75% needs "
        f"the cheap tier to keep at least {pct(a_c)} of the queries (compute prices); "
        f"cost <= 35% needs {pct(a_api)} (API prices). Measured: the cascade kept "
        f"{pct(casc.stops[0])}, and on the fitting sample the cheap tier was right on "
        f"{pct(float(fit_data.correct[:, 0].mean()))} of the queries (the strongest on "
        f"{pct(float(fit_data.correct[:, -1].mean()))}).",
        "",
        "## Frontier (held-out, every threshold the fitting frontier proposes)",
        "",
        "| thresholds | accuracy | cost (compute) | cost (API) | latency | kept at tier 0 |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for point in fitted.result.frontier[:: max(1, len(fitted.result.frontier) // 12)]:
        p = replay(test, fitted.weight, point.thresholds, first=first)
        lines.append(
            f"| {', '.join(f'{t:.3f}' for t in point.thresholds)} | {pct(p.accuracy)} | "
            f"{p.cost / strong.cost:.0%} | {p.api_cost / strong.api_cost:.0%} | "
            f"{p.latency / strong.latency:.0%} | {pct(p.stops[0])} |"
        )
    lines += [
        "",
        "## Gate candidates (fitting sample)",
        "",
        "| gate (weight of geometric_mean) | fit cost | fit accuracy | held-out accuracy | held-out cost |",
        "|:---|---:|---:|---:|---:|",
    ]
    fit_strong = alone(fit_data, len(names) - 1)
    for w, res in fitted.by_weight.items():
        p = replay(test, w, res.thresholds, first=first)
        lines.append(
            f"| {gate_name(w)}{' (chosen)' if w == fitted.weight else ''} | "
            f"{res.cost / fit_strong.cost:.0%} | {pct(res.quality)} | {pct(p.accuracy)} | "
            f"{p.cost / strong.cost:.0%} |"
        )
    png = plot_frontier(
        fitted.result,
        out_dir / "workload_frontier.png",
        title="Workload: fitting-sample frontier (compute prices)",
    )
    lines += ["", f"Frontier plot (fitting sample): `{png.name}`.", ""]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--from-cache", action="store_true")
    parser.add_argument("--ratio", type=float, default=16.0, help="API price ratio")
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--tiers", default=None, help="comma-separated tier names")
    args = parser.parse_args(argv)
    data_dir = resolve_data_dir(args.data_dir)
    names = tuple(args.tiers.split(",")) if args.tiers else chosen_tiers()
    load = f"load average {Path('/proc/loadavg').read_text().split()[0]} at the start"
    started = time.perf_counter()
    run_file = answers_dir() / "workload_run.json"
    if args.from_cache:
        fit_all = gather("fit", data_dir, args.ratio, None)
        test_all = gather("heldout", data_dir, args.ratio, None)
        collected = (
            json.loads(run_file.read_text(encoding="utf-8"))
            if run_file.exists()
            else {"finished": "an earlier run", "load": "load not recorded"}
        )
    else:
        with LocalModels(ALL_TIERS, n_threads=THREADS) as models:
            fit_all = gather("fit", data_dir, args.ratio, models)
            test_all = gather("heldout", data_dir, args.ratio, models)
        collected = {
            "finished": f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
            "load": load,
        }
        run_file.write_text(json.dumps(collected) + "\n", encoding="utf-8")
    fit_data, test = fit_all.subset(names), test_all.subset(names)
    fitted = fit(fit_data)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    text = report(
        fit_data, test, fitted, args.ratio, out_dir=args.out_dir, collected=collected
    )
    (args.out_dir / "workload.md").write_text(text + "\n", encoding="utf-8")
    print(text)
    print(
        f"\n(wrote {args.out_dir / 'workload.md'}; {time.perf_counter() - started:.0f} s)",
        file=sys.stderr,
    )
    return 0


def chosen_tiers() -> tuple[str, ...]:
    """The tiers tier selection kept (benchmarks/results/tier_selection.json)."""
    path = RESULTS_DIR / "tier_selection.json"
    if path.exists():
        return tuple(json.loads(path.read_text())["chosen"])
    return ("qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b")


if __name__ == "__main__":
    sys.exit(main())
