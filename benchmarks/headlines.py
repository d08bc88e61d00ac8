"""FrugalGPT HEADLINES on the real local models: a 3-tier logprob-gated cascade.

SmolLM2-135M -> Qwen2.5-Coder-0.5B -> Qwen2.5-Coder-1.5B classify gold-price news
headlines as up / down / neutral / none (FrugalGPT's HEADLINES task, data in
``frugalgpt-headlines/``). Every tier answers every headline once (train and
test); a ``LogprobGate`` scores each answer from its token logprobs; thresholds
are fitted on train with ``calibrate`` and replayed on test with
``evaluate_thresholds``; the real ``CascadingChatModel`` with the fitted gates
then answers the first ``--n-live`` test headlines to confirm the replay.

Run (about 15-20 min on 2 cores; writes ``benchmarks/results/headlines.*``)::

    python -m benchmarks.headlines [--n-train 150] [--n-test 300] [--n-live 50]
    python -m benchmarks.headlines --from-cache   # re-analyse without the models
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

from benchmarks.common import (
    EXAMPLE_PRICES,
    PRICE_NOTE,
    RESULTS_DIR,
    SHORT_NAMES,
    Matrices,
    Query,
    append_jsonl,
    as_message,
    cached_live,
    clean_float,
    collect_in_parallel,
    compare_live,
    fmt_seconds,
    live_gate,
    live_section,
    load_cached,
    markdown_table,
    matrices,
    money,
    normalise_label,
    pct,
    plot_test,
    read_jsonl,
    replay_latency,
    run_live,
    threshold_text,
    write_json,
)
from langchain_cascade import CascadingChatModel
from langchain_cascade.calibration import (
    CalibrationResult,
    calibrate,
    evaluate_thresholds,
    plot_frontier,
)
from langchain_cascade.gates import LogprobGate
from langchain_cascade.gates.base import Gate
from langchain_cascade.gates.logprob import Aggregation

NAME = "headlines"
MODELS = ("smollm2-135m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b")
LABELS = ("up", "down", "neutral", "none")
AGGREGATIONS: tuple[Aggregation, ...] = ("first_token_margin", "geometric_mean")
CHAT_KWARGS: dict[str, Any] = {
    "temperature": 0,
    "max_tokens": 3,
    "logprobs": True,
    "top_logprobs": 5,
}

INSTRUCTION = (
    "Classify the gold-market news headline by what it says about the gold price. "
    "Reply with one word: up (the price rose), down (the price fell), neutral "
    "(the price was steady or little changed) or none (no price move reported)."
)
# Four invented examples (not from the data set), one per label. Without them
# SmolLM2-135M never answered with a label (0/20 in a probe on train); the
# shared prefix stays in each server's prompt cache, so they cost no time.
SHOTS = (
    ("Gold jumps 2% as the dollar weakens", "up"),
    ("Gold slides to a two-week low after strong jobs data", "down"),
    ("Gold holds steady ahead of the central bank meeting", "neutral"),
    ("Miner reports record quarterly output at its gold mine", "none"),
)

FRUGALGPT_ROWS = (
    ("gpt-4-turbo", None),
    ("gpt-4o-mini", None),
    ("gemini-1.5-flash", None),
    ("gemini-1.5-flash-8b", None),
    ("Meta-Llama-3-70B-Instruct-Turbo", None),
    ("FrugalGPT", 0),
    ("FrugalGPT", 1),
    ("FrugalGPT", 7),
)


def build_messages(headline: str) -> list[BaseMessage]:
    """The prompt: instruction, four examples as chat turns, then the headline."""
    messages: list[BaseMessage] = [SystemMessage(INSTRUCTION)]
    for text, label in SHOTS:
        messages += [HumanMessage(f"Headline: {text}"), AIMessage(label)]
    messages.append(HumanMessage(f"Headline: {headline}"))
    return messages


def headline_text(raw: str) -> str:
    """``"Q: <headline>\\nA:"`` -> ``"<headline>"``."""
    text = raw.strip()
    text = text.removeprefix("Q:").strip()
    return text.removesuffix("A:").strip()


def load_split(data_dir: Path, split: str, n: int) -> list[Query]:
    """The first ``n`` rows of ``train.csv`` / ``test.csv`` (the files are shuffled)."""
    path = data_dir / "frugalgpt-headlines" / f"{split}.csv"
    queries: list[Query] = []
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.reader(handle):
            if len(queries) == n:
                break
            raw, label, qid = row[0], row[1].strip().lower(), row[2]
            queries.append(Query(split, qid, build_messages(headline_text(raw)), label))
    if len(queries) < n:
        msg = f"{path} has only {len(queries)} rows, {n} asked"
        raise SystemExit(msg)
    return queries


def grade(answer: str, gold: str) -> bool:
    """Normalised label match."""
    return normalise_label(answer, LABELS) == gold


def fingerprint() -> str:
    """Identifies the prompt and settings the cached answers were made with."""
    blob = json.dumps(
        {"instruction": INSTRUCTION, "shots": SHOTS, "kwargs": CHAT_KWARGS},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def make_gate(aggregation: Aggregation, threshold: float) -> Gate:
    return LogprobGate(threshold=threshold, aggregation=aggregation)


def score_fn(aggregation: Aggregation) -> Callable[[Mapping[str, Any]], float | None]:
    gate = LogprobGate(threshold=0.0, aggregation=aggregation)

    def score(record: Mapping[str, Any]) -> float | None:
        return gate.score(as_message(record))

    return score


# --------------------------------------------------------------------------- fit


def fit(
    records: Sequence[Mapping[str, Any]],
    models: Sequence[str] = MODELS,
    retain: float = 1.0,
) -> tuple[
    Aggregation,
    dict[Aggregation, CalibrationResult],
    dict[Aggregation, Matrices],
    float,
]:
    """Fit thresholds per aggregation on train; pick the aggregation on train only.

    Quality target: ``retain`` x the best single tier's train accuracy
    (``retain=1``: no loss against the best single model). The aggregation with
    the lowest train cost at that target wins; ties go to the higher APGR.
    """
    train = {a: matrices(records, "train", models, score_fn(a)) for a in AGGREGATIONS}
    any_m = train[AGGREGATIONS[0]]
    target = retain * float(any_m.correct.mean(axis=0).max())
    results = {
        a: calibrate(m.scores, m.correct, m.costs, min_quality=target)
        for a, m in train.items()
    }
    chosen = min(
        AGGREGATIONS,
        key=lambda a: (
            round(results[a].cost, 12),
            -(results[a].apgr if not math.isnan(results[a].apgr) else -1),
        ),
    )
    return chosen, results, train, target


# --------------------------------------------------------------------------- live


def operating_points(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Both target rules, with and without SmolLM2, fitted on train, on test."""
    out = []
    for models in (MODELS, MODELS[1:]):
        for retain, rule in ((1.0, "no loss"), (0.95, "95%")):
            agg, results, _, target = fit(records, models, retain)
            res = results[agg]
            test = matrices(records, "test", models, score_fn(agg))
            ev = evaluate_thresholds(
                test.scores, test.correct, test.costs, res.thresholds
            )
            top_cost = float(test.costs[:, -1].mean())
            out.append(
                {
                    "tiers": " -> ".join(m.rsplit("-", 1)[-1].upper() for m in models),
                    "models": list(models),
                    "rule": rule,
                    "target": target,
                    "aggregation": agg,
                    "thresholds": [clean_float(t) for t in res.thresholds],
                    "thresholds_text": threshold_text(res.thresholds),
                    "train_accuracy": res.quality,
                    "train_cost_per_query": res.cost,
                    "test_accuracy": ev.quality,
                    "test_cost_per_query": ev.cost,
                    "test_cost_vs_top_tier": ev.cost / top_cost,
                    "test_escalation_rate": ev.escalation_rate,
                    "test_strong_call_rate": ev.strong_call_rate,
                    "test_tier_rates": list(ev.tier_rates),
                }
            )
    return out


