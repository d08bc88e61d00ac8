"""GSM8K on the real local models: a 2-tier logprob-gated cascade.

Qwen2.5-Coder-0.5B -> Qwen2.5-Coder-1.5B solve grade-school maths problems
(``gsm8k/test.jsonl``; the gold number follows ``####``). Both tiers answer
every problem once (train and test); gate candidates are ``LogprobGate``
aggregations (quantile, min_prob, geometric_mean), alone and combined with a
format rule (``all_of(RegexGate("Answer: <number>"), LogprobGate)``). Thresholds
are fitted on train with ``calibrate``, replayed on test with
``evaluate_thresholds``, and the real ``CascadingChatModel`` answers the first
``--n-live`` test problems to confirm the replay.

SmolLM2-135M is not a tier: it only answers ``--smollm-probe`` train problems,
to show that it cannot solve them (a tier that is never right only adds cost).

Run (writes ``benchmarks/results/gsm8k_local.*``)::

    python -m benchmarks.gsm8k_local [--n-test 100] [--n-train 50] [--max-tokens 128]
    python -m benchmarks.gsm8k_local --from-cache   # re-analyse without the models
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

from benchmarks.common import (
    EXAMPLE_PRICES,
    NO_SCORE,
    PRICE_NOTE,
    RESULTS_DIR,
    SHORT_NAMES,
    Query,
    append_jsonl,
    as_message,
    cached_live,
    clean_float,
    collect_answers,
    compare_live,
    fmt_seconds,
    last_number,
    live_gate,
    live_section,
    load_cached,
    markdown_table,
    matrices,
    money,
    numbers_equal,
    parse_number,
    pct,
    plot_test,
    read_jsonl,
    replay_latency,
    resolve_data_dir,
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
from langchain_cascade.gates import LogprobGate, RegexGate, all_of
from langchain_cascade.gates.base import Gate, GateInput
from langchain_cascade.gates.logprob import Aggregation

NAME = "gsm8k_local"
MODELS = ("qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b")
PROBE_MODEL = "smollm2-135m"
INSTRUCTION = (
    "Solve the math word problem briefly: a few short lines of arithmetic, no code, "
    "no LaTeX. End with 'Answer: <number>'."
)
# One invented worked example (not from GSM8K) showing the expected brevity:
# without it both Qwen models wrote 160+ tokens of prose, LaTeX or Python and
# almost never the 'Answer:' line. The shared prefix stays in the servers'
# prompt cache, so it costs (example-priced) input tokens but little time.
SHOT = (
    "A shop sells pens at $3 each. Mia buys 4 pens and pays with a $20 bill. "
    "How much change does she get?",
    "4 pens cost 4 * 3 = 12 dollars.\nChange: 20 - 12 = 8 dollars.\nAnswer: 8",
)
FORMAT_PATTERN = r"Answer:\s*\**\s*\$?\s*-?\d[\d,]*(?:\.\d+)?"
QUANTILE = 0.1


@dataclass(frozen=True)
class Candidate:
    """A gate candidate: a logprob aggregation, optionally behind the format rule."""

    aggregation: Aggregation
    with_format: bool

    @property
    def name(self) -> str:
        agg = (
            f"quantile({QUANTILE:g})"
            if self.aggregation == "quantile"
            else self.aggregation
        )
        return f"all_of(format, {agg})" if self.with_format else agg

    def logprob_gate(self, threshold: float) -> LogprobGate:
        return LogprobGate(
            threshold=threshold, aggregation=self.aggregation, quantile=QUANTILE
        )

    def gate(self, threshold: float) -> Gate:
        """The live gate for a threshold in [0, 1]."""
        if not self.with_format:
            return self.logprob_gate(threshold)
        return all_of(format_gate(), self.logprob_gate(threshold))

    def score_fn(self) -> Callable[[Mapping[str, Any]], float | None]:
        """Replay score: the logprob score; ``NO_SCORE`` when the format fails.

        ``all_of(format, LogprobGate(t))`` passes exactly when the format rule
        passes and the logprob score is at least ``t``: with thresholds in
        [0, 1] this is ``replay score >= t``.
        """
        scorer = self.logprob_gate(0.0)
        rule = format_gate()

        def score(record: Mapping[str, Any]) -> float | None:
            message = as_message(record)
            if self.with_format:
                verdict = rule.evaluate(GateInput(messages=[], response=message), {})
                if not verdict.passed:
                    return NO_SCORE
            return scorer.score(message)

        return score


CANDIDATES = tuple(
    Candidate(agg, fmt)
    for fmt in (False, True)
    for agg in ("quantile", "min_prob", "geometric_mean")
)


def format_gate() -> RegexGate:
    return RegexGate(pattern=FORMAT_PATTERN, description="an 'Answer: <number>'")


def build_messages(question: str) -> list[BaseMessage]:
    """System instruction, the worked example as chat turns, then the problem."""
    return [
        SystemMessage(INSTRUCTION),
        HumanMessage(SHOT[0]),
        AIMessage(SHOT[1]),
        HumanMessage(question),
    ]


def gold_number(answer: str) -> str:
    return answer.rsplit("####", 1)[1].strip()


def grade(answer: str, gold: str) -> bool:
    """The last number of the answer equals the gold number."""
    return numbers_equal(last_number(answer), parse_number(gold))


def load_problems(
    data_dir: Path, n_test: int, n_train: int
) -> tuple[list[Query], list[Query]]:
    """Test: problems 0..n_test-1; train: the next n_train problems."""
    path = data_dir / "gsm8k" / "test.jsonl"
    rows = [
        json.loads(line)
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    if len(rows) < n_test + n_train:
        msg = f"{path} has {len(rows)} problems, {n_test + n_train} asked"
        raise SystemExit(msg)

    def query(split: str, i: int) -> Query:
        row = rows[i]
        return Query(
            split, str(i), build_messages(row["question"]), gold_number(row["answer"])
        )

    test = [query("test", i) for i in range(n_test)]
    train = [query("train", i) for i in range(n_test, n_test + n_train)]
    return train, test


def chat_kwargs(max_tokens: int) -> dict[str, Any]:
    return {"temperature": 0, "max_tokens": max_tokens, "logprobs": True}


def fingerprint(max_tokens: int) -> str:
    blob = json.dumps(
        {"instruction": INSTRUCTION, "shot": SHOT, "kwargs": chat_kwargs(max_tokens)},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


# --------------------------------------------------------------------------- fit


def fit(
    records: Sequence[Mapping[str, Any]], retain: float = 1.0
) -> tuple[Candidate, dict[Candidate, CalibrationResult], float]:
    """Fit every candidate on train; pick one on train only.

    Quality target: ``retain`` x the best single tier's train accuracy
    (``retain=1``: no loss). The candidate with the lowest train cost at the
    target wins; ties go to the higher APGR.
    """
    train = {c: matrices(records, "train", MODELS, c.score_fn()) for c in CANDIDATES}
    target = retain * float(train[CANDIDATES[0]].correct.mean(axis=0).max())
    results = {
        c: calibrate(m.scores, m.correct, m.costs, min_quality=target)
        for c, m in train.items()
    }

    def key(c: Candidate) -> tuple[float, float]:
        apgr = results[c].apgr
        return (round(results[c].cost, 12), -(apgr if not math.isnan(apgr) else -1))

    return min(CANDIDATES, key=key), results, target


def live_tag(candidate: Candidate, thresholds: Sequence[float]) -> dict[str, Any]:
    return {
        "gate": candidate.name,
        "thresholds": [clean_float(t) for t in thresholds],
    }


# --------------------------------------------------------------------------- report


def analyse(
    args: argparse.Namespace,
    records: list[dict[str, Any]],
    probe: list[dict[str, Any]],
    live: list[dict[str, Any]],
    run_info: Mapping[str, Any],
) -> None:
    out_dir: Path = args.out_dir
    chosen, results, target = fit(records)
    result = results[chosen]
    thresholds = result.thresholds
    train = matrices(records, "train", MODELS, chosen.score_fn())
    test = matrices(records, "test", MODELS, chosen.score_fn())
    ev = evaluate_thresholds(test.scores, test.correct, test.costs, thresholds)
    live_cmp = compare_live(live, records, test, thresholds, MODELS)
    n_train, n_test = len(train.qids), len(test.qids)
    top_cost = float(test.costs[:, -1].mean())
    top_acc = float(test.correct[:, -1].mean())

    by_model: dict[str, list[Mapping[str, Any]]] = {m: [] for m in MODELS}
    for r in records:
        by_model[r["model"]].append(r)
    out_tokens = {
        m: sum(r["usage"]["output_tokens"] for r in rs) / len(rs)
        for m, rs in by_model.items()
    }
    truncated = {
        m: sum(r["usage"]["output_tokens"] >= args.max_tokens for r in rs) / len(rs)
        for m, rs in by_model.items()
    }
    fmt = format_gate()
    formatted = {
        m: sum(
            fmt.evaluate(GateInput(messages=[], response=as_message(r)), {}).passed
            for r in rs
        )
        / len(rs)
        for m, rs in by_model.items()
    }

    tier0_share = float(test.costs[:, 0].mean()) / top_cost
    points: list[dict[str, Any]] = []
    for retain, rule in ((1.0, "no loss"), (0.95, "95%")):
        cand, res_by, target_r = fit(records, retain)
        res = res_by[cand]
        te = matrices(records, "test", MODELS, cand.score_fn())
        e = evaluate_thresholds(te.scores, te.correct, te.costs, res.thresholds)
        points.append(
            {
                "rule": rule,
                "target": target_r,
                "gate": cand.name,
                "thresholds": [clean_float(t) for t in res.thresholds],
                "thresholds_text": threshold_text(res.thresholds),
                "train_accuracy": res.quality,
                "train_cost_per_query": res.cost,
                "test_accuracy": e.quality,
                "test_cost_per_query": e.cost,
                "test_cost_vs_top_tier": e.cost / top_cost,
                "test_escalation_rate": e.escalation_rate,
            }
        )

    rows = []
    for j, model in enumerate(MODELS):
        rows.append(
            [
                SHORT_NAMES[model] + " alone",
                pct(float(train.correct[:, j].mean())),
                pct(float(test.correct[:, j].mean())),
                money(float(test.costs[:, j].mean())),
                f"{float(test.latency[:, j].mean()):.1f} s",
                "-",
            ]
        )
    cascade_lat = replay_latency(test, thresholds)
    rows.append(
        [
            f"**cascade** ({chosen.name}, replay)",
            pct(result.quality),
            f"**{pct(ev.quality)}**",
            f"**{money(ev.cost)}**",
            f"{cascade_lat / n_test:.1f} s",
            pct(ev.escalation_rate),
        ]
    )

    gate_rows = []
    for c in CANDIDATES:
        res = results[c]
        te = matrices(records, "test", MODELS, c.score_fn())
        e = evaluate_thresholds(te.scores, te.correct, te.costs, res.thresholds)
        gate_rows.append(
            [
                c.name + (" (chosen)" if c == chosen else ""),
                threshold_text(res.thresholds),
                pct(res.quality),
                money(res.cost),
                f"{res.apgr:.3f}",
                pct(e.quality),
                money(e.cost),
                pct(e.escalation_rate),
            ]
        )

    plot_frontier(
        result,
        out_dir / f"{NAME}_frontier.png",
        title=f"GSM8K, local 2-tier cascade: train frontier ({chosen.name})",
    )
    plot_test(
        out_dir / f"{NAME}_test.png",
        result,
        test,
        ev,
        title="GSM8K, local models: test set",
        models=MODELS,
    )

    probe_acc = (
        sum(bool(r["correct"]) for r in probe) / len(probe) if probe else math.nan
    )
    run = run_info.get("run", {})
    summary = {
        "benchmark": "GSM8K on local models",
        "produced_by": run_info.get("mode", "full run"),
        "full_run": dict(run),
        "data": {
            "test": f"gsm8k/test.jsonl problems 0-{n_test - 1}",
            "train": f"gsm8k/test.jsonl problems {n_test}-{n_test + n_train - 1}",
        },
        "models": list(MODELS),
        "prices_per_million": {
            m: [p.input_per_million, p.output_per_million]
            for m, p in EXAMPLE_PRICES.items()
        },
        "price_note": PRICE_NOTE,
        "prompt": {
            "system": INSTRUCTION,
            "example": list(SHOT),
            "chat_kwargs": chat_kwargs(args.max_tokens),
        },
        "format_rule": FORMAT_PATTERN,
        "quality_target": {
            "rule": "best single tier's train accuracy",
            "value": target,
        },
        "gate_selection": "lowest train cost at the target; ties -> higher APGR",
        "chosen_gate": chosen.name,
        "thresholds": [clean_float(t) for t in thresholds],
        "single_tiers": {
            m: {
                "train_accuracy": float(train.correct[:, j].mean()),
                "test_accuracy": float(test.correct[:, j].mean()),
                "test_cost_per_query": float(test.costs[:, j].mean()),
                "test_mean_latency_s": float(test.latency[:, j].mean()),
                "mean_output_tokens": out_tokens[m],
                "share_cut_at_max_tokens": truncated[m],
                "share_with_answer_format": formatted[m],
            }
            for j, m in enumerate(MODELS)
        },
        "operating_points": points,
        "tier0_cost_share_of_top_tier": tier0_share,
        "cascade_train": result.to_dict(),
        "cascade_test": ev.to_dict(),
        "cascade_test_wall_s_estimate": cascade_lat,
        "cost_saving_vs_top_tier": 1 - ev.cost / top_cost if top_cost else None,
        "gates": {
            c.name: {k: v for k, v in results[c].to_dict().items() if k != "frontier"}
            for c in CANDIDATES
        },
        "smollm2_probe": {
            "n": len(probe),
            "accuracy": clean_float(probe_acc),
            "problems": "the first train problems",
        },
        "live_check": live_cmp,
    }
    write_json(out_dir / f"{NAME}.json", summary)

    lines = [
        "# GSM8K on the local models",
        "",
        f"Produced by `python -m benchmarks.gsm8k_local` ({run_info.get('mode', 'full run')}); "
        f"the raw per-tier answers are cached in `{NAME}_answers.jsonl`, written by a full run"
        + (f" on {run.get('finished', '?')}" if run else "")
        + ", so `--from-cache` redoes this analysis without the models.",
        "",
        "**Setup.** 2-tier cascade Qwen2.5-Coder-0.5B -> Qwen2.5-Coder-1.5B (Q4 GGUF, "
        "xllamacpp, 1 CPU thread per server). Test: GSM8K test problems "
        f"0-{n_test - 1}; train (threshold fitting): problems {n_test}-"
        f'{n_test + n_train - 1}. Prompt: system "{INSTRUCTION}", one invented '
        "worked example (3 short lines ending 'Answer: 8'), then the problem; "
        f"temperature 0, max_tokens {args.max_tokens}, logprobs. Correct = the last "
        "number of the answer equals the gold number after `####`. Both tiers answered "
        "every problem once.",
        "",
        f"**Fit.** `calibrate(min_quality=target)` on train, target = the best single "
        f"tier's train accuracy ({pct(target)}). Gate candidates: `LogprobGate` "
        f"quantile({QUANTILE:g}) / min_prob / geometric_mean, alone and as "
        "`all_of(RegexGate('Answer: <number>'), LogprobGate)`; the candidate is picked "
        "on train only (lowest train cost at the target, ties -> higher APGR). "
        "Thresholds replayed on test with `evaluate_thresholds`.",
        "",
        f"**Prices.** {PRICE_NOTE}",
        "",
        f"## Test set ({n_test} problems)",
        "",
        markdown_table(
            [
                "system",
                "train acc",
                "test acc",
                "test cost / query",
                "latency / query",
                "escalated",
            ],
            rows,
        ),
        "",
        f"Cascade threshold ({chosen.name}): {threshold_text(thresholds)}. "
        f"Escalated to the 1.5B: {pct(ev.escalation_rate)} of test problems. Cost vs "
        f"the 1.5B alone: {100 * (ev.cost / top_cost - 1):+.1f}%; accuracy "
        f"{100 * (ev.quality - top_acc):+.1f} points. Accuracy of the answers kept at "
        "each tier: "
        + " / ".join(pct(q) for q in ev.tier_quality)
        + ". Cascade latency = replayed sum of the visited tiers' measured latencies.",
        "",
        (
            f"**Why no saving.** A 0.5B call costs {pct(tier0_share)} of a 1.5B call "
            "here (example prices; the 0.5B also writes longer answers), and every "
            "query pays it: the cascade saves money only if it stops at the 0.5B on "
            f"more than {pct(tier0_share)} of queries, but the 0.5B is right on only "
            f"{pct(float(train.correct[:, 0].mean()))} of train problems. At the "
            "no-loss target the cheapest cascade therefore costs more than the 1.5B "
            "alone, which is the better choice on this pair."
            if ev.cost > top_cost
            else f"A 0.5B call costs {pct(tier0_share)} of a 1.5B call here."
        ),
        "",
        markdown_table(
            ["tier", "mean output tokens", "cut at max_tokens", "has 'Answer: <n>'"],
            [
                [
                    SHORT_NAMES[m],
                    f"{out_tokens[m]:.0f}",
                    pct(truncated[m]),
                    pct(formatted[m]),
                ]
                for m in MODELS
            ],
        ),
        "",
        "## Gate candidates (fitted on train, then replayed on test)",
        "",
        markdown_table(
            [
                "gate",
                "threshold",
                "train acc",
                "train cost",
                "train APGR",
                "test acc",
                "test cost",
                "test escalated",
            ],
            gate_rows,
        ),
        "",
        f"Train frontier: `{NAME}_frontier.png`; the train-frontier thresholds "
        f"replayed on test: `{NAME}_test.png`.",
        "",
    ]
    lines += [
        "## Other operating points (same cached answers, fitted on train, on test)",
        "",
        "*95%* = keep at least 95% of the best single tier's train accuracy (the "
        "quality-retention level RouteLLM reports)."
        + (
            f" Both rules pick the same policy: with {n_train} train problems "
            f"accuracy moves in {100 / n_train:.0f}-point steps, so the 95% target "
            "needs the same number of right answers."
            if points[0]["thresholds"] == points[1]["thresholds"]
            and points[0]["gate"] == points[1]["gate"]
            else ""
        ),
        "",
        markdown_table(
            [
                "rule",
                "gate",
                "threshold",
                "train acc",
                "test acc",
                "test cost / query",
                "cost vs 1.5B",
                "escalated",
            ],
            [
                [
                    p["rule"],
                    p["gate"],
                    p["thresholds_text"],
                    pct(p["train_accuracy"]),
                    pct(p["test_accuracy"]),
                    money(p["test_cost_per_query"]),
                    f"{100 * (p['test_cost_vs_top_tier'] - 1):+.0f}%",
                    pct(p["test_escalation_rate"]),
                ]
                for p in points
            ],
        ),
        "",
    ]
    lines += live_section(live_cmp, "problems")
    lines += [
        "## Why SmolLM2-135M is not tier 0",
        "",
        f"On the first {len(probe)} train problems (same prompt and settings) it "
        f"answered {pct(probe_acc)} correctly. A tier 0 that is almost never right "
        "adds its cost and latency to nearly every query and cannot let the cascade "
        "stop early, so it is left out."
        if probe
        else "Not probed in this run.",
        "",
    ]
    if run:
        lines += [
            "## Wall time (full run)",
            "",
            markdown_table(
                ["step", "wall time"],
                [
                    ["start the servers", fmt_seconds(run["startup_s"])],
                    *[
                        [
                            f"{SHORT_NAMES[m]}: {run['answered'].get(m, 0)} problems",
                            fmt_seconds(run["collect_s"].get(m, 0.0)),
                        ]
                        for m in (*MODELS, PROBE_MODEL)
                        if m in run["collect_s"]
                    ],
                    [
                        "all answers collected (the 1.5B in parallel with the others)",
                        fmt_seconds(run["collect_wall_s"]),
                    ],
                    [
                        f"live cascade: {live_cmp.get('n', 0)} problems",
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
        "## For context (different models)",
        "",
        "RouteLLM (arXiv 2406.18665), as summarised in the data README: on GSM8K its "
        "best routers between Mixtral-8x7B and GPT-4 cut GPT-4 calls by about 35% while "
        "keeping 95% of GPT-4's quality.",
        "",
    ]
    (out_dir / f"{NAME}.md").write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--n-test", type=int, default=100)
    parser.add_argument("--n-train", type=int, default=50)
    parser.add_argument("--n-live", type=int, default=15)
    parser.add_argument("--smollm-probe", type=int, default=10)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--from-cache", action="store_true")
    args = parser.parse_args()

    data_dir = resolve_data_dir(args.data_dir)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    cache_path = args.out_dir / f"{NAME}_answers.jsonl"
    train, test = load_problems(data_dir, args.n_test, args.n_train)
    queries = train + test
    probe_queries = train[: args.smollm_probe]
    fp = fingerprint(args.max_tokens)

    if args.from_cache:
        records = load_cached(cache_path, queries, MODELS, fp)
        probe = (
            load_cached(cache_path, probe_queries, [PROBE_MODEL], fp)
            if probe_queries
            else []
        )
        chosen, results, _ = fit(records)
        live = cached_live(
            cache_path,
            fingerprint=fp,
            tag=live_tag(chosen, results[chosen].thresholds),
            n=args.n_live,
        )
        runs = [
            r
            for r in read_jsonl(cache_path)
            if r.get("kind") == "run" and r.get("fingerprint") == fp
        ]
        info = {"mode": "re-analysed from the cache", "run": runs[-1] if runs else {}}
        analyse(args, records, probe, live, info)
        return

    from langchain_cascade.local_models import LocalModels

    kwargs = chat_kwargs(args.max_tokens)
    names = [*MODELS, PROBE_MODEL] if probe_queries else list(MODELS)
    started = time.perf_counter()
    with LocalModels(names, n_threads=1, n_parallel=1) as lm:
        startup = time.perf_counter() - started
        print(f"servers up in {startup:.1f} s", flush=True)
        chats = {m: lm.chat_model(m, **kwargs) for m in names}
        collect_s: dict[str, float] = {}
        plan = [
            [(PROBE_MODEL, probe_queries), (MODELS[0], queries)],
            [(MODELS[1], queries)],
        ]

        def work(steps: Sequence[tuple[str, Sequence[Query]]]) -> None:
            for model, todo in steps:
                if not todo:
                    continue
                t0 = time.perf_counter()
                collect_answers(
                    {model: chats[model]}, todo, cache_path, grade, fp, top_k=0
                )
                collect_s[model] = time.perf_counter() - t0

        t0 = time.perf_counter()
        threads = [threading.Thread(target=work, args=(steps,)) for steps in plan]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        collect_wall = time.perf_counter() - t0
        records = load_cached(cache_path, queries, MODELS, fp)
        probe = (
            load_cached(cache_path, probe_queries, [PROBE_MODEL], fp)
            if probe_queries
            else []
        )
        chosen, results, _ = fit(records)
        thresholds = results[chosen].thresholds
        print(f"fitted {chosen.name}: {threshold_text(thresholds)}", flush=True)
        cascade = CascadingChatModel(
            models=[chats[m] for m in MODELS],
            gates=[live_gate(t, chosen.gate) for t in thresholds],
            prices=EXAMPLE_PRICES,
        )
        t0 = time.perf_counter()
        live = run_live(
            cascade,
            test[: args.n_live],
            grade=grade,
            cache_path=cache_path,
            fingerprint=fp,
            tag=live_tag(chosen, thresholds),
        )
        live_s = time.perf_counter() - t0
    run = {
        "kind": "run",
        "fingerprint": fp,
        "finished": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "startup_s": startup,
        "collect_s": collect_s,
        "collect_wall_s": collect_wall,
        "answered": {
            **{m: len(queries) for m in MODELS},
            PROBE_MODEL: len(probe_queries),
        },
        "live_s": live_s,
        "wall_s": time.perf_counter() - started,
        "n_train": args.n_train,
        "n_test": args.n_test,
        "n_live": args.n_live,
        "max_tokens": args.max_tokens,
    }
    append_jsonl(cache_path, run)
    analyse(args, records, probe, live, {"mode": "full run", "run": run})


if __name__ == "__main__":
    main()
