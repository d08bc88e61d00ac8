"""The cascade's identity (names, traced params) is computed once, not raced for."""

from __future__ import annotations

import threading
import time

from langchain_core.runnables import RunnableConfig

from langchain_cascade import CascadingChatModel, GateInput, GateResult
from langchain_cascade.gates import Gate
from tests.unit_tests.fake_models import cascade_meta, in_threads, tiers

REPRS: list[int] = []
"""One entry per repr() of a SlowReprGate."""


class SlowReprGate(Gate):
    """A gate whose repr is slow and touches its own state (as a cache would)."""

    def evaluate(self, gate_input: GateInput, config: RunnableConfig) -> GateResult:
        """Pass."""
        return GateResult(passed=True, reason="ok")

    def __repr__(self) -> str:
        """Slow, and mutating the instance's dict while another repr may read it."""
        REPRS.append(threading.get_ident())
        for i in range(50):
            self.__dict__[f"_seen_{threading.get_ident()}_{i}"] = i
            time.sleep(0.0005)
        return "SlowReprGate()"


def test_concurrent_first_calls_compute_the_identity_once() -> None:
    cascade = CascadingChatModel(models=tiers("Paris", "Lyon"), gates=[SlowReprGate()])
    REPRS.clear()
    threads_seen, errors = in_threads(
        lambda: cascade_meta(cascade.invoke("q"))["tier"], 8
    )
    assert errors == []
    assert threads_seen == [0] * 8
    assert REPRS == []  # computed at construction: calls never repr the gate
