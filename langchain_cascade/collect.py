"""Collect the data :func:`~langchain_cascade.calibration.calibrate` needs.

:func:`collect` runs *every* tier of a cascade and *every* non-final gate on a
labelled dataset, not only the tiers a live cascade would reach, and records for
each example and tier: the gate's score, whether the answer is right (by your own
``evaluate`` function), what the call and the gate cost, and how long each took.
The result, :class:`CollectedScores`, holds them as ``(queries, tiers)`` arrays
and fits thresholds with :meth:`CollectedScores.calibrate`.

Long runs survive interruptions: with ``path``, each finished example is appended
to a JSON-lines file at once, and a rerun skips every example already there
(matched by its index and a hash of its input).

Needs the ``calibration`` extra (numpy; matplotlib for plots):
``pip install "langchain-cascade[calibration]"``. numpy is imported only when
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

import functools
import hashlib
import json
import math
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TextIO

from langchain_core.callbacks import UsageMetadataCallbackHandler
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    UsageMetadata,
    convert_to_messages,
    messages_to_dict,
)
from langchain_core.prompt_values import PromptValue
from langchain_core.runnables import RunnableConfig

from langchain_cascade.gates.base import GateInput
from langchain_cascade.pricing import PriceTable, price_of

if TYPE_CHECKING:
    import os

    from numpy.typing import ArrayLike, NDArray

    from langchain_cascade.calibration import CalibrationResult, PolicyEvaluation
    from langchain_cascade.chat_models import CascadingChatModel

__all__ = [
    "CollectedScores",
    "Evaluator",
    "ExampleRecord",
    "TierRecord",
    "collect",
    "input_hash",
    "read_jsonl",
]

Evaluator = Callable[[AIMessage, Any], float]
"""``evaluate(answer, reference) -> correctness in [0, 1]`` (a bool is fine)."""

_FORMAT_VERSION = 1


# --------------------------------------------------------------------------
# records
# --------------------------------------------------------------------------


def _nan_if_none(value: float | None) -> float:
    return math.nan if value is None else float(value)


def _none_if_nan(value: float) -> float | None:
    return None if math.isnan(value) else value


@dataclass(frozen=True)
class TierRecord:
    """What one tier did on one example.

    Attributes:
        tier: The tier's index, ``0`` for the cheapest.
        model: The tier's model name.
        score: The gate's score (a score-less verdict counts 1.0 if it passed,
            else 0.0). For the final tier, which has no gate, the review gate's
            score, or NaN without one.
        correct: The evaluator's verdict on the answer, in ``[0, 1]``.
        cost: The call's cost in dollars; NaN when the model has no price or
            the answer no ``usage_metadata``.
        gate_cost: What the gate's own model calls cost; ``0.0`` when it made
            none, NaN when one of them has no price, and NaN for the final tier.
        latency_s: Seconds the tier's call took.
        gate_latency_s: Seconds the gate took (NaN for the final tier).
        passed: Whether the gate passed the answer (``None`` for the final tier).
        reason: The gate's reason.
        answer: The answer's text, for inspection.
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

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data; NaN becomes ``None``."""
        return {
            "tier": self.tier,
            "model": self.model,
            "score": _none_if_nan(self.score),
            "correct": self.correct,
            "cost": _none_if_nan(self.cost),
            "gate_cost": _none_if_nan(self.gate_cost),
            "latency_s": round(self.latency_s, 6),
            "gate_latency_s": _none_if_nan(round(self.gate_latency_s, 6)),
            "passed": self.passed,
            "reason": self.reason,
            "answer": self.answer,
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
    """

    scores: NDArray[Any]
    correct: NDArray[Any]
    costs: NDArray[Any]
    gate_costs: NDArray[Any]
    latencies: NDArray[Any]
    gate_latencies: NDArray[Any]
    model_names: tuple[str, ...] = ()
    indices: tuple[int, ...] = ()

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
        )

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
            **kwargs: ``min_quality``, ``max_cost`` or ``max_grid``.

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
        with out.open("wb") as handle:
            np.savez(
                handle,
                scores=self.scores,
                correct=self.correct,
                costs=self.costs,
                gate_costs=self.gate_costs,
                latencies=self.latencies,
                gate_latencies=self.gate_latencies,
                model_names=np.asarray(self.model_names, dtype=str),
                indices=np.asarray(self.indices, dtype=np.int64),
            )
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
        return cls(**arrays, model_names=names, indices=indices)


