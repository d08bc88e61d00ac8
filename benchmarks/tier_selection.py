"""Tier selection by measurement: which local models a cascade here should use.

Candidates: every model in the registry (``langchain_cascade.local_models``). A
brief look for more (the registry's package index lists, searched for GGUF /
SmolLM / Qwen / TinyLlama / Phi / Gemma model packages) found only those already
examined in ``shared/docs/local-models.md``: a Gemma-3-270M *base* model (no chat
template, garbage in chat) and a DeepSeek-R1-7B split of which only 2 of ~48
parts exist; neither can be a tier.

Measured on this machine, side by side in one run:

- speed: llama.cpp's own timings of an uncached ~300-token prompt (prompt
  tokens/s) and of 64 generated tokens (generation tokens/s), three rounds with
  the models taking turns, medians;
- memory: the resident size of each model's server process;
- accuracy: on the workload's *fitting* sample (``benchmarks.workload``), never
  on the held-out or demo questions.

Then every tier set that ends with the strongest model is fitted on the fitting
sample (``calibrate``: cheapest thresholds that keep the strongest tier's
accuracy) under prices proportional to the measured compute; the set with the
lowest cost is chosen and a tier outside it is dropped: it does not pay.

Run: ``python -m benchmarks.tier_selection`` (writes
``benchmarks/results/tier_selection.{md,json}``).
"""

from __future__ import annotations

import itertools
import json
import math
import statistics
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import arguments, resolve_data_dir
from benchmarks.workload import (
    ALL_TIERS,
    CALCULATION,
    HEADLINE,
    THREADS,
    WORD_PROBLEM,
    Policy,
    SampleData,
    alone,
    fit,
    gather,
    run_policy,
)
from langchain_cascade.local_models import LocalModels
from langchain_cascade.pricing import ModelPrice

DOLLARS_PER_HOUR = 1.0
"""The compute-proportional example prices charge this machine's time at $1/hour."""


def _post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(  # noqa: S310 - loopback server we started
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=600) as response:
        data: dict[str, Any] = json.loads(response.read())
        return data


def _prompt_text(data_dir: Path, round_: int) -> str:
    """About 300 tokens of real headlines, different each round (no prompt cache)."""
    path = data_dir / "frugalgpt-headlines" / "train.csv"
    lines = path.read_text(encoding="utf-8").splitlines()
    start = 4000 + 40 * round_
    body = " ".join(
        line.split('"')[1] for line in lines[start : start + 20] if '"' in line
    )
    return f"Round {round_}. Summarise these headlines in one word: {body}"


def measure_speed(
    models: LocalModels, data_dir: Path, rounds: int = 3
) -> dict[str, dict[str, float]]:
    """Median prompt and generation tokens/s per model (llama.cpp's timings)."""
    samples: dict[str, dict[str, list[float]]] = {
        n: {"prompt": [], "gen": []} for n in models.names
    }
    for r in range(rounds):
        order = list(models.names) if r % 2 == 0 else list(reversed(models.names))
        for name in order:
            url = f"{models.base_url(name)}/chat/completions"
            t = _post(
                url,
                {
                    "model": name,
                    "messages": [
                        {"role": "user", "content": _prompt_text(data_dir, r)}
                    ],
                    "max_tokens": 1,
                    "temperature": 0,
                },
            )["timings"]
            samples[name]["prompt"].append(t["prompt_per_second"])
            t = _post(
                url,
                {
                    "model": name,
                    "messages": [
                        {
                            "role": "user",
                            "content": f"Write the numbers from {r * 300} to "
                            f"{r * 300 + 200}, separated by commas.",
                        }
                    ],
                    "max_tokens": 64,
                    "temperature": 0,
                },
            )["timings"]
            samples[name]["gen"].append(t["predicted_per_second"])
    return {
        n: {k: statistics.median(v) for k, v in s.items()} for n, s in samples.items()
    }


def rss_mb(pid: int | None) -> float:
    """Resident memory of a process in MB (NaN when unknown)."""
    if pid is None:
        return float("nan")
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def prices_per_million(speed: dict[str, float]) -> tuple[float, float]:
    """$ per 1M (input, output) tokens: seconds per token at $1 per hour."""
    per_second = DOLLARS_PER_HOUR / 3600
    return (
        1e6 * per_second / speed["prompt"],
        1e6 * per_second / speed["gen"],
    )


