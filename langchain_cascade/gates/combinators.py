"""Combine gates: :func:`all_of`, :func:`any_of` and :func:`weighted`.

Each combination is itself a :class:`~langchain_cascade.gates.Gate`, so
combinations nest. The combination is one run; its parts are evaluated inside it
(a part that calls models still nests those calls under it), and the combined
verdict's ``reason`` and ``details["parts"]`` say which parts passed and which
failed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from langchain_core.runnables import RunnableConfig
from pydantic import Field, field_validator

from langchain_cascade.gates.base import Gate, GateInput, GateResult, coerce_gate
from langchain_cascade.pricing import sum_usage

__all__ = ["AllOf", "AnyOf", "Weighted", "all_of", "any_of", "weighted"]


def _part_score(result: GateResult) -> float:
    return result.score if result.score is not None else float(result.passed)


def _explain(parts: Sequence[tuple[Gate, GateResult]]) -> str:
    return "; ".join(
        f"{gate.gate_name} {'passed' if r.passed else 'failed'}"
        + (f" ({r.reason})" if r.reason else "")
        for gate, r in parts
    )


def _verdict(
    parts: Sequence[tuple[Gate, GateResult]],
    *,
    passed: bool,
    score: float,
    reason: str,
) -> GateResult:
    """A combination's verdict: its parts' usage summed, each part in the details."""
    return GateResult(
        passed=passed,
        score=score,
        reason=reason,
        usage=sum_usage(r.usage for _, r in parts),
        details={
            "parts": [
                {
                    "gate": gate.gate_name,
                    "passed": r.passed,
                    "score": r.score,
                    "reason": r.reason,
                }
                for gate, r in parts
            ]
        },
    )


def _failed(
    parts: Sequence[tuple[Gate, GateResult | None]],
) -> list[tuple[Gate, GateResult]]:
    """The parts that have already failed (a partial verdict of ``None`` has not)."""
    return [(g, r) for g, r in parts if r is not None and not r.passed]


class _Combination(Gate):
    """Shared machinery: run parts in order, stop early, explain the verdict."""

    gates: list[Gate] = Field(min_length=1)

    @field_validator("gates", mode="before")
    @classmethod
    def _coerce(cls, value: Iterable[object]) -> list[Gate]:
        return [coerce_gate(g, where=f"{cls.__name__} part") for g in value]

    def _stop_after(self, result: GateResult) -> bool:
        raise NotImplementedError

    def _combine(self, parts: Sequence[tuple[Gate, GateResult]]) -> GateResult:
        raise NotImplementedError

    def evaluate(self, gate_input: GateInput, config: RunnableConfig) -> GateResult:
        """Run the parts in order until the verdict is settled."""
        parts: list[tuple[Gate, GateResult]] = []
        for gate in self.gates:
            result = gate.verdict(gate_input, config)
            parts.append((gate, result))
            if self._stop_after(result):
                break
        return self._combine(parts)

    def evaluate_partial(self, gate_input: GateInput) -> GateResult | None:
        """Combine the parts' verdicts on a partial answer (``None``: can't tell)."""
        parts = [(g, g.evaluate_partial(gate_input)) for g in self.gates]
        return self._combine_partial(parts)

    @property
    def judges_partial(self) -> bool:
        """Whether the combination can ever fail a partial answer."""
        return self._partial_needs(g.judges_partial for g in self.gates)

    def _partial_needs(self, judging: Iterable[bool]) -> bool:
        return any(judging)

    def _combine_partial(
        self, parts: Sequence[tuple[Gate, GateResult | None]]
    ) -> GateResult | None:
        raise NotImplementedError

    async def aevaluate(
        self, gate_input: GateInput, config: RunnableConfig
    ) -> GateResult:
        """Run the parts in order until the verdict is settled, asynchronously."""
        parts: list[tuple[Gate, GateResult]] = []
        for gate in self.gates:
            result = await gate.averdict(gate_input, config)
            parts.append((gate, result))
            if self._stop_after(result):
                break
        return self._combine(parts)


class AllOf(_Combination):
    """Passes when every part passes; stops at the first failure.

    The score is the lowest part score. Put cheap deterministic gates first: a
    failing rule saves the cost of a model-based gate after it.
    """

    def _stop_after(self, result: GateResult) -> bool:
        return not result.passed

    def _combine(self, parts: Sequence[tuple[Gate, GateResult]]) -> GateResult:
        passed = all(r.passed for _, r in parts)
        return _verdict(
            parts,
            passed=passed,
            score=min(_part_score(r) for _, r in parts),
            reason=("all passed: " if passed else "failed: ") + _explain(parts),
        )

    def _combine_partial(
        self, parts: Sequence[tuple[Gate, GateResult | None]]
    ) -> GateResult | None:
        # One part that will fail fails the whole.
        failed = _failed(parts)
        if not failed:
            return None
        return self._combine(failed)


class AnyOf(_Combination):
    """Passes when any part passes; stops at the first pass.

    The score is the highest part score.
    """

    def _stop_after(self, result: GateResult) -> bool:
        return result.passed

    def _combine(self, parts: Sequence[tuple[Gate, GateResult]]) -> GateResult:
        passed = any(r.passed for _, r in parts)
        return _verdict(
            parts,
            passed=passed,
            score=max(_part_score(r) for _, r in parts),
            reason=("passed: " if passed else "all failed: ") + _explain(parts),
        )

    def _partial_needs(self, judging: Iterable[bool]) -> bool:
        return all(judging)

    def _combine_partial(
        self, parts: Sequence[tuple[Gate, GateResult | None]]
    ) -> GateResult | None:
        # Fails only once every part will fail.
        failed = _failed(parts)
        if len(failed) < len(parts):
            return None
        return self._combine(failed)


class Weighted(_Combination):
    """Passes when the weighted mean of the part scores reaches ``threshold``.

    A part without a score counts 1.0 when it passed and 0.0 when it failed. All
    parts run: the mean needs every score.
    """

    weights: list[float]
    threshold: float = Field(ge=0.0, le=1.0)

    def model_post_init(self, context: Any, /) -> None:
        """Check the weights against the parts."""
        if len(self.weights) != len(self.gates):
            msg = f"weighted: {len(self.gates)} gates but {len(self.weights)} weights"
            raise ValueError(msg)
        if any(w < 0 for w in self.weights) or sum(self.weights) <= 0:
            msg = f"weighted: weights must be >= 0 with a positive sum, got {self.weights}"
            raise ValueError(msg)

    def _stop_after(self, result: GateResult) -> bool:
        return False

    def _combine_partial(
        self, parts: Sequence[tuple[Gate, GateResult | None]]
    ) -> GateResult | None:
        # The best weighted score still reachable: a part that can't tell yet, or
        # whose best reachable score is unknown, may still score 1.
        best = [
            (g, r)
            if r is not None and not r.passed and r.score is not None
            else (g, GateResult(passed=True, score=1.0, reason="can't tell yet"))
            for g, r in parts
        ]
        verdict = self._combine(best)
        return None if verdict.passed else verdict

    def _combine(self, parts: Sequence[tuple[Gate, GateResult]]) -> GateResult:
        results = [r for _, r in parts]
        total = sum(self.weights)
        score = sum(
            w * _part_score(r) for w, r in zip(self.weights, results, strict=True)
        )
        score /= total
        passed = score >= self.threshold
        return _verdict(
            parts,
            passed=passed,
            score=score,
            reason=(
                f"weighted score {score:.3f} {'>=' if passed else '<'} "
                f"{self.threshold}: {_explain(parts)}"
            ),
        )


def all_of(*gates: object) -> AllOf:
    """A gate that passes only when every one of ``gates`` passes.

    Args:
        *gates: Gates, Runnables or functions of :class:`GateInput`.

    Returns:
        The combined gate.

    Example:
        .. code-block:: python

            from langchain_cascade.gates import HedgingGate, MinLengthGate, all_of

            gate = all_of(MinLengthGate(min_chars=2), HedgingGate())
    """
    return AllOf(gates=list(gates))


def any_of(*gates: object) -> AnyOf:
    """A gate that passes when at least one of ``gates`` passes.

    Args:
        *gates: Gates, Runnables or functions of :class:`GateInput`.

    Returns:
        The combined gate.
    """
    return AnyOf(gates=list(gates))


def weighted(
    gates: Mapping[Any, float] | Sequence[tuple[object, float]],
    *,
    threshold: float,
) -> Weighted:
    """A gate that passes when the weighted mean score reaches ``threshold``.

    Args:
        gates: ``{gate: weight}`` or ``[(gate, weight), ...]``.
        threshold: The pass mark for the weighted mean, in ``[0, 1]``.

    Returns:
        The combined gate.

    Example:
        .. code-block:: python

            from langchain_cascade.gates import HedgingGate, LogprobGate, weighted

            gate = weighted({LogprobGate(threshold=0.5): 2.0, HedgingGate(): 1.0}, threshold=0.7)
    """
    pairs = list(gates.items()) if isinstance(gates, Mapping) else list(gates)
    return Weighted(
        gates=[g for g, _ in pairs],
        weights=[float(w) for _, w in pairs],
        threshold=threshold,
    )
