"""Check the calculations written in an answer.

Math word-problem answers show their work: ``16 - 3 = 13``, ``9 * $2 = $18``,
``3/4 of 120 = 90``, GSM8K's calculator notes ``<<48/2=24>>``. A wrong step is a
strong sign of a wrong answer, and checking it costs no model call.
:class:`ArithmeticGate` finds those equations, evaluates each side with a small
parser of its own (numbers, ``+ - * / ^`` and parentheses; never ``eval``) and
fails when one does not hold.

The reader is deliberately conservative: units between numbers are read past
(``16 eggs - 3 eggs = 13``), but an equation it cannot read with confidence (a
variable, a unit conversion, a side cut short by a word) is skipped rather than
judged, so a right answer is rarely flagged. On RouteLLM's GSM8K responses it
flags none of GPT-4's 1,130 correct answers while catching a wrong calculation
in 101 of Mixtral's 477 wrong ones.

The pieces, one module each: :mod:`~langchain_cascade.gates.numbers` reads a
written number exactly; ``_math_text`` normalises the notation and cuts the text
into tokens, reading past units; ``_fraction_parser`` evaluates an expression in
exact fractions; ``_equations`` finds the chains ``a = b = c`` and judges each
step. This module turns the verdicts into :class:`Calculation` records and a gate.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from langchain_core.runnables import RunnableConfig
from pydantic import Field

from langchain_cascade.gates._equations import equations
from langchain_cascade.gates._math_text import ANNOTATION, normalise
from langchain_cascade.gates.base import Gate, GateInput, GateResult

__all__ = ["ArithmeticGate", "Calculation", "find_calculations"]

_SHOWN_IN_REASON = 3


@dataclass(frozen=True)
class Calculation:
    """One equation found in an answer, and whether it holds.

    Attributes:
        equation: The equation as written (``"12 * 7 = 84"``).
        computed: The value of the left side.
        stated: The value the answer gives for it.
        correct: Whether ``stated`` matches ``computed`` within the tolerance.
    """

    equation: str
    computed: float
    stated: float
    correct: bool

    def to_dict(self) -> dict[str, Any]:
        """The calculation as plain JSON-ready data."""
        return {
            "equation": self.equation,
            "computed": self.computed,
            "stated": self.stated,
            "correct": self.correct,
        }


def find_calculations(text: str, *, rel_tol: float = 1e-2) -> list[Calculation]:
    """Find the calculations written in a text and check each one.

    Reads equations such as ``12 * 7 = 84``, ``$45 - $17 = $28``,
    ``3/4 of 120 = 90``, ``50% of 80 = 40``, ``1,200 / 4 = 300``, ``6 x 7 = 42``,
    chains ``5 + 3 = 8 + 2 = 10`` and calculator notes ``<<48/2=24>>``. Whole
    numbers must agree exactly; otherwise a relative difference up to ``rel_tol``,
    or rounding to the decimals shown, is accepted.

    Args:
        text: The answer.
        rel_tol: The relative tolerance for non-whole results.

    Returns:
        The calculations in order of appearance, each with its verdict; the same
        equation written twice is checked once.

    Example:
        >>> from langchain_cascade.gates.arithmetic import find_calculations
        >>> [c.correct for c in find_calculations("16 - 3 = 13 eggs, 13 * $2 = $27")]
        [True, False]
    """
    found: list[Calculation] = []
    seen: set[str] = set()
    notes: list[tuple[str, str]] = []

    def take_note(match: re.Match[str]) -> str:
        notes.append((match.group(1), match.group(2)))
        return ""

    plain = normalise(ANNOTATION.sub(take_note, text))
    sources = [plain] + [normalise(f"{lhs} = {rhs}") for lhs, rhs in notes]
    for source in sources:
        for equation, computed, stated, correct in equations(source, rel_tol=rel_tol):
            key = re.sub(r"[\s$€£,]", "", equation)
            if key in seen:
                continue
            seen.add(key)
            found.append(
                Calculation(
                    equation=equation,
                    computed=float(computed),
                    stated=float(stated),
                    correct=correct,
                )
            )
    return found


def _show(value: float) -> str:
    return f"{value:.6g}"


class ArithmeticGate(Gate):
    """Fails when a calculation written in the answer is wrong.

    Finds the answer's equations (see :func:`find_calculations`), evaluates each
    left side with its own parser (never ``eval``) and compares it with the value
    stated. The score is the share of checked equations that hold; the gate passes
    when all do. ``details["calculations"]`` lists every equation with its verdict.
    An answer with no calculation passes with score 1.0 (the reason says so),
    unless ``require_calculation`` is set.

    Example:
        >>> from langchain_core.messages import AIMessage, HumanMessage
        >>> from langchain_cascade import GateInput
        >>> from langchain_cascade.gates import ArithmeticGate
        >>> answer = AIMessage("She sells 16 - 3 - 4 = 9 eggs for 9 * $2 = $16.")
        >>> gi = GateInput(messages=[HumanMessage("How much?")], response=answer)
        >>> ArithmeticGate().invoke(gi).reason
        '1 of 2 calculations wrong: 9 * $2 = $16 (is 18)'
    """

    rel_tol: float = Field(default=1e-2, ge=0.0, lt=1.0)
    """Relative tolerance for results that are not whole numbers."""

    require_calculation: bool = False
    """Fail answers that show no calculation at all."""

    def evaluate(self, gate_input: GateInput, config: RunnableConfig) -> GateResult:
        """Check every calculation in the answer's text."""
        calculations = find_calculations(gate_input.text, rel_tol=self.rel_tol)
        details = {"calculations": [c.to_dict() for c in calculations]}
        if not calculations:
            if self.require_calculation:
                return GateResult(
                    passed=False,
                    score=0.0,
                    reason="no calculation found, and one is required",
                    details=details,
                )
            return GateResult(
                passed=True,
                score=1.0,
                reason="no calculation found to check",
                details=details,
            )
        wrong = [c for c in calculations if not c.correct]
        score = 1 - len(wrong) / len(calculations)
        if not wrong:
            return GateResult(
                passed=True,
                score=score,
                reason=f"all {len(calculations)} calculations correct",
                details=details,
            )
        shown = "; ".join(
            f"{c.equation} (is {_show(c.computed)})" for c in wrong[:_SHOWN_IN_REASON]
        )
        more = len(wrong) - _SHOWN_IN_REASON
        return GateResult(
            passed=False,
            score=score,
            reason=(
                f"{len(wrong)} of {len(calculations)} calculations wrong: {shown}"
                + (f"; and {more} more" if more > 0 else "")
            ),
            details=details,
        )
