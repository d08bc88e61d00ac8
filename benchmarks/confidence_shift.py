"""Thresholds that hold on new traffic (issue 11, must-show 2): with and without confidence.

Data: the RouteLLM GSM8K replay (Mixtral-8x7B -> GPT-4, 1,307 recorded answers,
read in place; no model call). Gate: the package's ``LearnedGate`` over the
rule gates' scores and generic answer features, each query scored out-of-fold
(5 folds). Fitting and test samples differ in difficulty: the queries are cut
by question length (a field of the data, not a fitted quantity) into the
shorter and the longer half; Mixtral is right more often on the shorter ones.

Each trial draws a fitting sample of ``--n`` queries from one pool and a test
sample of ``--n`` from another, fits ``calibrate(min_quality=target)`` on the
fitting sample without and with ``confidence``, and checks whether the test
sample's quality meets the same target. Settings: same distribution (both from
all queries, disjoint), shift (fit on short, test on long) and reverse shift.
The table reports how often the target held on the test sample, the mean test
quality and the mean cost against GPT-4 alone.

Run: ``python -m benchmarks.confidence_shift [--data-dir PATH] [--trials 200]``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import routellm_replay as replay
from langchain_cascade.calibration import calibrate, evaluate_thresholds
from langchain_cascade.gates.learned import out_of_fold_scores

RESULTS = replay.RESULTS
CONFIDENCE = 0.9


def _trial(
    rng: np.random.Generator,
    fit_pool: np.ndarray,
    test_pool: np.ndarray,
    *,
    n: int,
    arrays: tuple[np.ndarray, np.ndarray, np.ndarray],
    target: float,
) -> dict[str, Any]:
    scores, correct, costs = arrays
    fit_rows = rng.choice(fit_pool, size=n, replace=False)
    rest = np.setdiff1d(test_pool, fit_rows)
    test_rows = rng.choice(rest, size=n, replace=False)
    out: dict[str, Any] = {}
    for name, level in (("plain", None), ("confidence", CONFIDENCE)):
        try:
            res = calibrate(
                scores[fit_rows],
                correct[fit_rows],
                costs[fit_rows],
                min_quality=target,
                n_bootstrap=400,
                seed=int(rng.integers(1 << 31)),
                confidence=level,
            )
        except ValueError:
            out[name] = None  # infeasible on this fitting sample
            continue
        ev = evaluate_thresholds(
            scores[test_rows], correct[test_rows], costs[test_rows], res.thresholds
        )
        out[name] = {
            "held": bool(ev.quality >= target),
            "quality": ev.quality,
            "cost_ratio": ev.cost / float(costs[test_rows, 1].mean()),
            "escalation": ev.escalation_rate,
        }
    return out


def run(
    data_dir: Path | None, trials: int, n: int, target: float, seed: int
) -> dict[str, Any]:
    ds = replay.load_dataset(data_dir or replay.default_data_dir())
    signals = replay.compute_signals(ds)
    learned = out_of_fold_scores(
        signals.data, replay.base_gates(), features=replay.GENERIC, folds=5, seed=seed
    )
    arrays = (learned, signals.data.correct, signals.data.costs)
    length = np.asarray([len(p) for p in ds.prompts])
    order = np.argsort(length, kind="stable")
    short, long_ = np.sort(order[: ds.n // 2]), np.sort(order[ds.n // 2 :])
    everything = np.arange(ds.n)
    settings = {
        "same distribution (all -> all)": (everything, everything),
        "shift (short -> long)": (short, long_),
        "reverse shift (long -> short)": (long_, short),
    }
    correct = signals.data.correct
    rng = np.random.default_rng(seed)
    rows = []
    for label, (fit_pool, test_pool) in settings.items():
        results = [
            _trial(rng, fit_pool, test_pool, n=n, arrays=arrays, target=target)
            for _ in range(trials)
        ]
        row: dict[str, Any] = {
            "setting": label,
            "mixtral_accuracy_fit_pool": float(correct[fit_pool, 0].mean()),
            "mixtral_accuracy_test_pool": float(correct[test_pool, 0].mean()),
            "gpt4_accuracy_test_pool": float(correct[test_pool, 1].mean()),
        }
        for name in ("plain", "confidence"):
            done = [r[name] for r in results if r[name] is not None]
            row[name] = {
                "trials": trials,
                "infeasible": trials - len(done),
                "held_share": float(np.mean([d["held"] for d in done]))
                if done
                else None,
                "test_quality": float(np.mean([d["quality"] for d in done]))
                if done
                else None,
                "cost_ratio": float(np.mean([d["cost_ratio"] for d in done]))
                if done
                else None,
                "escalation": float(np.mean([d["escalation"] for d in done]))
                if done
                else None,
            }
        rows.append(row)
    return {
        "benchmark": "confidence bounds under a difficulty shift (issue 11)",
        "command": f"python -m benchmarks.confidence_shift --trials {trials} --n {n} "
        f"--target {target} --seed {seed}",
        "target": target,
        "confidence": CONFIDENCE,
        "n_fit": n,
        "n_test": n,
        "trials": trials,
        "gate": "LearnedGate over hedging/length/format/arithmetic + answer_chars, "
        "output_tokens; out-of-fold scores",
        "rows": rows,
    }


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.1%}"


def markdown(results: dict[str, Any]) -> str:
    lines = [
        "# Thresholds under a difficulty shift: with and without `confidence`",
        "",
        f"RouteLLM GSM8K replay (Mixtral -> GPT-4), LearnedGate scores (out-of-fold). "
        f"Each of {results['trials']} trials fits `calibrate(min_quality="
        f"{results['target']})` on {results['n_fit']} queries and checks the target on "
        f"{results['n_test']} other queries. Difficulty: question length (shorter / "
        f"longer half). `confidence={results['confidence']}`: bootstrap lower bound.",
        "",
        "| setting | Mixtral acc. fit / test pool | target held: plain | target held: confidence | test quality plain / conf. | cost vs GPT-4 plain / conf. | infeasible plain / conf. |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results["rows"]:
        p, c = r["plain"], r["confidence"]
        lines.append(
            f"| {r['setting']} | {_pct(r['mixtral_accuracy_fit_pool'])} / "
            f"{_pct(r['mixtral_accuracy_test_pool'])} | {_pct(p['held_share'])} | "
            f"{_pct(c['held_share'])} | {_pct(p['test_quality'])} / {_pct(c['test_quality'])} | "
            f"{_pct(p['cost_ratio'])} / {_pct(c['cost_ratio'])} | "
            f"{p['infeasible']} / {c['infeasible']} |"
        )
    lines += ["", f"Command: `{results['command']}`"]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--target", type=float, default=0.8)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    results = run(args.data_dir, args.trials, args.n, args.target, args.seed)
    text = markdown(results)
    print(text)
    (args.out_dir / "confidence_shift.md").write_text(text, encoding="utf-8")
    (args.out_dir / "confidence_shift.json").write_text(
        json.dumps(results, indent=2) + "\n", encoding="utf-8"
    )


if __name__ == "__main__":
    main()
