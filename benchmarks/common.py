"""Shared helpers of the benchmarks on the real local models.

Data directory resolution, the example price table, answer normalisation
(labels and numbers), timing, the per-tier answer cache (JSONL), the replay
matrices that :func:`langchain_cascade.calibrate` takes, the live gates built
from fitted thresholds, and a markdown table writer.

Method shared by ``headlines.py`` and ``gsm8k_local.py``: every tier answers
every query once; the answers (text, usage, token logprobs, latency) are cached
in a JSONL file; gate scores are recomputed from the cached logprobs with the
library's own gates; thresholds are fitted on the train split and replayed on
the test split; a subset of the test split is then run through the real
``CascadingChatModel`` to check that the replay matches the live cascade.
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from numpy.typing import NDArray

from langchain_cascade import CascadingChatModel
from langchain_cascade.calibration import (
    CalibrationResult,
    PolicyEvaluation,
    evaluate_thresholds,
)
from langchain_cascade.gates.base import Gate, GateInput
from langchain_cascade.local_models import example_prices
from langchain_cascade.pricing import ModelPrice

DATA_ENV_VAR = "CASCADE_DATA_DIR"
REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"

EXAMPLE_PRICES: dict[str, ModelPrice] = example_prices()
"""The local models' EXAMPLE price table (see ``langchain_cascade.local_models``)."""

PRICE_NOTE = (
    "Costs use an EXAMPLE price table (the models run locally for free; prices are "
    "illustrative, roughly proportional to parameter count), in $ per 1M tokens "
    "in/out: "
    + ", ".join(
        f"{name} {p.input_per_million:g}/{p.output_per_million:g}"
        for name, p in EXAMPLE_PRICES.items()
    )
    + ". Cost per query = input_tokens x in-price + output_tokens x out-price."
)

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


# --------------------------------------------------------------------------- grading

_WORD = re.compile(r"[a-z]+")


def normalise_label(text: str, labels: Iterable[str]) -> str | None:
    """The label an answer gives: its first word, lower-cased, if it is a label.

    ``" Up."``, ``"up\\n"`` and ``"UP - gold rose"`` all read ``"up"``;
    ``"The headline is"`` reads ``None``.
    """
    match = _WORD.search(text.lower())
    if match is None:
        return None
    word = match.group(0)
    return word if word in set(labels) else None


_NUMBER = re.compile(r"-?\$?\d[\d,]*(?:\.\d+)?")


def parse_number(text: str) -> Decimal | None:
    """A number written as ``1,234``, ``$12.50`` or ``-3``, or ``None``."""
    raw = text.replace("$", "").replace(",", "").strip().rstrip(".")
    try:
        return Decimal(raw)
    except InvalidOperation:
        return None


def last_number(text: str) -> Decimal | None:
    """The last number in a text (thousands commas and ``$`` ignored), or ``None``."""
    for match in reversed(_NUMBER.findall(text)):
        value = parse_number(match)
        if value is not None:
            return value
    return None


def numbers_equal(a: Decimal | None, b: Decimal | None) -> bool:
    """Whether two parsed numbers are equal (``18.00`` equals ``18``)."""
    return a is not None and b is not None and a == b


# --------------------------------------------------------------------------- costs


def call_cost(model: str, usage: Mapping[str, Any] | None) -> float:
    """The example cost of one call from its token usage (0 tokens when missing)."""
    price = EXAMPLE_PRICES[model]
    usage = usage or {}
    return (
        price.per_call
        + int(usage.get("input_tokens", 0)) * price.input_per_million / 1e6
        + int(usage.get("output_tokens", 0)) * price.output_per_million / 1e6
    )


# --------------------------------------------------------------------------- timing


@dataclass
class Stopwatch:
    """Accumulates named wall-clock durations (seconds)."""

    def __post_init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def time(self, name: str) -> Iterator[None]:
        """Time the block and add it under ``name``."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + (
                time.perf_counter() - started
            )


def fmt_seconds(seconds: float) -> str:
    """``754.2`` -> ``"12 min 34 s"``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s"


