"""The arithmetic gate's expression parser: exact fractions, never ``eval``.

Recursive descent over ``+ - * / ^``, unary minus, parentheses and implicit
multiplication (``2(3 + 4)``), on the tokens of
:mod:`langchain_cascade.gates._math_text`. Values are exact fractions, so
``2/3 * 60`` is exactly 40.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

from langchain_cascade.gates._math_text import Token
from langchain_cascade.gates.numbers import parse_number

__all__ = ["parses", "value"]

_MAX_EXPONENT = 64


class _ParseError(ValueError):
    pass


class _Parser:
    """Recursive descent over ``+ - * / ^``, unary minus and parentheses.

    Values are exact fractions, so ``2/3 * 60`` is exactly 40. ``percent`` says
    whether ``50%`` means 0.5 (``True``) or 50.
    """

    def __init__(self, tokens: Sequence[Token], *, percent: bool) -> None:
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

    def _peek(self) -> Token | None:
        if self.position < len(self.tokens):
            return self.tokens[self.position]
        return None

    def _take(self) -> Token:
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

    def _touches_previous(self, token: Token) -> bool:
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

    def _number(self, token: Token) -> Fraction:
        value = parse_number(token.text)
        if value is None:  # pragma: no cover - number tokens are numbers
            raise _ParseError
        return value / 100 if token.percent and self.percent else value

    def _tight_fraction(self) -> tuple[Token, Token] | None:
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


def value(tokens: Sequence[Token], *, percent: bool) -> Fraction | None:
    """The exact value of an expression's tokens, or ``None`` when it has none.

    ``percent`` says whether ``50%`` means 0.5 (``True``) or 50.
    """
    try:
        return _Parser(tokens, percent=percent).parse()
    except _ParseError:
        return None


def parses(tokens: Sequence[Token]) -> bool:
    """Whether the tokens read as one expression."""
    return value(tokens, percent=True) is not None
