"""Questions with known answers, for the demo and the real-model tests.

The demo asks :func:`demo_questions`: real public data (FrugalGPT HEADLINES,
calculator questions from GSM8K's solutions, GSM8K problems), the workload of ``benchmarks.workload``. The real-model tests use
:func:`generated_questions`, short generated questions of three kinds (one-word
facts, arithmetic, two-step word problems) in two disjoint splits.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from benchmarks.common import WRITTEN_NUMBER, resolve_data_dir, written_numbers
from benchmarks.workload import Item, load_sample

__all__ = [
    "SYSTEM_PROMPT",
    "Item",
    "Question",
    "demo_questions",
    "final_answer",
    "generated_questions",
    "is_correct",
]

SYSTEM_PROMPT = (
    "Answer the question. Reply with only the final answer: a number or a few "
    "words, nothing else."
)


@dataclass(frozen=True)
class Question:
    """A question and its expected answer (a number or a word)."""

    text: str
    answer: str
    kind: str


def demo_questions(data_dir: Path | None = None) -> list[Item]:
    """The demo's questions: the workload's ``demo`` sample of real public data.

    Ten FrugalGPT HEADLINES test rows, five calculator questions built from
    GSM8K solutions' annotations and two GSM8K problems that neither the
    fitting sample nor the held-out benchmark uses (see ``benchmarks.workload``),
    read in place from the data directory.

    Args:
        data_dir: The data directory (default: ``$CASCADE_DATA_DIR`` or
            ``../shared/data``).

    Returns:
        The questions, in a fixed shuffled order.
    """
    return load_sample(data_dir or resolve_data_dir(None), "demo")


_FACTS: tuple[tuple[str, str], ...] = (
    ("What is the capital of Japan?", "tokyo"),
    ("What is the capital of Italy?", "rome"),
    ("What is the capital of Spain?", "madrid"),
    ("What is the capital of Germany?", "berlin"),
    ("What is the capital of Egypt?", "cairo"),
    ("What is the capital of Canada?", "ottawa"),
    ("What is the capital of Australia?", "canberra"),
    ("What is the capital of Kenya?", "nairobi"),
    ("What is the chemical symbol for gold?", "au"),
    ("What is the chemical symbol for sodium?", "na"),
    ("How many legs does a spider have?", "8"),
    ("How many continents are there?", "7"),
    ("How many minutes are in an hour?", "60"),
    ("What gas do plants absorb from the air?", "carbon dioxide"),
    ("What is the freezing point of water in degrees Celsius?", "0"),
    ("Which planet is closest to the Sun?", "mercury"),
    ("What is the largest planet in the solar system?", "jupiter"),
    ("How many sides does a hexagon have?", "6"),
    ("What is the square root of 81?", "9"),
    ("Who wrote Romeo and Juliet?", "shakespeare"),
)


def generated_questions(
    n: int, *, seed: int, split: Literal["fit", "test"] = "fit"
) -> list[Question]:
    """``n`` labelled questions, mixing facts, arithmetic and word problems.

    The ``"fit"`` and ``"test"`` splits share no question: each has its own half
    of the fact questions (10 each; past them, arithmetic takes their place) and
    its own range of numbers, so thresholds fitted on one can be checked on the
    other.

    Args:
        n: How many.
        seed: The random seed (the same seed gives the same questions).
        split: Which half of the fact questions to draw from.

    Returns:
        The questions.
    """
    rng = random.Random(f"{split}:{seed}")
    facts = list(_FACTS[0::2] if split == "fit" else _FACTS[1::2])
    low, high = (12, 55) if split == "fit" else (56, 99)
    rng.shuffle(facts)
    out: list[Question] = []
    while len(out) < n:
        kind = len(out) % 3
        if kind == 0 and facts:
            text, answer = facts.pop()
            out.append(Question(text, answer, "fact"))
        elif kind in (0, 1):
            a, b = rng.randint(low, high), rng.randint(3, 9)
            if rng.random() < 0.5:
                out.append(Question(f"What is {a} * {b}?", str(a * b), "arithmetic"))
            else:
                c = rng.randint(11, 99)
                out.append(Question(f"What is {a} + {c}?", str(a + c), "arithmetic"))
        else:
            price, paid = rng.randint(2, 9), 100
            count = rng.randint(3, 7) if split == "fit" else rng.randint(8, 12)
            out.append(
                Question(
                    f"Ann buys {count} books at ${price} each and pays with "
                    f"${paid}. How much change does she get in dollars?",
                    str(paid - price * count),
                    "word problem",
                )
            )
    return out


def final_answer(text: str) -> str:
    """The answer in a reply: its last number, else its lowercased text."""
    numbers = written_numbers(text)
    return numbers[-1] if numbers else text.strip().lower()


def is_correct(reply: str, expected: str) -> bool:
    """Whether a reply gives the expected answer.

    A numeric answer must be the reply's last number; a word answer must appear
    in the reply as a word.

    Args:
        reply: The model's reply.
        expected: The known answer.

    Returns:
        Whether they agree.
    """
    if WRITTEN_NUMBER.fullmatch(expected):
        got = final_answer(reply)
        try:
            return float(got) == float(expected)
        except ValueError:
            return False
    return re.search(rf"\b{re.escape(expected)}\b", reply.lower()) is not None
