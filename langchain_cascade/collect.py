"""Collect the data :func:`~langchain_cascade.calibration.calibrate` needs.

:func:`collect` runs a labelled dataset through the live cascade's own decision
loop (``_run.decide``) and drivers, with one change: every tier's gate is a
*recorder* that runs the tier's gate and any extra candidate gates on the answer,
records their verdicts, scores, costs and latencies, and never passes, so the
loop walks every tier (answering once per tier), not only the tiers a live call
would reach. What is recorded is therefore what runs: the same ``GateInput``
(tools included), the same fail-closed rule for a raising gate, tools and
structured output bound as the cascade binds them, the same prices. Each
example's correctness per tier comes from your own ``evaluate`` function. The
result, :class:`CollectedScores`, holds ``(queries, tiers)`` arrays and fits
thresholds with :meth:`CollectedScores.calibrate`.

Long runs survive interruptions: with ``path``, each finished example is appended
to a JSON-lines file at once, and a rerun skips every example already there
(matched by its index and a hash of its input).

Needs the ``calibration`` extra (numpy; matplotlib for plots):
``pip install -e ".[calibration]"`` from a checkout. numpy is imported only when
arrays are built, so importing this module does not need it.

Example:
    .. code-block:: python

        from langchain_cascade.collect import collect

        def exact(answer, reference) -> float:
            return float(answer.text.strip() == reference)

        data = collect(cascade, [("2 + 2?", "4"), ("3 * 3?", "9")], exact,
                       path="scores.jsonl")
        result = data.calibrate(min_quality=0.9)
        cascade.gates  # set each gate's pass mark to result.thresholds[i]
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import sys
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from langchain_core.callbacks import CallbackManager, CallbackManagerForChainRun
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    convert_to_messages,
    messages_to_dict,
)
from langchain_core.prompt_values import PromptValue
from langchain_core.runnables import (
    Runnable,
    RunnableBinding,
    RunnableConfig,
    RunnableParallel,
    RunnableSequence,
    ensure_config,
)
from pydantic import Field

from langchain_cascade._callbacks import ParentRun
from langchain_cascade._numeric import json_float
from langchain_cascade._run import Attempt, CallGate, Event, _judge, decide
from langchain_cascade.chat_models import (
    CascadingChatModel,
    _Call,
    _Stepper,
    prepare_call,
)
from langchain_cascade.errors import CascadeError
from langchain_cascade.gates.base import (
    Gate,
    GateInput,
    GateLike,
    GateResult,
    coerce_gate,
)
from langchain_cascade.pricing import sum_known

if TYPE_CHECKING:
    import os

    from numpy.typing import ArrayLike, NDArray

    from langchain_cascade.calibration import CalibrationResult, PolicyEvaluation

__all__ = [
    "CollectedScores",
    "Evaluator",
    "ExampleRecord",
    "GateRecord",
    "LangSmithDataset",
    "ReplayResult",
    "TierRecord",
    "collect",
    "input_hash",
    "logged_cascades",
    "merge",
    "read_jsonl",
    "replay_gates",
    "replay_thresholds",
]

Evaluator = Callable[[AIMessage, Any], float]
"""``evaluate(answer, reference) -> correctness in [0, 1]`` (a bool is fine)."""

_FORMAT_VERSION = 1


# --------------------------------------------------------------------------
# records
# --------------------------------------------------------------------------


def _nan_if_none(value: float | str | None) -> float:
    return math.nan if value is None else float(value)


def _none_if_nan(value: float) -> float | None:
    return None if math.isnan(value) else value


@dataclass(frozen=True)
class GateRecord:
    """What one candidate gate said about one tier's answer.

    Attributes:
        name: The candidate's name (the key it was given under).
        score: Its score; a score-less verdict counts 1.0 if it passed, else
            0.0; ``-inf`` when the gate raised (it failed closed).
        passed: Its verdict.
        reason: Its reason.
        cost: What its own model calls cost (NaN when one has no price).
        latency_s: Seconds it took.
    """

    name: str
    score: float
    passed: bool
    reason: str = ""
    cost: float = 0.0
    latency_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "name": self.name,
            "score": json_float(self.score),
            "passed": self.passed,
            "reason": self.reason,
            "cost": _none_if_nan(self.cost),
            "latency_s": round(self.latency_s, 6),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GateRecord:
        """The inverse of :meth:`to_dict`."""
        return cls(
            name=str(data["name"]),
            score=_nan_if_none(data.get("score")),
            passed=bool(data["passed"]),
            reason=str(data.get("reason") or ""),
            cost=_nan_if_none(data.get("cost")),
            latency_s=float(data.get("latency_s") or 0.0),
        )


@dataclass(frozen=True)
class TierRecord:
    """What one tier did on one example.

    Attributes:
        tier: The tier's index, ``0`` for the cheapest.
        model: The tier's model name.
        score: The cascade's gate's score (a score-less verdict counts 1.0 if it
            passed, else 0.0). For the final tier, which has no gate, the review
            gate's score, or NaN without one. ``-inf`` when the live cascade
            would escalate whatever the threshold: the tier raised, its
            structured output did not parse, or the gate raised.
        correct: The evaluator's verdict on the answer, in ``[0, 1]`` (0 when
            the tier raised).
        cost: The call's cost in dollars; NaN when the model has no price or
            the answer no ``usage_metadata``; 0 when the tier raised (no usage
            came back, as the live budget counts it).
        gate_cost: What the gate's own model calls cost; ``0.0`` when it made
            none, NaN when one of them has no price, and NaN for the final tier.
        latency_s: Seconds the tier's call took.
        gate_latency_s: Seconds the gate took (NaN for the final tier).
        passed: Whether the gate passed the answer (``None`` for the final tier).
        reason: The gate's reason (or why the tier could not be judged).
        answer: The answer's text, for inspection.
        error: What the tier raised, when it did.
        candidates: Every candidate gate's verdict on the answer (the cascade's
            own gate first, under ``"gate"``; the review gate under
            ``"review"``).
        features: The answer's generic features
            (:func:`~langchain_cascade.gates.learned.answer_features`).
    """

    tier: int
    model: str
    score: float
    correct: float
    cost: float
    gate_cost: float
    latency_s: float
    gate_latency_s: float
    passed: bool | None = None
    reason: str = ""
    answer: str = ""
    error: str | None = None
    candidates: tuple[GateRecord, ...] = ()
    features: Mapping[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data; NaN becomes ``None``, infinities strings."""
        return {
            "tier": self.tier,
            "model": self.model,
            "score": json_float(self.score),
            "correct": self.correct,
            "cost": _none_if_nan(self.cost),
            "gate_cost": _none_if_nan(self.gate_cost),
            "latency_s": round(self.latency_s, 6),
            "gate_latency_s": _none_if_nan(round(self.gate_latency_s, 6)),
            "passed": self.passed,
            "reason": self.reason,
            "answer": self.answer,
            "error": self.error,
            "candidates": [c.to_dict() for c in self.candidates],
            "features": {k: _none_if_nan(v) for k, v in self.features.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TierRecord:
        """The inverse of :meth:`to_dict`."""
        return cls(
            tier=int(data["tier"]),
            model=str(data["model"]),
            score=_nan_if_none(data.get("score")),
            correct=float(data["correct"]),
            cost=_nan_if_none(data.get("cost")),
            gate_cost=_nan_if_none(data.get("gate_cost")),
            latency_s=float(data.get("latency_s") or 0.0),
            gate_latency_s=_nan_if_none(data.get("gate_latency_s")),
            passed=data.get("passed"),
            reason=str(data.get("reason") or ""),
            answer=str(data.get("answer") or ""),
            error=data.get("error"),
            candidates=tuple(
                GateRecord.from_dict(c) for c in data.get("candidates") or ()
            ),
            features={
                str(k): _nan_if_none(v) for k, v in (data.get("features") or {}).items()
            },
        )


@dataclass(frozen=True)
class ExampleRecord:
    """Every tier's record on one example: one line of the JSON-lines file.

    Attributes:
        index: The example's position in ``examples``.
        input_hash: :func:`input_hash` of its input.
        tiers: One record per tier, cheapest first.
    """

    index: int
    input_hash: str
    tiers: tuple[TierRecord, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "v": _FORMAT_VERSION,
            "index": self.index,
            "input_hash": self.input_hash,
            "tiers": [t.to_dict() for t in self.tiers],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExampleRecord:
        """The inverse of :meth:`to_dict`."""
        return cls(
            index=int(data["index"]),
            input_hash=str(data["input_hash"]),
            tiers=tuple(TierRecord.from_dict(t) for t in data["tiers"]),
        )


def _to_messages(value: Any) -> list[BaseMessage]:
    """What a chat model makes of its input: a string, a PromptValue or messages."""
    if isinstance(value, str):
        return [HumanMessage(value)]
    if isinstance(value, PromptValue):
        return value.to_messages()
    if isinstance(value, BaseMessage):
        return [value]
    if isinstance(value, Sequence):
        return convert_to_messages(value)
    msg = (
        f"an example's input must be a string, a PromptValue or a list of "
        f"messages, got {type(value).__name__}"
    )
    raise TypeError(msg)


def input_hash(value: Any) -> str:
    """A short, stable hash of an example's input (as the chat model sees it).

    Args:
        value: A string, a PromptValue or a list of messages.

    Returns:
        16 hex digits of the SHA-256 of the messages' JSON form.

    Example:
        >>> input_hash("What is 2 + 2?") == input_hash([("human", "What is 2 + 2?")])
        True
    """
    data = json.dumps(
        messages_to_dict(_to_messages(value)), sort_keys=True, default=str
    )
    return hashlib.sha256(data.encode()).hexdigest()[:16]


def read_jsonl(path: str | os.PathLike[str]) -> list[ExampleRecord]:
    """Reads the records of a :func:`collect` JSON-lines file, in file order.

    A last line cut short (the process was killed while writing it) is ignored;
    a malformed line elsewhere is an error.

    Args:
        path: The file.

    Returns:
        The records.

    Raises:
        ValueError: On a malformed line.
    """
    records: list[ExampleRecord] = []
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(ExampleRecord.from_dict(json.loads(line)))
        except (ValueError, KeyError, TypeError) as exc:
            if number == len(lines):
                break  # an interrupted write: the example is redone
            msg = f"{path}:{number}: not a collect record ({exc})"
            raise ValueError(msg) from exc
    return records


# --------------------------------------------------------------------------
# the arrays
# --------------------------------------------------------------------------


def _records_dict(records: Sequence[ExampleRecord]) -> dict[str, list[list[float]]]:
    return {
        "scores": [[t.score for t in r.tiers] for r in records],
        "correct": [[t.correct for t in r.tiers] for r in records],
        "costs": [[t.cost for t in r.tiers] for r in records],
        "gate_costs": [[t.gate_cost for t in r.tiers] for r in records],
        "latencies": [[t.latency_s for t in r.tiers] for r in records],
        "gate_latencies": [[t.gate_latency_s for t in r.tiers] for r in records],
    }


def _named_arrays(
    records: Sequence[ExampleRecord], kind: Literal["candidates", "features"]
) -> dict[str, NDArray[Any]]:
    """``{name: (queries, tiers) array}`` of candidate scores or features (NaN: absent)."""
    import numpy as np  # noqa: PLC0415 - the calibration extra

    width = len(records[0].tiers)
    out: dict[str, NDArray[Any]] = {}
    for row, record in enumerate(records):
        for tier in record.tiers:
            values = (
                {c.name: c.score for c in tier.candidates}
                if kind == "candidates"
                else dict(tier.features)
            )
            for name, value in values.items():
                if name not in out:
                    out[name] = np.full((len(records), width), np.nan)
                out[name][row, tier.tier] = value
    return out


def _unknown_columns(arr: NDArray[Any]) -> list[int]:
    import numpy as np  # noqa: PLC0415 - the calibration extra

    return [int(j) for j in np.flatnonzero(np.isnan(arr).any(axis=0))]


@dataclass(frozen=True)
class CollectedScores:
    """The ``(queries, tiers)`` arrays :func:`calibrate` needs, and where they came from.

    Rows follow the examples' order (by index). The final tier's ``scores``,
    ``gate_costs`` and ``gate_latencies`` are NaN: it has no gate.

    Attributes:
        scores: Gate scores.
        correct: Correctness in ``[0, 1]``.
        costs: Call costs in dollars (NaN where unknown).
        gate_costs: Gate costs in dollars (NaN where unknown).
        latencies: Seconds per call.
        gate_latencies: Seconds per gate.
        model_names: The tiers' model names.
        indices: Each row's example index.
        candidate_scores: Every candidate gate's scores by name (NaN where a
            tier had no such candidate); ``"gate"`` is the cascade's own gates.
        features: The answers' generic features by name.
    """

    scores: NDArray[Any]
    correct: NDArray[Any]
    costs: NDArray[Any]
    gate_costs: NDArray[Any]
    latencies: NDArray[Any]
    gate_latencies: NDArray[Any]
    model_names: tuple[str, ...] = ()
    indices: tuple[int, ...] = ()
    candidate_scores: Mapping[str, NDArray[Any]] = field(default_factory=dict)
    features: Mapping[str, NDArray[Any]] = field(default_factory=dict)

    def subset(self, rows: ArrayLike) -> CollectedScores:
        """The arrays of some rows only (a boolean mask or row positions).

        Args:
            rows: Which rows.

        Returns:
            A new :class:`CollectedScores`.
        """
        import numpy as np  # noqa: PLC0415 - the calibration extra

        pick = np.arange(self.n_queries)[np.asarray(rows)]
        return CollectedScores(
            scores=self.scores[pick],
            correct=self.correct[pick],
            costs=self.costs[pick],
            gate_costs=self.gate_costs[pick],
            latencies=self.latencies[pick],
            gate_latencies=self.gate_latencies[pick],
            model_names=self.model_names,
            indices=tuple(self.indices[i] for i in pick) if self.indices else (),
            candidate_scores={k: v[pick] for k, v in self.candidate_scores.items()},
            features={k: v[pick] for k, v in self.features.items()},
        )

    @property
    def n_queries(self) -> int:
        """Number of examples."""
        return int(self.scores.shape[0])

    @property
    def n_tiers(self) -> int:
        """Number of tiers."""
        return int(self.scores.shape[1])

    @classmethod
    def from_records(
        cls, records: Sequence[ExampleRecord], *, model_names: Sequence[str] = ()
    ) -> CollectedScores:
        """Builds the arrays from records (sorted by index; one per index).

        Args:
            records: Records, e.g. from :func:`read_jsonl`.
            model_names: The tiers' names; by default those of the records.

        Returns:
            The arrays.

        Raises:
            ValueError: When there are no records, or they disagree on the
                number of tiers.
        """
        import numpy as np  # noqa: PLC0415 - the calibration extra

        if not records:
            msg = "no records: nothing was collected"
            raise ValueError(msg)
        by_index = {r.index: r for r in records}  # the last record of an index wins
        ordered = [by_index[i] for i in sorted(by_index)]
        widths = {len(r.tiers) for r in ordered}
        if len(widths) != 1:
            msg = f"records disagree on the number of tiers: {sorted(widths)}"
            raise ValueError(msg)
        arrays = {
            name: np.asarray(rows, dtype=np.float64)
            for name, rows in _records_dict(ordered).items()
        }
        names = tuple(model_names) or tuple(t.model for t in ordered[0].tiers)
        return cls(
            **arrays,
            model_names=names,
            indices=tuple(r.index for r in ordered),
            candidate_scores=_named_arrays(ordered, "candidates"),
            features=_named_arrays(ordered, "features"),
        )

    def summary(self, **kwargs: Any) -> str:
        """Which tiers pay for themselves on this data, as lines of text.

        Runs ``calibrate(select_tiers=True)`` (by default: the cheapest policy
        that keeps the final tier's quality) and says "drop tier X" for every
        tier that does not lower the cost at that target. When no cheap tier
        pays, it says to drop them all and call the final model alone, without
        a cascade.

        Args:
            **kwargs: Passed to :meth:`calibrate` (e.g. ``min_quality``).

        Returns:
            The summary; a note instead when the data cannot be calibrated
            (unknown costs, say).
        """
        from langchain_cascade.cli import tier_line  # noqa: PLC0415

        try:
            result = self.calibrate(select_tiers=True, **kwargs)
        except ValueError as exc:
            return f"Tier check skipped: {exc}"

        def named(tier: int) -> str:
            if tier < len(self.model_names):
                return f"tier {tier} ({self.model_names[tier]})"
            return f"tier {tier}"

        lines = [f"Tier check ({result.constraint}):"]
        lines += [tier_line(v, self.model_names) for v in result.tier_report]
        drop = [named(v["tier"]) for v in result.tier_report if not v["kept"]]
        if drop and not result.thresholds:  # only the final tier is kept
            lines.append(
                "Drop " + ", ".join(drop) + f": call {named(result.tiers[-1])} "
                "alone, without a cascade (no cascade of these tiers pays)."
            )
        elif drop:
            lines.append(
                "Drop " + ", ".join(drop) + ": the cascade is cheaper without."
            )
        return "\n".join(lines)

    def _calibration_inputs(
        self, costs: ArrayLike | None, *, include_gate_costs: bool
    ) -> dict[str, Any]:
        import numpy as np  # noqa: PLC0415 - the calibration extra

        call_costs = self.costs if costs is None else np.asarray(costs, dtype=float)
        if costs is None and (bad := _unknown_columns(call_costs)):
            names = [self.model_names[j] for j in bad if j < len(self.model_names)]
            msg = (
                f"the cost of tier(s) {bad} {names} is unknown: give the cascade "
                "prices for these models (and make them report usage_metadata), "
                "or pass costs=..."
            )
            raise ValueError(msg)
        gate_costs = None
        if include_gate_costs:
            gate_costs = self.gate_costs.copy()
            gate_costs[:, -1] = 0.0  # the final tier has no gate
            if bad := _unknown_columns(gate_costs):
                msg = (
                    f"the gate cost of tier(s) {bad} is unknown (a gate called a "
                    "model without a price): add its price to the cascade, or "
                    "pass include_gate_costs=False"
                )
                raise ValueError(msg)
        return {
            "scores": self.scores,
            "correct": self.correct,
            "costs": call_costs,
            "gate_costs": gate_costs,
        }

    def calibrate(
        self,
        *,
        costs: ArrayLike | None = None,
        include_gate_costs: bool = True,
        **kwargs: Any,
    ) -> CalibrationResult:
        """Fits thresholds on these arrays (see :func:`~langchain_cascade.calibration.calibrate`).

        Args:
            costs: Call costs to use instead of the collected ones (e.g. when
                the models had no price).
            include_gate_costs: Count what the gates cost.
            **kwargs: ``min_quality``, ``max_cost``, ``max_grid``, ``confidence``,
                ``select_tiers``... (see ``calibrate``).

        Returns:
            The calibration result.

        Raises:
            ValueError: When a cost is unknown, or as ``calibrate`` does.
        """
        from langchain_cascade.calibration import calibrate  # noqa: PLC0415

        inputs = self._calibration_inputs(costs, include_gate_costs=include_gate_costs)
        return calibrate(**inputs, **kwargs)

    def evaluate_thresholds(
        self,
        thresholds: ArrayLike,
        *,
        costs: ArrayLike | None = None,
        include_gate_costs: bool = True,
    ) -> PolicyEvaluation:
        """Scores fixed thresholds on these arrays (e.g. held-out data).

        Args:
            thresholds: One per non-final tier.
            costs: Call costs to use instead of the collected ones.
            include_gate_costs: Count what the gates cost.

        Returns:
            The policy's metrics.
        """
        from langchain_cascade.calibration import (  # noqa: PLC0415
            evaluate_thresholds,
        )

        inputs = self._calibration_inputs(costs, include_gate_costs=include_gate_costs)
        return evaluate_thresholds(thresholds=thresholds, **inputs)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Writes the arrays to an ``.npz`` file (readable by :meth:`load` and the CLI).

        Args:
            path: The file; ``.npz`` is appended when missing.

        Returns:
            The path written.
        """
        import numpy as np  # noqa: PLC0415 - the calibration extra

        out = Path(path)
        if out.suffix != ".npz":
            out = out.with_name(out.name + ".npz")
        arrays: dict[str, NDArray[Any]] = {
            "scores": self.scores,
            "correct": self.correct,
            "costs": self.costs,
            "gate_costs": self.gate_costs,
            "latencies": self.latencies,
            "gate_latencies": self.gate_latencies,
            "model_names": np.asarray(self.model_names, dtype=str),
            "indices": np.asarray(self.indices, dtype=np.int64),
            **{f"candidate:{k}": v for k, v in self.candidate_scores.items()},
            **{f"feature:{k}": v for k, v in self.features.items()},
        }
        with out.open("wb") as handle:
            np.savez(handle, **arrays)  # type: ignore[arg-type]
        return out

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> CollectedScores:
        """Reads a :func:`collect` JSON-lines file or an ``.npz`` file.

        An ``.npz`` needs ``scores``, ``correct`` and ``costs``; ``gate_costs``
        (default zero), latencies (default NaN), ``model_names`` and ``indices``
        are optional.

        Args:
            path: The file.

        Returns:
            The arrays.

        Raises:
            ValueError: When the file lacks an array or the shapes disagree.
        """
        import numpy as np  # noqa: PLC0415 - the calibration extra

        source = Path(path)
        if source.suffix != ".npz":
            return cls.from_records(read_jsonl(source))
        with np.load(source, allow_pickle=False) as data:
            missing = [k for k in ("scores", "correct", "costs") if k not in data]
            if missing:
                msg = (
                    f"{source} lacks the array(s) {missing}; an .npz needs "
                    "scores, correct and costs (queries x tiers)"
                )
                raise ValueError(msg)
            scores = np.asarray(data["scores"], dtype=np.float64)
            arrays: dict[str, NDArray[Any]] = {"scores": scores}
            for name in ("correct", "costs"):
                arrays[name] = np.asarray(data[name], dtype=np.float64)
            defaults = {
                "gate_costs": 0.0,
                "latencies": np.nan,
                "gate_latencies": np.nan,
            }
            for name, default in defaults.items():
                arrays[name] = (
                    np.asarray(data[name], dtype=np.float64)
                    if name in data
                    else np.full(scores.shape, default)
                )
            for name, arr in arrays.items():
                if arr.ndim != 2 or arr.shape != scores.shape:
                    msg = (
                        f"{source}: {name} has shape {arr.shape}; every array must "
                        f"be 2-D (queries x tiers) like scores {scores.shape}"
                    )
                    raise ValueError(msg)
            names = (
                tuple(str(n) for n in data["model_names"])
                if "model_names" in data
                else ()
            )
            indices = (
                tuple(int(i) for i in data["indices"])
                if "indices" in data
                else tuple(range(scores.shape[0]))
            )
            named = {
                kind: {
                    key.split(":", 1)[1]: np.asarray(data[key], dtype=np.float64)
                    for key in data.files
                    if key.startswith(kind + ":")
                }
                for kind in ("candidate", "feature")
            }
        return cls(
            **arrays,
            model_names=names,
            indices=indices,
            candidate_scores=named["candidate"],
            features=named["feature"],
        )


# --------------------------------------------------------------------------
# collecting: the live decision loop, with a gate that records and never passes
# --------------------------------------------------------------------------


def _check_correct(value: object, index: int, tier: int) -> float:
    if isinstance(value, bool):
        return float(value)
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        out = math.nan
    if not 0.0 <= out <= 1.0:
        msg = (
            f"evaluate returned {value!r} for example {index}, tier {tier}; it must "
            "return a number in [0, 1] (or a bool)"
        )
        raise ValueError(msg)
    return out


def _verdict_score(result: GateResult | None, attempt: Attempt) -> float:
    """The number calibration sees: ``-inf`` when the gate raised (fail closed)."""
    if result is None or attempt.reason.startswith("gate raised "):
        return -math.inf
    return float(result.passed) if result.score is None else float(result.score)


class _Recorder(Gate):
    """A tier's gate in collect's plan: runs every candidate, never passes.

    The collect driver recognises it and runs each candidate through the live
    loop's own gate step (:func:`~langchain_cascade._run.judge`), so each fails
    closed, is priced and timed exactly as in a live call; it answers the loop
    with a failed verdict, so the loop walks on to the next tier.
    """

    candidates: list[tuple[str, Gate]]
    records: list[GateRecord] = Field(default_factory=list)

    def evaluate(self, gate_input: GateInput, config: RunnableConfig) -> GateResult:
        """Never called: the collect driver performs this gate itself."""
        msg = "a collect recorder runs only under collect's driver"
        raise RuntimeError(msg)

    def record(
        self, call: _Call, effect: CallGate
    ) -> tuple[GateResult, dict[str, Any]]:
        """Run every candidate on the tier's answer, as the live loop would."""
        gate_input = effect.gate_input
        for name, gate in self.candidates:
            attempt = Attempt(tier=gate_input.tier, model=gate_input.model)
            steps = _Stepper(
                _judge(call.plan, gate_input.tier, gate_input.response, gate, attempt)
            )
            _drive(steps, call)
            result = cast("GateResult | None", steps.outcome)
            self.records.append(
                GateRecord(
                    name=name,
                    score=_verdict_score(result, attempt),
                    passed=bool(result is not None and result.passed),
                    reason=attempt.reason,
                    cost=_nan_if_none(attempt.gate_cost),
                    latency_s=attempt.gate_latency_s or 0.0,
                )
            )
        return GateResult(passed=False, reason="collect records every tier"), {}


def _drive(steps: _Stepper, call: _Call) -> None:
    """The collect driver: performs effects like ``invoke``, except two.

    A recorder gate is performed by the recorder itself, and events are not
    dispatched (collect's walk through every tier is no escalation).
    """
    while (effect := steps.next()) is not None:
        try:
            if isinstance(effect, CallGate) and isinstance(effect.gate, _Recorder):
                steps.send(effect.gate.record(call, effect))
            elif isinstance(effect, Event):
                steps.send(None)
            else:
                steps.send(call.perform(effect))
        except Exception as exc:  # noqa: BLE001 - decide() records it
            steps.throw(exc)


def _unwrap(
    target: CascadingChatModel | Runnable[Any, Any],
) -> tuple[CascadingChatModel, dict[str, Any]]:
    """The cascade inside ``target`` and the call kwargs its bindings add.

    Accepts the cascade, ``cascade.bind_tools(...)``, ``cascade.bind(...)`` and
    ``cascade.with_structured_output(...)`` (whose first step is the binding).
    """
    kwargs: dict[str, Any] = {}
    node: Any = target
    while not isinstance(node, CascadingChatModel):
        if isinstance(node, RunnableBinding):
            kwargs = {**node.kwargs, **kwargs}
            node = node.bound
        elif isinstance(node, RunnableSequence):
            node = node.first
        elif isinstance(node, RunnableParallel) and len(node.steps__) == 1:
            node = next(iter(node.steps__.values()))
        else:
            msg = (
                "collect needs a CascadingChatModel (or one with tools or "
                f"structured output bound), got {type(target).__name__}"
            )
            raise TypeError(msg)
    return node, kwargs


@dataclass
class _Runner:
    """Runs one example through the live decision loop, scoring every tier."""

    cascade: CascadingChatModel
    evaluate: Evaluator
    config: RunnableConfig | None
    keep_answers: bool
    call_kwargs: dict[str, Any] = field(default_factory=dict)
    candidates: Mapping[str, Gate] = field(default_factory=dict)
    tracers: Sequence[Any] = ()

    def __post_init__(self) -> None:
        # Compute the cascade's identity (it reprs the gates) once, before the
        # threads start: a gate's repr races with its own calls in other threads.
        _ = self.cascade.model_names

    def _recorders(self) -> tuple[list[_Recorder], _Recorder | None]:
        cascade, extra = self.cascade, list(self.candidates.items())
        gates = [
            _Recorder(candidates=[("gate", gate), *extra]) for gate in cascade.gates
        ]
        final = [("review", cascade.review_gate)] if cascade.review_gate else []
        review = _Recorder(candidates=[*final, *extra]) if final or extra else None
        return gates, review

    def run(self, index: int, value: Any, reference: Any) -> ExampleRecord:
        config = ensure_config(self.config)
        manager = CallbackManager.configure(
            config.get("callbacks"),
            inheritable_tags=[*config.get("tags", []), "cascade:collect"],
            inheritable_metadata={**config.get("metadata", {}), "collect_index": index},
        )
        if self.tracers:  # the experiment: this example's run, linked to it
            manager.add_handler(self.tracers[index], inherit=True)
        messages = _to_messages(value)
        run = manager.on_chain_start(
            {"name": "collect"},
            {"messages": messages_to_dict(messages)},
            name=f"collect example {index}",
        )
        try:
            record = self._run(run, index, value, messages, reference)
        except BaseException as exc:
            run.on_chain_error(exc)
            raise
        run.on_chain_end(record.to_dict())
        return record

    def _run(
        self,
        run: CallbackManagerForChainRun,
        index: int,
        value: Any,
        messages: list[BaseMessage],
        reference: Any,
    ) -> ExampleRecord:
        parent = ParentRun(
            run_id=run.run_id,
            handlers=list(run.inheritable_handlers),
            tags=list(run.inheritable_tags),
            metadata=dict(run.inheritable_metadata),
        )
        call = prepare_call(self.cascade, messages, parent, dict(self.call_kwargs))
        gates, review = self._recorders()
        # Every tier answers, one after the other: no budget (cost or latency),
        # no router or skipped first tiers, no speculation, no formatter.
        call.plan = dataclasses.replace(
            call.plan,
            gates=gates,
            review_gate=review,
            max_cost=None,
            formats=False,
            first_tier=0,
            skip_reason="",
            router=None,
            speculative=0,
            early_abort=False,
            max_latency=None,
            latency=None,
        )
        steps = _Stepper(decide(call.plan))
        try:
            _drive(steps, call)
        except CascadeError as exc:  # the final tier raised: report what it raised
            raise (exc.__cause__ or exc) from None
        assert steps.outcome is not None  # noqa: S101 - decide always ends with one
        recorders = [*gates, review]
        tiers = [
            self._tier_record(attempt, recorders[attempt.tier], index, reference)
            for attempt in steps.outcome.attempts
        ]
        return ExampleRecord(
            index=index, input_hash=input_hash(value), tiers=tuple(tiers)
        )

    def _tier_record(
        self, attempt: Attempt, recorder: _Recorder | None, index: int, reference: Any
    ) -> TierRecord:
        from langchain_cascade.gates.learned import answer_features  # noqa: PLC0415

        message = attempt.message
        verdicts = tuple(recorder.records) if recorder is not None else ()
        final = attempt.tier == len(self.cascade.models) - 1
        own = (
            next(iter(verdicts), None)
            if (not final or self.cascade.review_gate)
            else None
        )
        if message is None:  # the tier raised: the live loop escalates
            score, reason = -math.inf, attempt.reason
        elif own is None:  # no gate ran: a final tier without review, or no parse
            judged = not attempt.reason.startswith("structured output")
            score = math.nan if final and judged else -math.inf
            reason = attempt.reason
        else:
            score, reason = own.score, own.reason
        correct = (
            0.0
            if message is None
            else _check_correct(self.evaluate(message, reference), index, attempt.tier)
        )
        return TierRecord(
            tier=attempt.tier,
            model=attempt.model,
            score=score,
            correct=correct,
            cost=0.0 if message is None else _nan_if_none(attempt.cost),
            # no gate ran on a non-final tier that raised or did not parse: free
            gate_cost=own.cost if own is not None else (math.nan if final else 0.0),
            latency_s=attempt.latency_s,
            gate_latency_s=(
                own.latency_s if own is not None else (math.nan if final else 0.0)
            ),
            passed=own.passed if own is not None else (None if final else False),
            reason=reason,
            answer=message.text if message is not None and self.keep_answers else "",
            error=attempt.error,
            candidates=verdicts,
            features=answer_features(message) if message is not None else {},
        )


def _resume(path: Path, hashes: Sequence[str]) -> dict[int, ExampleRecord]:
    """The records already in ``path`` that belong to these examples."""
    if not path.exists():
        return {}
    done: dict[int, ExampleRecord] = {}
    for record in read_jsonl(path):
        if record.index >= len(hashes) or record.input_hash != hashes[record.index]:
            msg = (
                f"{path} holds a result for example {record.index} whose input "
                "differs from this dataset's (or the dataset is shorter): it was "
                "collected for other data; use another path"
            )
            raise ValueError(msg)
        done[record.index] = record
    return done


def _repair_tail(path: Path) -> None:
    """Drops a last line cut short by an interruption (its example is redone)."""
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with path.open("r+b") as handle:
            handle.truncate(data.rfind(b"\n") + 1)


def _batched(items: Sequence[int], size: int) -> Iterator[Sequence[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass
class _Collection:
    """One :func:`collect` run: the pool, the file, the bar and the first error."""

    runner: _Runner
    pairs: list[tuple[Any, Any]]
    out: Path | None
    bar: Any  # a tqdm bar
    results: dict[int, ExampleRecord]
    first_error: BaseException | None = None
    failed: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _finish(self, index: int, future: Future[ExampleRecord]) -> None:
        if future.cancelled():
            return
        error = future.exception()
        with self.lock:
            if error is None:
                record = future.result()
                self.results[index] = record
                if self.out is not None:
                    line = json.dumps(record.to_dict(), allow_nan=False)
                    with self.out.open("a", encoding="utf-8") as handle:
                        handle.write(line + "\n")
            else:
                self.failed += 1
                self.first_error = self.first_error or error
                self.bar.set_postfix(failed=self.failed)
            self.bar.update()

    def run(self, todo: Sequence[int], max_concurrency: int, *, stop: bool) -> None:
        """Runs ``todo``; with ``stop``, stops at the first example that raises."""
        try:
            with ThreadPoolExecutor(max_workers=max_concurrency) as pool:
                # Submit in windows, so a failure stops the run without starting
                # every remaining example first.
                for window in _batched(todo, max_concurrency * 4):
                    futures = [
                        pool.submit(self.runner.run, i, *self.pairs[i]) for i in window
                    ]
                    for index, future in zip(window, futures, strict=True):
                        future.add_done_callback(functools.partial(self._finish, index))
                    wait(futures, return_when=FIRST_EXCEPTION)
                    if stop and self.first_error is not None:
                        for future in futures:
                            future.cancel()
                        wait(futures)
                        return
                    wait(futures)
        finally:
            self.bar.close()


def _check_pairs(examples: Sequence[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    pairs = list(examples)
    for i, pair in enumerate(pairs):
        if (
            isinstance(pair, str | bytes)
            or not isinstance(pair, Sequence)
            or len(pair) != 2
        ):
            msg = f"examples[{i}] must be an (input, reference) pair, got {pair!r}"
            raise TypeError(msg)
    return [(value, reference) for value, reference in pairs]


def collect(
    cascade: CascadingChatModel | Runnable[Any, Any],
    examples: Sequence[tuple[Any, Any]],
    evaluate: Evaluator,
    *,
    candidates: Mapping[str, GateLike] | None = None,
    path: str | os.PathLike[str] | None = None,
    progress: bool = True,
    max_concurrency: int = 4,
    shard: tuple[int, int] | None = None,
    on_error: Literal["raise", "skip"] = "raise",
    keep_answers: bool = True,
    config: RunnableConfig | None = None,
    experiment: str | None = None,
    client: Any = None,
) -> CollectedScores:
    """Runs every tier of ``cascade`` on labelled examples and scores every gate.

    Each example goes through the live cascade's own decision loop and drivers
    (``_run.decide`` and the ``invoke`` driver), with two changes: every tier's
    gate is a recorder that runs the tier's gate (and every ``candidates``
    gate) on the answer and never passes, so every tier answers once; and there
    is no budget. So each tier is called exactly as a live call calls it (tools
    and structured output bound, the same ``GateInput``), each gate fails closed
    as it does live (a raising gate scores ``-inf``), and costs are priced the
    same way. The review gate (and the candidates) score the final tier. A
    non-final tier that raises is recorded (``error``, score ``-inf``) and the
    next tier answers, as live; a final tier that raises fails the example.

    With ``path``, each finished example is appended to that JSON-lines file at
    once, and examples already there (same index, same input hash) are not run
    again: rerun the same call after an interruption to finish the job.

    Args:
        cascade: The cascade, or the cascade with tools or structured output
            bound (``cascade.bind_tools(...)``, ``cascade.with_structured_output(...)``).
        examples: ``(input, reference)`` pairs; ``input`` is anything the chat
            model accepts (a string, a PromptValue, a list of messages).
        evaluate: ``evaluate(answer, reference) -> float`` in ``[0, 1]``; the
            answer is the tier's AIMessage (for structured output: the raw
            message, whose tool call or text holds the object).
        candidates: More gates to score every tier's answer with, by name (for
            :func:`~langchain_cascade.gates.learned.fit_learned_gates` or to
            compare gates); ``"gate"`` and ``"review"`` are taken.
        path: Optional JSON-lines file to append results to and resume from.
        progress: Draw a progress bar (tqdm) on stderr.
        max_concurrency: Examples run at once, in threads.
        shard: ``(i, n)``: run only the examples whose index is ``i`` modulo
            ``n`` (a worker's share; give each worker its own ``path`` and
            merge the files with :func:`merge`).
        on_error: ``"raise"``: stop at the first example that raises (finished
            examples are kept in ``path``) and re-raise. ``"skip"``: leave it out
            of the result (a rerun with ``path`` retries it).
        keep_answers: Store each answer's text in the file.
        config: Optional base config (callbacks, tags) for every example's run.
        experiment: Log the run to LangSmith as an experiment of this name on
            the dataset (``examples`` must be a :class:`LangSmithDataset`):
            each example's run (its outputs: every tier's record) and its
            tiers' and gates' runs, linked to the example.
        client: The ``langsmith.Client`` for ``experiment`` (default: the
            dataset's).

    Returns:
        The arrays, rows in example order (finished examples only).

    Raises:
        ValueError: When the cascade has one tier, ``path`` holds results of
            other inputs, ``shard`` is malformed, or ``evaluate`` returns a value
            outside ``[0, 1]``.
        Exception: With ``on_error="raise"``, whatever a final tier or
            ``evaluate`` raised.
    """
    from tqdm.auto import tqdm  # noqa: PLC0415 - the calibration extra

    chat, call_kwargs = _unwrap(cascade)
    if len(chat.models) < 2:
        msg = (
            "collect needs a cascade of at least 2 tiers: "
            "one tier has no gate to calibrate"
        )
        raise ValueError(msg)
    if isinstance(max_concurrency, bool) or max_concurrency < 1:
        msg = f"max_concurrency must be a positive int, got {max_concurrency!r}"
        raise ValueError(msg)
    if on_error not in ("raise", "skip"):
        msg = f"on_error must be 'raise' or 'skip', got {on_error!r}"
        raise ValueError(msg)
    extra = {
        name: coerce_gate(gate, where=f"candidates[{name!r}]")
        for name, gate in (candidates or {}).items()
    }
    if taken := {"gate", "review"} & set(extra):
        msg = f"candidate names {sorted(taken)} are taken by the cascade's own gates"
        raise ValueError(msg)
    pairs = _check_pairs(examples)
    mine = _shard_indices(len(pairs), shard)
    tracers: list[Any] = []
    if experiment is not None:
        client, tracers = _experiment_tracers(examples, experiment, client)
    out = Path(path) if path is not None else None
    done: dict[int, ExampleRecord] = {}
    if out is not None:
        done = _resume(out, [input_hash(value) for value, _ in pairs])
        out.parent.mkdir(parents=True, exist_ok=True)
        _repair_tail(out)
    done = {i: r for i, r in done.items() if i in mine}
    run = _Collection(
        runner=_Runner(
            chat, evaluate, config, keep_answers, call_kwargs, extra, tracers
        ),
        pairs=pairs,
        out=out,
        bar=tqdm(
            total=len(mine),
            initial=len(done),
            desc="collect",
            unit="example",
            disable=not progress,
            file=sys.stderr,
        ),
        results=dict(done),
    )
    todo = [i for i in sorted(mine) if i not in done]
    try:
        run.run(todo, max_concurrency, stop=on_error == "raise")
    finally:
        if tracers:
            client.flush(timeout=60)
    if run.first_error is not None:
        if on_error == "raise":
            raise run.first_error
        warnings.warn(
            f"collect: {run.failed} example(s) raised and were left out "
            f"(first: {type(run.first_error).__name__}: {run.first_error}); "
            + ("rerun with the same path to retry them" if out else "they are lost"),
            stacklevel=2,
        )
    if not run.results:
        msg = "no example finished: nothing was collected"
        raise ValueError(msg)
    return CollectedScores.from_records(
        list(run.results.values()), model_names=chat.model_names
    )


def _shard_indices(count: int, shard: tuple[int, int] | None) -> set[int]:
    if shard is None:
        return set(range(count))
    i, n = shard
    if n < 1 or not 0 <= i < n:
        msg = f"shard must be (i, n) with 0 <= i < n, got {shard!r}"
        raise ValueError(msg)
    return set(range(i, count, n))


def merge(*paths: str | os.PathLike[str]) -> CollectedScores:
    """Merges the JSON-lines files of several :func:`collect` shards.

    Rows keep their example index, so shards of one dataset merge back into
    the arrays of one run over all of it.

    Args:
        *paths: The shards' files.

    Returns:
        The arrays, rows in example order.

    Raises:
        ValueError: When two files hold the same example with different inputs.
    """
    records: dict[int, ExampleRecord] = {}
    for path in paths:
        for record in read_jsonl(path):
            seen = records.get(record.index)
            if seen is not None and seen.input_hash != record.input_hash:
                msg = (
                    f"{path}: example {record.index} has another input than in an "
                    "earlier file: these shards come from different datasets"
                )
                raise ValueError(msg)
            records[record.index] = record
    return CollectedScores.from_records(list(records.values()))


# --------------------------------------------------------------------------
# LangSmith: datasets in, experiments out, "what if" over logged traffic
# --------------------------------------------------------------------------


def _single(values: Mapping[str, Any] | None, key: str | None, what: str) -> Any:
    """One value of an example's inputs or outputs: ``key``'s, else the only one."""
    if values is None:
        return None
    if key is not None:
        if key not in values:
            msg = f"the example's {what} have no {key!r} (they have {sorted(values)})"
            raise KeyError(msg)
        return values[key]
    return next(iter(values.values())) if len(values) == 1 else dict(values)


class LangSmithDataset(Sequence[tuple[Any, Any]]):
    """The ``(input, reference)`` pairs of a LangSmith dataset, read by name.

    Pass it to :func:`collect` as ``examples``. Each example's input is its
    ``inputs[input_key]`` (by default the only input; several inputs stay a
    dict) and its reference ``outputs[reference_key]`` (likewise). The
    examples' ids are kept, so ``collect(..., experiment=...)`` can log each
    run against its example.

    Args:
        name: The dataset's name.
        client: A ``langsmith.Client`` (default: one from the environment).
        input_key: Which input holds the chat model's input.
        reference_key: Which output holds the reference answer.
    """

    def __init__(
        self,
        name: str,
        *,
        client: Any = None,
        input_key: str | None = None,
        reference_key: str | None = None,
    ) -> None:
        import langsmith  # noqa: PLC0415 - a dependency of langchain-core

        self.client = client if client is not None else langsmith.Client()
        self.name = name
        dataset = self.client.read_dataset(dataset_name=name)
        self.id = str(dataset.id)
        examples = list(self.client.list_examples(dataset_id=dataset.id))
        self.example_ids = [str(e.id) for e in examples]
        self._pairs = [
            (
                _single(e.inputs, input_key, "inputs"),
                _single(e.outputs, reference_key, "outputs"),
            )
            for e in examples
        ]

    def __len__(self) -> int:
        return len(self._pairs)

    def __getitem__(self, index: int) -> tuple[Any, Any]:  # type: ignore[override]
        return self._pairs[index]


def _experiment_tracers(
    examples: Sequence[tuple[Any, Any]], experiment: str, client: Any
) -> tuple[Any, list[Any]]:
    """Creates the experiment project; one tracer factory per example."""
    from langchain_core.tracers import LangChainTracer  # noqa: PLC0415

    if not isinstance(examples, LangSmithDataset):
        msg = "experiment= needs examples=LangSmithDataset(...): runs are logged per example"
        raise TypeError(msg)
    client = client if client is not None else examples.client
    client.create_project(
        experiment,
        reference_dataset_id=examples.id,
        metadata={"collect": "langchain-cascade"},
    )
    tracers = [
        LangChainTracer(client=client, project_name=experiment, example_id=example_id)
        for example_id in examples.example_ids
    ]
    return client, tracers


@dataclass(frozen=True)
class ReplayResult:
    """What alternative thresholds would have done on logged cascade runs.

    Attributes:
        thresholds: The thresholds replayed, one per non-final tier.
        n_runs: Cascade runs found in the project.
        tier_counts: Runs the new policy answers at each tier, among the runs
            whose outcome the log settles.
        unknown: Runs the new policy would send to a tier the live call never
            reached (their answer is not in the log: they need a model call).
        escalation_rate: Share of settled runs answered past tier 0.
        live_escalation_rate: The same share in the live runs.
        cost: Mean cost of the settled runs under the new policy (their
            attempts up to the new answering tier); ``None`` if unknown.
        live_cost: Their mean live cost.
    """

    thresholds: tuple[float, ...]
    n_runs: int
    tier_counts: tuple[int, ...]
    unknown: int
    escalation_rate: float
    live_escalation_rate: float
    cost: float | None
    live_cost: float | None


def _find_cascade(value: Any) -> dict[str, Any] | None:
    """The ``response_metadata["cascade"]`` dict inside a logged run's outputs."""
    if isinstance(value, dict):
        found = value.get("cascade")
        if isinstance(found, dict) and "attempts" in found:
            return found
        children: Iterator[Any] = iter(value.values())
    elif isinstance(value, list):
        children = iter(value)
    else:
        return None
    for child in children:
        if (hit := _find_cascade(child)) is not None:
            return hit
    return None


def _runs_query(client: Any) -> Any:
    """The client's synchronous v2 runs query (``POST /api/v2/runs/query``).

    It replaces ``client.list_runs`` (v1 ``POST /runs/query``), which langsmith
    0.15 deprecates: "will be removed after Jan 31, 2027". The public
    ``client.runs.query`` is async even on the sync client (the migration guide:
    "client.runs.query() is now async"): these sync functions would need an
    event loop per call, which fails inside a running one (a notebook), and the
    client's cached async HTTP client would keep pooled connections of closed
    loops (each later call then fails a request and retries it). langsmith's
    own sync readers (``evaluate``, ``get_test_results``) query through this
    synchronous twin, which the client reaches by a private accessor.
    """
    sync = getattr(client, "_get_langsmith_api_sync", None)
    if sync is None:
        import langsmith  # noqa: PLC0415

        msg = (
            f"langsmith {langsmith.__version__} has no synchronous runs query "
            "(Client._get_langsmith_api_sync); the LangSmith readers of "
            "langchain_cascade.collect need a client that has it (0.14.9 to 0.15.1 do)"
        )
        raise RuntimeError(msg)
    return sync().runs.query


def _llm_runs(
    client: Any, project: Any, selects: Sequence[str], **query: Any
) -> Iterator[Any]:
    """The chat-model runs of a project, every page, with the fields ``selects``.

    The v2 query reads the runs started within a window (by default the last
    day; ``list_runs`` read them all), so the window here spans the project's
    life: from its creation, less a day (a tracing project is created when its
    first run arrives, after that run started, and run times are the tracing
    client's clock), to a day from now (the same clocks).
    """
    import datetime  # noqa: PLC0415 - used by the LangSmith readers only

    slack = datetime.timedelta(days=1)
    yield from _runs_query(client)(
        project_ids=[str(project.id)],
        run_type="LLM",
        selects=list(selects),
        min_start_time=project.start_time - slack,
        max_start_time=datetime.datetime.now(datetime.UTC) + slack,
        **query,
    )


def logged_cascades(project_name: str, *, client: Any = None) -> list[dict[str, Any]]:
    """Every cascade call's metadata logged to a LangSmith project.

    Reads the project's chat-model runs, every page, through the langsmith
    client's runs query (LangSmith's v2 ``POST /api/v2/runs/query``, which
    self-hosted LangSmith serves from v0.16) and keeps those whose answer
    carries ``response_metadata["cascade"]`` (the attempts, with each gate's
    score, verdict and cost).

    Args:
        project_name: The project (tracing project or experiment).
        client: A ``langsmith.Client`` (default: one from the environment).

    Returns:
        The metadata dicts, in the order the project returns them.

    Raises:
        langsmith.utils.LangSmithNotFoundError: When there is no such project.
    """
    import langsmith  # noqa: PLC0415

    client = client if client is not None else langsmith.Client()
    project = client.read_project(project_name=project_name)
    out = []
    for run in _llm_runs(client, project, ["ID", "OUTPUTS"]):
        found = _find_cascade(run.outputs)
        if found is not None:
            out.append(found)
    return out


def replay_thresholds(
    project_name: str, thresholds: Sequence[float], *, client: Any = None
) -> ReplayResult:
    """Re-scores alternative thresholds on cascade runs logged to LangSmith.

    No model is called: each logged attempt's gate score is compared with the
    new threshold of its tier (a missing score, as when a gate raised or a
    tier failed, never passes). A run the new policy accepts earlier than the
    live call did is settled from the log (its answer and costs are there); a
    run it would escalate past the last logged tier is counted ``unknown``.

    Args:
        project_name: The LangSmith project holding the cascade's runs.
        thresholds: One per non-final tier.
        client: A ``langsmith.Client``.

    Returns:
        The replay's counts and costs.

    Raises:
        ValueError: When the project holds no cascade runs or the runs have
            another number of tiers.
    """
    metas = logged_cascades(project_name, client=client)
    if not metas:
        msg = f"no cascade runs in LangSmith project {project_name!r}"
        raise ValueError(msg)
    thr = [float(t) for t in thresholds]
    counts = [0] * (len(thr) + 1)
    unknown = 0
    costs: list[float | None] = []
    live_costs: list[float | None] = []
    live_escalated = []
    for meta in metas:
        attempts = {int(a["tier"]): a for a in meta["attempts"]}
        stop = _replayed_stop(attempts, thr)
        if stop is None:
            unknown += 1
            continue
        counts[stop] += 1
        spent = [
            sum_known([attempts[t].get("cost"), attempts[t].get("gate_cost")])
            for t in range(stop + 1)
        ]
        costs.append(sum_known(spent))
        live_costs.append(meta.get("cost", {}).get("total"))
        live_escalated.append(bool(meta.get("escalated")))
    settled = sum(counts)

    def mean(values: list[float | None]) -> float | None:
        known = sum_known(values)
        return None if known is None or not values else known / len(values)

    return ReplayResult(
        thresholds=tuple(thr),
        n_runs=len(metas),
        tier_counts=tuple(counts),
        unknown=unknown,
        escalation_rate=(settled - counts[0]) / settled if settled else math.nan,
        live_escalation_rate=(
            sum(live_escalated) / len(live_escalated) if live_escalated else math.nan
        ),
        cost=mean(costs),
        live_cost=mean(live_costs),
    )


def _replayed_stop(
    attempts: Mapping[int, Mapping[str, Any]], thr: Sequence[float]
) -> int | None:
    """The tier the new thresholds answer at, or ``None`` when the log cannot say."""
    last = len(thr)
    for tier in range(last + 1):
        attempt = attempts.get(tier)
        if attempt is None:
            return None
        if tier == last:
            return tier
        score = attempt.get("score")
        passes = (
            attempt.get("error") is None
            and score is not None
            and not str(attempt.get("reason", "")).startswith(
                ("gate raised", "structured output")
            )
            and float(score) >= thr[tier]
        )
        if passes:
            return tier
    return None


def _revived(value: Any) -> Any:
    """Logged messages, revived as messages only (logged traffic is not trusted)."""
    from langchain_core.load import load  # noqa: PLC0415

    return load(value, allowed_objects="messages")


def _tier_answer(run: Any) -> tuple[list[BaseMessage], AIMessage] | None:
    """The conversation and answer of one logged tier run (``None`` if absent)."""
    try:
        batches = (run.inputs or {}).get("messages") or []
        messages = [m for m in _revived(batches[0]) if isinstance(m, BaseMessage)]
        generation = run.outputs["generations"][0][0]
        message = _revived(generation["message"])
    except (KeyError, IndexError, TypeError, ValueError):
        return None
    return (messages, message) if isinstance(message, AIMessage) else None


def replay_gates(
    project_name: str,
    gates: Sequence[GateLike],
    *,
    client: Any = None,
) -> list[list[float]]:
    """Scores other gates on the tier answers logged to a LangSmith project.

    For every cascade run in the project, each tier's logged answer (the run
    tagged ``cascade:tier:<i>`` under it) is judged by ``gates[i]`` offline: no
    model is called, except by a gate that calls one itself. A tier the live
    call never reached scores NaN; a gate that raises scores ``-inf``. With
    :func:`replay_thresholds`-style reasoning on these scores (or
    ``calibrate`` when the runs have labels) a user can ask what another gate
    would have done on last week's traffic.

    The runs are read as :func:`logged_cascades` reads them, then each
    trace's chat-model runs once, for the tier answers.

    Args:
        project_name: The LangSmith project.
        gates: One gate per non-final tier.
        client: A ``langsmith.Client``.

    Returns:
        One row per cascade run, one score per non-final tier.

    Raises:
        langsmith.utils.LangSmithNotFoundError: When there is no such project.
    """
    import langsmith  # noqa: PLC0415

    client = client if client is not None else langsmith.Client()
    judged = [coerce_gate(g, where=f"gates[{i}]") for i, g in enumerate(gates)]
    project = client.read_project(project_name=project_name)
    rows: dict[str, list[float]] = {}  # by cascade run id, in the project's order
    traces: dict[str, None] = {}  # their traces, each read once below
    for run in _llm_runs(client, project, ["ID", "TRACE_ID", "OUTPUTS"]):
        if _find_cascade(run.outputs) is not None:
            rows[run.id] = [math.nan] * len(judged)
            traces[run.trace_id] = None
    answers = ["ID", "PARENT_RUN_IDS", "TAGS", "INPUTS", "OUTPUTS"]
    for trace_id in traces:
        for child in _llm_runs(client, project, answers, trace_id=trace_id):
            parents = child.parent_run_ids or []  # from the trace's root down
            row = rows.get(parents[-1]) if parents else None
            tags = [t for t in child.tags or [] if t.startswith("cascade:tier:")]
            if row is None or not tags:
                continue
            tier = int(tags[0].rsplit(":", 1)[1])
            found = _tier_answer(child)
            if tier >= len(judged) or found is None:
                continue
            messages, answer = found
            gate_input = GateInput(messages=messages, response=answer, tier=tier)
            try:
                result = judged[tier].invoke(gate_input)
            except Exception:  # noqa: BLE001 - fails closed, as live
                row[tier] = -math.inf
                continue
            row[tier] = (
                float(result.passed) if result.score is None else float(result.score)
            )
    return list(rows.values())