def live_tag(aggregation: Aggregation, thresholds: Sequence[float]) -> dict[str, Any]:
    """What identifies a live run's configuration in the cache."""
    return {
        "aggregation": aggregation,
        "thresholds": [clean_float(t) for t in thresholds],
    }


# --------------------------------------------------------------------------- report


def frugalgpt_rows(data_dir: Path) -> list[dict[str, Any]]:
    path = data_dir / "frugalgpt-headlines" / "summary_HEADLINES_e8_full_2024.csv"
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    out = []
    for method, index in FRUGALGPT_ROWS:
        for row in rows:
            if row["Method"] == method and (index is None or row[""] == str(index)):
                out.append(
                    {
                        "method": method,
                        "provider": row["Provider"],
                        "budget": float(row["Budget"])
                        if method == "FrugalGPT"
                        else None,
                        "test_acc": float(row["Test_acc"]),
                        "test_cost": float(row["Test_cost"]),
                    }
                )
                break
    return out


def analyse(
    args: argparse.Namespace,
    records: list[dict[str, Any]],
    live: list[dict[str, Any]],
    run_info: Mapping[str, Any],
    data_dir: Path,
) -> None:
    out_dir: Path = args.out_dir
    chosen_agg, results, train, target = fit(records)
    result = results[chosen_agg]
    thresholds = result.thresholds
    test = matrices(records, "test", MODELS, score_fn(chosen_agg))
    ev = evaluate_thresholds(test.scores, test.correct, test.costs, thresholds)
    live_cmp = compare_live(live, records, test, thresholds, MODELS)

    n_train, n_test = len(train[chosen_agg].qids), len(test.qids)
    tier_lat = {m: float(test.latency[:, j].sum()) for j, m in enumerate(MODELS)}
    tiers_table = []
    for j, model in enumerate(MODELS):
        tiers_table.append(
            [
                SHORT_NAMES[model] + " alone",
                pct(float(train[chosen_agg].correct[:, j].mean())),
                pct(float(test.correct[:, j].mean())),
                money(float(test.costs[:, j].mean())),
                f"{float(test.latency[:, j].mean()):.2f} s",
                "-",
            ]
        )
    cascade_lat = replay_latency(test, thresholds)
    tiers_table.append(
        [
            f"**cascade** ({chosen_agg}, replay)",
            pct(result.quality),
            f"**{pct(ev.quality)}**",
            f"**{money(ev.cost)}**",
            f"{cascade_lat / n_test:.2f} s",
            " / ".join(pct(r) for r in ev.tier_rates),
        ]
    )
    top_cost = float(test.costs[:, -1].mean())

    gate_table = []
    for agg in AGGREGATIONS:
        r = results[agg]
        te = matrices(records, "test", MODELS, score_fn(agg))
        e = evaluate_thresholds(te.scores, te.correct, te.costs, r.thresholds)
        gate_table.append(
            [
                agg + (" (chosen)" if agg == chosen_agg else ""),
                threshold_text(r.thresholds),
                pct(r.quality),
                money(r.cost),
                f"{r.apgr:.3f}",
                pct(e.quality),
                money(e.cost),
            ]
        )

    points = operating_points(records)
    points_table = [
        [
            p["tiers"],
            p["rule"],
            p["aggregation"],
            p["thresholds_text"],
            pct(p["train_accuracy"]),
            pct(p["test_accuracy"]),
            money(p["test_cost_per_query"]),
            f"{100 * (p['test_cost_vs_top_tier'] - 1):+.0f}%",
            pct(p["test_strong_call_rate"]),
        ]
        for p in points
    ]

    fg = frugalgpt_rows(data_dir)
    fg_table = [
        [
            row["method"]
            + (f" (budget ${row['budget']:.3g})" if row["budget"] is not None else ""),
            row["provider"],
            f"{row['test_acc']:.4f}",
            money(row["test_cost"]),
        ]
        for row in fg
    ]

    plot_frontier(
        result,
        out_dir / f"{NAME}_frontier.png",
        title=f"HEADLINES, local 3-tier cascade: train frontier ({chosen_agg})",
    )
    plot_test(
        out_dir / f"{NAME}_test.png",
        result,
        test,
        ev,
        title="HEADLINES, local models: test set",
        models=MODELS,
    )

    summary = {
        "benchmark": "FrugalGPT HEADLINES on local models",
        "produced_by": run_info.get("mode", "full run"),
        "full_run": dict(run_info.get("run", {})),
        "data": {
            "train": f"first {n_train} rows of frugalgpt-headlines/train.csv",
            "test": f"first {n_test} rows of frugalgpt-headlines/test.csv",
        },
        "models": list(MODELS),
        "prices_per_million": {
            m: [p.input_per_million, p.output_per_million]
            for m, p in EXAMPLE_PRICES.items()
        },
        "price_note": PRICE_NOTE,
        "prompt": {
            "instruction": INSTRUCTION,
            "shots": [list(s) for s in SHOTS],
            "chat_kwargs": CHAT_KWARGS,
        },
        "quality_target": {
            "rule": "best single tier's train accuracy",
            "value": target,
        },
        "gate_selection": "lowest train cost at the target; ties -> higher APGR",
        "chosen_aggregation": chosen_agg,
        "thresholds": [clean_float(t) for t in thresholds],
        "single_tiers": {
            m: {
                "train_accuracy": float(train[chosen_agg].correct[:, j].mean()),
                "test_accuracy": float(test.correct[:, j].mean()),
                "test_cost_per_query": float(test.costs[:, j].mean()),
                "test_mean_latency_s": float(test.latency[:, j].mean()),
                "test_wall_s": tier_lat[m],
            }
            for j, m in enumerate(MODELS)
        },
        "operating_points": points,
        "cascade_train": result.to_dict(),
        "cascade_test": ev.to_dict(),
        "cascade_test_wall_s_estimate": cascade_lat,
        "cost_saving_vs_top_tier": 1 - ev.cost / top_cost if top_cost else None,
        "gates": {
            agg: {
                "train": {
                    k: v for k, v in results[agg].to_dict().items() if k != "frontier"
                },
            }
            for agg in AGGREGATIONS
        },
        "unscored_answers": {
            "train": train[chosen_agg].unscored,
            "test": test.unscored,
        },
        "live_check": live_cmp,
        "frugalgpt_published": fg,
    }
    write_json(out_dir / f"{NAME}.json", summary)

    run = run_info.get("run", {})
    lines = [
        "# FrugalGPT HEADLINES on the local models",
        "",
        f"Produced by `python -m benchmarks.headlines` ({run_info.get('mode', 'full run')}); "
        f"the raw per-tier answers are cached in `{NAME}_answers.jsonl`, written by a full run "
        + (f"on {run.get('finished', '?')}" if run else "")
        + ", so `--from-cache` redoes this analysis without the models.",
        "",
        "**Setup.** 3-tier cascade SmolLM2-135M -> Qwen2.5-Coder-0.5B -> Qwen2.5-Coder-1.5B "
        "(Q4 GGUF, xllamacpp, 1 CPU thread per server). "
        f"Train: first {n_train} rows of `train.csv`; test: first {n_test} rows of `test.csv` "
        "(both files are shuffled). Every tier answered every headline once "
        "(temperature 0, max_tokens 3, logprobs with top_logprobs 5); correctness = "
        "first word of the answer, lower-cased, equals the label. Prompt: an instruction "
        "listing the 4 labels, 4 invented one-line examples (one per label: without them "
        "SmolLM2 never answered with a label), then the headline.",
        "",
        f"**Fit.** `calibrate(min_quality=target)` on train, target = the best single "
        f"tier's train accuracy ({pct(target)}): the cheapest cascade that loses nothing "
        "against the best single model on train. Gate = `LogprobGate`; the aggregation "
        "is picked on train only (lowest train cost at the target, ties -> higher APGR). "
        "Thresholds replayed on test with `evaluate_thresholds`.",
        "",
        f"**Prices.** {PRICE_NOTE}",
        "",
        f"## Test set ({n_test} headlines)",
        "",
        markdown_table(
            [
                "system",
                "train acc",
                "test acc",
                "test cost / query",
                "latency / query",
                "answered at tier 0/1/2",
            ],
            tiers_table,
        ),
        "",
        f"Cascade thresholds ({chosen_agg}): {threshold_text(thresholds)}. "
        f"Escalation rate (past tier 0): {pct(ev.escalation_rate)}; reached the 1.5B "
        f"tier: {pct(ev.strong_call_rate)}. Cost vs the 1.5B alone: "
        f"{100 * (ev.cost / top_cost - 1):+.1f}% cost; accuracy "
        f"{100 * (ev.quality - float(test.correct[:, -1].mean())):+.1f} points. "
        f"Accuracy of the answers accepted at each tier: "
        + " / ".join(pct(q) for q in ev.tier_quality)
        + ". Latency per query of the cascade is the replayed sum of the visited tiers' "
        "measured latencies.",
        "",
        "## Gate candidates (fitted on train, then replayed on test)",
        "",
        markdown_table(
            [
                "aggregation",
                "thresholds (tier 0, tier 1)",
                "train acc",
                "train cost",
                "train APGR",
                "test acc",
                "test cost",
            ],
            gate_table,
        ),
        "",
        f"Train frontier: `{NAME}_frontier.png`; the train-frontier thresholds replayed "
        f"on test: `{NAME}_test.png`.",
        "",
        "## Other operating points (same cached answers, fitted on train, replayed on test)",
        "",
        "Rules: *no loss* = the primary rule above; *95%* = keep at least 95% of the "
        "best single tier's train accuracy (the quality-retention level RouteLLM "
        "reports). The 2-tier rows drop SmolLM2 (an ablation computed from the same "
        "answers, no extra model calls). Cost change is against the 1.5B alone on test.",
        "",
        markdown_table(
            [
                "tiers",
                "rule",
                "gate",
                "thresholds",
                "train acc",
                "test acc",
                "test cost / query",
                "cost vs 1.5B",
                "reached 1.5B",
            ],
            points_table,
        ),
        "",
    ]
    lines += live_section(live_cmp, "headlines")
    if run:
        lines += [
            "## Wall time (full run)",
            "",
            markdown_table(
                ["step", "wall time"],
                [
                    ["start the 3 servers", fmt_seconds(run["startup_s"])],
                    *[
                        [
                            f"{SHORT_NAMES[m]}: {n_train + n_test} headlines",
                            fmt_seconds(run["collect_s"].get(m, 0.0)),
                        ]
                        for m in MODELS
                    ],
                    [
                        "all tiers answering all headlines (1.5B in parallel "
                        "with the two small tiers)"
                        if run.get("workers", 1) == 2
                        else "all tiers answering all headlines (one at a time)",
                        fmt_seconds(run.get("collect_wall_s", math.nan)),
                    ],
                    [
                        f"live cascade: {live_cmp.get('n', 0)} headlines",
                        fmt_seconds(run["live_s"]),
                    ],
                    ["total", fmt_seconds(run["wall_s"])],
                ],
            ),
            "",
            "The machine (2 cores) was shared with other jobs during the run.",
            "",
        ]
    lines += [
        "## For context: FrugalGPT's published HEADLINES results (different models, same task)",
        "",
        "From `frugalgpt-headlines/summary_HEADLINES_e8_full_2024.csv` (FrugalGPT, "
        "Chen, Zaharia & Zou, arXiv 2305.05176; 2024 models, full 5,000-headline test "
        "split, real API prices per query):",
        "",
        markdown_table(
            ["method", "provider", "test acc", "test cost / query"], fg_table
        ),
        "",
        "Not comparable head to head: different (much larger) models, real API prices "
        f"instead of example ones, and {n_test} instead of 5,000 test headlines.",
        "",
    ]
    (out_dir / f"{NAME}.md").write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--n-train", type=int, default=150)
    parser.add_argument("--n-test", type=int, default=300)
    parser.add_argument("--n-live", type=int, default=50)
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument(
        "--workers",
        type=int,
        choices=(1, 2),
        default=2,
        help="2: the 1.5B tier answers while the two small tiers do (1 thread each)",
    )
    parser.add_argument(
        "--from-cache",
        action="store_true",
        help="re-analyse the cached answers without starting the models",
    )
    args = parser.parse_args()
    from benchmarks.common import resolve_data_dir

    data_dir = resolve_data_dir(args.data_dir)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    cache_path = args.out_dir / f"{NAME}_answers.jsonl"
    queries = load_split(data_dir, "train", args.n_train) + load_split(
        data_dir, "test", args.n_test
    )
    test_queries = [q for q in queries if q.split == "test"]
    fp = fingerprint()

    if args.from_cache:
        records = load_cached(cache_path, queries, MODELS, fp)
        chosen_agg, results, _, _ = fit(records)
        live = cached_live(
            cache_path,
            fingerprint=fp,
            tag=live_tag(chosen_agg, results[chosen_agg].thresholds),
            n=args.n_live,
        )
        runs = [
            r
            for r in read_jsonl(cache_path)
            if r.get("kind") == "run" and r.get("fingerprint") == fp
        ]
        info = {"mode": "re-analysed from the cache", "run": runs[-1] if runs else {}}
        analyse(args, records, live, info, data_dir)
        return

    from langchain_cascade.local_models import LocalModels

    started = time.perf_counter()
    with LocalModels(list(MODELS), n_threads=1, n_parallel=1) as lm:
        startup = time.perf_counter() - started
        print(f"servers up in {startup:.1f} s", flush=True)
        chats = {m: lm.chat_model(m, **CHAT_KWARGS) for m in MODELS}
        groups = (
            [list(MODELS)] if args.workers == 1 else [list(MODELS[:2]), [MODELS[2]]]
        )
        t0 = time.perf_counter()
        collect_s = collect_in_parallel(
            chats, groups, queries, cache_path, grade=grade, fingerprint=fp
        )
        collect_wall = time.perf_counter() - t0
        records = load_cached(cache_path, queries, MODELS, fp)
        chosen_agg, results, _, _ = fit(records)
        thresholds = results[chosen_agg].thresholds
        print(f"fitted {chosen_agg}: {threshold_text(thresholds)}", flush=True)
        t0 = time.perf_counter()
        cascade = CascadingChatModel(
            models=[chats[m] for m in MODELS],
            gates=[live_gate(t, partial(make_gate, chosen_agg)) for t in thresholds],
            prices=EXAMPLE_PRICES,
        )
        live = run_live(
            cascade,
            test_queries[: args.n_live],
            grade=grade,
            cache_path=cache_path,
            fingerprint=fp,
            tag=live_tag(chosen_agg, thresholds),
        )
        live_s = time.perf_counter() - t0
    run = {
        "kind": "run",
        "fingerprint": fp,
        "finished": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "startup_s": startup,
        "collect_s": collect_s,
        "collect_wall_s": collect_wall,
        "workers": args.workers,
        "live_s": live_s,
        "wall_s": time.perf_counter() - started,
        "n_train": args.n_train,
        "n_test": args.n_test,
        "n_live": args.n_live,
    }
    append_jsonl(cache_path, run)
    analyse(args, records, live, {"mode": "full run", "run": run}, data_dir)


if __name__ == "__main__":
    main()
