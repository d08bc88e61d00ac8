"""Agent benchmark: tool-using tasks through ``create_agent`` on the local models.

30 tasks with checkable numeric answers over three tools: ``lookup_price`` (a
tiny shop table written below), ``multiply`` and ``add``. Some need one call
(a product, a sum, a price), some two (a price, then a product). Each task runs
in a fresh ``create_agent`` loop (at most ``MAX_MODEL_CALLS`` model calls) under
six systems: the cheap tool-calling model alone (Qwen2.5-Coder-0.5B with the
package's tool template), the strongest alone (Qwen2.5-Coder-1.5B, same
template), the cascade as the agent's model, ``CascadeMiddleware`` around the
strong model, each with and without sticky escalation (scope ``"run"``).

The cascade's gate (one policy for both forms): a tool turn of the 0.5B passes
when its calls are valid (``ToolCallGate``), repeat no earlier call and make it
the run's only call (``ToolLoopGate(max_calls=1)``: measured, the 0.5B picks the
first tool well but keeps calling tools after the result instead of
answering); an answer turn passes the hedging and minimum-length checks.

A task succeeds when the agent's last message states the expected number.
Every model call is recorded (tokens, latency) and cached by its prompt
(``benchmarks/results/agent_calls.json``, model output only): temperature 0
makes a repeated prompt's answer the same, so a prompt seen under one system is
replayed under the next with its measured latency. Wall time is the sum of the
model calls' measured latencies plus the run's own overhead. Costs use the
example price table.

Run: ``python -m benchmarks.agent [--tasks N] [--systems a,b] [--no-cache]``
"""

from __future__ import annotations

import argparse
import hashlib
import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain.agents import create_agent
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.tools import tool
from langgraph.errors import GraphRecursionError
from pydantic import Field

from benchmarks.common import EXAMPLE_PRICES, PRICE_NOTE, RESULTS_DIR, written_numbers
from benchmarks.fakes import ToolFakeChatModel
from langchain_cascade import CascadingChatModel
from langchain_cascade.gates import (
    HedgingGate,
    MinLengthGate,
    ToolCallGate,
    ToolFirstGate,
    ToolLoopGate,
    all_of,
    by_turn,
)
from langchain_cascade.local_models import LocalModels
from langchain_cascade.middleware import CascadeMiddleware
from langchain_cascade.pricing import price_of

CHEAP, STRONG = "qwen2.5-coder-0.5b-tools", "qwen2.5-coder-1.5b-tools"
MAX_MODEL_CALLS = 4
MAX_TOKENS = 64
CACHE_PATH = RESULTS_DIR / "agent_calls.json"

SHOP = {
    "notebook": 3.5,
    "pencil": 0.75,
    "eraser": 1.25,
    "stapler": 8.0,
    "ruler": 2.5,
    "backpack": 24.0,
    "marker": 1.5,
    "glue": 2.25,
}


@tool
def lookup_price(item: str) -> str:
    """Look up the price in dollars of one item in the shop's price table."""
    price = SHOP.get(item.strip().lower().rstrip("s"))
    return "unknown item" if price is None else f"{price:g}"


@tool
def multiply(a: float, b: float) -> float:
    """Multiply two numbers."""
    return a * b


@tool
def add(a: float, b: float) -> float:
    """Add two numbers."""
    return a + b


TOOLS = [lookup_price, multiply, add]

