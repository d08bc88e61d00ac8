"""Read the worked maths of an answer's text as tokens, for the arithmetic gate.

Two steps: :func:`normalise` rewrites what answers write into plain notation
(LaTeX fractions and symbols, Unicode operators and fractions, bullets, bold,
``3/4 of 120``, ``6 x 7``, ``2 1/2``), and :func:`tokens` cuts the text into
numbers, operators, brackets, equals signs and other words, reading past the units
between numbers and operators (``16 eggs - 3 eggs``) and noting each number's unit.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from langchain_cascade.gates.numbers import NUMBER_PATTERN

__all__ = ["ANNOTATION", "Token", "TokenKind", "normalise", "tokens"]

# --- normalising the text ---------------------------------------------------------

ANNOTATION = re.compile(r"<<([^<>=]+)=([^<>]+)>>")
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


def normalise(text: str) -> str:
    r"""The text in plain notation: ``\frac{3}{4}`` -> ``(3)/(4)``, ``÷`` -> ``/``."""
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
    rf"(?P<num>{NUMBER_PATTERN})"
    r"(?P<pct>[ \t]*%)?"
    r"|(?P<op>[-+*/^])"
    r"|(?P<paren>[()])"
    r"|(?P<eq>(?<![=<>!])(?:=|≈)(?![=>]))"
    r"|(?P<space>[ \t]+)"
    r"|(?P<other>\w+|\S|\n)"
)


@dataclass(frozen=True)
class Token:
    """A piece of the text: a number (with its unit), operator, bracket, ``=`` or word."""

    kind: TokenKind
    text: str
    start: int
    end: int
    percent: bool = False
    approx: bool = False
    unit: str = ""
    unit_end: int = 0


def tokens(text: str) -> list[Token]:
    """The text's tokens, units between numbers and operators read past."""
    found: list[Token] = []
    for match in _TOKEN.finditer(text):
        group = match.lastgroup
        if group == "space":
            continue
        start, end = match.span()
        if group in ("num", "pct"):
            found.append(
                Token(
                    "num",
                    match.group("num"),
                    start,
                    end,
                    percent=match.group("pct") is not None,
                )
            )
        elif group == "op":
            found.append(Token("op", match.group(), start, end))
        elif group == "paren":
            kind: TokenKind = "(" if match.group() == "(" else ")"
            found.append(Token(kind, match.group(), start, end))
        elif group == "eq":
            found.append(
                Token("=", match.group(), start, end, approx=match.group() == "≈")
            )
        else:
            found.append(Token("other", match.group(), start, end))
    return _strip_units(found)


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


def _is_word(token: Token) -> bool:
    # One letter is a variable ("2S + 30"), not a unit.
    return token.kind == "other" and token.text.isalpha() and len(token.text) > 1


def _unit_span(tokens: Sequence[Token], start: int) -> tuple[int, str, bool]:
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


def _label_end(tokens: Sequence[Token], start: int) -> int | None:
    """Past the ``)`` of a bracketed label of words, e.g. ``(first month)``."""
    for i in range(start + 1, min(len(tokens), start + _MAX_LABEL_TOKENS)):
        token = tokens[i]
        if token.kind == ")":
            return i + 1 if i > start + 1 else None
        if token.kind != "other" or token.text == "\n":
            return None
    return None


def _strip_units(tokens: list[Token]) -> list[Token]:
    """Drop the units between numbers and operators, noting each on its number."""
    kept: list[Token] = []
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
