"""langchain-cascade: LLM cascading as a LangChain chat model.

Try a cheap model first, check its answer with a quality gate, and escalate to a
stronger model only when the answer is not good enough.
"""

from __future__ import annotations

from importlib import metadata
from typing import TYPE_CHECKING, Any

from langchain_cascade import events, types
from langchain_cascade.chat_models import CascadingChatModel
from langchain_cascade.collect import CollectedScores, collect
from langchain_cascade.errors import CascadeError, TierTimeoutError
from langchain_cascade.gates.base import GateInput, GateResult
from langchain_cascade.monitor import CascadeMonitor, MonitorSummary
from langchain_cascade.pricing import ModelPrice
from langchain_cascade.types import (
    AttemptInfo,
    CascadeMetadata,
    CostReport,
    EscalationEvent,
    ReviewEvent,
    SkippedTier,
)

if TYPE_CHECKING:
    from langchain_cascade.calibration import CalibrationResult, calibrate

try:
    __version__ = metadata.version(__package__ or "langchain-cascade")
except metadata.PackageNotFoundError:  # pragma: no cover - running from a checkout
    __version__ = ""

__all__ = [
    "AttemptInfo",
    "CalibrationResult",
    "CascadeError",
    "CascadeMetadata",
    "CascadeMonitor",
    "CascadingChatModel",
    "CollectedScores",
    "CostReport",
    "EscalationEvent",
    "GateInput",
    "GateResult",
    "ModelPrice",
    "MonitorSummary",
    "ReviewEvent",
    "SkippedTier",
    "TierTimeoutError",
    "__version__",
    "calibrate",
    "collect",
    "events",
    "types",
]

_LAZY = {"calibrate", "CalibrationResult"}


def __getattr__(name: str) -> Any:
    # Calibration needs numpy (the ``calibration`` extra): import it on first use.
    if name in _LAZY:
        from langchain_cascade import calibration  # noqa: PLC0415

        return getattr(calibration, name)
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)
