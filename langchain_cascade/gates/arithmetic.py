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
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any, Literal

from langchain_core.runnables import RunnableConfig
from pydantic import Field

from langchain_cascade.gates.base import Gate, GateInput, GateResult

__all__ = ["ArithmeticGate", "Calculation", "find_calculations"]

_MAX_EXPONENT = 64
_MAX_SIDE_TOKENS = 120  # longer runs are not worked steps; skip them, stay fast
_SHOWN_IN_REASON = 3

# --- normalising the text ---------------------------------------------------------

_ANNOTATION = re.compile(r"<<([^<>=]+)=([^<>]+)>>")
_LATEX_FRAC = re.compile(r"\\[dt]?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}")
_LATEX_TEXT = re.compile(r"\\(?:text|mathrm|textbf|mathbf)\s*\{([^{}]*)\}")
_LATEX_SYMBOLS = (
    (r"\times", " * "),
    (r"\cdot", " * "),
    (r"\div", " / "),
    (r"\approx", " ≈ "),
    (r"\left", " "),
    (r"\right", " "),
    (r"\$", "$"),
    (r"\%", "%"),
    (r"\*", "*"),
    (r"\(", " \n "),
    (r"\)", " \n "),
    (r"\[", " \n "),
    (r"\]", " \n "),
    (r"\,", ""),
    (r"\;", " "),
    (r"\!", ""),
)
_CHARACTERS = str.maketrans(
    {
        "\u00d7": "*",
        "·": "*",
        "⋅": "*",
        "\u2217": "*",
        "÷": "/",
        "\u2212": "-",
        "﹣": "-",
        "\uff1d": "=",
        "{": " ",
        "}": " ",
        "½": " 1/2",
        "⅓": " 1/3",
        "⅔": " 2/3",
        "¼": " 1/4",
        "¾": " 3/4",
    }
)
_BULLET = re.compile(r"^[ \t]*(?:[-*•+]|\d{1,2}[.)])[ \t]+", re.MULTILINE)
_BOLD = re.compile(r"\*\*|__")
_HYPHENATED = re.compile(r"(?<=\d)-(?=[A-Za-z])")
_EN_DASH_MINUS = re.compile(r"(?<=\d)[ \t]+\u2013[ \t]+(?=[$€£]?\d)")
_SPACED_THOUSANDS = re.compile(
    r"(?<=[$€£])([ \t]*\d{1,3})((?:[ \u00a0]\d{3})+)(?!\d|\.\d)"
)
_MIXED_NUMBER = re.compile(r"(?<![\d./,])(\d+)[ \t]+(\d+)/(\d+)(?![\d./]|[ \t]+of\b)")
_TIMES_X = re.compile(r"(?<=[\d%)])[ \t]*[xX][ \t]*(?=\(?[ \t]*[$€£]?\d)")
_OF = re.compile(r"(?<=[\d%)])[ \t]+of[ \t]+(?=\(?[ \t]*[$€£]?\d)")


def _mixed(match: re.Match[str]) -> str:
    whole, numerator, denominator = match.groups()
    if int(numerator) >= int(denominator) or int(denominator) == 0:
        return match.group(0)
    return f"({whole} + {numerator}/{denominator})"


def _join_thousands(match: re.Match[str]) -> str:
    # "$350 000" is 350000.
    return match.group(1) + match.group(2).replace(" ", "").replace("\u00a0", "")


def _normalise(text: str) -> str:
    text = _LATEX_FRAC.sub(r"(\1)/(\2)", text)
    text = _LATEX_TEXT.sub(r" \1 ", text)
    for latex, plain in _LATEX_SYMBOLS:
        text = text.replace(latex, plain)
    text = text.translate(_CHARACTERS)
    text = _BOLD.sub(" ", text)
    text = _BULLET.sub("", text)
    text = _EN_DASH_MINUS.sub(" - ", text)
    text = _HYPHENATED.sub(" ", text)
    text = _SPACED_THOUSANDS.sub(_join_thousands, text)
    text = _MIXED_NUMBER.sub(_mixed, text)
    text = _TIMES_X.sub(" * ", text)
    return _OF.sub(_of_to_times, text)


_FRACTION_OR_PERCENT_BEFORE = re.compile(r"(?:\d+\s*/\s*\d+|\d*\.\d+|\d\s*%|\))\s*$")


