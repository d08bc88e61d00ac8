"""What the cascade costs in time when its first tier answers.

Measures, in one run, the per-call time of:

1. a bare child model call,
2. the same child under ``with_fallbacks`` (LangChain's own escalation, on errors),
3. a cascade answering from that child as its first tier, with a deterministic gate
   (its attempt and gate still run as child runs),

each twice: quiet (no callback handler) and with a handler listening (every child
run is then produced: the handler counts them, and the benchmark checks the count).
Prints the ratios and writes them to ``benchmarks/results/overhead.md``. Targets
(issues 2 and 8): the cascade costs at most 2.5x the bare call and at most 20%
more than ``with_fallbacks``.

With ``--real``, the child is the local SmolLM2-135M model served by xllamacpp
(started for the run): then the model's own time dominates and the ratios show
what the overhead means on a real call.

Run: ``python -m benchmarks.overhead [--calls 2000] [--rounds 5] [--real] [--out PATH]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.runnables import RunnableConfig

from langchain_cascade import CascadingChatModel
from langchain_cascade.gates import HedgingGate, MinLengthGate, all_of


def per_call_seconds(
    fns: dict[str, Callable[[], Any]], calls: int, rounds: int
) -> dict[str, float]:
    """Median over ``rounds`` of each function's mean time over ``calls`` calls.

    The functions take turns within each round, so a load that comes and goes on
    the machine weighs on all of them alike.
    """
    for fn in fns.values():
        fn()  # warm up
    means: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            started = time.perf_counter()
            for _ in range(calls):
                fn()
            means[name].append((time.perf_counter() - started) / calls)
    return {name: statistics.median(values) for name, values in means.items()}


class RunCounter(BaseCallbackHandler):
    """A listening handler: counts the chat model and chain runs it sees start."""

    def __init__(self) -> None:
        self.chat_models = 0
        self.chains = 0

    def on_chat_model_start(self, *args: Any, **kwargs: Any) -> None:
        """Count a chat model run."""
        self.chat_models += 1

    def on_chain_start(self, *args: Any, **kwargs: Any) -> None:
        """Count a chain run (the gate's, ``with_fallbacks``')."""
        self.chains += 1


PROMPT = "What is 2 + 2?"


def measure(
    child: BaseChatModel, fallback: BaseChatModel, calls: int, rounds: int
) -> dict[str, float]:
    """Per-call seconds of bare, with_fallbacks and cascade, quiet and with a handler.

    Keys: ``bare``, ``with_fallbacks``, ``cascade``, and the same with ``+handler``.
    """
    cascade = CascadingChatModel(
        models=[child, fallback],
        gates=[all_of(MinLengthGate(min_chars=1), HedgingGate())],
    )
    counter = RunCounter()
    answer = cascade.invoke(PROMPT, RunnableConfig(callbacks=[counter]))
    if answer.response_metadata["cascade"]["tier"] != 0:
        msg = "the first tier must answer for this benchmark"
        raise RuntimeError(msg)
    if counter.chat_models != 2 or counter.chains < 1:
        msg = (
            "with a handler the cascade must produce its run, the tier's and the "
            f"gate's: saw {counter.chat_models} chat model runs, {counter.chains} chains"
        )
        raise RuntimeError(msg)
    with_fallbacks = child.with_fallbacks([fallback])
    listening = RunnableConfig(callbacks=[RunCounter()])
    return per_call_seconds(
        {
            "bare": lambda: child.invoke(PROMPT),
            "with_fallbacks": lambda: with_fallbacks.invoke(PROMPT),
            "cascade": lambda: cascade.invoke(PROMPT),
            "bare+handler": lambda: child.invoke(PROMPT, listening),
            "with_fallbacks+handler": lambda: with_fallbacks.invoke(PROMPT, listening),
            "cascade+handler": lambda: cascade.invoke(PROMPT, listening),
        },
        calls,
        rounds,
    )


def report(title: str, times: dict[str, float]) -> list[str]:
    """Print the figures; return them as markdown table rows (quiet, handler)."""
    rows = []
    print(f"\n{title}")
    for suffix, label in (("", "quiet"), ("+handler", "with a handler")):
        bare = times[f"bare{suffix}"]
        fallbacks = times[f"with_fallbacks{suffix}"]
        cascade = times[f"cascade{suffix}"]
        vs_bare, vs_fallbacks = cascade / bare, cascade / fallbacks
        ok = vs_bare <= 2.5 and vs_fallbacks <= 1.2
        print(f"  {label}:")
        print(f"    bare child call        {bare * 1e3:9.3f} ms/call")
        print(f"    child.with_fallbacks   {fallbacks * 1e3:9.3f} ms/call")
        print(f"    cascade (tier 0 gate)  {cascade * 1e3:9.3f} ms/call")
        print(f"    cascade / bare         {vs_bare:9.2f}x   (target <= 2.5x)")
        print(f"    cascade / fallbacks    {vs_fallbacks:9.2f}x   (target <= 1.2x)")
        print(f"    {'MEETS' if ok else 'MISSES'} the target")
        rows.append(
            f"| {title} | {label} | {bare * 1e3:.3f} ms | {fallbacks * 1e3:.3f} ms "
            f"| {cascade * 1e3:.3f} ms | {vs_bare:.2f}x | {vs_fallbacks:.2f}x "
            f"| {'met' if ok else 'missed'} |"
        )
    return rows


def write_results(path: Path, rows: list[str], command: str) -> None:
    """Write the table, the machine's load and the command to ``path``."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = [
        "# Overhead",
        "",
        "Per-call time, median over rounds of the mean over the calls, the variants "
        "taking turns in each round. Cascade: two tiers, tier 0 accepted by "
        "`all_of(MinLengthGate(min_chars=1), HedgingGate())`. *quiet*: no callback "
        "handler; *with a handler*: a handler listening to every run (the cascade "
        "then produces its run, the tier's run and the gate's run). Target: cascade "
        "<= 2.5x bare and <= 1.2x `with_fallbacks`.",
        "",
        "| child | handlers | bare | with_fallbacks | cascade | cascade / bare "
        "| cascade / with_fallbacks | target |",
        "|:---|:---|---:|---:|---:|---:|---:|:---|",
        *rows,
        "",
        f"Machine: {os.cpu_count()} cores, load average {load:.1f} at the end of the "
        "run (the machine is shared: absolute times vary, the ratios less).",
        "",
        f"`{command}`",
        "",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))


def main() -> None:
    """Measure, print, write the results file."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--real", action="store_true", help="also time a real local model"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("benchmarks/results/overhead.md")
    )
    args = parser.parse_args()

    fake = FakeListChatModel(responses=["4"])
    fallback = FakeListChatModel(responses=["four"])
    rows = report(
        f"in-process fake ({args.calls} calls x {args.rounds} rounds)",
        measure(fake, fallback, args.calls, args.rounds),
    )
    if args.real:
        from langchain_cascade.local_models import LocalModels

        with ExitStack() as stack:
            models = stack.enter_context(LocalModels(["smollm2-135m"]))
            child = models.chat_model("smollm2-135m", temperature=0, max_tokens=4)
            calls = max(5, args.calls // 100)
            rows += report(
                f"SmolLM2-135M on xllamacpp, 4 tokens ({calls} calls x {args.rounds} rounds)",
                measure(child, fallback, calls, args.rounds),
            )
    command = (
        f"python -m benchmarks.overhead --calls {args.calls} --rounds {args.rounds}"
        + (" --real" if args.real else "")
    )
    write_results(args.out, rows, command)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
