"""Gates that ask a language model: a self-check by the tier's own model, and a judge.

Both ask for a strict, small verdict (structured output where the model supports
``with_structured_output(..., method="json_schema")``, a short text reply otherwise),
parse it defensively and fail closed on anything they cannot parse. Both pass the
gate's ``config`` to every model call, so the calls nest under the gate's run and
their tokens are counted as the gate's (``gate_usage`` on the cascade's attempt).

Each idea has its module; this one gathers their public names:

- :mod:`~langchain_cascade.gates.self_check`: :class:`SelfCheckGate`,
  :func:`parse_rating`.
- :mod:`~langchain_cascade.gates.judge`: :class:`JudgeGate`, :func:`parse_verdict`,
  :data:`DEFAULT_JUDGE_CRITERIA`.
- :mod:`~langchain_cascade.gates.injection`: :func:`screen_candidate`, the screen
  a judge runs on the candidate answer first.
- ``_asking``: the shared plumbing (structured output with a text fallback, JSON
  replies, summed usage).
"""

from langchain_cascade.gates.injection import InjectionPolicy, screen_candidate
from langchain_cascade.gates.judge import (
    DEFAULT_JUDGE_CRITERIA,
    JudgeGate,
    parse_verdict,
)
from langchain_cascade.gates.self_check import SelfCheckGate, parse_rating

__all__ = [
    "DEFAULT_JUDGE_CRITERIA",
    "InjectionPolicy",
    "JudgeGate",
    "SelfCheckGate",
    "parse_rating",
    "parse_verdict",
    "screen_candidate",
]
