"""``LearnedGate``: a fitted probability that the answer is right.

(Being written: the generic features come first, used by ``collect``.)
"""

from __future__ import annotations

import math

from langchain_core.messages import AIMessage

from langchain_cascade.gates.logprob import token_logprobs

__all__ = ["GENERIC_FEATURES", "answer_features"]


GENERIC_FEATURES = ("answer_chars", "output_tokens", "logprob_mean", "logprob_min")
"""The cheap generic features :func:`answer_features` computes for every answer."""


def answer_features(message: AIMessage) -> dict[str, float]:
    """Cheap, model-agnostic facts about an answer, for :class:`LearnedGate`.

    ``answer_chars``: length of the text; ``output_tokens``: from the answer's
    ``usage_metadata`` (else the number of logprob entries, else NaN);
    ``logprob_mean`` / ``logprob_min``: over the sampled tokens' logprobs (NaN
    without logprobs).

    Args:
        message: The answer.

    Returns:
        One float per name in :data:`GENERIC_FEATURES`.

    Example:
        >>> from langchain_core.messages import AIMessage
        >>> answer_features(AIMessage("Paris"))["answer_chars"]
        5.0
    """
    entries = token_logprobs(message)
    logprobs = [float(e["logprob"]) for e in entries]
    usage = message.usage_metadata
    if usage is not None:
        tokens = float(usage["output_tokens"])
    elif logprobs:
        tokens = float(len(logprobs))
    else:
        tokens = math.nan
    return {
        "answer_chars": float(len(message.text)),
        "output_tokens": tokens,
        "logprob_mean": sum(logprobs) / len(logprobs) if logprobs else math.nan,
        "logprob_min": min(logprobs) if logprobs else math.nan,
    }
