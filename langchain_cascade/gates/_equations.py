"""Find the equations in an answer's tokens and judge each one.

A run of maths tokens (``12 * 7 = 84 = 80 + 4``) is cut at its equals signs into
a chain of sides; each neighbouring pair with an operator is one equation, judged
by evaluating both sides exactly. The reader is conservative: a side it cannot
read with confidence (a variable, a side cut short by a word, a unit conversion
whose factor it does not know) is skipped rather than judged.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction

from langchain_cascade.gates._fraction_parser import parses as _parses
from langchain_cascade.gates._fraction_parser import value as _value
from langchain_cascade.gates._math_text import Token, tokens

__all__ = ["equations"]

_MAX_SIDE_TOKENS = 120  # longer runs are not worked steps; skip them, stay fast

_MATH_KINDS = ("num", "op", "(", ")", "=")


@dataclass(frozen=True)
class _Run:
    """A maximal run of math tokens and the tokens just outside it."""

    tokens: list[Token]
    before: Token | None
    after: Token | None

    @property
    def continues_left(self) -> bool:
        """Whether the run goes on an expression that starts before it.

        ``2x - 3 * 2 = ...`` (a variable), ``15 pages x 1/3 = 5`` (an ``x``
        after a unit), ``(1/2) 278 + 11 = 150`` (an operand just before).
        """
        before = self.before
        if before is None:
            return False
        if before.kind in ("num", ")"):
            return True
        if before.kind != "other":
            return False
        return before.text in ("x", "X") or (
            before.text[:1].isalnum() and self.tokens[0].kind == "op"
        )

    @property
    def continues_right(self) -> bool:
        """``75 - 35 = 5C``: the last number is a variable's coefficient."""
        return (
            self.after is not None
            and self.after.kind == "other"
            and len(self.after.text) == 1
            and self.after.text.isalpha()
            and self.after.start == self.tokens[-1].end
        )


def _math_runs(tokens: Sequence[Token]) -> Iterator[_Run]:
    """Maximal runs of math tokens, split where two operands meet (``7 8``)."""
    start = 0
    for i, token in enumerate(tokens):
        previous = tokens[i - 1] if i > start else None
        operand_follows_operand = (
            previous is not None
            and previous.kind in ("num", ")")
            and (
                token.kind == "num"
                or (token.kind == "(" and previous.end != token.start)
            )
        )
        if token.kind not in _MATH_KINDS or operand_follows_operand:
            if i > start:
                yield _Run(
                    list(tokens[start:i]),
                    tokens[start - 1] if start else None,
                    token,
                )
            start = i if token.kind in _MATH_KINDS else i + 1
    if start < len(tokens):
        yield _Run(list(tokens[start:]), tokens[start - 1] if start else None, None)


def _split(run: Sequence[Token]) -> list[list[Token]]:
    parts: list[list[Token]] = [[]]
    for token in run:
        if token.kind == "=":
            parts.append([])
        else:
            parts[-1].append(token)
    return parts


def _longest_suffix(tokens: Sequence[Token]) -> list[Token] | None:
    """The longest readable tail of a left side, unless it is part of a bigger one.

    In ``3 * (4 + 2 = 18`` or ``x + 3 * 2 = 6`` the tail is only part of the left
    side, so nothing is read; a dropped ``(`` joins nothing.
    """
    for start in range(len(tokens)):
        if _parses(tokens[start:]):
            dropped = list(tokens[:start])
            while dropped and dropped[-1].kind == "(":
                dropped.pop()
            if dropped and dropped[-1].kind == "op":
                return None
            return list(tokens[start:])
    return None


def _longest_prefix(tokens: Sequence[Token]) -> list[Token] | None:
    """The longest readable head of a right side, unless it goes on (``2 * S``)."""
    for end in range(len(tokens), 0, -1):
        if _parses(tokens[:end]):
            if end < len(tokens) and tokens[end].kind == "op":
                return None
            return list(tokens[:end])
    return None


def _has_operator(tokens: Sequence[Token]) -> bool:
    # A leading minus makes a negative number, not a calculation.
    return any(t.kind == "op" for t in tokens[1:]) or (
        bool(tokens) and tokens[0].kind == "op" and tokens[0].text != "-"
    )


def _chains(run: _Run) -> Iterator[tuple[list[list[Token]], bool]]:
    """Chains ``a = b = c`` of readable expressions in a run, with their ``≈`` flag."""
    approx = any(t.approx for t in run.tokens)
    parts = _split(run.tokens)
    if run.continues_left:
        parts[0] = []
    if run.continues_right:
        parts[-1] = []
    chain: list[list[Token]] = []
    for i, part in enumerate(parts):
        if len(part) > _MAX_SIDE_TOKENS:
            if chain:
                yield chain, approx
            chain = []
            continue
        if _parses(part):
            # A bare number before the first "=" is a label ("Day 3 = ..."): skip it.
            if i > 0 or _has_operator(part):
                chain.append(part)
            continue
        if chain:
            prefix = _longest_prefix(part)
            if prefix is not None:
                chain.append(prefix)
            yield chain, approx
            chain = []
        suffix = _longest_suffix(part)
        if suffix is not None and _has_operator(suffix):
            chain = [suffix]
    if chain:
        yield chain, approx


