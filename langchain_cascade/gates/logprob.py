"""Token-logprob confidence: how sure was the model of the tokens it wrote."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Literal

from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableConfig
from pydantic import Field

from langchain_cascade._numeric import quantile
from langchain_cascade.gates.base import Gate, GateInput, GateResult

__all__ = ["Aggregation", "LogprobGate", "token_logprobs"]

Aggregation = Literal[
    "geometric_mean", "mean_prob", "min_prob", "quantile", "first_token_margin"
]


def token_logprobs(message: AIMessage) -> list[dict[str, Any]]:
    """The OpenAI-format per-token logprob entries of an answer.

    ``ChatOpenAI(logprobs=True)`` puts them in
    ``response_metadata["logprobs"]["content"]``, one dict per token with ``token``,
    ``logprob`` and, when asked for, ``top_logprobs``. Streamed answers carry them
    per chunk; merging the chunks concatenates the lists.

    Args:
        message: The answer.

    Returns:
        The entries, empty when the answer has none.
    """
    logprobs = message.response_metadata.get("logprobs")
    if isinstance(logprobs, dict):
        content = logprobs.get("content")
        if isinstance(content, list):
            return [e for e in content if isinstance(e, dict) and "logprob" in e]
    return []


def _geometric_mean(lps: Sequence[float], _: float) -> float:
    return math.exp(sum(lps) / len(lps))


def _mean_prob(lps: Sequence[float], _: float) -> float:
    return sum(math.exp(lp) for lp in lps) / len(lps)


def _min_prob(lps: Sequence[float], _: float) -> float:
    return math.exp(min(lps))


def _quantile_prob(lps: Sequence[float], q: float) -> float:
    return math.exp(quantile(lps, q))


_AGGREGATIONS: dict[str, Callable[[Sequence[float], float], float]] = {
    "geometric_mean": _geometric_mean,
    "mean_prob": _mean_prob,
    "min_prob": _min_prob,
    "quantile": _quantile_prob,
}


def _first_token_margin(entries: Sequence[dict[str, Any]]) -> float | None:
    top = entries[0].get("top_logprobs") or []
    probs = sorted((math.exp(t["logprob"]) for t in top), reverse=True)
    if not probs:
        return None
    return probs[0] - (probs[1] if len(probs) > 1 else 0.0)


class LogprobGate(Gate):
    """Passes when the model was confident in the tokens of its answer.

    The score is a probability in ``[0, 1]`` aggregated from the answer's token
    logprobs (ask the child for them, e.g. ``ChatOpenAI(logprobs=True)``; add
    ``top_logprobs=2`` or more for ``"first_token_margin"``). The gate passes when
    ``score >= threshold``. An answer without logprobs fails closed.

    Aggregations:
        - ``"geometric_mean"`` (default): ``exp(mean token logprob)``. It is
          length-normalised, needs only the sampled tokens' logprobs, and on the
          local Qwen2.5-Coder models the mean token logprob separates right from
          wrong answers (-0.039 vs -0.105 on the 1.5B model, ``local-models.md``).
        - ``"mean_prob"``: the mean token probability.
        - ``"min_prob"``: the least likely token's probability: one shaky token
          (a wrong digit) sinks the answer.
        - ``"quantile"``: the ``quantile``-th lowest token probability; low
          quantiles of token confidence beat the mean, which is biased by answer
          length (arXiv 2404.10136).
        - ``"first_token_margin"``: the gap between the two most likely first
          tokens, a strong cheap signal for short answers (arXiv 2405.02134).

    Fit ``threshold`` on labelled data with :func:`langchain_cascade.calibrate`
    rather than guessing it.

    Example:
        .. code-block:: python

            from langchain_core.messages import AIMessage, HumanMessage
            from langchain_cascade import GateInput
            from langchain_cascade.gates import LogprobGate

            answer = AIMessage(
                "4", response_metadata={"logprobs": {"content": [{"token": "4", "logprob": -0.01}]}}
            )
            gate = LogprobGate(threshold=0.9)
            gate.invoke(GateInput(messages=[HumanMessage("2+2?")], response=answer)).passed  # True
    """

    threshold: float = Field(ge=0.0, le=1.0)
    aggregation: Aggregation = "geometric_mean"
    quantile: float = Field(default=0.1, ge=0.0, le=1.0)
    max_answer_tokens: int | None = Field(default=None, ge=1)
    """The longest answer the tier can write, for judging a partial answer
    (``early_abort``); by default the tier's own ``max_tokens``. Without either,
    only ``"min_prob"`` and ``"first_token_margin"`` judge partial answers."""

    def score(self, message: AIMessage) -> float | None:
        """The confidence score of an answer, or ``None`` without logprobs.

        Args:
            message: The answer.

        Returns:
            The score in ``[0, 1]``.
        """
        entries = token_logprobs(message)
        if not entries:
            return None
        if self.aggregation == "first_token_margin":
            return _first_token_margin(entries)
        lps = [float(e["logprob"]) for e in entries]
        return _AGGREGATIONS[self.aggregation](lps, self.quantile)

    def evaluate(self, gate_input: GateInput, config: RunnableConfig) -> GateResult:
        """Score the answer's token logprobs against the threshold."""
        score = self.score(gate_input.response)
        if score is None:
            what = (
                "no top_logprobs on the first token"
                if token_logprobs(gate_input.response)
                else "no token logprobs in the answer"
            )
            return GateResult(
                passed=False,
                score=None,
                reason=f"{what}: ask the model for them (e.g. logprobs=True)",
            )
        passed = score >= self.threshold
        return GateResult(
            passed=passed,
            score=score,
            reason=(
                f"{self.aggregation} {score:.3f} "
                f"{'>=' if passed else '<'} {self.threshold}"
            ),
        )

    def evaluate_partial(self, gate_input: GateInput) -> GateResult | None:
        """Fail when even a perfectly confident rest of the answer could not pass.

        The rest is assumed to be tokens of probability 1 up to the tier's
        ``max_tokens`` (or ``max_answer_tokens``): if the best score reachable
        that way is still under the threshold, the answer will fail.
        """
        entries = token_logprobs(gate_input.response)
        if not entries:
            return None
        if self.aggregation == "first_token_margin":
            best = _first_token_margin(entries)
        else:
            lps = [float(e["logprob"]) for e in entries]
            if self.aggregation == "min_prob":
                best = _min_prob(lps, self.quantile)
            else:
                limit = self.max_answer_tokens or _max_tokens(gate_input.chat_model)
                if limit is None:
                    return None
                rest = [0.0] * max(0, limit - len(lps))
                best = _AGGREGATIONS[self.aggregation]([*lps, *rest], self.quantile)
        if best is None or best >= self.threshold:
            return None
        return GateResult(
            passed=False,
            score=best,
            reason=(
                f"{self.aggregation} can reach at most {best:.3f} < {self.threshold} "
                f"after {len(entries)} tokens"
            ),
        )


def _max_tokens(model: object) -> int | None:
    """A chat model's answer-length limit, when it has one of the usual fields."""
    for name in ("max_tokens", "max_completion_tokens", "num_predict"):
        value = getattr(model, name, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None
