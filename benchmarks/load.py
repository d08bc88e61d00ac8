"""Load: one cascade under 1,000 concurrent ``ainvoke`` and a 10,000-item ``abatch``.

The tiers are in-process fake chat models with latency (``asyncio.sleep`` per
call): the cheap tier answers in ``--cheap-ms``, and hedges ("I am not sure.") on
every ``--hedge-every``-th question, which the gate (``HedgingGate``) sends to the
strong tier (``--strong-ms``). Every question carries its number, every answer
names it, so each result can be checked to be its own. A ``CascadeMonitor``
listens to every call. Measured and checked:

- every result is its own (the answer names its question, the tier is the one
  the question's number implies, the metadata has one attempt per tier tried);
- the monitor's counts add up (calls, escalations, per-tier attempts, accepted,
  escalation events, cost);
- memory is back to its starting level: Python's allocated blocks
  (``sys.getallocatedblocks``) and the process RSS after the run and a garbage
  collection, against before it (after a warm-up run);
- throughput against the ideal set by the tiers' latency: all calls at once end
  after the slowest path (cheap + strong); a batch of ``n`` at ``max_concurrency``
  ``c`` needs at least ``sum(latency) / c``.

Run: ``python -m benchmarks.load [--concurrent 1000] [--batch 10000]
[--max-concurrency 200] [--out benchmarks/results/load.md]``
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_core.language_models import LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage, UsageMetadata
from langchain_core.runnables import RunnableConfig

from benchmarks.common import markdown_table
from benchmarks.fakes import AsyncFakeChatModel
from langchain_cascade import CascadeMonitor, CascadingChatModel, ModelPrice
from langchain_cascade.gates import HedgingGate

RESULTS = Path(__file__).parent / "results"
PRICES = {
    "cheap": ModelPrice(input_per_million=1.0, output_per_million=2.0),
    "strong": ModelPrice(input_per_million=10.0, output_per_million=20.0),
}
USAGE = UsageMetadata(input_tokens=10, output_tokens=5, total_tokens=15)


class LatencyChatModel(AsyncFakeChatModel):
    """A fake tier that takes ``latency_s`` and names the question it answers.

    The question is ``"question #<n>"``; the answer ``"<model> answers #<n>"``,
    or ``"I am not sure."`` when ``hedge_every`` divides ``n``.
    """

    fake_type = "latency-fake"
    identifying_fields = ("model", "latency_s")

    model: str
    latency_s: float
    hedge_every: int = 0

    def _wait_s(self) -> float:
        return self.latency_s

    def _async_wait_s(self) -> float:
        return self.latency_s

    def _reply(
        self, messages: list[BaseMessage], stop: list[str] | None, **kwargs: Any
    ) -> AIMessage:
        number = question_number(messages[-1].text)
        hedges = self.hedge_every and number % self.hedge_every == 0
        text = "I am not sure." if hedges else f"{self.model} answers #{number}"
        return AIMessage(
            text,
            usage_metadata=USAGE,
            response_metadata={"model_name": self.model},
        )


def question_number(text: str) -> int:
    """The ``n`` of ``"question #<n>"``."""
    return int(text.rsplit("#", 1)[1])


@dataclass(frozen=True)
class Setup:
    """The load's tiers."""

    cheap_s: float = 0.02
    strong_s: float = 0.05
    hedge_every: int = 4

    def cascade(self) -> CascadingChatModel:
        """The cascade under load."""
        return CascadingChatModel(
            models=[
                LatencyChatModel(
                    model="cheap", latency_s=self.cheap_s, hedge_every=self.hedge_every
                ),
                LatencyChatModel(model="strong", latency_s=self.strong_s),
            ],
            gates=[HedgingGate()],
            prices=PRICES,
        )

    def escalates(self, number: int) -> bool:
        """Whether question ``number`` goes to the strong tier."""
        return number % self.hedge_every == 0

    def ideal_seconds(self, numbers: Sequence[int], concurrency: int) -> float:
        """The shortest possible wall time at ``concurrency`` calls at once."""
        paths = [
            self.cheap_s + (self.strong_s if self.escalates(n) else 0.0)
            for n in numbers
        ]
        return max(*paths, sum(paths) / concurrency)


