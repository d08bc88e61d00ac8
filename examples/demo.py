"""The main job: a cascade of real local models on a realistic workload.

The tiers tier selection kept (``benchmarks/results/tier_selection.md``), served
on this machine by xllamacpp, answer the workload's demo questions: real public
data that nobody here wrote, mostly everyday queries (FrugalGPT HEADLINES: is
this gold-market headline about the price going up, down, steady or none?; and
calculator questions such as "What is 48 / 2?" built from the calculator
annotations of GSM8K's reference solutions, wording ours) and a few hard ones (GSM8K word problems, with up to 256 tokens to reason). The
gate (a format rule, then a weighted mix of two logprob signals) and its
thresholds were fitted by ``fit_demo_thresholds.py`` on a separate fitting
sample of the same workload, never on these questions.

For comparison the strongest tier also answers every question alone, on a
request slot of its own (llama.cpp's ``id_slot``, KV cache split by slot: each
keeps its own prompt cache), so
neither it nor the cascade reuses a prompt the other computed; the two also take
turns going first.

Prints the per-question table (tier that answered, gate verdicts, cost,
latency), the totals under the compute-proportional example prices and under an
API price ratio, the monitor's summary, a frontier picture, and one summary line.

Run: ``make demo`` (sets everything up), or ``python -m examples.demo``.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage

from benchmarks.workload import (
    CALCULATION,
    HEADLINE,
    THREADS,
    WORD_PROBLEM,
    api_prices,
    is_correct,
)
from examples.demo_cascade import build_cascade, load_thresholds, tier_models
from examples.questions import Item, demo_questions
from langchain_cascade import CascadeMonitor
from langchain_cascade.local_models import (
    MODELS,
    LocalModels,
    default_cache_dir,
    example_prices,
)
from langchain_cascade.pricing import ModelPrice, price_of

SHORT = {
    "smollm2-135m": "SmolLM2",
    "qwen2.5-coder-0.5b": "Qwen-0.5B",
    "qwen2.5-coder-1.5b": "Qwen-1.5B",
}

KIND_LABELS = {HEADLINE: "headline", CALCULATION: "calc", WORD_PROBLEM: "problem"}

WARM_UP = Item(HEADLINE, "invented", "Gold steady as traders wait for data", "neutral")
"""An invented query each server answers once before the timed questions, so
that no timed call pays a cold server (its first request is several times slower)."""


@dataclass
class Row:
    item: Item
    answer: str
    meta: dict[str, Any]
    latency_s: float
    correct: bool
    api_cost: float
    strong_answer: str
    strong_correct: bool
    strong_cost: float
    strong_api_cost: float
    strong_latency_s: float


def progress(text: str) -> None:
    """One status line on stderr, overwritten in place."""
    sys.stderr.write("\r\033[K" + text)
    sys.stderr.flush()


def verdicts(meta: dict[str, Any]) -> str:
    """Each gate's score and verdict, e.g. ``0.41 no > final``."""
    parts = []
    for attempt in meta["attempts"]:
        if attempt["gate"] is None:
            parts.append("final" if attempt["error"] is None else "error")
            continue
        score = "-" if attempt["score"] is None else f"{attempt['score']:.2f}"
        parts.append(f"{score} {'ok' if attempt['accepted'] else 'no'}")
    if meta.get("skipped_tiers"):
        parts.insert(0, "routed")
    return " > ".join(parts)


def attempts_cost(meta: dict[str, Any], prices: dict[str, ModelPrice]) -> float:
    """What the cascade's attempts cost under another price table."""
    return sum(
        price_of(prices, a["model"], a["usage"]) or 0.0 for a in meta["attempts"]
    )


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join("-" * w for w in widths)
    fmt = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    head = "  ".join(c.ljust(w) for c, w in zip(header, widths, strict=True))
    return "\n".join([head, line, *fmt])


def micro(value: float) -> str:
    """Dollars as micro-dollars, e.g. ``12.3u``."""
    return f"{value * 1e6:.1f}u"


def clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def ask(
    cascade: Any,
    strong: Any,
    item: Item,
    monitor: CascadeMonitor,
    *,
    strong_first: bool,
    first_tier: int = 0,
) -> tuple[AIMessage, float, AIMessage, float]:
    """The cascade and the strongest tier alone on one question, in the given order.

    ``first_tier`` is where the cascade starts (the routing fitted by kind of
    query, ``first_tier_by_kind``).
    """
    results: dict[str, tuple[AIMessage, float]] = {}
    order = ("strong", "cascade") if strong_first else ("cascade", "strong")
    for who in order:
        t0 = time.perf_counter()
        if who == "cascade":
            answer = cascade.invoke(
                item.messages, {"callbacks": [monitor]}, first_tier=first_tier
            )
        else:
            answer = strong.invoke(item.messages)
        results[who] = (answer, time.perf_counter() - t0)
    return (*results["cascade"], *results["strong"])