def _decimals(tokens: Sequence[Token]) -> int | None:
    """Decimals shown when the side is one number, else ``None``."""
    if len(tokens) == 2 and tokens[0].text == "-":
        tokens = tokens[1:]
    if len(tokens) != 1 or tokens[0].kind != "num":
        return None
    _, _, decimals = tokens[0].text.partition(".")
    return len(decimals)


def _matches(
    computed: Fraction,
    stated: Fraction,
    decimals: int | None,
    *,
    rel_tol: float,
) -> bool:
    if computed == stated:
        return True
    if computed.denominator == 1 and stated.denominator == 1:
        return False  # whole numbers must agree exactly
    difference = abs(float(computed - stated))
    if difference <= rel_tol * max(abs(float(computed)), abs(float(stated))):
        return True
    # Rounded (up, down or to nearest) to the decimals the answer shows.
    return decimals is not None and difference < 10.0**-decimals


def _text_of(tokens: Sequence[Token], source: str) -> str:
    end = max(tokens[-1].end, tokens[-1].unit_end)
    return " ".join(source[tokens[0].start : end].split())


_CONVERTIBLE_UNITS = frozenset(
    (
        "cent",
        "centimeter",
        "cm",
        "cup",
        "day",
        "dozen",
        "feet",
        "foot",
        "gallon",
        "gram",
        "hour",
        "hr",
        "inch",
        "inche",
        "kg",
        "kilogram",
        "kilometer",
        "km",
        "lb",
        "liter",
        "litre",
        "meter",
        "metre",
        "mile",
        "milliliter",
        "millimeter",
        "min",
        "minute",
        "ml",
        "mm",
        "month",
        "ounce",
        "oz",
        "pint",
        "pound",
        "quart",
        "sec",
        "second",
        "ton",
        "week",
        "yard",
        "year",
    )
)


def _stem(word: str) -> str:
    return word[:-1] if word.endswith("s") and len(word) > 3 else word


def _unit_words(tokens: Sequence[Token]) -> set[str]:
    return {
        _stem(word)
        for t in tokens
        if t.kind == "num"
        for word in re.split(r"[\s/']+", t.unit)
        if _stem(word) in _CONVERTIBLE_UNITS
    }


def _needs_conversion(left: Sequence[Token], right: Sequence[Token]) -> bool:
    """Whether the equation converts units: ``2 x 1 hour = 120 minutes``.

    Also ``2 hours + 30 minutes`` and ``2 dozen * 3 = 24``: the reader does not
    know the factors, so it leaves such equations alone.
    """
    for side in (left, right):
        adds = any(t.text in ("+", "-") for t in side[1:] if t.kind == "op")
        if adds and len({_stem(t.unit) for t in side if t.kind == "num"}) > 1:
            return True
    units = _unit_words(left) | _unit_words(right)
    return len(units) > 1 or ("dozen" in units and "dozen" not in _unit_words(right))


def _check_pair(
    left: Sequence[Token],
    right: Sequence[Token],
    *,
    rel_tol: float,
) -> tuple[Fraction, Fraction, bool] | None:
    """Judge ``left = right``; ``None`` when a side has no value."""
    if _needs_conversion(left, right):
        return None
    decimals = _decimals(right)
    first: tuple[Fraction, Fraction, bool] | None = None
    # "50%" may mean 0.5 or 50 ("20 / 80 * 100 = 25%"): either reading may hold.
    for percent in (True, False):
        computed = _value(left, percent=percent)
        stated = _value(right, percent=percent)
        if computed is None or stated is None:
            return None
        if _matches(computed, stated, decimals, rel_tol=rel_tol):
            return computed, stated, True
        # A running total: "5 + 3 = 8 + 2 = 10" states 8, then adds 2.
        if len(right) > 1 and right[0].kind == "num" and right[1].kind == "op":
            lead = _value(right[:1], percent=percent)
            if lead is not None and _matches(
                computed, lead, _decimals(right[:1]), rel_tol=rel_tol
            ):
                return computed, lead, True
        if first is None:
            first = (computed, stated, False)
    return first


def equations(
    text: str, *, rel_tol: float
) -> Iterator[tuple[str, Fraction, Fraction, bool]]:
    """``(equation, computed, stated, holds)`` for each equation judged in ``text``."""
    for run in _math_runs(tokens(text)):
        if not any(t.kind == "=" for t in run.tokens):
            continue
        for chain, approx in _chains(run):
            tolerance = max(rel_tol, 0.05) if approx else rel_tol
            for left, right in itertools.pairwise(chain):
                if not (_has_operator(left) or _has_operator(right)):
                    continue
                verdict = _check_pair(left, right, rel_tol=tolerance)
                if verdict is None:
                    continue
                computed, stated, correct = verdict
                equation = f"{_text_of(left, text)} = {_text_of(right, text)}"
                yield equation, computed, stated, correct
