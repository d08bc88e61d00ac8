"""The tier's ``timeout`` also bounds its gate: a hung gate fails closed."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from langchain_core.runnables import RunnableConfig

from langchain_cascade import CascadingChatModel, GateInput, GateResult
from langchain_cascade.gates import Gate
from tests.unit_tests.fake_models import (
    ScriptedChatModel,
    call,
    call_cleanly,
    cascade_meta,
    tiers,
)

CANCELLED: list[str] = []
"""Names of the gates whose wait was cancelled."""


class AsyncHangingGate(Gate):
    """Never answers on its async path (its own); sync ``evaluate`` is unused."""

    def evaluate(self, gate_input: GateInput, config: RunnableConfig) -> GateResult:
        """Not reached when the gate is bounded (the async path is used)."""
        msg = "the sync path must not run"
        raise AssertionError(msg)

    async def aevaluate(
        self, gate_input: GateInput, config: RunnableConfig
    ) -> GateResult:
        """Wait forever, recording that the wait was cancelled."""
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            CANCELLED.append(self.gate_name)
            raise
        return GateResult(passed=True, reason="woke up")


class SyncBlockingGate(Gate):
    """A sync-only gate blocked until ``release`` is set (bounded by 10 s)."""

    release: threading.Event

    def evaluate(self, gate_input: GateInput, config: RunnableConfig) -> GateResult:
        """Block until released."""
        self.release.wait(10)
        return GateResult(passed=True, reason="woke up")


def test_a_hung_async_gate_times_out_is_cancelled_and_escalates(mode: str) -> None:
    CANCELLED.clear()
    cascade = CascadingChatModel(
        models=tiers("a first answer", "Paris"), gates=[AsyncHangingGate()], timeout=0.2
    )
    answer = call_cleanly(cascade, mode, "q")
    meta = cascade_meta(answer)
    assert answer.text == "Paris"
    assert meta["tier"] == 1
    assert meta["attempts"][0]["reason"] == "gate timeout after 0.2s"
    assert meta["attempts"][0]["gate"] == "AsyncHangingGate"
    assert CANCELLED == ["AsyncHangingGate"]  # cancelled for real


def test_per_call_and_per_tier_timeouts_bound_the_gate(mode: str) -> None:
    cascade = CascadingChatModel(
        models=tiers("a first answer", "Paris"),
        gates=[AsyncHangingGate()],
        timeout=[0.15, None],
    )
    meta = cascade_meta(call(cascade, mode, "q"))
    assert meta["attempts"][0]["reason"] == "gate timeout after 0.15s"
    unbounded = CascadingChatModel(
        models=tiers("a first answer", "Paris"), gates=[AsyncHangingGate()]
    )
    meta = cascade_meta(call(unbounded.bind(timeout=0.1), mode, "q"))
    assert meta["attempts"][0]["reason"] == "gate timeout after 0.1s"


def test_a_hung_review_gate_flags_the_final_answer(mode: str) -> None:
    cascade = CascadingChatModel(
        models=[ScriptedChatModel(model="m0", reply="Paris")],
        review_gate=AsyncHangingGate(),
        timeout=0.2,
    )
    meta = cascade_meta(call(cascade, mode, "q"))
    assert meta["needs_review"] is True
    assert meta["review_reason"] == "gate timeout after 0.2s"


def test_a_blocked_sync_gate_is_waited_for_no_longer_than_the_timeout(
    mode: str,
) -> None:
    release = threading.Event()
    cascade = CascadingChatModel(
        models=tiers("a first answer", "Paris"),
        gates=[SyncBlockingGate(release=release)],
        timeout=0.2,
    )
    try:
        started = time.perf_counter()
        meta = cascade_meta(call(cascade, mode, "q"))
        elapsed = time.perf_counter() - started
    finally:
        release.set()  # the thread cannot be interrupted: let it end
    assert meta["tier"] == 1
    assert meta["attempts"][0]["reason"] == "gate timeout after 0.2s"
    assert elapsed < 5


def test_a_quick_gate_under_a_timeout_still_decides(mode: str) -> None:
    calls: list[Any] = []

    def gate(gate_input: GateInput) -> bool:
        calls.append(gate_input.tier)
        return True

    async def agate(gate_input: GateInput) -> bool:
        calls.append(gate_input.tier)
        return True

    for g in (gate, agate):
        cascade = CascadingChatModel(
            models=tiers("a first answer", "Paris"), gates=[g], timeout=5
        )
        meta = cascade_meta(call(cascade, mode, "q"))
        assert meta["tier"] == 0
    assert calls == [0, 0]