def run(
    items: list[Item], fitted: dict[str, Any], ratio: float
) -> tuple[list[Row], CascadeMonitor]:
    names: list[str] = fitted["tiers"]
    compute = {n: p for n, p in example_prices().items() if n in names}
    api = api_prices(names, ratio)
    rows: list[Row] = []
    monitor = CascadeMonitor(escalation_warning=None)
    # Split KV cache: each request slot keeps a prompt cache of its own.
    with LocalModels(names, n_threads=THREADS, kv_unified=False) as models:
        tiers = tier_models(models, names, slot=0)
        (alone,) = tier_models(models, names[-1:], slot=1)
        cascade = build_cascade(tiers, fitted, compute)
        progress("warming up the servers (one invented headline each, not timed)...")
        for tier in [*tiers, alone]:
            tier.invoke(WARM_UP.messages)
        for i, item in enumerate(items, 1):
            progress(f"[{i}/{len(items)}] {clip(item.text, 60)}")
            answer, latency, strong, strong_latency = ask(
                cascade,
                alone,
                item,
                monitor,
                strong_first=i % 2 == 0,
                first_tier=fitted.get("first_tier_by_kind", {}).get(item.kind, 0),
            )
            meta = answer.response_metadata["cascade"]
            rows.append(
                Row(
                    item=item,
                    answer=answer.text.strip(),
                    meta=meta,
                    latency_s=latency,
                    correct=is_correct(answer.text, item),
                    api_cost=attempts_cost(meta, api),
                    strong_answer=strong.text.strip(),
                    strong_correct=is_correct(strong.text, item),
                    strong_cost=price_of(compute, names[-1], strong.usage_metadata)
                    or 0.0,
                    strong_api_cost=price_of(api, names[-1], strong.usage_metadata)
                    or 0.0,
                    strong_latency_s=strong_latency,
                )
            )
    sys.stderr.write("\r\033[K")
    return rows, monitor


