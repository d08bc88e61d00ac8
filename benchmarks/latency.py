"""Latency of the cascade's modes: sequential, speculative, early abort, both.

Every call is streamed (``astream``) and timed to its first content token (TTFT)
and to its last chunk (the full answer). Queries:

- **easy**: the cheap tier's answer passes its gate;
- **hard, hedges**: the cheap tier starts with a hedge ("I'm not sure, ...")
  and is rejected;
- **hard, confidence collapses**: the cheap tier's first tokens have low
  logprobs and it is rejected by a logprob gate.

For each query the premium tier alone is timed in the same rounds (its own
latency, the target's yardstick). The modes take turns in a different order
each round, so slow and quiet moments of the machine spread over all of them.

Two sets of tiers:

1. **fakes** with controlled latency (``benchmarks.paced.PacedChatModel``: a
   time to first token, then a fixed time per token), where the tiers do not
   compete for anything: what the modes do, free of the hardware;
2. **the real local models**, Qwen2.5-Coder 0.5B -> 1.5B served by xllamacpp
   on this machine's CPU (``--real``), where both tiers share the same cores.

Per mode: median and p95 of TTFT and full-answer time, the extra tokens (all
tokens of runs that did not give the answer: rejected drafts and cancelled
speculative runs) and the call's cost. Costs use illustrative prices.

Targets (issue 9): on a hard query with two tiers, speculative mode's full
answer within 1.1x the premium tier's own; early abort saves at least half of
a rejected cheap generation's time when the draft hedges or its confidence
collapses in its first quarter; on easy queries speculative's extra cost is
reported.

Run: ``python -m benchmarks.latency [--rounds 15] [--real] [--real-rounds 3]``
(writes ``benchmarks/results/latency.md``).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel

from benchmarks.common import RESULTS_DIR, markdown_table
from benchmarks.paced import PacedChatModel
from langchain_cascade import CascadingChatModel, ModelPrice
from langchain_cascade.gates import Gate, HedgingGate, LogprobGate, all_of

MODES: dict[str, dict[str, Any]] = {
    "sequential": {},
    "speculative": {"speculative": True},
    "early abort": {"early_abort": True},
    "both": {"speculative": True, "early_abort": True},
}
PREMIUM_ALONE = "premium alone"

FAKE_PRICES = {
    "cheap": ModelPrice(input_per_million=0.15, output_per_million=0.6),
    "premium": ModelPrice(input_per_million=2.5, output_per_million=10.0),
}
"""Illustrative prices (a small and a large hosted model's list prices)."""

FAKE_TOKENS = 40
EASY = " ".join(["Paris is the capital of France."] * 7)
HEDGE = "I'm not sure, " + " ".join(["it could be Lyon or maybe Marseille."] * 6)


@dataclass
class Sample:
    """One streamed call."""

    ttft_s: float
    total_s: float
    tier: int | None = None
    extra_tokens: int = 0
    cost: float | None = None
    cheap_attempt_s: float | None = None
    cheap_tokens: int | None = None
    cheap_aborted: bool = False


@dataclass
class Query:
    """A prompt and the tiers (and gate) that answer it."""

    name: str
    prompt: str
    models: Sequence[BaseChatModel]
    gate: Gate
    prices: dict[str, ModelPrice]
    samples: dict[str, list[Sample]] = field(default_factory=dict)


def _tokens(usage: object) -> int:
    if isinstance(usage, dict):
        return int(usage.get("total_tokens") or 0)
    return 0


async def _stream_once(model: BaseChatModel, prompt: str, **kwargs: Any) -> Sample:
    started = time.perf_counter()
    first: float | None = None
    last: Any = None
    async for chunk in model.astream(prompt, **kwargs):
        if first is None and chunk.text:
            first = time.perf_counter()
        last = chunk
    total = time.perf_counter() - started
    ttft = (first or time.perf_counter()) - started
    sample = Sample(ttft_s=ttft, total_s=total)
    meta = (last.response_metadata if last is not None else {}).get("cascade")
    if meta:
        sample.tier = meta["tier"]
        sample.cost = meta["cost"]["total"]
        extra = [a for a in meta["attempts"] if not a["accepted"]]
        sample.extra_tokens = sum(_tokens(a["usage"]) for a in extra) + sum(
            _tokens(a["usage"]) for a in meta["cancelled_attempts"]
        )
        cheap = next((a for a in meta["attempts"] if a["tier"] == 0), None)
        if cheap is not None:
            sample.cheap_attempt_s = cheap["latency_s"]
            usage = cheap["usage"] or {}
            sample.cheap_tokens = usage.get("output_tokens")
            sample.cheap_aborted = cheap["aborted"]
    return sample


async def run_queries(queries: Sequence[Query], rounds: int) -> None:
    """Time every mode and the premium tier alone on every query, ``rounds`` times."""
    names = [*MODES, PREMIUM_ALONE]
    for query in queries:
        cascade = CascadingChatModel(
            models=list(query.models), gates=[query.gate], prices=query.prices
        )
        await _stream_once(cascade, query.prompt)  # warm-up (caches, connections)
        for r in range(rounds):
            order = names[r % len(names) :] + names[: r % len(names)]
            if r % 2:
                order.reverse()
            for name in order:
                if name == PREMIUM_ALONE:
                    sample = await _stream_once(query.models[-1], query.prompt)
                else:
                    sample = await _stream_once(cascade, query.prompt, **MODES[name])
                query.samples.setdefault(name, []).append(sample)


def _p(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _s(seconds: float) -> str:
    return f"{seconds:.3f}s" if seconds < 10 else f"{seconds:.1f}s"


def _money(value: float | None) -> str:
    return "-" if value is None else f"${value * 1e6:.2f}/M calls"


def table(queries: Sequence[Query]) -> str:
    """The latency table of one set of tiers."""
    headers = [
        "query",
        "mode",
        "answered by",
        "TTFT p50",
        "TTFT p95",
        "full p50",
        "full p95",
        "full p50 / premium alone",
        "extra tokens (mean)",
        "cost (mean)",
    ]
    rows = []
    for query in queries:
        alone = statistics.median(s.total_s for s in query.samples[PREMIUM_ALONE])
        for name in [*MODES, PREMIUM_ALONE]:
            samples = query.samples[name]
            ttft = [s.ttft_s for s in samples]
            total = [s.total_s for s in samples]
            tiers = sorted({s.tier for s in samples if s.tier is not None})
            costs = [s.cost for s in samples if s.cost is not None]
            rows.append(
                [
                    query.name,
                    name,
                    ",".join(f"tier {t}" for t in tiers) or "premium",
                    _s(_p(ttft, 0.5)),
                    _s(_p(ttft, 0.95)),
                    _s(_p(total, 0.5)),
                    _s(_p(total, 0.95)),
                    f"{statistics.median(total) / alone:.2f}x",
                    f"{statistics.mean(s.extra_tokens for s in samples):.0f}",
                    _money(statistics.mean(costs)) if costs else "-",
                ]
            )
    return markdown_table(headers, rows, align="llllrrrrrr")


def targets(queries: Sequence[Query]) -> list[str]:
    """The issue's targets, each MET or MISSED with its figure."""
    lines = []
    for query in queries:
        samples = query.samples
        alone = statistics.median(s.total_s for s in samples[PREMIUM_ALONE])
        if query.name.startswith("hard"):
            spec = statistics.median(s.total_s for s in samples["speculative"])
            ratio = spec / alone
            verdict = "MET" if ratio <= 1.1 else "MISSED"
            lines.append(
                f"- {query.name}: speculative full answer {_s(spec)} = {ratio:.2f}x "
                f"the premium tier alone ({_s(alone)}); target <= 1.1x: **{verdict}**"
            )
            seq = [
                s.cheap_attempt_s for s in samples["sequential"] if s.cheap_attempt_s
            ]
            ab = [
                s.cheap_attempt_s for s in samples["early abort"] if s.cheap_attempt_s
            ]
            aborted = [s for s in samples["early abort"] if s.cheap_aborted]
            if seq and ab:
                saved = 1 - statistics.median(ab) / statistics.median(seq)
                verdict = "MET" if saved >= 0.5 else "MISSED"
                seen = [
                    s.cheap_tokens for s in samples["early abort"] if s.cheap_tokens
                ]
                lines.append(
                    f"- {query.name}: early abort stopped the cheap draft in "
                    f"{len(aborted)}/{len(samples['early abort'])} calls, after "
                    f"{statistics.median(seen) if seen else 0:.0f} tokens (median); "
                    f"its time {_s(statistics.median(ab))} vs {_s(statistics.median(seq))}"
                    f" for the whole rejected draft: {saved:.0%} saved; target >= 50%: "
                    f"**{verdict}**"
                )
        else:
            seq_cost = statistics.mean(
                s.cost for s in samples["sequential"] if s.cost is not None
            )
            spec_cost = statistics.mean(
                s.cost for s in samples["speculative"] if s.cost is not None
            )
            extra = statistics.mean(s.extra_tokens for s in samples["speculative"])
            lines.append(
                f"- {query.name}: speculative costs {_money(spec_cost)} vs "
                f"{_money(seq_cost)} sequential (+{spec_cost / seq_cost - 1:.0%}), "
                f"{extra:.0f} extra tokens a call spent by the cancelled premium run "
                "(reported, not hidden)"
            )
    return lines


def fake_queries() -> list[Query]:
    """The three queries on fakes: cheap 20 ms + 5 ms/token, premium 120 ms + 12.5 ms/token."""

    def tiers(reply: str, logprobs: list[float]) -> list[BaseChatModel]:
        return [
            PacedChatModel(
                model="cheap",
                reply=reply,
                first_token_s=0.02,
                token_s=0.005,
                logprobs=logprobs,
                max_tokens=FAKE_TOKENS,
            ),
            PacedChatModel(
                model="premium",
                reply=EASY,
                first_token_s=0.12,
                token_s=0.0125,
                max_tokens=FAKE_TOKENS,
            ),
        ]

    gate = all_of(HedgingGate(), LogprobGate(threshold=0.8))
    collapse = [-3.0] * 10 + [-0.01] * (FAKE_TOKENS - 10)
    return [
        Query("easy", "Capital of France?", tiers(EASY, [-0.01]), gate, FAKE_PRICES),
        Query("hard, hedges", "Capital?", tiers(HEDGE, [-0.01]), gate, FAKE_PRICES),
        Query(
            "hard, confidence collapses",
            "Capital?",
            tiers(EASY, collapse),
            gate,
            FAKE_PRICES,
        ),
    ]


REAL_MAX_TOKENS = 32
REAL_EASY = "What is the capital of France? Answer in one sentence."
REAL_HARD = "What will the weather be in Paris tomorrow? Answer in one sentence."
REAL_GATE_NOTE = (
    "`all_of(HedgingGate(), LogprobGate(aggregation='min_prob', threshold=0.3))`"
)


def real_tiers(lm: Any, max_tokens: int = REAL_MAX_TOKENS) -> list[BaseChatModel]:
    """The real tiers of ``lm`` (a ``LocalModels``): Qwen2.5-Coder 0.5B, then 1.5B.

    Temperature 0, with logprobs and streamed usage.
    """
    return [
        lm.chat_model(
            name,
            temperature=0,
            max_tokens=max_tokens,
            logprobs=True,
            stream_usage=True,
        )
        for name in ("qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b")
    ]


def real_gate() -> Gate:
    """The real tiers' gate (``REAL_GATE_NOTE``)."""
    return all_of(HedgingGate(), LogprobGate(aggregation="min_prob", threshold=0.3))


def real_queries(lm: Any) -> list[Query]:
    """Qwen2.5-Coder 0.5B -> 1.5B; the 0.5B guesses the hard query's answer unsure."""
    from langchain_cascade.local_models import example_prices

    gate = real_gate()
    prices = example_prices()
    return [
        Query("easy", REAL_EASY, real_tiers(lm), gate, prices),
        Query("hard, unsure", REAL_HARD, real_tiers(lm), gate, prices),
    ]


def report(
    fakes: list[Query], real: list[Query] | None, args: argparse.Namespace
) -> str:
    """The results page."""
    parts = [
        "# Latency modes",
        "",
        f"Command: `python -m benchmarks.latency --rounds {args.rounds}"
        + (
            f" --real --real-rounds {args.real_rounds} --threads {args.threads}`"
            if real
            else "`"
        ),
        "",
        "Every call streamed with `astream`; TTFT = time to the first content token; "
        "full = time to the last chunk. Extra tokens: every token of runs that did not "
        "give the answer (rejected drafts, cancelled speculative runs; a cancelled "
        "run's tokens are estimated from its chunks and the prompt's size). Modes "
        "take turns in a different order each round.",
        "",
        f"## Fakes with controlled latency ({args.rounds} rounds)",
        "",
        "Cheap tier: 20 ms to its first token, then 5 ms a token; premium: 120 ms, "
        f"then 12.5 ms a token; {FAKE_TOKENS} tokens each. Gate: "
        "`all_of(HedgingGate(), LogprobGate(threshold=0.8))`; illustrative prices "
        "$0.15/$0.60 and $2.50/$10 per 1M tokens in/out.",
        "",
        table(fakes),
        "",
        *targets(fakes),
        "",
    ]
    if real:
        parts += [
            f"## Real local models ({args.real_rounds} rounds)",
            "",
            "Qwen2.5-Coder-0.5B -> Qwen2.5-Coder-1.5B (Q4_K_M, xllamacpp, greedy, "
            f"max_tokens {REAL_MAX_TOKENS}, logprobs), both servers on this machine's "
            f"2 CPU cores, shared with other jobs, {args.threads} CPU thread(s) per "
            "server (speculative mode runs both servers at once: with more threads "
            "than cores, llama.cpp's threads wait on each other and a call can stall "
            f"for seconds). Gate: {REAL_GATE_NOTE}. Easy: "
            f"{REAL_EASY!r}; hard: {REAL_HARD!r} (the 0.5B guesses, with shaky "
            "tokens). EXAMPLE prices (see "
            "`langchain_cascade.local_models.example_prices`).",
            "",
            table(real),
            "",
            *targets(real),
            "",
        ]
    return "\n".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--real", action="store_true", help="also the local models")
    parser.add_argument("--real-rounds", type=int, default=3)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="CPU threads per local server (1: each model its own core of two)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "latency.md")
    args = parser.parse_args()

    fakes = fake_queries()
    asyncio.run(run_queries(fakes, args.rounds))
    real = None
    if args.real:
        from langchain_cascade.local_models import LocalModels

        with LocalModels(
            ["qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"], n_threads=args.threads
        ) as lm:
            real = real_queries(lm)
            asyncio.run(run_queries(real, args.real_rounds))
    text = report(fakes, real, args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")
    print(text)
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
