"""How well do text-only gates spot a cheap model's wrong answers? (RouteLLM GSM8K)

Data: RouteLLM's GSM8K responses (lm-sys/RouteLLM, Apache-2.0): for each of the
1,319 GSM8K test problems, the answers of Mixtral-8x7B-Instruct (cheap) and
GPT-4-1106-preview (premium), each labelled correct or not.

The event to detect is "the cheap answer is wrong". A gate escalates when it
fails the cheap answer; the cascade Mixtral -> GPT-4 then scores GPT-4's label
on escalated rows and Mixtral's on accepted rows. Every gate runs through its
real ``.invoke(GateInput(...))``.

Settings (MinLengthGate's ``min_chars``, a weighted gate's ``threshold``) are fitted
on one half of the rows (even or odd row index) to maximise Youden's J of
escalation (recall minus false-alarm rate; F1 would favour escalating everything),
and reported on the other half, both ways round. The pooled rows add the two test
halves, so each row is scored once by settings that never saw it.

Run:

    python -m benchmarks.gate_quality [--data-dir PATH] [--out benchmarks/results/gate_quality.md]
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from langchain_core.messages import AIMessage, HumanMessage

from benchmarks.common import resolve_data_dir
from langchain_cascade import GateInput
from langchain_cascade.gates import (
    ArithmeticGate,
    Gate,
    HedgingGate,
    MinLengthGate,
    RegexGate,
    all_of,
    any_of,
    weighted,
)

CHEAP = "mistralai/Mixtral-8x7B-Instruct-v0.1"
PREMIUM = "gpt-4-1106-preview"
CSV_PATH = Path("routellm-gsm8k") / "gsm8k_responses.csv"
DEFAULT_OUT = Path("benchmarks") / "results" / "gate_quality.md"
COMMAND = "python -m benchmarks.gate_quality --out benchmarks/results/gate_quality.md"
# The baselines the data README states; the script recomputes and checks them.
STATED = {
    "cheap": 0.638,
    "premium": 0.857,
    "perfect": 0.929,
    "perfect_escalation": 0.362,
}

MIN_CHARS_GRID = [40, 80, 120, 160, 200, 240, 280, 320, 360, 400, 500, 600, 800]
THRESHOLD_GRID = [round(0.05 * i, 2) for i in range(1, 21)]
FINAL_NUMBER = r"^\s*####\s*\$?\s*-?[\d,]*\.?\d+"


@dataclass(frozen=True)
class Row:
    index: int
    prompt: str
    cheap_answer: str
    cheap_ok: bool
    premium_ok: bool


@dataclass(frozen=True)
class Metrics:
    n: int
    escalated: int
    true_escalations: int  # escalated and the cheap answer was wrong
    cheap_wrong: int
    cascade_correct: int

    @property
    def precision(self) -> float | None:
        return self.true_escalations / self.escalated if self.escalated else None

    @property
    def recall(self) -> float | None:
        return self.true_escalations / self.cheap_wrong if self.cheap_wrong else None

    @property
    def false_alarm_rate(self) -> float:
        """Share of the cheap model's right answers that were escalated anyway."""
        right = self.n - self.cheap_wrong
        return (self.escalated - self.true_escalations) / right if right else 0.0

    @property
    def youden_j(self) -> float:
        """Recall minus false-alarm rate: 0 for escalating all or nothing."""
        return (self.recall or 0.0) - self.false_alarm_rate

    @property
    def escalation_rate(self) -> float:
        return self.escalated / self.n

    @property
    def accuracy(self) -> float:
        return self.cascade_correct / self.n

    def __add__(self, other: Metrics) -> Metrics:
        return Metrics(
            self.n + other.n,
            self.escalated + other.escalated,
            self.true_escalations + other.true_escalations,
            self.cheap_wrong + other.cheap_wrong,
            self.cascade_correct + other.cascade_correct,
        )


def load_rows(data_dir: Path) -> list[Row]:
    path = data_dir / CSV_PATH
    if not path.is_file():
        sys.exit(f"missing {path}: pass --data-dir or set CASCADE_DATA_DIR")
    with path.open(newline="", encoding="utf-8") as f:
        return [
            Row(
                index=i,
                prompt=r["prompt"],
                cheap_answer=r[f"{CHEAP}_response"],
                cheap_ok=r[CHEAP] == "True",
                premium_ok=r[PREMIUM] == "True",
            )
            for i, r in enumerate(csv.DictReader(f))
        ]


