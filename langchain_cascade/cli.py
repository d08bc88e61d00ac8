r"""The ``langchain-cascade`` command: collect calibration data and fit thresholds.

.. code-block:: bash

    # run every tier and gate of your cascade on labelled data (resumable)
    langchain-cascade collect --config my_project.cascade:factory \
        --data labelled.jsonl --out scores.jsonl

    # fit the thresholds: the cheapest policy with 95% of the final tier's quality
    langchain-cascade calibrate scores.jsonl --min-quality-ratio 0.95 \
        --plot frontier.png --json calibration.json

``calibrate`` reads the JSON-lines file written by ``collect`` or an ``.npz``
with ``scores``, ``correct`` and ``costs`` (and optionally ``gate_costs``)
arrays of shape (queries, tiers). ``collect`` imports ``module:factory``; the
factory is called with the ``--data`` path (or with no argument when ``--data``
is not given) and returns ``(cascade, examples, evaluate)`` as
:func:`~langchain_cascade.collect.collect` takes them.

Exit codes: 0 on success, 1 when the data cannot be calibrated (e.g. the
constraint is infeasible), 2 on bad arguments. Needs the ``calibration`` extra.
Also runnable as ``python -m langchain_cascade.cli``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO, TypeVar

if TYPE_CHECKING:
    from langchain_cascade.calibration import CalibrationResult, TierValue
    from langchain_cascade.collect import CollectedScores

__all__ = ["build_parser", "format_report", "main"]

PROG = "langchain-cascade"


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors name the subcommand's usage."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


_N = TypeVar("_N", int, float)


def _number(
    parse: Callable[[str], _N], expected: str, ok: Callable[[_N], bool], rule: str
) -> Callable[[str], _N]:
    """An argparse ``type``: ``parse`` the text, then check it with ``ok``.

    The errors read ``expected <expected>, got '<text>'`` for text that does not
    parse and ``<rule>, got <text>`` for a value that ``ok`` refuses.
    """

    def argument(text: str) -> _N:
        try:
            value = parse(text)
        except ValueError:
            msg = f"expected {expected}, got {text!r}"
            raise argparse.ArgumentTypeError(msg) from None
        if not ok(value):
            msg = f"{rule}, got {text}"
            raise argparse.ArgumentTypeError(msg)
        return value

    return argument


_share = _number(
    float,
    "a number in [0, 1]",
    lambda v: 0.0 <= v <= 1.0,
    "must lie in [0, 1] (a share, e.g. 0.95)",
)
_positive = _number(
    float,
    "a positive number",
    lambda v: math.isfinite(v) and v > 0,
    "must be a positive number",
)
_positive_int = _number(int, "a positive integer", lambda v: v >= 1, "must be >= 1")


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser (``calibrate`` and ``collect`` subcommands).

    Returns:
        The parser.
    """
    parser = _Parser(
        prog=PROG,
        description=(
            "Fit the thresholds of a langchain-cascade CascadingChatModel on "
            "labelled data."
        ),
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    fit = commands.add_parser(
        "calibrate",
        help="fit thresholds on collected scores and print the metrics",
        description=(
            "Fit the cascade's thresholds on collected scores (the collect "
            "JSON-lines file, or an .npz with scores/correct/costs[/gate_costs] "
            "arrays of shape queries x tiers). Without a constraint: the cheapest "
            "policy that keeps the final tier's quality."
        ),
    )
    fit.add_argument("file", type=Path, help="scores.jsonl (from collect) or .npz")
    target = fit.add_mutually_exclusive_group()
    target.add_argument(
        "--min-quality",
        type=_share,
        metavar="Q",
        help="minimise cost subject to mean quality >= Q (in [0, 1])",
    )
    target.add_argument(
        "--min-quality-ratio",
        type=_share,
        metavar="R",
        help=(
            "minimise cost subject to quality >= R x the final tier's own quality "
            "on this data (e.g. 0.95: keep 95%% of it)"
        ),
    )
    target.add_argument(
        "--max-cost",
        type=_positive,
        metavar="C",
        help="maximise quality subject to mean cost per query <= C (dollars)",
    )
    fit.add_argument("--plot", type=Path, metavar="PNG", help="write the frontier plot")
    fit.add_argument(
        "--json", type=Path, metavar="OUT", help="write the full result as JSON"
    )
    fit.add_argument(
        "--no-gate-costs",
        action="store_true",
        help="ignore what the gates cost (e.g. when a gate model has no price)",
    )
    fit.add_argument(
        "--title", default="Cascade cost-quality frontier", help="the plot's title"
    )
    fit.add_argument(
        "--confidence",
        type=_share,
        metavar="P",
        help="meet the target at this bootstrap confidence (e.g. 0.9), not on the mean",
    )
    fit.add_argument(
        "--select-tiers",
        action="store_true",
        help="also choose which tiers to keep (the final tier always stays, "
        "possibly alone: then call it without a cascade)",
    )
    fit.set_defaults(handler=_calibrate, subparser=fit)

    run = commands.add_parser(
        "collect",
        help="run every tier and gate of a cascade on labelled data",
        description=(
            "Import module:factory, call it with the --data path (or with no "
            "argument) to get (cascade, examples, evaluate), and run collect(). "
            "Rerun the same command to resume an interrupted run."
        ),
    )
    run.add_argument(
        "--config",
        required=True,
        metavar="MODULE:FACTORY",
        help="e.g. my_project.cascade:factory (the current directory is importable)",
    )
    run.add_argument("--data", type=Path, help="passed to the factory")
    run.add_argument(
        "--out", required=True, type=Path, help="JSON-lines file to write and resume"
    )
    run.add_argument("--max-concurrency", type=_positive_int, default=4, metavar="N")
    run.add_argument(
        "--on-error",
        choices=["raise", "skip"],
        default="raise",
        help="stop at the first failing example (default) or skip it",
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument(
        "--shard",
        type=_shard,
        metavar="I/N",
        help="run only examples whose index is I modulo N (one worker's share)",
    )
    run.set_defaults(handler=_collect, subparser=run)
    return parser


# --------------------------------------------------------------------------
# calibrate
# --------------------------------------------------------------------------


def _pct(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{100 * value:.1f}%"


def _money(value: float) -> str:
    return "n/a" if math.isnan(value) else f"${value:.6g}"


def _threshold(value: float) -> str:
    if math.isinf(value):
        return "+inf (never accept)" if value > 0 else "-inf (always accept)"
    return f"{value:.6g}"


def _shard(value: str) -> tuple[int, int]:
    i, sep, n = value.partition("/")
    try:
        shard = (int(i), int(n))
    except ValueError:
        shard = (-1, 0)
    if not sep or not 0 <= shard[0] < shard[1]:
        msg = f"expected I/N with 0 <= I < N, got {value!r}"
        raise argparse.ArgumentTypeError(msg)
    return shard


def format_report(
    result: CalibrationResult,
    *,
    model_names: Sequence[str] = (),
    source: str = "",
) -> str:
    """The human-readable summary ``calibrate`` prints.

    Tiers are named by their input column (``result.tiers``), so a result of
    ``select_tiers`` that dropped some names the kept ones. When only the final
    tier is kept, the report says to call it alone, without a cascade.

    Args:
        result: The calibration result.
        model_names: The tiers' names (of every input column), for the
            threshold lines.
        source: Where the data came from.

    Returns:
        The report, several lines.
    """
    names = list(model_names)
    kept = result.tiers or tuple(range(result.n_tiers))

    def tier(i: int) -> str:
        return f"tier {i}{f' ({names[i]})' if i < len(names) else ''}"

    premium = result.premium_cost
    relative = result.cost / premium if premium > 0 else math.nan
    lines = [
        f"Calibrated on {result.n_queries} queries x {result.n_tiers} tiers"
        + (f" from {source}" if source else ""),
        f"Objective: {result.constraint} ({result.method})",
        "",
        "Thresholds (accept a tier's answer when its gate score >= threshold):",
    ]
    lines += [
        f"  {tier(i)}: {_threshold(t)}"
        for i, t in zip(kept, result.thresholds, strict=False)
    ]
    if not result.thresholds:
        lines += [
            f"  none: no cascade pays at this target; call {tier(kept[-1])} "
            "alone, without a cascade"
        ]
    lines += [
        "",
        "Chosen policy:",
        f"  quality            {_pct(result.quality)}",
        f"  cost per query     {_money(result.cost)}"
        + ("" if math.isnan(relative) else f" ({_pct(relative)} of final tier only)"),
        f"  escalation rate    {_pct(result.escalation_rate)}",
        f"  final-tier calls   {_pct(result.strong_call_rate)}",
        "  answered per tier  "
        + ", ".join(
            f"{i}: {_pct(r)}" for i, r in zip(kept, result.tier_rates, strict=False)
        ),
        "",
        "Routing metrics (RouteLLM, arXiv:2406.18665):",
        "  APGR               "
        + ("n/a" if math.isnan(result.apgr) else f"{result.apgr:.3f}"),
    ]
    lines += [
        f"  CPT({100 * level:.0f}%)           {_pct(value)} final-tier calls"
        for level, value in sorted(result.cpt.items())
    ]
    baselines = [
        ("cheap tier only", result.cheap_quality, result.cheap_cost),
        ("final tier only", result.premium_quality, result.premium_cost),
        ("perfect gate", result.perfect_quality, result.perfect_cost),
        ("this cascade", result.quality, result.cost),
    ]
    if not result.thresholds:  # the others are the final tier itself
        baselines = baselines[1:2]
    lines += ["", f"Baselines            {'quality':>8}  {'cost/query':>12}"]
    lines += [
        f"  {label:<17}  {_pct(q):>8}  {_money(c):>12}" for label, q, c in baselines
    ]
    lines += [f"Frontier: {len(result.frontier)} non-dominated policies"]
    if result.quality_interval is not None and result.cost_interval is not None:
        (q_lo, q_hi), (c_lo, c_hi) = result.quality_interval, result.cost_interval
        lines += [
            f"Bootstrap bounds at {result.confidence:g}: quality "
            f"{_pct(q_lo)} .. {_pct(q_hi)}, cost {_money(c_lo)} .. {_money(c_hi)}"
        ]
    if result.tier_report:
        lines += ["", f"Tiers kept: {list(result.tiers)}"]
        lines += [tier_line(r, names) for r in result.tier_report]
    return "\n".join(lines)


def tier_line(value: TierValue, names: Sequence[str] = ()) -> str:
    """One line of the pays-for-itself report: "tier 1 (x): drop (...)".

    Args:
        value: One entry of ``CalibrationResult.tier_report``.
        names: The tiers' model names.

    Returns:
        The line.
    """
    tier = value["tier"]
    name = f" ({names[tier]})" if tier < len(names) else ""

    def cost(v: float | None) -> str:
        return "infeasible" if v is None else _money(v)

    verdict = "pays for itself" if value["pays"] else "does not pay: drop it"
    return (
        f"  tier {tier}{name}: {verdict} "
        f"(cost with {cost(value['cost_with'])}, without {cost(value['cost_without'])})"
    )


def _load(parser: argparse.ArgumentParser, path: Path) -> CollectedScores:
    from langchain_cascade.collect import CollectedScores  # noqa: PLC0415

    if not path.is_file():
        parser.error(f"no such file: {path}")
    if path.suffix not in (".npz", ".jsonl", ".json", ".ndjson"):
        parser.error(
            f"{path}: expected a collect JSON-lines file (.jsonl) or an .npz, "
            f"got {path.suffix or 'no extension'}"
        )
    return CollectedScores.load(path)


def _calibrate(
    args: argparse.Namespace, parser: argparse.ArgumentParser, out: TextIO
) -> int:
    from langchain_cascade.calibration import plot_frontier  # noqa: PLC0415

    data = _load(parser, args.file)
    kwargs: dict[str, Any] = {}
    if args.min_quality is not None:
        kwargs["min_quality"] = args.min_quality
    if args.max_cost is not None:
        kwargs["max_cost"] = args.max_cost
    if args.min_quality_ratio is not None:
        premium = float(data.correct[:, -1].mean())
        kwargs["min_quality"] = args.min_quality_ratio * premium
    if args.confidence is not None:
        kwargs["confidence"] = args.confidence
    result = data.calibrate(
        include_gate_costs=not args.no_gate_costs,
        select_tiers=args.select_tiers,
        **kwargs,
    )
    out.write(
        format_report(result, model_names=data.model_names, source=str(args.file))
        + "\n"
    )
    if args.plot is not None:
        written = plot_frontier(result, args.plot, title=args.title)
        out.write(f"Plot: {written}\n")
    if args.json is not None:
        payload = {
            "source": str(args.file),
            "model_names": list(data.model_names),
            **result.to_dict(),
        }
        args.json.write_text(
            json.dumps(payload, indent=2, allow_nan=False) + "\n", encoding="utf-8"
        )
        out.write(f"JSON: {args.json}\n")
    return 0


# --------------------------------------------------------------------------
# collect
# --------------------------------------------------------------------------


def _factory(parser: argparse.ArgumentParser, spec: str) -> Callable[..., Any]:
    module_name, sep, attribute = spec.partition(":")
    if not (sep and module_name and attribute):
        parser.error(f"--config must look like module:factory, got {spec!r}")
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))  # like `python -m`: cwd is importable
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        parser.error(f"cannot import {module_name!r} from --config: {exc}")
    target: Any = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            parser.error(f"{module_name} has no attribute {attribute!r} (--config)")
        target = getattr(target, part)
    if not callable(target):
        parser.error(f"--config {spec} is not callable")
    return target  # type: ignore[no-any-return]


def _collect(
    args: argparse.Namespace, parser: argparse.ArgumentParser, out: TextIO
) -> int:
    from langchain_cascade.chat_models import CascadingChatModel  # noqa: PLC0415
    from langchain_cascade.collect import collect  # noqa: PLC0415

    factory = _factory(parser, args.config)
    if args.data is not None and not args.data.exists():
        parser.error(f"no such file: {args.data}")
    made = factory(args.data) if args.data is not None else factory()
    if not (isinstance(made, tuple | list) and len(made) == 3):
        msg = (
            f"{args.config} must return (cascade, examples, evaluate), "
            f"got {type(made).__name__}"
        )
        raise ValueError(msg)
    cascade, examples, evaluate = made
    if not isinstance(cascade, CascadingChatModel):
        msg = (
            f"{args.config} returned a {type(cascade).__name__} as the cascade, "
            "not a CascadingChatModel"
        )
        raise TypeError(msg)
    data = collect(
        cascade,
        examples,
        evaluate,
        path=args.out,
        progress=not args.no_progress,
        max_concurrency=args.max_concurrency,
        on_error=args.on_error,
        shard=args.shard,
    )
    out.write(
        f"Collected {data.n_queries} examples x {data.n_tiers} tiers "
        f"({', '.join(data.model_names)}) into {args.out}\n"
        + data.summary()
        + f"\nNext: {PROG} calibrate {args.out} --min-quality Q\n"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line.

    Args:
        argv: Arguments without the program name; ``sys.argv[1:]`` by default.

    Returns:
        The exit code: 0 on success, 1 when the data cannot be calibrated or
        collected, 2 on bad arguments (argparse exits with 2 itself).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args, args.subparser, sys.stdout))
    except (ValueError, TypeError, OSError) as exc:
        sys.stderr.write(f"{PROG} {args.command}: error: {exc}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
