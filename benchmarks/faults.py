"""The fault table: every injected fault, N runs in every mode, and what leaked.

Runs :data:`tests.fault_matrix.FAULTS` (the same matrix and the same misbehaving
OpenAI server as ``tests/unit_tests/test_faults.py``) ``--runs`` times in each
mode the fault applies to, with real ``ChatOpenAI`` tiers on 127.0.0.1, and
counts what the caller got: an answer from tier 0, an escalated answer,
``CascadeError`` with every attempt, or its own cancellation; plus the runs that
leaked a task, thread, descriptor, socket or process, and the runs whose outcome
or evidence did not match the fault's expectation ("wrong").

Run: ``python -m benchmarks.faults [--runs 5] [--out benchmarks/results/faults.md]``
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path

from benchmarks.common import markdown_table
from tests.fault_matrix import FAULTS, Fault, Result, run
from tests.openai_server import OpenAIServer

RESULTS = Path(__file__).parent / "results"


def run_matrix(runs: int) -> list[tuple[Fault, list[Result]]]:
    """Every fault ``runs`` times in each of its modes."""
    table: list[tuple[Fault, list[Result]]] = []
    with OpenAIServer() as server:
        for fault in FAULTS:
            results = [
                run(fault, mode, server) for _ in range(runs) for mode in fault.modes
            ]
            table.append((fault, results))
    return table


def rows(table: list[tuple[Fault, list[Result]]]) -> list[list[object]]:
    """One row per fault: runs, outcomes, leaks, mismatches."""
    out: list[list[object]] = []
    for fault, results in table:
        outcomes = Counter(r.outcome for r in results)
        leaked = sum(1 for r in results if r.leaked or r.loop_errors)
        wrong = sum(1 for r in results if r.problems())
        out.append(
            [
                fault.name,
                "/".join(fault.modes) if len(fault.modes) < 4 else "all 4",
                fault.expect,
                len(results),
                outcomes["answered"],
                outcomes["escalated"],
                outcomes["raised"],
                outcomes["cancelled"],
                leaked,
                wrong,
            ]
        )
    return out


HEADERS = [
    "fault",
    "modes",
    "expected",
    "runs",
    "answered",
    "escalated",
    "raised",
    "cancelled",
    "leaked",
    "wrong",
]


def problems(table: list[tuple[Fault, list[Result]]]) -> list[str]:
    """Each distinct problem, with the number of runs that had it."""
    seen = Counter(
        f"{fault.name} / {r.mode}: {r.problems()[0]}"
        for fault, results in table
        for r in results
        if r.problems()
    )
    return [f"{text} ({count}x)" for text, count in seen.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per fault and mode")
    parser.add_argument("--out", type=Path, default=RESULTS / "faults.md")
    args = parser.parse_args()
    started = time.perf_counter()
    table = run_matrix(args.runs)
    seconds = time.perf_counter() - started
    body = markdown_table(HEADERS, rows(table), align="lllrrrrrrr")
    total = sum(len(results) for _, results in table)
    issues = problems(table)
    lines = [
        "# Fault injection",
        "",
        f"`python -m benchmarks.faults --runs {args.runs}`: {len(table)} faults, "
        f"{total} calls in {seconds:.0f} s, real `ChatOpenAI` tiers (max_retries=0 "
        "unless the row says otherwise) against `tests/openai_server.py` on "
        "127.0.0.1. A two-tier cascade, tier 0 gated by a logprob gate (or the row's "
        "own gate). *leaked*: runs that left an asyncio task, thread, file "
        "descriptor, socket or child process open (or made the event loop report "
        "an error); *wrong*: runs whose outcome or metadata did not match the "
        "fault's expectation.",
        "",
        body,
        "",
    ]
    if issues:
        lines += ["Problems:", "", *[f"- {p}" for p in issues], ""]
    text = "\n".join(lines)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