def metrics(rows: Sequence[Row], escalate: Sequence[bool]) -> Metrics:
    return Metrics(
        n=len(rows),
        escalated=sum(escalate),
        true_escalations=sum(
            e and not r.cheap_ok for r, e in zip(rows, escalate, strict=True)
        ),
        cheap_wrong=sum(not r.cheap_ok for r in rows),
        cascade_correct=sum(
            (r.premium_ok if e else r.cheap_ok)
            for r, e in zip(rows, escalate, strict=True)
        ),
    )


_INPUTS: dict[int, GateInput] = {}


def gate_input(row: Row) -> GateInput:
    if row.index not in _INPUTS:
        _INPUTS[row.index] = GateInput(
            messages=[HumanMessage(row.prompt)],
            response=AIMessage(row.cheap_answer),
            model=CHEAP,
        )
    return _INPUTS[row.index]


def escalations(gate: Gate, rows: Sequence[Row]) -> list[bool]:
    return [not gate.invoke(gate_input(r)).passed for r in rows]


# --- the gates ------------------------------------------------------------------


def format_gate() -> RegexGate:
    return RegexGate(
        pattern=FINAL_NUMBER,
        flags=re.MULTILINE,
        description="a final '#### <number>' line",
        name="FinalNumberGate",
    )


@dataclass(frozen=True)
class Candidate:
    """A gate, built from one fitted setting (``None`` when it has none)."""

    name: str
    build: Callable[[float | None], Gate]
    grid: Sequence[float | None]
    setting: str = ""

    def fit(self, rows: Sequence[Row]) -> float | None:
        """The grid value with the best Youden's J on ``rows`` (first on ties)."""
        best, best_j = self.grid[0], -2.0
        for value in self.grid:
            j = metrics(rows, escalations(self.build(value), rows)).youden_j
            if j > best_j:
                best, best_j = value, j
        return best


def candidates(min_chars: int) -> list[Candidate]:
    """The gates; ``min_chars`` gives the MinLengthGate setting fitted on this half."""

    def length(value: float | None) -> Gate:
        return MinLengthGate(min_chars=int(value or 1))

    def weighted_pair(value: float | None) -> Gate:
        return weighted(
            {ArithmeticGate(): 1.0, format_gate(): 1.0}, threshold=float(value or 0.0)
        )

    def weighted_four(value: float | None) -> Gate:
        return weighted(
            {
                HedgingGate(): 1.0,
                MinLengthGate(min_chars=min_chars): 1.0,
                ArithmeticGate(): 1.0,
                format_gate(): 1.0,
            },
            threshold=float(value or 0.0),
        )

    return [
        Candidate("HedgingGate", lambda _: HedgingGate(), [None]),
        Candidate("MinLengthGate", length, MIN_CHARS_GRID, "min_chars"),
        Candidate("ArithmeticGate", lambda _: ArithmeticGate(), [None]),
        Candidate("FinalNumberGate (RegexGate)", lambda _: format_gate(), [None]),
        Candidate(
            "all_of(arithmetic, format)",
            lambda _: all_of(ArithmeticGate(), format_gate()),
            [None],
        ),
        Candidate(
            "any_of(arithmetic, format)",
            lambda _: any_of(ArithmeticGate(), format_gate()),
            [None],
        ),
        Candidate(
            "weighted(arithmetic, format)", weighted_pair, THRESHOLD_GRID, "threshold"
        ),
        Candidate(
            "all_of(all four)",
            lambda _: all_of(
                HedgingGate(),
                MinLengthGate(min_chars=min_chars),
                ArithmeticGate(),
                format_gate(),
            ),
            [None],
        ),
        Candidate(
            "any_of(all four)",
            lambda _: any_of(
                HedgingGate(),
                MinLengthGate(min_chars=min_chars),
                ArithmeticGate(),
                format_gate(),
            ),
            [None],
        ),
        Candidate("weighted(all four)", weighted_four, THRESHOLD_GRID, "threshold"),
    ]


