"""Short questions with known answers, for the demo and the real-model tests.

Three kinds, from easy to harder for a small model: one-word facts, arithmetic,
and two-step word problems. The demo asks :data:`DEMO_QUESTIONS`; thresholds are
fitted on :func:`generated_questions`, a separate, seeded set.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "DEMO_QUESTIONS",
    "SYSTEM_PROMPT",
    "Question",
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


DEMO_QUESTIONS: tuple[Question, ...] = (
    Question("What is the capital of France?", "paris", "fact"),
    Question("How many days are in a week?", "7", "fact"),
    Question("Which planet is known as the Red Planet?", "mars", "fact"),
    Question("What is the largest ocean on Earth?", "pacific", "fact"),
    Question("What is 12 + 30?", "42", "arithmetic"),
    Question("What is 9 * 8?", "72", "arithmetic"),
    Question("What is 46 * 3?", "138", "arithmetic"),
    Question(
        "A pen costs $3 and a notebook costs $5. How much do 2 pens and 1 notebook cost in dollars?",
        "11",
        "word problem",
    ),
    Question(
        "Sara reads 15 pages a day. How many pages does she read in 2 weeks?",
        "210",
        "word problem",
    ),
    Question(
        "Tom has 24 apples. He gives away a third of them and then buys 5 more. How many apples does he have now?",
        "21",
        "word problem",
    ),
    Question(
        "A train travels at 60 km per hour for 3 hours, then at 40 km per hour for 2 hours. How many km does it travel in total?",
        "260",
        "word problem",
    ),
    Question(
        "A box holds 6 eggs. How many boxes are needed for 75 eggs?",
        "13",
        "word problem",
    ),
)

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


_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def final_answer(text: str) -> str:
    """The answer in a reply: its last number, else its lowercased text."""
    numbers = _NUMBER.findall(text)
    if numbers:
        last: str = numbers[-1]
        return last.replace(",", "").rstrip(".")
    return text.strip().lower()


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
    if _NUMBER.fullmatch(expected):
        got = final_answer(reply)
        try:
            return float(got) == float(expected)
        except ValueError:
            return False
    return re.search(rf"\b{re.escape(expected)}\b", reply.lower()) is not None
