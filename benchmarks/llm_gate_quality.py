"""How well do the LLM gates spot a cheap model's wrong answers? GSM8K, real models.

qwen2.5-coder-0.5b answers the first N GSM8K test problems (temperature 0); each
answer is labelled right or wrong by the gold number after ``####``. Then three
gates judge every answer:

- ``SelfCheckGate()``: the 0.5B rates its own answer 1-5 (passes at 4 or 5);
- ``JudgeGate(judge=1.5B)``: qwen2.5-coder-1.5b solves, then grades (temperature 0);
- ``ConsistencyGate(samples=3, extract=extract_number)``: three more 0.5B answers
  at temperature 0.7 must agree with the first (2 of 3).

For the event "the answer is wrong", the report gives the precision and recall of
"escalate" (= the gate fails the answer), the escalation rate, and the tokens and
seconds each gate spent.

    .venv/bin/python -m benchmarks.llm_gate_quality \
        --out benchmarks/results/llm_gate_quality.md

The data is read in place from ``--data-dir`` (default ``$CASCADE_DATA_DIR``, else
``../shared/data`` next to the repository). The 0.5B's answers are cached in
``benchmarks/results/llm_gate_quality_answers.json``; a rerun reuses them (and says
so in the report) unless ``--fresh`` is given. The gates always run live.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_core.callbacks import UsageMetadataCallbackHandler
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

from benchmarks.common import regenerate_block, regenerate_command, resolve_data_dir
from langchain_cascade.gates import (
    ConsistencyGate,
    Gate,
    GateInput,
    JudgeGate,
    SelfCheckGate,
    extract_number,
)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
DEFAULT_CACHE = RESULTS / "llm_gate_quality_answers.json"
ANSWERER = "qwen2.5-coder-0.5b"
JUDGE = "qwen2.5-coder-1.5b"
PROMPT = "Answer with a short calculation and the final number."
# One worked example (written for this benchmark, not from GSM8K) shows the short
# format: without it the 0.5B writes step lists and runs out of tokens (first run,
# zero-shot: 48 of 50 answers cut at 128 tokens, 2 of 50 right).
EXAMPLE = (
    "A box has 4 rows of 6 eggs and 5 eggs break. How many eggs are left?",
    "4 * 6 = 24 eggs, and 24 - 5 = 19. The answer is 19.",
)
ZERO_SHOT_NOTE = (
    "Zero-shot (`--zero-shot`: the question + the instruction only) was tried "
    "first: 48 of 50 answers were cut at 128 tokens (the 0.5B writes step lists "
    "whatever the instruction says) and only 2 of 50 were right, so this benchmark "
    "adds one worked example of the short format (a made-up question, not from "
    "GSM8K) as a first exchange."
)


@dataclass
class GateRun:
    passed: bool
    score: float | None
    reason: str
    tokens: int
    seconds: float


@dataclass
class Item:
    index: int
    question: str
    gold: str
    answer: str = ""
    answer_tokens: int = 0
    answer_seconds: float = 0.0
    truncated: bool = False
    correct: bool = False
    gates: dict[str, GateRun] = field(default_factory=dict)


def load_items(path: Path, n: int) -> list[Item]:
    items: list[Item] = []
    with (path / "gsm8k" / "test.jsonl").open(encoding="utf-8") as handle:
        for index, line in enumerate(handle):
            if index >= n:
                break
            row = json.loads(line)
            gold = extract_number(row["answer"].split("####")[-1])
            if gold is None:  # pragma: no cover - every GSM8K answer has one
                continue
            items.append(Item(index=index, question=row["question"], gold=gold))
    return items


ONE_SHOT = True


def messages_for(item: Item) -> list[BaseMessage]:
    ask = HumanMessage(f"{item.question}\n{PROMPT}")
    if not ONE_SHOT:
        return [ask]
    question, answer = EXAMPLE
    return [HumanMessage(f"{question}\n{PROMPT}"), AIMessage(answer), ask]


@contextmanager
def served(args: argparse.Namespace) -> Iterator[dict[str, Callable[..., Any]]]:
    """Chat-model factories for the two models: given servers or fresh ones."""
    if args.answerer_url and args.judge_url:
        from langchain_openai import ChatOpenAI

        urls = {ANSWERER: args.answerer_url, JUDGE: args.judge_url}

        def make(name: str, **kwargs: Any) -> BaseChatModel:
            return ChatOpenAI(
                base_url=urls[name], api_key="local", model=name, **kwargs
            )

        yield {"chat_model": make}
        return
    from langchain_cascade.local_models import LocalModels

    with LocalModels([ANSWERER, JUDGE], n_threads=args.threads) as models:
        yield {"chat_model": models.chat_model}


def answer_all(
    items: list[Item], answerer: BaseChatModel, concurrency: int, max_tokens: int
) -> None:
    def one(item: Item) -> None:
        started = time.perf_counter()
        message = answerer.invoke(messages_for(item))
        item.answer_seconds = time.perf_counter() - started
        item.answer = message.text
        usage = message.usage_metadata
        item.answer_tokens = usage["total_tokens"] if usage else 0
        item.truncated = bool(usage and usage["output_tokens"] >= max_tokens)

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(one, items))


def label(items: list[Item]) -> None:
    for item in items:
        item.correct = extract_number(item.answer) == item.gold


def run_gate(name: str, gate: Gate, item: Item, tier_model: BaseChatModel) -> None:
    gate_input = GateInput(
        messages=messages_for(item),
        response=AIMessage(item.answer),
        model=ANSWERER,
        chat_model=tier_model,
    )
    usage = UsageMetadataCallbackHandler()
    started = time.perf_counter()
    result = gate.invoke(gate_input, {"callbacks": [usage]})
    seconds = time.perf_counter() - started
    tokens = sum(u.get("total_tokens", 0) for u in usage.usage_metadata.values())
    item.gates[name] = GateRun(
        passed=result.passed,
        score=result.score,
        reason=result.reason,
        tokens=tokens,
        seconds=seconds,
    )


def metrics(items: list[Item], name: str) -> dict[str, Any]:
    runs = [(i, i.gates[name]) for i in items]
    escalated = [i for i, r in runs if not r.passed]
    wrong = [i for i in items if not i.correct]
    true_pos = sum(1 for i in escalated if not i.correct)
    kept = [i for i, r in runs if r.passed]

    def mean_score(*, right: bool) -> float | None:
        scores = [
            r.score for i, r in runs if i.correct == right and r.score is not None
        ]
        return sum(scores) / len(scores) if scores else None

    return {
        "score_right": mean_score(right=True),
        "score_wrong": mean_score(right=False),
        "precision": true_pos / len(escalated) if escalated else None,
        "recall": true_pos / len(wrong) if wrong else None,
        "escalation": len(escalated) / len(items),
        "kept_accuracy": (sum(i.correct for i in kept) / len(kept)) if kept else None,
        "tp": true_pos,
        "escalated": len(escalated),
        "wrong": len(wrong),
        "kept": len(kept),
        "tokens": sum(r.tokens for _, r in runs),
        "seconds": sum(r.seconds for _, r in runs),
        "unparsed": sum(1 for _, r in runs if r.score is None),
        "screened": sum(
            1 for _, r in runs if r.reason.startswith("answer addresses its grader")
        ),
    }


def num(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def render(  # noqa: PLR0917 - one report, one call site
    items: list[Item],
    gate_names: list[str],
    args: argparse.Namespace,
    command: str,
    cache_note: str,
    walls: dict[str, float],
) -> str:
    n = len(items)
    right = sum(i.correct for i in items)
    truncated = sum(i.truncated for i in items)
    answer_tokens = sum(i.answer_tokens for i in items)
    lines = [
        "# LLM gates on GSM8K: do they catch the 0.5B's wrong answers?",
        "",
        f"Answers: `{ANSWERER}` on the first {n} problems of GSM8K test (file "
        f'order), prompt = the question + "{PROMPT}"'
        + (
            f', after one worked example (user: "{EXAMPLE[0]} {PROMPT}", '
            f'assistant: "{EXAMPLE[1]}")'
            if ONE_SHOT
            else " (zero-shot)"
        )
        + f", temperature 0, max_tokens {args.max_tokens}. Right = the last number "
        "of the answer equals the gold number after `####`. "
        f"**{right}/{n} right ({fmt(right / n)})**; {truncated} answers hit "
        f"max_tokens. {cache_note}",
        "",
        ZERO_SHOT_NOTE if ONE_SHOT else "",
        "",
        "Gates (defaults unless stated):",
        "",
        "- `self-check`: `SelfCheckGate()` with the 0.5B rating its own answer "
        "(json_schema), passes at rating >= 4 (threshold 0.75).",
        f"- `judge`: `JudgeGate(judge=1.5B)`, temperature 0, max_tokens "
        f"{args.judge_max_tokens}, solve_first=True, on_injection='fail', "
        "threshold 0.5.",
        "- `consistency`: `ConsistencyGate(samples=3, threshold=0.6, "
        "extract=extract_number)` on the 0.5B at temperature 0.7 (same max_tokens): "
        "passes when >= 2 of 3 samples end on the same number.",
        "",
        "Escalate = the gate fails the answer. Precision and recall are for the "
        'event "the answer is wrong": precision = wrong among escalated, recall = '
        "escalated among wrong. Kept accuracy = share right among the answers the "
        "gate lets through. Seconds = sum of per-call wall times (calls overlap, "
        "2 shared cores); tokens = prompt + completion of the gate's own calls.",
        "",
        *regenerate_block(command),
        "",
        "| gate | precision | recall | escalation rate | kept accuracy "
        "| mean score right / wrong | unparsed "
        "| tokens (per answer) | seconds (per answer) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in gate_names:
        m = metrics(items, name)
        lines.append(
            f"| {name} | {fmt(m['precision'])} ({m['tp']}/{m['escalated']}) | "
            f"{fmt(m['recall'])} ({m['tp']}/{m['wrong']}) | "
            f"{fmt(m['escalation'])} ({m['escalated']}/{n}) | "
            f"{fmt(m['kept_accuracy'])} ({m['kept']} kept) | "
            f"{num(m['score_right'])} / {num(m['score_wrong'])} | {m['unparsed']} | "
            f"{m['tokens']} ({m['tokens'] / n:.0f}) | "
            f"{m['seconds']:.0f} ({m['seconds'] / n:.1f}) |"
        )
    judge_screened = metrics(items, "judge")["screened"] if "judge" in gate_names else 0
    lines += [
        f"| (no gate: never escalate) | - | 0% | 0% | {fmt(right / n)} | - | - | 0 "
        "| 0 |",
        f"| (always escalate) | {fmt((n - right) / n)} | 100% | 100% | - | - | - | - "
        "| - |",
        "",
        f"Answering cost: {answer_tokens} tokens ({answer_tokens / n:.0f} per "
        "problem). Wall time: "
        + ", ".join(f"{k} {v:.0f} s" for k, v in walls.items())
        + f". Machine: {platform.machine()}, 2 CPU cores shared with other jobs; "
        f"llama.cpp threads per server: {args.threads or 'default'}. "
        f"Answers failed by the judge's injection screen (false alarms here): "
        f"{judge_screened}.",
        "",
        "## Per problem",
        "",
        "| # | gold | answer's last number | right | " + " | ".join(gate_names) + " |",
        "|---|---|---|---|" + "---|" * len(gate_names),
    ]
    for item in items:
        cells = []
        for name in gate_names:
            run = item.gates[name]
            score = "-" if run.score is None else f"{run.score:.2f}"
            cells.append(f"{'pass' if run.passed else 'ESC'} {score}")
        lines.append(
            f"| {item.index} | {item.gold} | {extract_number(item.answer)} | "
            f"{'yes' if item.correct else 'no'}{' (cut)' if item.truncated else ''} | "
            + " | ".join(cells)
            + " |"
        )
    lines.append("")
    return "\n".join(lines)


def cache_key(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "model": ANSWERER,
        "prompt": PROMPT,
        "example": list(EXAMPLE) if ONE_SHOT else None,
        "temperature": 0,
        "max_tokens": args.max_tokens,
    }


def load_cache(path: Path, args: argparse.Namespace, items: list[Item]) -> float | None:
    """Fill the answers from the cache; the wall time they took, or None."""
    if args.fresh or not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("key") != cache_key(args):
        return None
    cached = {a["index"]: a for a in data["answers"]}
    if any(item.index not in cached for item in items):
        return None
    for item in items:
        row = cached[item.index]
        item.answer = row["answer"]
        item.answer_tokens = row["tokens"]
        item.answer_seconds = row["seconds"]
        item.truncated = row["truncated"]
    return float(data.get("wall_s", 0.0))


def save_cache(
    path: Path, args: argparse.Namespace, items: list[Item], wall: float
) -> None:
    data = {
        "key": cache_key(args),
        "wall_s": round(wall, 1),
        "answers": [
            {
                "index": i.index,
                "answer": i.answer,
                "tokens": i.answer_tokens,
                "seconds": round(i.answer_seconds, 3),
                "truncated": i.truncated,
            }
            for i in items
        ],
    }
    path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")


def parse_args(given: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--out", default=None, help="Markdown report path")
    parser.add_argument("--cache", default=str(DEFAULT_CACHE))
    parser.add_argument("--fresh", action="store_true", help="ignore cached answers")
    parser.add_argument(
        "--answers-only", action="store_true", help="generate and cache answers, stop"
    )
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--judge-max-tokens", type=int, default=64)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument(
        "--threads", type=int, default=1, help="llama.cpp threads per server"
    )
    parser.add_argument(
        "--zero-shot", action="store_true", help="no worked example in the prompt"
    )
    parser.add_argument("--answerer-url", default=None)
    parser.add_argument("--judge-url", default=None)
    return parser.parse_args(given)


def get_answers(
    items: list[Item],
    args: argparse.Namespace,
    answerer: BaseChatModel,
    walls: dict[str, float],
) -> str:
    """Fill the answers from the cache or the answerer; the report's note on it."""
    cache = Path(args.cache)
    cached_wall = load_cache(cache, args, items)
    if cached_wall is not None:
        walls["answers (cached; when generated)"] = cached_wall
        return (
            f"**The answers were read from the cache `{cache.name}`, not "
            "regenerated** (pass `--fresh` to regenerate them); the gates ran live."
        )
    started = time.perf_counter()
    answer_all(items, answerer, args.concurrency, args.max_tokens)
    walls["answers"] = time.perf_counter() - started
    save_cache(cache, args, items, walls["answers"])
    return f"The answers were generated in this run (cached to `{cache.name}`)."


