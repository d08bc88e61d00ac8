"""Quality gates: decide whether a tier's answer is good enough to return.

A gate is a Runnable from :class:`GateInput` to :class:`GateResult`. Small gates
combine with :func:`all_of`, :func:`any_of` and :func:`weighted`; a
:class:`LearnedGate` fits one probability of a right answer from the scores of
other gates (:func:`fit_learned_gates`, :func:`learned_scores`).

Example:
    >>> from langchain_cascade.gates import LearnedGate, learned
    >>> LearnedGate is learned.LearnedGate
    True
"""

from langchain_cascade.gates.arithmetic import ArithmeticGate
from langchain_cascade.gates.base import (
    Gate,
    GateInput,
    GateLike,
    GateResult,
    RunnableGate,
    coerce_gate,
)
from langchain_cascade.gates.combinators import (
    AllOf,
    AnyOf,
    Weighted,
    all_of,
    any_of,
    weighted,
)
from langchain_cascade.gates.consistency import (
    ConsistencyGate,
    extract_choice,
    extract_number,
    normalize_text,
)
from langchain_cascade.gates.judge import JudgeGate
from langchain_cascade.gates.learned import (
    LearnedGate,
    fit_learned_gates,
    learned_scores,
)
from langchain_cascade.gates.logprob import LogprobGate, token_logprobs
from langchain_cascade.gates.rules import (
    DEFAULT_HEDGING_PHRASES,
    HedgingGate,
    MinLengthGate,
    RegexGate,
)
from langchain_cascade.gates.self_check import SelfCheckGate
from langchain_cascade.gates.tools import StructuredOutputGate, ToolCallGate
from langchain_cascade.gates.turns import ByTurn, ToolFirstGate, ToolLoopGate, by_turn

__all__ = [
    "DEFAULT_HEDGING_PHRASES",
    "AllOf",
    "AnyOf",
    "ArithmeticGate",
    "ByTurn",
    "ConsistencyGate",
    "Gate",
    "GateInput",
    "GateLike",
    "GateResult",
    "HedgingGate",
    "JudgeGate",
    "LearnedGate",
    "LogprobGate",
    "MinLengthGate",
    "RegexGate",
    "RunnableGate",
    "SelfCheckGate",
    "StructuredOutputGate",
    "ToolCallGate",
    "ToolFirstGate",
    "ToolLoopGate",
    "Weighted",
    "all_of",
    "any_of",
    "by_turn",
    "coerce_gate",
    "extract_choice",
    "extract_number",
    "fit_learned_gates",
    "learned_scores",
    "normalize_text",
    "token_logprobs",
    "weighted",
]
