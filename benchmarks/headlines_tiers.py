"""Tier selection on HEADLINES (issue 11, must-show 3): which tiers pay for themselves.

Reads the cached per-tier answers of the HEADLINES benchmark (three local models,
SmolLM2-135M -> Qwen2.5-Coder-0.5B -> Qwen2.5-Coder-1.5B, on 150 train and 300
test headlines; written by ``python -m benchmarks.headlines``, kept outside git
in ``benchmarks/results/headlines_collect_<fingerprint>.jsonl``, the file its
``collect`` wrote), so no model is called. For
each quality target (no loss against the best single tier on train; 95% of it),
``calibrate`` is fitted on the train headlines three ways -- the three-tier
cascade, the two-tier cascade without SmolLM2, and ``select_tiers=True`` (the
package chooses) -- and each fitted policy is scored on the test headlines. The
gate is the HEADLINES benchmark's own logprob gate with the aggregation its fit
chooses on train.

Run: ``python -m benchmarks.headlines_tiers [--cache-dir DIR] [--data-dir PATH]``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from benchmarks.common import Answers, Files, fit, matrices, resolve_data_dir
from benchmarks.headlines import CANDIDATES, MODELS, Headlines, load_split
from langchain_cascade.calibration import calibrate, evaluate_thresholds
from langchain_cascade.cli import tier_line

RESULTS = Path(__file__).resolve().parent / "results"
SHORT = {
    "smollm2-135m": "135M",
    "qwen2.5-coder-0.5b": "0.5B",
    "qwen2.5-coder-1.5b": "1.5B",
}


def _row(
    label: str, kept: list[int], train: Any, test: Any, target: float, **kwargs: Any
) -> dict[str, Any]:
    res = calibrate(
        train.scores[:, kept],
        train.correct[:, kept],
        train.costs[:, kept],
        min_quality=target,
        **kwargs,
    )
    tiers = [kept[t] for t in res.tiers] if res.tiers else kept
    ev = evaluate_thresholds(
        test.scores[:, tiers],
        test.correct[:, tiers],
        test.costs[:, tiers],
        res.thresholds,
    )
    strong = float(test.costs[:, -1].mean())
    return {
        "system": label,
        "tiers": " -> ".join(SHORT[MODELS[t]] for t in tiers),
        "kept": tiers,
        "thresholds": [float(t) for t in res.thresholds],
        "train_accuracy": res.quality,
        "train_cost": res.cost,
        "test_accuracy": ev.quality,
        "test_cost": ev.cost,
        "test_cost_vs_strong": ev.cost / strong - 1.0,
        "report": [
            tier_line(v, [SHORT[MODELS[kept[i]]] for i in range(len(kept))])
            for v in res.tier_report
        ],
    }


def run(
    cache_dir: Path, data_dir: Path, n_train: int = 150, n_test: int = 300
) -> dict[str, Any]:
    queries = load_split(data_dir, "train", n_train) + load_split(
        data_dir, "test", n_test
    )
    files = Files.of(Headlines(), argparse.Namespace(out_dir=cache_dir), queries)
    answers = Answers.read(files.answers, queries)
    out: dict[str, Any] = {
        "benchmark": "HEADLINES tier selection (issue 11)",
        "command": "python -m benchmarks.headlines_tiers",
        "n_train": n_train,
        "n_test": n_test,
        "targets": [],
    }
    for retain, rule in (
        (1.0, "no loss vs the best single tier on train"),
        (0.95, "95% of it"),
    ):
        fitted = fit(answers, CANDIDATES, MODELS, retain)
        aggregation, target = fitted.chosen.name, fitted.target
        train = matrices(answers, "train", MODELS, fitted.chosen)
        test = matrices(answers, "test", MODELS, fitted.chosen)
        rows = [
            _row("three tiers", [0, 1, 2], train, test, target),
            _row("two tiers (no SmolLM2)", [1, 2], train, test, target),
            _row(
                "select_tiers=True", [0, 1, 2], train, test, target, select_tiers=True
            ),
        ]
        out["targets"].append(
            {
                "rule": rule,
                "retain": retain,
                "target": target,
                "aggregation": aggregation,
                "strong_alone_test_accuracy": float(test.correct[:, -1].mean()),
                "strong_alone_test_cost": float(test.costs[:, -1].mean()),
                "rows": rows,
            }
        )
    return out


def markdown(results: dict[str, Any]) -> str:
    lines = [
        "# HEADLINES: tier selection (issue 11)",
        "",
        f"Fitted on {results['n_train']} train headlines, scored on "
        f"{results['n_test']} test headlines; cached answers of the three local "
        "models (no model called). Example prices as in `headlines.md`.",
    ]
    for t in results["targets"]:
        lines += [
            "",
            f"## Target: {t['rule']} (train accuracy >= {t['target']:.1%}; "
            f"gate: logprob {t['aggregation']})",
            "",
            "| system | tiers | train acc. | test acc. | test cost / query | vs 1.5B alone |",
            "|---|---|---|---|---|---|",
            f"| Qwen-1.5B alone | 1.5B | | {t['strong_alone_test_accuracy']:.1%} | "
            f"${t['strong_alone_test_cost']:.3g} | |",
        ]
        for r in t["rows"]:
            lines.append(
                f"| {r['system']} | {r['tiers']} | {r['train_accuracy']:.1%} | "
                f"{r['test_accuracy']:.1%} | ${r['test_cost']:.3g} | "
                f"{r['test_cost_vs_strong']:+.0%} |"
            )
        chosen = t["rows"][-1]
        lines += ["", "Pays-for-itself report of `select_tiers` (train):", ""]
        lines += [f"- {line.strip()}" for line in chosen["report"]]
    lines += ["", f"Command: `{results['command']}`"]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=RESULTS,
        help="where the HEADLINES benchmark cached its collected answers",
    )
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    args = parser.parse_args()
    results = run(args.cache_dir, resolve_data_dir(args.data_dir))
    text = markdown(results)
    print(text)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "headlines_tiers.md").write_text(text, encoding="utf-8")
    (args.out_dir / "headlines_tiers.json").write_text(
        json.dumps(results, indent=2, default=float) + "\n", encoding="utf-8"
    )


if __name__ == "__main__":
    main()