# --------------------------------------------------------------------------- cache


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


_APPEND_LOCK = threading.Lock()


def append_jsonl(path: Path, record: Mapping[str, Any]) -> None:
    """Append one record and flush it, so an interrupted run can resume.

    Thread-safe: two tiers may be collected at once.
    """
    line = json.dumps(record, ensure_ascii=False) + "\n"
    with _APPEND_LOCK, path.open("a", encoding="utf-8") as handle:
        handle.write(line)
        handle.flush()


def write_json(path: Path, obj: Any) -> None:
    """Write JSON without NaN (``allow_nan=False``)."""
    path.write_text(
        json.dumps(obj, indent=2, allow_nan=False, ensure_ascii=False) + "\n",
        encoding="utf-8",
    )


def clean_float(value: float) -> float | str | None:
    """JSON-safe float: NaN -> None, +-inf -> "inf" / "-inf"."""
    if math.isnan(value):
        return None
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


def logprob_entries(
    message: AIMessage, top_k: int | None = None
) -> list[dict[str, Any]]:
    """The per-token logprob entries to cache (token, logprob, top_logprobs).

    ``top_k`` caps the alternatives kept per token (the server may send 20 even
    when none were asked for); ``None`` keeps them all.
    """
    logprobs = message.response_metadata.get("logprobs")
    content = logprobs.get("content") if isinstance(logprobs, dict) else None
    out = []
    for entry in content or []:
        if not isinstance(entry, dict) or "logprob" not in entry:
            continue
        kept: dict[str, Any] = {
            "token": entry.get("token"),
            "logprob": entry["logprob"],
        }
        top = entry.get("top_logprobs")
        if top and top_k is not None:
            top = top[:top_k]
        if top:
            kept["top_logprobs"] = [
                {"token": t.get("token"), "logprob": t.get("logprob")} for t in top
            ]
        out.append(kept)
    return out


def as_message(record: Mapping[str, Any]) -> AIMessage:
    """Rebuild a cached answer as an AIMessage that the gates can score."""
    return AIMessage(
        content=record["answer"],
        response_metadata={"logprobs": {"content": record.get("logprobs") or []}},
    )


@dataclass(frozen=True)
class Query:
    """One benchmark item."""

    split: str
    qid: str
    messages: list[BaseMessage]
    gold: str


Grader = Callable[[str, str], bool]


def collect_in_parallel(
    chats: Mapping[str, BaseChatModel],
    groups: Sequence[Sequence[str]],
    queries: Sequence[Query],
    cache_path: Path,
    *,
    grade: Grader,
    fingerprint: str,
) -> dict[str, float]:
    """Run :func:`collect_answers` for each group of models in its own thread.

    Within a group the models run one after the other; with one CPU thread per
    server, two groups keep two cores busy. Returns the wall time per model.
    """
    seconds: dict[str, float] = {}

    def run(group: Sequence[str]) -> None:
        for model in group:
            started = time.perf_counter()
            collect_answers(
                {model: chats[model]}, queries, cache_path, grade, fingerprint
            )
            seconds[model] = time.perf_counter() - started

    with ThreadPoolExecutor(max_workers=len(groups)) as pool:
        for future in [pool.submit(run, group) for group in groups]:
            future.result()
    return seconds


