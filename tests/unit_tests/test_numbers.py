"""The one number reader shared by the gates and the benchmarks."""

from __future__ import annotations

from fractions import Fraction

import pytest

from langchain_cascade.gates import extract_number
from langchain_cascade.gates.numbers import last_number, parse_number


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("18", Fraction(18)),
        ("18.00", Fraction(18)),
        ("$1,200.50", Fraction(2401, 2)),
        ("-3", Fraction(-3)),
        (" 42. ", Fraction(42)),
        ("€7", Fraction(7)),
        (".5", Fraction(1, 2)),
    ],
)
def test_parse_number_reads_one_written_number(text: str, value: Fraction) -> None:
    assert parse_number(text) == value


@pytest.mark.parametrize("text", ["", "twelve", "12 apples", "1,2,3", "3 - 1"])
def test_parse_number_rejects_anything_else(text: str) -> None:
    assert parse_number(text) is None


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("4 pens cost $12, so the change is $8.", Fraction(8)),
        ("5-3", Fraction(3)),
        ("the change is -3", Fraction(-3)),
        ("Answer: 1,000,000", Fraction(1_000_000)),
        ("0.1 and 0.25", Fraction(1, 4)),
        ("nothing", None),
    ],
)
def test_last_number(text: str, value: Fraction | None) -> None:
    assert last_number(text) == value


def test_extract_number_is_the_canonical_text_of_last_number() -> None:
    assert extract_number("She pays $1,200.50") == "1200.5"
    assert extract_number("So 0.000 left") == "0"
    assert extract_number("about 3.10 kg") == "3.1"