TASKS: list[tuple[str, float]] = [
    ("What is 37 times 24?", 888),
    ("What is 125 plus 378?", 503),
    ("How much does a notebook cost?", 3.5),
    ("How much do 6 notebooks cost?", 21),
    ("What is 19 times 43?", 817),
    ("What is 2048 plus 977?", 3025),
    ("How much does a stapler cost?", 8),
    ("How much do 4 backpacks cost?", 96),
    ("What is 56 times 78?", 4368),
    ("What is 333 plus 444?", 777),
    ("What is the price of a pencil?", 0.75),
    ("How much do 12 pencils cost?", 9),
    ("What is 15 times 15?", 225),
    ("What is 1234 plus 4321?", 5555),
    ("How much does an eraser cost?", 1.25),
    ("How much do 8 erasers cost?", 10),
    ("What is 91 times 11?", 1001),
    ("What is 87 plus 913?", 1000),
    ("What is the price of a ruler?", 2.5),
    ("How much do 3 rulers cost?", 7.5),
    ("What is 64 times 32?", 2048),
    ("What is 250 plus 750?", 1000),
    ("How much does a marker cost?", 1.5),
    ("How much do 10 markers cost?", 15),
    ("What is 27 times 36?", 972),
    ("What is 6543 plus 210?", 6753),
    ("How much does glue cost?", 2.25),
    ("How much do 4 glue sticks cost?", 9),
    ("What is 72 times 5?", 360),
    ("How much do 2 staplers cost?", 16),
]


# --- recorded, cached model calls ----------------------------------------------


@dataclass
class Ledger:
    """What the model calls of one task cost: calls, tokens and latency per model."""

    calls: dict[str, int] = field(default_factory=dict)
    tokens: dict[str, tuple[int, int]] = field(default_factory=dict)
    latency_s: float = 0.0
    live_s: float = 0.0

    def add(
        self, model: str, usage: dict[str, Any], latency: float, live: float
    ) -> None:
        self.calls[model] = self.calls.get(model, 0) + 1
        inp, out = self.tokens.get(model, (0, 0))
        self.tokens[model] = (inp + usage["input_tokens"], out + usage["output_tokens"])
        self.latency_s += latency
        self.live_s += live

    def cost(self) -> float:
        return sum(
            price_of(
                EXAMPLE_PRICES,
                model,
                {"input_tokens": i, "output_tokens": o, "total_tokens": i + o},
            )
            or 0.0
            for model, (i, o) in self.tokens.items()
        )


class CallCache:
    """Model answers by prompt, with their measured latency (a JSON file)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.entries: dict[str, dict[str, Any]] = {}
        if path is not None and path.exists():
            self.entries = json.loads(path.read_text())

    def save(self) -> None:
        if self.path is not None:
            with self.lock:
                text = json.dumps(self.entries, indent=0, sort_keys=True)
            self.path.write_text(text + "\n")


def _prompt_key(model: str, messages: list[BaseMessage], kwargs: dict[str, Any]) -> str:
    """The prompt as the server sees it, without the random tool-call ids."""
    shown = [
        {
            "type": m.type,
            "content": m.content,
            "calls": [(c["name"], c["args"]) for c in getattr(m, "tool_calls", [])],
        }
        for m in messages
    ]
    tools = [t["function"]["name"] for t in kwargs.get("tools", [])]
    blob = json.dumps([model, shown, tools, kwargs.get("tool_choice")], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


class RecordedModel(ToolFakeChatModel):
    """A local model whose every call is recorded in a ledger and cached by prompt."""

    fake_type = "recorded-local"
    ls_name_field = "alias"

    alias: str
    inner: Any = Field(exclude=True)
    store: Any = Field(exclude=True)
    box: Any = Field(exclude=True)
    """Holds the current task's ledger; shared by the copies tiers make."""

    def _reply(
        self, messages: list[BaseMessage], stop: list[str] | None, **kwargs: Any
    ) -> AIMessage:
        key = _prompt_key(self.alias, messages, kwargs)
        entry = self.store.entries.get(key)
        live = 0.0
        if entry is None:
            tools = kwargs.pop("tools", None)
            choice = kwargs.pop("tool_choice", None)
            model = self.inner
            if tools:
                model = model.bind_tools(tools, tool_choice=choice)
            started = time.perf_counter()
            message = model.invoke(messages, stop=stop, **kwargs)
            live = time.perf_counter() - started
            entry = {
                "message": message.model_dump(
                    include={
                        "content",
                        "tool_calls",
                        "invalid_tool_calls",
                        "usage_metadata",
                    }
                ),
                "latency_s": live,
            }
            with self.store.lock:
                self.store.entries[key] = entry
        message = AIMessage(**entry["message"])
        if (ledger := self.box.get("ledger")) is not None:
            ledger.add(
                self.alias, entry["message"]["usage_metadata"], entry["latency_s"], live
            )
        return message