def measured_prices(speeds: dict[str, dict[str, float]]) -> dict[str, ModelPrice]:
    """The compute-proportional price table of these measurements."""
    return {
        name: ModelPrice(input_per_million=p_in, output_per_million=p_out)
        for name, (p_in, p_out) in (
            (n, prices_per_million(s)) for n, s in speeds.items()
        )
    }


def tier_sets() -> list[tuple[str, ...]]:
    """Every set of two or more tiers that ends with the strongest model."""
    strongest = ALL_TIERS[-1]
    cheaper = ALL_TIERS[:-1]
    return [
        (*combo, strongest)
        for k in range(1, len(cheaper) + 1)
        for combo in itertools.combinations(cheaper, k)
    ]


RETAIN = 0.97
"""A tier set must keep this share of the strongest tier's accuracy (the target)."""


def cross_validated(data: SampleData, folds: int = 2, seed: int = 0) -> Policy:
    """The fitted policy's figures on the fitting sample, each fold scored by a
    policy fitted on the other folds (in-sample figures flatter small samples)."""
    n = len(data.items)
    fold = np.random.default_rng(seed).permutation(n) % folds
    acc = cost = latency = 0.0
    for k in range(folds):
        policy = run_policy(data.take(fold == k), fit(data.take(fold != k)))
        share = float((fold == k).mean())
        acc += share * policy.accuracy
        cost += share * policy.cost
        latency += share * policy.latency
    return Policy(accuracy=acc, cost=cost, api_cost=math.nan, latency=latency, stops=())


def select(fit_data: SampleData) -> tuple[tuple[str, ...], list[dict[str, Any]]]:
    """Fit every tier set on the fitting sample and cross-validate it there.

    Chosen: the cheapest set (cross-validated cost) whose cross-validated
    accuracy keeps :data:`RETAIN` of the strongest tier's; when none does, the
    most accurate one.
    """
    rows: list[dict[str, Any]] = []
    strongest = alone(fit_data, len(ALL_TIERS) - 1)
    for names in tier_sets():
        sub = fit_data.subset(names)
        fitted = fit(sub)
        cv = cross_validated(sub)
        rows.append(
            {
                "tiers": list(names),
                "fit_cost_vs_strongest": fitted.cost / strongest.cost,
                "fit_accuracy": run_policy(sub, fitted).accuracy,
                "cv_cost_vs_strongest": cv.cost / strongest.cost,
                "cv_accuracy": cv.accuracy,
                "first_tier_by_kind": dict(fitted.first),
                "gate_weight": fitted.weight,
                "thresholds": list(fitted.thresholds),
            }
        )
    good = [r for r in rows if r["cv_accuracy"] >= RETAIN * strongest.accuracy - 1e-9]
    if good:
        best = min(
            good, key=lambda r: (round(r["cv_cost_vs_strongest"], 9), len(r["tiers"]))
        )
    else:
        best = max(rows, key=lambda r: (r["cv_accuracy"], -r["cv_cost_vs_strongest"]))
    chosen: tuple[str, ...] = tuple(best["tiers"])
    return chosen, rows


def short(name: str) -> str:
    return name.replace("qwen2.5-coder-", "Qwen-").replace("smollm2-", "SmolLM2-")