def collect_answers(
    chats: Mapping[str, BaseChatModel],
    queries: Sequence[Query],
    cache_path: Path,
    grade: Grader,
    fingerprint: str,
    *,
    top_k: int | None = None,
    progress_every: int = 25,
) -> list[dict[str, Any]]:
    """Ask every tier every query once (resuming from the cache), return the records.

    Queries are sent one at a time, model after model, so that a single server
    is busy at any moment and the shared prompt prefix stays in its cache.
    Records made with another ``fingerprint`` (prompt or settings) are ignored.
    """
    done = {
        (r["split"], r["qid"], r["model"]): r
        for r in read_jsonl(cache_path)
        if r.get("kind") == "tier" and r.get("fingerprint") == fingerprint
    }
    for model, chat in chats.items():
        todo = [q for q in queries if (q.split, q.qid, model) not in done]
        if todo:
            print(f"  {model}: {len(todo)} queries to ask", flush=True)
        started = time.perf_counter()
        for i, query in enumerate(todo, 1):
            t0 = time.perf_counter()
            message = chat.invoke(query.messages)
            latency = time.perf_counter() - t0
            if not isinstance(message, AIMessage):  # pragma: no cover - chat models
                message = AIMessage(content=message.content)
            usage = dict(message.usage_metadata or {})
            record = {
                "kind": "tier",
                "fingerprint": fingerprint,
                "split": query.split,
                "qid": query.qid,
                "model": model,
                "gold": query.gold,
                "answer": message.text,
                "correct": grade(message.text, query.gold),
                "usage": {
                    "input_tokens": usage.get("input_tokens", 0),
                    "output_tokens": usage.get("output_tokens", 0),
                },
                "cost": call_cost(model, usage),
                "latency_s": round(latency, 4),
                "logprobs": logprob_entries(message, top_k),
            }
            append_jsonl(cache_path, record)
            done[(query.split, query.qid, model)] = record
            if i % progress_every == 0 or i == len(todo):
                elapsed = time.perf_counter() - started
                print(
                    f"    {model}: {i}/{len(todo)} in {elapsed:.0f} s "
                    f"({elapsed / i:.2f} s/query)",
                    flush=True,
                )
    return [done[(q.split, q.qid, m)] for q in queries for m in chats]


def load_cached(
    cache_path: Path, queries: Sequence[Query], models: Sequence[str], fingerprint: str
) -> list[dict[str, Any]]:
    """The cached tier records of ``queries``; exits when one is missing."""
    done = {
        (r["split"], r["qid"], r["model"]): r
        for r in read_jsonl(cache_path)
        if r.get("kind") == "tier" and r.get("fingerprint") == fingerprint
    }
    missing = [
        (q.split, q.qid, m)
        for q in queries
        for m in models
        if (q.split, q.qid, m) not in done
    ]
    if missing:
        msg = (
            f"{cache_path} lacks {len(missing)} tier answers (e.g. {missing[0]}) for "
            "these settings: run without --from-cache first"
        )
        raise SystemExit(msg)
    return [done[(q.split, q.qid, m)] for q in queries for m in models]


# --------------------------------------------------------------------------- replay

ScoreFn = Callable[[Mapping[str, Any]], float | None]
"""A gate score of one cached tier answer (``None`` when the gate has none)."""

NO_SCORE = -1.0
"""Replay score of an answer the gate cannot score: below every threshold in [0, 1]."""


@dataclass(frozen=True)
class Matrices:
    """The (queries, tiers) inputs of ``calibrate`` / ``evaluate_thresholds``."""

    qids: list[str]
    scores: FloatArray
    correct: FloatArray
    costs: FloatArray
    latency: FloatArray
    unscored: int


def matrices(
    records: Sequence[Mapping[str, Any]],
    split: str,
    models: Sequence[str],
    score: ScoreFn,
) -> Matrices:
    """Arrange the cached answers of one split as calibration matrices.

    The final tier's score is unused by the cascade; it is set to NaN.
    """
    by_key = {(r["split"], r["qid"], r["model"]): r for r in records}
    qids = list(dict.fromkeys(r["qid"] for r in records if r["split"] == split))
    n, k = len(qids), len(models)
    scores = np.full((n, k), np.nan)
    correct = np.zeros((n, k))
    costs = np.zeros((n, k))
    latency = np.zeros((n, k))
    unscored = 0
    for i, qid in enumerate(qids):
        for j, model in enumerate(models):
            record = by_key[(split, qid, model)]
            correct[i, j] = float(bool(record["correct"]))
            costs[i, j] = float(record["cost"])
            latency[i, j] = float(record["latency_s"])
            if j < k - 1:
                value = score(record)
                if value is None:
                    unscored += 1
                    value = NO_SCORE
                scores[i, j] = value
    return Matrices(qids, scores, correct, costs, latency, unscored)


