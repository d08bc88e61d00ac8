"""``LearnedGate``: a fitted probability that the answer is right.

A :class:`LearnedGate` combines the scores of other gates (any of the package's
gates, or your own) and a few cheap generic features of the answer
(:func:`answer_features`: its length, token count and logprob aggregates) into
one number: the probability, learned from labelled data, that the answer is
right. The model is scikit-learn's logistic regression on standardised inputs,
with its probabilities calibrated (``CalibratedClassifierCV``, sigmoid by
default) so the score means what it says.

Fitting needs the ``learn`` extra (``pip install -e ".[learn]"`` from a checkout)
and the output of :func:`~langchain_cascade.collect.collect` run with the input
gates as ``candidates``; :func:`fit_learned_gates` takes that data to one fitted
gate per non-final tier. A fitted gate is saved to and loaded from a small JSON
file and scores answers with the standard library alone (no scikit-learn at
run time), so it drops into a cascade like any gate, and its scores of the
collected data (:func:`learned_scores`) go to
:func:`~langchain_cascade.calibration.calibrate` to choose its threshold.

Example:
    .. code-block:: python

        from langchain_cascade.collect import collect
        from langchain_cascade.gates import HedgingGate, LogprobGate
        from langchain_cascade.gates.learned import fit_learned_gates, learned_scores

        inputs = {"hedging": HedgingGate(), "logprob": LogprobGate(threshold=0.5)}
        data = collect(cascade, examples, evaluate, candidates=inputs)
        gates = fit_learned_gates(data, inputs)
        result = calibrate(learned_scores(data, gates), data.correct, data.costs)
        for gate, threshold in zip(gates, result.thresholds):
            gate.threshold = threshold
        gates[0].save("tier0.json")
        cascade = cascade.model_copy(update={"gates": gates})
"""

from __future__ import annotations

import bisect
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableConfig
from pydantic import Field, field_validator
from typing_extensions import TypedDict

from langchain_cascade.gates.base import (
    Gate,
    GateInput,
    GateLike,
    GateResult,
    coerce_gate,
)
from langchain_cascade.gates.logprob import token_logprobs

if TYPE_CHECKING:
    import os

    from numpy.typing import NDArray

    from langchain_cascade.collect import CollectedScores

__all__ = [
    "GENERIC_FEATURES",
    "Calibrator",
    "Fold",
    "LearnedGate",
    "answer_features",
    "fit_learned_gates",
    "learned_scores",
    "out_of_fold_scores",
]

GENERIC_FEATURES = ("answer_chars", "output_tokens", "logprob_mean", "logprob_min")
"""The cheap generic features :func:`answer_features` computes for every answer."""

_FORMAT = "langchain-cascade/learned-gate"
_VERSION = 1


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


class Calibrator(TypedDict):
    """How one fold maps the regression's decision value to a probability.

    ``sigmoid``: ``p = 1 / (1 + exp(a * d + b))`` (Platt scaling);
    ``isotonic``: piecewise-linear through the points ``(x, y)``.
    """

    kind: Literal["sigmoid", "isotonic"]
    a: float
    b: float
    x: list[float]
    y: list[float]


class Fold(TypedDict):
    """One cross-validation fold: a logistic regression and its calibrator."""

    coef: list[float]
    intercept: float
    calibrator: Calibrator


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def _calibrated(calibrator: Calibrator, d: float) -> float:
    if calibrator["kind"] == "sigmoid":
        return _sigmoid(-(calibrator["a"] * d + calibrator["b"]))
    xs, ys = calibrator["x"], calibrator["y"]
    if d <= xs[0]:
        return ys[0]
    if d >= xs[-1]:
        return ys[-1]
    j = bisect.bisect_right(xs, d)
    x0, x1, y0, y1 = xs[j - 1], xs[j], ys[j - 1], ys[j]
    return y0 if x1 == x0 else y0 + (y1 - y0) * (d - x0) / (x1 - x0)


