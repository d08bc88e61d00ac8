"""Self-consistency: sample the tier's model again and check the answers agree.

A model that knows the answer tends to give the same final answer when sampled
again; one that guesses scatters. :class:`ConsistencyGate` draws ``samples``
extra answers at a temperature above zero and passes when enough of them reach
the same final answer as the answer under test, as read by a pluggable extractor
(:func:`extract_number`, :func:`extract_choice`, :func:`normalize_text` or your
own function).
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Hashable, Sequence
from decimal import Decimal, localcontext
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.runnables import Runnable
from pydantic import Field

from langchain_cascade.gates._asking import (
    Batch,
    StepGate,
    Steps,
    model_for,
    usage_of,
)
from langchain_cascade.gates.base import GateInput, GateResult
from langchain_cascade.gates.numbers import last_number

__all__ = [
    "ConsistencyGate",
    "Extractor",
    "extract_choice",
    "extract_number",
    "normalize_text",
]

Extractor = Callable[[str], Hashable | None]
"""Reads the final answer out of an answer's text; ``None`` when there is none."""

_DIGITS = 200


def extract_number(text: str) -> str | None:
    """The last number in the text, in a canonical form.

    The number is read by :func:`~langchain_cascade.gates.numbers.last_number`.

    Thousands separators, a currency sign and trailing zeros after the decimal
    point are dropped, so ``$1,200.50``, ``1200.5`` and ``1,200.500`` all read
    ``"1200.5"``, and ``18.00`` reads ``"18"``.

    Args:
        text: An answer.

    Returns:
        The number as a string, or ``None`` when the text holds none.

    Example:
        >>> extract_number("She pays $1,200.00 in total.")
        '1200'
        >>> extract_number("no number here") is None
        True
    """
    value = last_number(text)
    if value is None:
        return None
    if value == 0:
        return "0"
    # A written number has a terminating decimal expansion: exact at this precision.
    with localcontext(prec=_DIGITS):
        decimal = Decimal(value.numerator) / Decimal(value.denominator)
    return format(decimal.normalize(), "f")


_CHOICE_PATTERNS = (
    # "answer is (B)", "Answer: C", "the correct option is D"
    re.compile(
        r"\b(?:answer|option|choice)\s*(?:is|:|=|-)?\s*(?:option\s+|choice\s+)?"
        r"[(\[*\s]*([A-E])\b(?![-'])",
        re.IGNORECASE,
    ),
    # "(B)", "[C]", "**D**"
    re.compile(r"[(\[]([A-E])[)\]]|\*\*([A-E])\*\*"),
    # "B)" or "C." at the start of a line
    re.compile(r"^\s*([A-E])[).:]", re.MULTILINE),
    # A reply that is just the letter
    re.compile(r"^\s*([A-E])\s*[.!]?\s*$"),
)


def extract_choice(text: str) -> str | None:
    """The multiple-choice letter (A-E) the text settles on.

    Looks, in order, for ``answer is (B)`` / ``Answer: C``, a bracketed or bold
    letter, a letter opening a line (``D)``), and a reply that is only a letter;
    the last match of the first pattern that matches wins.

    Args:
        text: An answer.

    Returns:
        The upper-case letter, or ``None``.

    Example:
        >>> extract_choice("Let me think... so the answer is (c).")
        'C'
    """
    for pattern in _CHOICE_PATTERNS:
        matches = pattern.findall(text)
        if matches:
            last = matches[-1]
            letter = next(m for m in last if m) if isinstance(last, tuple) else last
            return str(letter).upper()
    return None


_PUNCTUATION = str.maketrans(
    dict.fromkeys(string.punctuation + "\u2018\u2019\u201c\u201d")
)


def normalize_text(text: str) -> str | None:
    """The text lower-cased, without punctuation and with single spaces.

    Args:
        text: An answer.

    Returns:
        The normalized text, or ``None`` when nothing is left.

    Example:
        >>> normalize_text("  Paris! ")
        'paris'
    """
    normalized = " ".join(text.lower().translate(_PUNCTUATION).split())
    return normalized or None


class ConsistencyGate(StepGate):
    """Passes when extra samples from the tier's model agree with its answer.

    The gate draws ``samples`` more answers to the same conversation from the
    tier's model (``GateInput.chat_model``, or ``model`` when given), bound to
    ``temperature`` so they can differ, extracts each one's final answer with
    ``extract`` and compares it with the final answer of the answer under test.
    The score is the share of samples that agree; the gate passes when
    ``score >= threshold``. An answer whose final answer cannot be extracted
    fails; a sample that cannot be extracted, or whose call raised, disagrees.

    Samples are drawn with ``model.batch`` on the sync path and concurrently with
    ``model.abatch`` on the async path; every call gets the gate's config, so
    the samples are children of the gate's run and their tokens are the gate's.

    Example:
        >>> from langchain_cascade.gates import ConsistencyGate, extract_number
        >>> gate = ConsistencyGate(samples=3, threshold=0.6, extract=extract_number)
        >>> gate.samples, gate.threshold
        (3, 0.6)
    """

    samples: int = Field(default=3, ge=1, le=32)
    """How many extra answers to draw."""

    threshold: float = Field(default=0.6, ge=0.0, le=1.0)
    """Lowest passing share of samples that agree with the answer."""

    extract: Extractor = normalize_text
    """Reads an answer's final answer: the unit of agreement."""

    temperature: float = Field(default=0.7, gt=0.0, le=2.0)
    """Sampling temperature bound to the model for the extra answers."""

    model: BaseChatModel | None = None
    """The sampled model; ``None`` for the tier's own model."""

    def _prepare(
        self, gate_input: GateInput
    ) -> GateResult | tuple[Runnable[Any, Any], Hashable]:
        if gate_input.tool_calls_only:
            return GateResult(passed=True, reason="tool calls only: nothing to compare")
        target = self.extract(gate_input.text)
        if target is None:
            return GateResult(
                passed=False,
                score=0.0,
                reason="no final answer could be extracted from the answer",
            )
        model = model_for("ConsistencyGate", self.model, gate_input)
        return model.bind(temperature=self.temperature), target

    def _result(self, target: Hashable, outputs: Sequence[object]) -> GateResult:
        answers: list[Hashable | None] = []
        messages: list[AIMessage] = []
        errors: list[str] = []
        for output in outputs:
            if isinstance(output, AIMessage):
                messages.append(output)
                answers.append(self.extract(output.text))
            else:
                errors.append(f"{type(output).__name__}: {output}")
                answers.append(None)
        agree = sum(1 for a in answers if a is not None and a == target)
        score = agree / self.samples
        # Compare counts, not floats: 2 of 3 meets a threshold of 2/3.
        passed = agree >= self.threshold * self.samples - 1e-9
        details: dict[str, Any] = {"answer": target, "samples": answers}
        if errors:
            details["errors"] = errors
        return GateResult(
            passed=passed,
            score=score,
            reason=(
                f"{agree}/{self.samples} samples agree on {target!r} "
                f"({score:.2f} {'>=' if passed else '<'} {self.threshold})"
                + (f"; {len(errors)} sample calls failed" if errors else "")
            ),
            usage=usage_of(messages),
            details=details,
        )

    def _steps(self, gate_input: GateInput) -> Steps:
        prepared = self._prepare(gate_input)
        if isinstance(prepared, GateResult):
            return prepared
        model, target = prepared
        messages: list[BaseMessage] = list(gate_input.messages)
        outputs = yield Batch(model, [messages] * self.samples)
        return self._result(target, outputs)