def run_gates(
    items: list[Item],
    gates: dict[str, Gate],
    answerer: BaseChatModel,
    concurrency: int,
    walls: dict[str, float],
) -> None:
    """Every gate on every answer; the judge's server works beside the 0.5B's."""
    small_gates = ["self-check", "consistency"]

    def small_work(item: Item) -> None:
        for name in small_gates:
            run_gate(name, gates[name], item, answerer)

    def judge_work(item: Item) -> None:
        run_gate("judge", gates["judge"], item, answerer)

    def timed(work: Callable[[Item], None], key: str) -> None:
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            list(pool.map(work, items))
        walls[key] = time.perf_counter() - started

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=2) as both:
        jobs = [
            both.submit(timed, small_work, "self-check + consistency"),
            both.submit(timed, judge_work, "judge"),
        ]
        for job in jobs:
            job.result()
    walls["gates"] = time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    given = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(given)
    global ONE_SHOT  # noqa: PLW0603 - one setting for the whole run
    ONE_SHOT = not args.zero_shot

    items = load_items(resolve_data_dir(args.data_dir), args.n)
    walls: dict[str, float] = {}
    started_all = time.perf_counter()
    with served(args) as factory:
        make = factory["chat_model"]
        answerer = make(ANSWERER, temperature=0, max_tokens=args.max_tokens)
        judge = make(JUDGE, temperature=0, max_tokens=args.judge_max_tokens)
        cache_note = get_answers(items, args, answerer, walls)
        label(items)
        print(
            f"answers: {sum(i.correct for i in items)}/{len(items)} right", flush=True
        )
        gates: dict[str, Gate] = {
            "self-check": SelfCheckGate(),
            "judge": JudgeGate(judge=judge),
            "consistency": ConsistencyGate(samples=3, extract=extract_number),
        }
        run_gates(items, gates, answerer, args.concurrency, walls)
    walls["total"] = time.perf_counter() - started_all

    names = list(gates)
    for name in names:
        m = metrics(items, name)
        print(
            f"{name}: precision {fmt(m['precision'])}, recall {fmt(m['recall'])}, "
            f"escalation {fmt(m['escalation'])}, tokens {m['tokens']}, "
            f"{m['seconds']:.0f} s",
            flush=True,
        )
    report = render(
        items,
        names,
        args,
        regenerate_command(
            "benchmarks.llm_gate_quality",
            given,
            ["--answerer-url", "--judge-url", "--data-dir"],
        ),
        cache_note,
        walls,
    )
    if args.out:
        Path(args.out).write_text(report, encoding="utf-8")
    else:
        print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