# --- the run -------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    name: str
    settings: tuple[str, str]  # fitted on A, fitted on B
    a_to_b: Metrics
    b_to_a: Metrics

    @property
    def pooled(self) -> Metrics:
        return self.a_to_b + self.b_to_a


def evaluate(rows: Sequence[Row]) -> list[Result]:
    halves = {
        "A": [r for r in rows if r.index % 2 == 0],
        "B": [r for r in rows if r.index % 2 == 1],
    }
    length = Candidate(
        "MinLengthGate",
        lambda v: MinLengthGate(min_chars=int(v or 1)),
        MIN_CHARS_GRID,
    )
    fitted_length = {name: int(length.fit(half) or 1) for name, half in halves.items()}
    per_half: dict[str, dict[str, tuple[str, Metrics]]] = {}
    for fit_on, test_on in (("A", "B"), ("B", "A")):
        for candidate in candidates(fitted_length[fit_on]):
            value = candidate.fit(halves[fit_on])
            gate = candidate.build(value)
            result = metrics(halves[test_on], escalations(gate, halves[test_on]))
            setting = ""
            if candidate.setting:
                shown = (
                    int(value) if candidate.setting == "min_chars" and value else value
                )
                setting = f"{candidate.setting}={shown}"
            if "all four" in candidate.name:
                setting = ", ".join(
                    s for s in (setting, f"min_chars={fitted_length[fit_on]}") if s
                )
            per_half.setdefault(candidate.name, {})[fit_on] = (setting, result)
    return [
        Result(
            name=name,
            settings=(by_half["A"][0], by_half["B"][0]),
            a_to_b=by_half["A"][1],
            b_to_a=by_half["B"][1],
        )
        for name, by_half in per_half.items()
    ]


def baselines(rows: Sequence[Row]) -> dict[str, Metrics]:
    return {
        "Mixtral alone (never escalate)": metrics(rows, [False] * len(rows)),
        "GPT-4 alone (always escalate)": metrics(rows, [True] * len(rows)),
        "perfect gate (escalate iff Mixtral is wrong)": metrics(
            rows, [not r.cheap_ok for r in rows]
        ),
    }


def pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def random_accuracy(rows: Sequence[Row], rate: float) -> float:
    """Expected cascade accuracy when a random ``rate`` of the rows escalates."""
    cheap = sum(r.cheap_ok for r in rows) / len(rows)
    premium = sum(r.premium_ok for r in rows) / len(rows)
    return (1 - rate) * cheap + rate * premium


def table(rows: Sequence[tuple[str, str, Metrics]], tested: Sequence[Row]) -> list[str]:
    lines = [
        "| gate | fitted setting | precision | recall | escalation rate "
        "| cascade accuracy | random gate, same rate |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {name} | {setting or '-'} | {pct(m.precision)} | {pct(m.recall)} | "
        f"{pct(m.escalation_rate)} | {pct(m.accuracy)} | "
        f"{pct(random_accuracy(tested, m.escalation_rate))} |"
        for name, setting, m in rows
    ]
    return lines