# --- systems --------------------------------------------------------------------

TOOL_GATE = all_of(ToolCallGate(), ToolLoopGate(max_calls=1))
ANSWER_GATE = all_of(MinLengthGate(min_chars=1), HedgingGate())
ANSWER_GATE_TOOL_FIRST = all_of(
    MinLengthGate(min_chars=1), HedgingGate(), ToolFirstGate()
)
"""The answer gate plus ``ToolFirstGate``, added after the first run showed the 0.5B
writing a call as unparsed text to a fresh question (which the plain answer gate
accepted): the "+ToolFirstGate" rows are not a held-out figure."""


def build_systems(
    cheap: RecordedModel, strong: RecordedModel
) -> dict[str, Callable[[], Any]]:
    def cascade(sticky: Any, answer: Any = ANSWER_GATE) -> Any:
        gate = by_turn(tool_calls=TOOL_GATE, answer=answer)
        model = CascadingChatModel(
            models=[cheap, strong], gates=[gate], prices=EXAMPLE_PRICES, sticky=sticky
        )
        return create_agent(model, tools=TOOLS)

    def middleware(sticky: Any, answer: Any = ANSWER_GATE) -> Any:
        layer = CascadeMiddleware(
            [cheap],
            gates=answer,
            tool_gate=TOOL_GATE,
            prices=EXAMPLE_PRICES,
            sticky=sticky,
        )
        return create_agent(strong, tools=TOOLS, middleware=[layer])

    first = ANSWER_GATE_TOOL_FIRST
    return {
        "0.5B alone": lambda: create_agent(cheap, tools=TOOLS),
        "1.5B alone": lambda: create_agent(strong, tools=TOOLS),
        "cascade model": lambda: cascade(None),
        "cascade model, sticky": lambda: cascade("run"),
        "middleware": lambda: middleware(None),
        "middleware, sticky": lambda: middleware("run"),
        "cascade model +ToolFirstGate": lambda: cascade(None, first),
        "cascade model, sticky +ToolFirstGate": lambda: cascade("run", first),
        "middleware +ToolFirstGate": lambda: middleware(None, first),
        "middleware, sticky +ToolFirstGate": lambda: middleware("run", first),
    }


def states(text: str, expected: float) -> bool:
    """Whether ``text`` states ``expected`` (any number in it equal to it)."""
    return any(abs(float(n) - expected) < 1e-6 for n in written_numbers(text))


@dataclass
class TaskResult:
    system: str
    task: int
    success: bool
    model_calls: int
    tokens: int
    cost: float
    wall_s: float
    error: str = ""
    answered_by: str = ""


