"""The bad-input table: every invalid configuration and call argument, and its message.

Runs the cases of ``tests/unit_tests/test_bad_input.py`` (the test asserts each
message exactly) and prints what a user sees for each: the exception type and its
text, or, for a gate whose verdict is no verdict, the reason recorded on the
attempt that failed closed.

Run: ``python -m benchmarks.bad_input [--out benchmarks/results/bad_input.md]``
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.common import markdown_table
from tests.unit_tests.test_bad_input import CASES, observe

RESULTS = Path(__file__).parent / "results"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " / ")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RESULTS / "bad_input.md")
    args = parser.parse_args()
    rows = []
    for case in CASES:
        kind, message = observe(case)
        rows.append([f"`{_cell(case.input)}`", kind, _cell(message)])
    text = "\n".join(
        [
            "# Bad input",
            "",
            "`python -m benchmarks.bad_input`: what a user sees for each invalid "
            "input (`str(exc)`; pydantic's echo of the input shown as "
            "`input_value=...`). *escalated*: no exception, the gate's attempt "
            "failed closed with this reason and the next tier answered.",
            "",
            markdown_table(["input", "exception", "message"], rows, align="lll"),
            "",
        ]
    )
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