# --------------------------------------------------------------------------
# progress
# --------------------------------------------------------------------------


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    minutes, secs = divmod(int(seconds + 0.5), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


class _Progress:
    """A one-line progress bar on a stream (stderr by default).

    On a terminal the line is redrawn in place; otherwise a line is written at
    most every ``interval_s`` seconds, and at the end.
    """

    def __init__(
        self,
        total: int,
        *,
        done: int = 0,
        stream: TextIO | None = None,
        enabled: bool = True,
        width: int = 30,
        interval_s: float = 10.0,
    ) -> None:
        self.total = total
        self.done = done
        self.start_done = done
        self.failed = 0
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled and total > 0
        self.width = width
        self.interval_s = interval_s
        self.started = time.monotonic()
        self.last_write = -math.inf
        self.written = -1
        isatty = getattr(self.stream, "isatty", None)
        self.tty = bool(isatty and isatty())

    def _line(self) -> str:
        share = self.done / self.total if self.total else 1.0
        filled = int(self.width * share)
        elapsed = time.monotonic() - self.started
        new = self.done - self.start_done
        remaining = (self.total - self.done) * elapsed / new if new else math.inf
        failed = f" ({self.failed} failed)" if self.failed else ""
        return (
            f"collect [{'#' * filled}{'.' * (self.width - filled)}] "
            f"{self.done}/{self.total} {share:4.0%}{failed} "
            f"elapsed {_duration(elapsed)} eta {_duration(remaining)}"
        )

    def update(self, *, failed: bool = False) -> None:
        self.done += 1
        self.failed += int(failed)
        self._draw(final=False)

    def _draw(self, *, final: bool) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if self.tty:
            self.stream.write("\r" + self._line() + ("\n" if final else ""))
        elif (final and self.written != self.done) or (
            now - self.last_write >= self.interval_s
        ):
            self.stream.write(self._line() + "\n")
        else:
            return
        self.last_write, self.written = now, self.done
        self.stream.flush()

    def close(self) -> None:
        self._draw(final=True)


# --------------------------------------------------------------------------
# collecting
# --------------------------------------------------------------------------


def _usage_cost(prices: PriceTable, usage: UsageMetadata | None, model: str) -> float:
    return _nan_if_none(price_of(prices, model, usage))


def _gate_cost(prices: PriceTable, usage: Mapping[str, UsageMetadata]) -> float:
    """What a gate's model calls cost: 0.0 for none, NaN when one is unpriced."""
    total = 0.0
    for model, part in usage.items():
        total += _usage_cost(prices, part, model)
    return total


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


@dataclass
class _Runner:
    """Runs every tier and gate of ``cascade`` on one example."""

    cascade: CascadingChatModel
    evaluate: Evaluator
    config: RunnableConfig | None
    keep_answers: bool
    names: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.names = self.cascade.model_names

    def _config(self, **extra: Any) -> RunnableConfig:
        config: dict[str, Any] = dict(self.config or {})
        callbacks = config.get("callbacks")
        handlers = extra.pop("handlers", [])
        if handlers:
            if callbacks is None:
                config["callbacks"] = handlers
            elif isinstance(callbacks, list):
                config["callbacks"] = [*callbacks, *handlers]
            else:
                manager = callbacks.copy()
                for handler in handlers:
                    manager.add_handler(handler, inherit=True)
                config["callbacks"] = manager
        tags = [*config.get("tags", []), *extra.pop("tags", [])]
        metadata = {**config.get("metadata", {}), **extra.pop("metadata", {})}
        config.update(tags=tags, metadata=metadata, **extra)
        return config  # type: ignore[return-value]

    def run(self, index: int, value: Any, reference: Any) -> ExampleRecord:
        messages = _to_messages(value)
        cascade = self.cascade
        last = len(cascade.models) - 1
        stop = {"stop": cascade.stop} if cascade.stop else {}
        tiers: list[TierRecord] = []
        for tier, model in enumerate(cascade.models):
            started = time.perf_counter()
            answer = model.invoke(
                messages,
                self._config(
                    run_name=f"collect tier {tier}: {self.names[tier]}",
                    tags=[f"cascade:tier:{tier}", "cascade:collect"],
                    metadata={"cascade_tier": tier, "collect_index": index},
                ),
                **stop,
            )
            latency = time.perf_counter() - started
            if not isinstance(answer, AIMessage):
                msg = f"tier {tier} returned {type(answer).__name__}, not an AIMessage"
                raise TypeError(msg)
            cost = _usage_cost(cascade.prices, answer.usage_metadata, self.names[tier])
            correct = _check_correct(self.evaluate(answer, reference), index, tier)
            score = gate_cost = gate_latency = math.nan
            passed: bool | None = None
            reason = ""
            # The final tier has no gate; its review gate, if any, scores it.
            gate = cascade.gates[tier] if tier < last else cascade.review_gate
            if gate is not None:
                usage = UsageMetadataCallbackHandler()
                gate_input = GateInput(
                    messages=messages,
                    response=answer,
                    tier=tier,
                    model=self.names[tier],
                    chat_model=model,
                )
                started = time.perf_counter()
                result = gate.invoke(
                    gate_input,
                    self._config(
                        run_name=gate.gate_name,
                        tags=["cascade:gate", "cascade:collect"],
                        metadata={"cascade_tier": tier, "collect_index": index},
                        handlers=[usage],
                    ),
                )
                gate_latency = time.perf_counter() - started
                score = float(result.passed) if result.score is None else result.score
                gate_cost = _gate_cost(cascade.prices, usage.usage_metadata)
                passed, reason = result.passed, result.reason
            tiers.append(
                TierRecord(
                    tier=tier,
                    model=self.names[tier],
                    score=float(score),
                    correct=correct,
                    cost=cost,
                    gate_cost=gate_cost,
                    latency_s=latency,
                    gate_latency_s=gate_latency,
                    passed=passed,
                    reason=reason,
                    answer=answer.text if self.keep_answers else "",
                )
            )
        return ExampleRecord(
            index=index, input_hash=input_hash(value), tiers=tuple(tiers)
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
    bar: _Progress
    results: dict[int, ExampleRecord]
    first_error: BaseException | None = None
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
            elif self.first_error is None:
                self.first_error = error
            self.bar.update(failed=error is not None)

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
    cascade: CascadingChatModel,
    examples: Sequence[tuple[Any, Any]],
    evaluate: Evaluator,
    *,
    path: str | os.PathLike[str] | None = None,
    progress: bool = True,
    max_concurrency: int = 4,
    on_error: Literal["raise", "skip"] = "raise",
    keep_answers: bool = True,
    config: RunnableConfig | None = None,
) -> CollectedScores:
    """Runs every tier and every non-final gate of ``cascade`` on labelled examples.

    For each example and tier: invoke ``cascade.models[i]``, judge the answer
    with ``evaluate(answer, reference)``, run ``cascade.gates[i]`` on it (not for
    the last tier) and record score, correctness, cost, gate cost and latency.
    Costs come from ``cascade.prices`` and the answers' ``usage_metadata``; the
    gate's model calls are counted with a ``UsageMetadataCallbackHandler``.
    Tiers of one example run in order; up to ``max_concurrency`` examples run
    at once, in threads.

    With ``path``, each finished example is appended to that JSON-lines file at
    once, and examples already there (same index, same input hash) are not run
    again: rerun the same call after an interruption to finish the job.

    Args:
        cascade: The cascade whose tiers and gates to run (at least 2 tiers).
        examples: ``(input, reference)`` pairs; ``input`` is anything the chat
            model accepts (a string, a PromptValue, a list of messages).
        evaluate: ``evaluate(answer, reference) -> float`` in ``[0, 1]``.
        path: Optional JSON-lines file to append results to and resume from.
        progress: Draw a progress bar on stderr.
        max_concurrency: Examples run at once.
        on_error: ``"raise"``: stop at the first example that raises (finished
            examples are kept in ``path``) and re-raise. ``"skip"``: leave it out
            of the result (a rerun with ``path`` retries it).
        keep_answers: Store each answer's text in the file.
        config: Optional base config (callbacks, tags) for every call.

    Returns:
        The arrays, rows in example order (finished examples only).

    Raises:
        ValueError: When the cascade has one tier, ``path`` holds results of
            other inputs, or ``evaluate`` returns a value outside ``[0, 1]``.
        Exception: With ``on_error="raise"``, whatever a model, gate or
            ``evaluate`` raised.
    """
    if len(cascade.models) < 2:
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
    pairs = _check_pairs(examples)
    out = Path(path) if path is not None else None
    done: dict[int, ExampleRecord] = {}
    if out is not None:
        done = _resume(out, [input_hash(value) for value, _ in pairs])
        out.parent.mkdir(parents=True, exist_ok=True)
        _repair_tail(out)
    run = _Collection(
        runner=_Runner(cascade, evaluate, config, keep_answers),
        pairs=pairs,
        out=out,
        bar=_Progress(len(pairs), done=len(done), enabled=progress),
        results=dict(done),
    )
    todo = [i for i in range(len(pairs)) if i not in done]
    run.run(todo, max_concurrency, stop=on_error == "raise")
    if run.first_error is not None:
        if on_error == "raise":
            raise run.first_error
        warnings.warn(
            f"collect: {run.bar.failed} example(s) raised and were left out "
            f"(first: {type(run.first_error).__name__}: {run.first_error}); "
            + ("rerun with the same path to retry them" if out else "they are lost"),
            stacklevel=2,
        )
    if not run.results:
        msg = "no example finished: nothing was collected"
        raise ValueError(msg)
    return CollectedScores.from_records(
        list(run.results.values()), model_names=cascade.model_names
    )