class LearnedGate(Gate):
    """A gate whose score is a fitted probability that the answer is right.

    It runs its ``inputs`` gates on the answer (a raising input scores
    ``-inf``, as in :func:`~langchain_cascade.collect.collect`), reads the
    generic ``features`` of the answer, and feeds them to the fitted model. It
    passes when the probability is at least ``threshold``. An answer missing a
    feature (e.g. no logprobs) fails closed.

    Build one with :func:`fit_learned_gates` or :meth:`load`.
    """

    inputs: dict[str, Gate] = Field(default_factory=dict)
    """The gates whose scores are inputs, by the name they were collected under."""

    features: list[str] = Field(default_factory=list)
    """Generic features used (names from :data:`GENERIC_FEATURES`)."""

    low: list[float]
    """Per input: the lowest value seen in fitting (``-inf`` maps here)."""

    high: list[float]
    """Per input: the highest value seen in fitting (``+inf`` maps here)."""

    mean: list[float]
    scale: list[float]
    folds: list[Fold] = Field(min_length=1)
    threshold: float = 0.5
    """Pass mark on the probability."""

    tier: int | None = None
    """The tier it was fitted for (informational)."""

    @field_validator("inputs", mode="before")
    @classmethod
    def _coerce_inputs(cls, value: Mapping[str, GateLike]) -> dict[str, Gate]:
        return {
            str(k): coerce_gate(g, where=f"inputs[{k!r}]") for k, g in value.items()
        }

    @property
    def columns(self) -> list[str]:
        """The model's inputs in order: the gates' names, then the features."""
        return [*self.inputs, *self.features]

    def probability(self, row: Sequence[float]) -> float:
        """The fitted probability for one row of inputs (in :attr:`columns` order).

        Args:
            row: Raw input values; infinities are clipped to the fitted range.

        Returns:
            The probability that the answer is right.

        Raises:
            ValueError: When a value is NaN or the row has the wrong length.
        """
        if len(row) != len(self.columns):
            msg = f"expected {len(self.columns)} inputs {self.columns}, got {len(row)}"
            raise ValueError(msg)
        z = []
        for j, value in enumerate(row):
            if math.isnan(value):
                msg = f"input {self.columns[j]!r} is NaN"
                raise ValueError(msg)
            clipped = min(max(value, self.low[j]), self.high[j])
            z.append((clipped - self.mean[j]) / self.scale[j])
        total = 0.0
        for fold in self.folds:
            d = sum(w * x for w, x in zip(fold["coef"], z, strict=True))
            total += _calibrated(fold["calibrator"], d + fold["intercept"])
        return total / len(self.folds)

    def _row(self, gate_input: GateInput, config: RunnableConfig) -> list[float]:
        row = []
        for gate in self.inputs.values():
            try:
                result = gate.evaluate(gate_input, config)
            except Exception:  # noqa: BLE001 - an input that raises fails closed
                row.append(-math.inf)
                continue
            row.append(
                float(result.passed) if result.score is None else float(result.score)
            )
        features = answer_features(gate_input.response)
        row.extend(features[name] for name in self.features)
        return row

    def evaluate(self, gate_input: GateInput, config: RunnableConfig) -> GateResult:
        """Score the answer with the fitted model."""
        row = self._row(gate_input, config)
        missing = [c for c, v in zip(self.columns, row, strict=True) if math.isnan(v)]
        if missing:
            return GateResult(
                passed=False, reason=f"learned gate: no value for {missing}"
            )
        p = self.probability(row)
        passed = p >= self.threshold
        return GateResult(
            passed=passed,
            score=p,
            reason=f"learned p={p:.3f} {'>=' if passed else '<'} {self.threshold:.3g}",
            details=dict(zip(self.columns, row, strict=True)),
        )

    # --- persistence -----------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The fitted model as JSON-ready data (the input gates by name only)."""
        return {
            "format": _FORMAT,
            "version": _VERSION,
            "tier": self.tier,
            "inputs": list(self.inputs),
            "features": list(self.features),
            "low": self.low,
            "high": self.high,
            "mean": self.mean,
            "scale": self.scale,
            "folds": self.folds,
            "threshold": self.threshold,
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Writes :meth:`to_dict` to a JSON file.

        Args:
            path: The file.

        Returns:
            The path written.
        """
        out = Path(path)
        out.write_text(json.dumps(self.to_dict(), indent=1) + "\n", encoding="utf-8")
        return out

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], inputs: Mapping[str, GateLike] | None = None
    ) -> LearnedGate:
        """Reads a gate written by :meth:`save`.

        Args:
            path: The JSON file.
            inputs: The input gates by the names the file lists (gates are
                code, not data, so they are given again).

        Returns:
            The gate.

        Raises:
            ValueError: When the file is not a learned gate or an input is missing.
        """
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if data.get("format") != _FORMAT:
            msg = f"{path} is not a learned gate file"
            raise ValueError(msg)
        given = dict(inputs or {})
        if missing := [n for n in data["inputs"] if n not in given]:
            msg = f"{path} needs the input gate(s) {missing}: pass inputs={{...}}"
            raise ValueError(msg)
        return cls(
            inputs={n: given[n] for n in data["inputs"]},
            features=data["features"],
            low=data["low"],
            high=data["high"],
            mean=data["mean"],
            scale=data["scale"],
            folds=data["folds"],
            threshold=float(data["threshold"]),
            tier=data.get("tier"),
        )

    def score_matrix(self, x: NDArray[Any]) -> NDArray[Any]:
        """Probabilities for rows of raw inputs (``(rows, columns)``; NaN -> NaN).

        Args:
            x: The inputs, columns in :attr:`columns` order.

        Returns:
            One probability per row.
        """
        import numpy as np  # noqa: PLC0415 - the calibration extra

        out = np.full(x.shape[0], np.nan)
        for i, row in enumerate(x):
            if not np.isnan(row).any():
                out[i] = self.probability([float(v) for v in row])
        return out


# --------------------------------------------------------------------------
# fitting
# --------------------------------------------------------------------------


def _design(
    data: CollectedScores, tier: int, names: Sequence[str], features: Sequence[str]
) -> NDArray[Any]:
    import numpy as np  # noqa: PLC0415

    columns = []
    for name in names:
        if name not in data.candidate_scores:
            msg = (
                f"no candidate gate {name!r} in the collected data (it has "
                f"{sorted(data.candidate_scores)}): collect with candidates={{...}}"
            )
            raise ValueError(msg)
        columns.append(data.candidate_scores[name][:, tier])
    for name in features:
        if name not in data.features:
            msg = f"no feature {name!r} in the collected data"
            raise ValueError(msg)
        columns.append(data.features[name][:, tier])
    return np.column_stack(columns) if columns else np.zeros((data.n_queries, 0))


def _fit_one(
    x: NDArray[Any],
    y: NDArray[Any],
    *,
    c: float,
    method: Literal["sigmoid", "isotonic"],
    cv: int,
) -> dict[str, Any]:
    """Fit the clip range, scaler and calibrated regression on rows ``x``."""
    import numpy as np  # noqa: PLC0415
    from sklearn.calibration import CalibratedClassifierCV  # noqa: PLC0415
    from sklearn.linear_model import LogisticRegression  # noqa: PLC0415

    finite = np.where(np.isfinite(x), x, np.nan)
    low = np.nanmin(finite, axis=0)
    high = np.nanmax(finite, axis=0)
    low = np.where(np.isnan(low), 0.0, low)
    high = np.where(np.isnan(high), 0.0, high)
    clipped = np.clip(x, low, high)
    mean = clipped.mean(axis=0)
    scale = clipped.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    z = (clipped - mean) / scale
    labels = (y >= 0.5).astype(int)
    counts = np.bincount(labels, minlength=2)
    if counts.min() < 2:
        msg = (
            f"cannot fit: {int(counts[1])} right and {int(counts[0])} wrong answers; "
            "a learned gate needs both"
        )
        raise ValueError(msg)
    folds = max(2, min(cv, int(counts.min())))
    model = CalibratedClassifierCV(
        LogisticRegression(C=c, max_iter=1000), method=method, cv=folds
    )
    model.fit(z, labels)
    fitted: list[Fold] = []
    for part in model.calibrated_classifiers_:
        regression = part.estimator
        calibrator = part.calibrators[0]
        if method == "sigmoid":
            cal = Calibrator(
                kind="sigmoid",
                a=float(calibrator.a_),
                b=float(calibrator.b_),
                x=[],
                y=[],
            )
        else:
            cal = Calibrator(
                kind="isotonic",
                a=0.0,
                b=0.0,
                x=[float(v) for v in calibrator.X_thresholds_],
                y=[float(v) for v in calibrator.y_thresholds_],
            )
        fitted.append(
            Fold(
                coef=[float(w) for w in regression.coef_[0]],
                intercept=float(regression.intercept_[0]),
                calibrator=cal,
            )
        )
    return {
        "low": [float(v) for v in low],
        "high": [float(v) for v in high],
        "mean": [float(v) for v in mean],
        "scale": [float(v) for v in scale],
        "folds": fitted,
        "sklearn": model,
        "z": z,
    }


def _rows(x: NDArray[Any], tier: int, columns: Sequence[str]) -> NDArray[Any]:
    """The rows to fit on: answered ones; NaN elsewhere is an error."""
    import numpy as np  # noqa: PLC0415

    answered = ~np.isnan(x).all(axis=1) if x.shape[1] else np.ones(len(x), bool)
    bad = np.isnan(x) & answered[:, None]
    if bad.any():
        row, col = (int(v[0]) for v in np.nonzero(bad))
        msg = (
            f"tier {tier}: {columns[col]!r} is NaN at row {row} "
            f"({int(bad.sum())} value(s)); drop that input or feature"
        )
        raise ValueError(msg)
    return answered


def fit_learned_gates(
    data: CollectedScores,
    inputs: Mapping[str, GateLike],
    *,
    features: Sequence[str] = (),
    tiers: Sequence[int] | None = None,
    c: float = 1.0,
    method: Literal["sigmoid", "isotonic"] = "sigmoid",
    cv: int = 5,
) -> list[LearnedGate]:
    """Fits one :class:`LearnedGate` per non-final tier on collected data.

    For tier ``i``, the inputs are the scores of ``inputs`` on tier ``i``'s
    answers (collected as ``candidates``) and the generic ``features``; the
    label is whether the answer was right (``correct >= 0.5``). Rows where the
    tier raised (no answer) are left out.

    Args:
        data: :func:`~langchain_cascade.collect.collect` output.
        inputs: The input gates by the names they were collected under
            (``"gate"`` is the cascade's own gate).
        features: Generic features to add (from :data:`GENERIC_FEATURES`).
        tiers: The tiers to fit (default: every non-final tier).
        c: Inverse regularisation strength of the logistic regression.
        method: Probability calibration: ``"sigmoid"`` or ``"isotonic"``.
        cv: Cross-validation folds of the calibration.

    Returns:
        One gate per tier, threshold 0.5 (choose it with ``calibrate``).

    Raises:
        ValueError: When an input or feature is missing or NaN on an answered
            row, or a tier's answers are all right or all wrong.
    """
    names = list(inputs)
    gates = {n: coerce_gate(g, where=f"inputs[{n!r}]") for n, g in inputs.items()}
    if unknown := [f for f in features if f not in GENERIC_FEATURES]:
        msg = f"unknown feature(s) {unknown}; choose from {list(GENERIC_FEATURES)}"
        raise ValueError(msg)
    if not names and not features:
        msg = "a learned gate needs at least one input gate or feature"
        raise ValueError(msg)
    chosen = list(range(data.n_tiers - 1)) if tiers is None else list(tiers)
    out = []
    for tier in chosen:
        x = _design(data, tier, names, features)
        keep = _rows(x, tier, [*names, *features])
        fit = _fit_one(x[keep], data.correct[keep, tier], c=c, method=method, cv=cv)
        out.append(
            LearnedGate(
                name=f"learned tier {tier}",
                inputs=gates,
                features=list(features),
                low=fit["low"],
                high=fit["high"],
                mean=fit["mean"],
                scale=fit["scale"],
                folds=fit["folds"],
                tier=tier,
            )
        )
    return out


def learned_scores(data: CollectedScores, gates: Sequence[LearnedGate]) -> NDArray[Any]:
    """The ``(queries, tiers)`` scores of learned gates on collected data.

    Gate ``j`` scores tier ``gates[j].tier`` (or ``j``); a row where the tier
    raised scores ``-inf``; the final column is NaN. Pass the result to
    :func:`~langchain_cascade.calibration.calibrate` as ``scores``. Score data
    the gates were not fitted on (or out-of-fold) for honest thresholds.

    Args:
        data: Collected data holding the gates' inputs.
        gates: One gate per non-final tier.

    Returns:
        The scores.
    """
    import numpy as np  # noqa: PLC0415

    scores = np.full((data.n_queries, data.n_tiers), np.nan)
    for j, gate in enumerate(gates):
        tier = j if gate.tier is None else gate.tier
        x = _design(data, tier, list(gate.inputs), gate.features)
        column = gate.score_matrix(x)
        scores[:, tier] = np.where(np.isnan(column), -np.inf, column)
    return scores


def out_of_fold_scores(
    data: CollectedScores,
    inputs: Mapping[str, GateLike],
    *,
    features: Sequence[str] = (),
    folds: int = 5,
    seed: int = 0,
    **fit_kwargs: Any,
) -> NDArray[Any]:
    """Learned-gate scores of every row by a gate fitted without that row.

    Cuts the rows into ``folds`` seeded folds; each fold is scored by gates
    fitted on the others. Calibrating thresholds on these scores, then fitting
    the final gates on all rows (:func:`fit_learned_gates`), keeps the
    threshold from seeing in-sample scores.

    Args:
        data: Collected data.
        inputs: As for :func:`fit_learned_gates`.
        features: As for :func:`fit_learned_gates`.
        folds: Number of folds.
        seed: Seed of the fold assignment.
        **fit_kwargs: Passed to :func:`fit_learned_gates`.

    Returns:
        ``(queries, tiers)`` scores, like :func:`learned_scores`.
    """
    import numpy as np  # noqa: PLC0415

    from langchain_cascade.collect import CollectedScores  # noqa: PLC0415

    rng = np.random.default_rng(seed)
    assignment = rng.permutation(data.n_queries) % folds
    scores = np.full((data.n_queries, data.n_tiers), np.nan)
    for k in range(folds):
        train, test = data.subset(assignment != k), data.subset(assignment == k)
        assert isinstance(train, CollectedScores)  # noqa: S101
        gates = fit_learned_gates(train, inputs, features=features, **fit_kwargs)
        scores[assignment == k] = learned_scores(test, gates)
    return scores
