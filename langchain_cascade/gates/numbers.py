"""Read the numbers written in an answer, exactly.

One reader for every place that needs the numbers of a text: the arithmetic
gate's expression parser, the self-consistency gate's :func:`extract_number`
(``langchain_cascade.gates.consistency``) and the benchmarks' answer checking.
A number is written with an optional currency sign, optional thousands commas and
optional decimals (``$1,200.50``, ``3``, ``.5``); its value is an exact
:class:`~fractions.Fraction`, so ``0.1 + 0.2`` is ``3/10`` and ``18.00`` equals
``18``.
"""

from __future__ import annotations

import re
from fractions import Fraction

__all__ = ["NUMBER_PATTERN", "last_number", "parse_number"]

NUMBER_PATTERN = r"(?:[$€£][ \t]*)?(?:(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?|\.\d+)"
"""A written number without its sign: currency, thousands commas, decimals."""

_FULL = re.compile(rf"[ \t]*(-)?[ \t]*({NUMBER_PATTERN})[ \t]*\.?[ \t]*")
# The sign counts only when not glued to a word, a digit or a point before it:
# "5-3" is a subtraction, "-3" and "is -3" are negative.
_SIGNED = re.compile(rf"(?:(?<![\w.])-[ \t]?)?{NUMBER_PATTERN}(?![\d,]*\d)")


def _value(written: str) -> Fraction:
    digits = written.lstrip("$€£ \t").replace(",", "")
    return Fraction(digits)


def parse_number(text: str) -> Fraction | None:
    """The value of a text that is one written number, or ``None``.

    Args:
        text: A number such as ``"1,234"``, ``"$12.50"``, ``"-3"`` or ``"18."``
            (a final full stop and surrounding blanks are allowed).

    Returns:
        The exact value, or ``None`` when the text is not one number.

    Example:
        >>> parse_number("$1,200.50")
        Fraction(2401, 2)
        >>> parse_number("18.00") == parse_number("18")
        True
        >>> parse_number("12 apples") is None
        True
    """
    match = _FULL.fullmatch(text)
    if match is None:
        return None
    value = _value(match.group(2))
    return -value if match.group(1) else value


def last_number(text: str) -> Fraction | None:
    """The value of the last number written in a text, or ``None``.

    A minus sign counts when it is not glued to a word or digit before it, so
    ``"5-3"`` ends with ``3`` and ``"the change is -3"`` with ``-3``.

    Args:
        text: An answer.

    Returns:
        The exact value, or ``None`` when the text holds no number.

    Example:
        >>> last_number("4 pens cost $12, so the change is $8.")
        Fraction(8, 1)
        >>> last_number("no numbers") is None
        True
    """
    matches = _SIGNED.findall(text)
    if not matches:
        return None
    written = matches[-1]
    negative = written.startswith("-")
    value = _value(written.removeprefix("-"))
    return -value if negative else value