@dataclass
class Phase:
    """One load phase's figures and problems."""

    name: str
    calls: int
    concurrency: int
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    ideal_seconds: float = 0.0
    escalated: int = 0
    wrong_results: list[str] = field(default_factory=list)
    monitor_problems: list[str] = field(default_factory=list)
    blocks_before: int = 0
    blocks_after: int = 0
    rss_before_kib: int = 0
    rss_after_kib: int = 0

    @property
    def throughput(self) -> float:
        """Calls per second."""
        return self.calls / self.seconds if self.seconds else 0.0

    @property
    def ideal_throughput(self) -> float:
        """Calls per second at the ideal wall time."""
        return self.calls / self.ideal_seconds if self.ideal_seconds else 0.0


def check_results(
    setup: Setup, numbers: Sequence[int], answers: Sequence[Any]
) -> list[str]:
    """Every answer must be its own question's, from the tier its number implies."""
    wrong = []
    for number, answer in zip(numbers, answers, strict=True):
        escalates = setup.escalates(number)
        tier = 1 if escalates else 0
        expected = f"{'strong' if escalates else 'cheap'} answers #{number}"
        meta = answer.response_metadata.get("cascade", {})
        attempts = meta.get("attempts", [])
        if answer.content != expected:
            wrong.append(f"#{number}: {answer.content!r} instead of {expected!r}")
        elif meta.get("tier") != tier or len(attempts) != tier + 1:
            wrong.append(
                f"#{number}: tier {meta.get('tier')}, {len(attempts)} attempts"
            )
    return wrong


def check_monitor(
    monitor: CascadeMonitor,
    numbers: Sequence[int],
    setup: Setup,
    answers: Sequence[Any],
) -> list[str]:
    """The monitor's counts against what the calls returned."""
    summary = monitor.summary()
    escalated = sum(1 for n in numbers if setup.escalates(n))
    n = len(numbers)
    tiers = {t.tier: t for t in summary.tiers}

    def count(tier: int, name: str) -> int:
        return int(getattr(tiers[tier], name)) if tier in tiers else 0

    cost = sum(a.response_metadata["cascade"]["cost"]["total"] for a in answers)
    expected = {
        "calls": (summary.calls, n),
        "failed_calls": (summary.failed_calls, 0),
        "escalated_calls": (summary.escalated_calls, escalated),
        "escalation_events": (summary.escalation_events, escalated),
        "tier 0 attempts": (count(0, "attempts"), n),
        "tier 0 accepted": (count(0, "accepted"), n - escalated),
        "tier 0 escalations": (count(0, "escalations"), escalated),
        "tier 1 answered": (count(1, "answered"), escalated),
        "cost total": (round(summary.cost.total or 0.0, 9), round(cost, 9)),
    }
    return [
        f"{name}: monitor {got}, expected {want}"
        for name, (got, want) in expected.items()
        if got != want
    ]


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def _quiet_blocks() -> int:
    """Allocated blocks once the loop has run what the last calls scheduled.

    Callbacks and executor jobs of finished calls (a handler's last event) still
    hold their calls' objects for a moment; wait (up to 2 s) until the count is
    steady after a garbage collection.
    """
    previous = -1
    for _ in range(40):
        await asyncio.sleep(0.05)
        gc.collect()
        blocks = sys.getallocatedblocks()
        if abs(blocks - previous) < 50:
            return blocks
        previous = blocks
    return previous


async def run_phase(
    setup: Setup, name: str, calls: int, concurrency: int, *, start: int = 0
) -> Phase:
    """One phase: ``calls`` questions at ``concurrency`` (``abatch`` below ``calls``).

    Memory is counted before anything of the phase exists and after all of it
    (cascade, monitor, questions, answers) is dropped.
    """
    phase = Phase(name=name, calls=calls, concurrency=concurrency)
    phase.blocks_before, phase.rss_before_kib = await _quiet_blocks(), _rss_kib()
    cascade = setup.cascade()
    monitor = CascadeMonitor()
    numbers = list(range(start, start + calls))
    questions = [f"question #{n}" for n in numbers]
    config: RunnableConfig = {"callbacks": [monitor]}
    phase.ideal_seconds = setup.ideal_seconds(numbers, concurrency)
    started, cpu = time.perf_counter(), time.process_time()
    if concurrency >= calls:
        answers = await asyncio.gather(
            *(cascade.ainvoke(q, config=config) for q in questions)
        )
    else:
        answers = await cascade.abatch(
            list[LanguageModelInput](questions),
            config={**config, "max_concurrency": concurrency},
        )
    phase.seconds = time.perf_counter() - started
    phase.cpu_seconds = time.process_time() - cpu
    phase.escalated = sum(1 for a in answers if a.response_metadata["cascade"]["tier"])
    phase.wrong_results = check_results(setup, numbers, answers)
    phase.monitor_problems = check_monitor(monitor, numbers, setup, answers)
    del answers, cascade, monitor, numbers, questions, config
    phase.blocks_after = await _quiet_blocks()
    phase.rss_after_kib = _rss_kib()
    return phase


