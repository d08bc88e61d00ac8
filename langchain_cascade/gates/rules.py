"""Deterministic rules: hedging phrases, too-short answers, answer format.

They cost nothing and run in microseconds, so put them first in an
:func:`~langchain_cascade.gates.all_of`. An answer that is only tool calls has no
text to judge: these rules pass it and leave it to
:class:`~langchain_cascade.gates.ToolCallGate`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from langchain_core.runnables import RunnableConfig
from pydantic import Field, field_validator

from langchain_cascade.gates.base import Gate, GateInput, GateResult

__all__ = ["DEFAULT_HEDGING_PHRASES", "HedgingGate", "MinLengthGate", "RegexGate"]

DEFAULT_HEDGING_PHRASES: tuple[str, ...] = (
    "i am not sure",
    "i'm not sure",
    "i am not certain",
    "i'm not certain",
    "i don't know",
    "i do not know",
    "i do not have enough information",
    "i don't have enough information",
    "not enough information",
    "i cannot determine",
    "i can't determine",
    "i'm unable to",
    "i am unable to",
    "i cannot answer",
    "i can't answer",
    "it is unclear",
    "it's unclear",
    "hard to say",
    "difficult to say",
    "as an ai",
    "i cannot provide",
    "i can't provide",
)
"""Phrases that signal a model is unsure or declining, matched case-insensitively."""


def _normalise_apostrophes(text: str) -> str:
    return text.replace("\u2019", "'").replace("\u2018", "'")


def _valid_pattern(value: str) -> str:
    """``value`` when it compiles as a regular expression (a pydantic validator).

    Raises:
        ValueError: When it does not, with the pattern and the reason.

    Example:
        >>> _valid_pattern("[0-9]+$")
        '[0-9]+$'
    """
    try:
        re.compile(value)
    except re.error as exc:
        msg = f"pattern {value!r} is not a valid regular expression: {exc}"
        raise ValueError(msg) from exc
    return value


class HedgingGate(Gate):
    """Fails when the answer hedges or declines ("I am not sure", ...).

    Matching is case-insensitive and treats typographic apostrophes as plain ones.

    Example:
        .. code-block:: python

            from langchain_core.messages import AIMessage, HumanMessage
            from langchain_cascade import GateInput
            from langchain_cascade.gates import HedgingGate

            gi = GateInput(messages=[HumanMessage("Who won?")], response=AIMessage("I'm not sure."))
            HedgingGate().invoke(gi).passed  # False
    """

    phrases: tuple[str, ...] = DEFAULT_HEDGING_PHRASES

    @field_validator("phrases", mode="before")
    @classmethod
    def _lower(cls, value: Sequence[str]) -> tuple[str, ...]:
        if isinstance(value, str):
            msg = "phrases must be a list of strings, not one string"
            raise TypeError(msg)
        phrases = tuple(_normalise_apostrophes(p).strip().lower() for p in value)
        if not phrases or not all(phrases):
            msg = "phrases must hold at least one non-empty phrase"
            raise ValueError(msg)
        return phrases

    def evaluate(self, gate_input: GateInput, config: RunnableConfig) -> GateResult:
        """Look for the first hedging phrase in the answer."""
        if gate_input.tool_calls_only:
            return GateResult(passed=True, score=1.0, reason="tool calls only")
        return self._hedge(gate_input) or GateResult(
            passed=True, score=1.0, reason="no hedging"
        )

    def evaluate_partial(self, gate_input: GateInput) -> GateResult | None:
        """Fail as soon as a hedging phrase has been written (it stays written)."""
        return self._hedge(gate_input)

    def _hedge(self, gate_input: GateInput) -> GateResult | None:
        text = _normalise_apostrophes(gate_input.text).lower()
        for phrase in self.phrases:
            if phrase in text:
                return GateResult(
                    passed=False, score=0.0, reason=f"hedging phrase {phrase!r}"
                )
        return None


class MinLengthGate(Gate):
    """Fails when the answer's text is shorter than ``min_chars`` (stripped).

    The score is ``min(1, length / min_chars)``.

    Example:
        .. code-block:: python

            from langchain_cascade.gates import MinLengthGate

            gate = MinLengthGate(min_chars=20)
    """

    min_chars: int = Field(ge=1)

    def evaluate(self, gate_input: GateInput, config: RunnableConfig) -> GateResult:
        """Compare the stripped text length with ``min_chars``."""
        if gate_input.tool_calls_only:
            return GateResult(passed=True, score=1.0, reason="tool calls only")
        length = len(gate_input.text.strip())
        passed = length >= self.min_chars
        return GateResult(
            passed=passed,
            score=min(1.0, length / self.min_chars),
            reason=f"{length} chars {'>=' if passed else '<'} {self.min_chars}",
        )


class RegexGate(Gate):
    r"""Passes when the answer matches a format (``re.search``).

    Example:
        .. code-block:: python

            from langchain_cascade.gates import RegexGate

            ends_with_number = RegexGate(pattern=r"-?\d+(\.\d+)?\s*$", description="a final number")
    """

    pattern: str
    description: str = ""
    flags: int = re.IGNORECASE

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        return _valid_pattern(value)

    def evaluate(self, gate_input: GateInput, config: RunnableConfig) -> GateResult:
        """Search the answer's text for the pattern."""
        what = self.description or f"pattern {self.pattern!r}"
        if gate_input.tool_calls_only:
            return GateResult(passed=True, score=1.0, reason="tool calls only")
        passed = re.search(self.pattern, gate_input.text, self.flags) is not None
        return GateResult(
            passed=passed,
            score=float(passed),
            reason=f"{what} {'found' if passed else 'missing'}",
        )