def report(
    speeds: dict[str, dict[str, float]],
    memory: dict[str, float],
    fit_data: SampleData,
    chosen: tuple[str, ...],
    sets: list[dict[str, Any]],
    *,
    load: str,
) -> str:
    h, g = fit_data.kind_mask(HEADLINE), fit_data.kind_mask(WORD_PROBLEM)
    c = fit_data.kind_mask(CALCULATION)
    lines = [
        "# Tier selection by measurement",
        "",
        "Produced by `python -m benchmarks.tier_selection`. Speeds: llama.cpp's timings, "
        f"medians of 3 rounds with the models taking turns (xllamacpp, {THREADS} thread per "
        f"server, {load}: the 2 cores are shared with other sessions, read the ratios). "
        f"Accuracy: the workload's fitting sample ({len(fit_data.items)} queries: "
        f"{int(h.sum())} HEADLINES, {int(c.sum())} calculations, {int(g.sum())} GSM8K), never the held-out or demo "
        "questions. Price = seconds per token at $1 per hour of this machine.",
        "",
        "| candidate | accuracy (all) | HEADLINES | calculations | GSM8K | prompt tok/s | "
        "gen tok/s | server RSS | $ / 1M in | $ / 1M out | verdict | why |",
        "|:---|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---|:---|",
    ]
    strongest = ALL_TIERS[-1]
    for j, name in enumerate(ALL_TIERS):
        acc = fit_data.correct[:, j]
        p_in, p_out = prices_per_million(speeds[name])
        if name in chosen:
            verdict = "chosen"
            why = (
                "the strongest tier: the quality bar"
                if name == strongest
                else f"in the chosen set (cheapest whose cross-validated accuracy "
                f"keeps {RETAIN:.0%} of the strongest tier's)"
            )
        else:
            verdict = "dropped"
            without = min(
                (r for r in sets if name not in r["tiers"]),
                key=lambda r: r["cv_cost_vs_strongest"],
            )
            with_it = max(
                (r for r in sets if name in r["tiers"]),
                key=lambda r: r["cv_accuracy"],
            )
            why = (
                f"does not pay: best set with it: cross-validated accuracy "
                f"{with_it['cv_accuracy']:.0%} at {with_it['cv_cost_vs_strongest']:.0%} "
                f"of the strongest tier's cost; without it: "
                f"{without['cv_accuracy']:.0%} at {without['cv_cost_vs_strongest']:.0%}"
            )
        lines.append(
            f"| {short(name)} | {acc.mean():.0%} | {acc[h].mean():.0%} | "
            f"{acc[c].mean():.0%} | "
            f"{acc[g].mean():.0%} | {speeds[name]['prompt']:.0f} | "
            f"{speeds[name]['gen']:.1f} | {memory[name]:.0f} MB | {p_in:.2f} | "
            f"{p_out:.2f} | {verdict} | {why} |"
        )
    lines += [
        "",
        "## Tier sets fitted on the fitting sample (compute-proportional prices)",
        "",
        "| tiers | fit cost vs strongest alone | fit accuracy | 2-fold CV cost | "
        "2-fold CV accuracy | first tier (headline / calc / problem) | gate weight | "
        "thresholds |",
        "|:---|---:|---:|---:|---:|:---:|---:|---:|",
    ]
    for r in sets:
        lines.append(
            f"| {' -> '.join(short(n) for n in r['tiers'])}"
            f"{' (chosen)' if tuple(r['tiers']) == chosen else ''} | "
            f"{r['fit_cost_vs_strongest']:.0%} | {r['fit_accuracy']:.0%} | "
            f"{r['cv_cost_vs_strongest']:.0%} | {r['cv_accuracy']:.0%} | "
            f"{' / '.join(short(r['tiers'][t]) for t in r['first_tier_by_kind'].values())} | "
            f"{r['gate_weight']:g} | {', '.join(f'{t:.3f}' for t in r['thresholds'])} |"
        )
    lines += [
        "",
        "Other candidates: none usable was found in the registry packages (see the "
        "module docstring).",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = arguments(
        __doc__.split("\n\n")[0],
        from_cache_help="reuse the speeds and memory in tier_selection.json and the "
        "cached answers",
    )
    args = parser.parse_args(argv)
    data_dir = resolve_data_dir(args.data_dir)
    load = f"load average {Path('/proc/loadavg').read_text().split()[0]} at the start"
    started = time.perf_counter()
    if args.from_cache:
        previous = json.loads((args.out_dir / "tier_selection.json").read_text())
        speeds, memory, load = (
            previous["speeds"],
            previous["memory_mb"],
            previous["load"],
        )
        fit_data = gather("fit", data_dir, 16.0, None)
    else:
        with LocalModels(ALL_TIERS, n_threads=THREADS) as models:
            speeds = measure_speed(models, data_dir)
            memory = {n: rss_mb(models.server(n).pid) for n in ALL_TIERS}
            fit_data = gather("fit", data_dir, 16.0, models)
    fit_data.prices = measured_prices(speeds)
    chosen, sets = select(fit_data)
    text = report(speeds, memory, fit_data, chosen, sets, load=load)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "tier_selection.md").write_text(text + "\n", encoding="utf-8")
    result = {
        "chosen": list(chosen),
        "speeds": speeds,
        "memory_mb": memory,
        "prices_per_million": {n: prices_per_million(speeds[n]) for n in ALL_TIERS},
        "sets": sets,
        "load": load,
    }
    (args.out_dir / "tier_selection.json").write_text(
        json.dumps(result, indent=2) + "\n", encoding="utf-8"
    )
    print(text)
    print(f"\n({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