def _of_to_times(match: re.Match[str]) -> str:
    # "3/4 of 120", "50% of 80", "0.5 of 80": "of" multiplies. "2 of 10" does not.
    before = match.string[max(0, match.start() - 24) : match.start() + 1]
    return " * " if _FRACTION_OR_PERCENT_BEFORE.search(before) else match.group(0)


# --- tokens -----------------------------------------------------------------------

TokenKind = Literal["num", "op", "(", ")", "=", "other"]

_TOKEN = re.compile(
    r"(?P<num>(?:[$€£][ \t]*)?(?:(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?|\.\d+))"
    r"(?P<pct>[ \t]*%)?"
    r"|(?P<op>[-+*/^])"
    r"|(?P<paren>[()])"
    r"|(?P<eq>(?<![=<>!])(?:=|≈)(?![=>]))"
    r"|(?P<space>[ \t]+)"
    r"|(?P<other>\w+|\S|\n)"
)


@dataclass(frozen=True)
class _Token:
    kind: TokenKind
    text: str
    start: int
    end: int
    percent: bool = False
    approx: bool = False
    unit: str = ""
    unit_end: int = 0


def _tokens(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    for match in _TOKEN.finditer(text):
        group = match.lastgroup
        if group == "space":
            continue
        start, end = match.span()
        if group in ("num", "pct"):
            tokens.append(
                _Token(
                    "num",
                    match.group("num"),
                    start,
                    end,
                    percent=match.group("pct") is not None,
                )
            )
        elif group == "op":
            tokens.append(_Token("op", match.group(), start, end))
        elif group == "paren":
            kind: TokenKind = "(" if match.group() == "(" else ")"
            tokens.append(_Token(kind, match.group(), start, end))
        elif group == "eq":
            tokens.append(
                _Token("=", match.group(), start, end, approx=match.group() == "≈")
            )
        else:
            tokens.append(_Token("other", match.group(), start, end))
    return _strip_units(tokens)


# Words that end a number's unit: "5 apples and 3 - 2" has no unit "apples and".
_NOT_UNITS = frozenset(
    (
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "each",
        "equal",
        "equals",
        "for",
        "from",
        "gives",
        "he",
        "her",
        "his",
        "i",
        "if",
        "in",
        "is",
        "it",
        "its",
        "leaves",
        "left",
        "makes",
        "minus",
        "more",
        "less",
        "fewer",
        "not",
        "of",
        "on",
        "or",
        "plus",
        "remaining",
        "she",
        "so",
        "than",
        "that",
        "the",
        "then",
        "there",
        "they",
        "this",
        "times",
        "to",
        "total",
        "was",
        "we",
        "were",
        "which",
        "with",
        "you",
    )
)
_MAX_UNIT_WORDS = 3
_MAX_LABEL_TOKENS = 12


def _is_word(token: _Token) -> bool:
    # One letter is a variable ("2S + 30"), not a unit.
    return token.kind == "other" and token.text.isalpha() and len(token.text) > 1


def _unit_span(tokens: Sequence[_Token], start: int) -> tuple[int, str, bool]:
    """Read the unit after a number: where it ends, what it is, whether math follows.

    ``3 sprints * 60 meters/sprint = 180``: ``sprints`` and ``meters/sprint`` are
    units; ``$204 (donuts) + $160 (cupcakes)``: a bracketed label is skipped too.
    """
    i, words, unit = start, 0, []
    while i < len(tokens) and words < _MAX_UNIT_WORDS:
        token = tokens[i]
        if _is_word(token) and token.text.lower() not in _NOT_UNITS:
            words += 1
            unit.append(token.text.lower())
            i += 1
        elif (
            token.text in ("/", "'") and i + 1 < len(tokens) and _is_word(tokens[i + 1])
        ):
            unit.append(token.text + tokens[i + 1].text.lower())
            i += 2
        elif token.kind == "(" and (close := _label_end(tokens, i)) is not None:
            i = close
        else:
            break
    name = " ".join(unit)
    if i == start or i >= len(tokens):
        return start, name, False
    follower = tokens[i]
    math_follows = follower.kind in ("op", "=") or (
        follower.text in ("x", "X")
        and i + 1 < len(tokens)
        and tokens[i + 1].kind in ("num", "(")
    )
    return (i if math_follows else start), name, math_follows


def _label_end(tokens: Sequence[_Token], start: int) -> int | None:
    """Past the ``)`` of a bracketed label of words, e.g. ``(first month)``."""
    for i in range(start + 1, min(len(tokens), start + _MAX_LABEL_TOKENS)):
        token = tokens[i]
        if token.kind == ")":
            return i + 1 if i > start + 1 else None
        if token.kind != "other" or token.text == "\n":
            return None
    return None


def _strip_units(tokens: list[_Token]) -> list[_Token]:
    """Drop the units between numbers and operators, noting each on its number."""
    kept: list[_Token] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        kept.append(token)
        i += 1
        if token.kind != "num":
            continue
        end, unit, math_follows = _unit_span(tokens, i)
        if unit:
            kept[-1] = replace(token, unit=unit)
        if not math_follows:
            continue
        kept[-1] = replace(kept[-1], unit_end=tokens[end - 1].end)
        i = end
        if tokens[i].kind == "other":  # "15 pages x 1/3": x multiplies
            kept.append(replace(tokens[i], kind="op", text="*"))
            i += 1
    return kept


# --- the expression parser ----------------------------------------------------------


class _ParseError(ValueError):
    pass


class _Parser:
    """Recursive descent over ``+ - * / ^``, unary minus and parentheses.

    Values are exact fractions, so ``2/3 * 60`` is exactly 40. ``percent`` says
    whether ``50%`` means 0.5 (``True``) or 50.
    """

    def __init__(self, tokens: Sequence[_Token], *, percent: bool) -> None:
        self.tokens = tokens
        self.position = 0
        self.percent = percent

    def parse(self) -> Fraction:
        if not self.tokens:
            raise _ParseError
        value = self._sum()
        if self.position != len(self.tokens):
            raise _ParseError
        return value

    def _peek(self) -> _Token | None:
        if self.position < len(self.tokens):
            return self.tokens[self.position]
        return None

    def _take(self) -> _Token:
        token = self._peek()
        if token is None:
            raise _ParseError
        self.position += 1
        return token

    def _sum(self) -> Fraction:
        value = self._product()
        while (token := self._peek()) is not None and token.text in ("+", "-"):
            self._take()
            right = self._product()
            value = value + right if token.text == "+" else value - right
        return value

    def _product(self) -> Fraction:
        value = self._unary()
        while (token := self._peek()) is not None:
            if token.text in ("*", "/"):
                self._take()
                right = self._unary()
            elif token.kind == "(" and self._touches_previous(token):
                right = self._unary()  # 2(3 + 4): implicit multiplication
            else:
                break
            if token.text == "/":
                if right == 0:
                    raise _ParseError
                value /= right
            else:
                value *= right
        return value

    def _touches_previous(self, token: _Token) -> bool:
        previous = self.tokens[self.position - 1]
        return previous.kind in ("num", ")") and previous.end == token.start

    def _unary(self) -> Fraction:
        token = self._peek()
        if token is not None and token.text == "-":
            self._take()
            return -self._unary()
        return self._power()

    def _power(self) -> Fraction:
        base = self._atom()
        token = self._peek()
        if token is None or token.text != "^":
            return base
        self._take()
        exponent = self._unary()
        if exponent.denominator != 1 or abs(exponent) > _MAX_EXPONENT:
            raise _ParseError
        if base == 0 and exponent < 0:
            raise _ParseError
        return base ** int(exponent)

    def _number(self, token: _Token) -> Fraction:
        value = Fraction(token.text.lstrip("$€£ \t").replace(",", ""))
        return value / 100 if token.percent and self.percent else value

    def _tight_fraction(self) -> tuple[_Token, _Token] | None:
        """``2/5`` written without spaces, which binds as one number."""
        if self.position + 1 >= len(self.tokens):
            return None
        previous = self.tokens[self.position - 1]
        slash, denominator = self.tokens[self.position : self.position + 2]
        if (
            slash.text == "/"
            and denominator.kind == "num"
            and previous.end == slash.start
            and slash.end == denominator.start
            and not previous.percent
        ):
            return slash, denominator
        return None

    def _atom(self) -> Fraction:
        token = self._take()
        if token.kind == "num":
            value = self._number(token)
            if (fraction := self._tight_fraction()) is not None:
                # "12.8 / 2/5" divides by two fifths.
                denominator = self._number(fraction[1])
                if denominator == 0:
                    raise _ParseError
                self.position += 2
                value /= denominator
            return value
        if token.kind == "(":
            value = self._sum()
            if self._take().kind != ")":
                raise _ParseError
            return value
        raise _ParseError


def _value(tokens: Sequence[_Token], *, percent: bool) -> Fraction | None:
    try:
        return _Parser(tokens, percent=percent).parse()
    except _ParseError:
        return None


def _parses(tokens: Sequence[_Token]) -> bool:
    return _value(tokens, percent=True) is not None


# --- finding equations --------------------------------------------------------------

_MATH_KINDS = ("num", "op", "(", ")", "=")


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


@dataclass(frozen=True)
class _Run:
    """A maximal run of math tokens and the tokens just outside it."""

    tokens: list[_Token]
    before: _Token | None
    after: _Token | None

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


def _math_runs(tokens: Sequence[_Token]) -> Iterator[_Run]:
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


def _split(run: Sequence[_Token]) -> list[list[_Token]]:
    parts: list[list[_Token]] = [[]]
    for token in run:
        if token.kind == "=":
            parts.append([])
        else:
            parts[-1].append(token)
    return parts


def _longest_suffix(tokens: Sequence[_Token]) -> list[_Token] | None:
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


def _longest_prefix(tokens: Sequence[_Token]) -> list[_Token] | None:
    """The longest readable head of a right side, unless it goes on (``2 * S``)."""
    for end in range(len(tokens), 0, -1):
        if _parses(tokens[:end]):
            if end < len(tokens) and tokens[end].kind == "op":
                return None
            return list(tokens[:end])
    return None


def _has_operator(tokens: Sequence[_Token]) -> bool:
    # A leading minus makes a negative number, not a calculation.
    return any(t.kind == "op" for t in tokens[1:]) or (
        bool(tokens) and tokens[0].kind == "op" and tokens[0].text != "-"
    )


def _chains(run: _Run) -> Iterator[tuple[list[list[_Token]], bool]]:
    """Chains ``a = b = c`` of readable expressions in a run, with their ``≈`` flag."""
    approx = any(t.approx for t in run.tokens)
    parts = _split(run.tokens)
    if run.continues_left:
        parts[0] = []
    if run.continues_right:
        parts[-1] = []
    chain: list[list[_Token]] = []
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


def _decimals(tokens: Sequence[_Token]) -> int | None:
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


def _text_of(tokens: Sequence[_Token], source: str) -> str:
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


def _unit_words(tokens: Sequence[_Token]) -> set[str]:
    return {
        _stem(word)
        for t in tokens
        if t.kind == "num"
        for word in re.split(r"[\s/']+", t.unit)
        if _stem(word) in _CONVERTIBLE_UNITS
    }


def _needs_conversion(left: Sequence[_Token], right: Sequence[_Token]) -> bool:
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
    left: Sequence[_Token],
    right: Sequence[_Token],
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


def _equations(
    text: str, *, rel_tol: float
) -> Iterator[tuple[str, Fraction, Fraction, bool]]:
    for run in _math_runs(_tokens(text)):
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
        .. code-block:: python

            from langchain_cascade.gates.arithmetic import find_calculations

            [c.correct for c in find_calculations("16 - 3 = 13 eggs, 13 * $2 = $27")]
            # [True, False]
    """
    found: list[Calculation] = []
    seen: set[str] = set()
    notes: list[tuple[str, str]] = []

    def take_note(match: re.Match[str]) -> str:
        notes.append((match.group(1), match.group(2)))
        return ""

    plain = _normalise(_ANNOTATION.sub(take_note, text))
    sources = [plain] + [_normalise(f"{lhs} = {rhs}") for lhs, rhs in notes]
    for source in sources:
        for equation, computed, stated, correct in _equations(source, rel_tol=rel_tol):
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
        .. code-block:: python

            from langchain_core.messages import AIMessage, HumanMessage
            from langchain_cascade import GateInput
            from langchain_cascade.gates import ArithmeticGate

            answer = AIMessage("She sells 16 - 3 - 4 = 9 eggs for 9 * $2 = $16.")
            gi = GateInput(messages=[HumanMessage("How much?")], response=answer)
            ArithmeticGate().invoke(gi).reason  # '1 of 2 calculations wrong: 9 * $2 = $16 (is 18)'
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