def report(all_rows: Sequence[Row], results: Sequence[Result]) -> str:
    base = baselines(all_rows)
    cheap = base["Mixtral alone (never escalate)"]
    premium = base["GPT-4 alone (always escalate)"]
    perfect = base["perfect gate (escalate iff Mixtral is wrong)"]
    measured = {
        "cheap": cheap.accuracy,
        "premium": premium.accuracy,
        "perfect": perfect.accuracy,
        "perfect_escalation": perfect.escalation_rate,
    }
    agree = all(abs(measured[k] - STATED[k]) < 0.0005 for k in STATED)
    lines = [
        "# Gate quality on RouteLLM's GSM8K responses",
        "",
        "Data: RouteLLM (lm-sys/RouteLLM, Apache-2.0), `routellm/evals/gsm8k`: "
        f"`{CSV_PATH.as_posix()}`, {len(all_rows):,} GSM8K test problems with the "
        "answers of Mixtral-8x7B-Instruct (cheap) and GPT-4-1106-preview (premium) "
        "and a correctness label for each. All rows are used; none is excluded (not "
        "even the 12 prompts RouteLLM lists as contaminated).",
        "",
        f"Regenerate: `{COMMAND}` (data folder: `--data-dir`, else `$CASCADE_DATA_DIR`, "
        "else `../shared/data`).",
        "",
        "Event to detect: the cheap (Mixtral) answer is wrong "
        f"({cheap.cheap_wrong} of {cheap.n:,} rows, {pct(cheap.cheap_wrong / cheap.n)}). "
        "A gate escalates when it fails the cheap answer. Precision: share of "
        "escalations where Mixtral was wrong; recall: share of Mixtral's wrong "
        "answers escalated; cascade accuracy: GPT-4's label on escalated rows, "
        "Mixtral's on accepted rows. Gates see only the prompt and Mixtral's text, "
        "through `gate.invoke(GateInput(messages=[HumanMessage(prompt)], "
        "response=AIMessage(text)))`.",
        "",
        "Settings are fitted on one half of the rows (A: even row index, B: odd) to "
        "maximise Youden's J of escalation (recall minus the share of right answers "
        "escalated; F1 would favour escalating everything) and tested on the other "
        f"half, both ways round. Grids: MinLengthGate min_chars in {MIN_CHARS_GRID}; weighted "
        "threshold in 0.05 steps (equal weights). The format gate is "
        f'`RegexGate(pattern=r"{FINAL_NUMBER}", flags=re.MULTILINE)`: the answer '
        "has GSM8K's final-answer line `#### <number>`, as Mixtral's prompt asked.",
        "",
        "## Baselines (all rows)",
        "",
        "| policy | escalation rate | accuracy |",
        "|---|---:|---:|",
    ]
    lines += [
        f"| {name} | {pct(m.escalation_rate)} | {pct(m.accuracy)} |"
        for name, m in base.items()
    ]
    lines += [
        "",
        "These match the figures the data README states (Mixtral 63.8%, GPT-4 85.7%, "
        "perfect gate 92.9% at 36.2% escalation)"
        + (": verified." if agree else ": **they do not match, see above**."),
        "",
        "## Pooled out-of-sample (each row scored once, by settings fitted on the other half)",
        "",
    ]
    lines += table(
        [
            (r.name, " / ".join(s for s in dict.fromkeys(r.settings) if s), r.pooled)
            for r in results
        ],
        all_rows,
    )
    for label, pick, setting_index, parity in (
        ("Fit on A (even rows), test on B (odd rows)", "a_to_b", 0, 1),
        ("Fit on B (odd rows), test on A (even rows)", "b_to_a", 1, 0),
    ):
        tested = [r for r in all_rows if r.index % 2 == parity]
        lines += ["", f"## {label}", ""]
        lines += table(
            [(r.name, r.settings[setting_index], getattr(r, pick)) for r in results],
            tested,
        )
    best = max(results, key=lambda r: r.pooled.accuracy)
    lines += [
        "",
        'Reading: "random gate, same rate" is the accuracy of escalating the same '
        "share of rows at random; a gate is worth its escalations only above it. "
        f"The best pooled gate here, {best.name}, reaches {pct(best.pooled.accuracy)} "
        f"escalating {pct(best.pooled.escalation_rate)} of queries (random: "
        f"{pct(random_accuracy(all_rows, best.pooled.escalation_rate))}; perfect gate: "
        f"{pct(perfect.accuracy)} at {pct(perfect.escalation_rate)}). Text-only rules "
        "catch only wrong answers that look wrong: a wrong calculation "
        "(ArithmeticGate) or a missing final `#### <number>` line (for example an "
        "answer cut off before its end). Most of Mixtral's wrong answers compute "
        "correctly from a wrong plan, which no text rule sees.",
        "",
        "Caveat: ArithmeticGate has no fitted setting, but its reading rules were "
        "written while inspecting the texts of this file (chiefly its false alarms on "
        "GPT-4's and Mixtral's right answers) and GSM8K's gold solutions, so its rows "
        "are not a blind test of the rules themselves.",
        "",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    rows = load_rows(resolve_data_dir(args.data_dir))
    results = evaluate(rows)
    text = report(rows, results)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