def stop_tiers(scores: FloatArray, thresholds: Sequence[float]) -> NDArray[np.intp]:
    """The tier each query stops at under ``thresholds`` (accept: score >= t)."""
    n, k = scores.shape
    stop = np.full(n, k - 1, dtype=np.intp)
    undecided = np.ones(n, dtype=bool)
    for j, threshold in enumerate(thresholds):
        accept = undecided & (scores[:, j] >= threshold)
        stop[accept] = j
        undecided &= ~accept
    return stop


def replay_latency(m: Matrices, thresholds: Sequence[float]) -> float:
    """Summed latency of the tiers each query visits under ``thresholds``."""
    stop = stop_tiers(m.scores, thresholds)
    cumulative = np.cumsum(m.latency, axis=1)
    return float(cumulative[np.arange(len(stop)), stop].sum())


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

    ``tag`` (gate name, thresholds...) is stored in every record, so that
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
    records: Sequence[Mapping[str, Any]],
    test: Matrices,
    thresholds: Sequence[float],
    models: Sequence[str],
) -> dict[str, Any]:
    """Replay the live queries from the cache and compare with the live cascade."""
    if not live:
        return {}
    row = {qid: i for i, qid in enumerate(test.qids)}
    idx = np.array([row[r["qid"]] for r in live])
    sub = Matrices(
        [r["qid"] for r in live],
        test.scores[idx],
        test.correct[idx],
        test.costs[idx],
        test.latency[idx],
        0,
    )
    replay = evaluate_thresholds(sub.scores, sub.correct, sub.costs, thresholds)
    replay_stop = stop_tiers(sub.scores, thresholds)
    by_key = {(r["split"], r["qid"], r["model"]): r for r in records}
    same_tier = same_answer = 0
    score_diffs = []
    for r, stop in zip(live, replay_stop, strict=True):
        same_tier += int(r["tier"] == int(stop))
        cached = by_key[(r["split"], r["qid"], models[r["tier"]])]
        same_answer += int(r["answer"] == cached["answer"])
        for j, s in enumerate(r["scores"][: len(models) - 1]):
            cached_score = test.scores[row[r["qid"]], j]
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
        "replay_wall_s_estimate": replay_latency(sub, thresholds),
        "same_stopping_tier": same_tier,
        "same_answer_as_cached": same_answer,
        "max_abs_score_diff": max(score_diffs) if score_diffs else None,
    }


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


def plot_test(
    path: Path,
    result: CalibrationResult,
    test: Matrices,
    chosen: PolicyEvaluation,
    *,
    title: str,
    models: Sequence[str],
) -> None:
    """The train frontier's thresholds replayed on test, with each tier alone."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    points = sorted(
        (
            evaluate_thresholds(test.scores, test.correct, test.costs, p.thresholds)
            for p in result.frontier
        ),
        key=lambda e: e.cost,
    )
    fig = Figure(figsize=(7.0, 5.0), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot(
        [p.cost for p in points],
        [p.quality for p in points],
        marker="o",
        markersize=3,
        linewidth=1.0,
        label="train-frontier thresholds, on test",
    )
    markers = ("s", "v", "^")
    for j, model in enumerate(models):
        ax.scatter(
            [test.costs[:, j].mean()],
            [test.correct[:, j].mean()],
            marker=markers[j % 3],
            s=60,
            label=f"{SHORT_NAMES.get(model, model)} alone",
        )
    ax.scatter(
        [chosen.cost],
        [chosen.quality],
        marker="*",
        s=220,
        color="tab:orange",
        edgecolors="black",
        label="chosen cascade (fitted on train)",
        zorder=4,
    )
    ax.set_xlabel("Mean cost per query ($, example prices)")
    ax.set_ylabel("Accuracy")
    ax.set_title(title)
    ax.grid(visible=True, alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    fig.savefig(path, format="png", dpi=120)


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
