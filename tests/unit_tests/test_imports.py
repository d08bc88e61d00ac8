"""The public names are the ones promised, and they import."""

from __future__ import annotations

import subprocess
import sys

import langchain_cascade
from langchain_cascade import gates

EXPECTED_ALL = {
    "AttemptInfo",
    "CascadeMetadata",
    "CostReport",
    "EscalationEvent",
    "ReviewEvent",
    "SkippedTier",
    "TierTimeoutError",
    "events",
    "types",
    "CalibrationResult",
    "CascadeError",
    "CascadeMonitor",
    "CascadingChatModel",
    "CollectedScores",
    "GateInput",
    "GateResult",
    "ModelPrice",
    "MonitorSummary",
    "__version__",
    "calibrate",
    "collect",
}


def test_all_is_the_promised_api() -> None:
    assert set(langchain_cascade.__all__) == EXPECTED_ALL
    for name in langchain_cascade.__all__:
        assert getattr(langchain_cascade, name) is not None


def test_gates_all_resolves() -> None:
    for name in (
        "LogprobGate",
        "HedgingGate",
        "MinLengthGate",
        "LearnedGate",
        "all_of",
        "any_of",
    ):
        assert name in gates.__all__
    for name in gates.__all__:
        assert getattr(gates, name) is not None


def test_importing_the_package_does_not_need_numpy() -> None:
    code = (
        "import sys; sys.modules['numpy'] = None; "
        "import langchain_cascade; from langchain_cascade.gates import LogprobGate; "
        "print('ok')"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "ok"
