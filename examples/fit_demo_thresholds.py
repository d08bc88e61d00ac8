"""Fit the demo's gate on the workload's fitting sample (never the demo's questions).

Uses the tiers tier selection kept (``benchmarks/results/tier_selection.json``)
and the answers every tier gave on the fitting sample, collected by
``benchmarks.workload`` (with ``--from-cache`` only from its answer cache, else
the missing answers are collected with the local models). Writes
``examples/demo_thresholds.json``.

Run: ``python -m examples.fit_demo_thresholds [--from-cache]``.
"""

from __future__ import annotations

import argparse
import json

from benchmarks.common import resolve_data_dir
from benchmarks.workload import (
    ALL_TIERS,
    THREADS,
    chosen_tiers,
    demo_config,
    fit,
    gather,
)
from examples.demo_cascade import THRESHOLDS_FILE
from langchain_cascade.local_models import LocalModels


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--from-cache", action="store_true")
    args = parser.parse_args(argv)
    data_dir = resolve_data_dir(args.data_dir)
    if args.from_cache:
        data = gather("fit", data_dir, 16.0, None)
    else:
        with LocalModels(ALL_TIERS, n_threads=THREADS) as models:
            data = gather("fit", data_dir, 16.0, models)
    names = chosen_tiers()
    sub = data.subset(names)
    fitted = fit(sub)
    config = demo_config(fitted, names, sub)
    THRESHOLDS_FILE.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(config, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