async def run_load(
    setup: Setup, concurrent: int, batch: int, max_concurrency: int
) -> list[Phase]:
    """A warm-up, then the concurrent phase and the batch phase."""
    await run_phase(setup, "warm-up", min(200, concurrent), min(200, concurrent))
    return [
        await run_phase(
            setup, f"{concurrent:,} concurrent ainvoke", concurrent, concurrent
        ),
        await run_phase(
            setup,
            f"{batch:,}-item abatch, max_concurrency={max_concurrency}",
            batch,
            max_concurrency,
            start=concurrent,
        ),
    ]


def report(setup: Setup, phases: Sequence[Phase]) -> str:
    """The load table and what it means."""
    headers = [
        "phase",
        "calls",
        "escalated",
        "wall",
        "ideal",
        "throughput",
        "ideal throughput",
        "of ideal",
        "CPU per call",
        "wrong results",
        "monitor mismatches",
        "blocks retained",
        "RSS change",
    ]
    rows = [
        [
            p.name,
            f"{p.calls:,}",
            f"{p.escalated:,}",
            f"{p.seconds:.2f} s",
            f"{p.ideal_seconds:.2f} s",
            f"{p.throughput:,.0f}/s",
            f"{p.ideal_throughput:,.0f}/s",
            f"{p.throughput / p.ideal_throughput:.0%}",
            f"{p.cpu_seconds / p.calls * 1000:.2f} ms",
            len(p.wrong_results),
            len(p.monitor_problems),
            f"{p.blocks_after - p.blocks_before:+,}",
            f"{(p.rss_after_kib - p.rss_before_kib) / 1024:+.1f} MiB",
        ]
        for p in phases
    ]
    lines = [
        "# Load",
        "",
        f"Tiers: cheap {setup.cheap_s * 1000:.0f} ms (hedges on every "
        f"{setup.hedge_every}th question, escalated by `HedgingGate`), strong "
        f"{setup.strong_s * 1000:.0f} ms; in-process fakes sleeping on the event "
        "loop, one `CascadeMonitor` per phase. *wrong results*: answers not their "
        "own question's, or from the wrong tier; *monitor mismatches*: counts that "
        "do not add up; *blocks retained*: Python's allocated blocks after the "
        "phase and a garbage collection minus before it (after a warm-up); "
        "*ideal*: the tiers' latency alone at that concurrency; *CPU per call*: "
        "the process's CPU time over the phase per call (the cascade's own work "
        "and LangChain's callbacks: past 1 / that rate the event loop is the "
        "limit, whatever the concurrency).",
        "",
        markdown_table(headers, rows, align="lrrrrrrrrrrrr"),
        "",
        f"Machine: {os.cpu_count()} cores, load average "
        f"{os.getloadavg()[0]:.1f} at the end of the run: the wall times and "
        "throughputs include whatever else the machine was doing; CPU per call "
        "is this process's own.",
        "",
    ]
    for p in phases:
        for problem in (p.wrong_results + p.monitor_problems)[:5]:
            lines.append(f"- {p.name}: {problem}")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrent", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--max-concurrency", type=int, default=200)
    parser.add_argument("--cheap-ms", type=float, default=20.0)
    parser.add_argument("--strong-ms", type=float, default=50.0)
    parser.add_argument("--hedge-every", type=int, default=4)
    parser.add_argument("--out", type=Path, default=RESULTS / "load.md")
    args = parser.parse_args()
    setup = Setup(args.cheap_ms / 1000, args.strong_ms / 1000, args.hedge_every)
    phases = asyncio.run(
        run_load(setup, args.concurrent, args.batch, args.max_concurrency)
    )
    text = report(setup, phases)
    text += (
        f"\n`python -m benchmarks.load --concurrent {args.concurrent} --batch "
        f"{args.batch} --max-concurrency {args.max_concurrency}`\n"
    )
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