def frontier_png(
    rows: list[Row], fitted: dict[str, Any], names: list[str], out_dir: Path
) -> Path:
    """The fitting sample's frontier and this run's two points, as a PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415
    from matplotlib.figure import Figure  # noqa: PLC0415

    n = len(rows)
    strong_cost = sum(r.strong_cost for r in rows)
    fig = Figure(figsize=(6, 4.2))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    points = fitted.get("frontier", [])
    if points:
        ax.plot(
            [p["cost_vs_strongest"] for p in points],
            [p["accuracy"] for p in points],
            "-o",
            ms=3,
            color="0.6",
            label="frontier on the fitting sample",
        )
    cascade_cost = sum(r.meta["cost"]["total"] or 0.0 for r in rows)
    ax.plot(
        [cascade_cost / strong_cost],
        [sum(r.correct for r in rows) / n],
        "o",
        ms=9,
        color="tab:green",
        label="cascade (this run)",
    )
    ax.plot(
        [1.0],
        [sum(r.strong_correct for r in rows) / n],
        "s",
        ms=9,
        color="tab:red",
        label=f"{SHORT[names[-1]]} alone (this run)",
    )
    ax.set_xlabel(f"cost relative to {SHORT[names[-1]]} alone (compute prices)")
    ax.set_ylabel("accuracy")
    ax.set_title("Cascade cost-quality frontier")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "demo_frontier.png"
    fig.savefig(path, dpi=110)
    return path


def report(rows: list[Row], fitted: dict[str, Any], ratio: float) -> None:
    names: list[str] = fitted["tiers"]
    strong_name = SHORT[names[-1]]
    prices = example_prices()
    print(
        f"Cascade {' -> '.join(SHORT[n] for n in names)} (local, xllamacpp, "
        f"{THREADS} CPU thread per server), gate {fitted['gate']} >= "
        f"{', '.join(f'{t:.3f}' for t in fitted['thresholds'])}, fitted on "
        f"{fitted['fitted_on']}."
    )
    routing = fitted.get("first_tier_by_kind", {})
    print(
        "Routing (fitted there too, the cascade's first_tier): "
        + ", ".join(
            f"{KIND_LABELS[kind]}s start at {SHORT[names[tier]]}"
            for kind, tier in routing.items()
        )
        + "."
    )
    print(
        "Example prices = measured compute on this machine ($ per 1M tokens in/out): "
        + ", ".join(
            f"{SHORT[n]} {prices[n].input_per_million:.2f}/"
            f"{prices[n].output_per_million:.2f}"
            for n in names
        )
        + f"; API column: 1:{ratio:g} (gpt-4o-mini : gpt-4o list prices).\n"
    )
    body = [
        [
            str(k),
            KIND_LABELS[r.item.kind],
            clip(r.item.text, 40),
            r.item.gold,
            clip(r.answer, 14),
            "yes" if r.correct else "NO",
            f"{r.meta['tier']} {SHORT[r.meta['model']]}",
            verdicts(r.meta),
            micro(r.meta["cost"]["total"] or 0.0),
            micro(r.api_cost),
            f"{r.latency_s:.1f}s",
            "yes" if r.strong_correct else "NO",
            f"{r.strong_latency_s:.1f}s",
        ]
        for k, r in enumerate(rows, 1)
    ]
    header = [
        "#",
        "kind",
        "question",
        "gold",
        "answer",
        "right",
        "answered by",
        "gate verdict",
        "cost",
        "cost API",
        "latency",
        f"{strong_name} right",
        f"{strong_name} latency",
    ]
    print(table(body, header))
    n = len(rows)
    c_cost = sum(r.meta["cost"]["total"] or 0.0 for r in rows)
    s_cost = sum(r.strong_cost for r in rows)
    c_api = sum(r.api_cost for r in rows)
    s_api = sum(r.strong_api_cost for r in rows)
    c_lat = sum(r.latency_s for r in rows) / n
    s_lat = sum(r.strong_latency_s for r in rows) / n
    by_tier = [sum(r.meta["tier"] == t for r in rows) for t in range(len(names))]
    print("\nTotals (costs in micro-dollars, u)")
    print(
        table(
            [
                [
                    "cascade",
                    f"{sum(r.correct for r in rows)}/{n}",
                    micro(c_cost),
                    micro(c_api),
                    f"{c_lat:.2f}s",
                    " / ".join(str(c) for c in by_tier),
                ],
                [
                    f"{strong_name} alone",
                    f"{sum(r.strong_correct for r in rows)}/{n}",
                    micro(s_cost),
                    micro(s_api),
                    f"{s_lat:.2f}s",
                    "-",
                ],
                [
                    "cascade / alone",
                    "",
                    f"{c_cost / s_cost:.0%}",
                    f"{c_api / s_api:.0%}",
                    f"{c_lat / s_lat:.0%}",
                    "",
                ],
            ],
            [
                "",
                "accuracy",
                "cost (compute)",
                f"cost (1:{ratio:g} API)",
                "mean latency",
                "answered per tier",
            ],
        )
    )


def summary_line(rows: list[Row], strong_name: str) -> str:
    """The demo's last line."""
    n = len(rows)
    cost = sum(r.meta["cost"]["total"] or 0.0 for r in rows) / sum(
        r.strong_cost for r in rows
    )
    latency = sum(r.latency_s for r in rows) / sum(r.strong_latency_s for r in rows)
    return (
        f"cascade vs {strong_name} alone: accuracy "
        f"{sum(r.correct for r in rows)}/{n} vs {sum(r.strong_correct for r in rows)}/{n}, "
        f"cost {cost:.0%} of it, mean latency {latency:.0%} of it"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--questions", type=int, default=None, help="ask only the first N"
    )
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--ratio", type=float, default=16.0, help="API price ratio 1:R")
    parser.add_argument(
        "--out-dir",
        type=Path,
        default=default_cache_dir().parent / "demo",
        help="where the frontier PNG goes",
    )
    args = parser.parse_args(argv)
    fitted = load_thresholds()
    items = demo_questions(args.data_dir)[: args.questions]
    started = time.perf_counter()
    size = sum(MODELS[n].size for n in fitted["tiers"]) / 1e9
    progress(
        f"starting the local model servers (the first run downloads {size:.1f} GB)..."
    )
    rows, monitor = run(items, fitted, args.ratio)
    report(rows, fitted, args.ratio)
    print("\nMonitor summary (CascadeMonitor):")
    print(monitor.summary())
    png = frontier_png(rows, fitted, fitted["tiers"], args.out_dir)
    print(f"\nFrontier picture: {png}")
    print(
        f"Wall time {time.perf_counter() - started:.0f}s (server start, the cascade "
        f"and the {SHORT[fitted['tiers'][-1]]}-alone comparison)."
    )
    print(summary_line(rows, SHORT[fitted["tiers"][-1]]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