def run_task(
    agent: Any, ledger: Ledger, question: str, expected: float
) -> tuple[bool, str, str]:
    try:
        result = agent.invoke(
            {"messages": [HumanMessage(question)]},
            {"recursion_limit": 2 * MAX_MODEL_CALLS},
        )
    except GraphRecursionError:
        return False, "", f"no answer within {MAX_MODEL_CALLS} model calls"
    final = result["messages"][-1]
    text = final.text if isinstance(final, AIMessage) else ""
    return states(text, expected), text, ""


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=len(TASKS))
    parser.add_argument("--systems", default="", help="comma-separated subset")
    parser.add_argument(
        "--no-cache", action="store_true", help="do not read or write the call cache"
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="CPU threads per model server"
    )
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)

    cache = CallCache(None if args.no_cache else CACHE_PATH)
    tasks = TASKS[: args.tasks]
    results: list[TaskResult] = []
    started_all = time.perf_counter()
    with LocalModels([CHEAP, STRONG], n_threads=args.threads, n_parallel=1) as local:
        box: dict[str, Ledger] = {}
        cheap, strong = (
            RecordedModel(
                alias=alias,
                box=box,
                inner=local.chat_model(
                    alias, temperature=0, max_tokens=MAX_TOKENS, timeout=300
                ),
                store=cache,
            )
            for alias in (CHEAP, STRONG)
        )
        systems = build_systems(cheap, strong)
        chosen = [s for s in args.systems.split(",") if s] or list(systems)
        for name in chosen:
            agent = systems[name]()
            for index, (question, expected) in enumerate(tasks):
                ledger = Ledger()
                box["ledger"] = ledger
                t0 = time.perf_counter()
                ok, text, error = run_task(agent, ledger, question, expected)
                elapsed = time.perf_counter() - t0
                wall = ledger.latency_s + max(0.0, elapsed - ledger.live_s)
                results.append(
                    TaskResult(
                        system=name,
                        task=index,
                        success=ok,
                        model_calls=sum(ledger.calls.values()),
                        tokens=sum(i + o for i, o in ledger.tokens.values()),
                        cost=ledger.cost(),
                        wall_s=wall,
                        error=error,
                        answered_by=text[:80],
                    )
                )
                print(
                    f"{name:22s} #{index:02d} {'ok ' if ok else 'NO '} calls={sum(ledger.calls.values())} "
                    f"{dict(ledger.calls)} wall={wall:5.1f}s {error or text[:60]!r}",
                    flush=True,
                )
                cache.save()
    report(results, tasks, args.out_dir, time.perf_counter() - started_all)


def report(
    results: list[TaskResult],
    tasks: Sequence[tuple[str, float]],
    out_dir: Path,
    total_s: float,
) -> None:
    systems = list(dict.fromkeys(r.system for r in results))
    baseline = [r for r in results if r.system == "1.5B alone"]
    base_cost = sum(r.cost for r in baseline) / len(baseline) if baseline else None
    lines = [
        "# Agent benchmark (create_agent, local tool-calling models)",
        "",
        f"{len(tasks)} tool-using tasks, at most {MAX_MODEL_CALLS} model calls each, "
        f"max_tokens {MAX_TOKENS}, temperature 0. {PRICE_NOTE}",
        "",
        "| system | task success | model calls / task | tokens / task | cost / task | vs 1.5B alone | wall time / task |",
        "|---|---|---|---|---|---|---|",
    ]
    summary: dict[str, dict[str, float]] = {}
    for name in systems:
        rows = [r for r in results if r.system == name]
        n = len(rows)
        cost = sum(r.cost for r in rows) / n
        row = {
            "success": sum(r.success for r in rows) / n,
            "calls": sum(r.model_calls for r in rows) / n,
            "tokens": sum(r.tokens for r in rows) / n,
            "cost": cost,
            "wall_s": sum(r.wall_s for r in rows) / n,
        }
        summary[name] = row
        versus = f"{cost / base_cost - 1:+.0%}" if base_cost else ""
        lines.append(
            f"| {name} | {sum(r.success for r in rows)}/{n} ({row['success']:.0%}) | "
            f"{row['calls']:.2f} | {row['tokens']:.0f} | ${cost:.3g} | {versus} | {row['wall_s']:.1f}s |"
        )
    lines += [
        "",
        "Model calls count every tier's call (a rejected draft is a call). Wall time is the "
        "sum of the model calls' measured latencies (a prompt repeated across systems is "
        "measured once and replayed from the cache with its latency) plus the agent's own "
        f"overhead. Whole run: {total_s:.0f}s.",
        "",
    ]
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "agent.md").write_text("\n".join(lines))
    (out_dir / "agent.json").write_text(
        json.dumps(
            {"summary": summary, "tasks": [r.__dict__ for r in results]}, indent=1
        )
        + "\n"
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
