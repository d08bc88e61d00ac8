"""What the cascade costs in time when its first tier answers.

Measures, in one run, the per-call time of:

1. a bare child model call,
2. the same child under ``with_fallbacks`` (LangChain's own escalation, on errors),
3. a cascade answering from that child as its first tier, with a deterministic gate
   (its attempt and gate still run as child runs),

and prints the ratios. Targets (issue 2): the cascade costs at most 2.5x the bare
call and at most 20% more than ``with_fallbacks``.

With ``--real``, the child is the local SmolLM2-135M model served by xllamacpp
(started for the run): then the model's own time dominates and the ratios show
what the overhead means on a real call.

Run: ``python -m benchmarks.overhead [--calls 2000] [--real]``
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import FakeListChatModel

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


def measure(
    child: BaseChatModel, fallback: BaseChatModel, calls: int, rounds: int
) -> dict[str, float]:
    cascade = CascadingChatModel(
        models=[child, fallback],
        gates=[all_of(MinLengthGate(min_chars=1), HedgingGate())],
    )
    answer = cascade.invoke("What is 2 + 2?")
    if answer.response_metadata["cascade"]["tier"] != 0:
        msg = "the first tier must answer for this benchmark"
        raise RuntimeError(msg)
    with_fallbacks = child.with_fallbacks([fallback])
    prompt = "What is 2 + 2?"
    return per_call_seconds(
        {
            "bare": lambda: child.invoke(prompt),
            "with_fallbacks": lambda: with_fallbacks.invoke(prompt),
            "cascade": lambda: cascade.invoke(prompt),
        },
        calls,
        rounds,
    )


def report(title: str, times: dict[str, float]) -> bool:
    bare, fallbacks, cascade = times["bare"], times["with_fallbacks"], times["cascade"]
    vs_bare, vs_fallbacks = cascade / bare, cascade / fallbacks
    ok = vs_bare <= 2.5 and vs_fallbacks <= 1.2
    print(f"\n{title}")
    print(f"  bare child call        {bare * 1e3:9.3f} ms/call")
    print(f"  child.with_fallbacks   {fallbacks * 1e3:9.3f} ms/call")
    print(f"  cascade (tier 0 gate)  {cascade * 1e3:9.3f} ms/call")
    print(f"  cascade / bare         {vs_bare:9.2f}x   (target <= 2.5x)")
    print(f"  cascade / fallbacks    {vs_fallbacks:9.2f}x   (target <= 1.2x)")
    print(f"  {'MEETS' if ok else 'MISSES'} the target")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--real", action="store_true", help="also time a real local model"
    )
    args = parser.parse_args()

    fake = FakeListChatModel(responses=["4"])
    fallback = FakeListChatModel(responses=["four"])
    report(
        f"In-process fake child (pure overhead; {args.calls} calls x {args.rounds} rounds)",
        measure(fake, fallback, args.calls, args.rounds),
    )
    if args.real:
        from langchain_cascade.local_models import LocalModels

        with ExitStack() as stack:
            models = stack.enter_context(LocalModels(["smollm2-135m"]))
            child = models.chat_model("smollm2-135m", temperature=0, max_tokens=4)
            calls = max(5, args.calls // 100)
            report(
                f"Real child: SmolLM2-135M on xllamacpp, 4 tokens ({calls} calls x {args.rounds} rounds)",
                measure(child, fallback, calls, args.rounds),
            )


if __name__ == "__main__":
    main()
