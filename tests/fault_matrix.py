"""The fault matrix: every injected fault, how a cascade must react, and leak checks.

One piece of code for the fault-injection tests (``tests/unit_tests/test_faults.py``)
and the fault benchmark (``python -m benchmarks.faults``). Each :class:`Fault` scripts
the misbehaving OpenAI server (:mod:`tests.openai_server`) or supplies a misbehaving
gate, names what must happen (the answer from a given tier, ``CascadeError`` with
every attempt, or the caller's cancellation) and the evidence the answer's
``response_metadata["cascade"]`` (or the error's attempts) must show. :func:`run`
performs one fault in one mode (``invoke``, ``ainvoke``, ``stream``, ``astream``)
with real ``ChatOpenAI`` tiers and reports what happened and what leaked: asyncio
tasks, threads, open file descriptors and sockets, child processes.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import reduce
from operator import add
from pathlib import Path
from typing import Any, Literal

from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessageChunk
from langchain_core.runnables import RunnableConfig
from langchain_openai import ChatOpenAI

from langchain_cascade import CascadeError, CascadingChatModel
from langchain_cascade._sync import (
    WORKER_THREAD_PREFIXES,
    ensure_running,
    pending_tasks,
)
from langchain_cascade.gates import (
    Gate,
    GateInput,
    GateResult,
    LogprobGate,
    MinLengthGate,
    ToolCallGate,
    all_of,
)
from tests.openai_server import (
    OpenAIServer,
    answer,
    bad_tool_args,
    empty,
    hang,
    malformed_logprobs,
    missing_logprobs,
    reset,
    status,
    unknown_tool,
)

__all__ = [
    "FAULTS",
    "MODES",
    "Fault",
    "Leaks",
    "Mode",
    "Result",
    "run",
    "snapshot",
]

Mode = Literal["invoke", "ainvoke", "stream", "astream"]
MODES: tuple[Mode, ...] = ("invoke", "ainvoke", "stream", "astream")
ASYNC_MODES: tuple[Mode, ...] = ("ainvoke", "astream")
STREAM_MODES: tuple[Mode, ...] = ("stream", "astream")
Expect = Literal["answered", "escalated", "raised", "cancelled"]

CHEAP, STRONG = "cheap", "strong"
CLIENT_TIMEOUT_S = 0.6
"""``ChatOpenAI``'s own request timeout: how a hung server becomes an error."""
CANCEL_AFTER_S = 0.3
"""When the caller gives up, in the cancellation faults."""
LOW_CONFIDENCE = -3.0
"""A token logprob the default gate (geometric mean >= 0.5) rejects."""

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


# --- misbehaving gates ------------------------------------------------------------


def raising_gate(gate_input: GateInput) -> bool:
    """A gate function that raises."""
    msg = "the gate broke"
    raise RuntimeError(msg)


def garbage_gate(gate_input: GateInput) -> Any:
    """A gate function that returns something that is no verdict."""
    return 42


class NoneGate(Gate):
    """A Gate subclass whose ``evaluate`` returns ``None`` (a forgotten return)."""

    def evaluate(self, gate_input: GateInput, config: RunnableConfig) -> GateResult:
        """Forget to return the verdict."""
        return None  # type: ignore[return-value]


class HangingGate(Gate):
    """A gate that never answers on the async path (and waits 30 s on the sync one)."""

    def evaluate(self, gate_input: GateInput, config: RunnableConfig) -> GateResult:
        """Block (bounded, so a broken test cannot hang forever)."""
        threading.Event().wait(30)
        return GateResult(passed=True, reason="woke up")

    async def aevaluate(
        self, gate_input: GateInput, config: RunnableConfig
    ) -> GateResult:
        """Wait forever."""
        await asyncio.Event().wait()
        return GateResult(passed=True, reason="woke up")


# --- the matrix ---------------------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    """One injected fault and the reaction it must get.

    Attributes:
        name: The fault, as the table shows it.
        expect: ``answered`` (tier 0 answers anyway), ``escalated`` (tier 1
            answers), ``raised`` (``CascadeError`` with every attempt) or
            ``cancelled`` (the caller gave up; the server must see the client
            leave).
        evidence: Text that must appear in the failing attempt's ``reason`` or
            ``error`` (the metadata tells what happened).
        script: Scripts the server for this fault.
        gate: Builds tier 0's gate (default: a logprob gate).
        tools: Bind a tool (for the tool-call faults).
        modes: The modes the fault applies to.
        max_retries: ``ChatOpenAI``'s retries.
        disconnect: The model whose request the client must have abandoned.
        cancel_after_chunks: Stop consuming a stream after this many content
            chunks (the caller closing the stream).
        timeout: The cascade's own per-tier ``timeout``.
        client_timeout: ``ChatOpenAI``'s request timeout.
    """

    name: str
    expect: Expect
    evidence: str = ""
    script: Callable[[OpenAIServer], None] = lambda server: None
    gate: Callable[[], Any] = lambda: LogprobGate(threshold=0.5)
    tools: bool = False
    modes: tuple[Mode, ...] = MODES
    max_retries: int = 0
    disconnect: str | None = None
    cancel_after_chunks: int | None = None
    timeout: float | None = None
    client_timeout: float = CLIENT_TIMEOUT_S


def _cheap(*behaviours: Any) -> Callable[[OpenAIServer], None]:
    def script(server: OpenAIServer) -> None:
        server.script(CHEAP, *behaviours)

    return script


def _both(cheap: Any, strong: Any) -> Callable[[OpenAIServer], None]:
    def script(server: OpenAIServer) -> None:
        server.script(CHEAP, cheap)
        server.script(STRONG, strong)

    return script


def _min_length_and_logprob() -> Any:
    return all_of(MinLengthGate(min_chars=1), LogprobGate(threshold=0.5))


FAULTS: tuple[Fault, ...] = (
    Fault("no fault", "answered", "geometric_mean"),
    Fault("low confidence", "escalated", "geometric_mean 0.050 < 0.5",
          _cheap(answer(logprob=LOW_CONFIDENCE))),
    Fault("429 Retry-After, no retry", "escalated", "429",
          _cheap(status(429, retry_after=0.2))),
    Fault("429 Retry-After, 1 retry", "answered", "geometric_mean",
          _cheap(status(429, retry_after=0.2), answer()), max_retries=1),
    Fault("500", "escalated", "500", _cheap(status(500))),
    Fault("connection reset mid-response", "escalated", "Connection error",
          _cheap(reset(after_tokens=2))),
    Fault("hang (client timeout)", "escalated", "timed out", _cheap(hang()),
          disconnect=CHEAP),
    Fault("empty content", "escalated", "MinLengthGate failed",
          _cheap(empty()), gate=_min_length_and_logprob),
    Fault("malformed logprobs", "escalated", "gate raised",
          _cheap(malformed_logprobs())),
    Fault("missing logprobs", "escalated", "no token logprobs",
          _cheap(missing_logprobs())),
    Fault("tool args not JSON", "escalated", "not valid JSON",
          _cheap(bad_tool_args()), gate=ToolCallGate, tools=True),
    Fault("unknown tool", "escalated", "unknown tool 'launch_rocket'",
          _cheap(unknown_tool()), gate=ToolCallGate, tools=True),
    Fault("final tier 500", "raised", "500",
          _both(answer(logprob=LOW_CONFIDENCE), status(500))),
    Fault("final tier reset mid-stream", "raised", "Connection error",
          _both(status(500), reset(after_tokens=2))),
    Fault("final tier hangs", "raised", "timed out",
          _both(status(503), hang(after_tokens=1)), disconnect=STRONG),
    Fault("hang (cascade timeout)", "escalated", "timeout after 0.3s",
          _cheap(hang()), disconnect=CHEAP, timeout=0.3, client_timeout=2.0),
    Fault("slow tokens (cascade timeout)", "escalated", "timeout after 0.3s",
          _cheap(answer(token_delay_s=0.2)), disconnect=CHEAP, timeout=0.3,
          client_timeout=2.0),
    Fault("final tier hangs (cascade timeout)", "raised", "timeout after 0.3s",
          _both(status(500), hang(after_tokens=1)), disconnect=STRONG, timeout=0.3,
          client_timeout=2.0),
    Fault("gate raises", "escalated", "gate raised RuntimeError: the gate broke",
          gate=lambda: raising_gate),
    Fault("gate returns garbage", "escalated", "returned int",
          gate=lambda: garbage_gate),
    Fault("Gate subclass returns None", "escalated", "NoneGate", gate=NoneGate),
    Fault("caller cancels mid-tier", "cancelled", script=_cheap(hang()),
          modes=ASYNC_MODES, disconnect=CHEAP),
    Fault("caller cancels mid-gate", "cancelled", gate=HangingGate,
          modes=ASYNC_MODES),
    Fault("gate hangs (cascade timeout)", "escalated", "gate timeout after 0.3s",
          gate=HangingGate, timeout=0.3),
    Fault("caller closes the stream", "cancelled",
          script=_both(answer(logprob=LOW_CONFIDENCE),
                       answer(token_delay_s=0.05)),
          modes=STREAM_MODES, disconnect=STRONG, cancel_after_chunks=1),
)  # fmt: skip


# --- leaks ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Leaks:
    """Resources open in this process: compare one before and one after a call."""

    fds: int
    sockets: int
    threads: frozenset[int]
    children: int

    def minus(self, before: Leaks) -> dict[str, int]:
        """What is open now and was not before (only what grew)."""
        grown = {
            "fds": self.fds - before.fds,
            "sockets": self.sockets - before.sockets,
            "threads": len(self.threads - before.threads),
            "processes": self.children - before.children,
        }
        return {k: v for k, v in grown.items() if v > 0}


def _fds() -> tuple[int, int]:
    fds = sockets = 0
    for entry in Path("/proc/self/fd").iterdir():
        fds += 1
        try:
            if str(entry.readlink()).startswith("socket:"):
                sockets += 1
        except OSError:
            continue  # the listing's own descriptor, closed meanwhile
    return fds, sockets


def _children() -> int:
    count = 0
    for task in Path("/proc/self/task").iterdir():
        try:
            count += len((task / "children").read_text().split())
        except OSError:
            continue
    return count


def snapshot() -> Leaks:
    """The threads, descriptors, sockets and child processes open now."""
    # The package's one worker loop (sync timeouts) is long-lived, like a pool:
    # part of the baseline; what runs on it is checked by pending_tasks().
    ensure_running()
    fds, sockets = _fds()
    threads = frozenset(
        t.ident or 0
        for t in threading.enumerate()
        if not t.name.startswith(WORKER_THREAD_PREFIXES)
    )
    return Leaks(fds, sockets, threads, _children())


def _other_tasks() -> int:
    current = asyncio.current_task()
    return sum(1 for t in asyncio.all_tasks() if t is not current and not t.done())


def _after_gc(
    measure: Callable[[Leaks], dict[str, int]], before: Leaks
) -> dict[str, int]:
    """What ``measure`` finds leaked, measured again after a collection if any."""
    leaked = measure(before)
    if leaked:
        gc.collect()
        leaked = measure(before)
    return leaked


def _leaks(before: Leaks) -> dict[str, int]:
    leaked = snapshot().minus(before)
    if (left := pending_tasks()) > 0:  # still running on the package's worker loop
        leaked["worker tasks"] = left
    return leaked


def settle(before: Leaks, server: OpenAIServer) -> dict[str, int]:
    """What leaked: resources still open after the server is idle and 2 s of grace.

    Garbage is collected first, so an object that only a cycle kept alive does not
    count; a resource that stays open after that does.
    """
    server.wait_idle(5.0)
    deadline = time.monotonic() + 2.0
    while True:
        leaked = _after_gc(_leaks, before)
        if not leaked or time.monotonic() > deadline:
            return leaked
        time.sleep(0.05)


def _in_loop_leaks(before: Leaks) -> dict[str, int]:
    grown = snapshot().minus(before)
    return {k: v for k, v in grown.items() if k in ("fds", "sockets")}


async def _settle_in_loop(
    before: Leaks, tasks: int, server: OpenAIServer
) -> dict[str, int]:
    """Tasks, descriptors and sockets still open after 2 s of the loop running on."""
    deadline = time.monotonic() + 2.0
    while True:
        leaked = _after_gc(_in_loop_leaks, before)
        if (grown := _other_tasks() - tasks) > 0:
            leaked["tasks"] = grown
        idle = not server.open_requests()
        if (idle and not leaked) or time.monotonic() > deadline:
            return leaked
        await asyncio.sleep(0.02)


# --- running one fault ------------------------------------------------------------------


@dataclass
class Result:
    """What one run of a fault did.

    Attributes:
        fault: The fault.
        mode: How the cascade was called.
        outcome: ``answered``, ``escalated``, ``raised`` or ``cancelled``, from
            what the caller saw (``unexpected`` for anything else, e.g. another
            exception type).
        metadata: The answer's ``response_metadata["cascade"]``.
        attempts: The attempts (the answer's, or ``CascadeError.attempts``).
        error: The exception the caller got, if any.
        leaked: Resources still open after the call (empty: nothing leaked).
        disconnected: The models whose requests the client abandoned.
        loop_errors: Errors the event loop reported meanwhile (e.g. an async
            generator that failed to close).
        seconds: The call's wall time.
    """

    fault: Fault
    mode: Mode
    outcome: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    attempts: list[dict[str, Any]] = field(default_factory=list)
    error: BaseException | None = None
    leaked: dict[str, int] = field(default_factory=dict)
    disconnected: list[str] = field(default_factory=list)
    loop_errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def problems(self) -> list[str]:
        """Everything that does not match the fault's expectation (empty: all good)."""
        fault, found = self.fault, []
        if self.outcome != fault.expect:
            found.append(
                f"expected {fault.expect}, got {self.outcome} ({self.error!r})"
            )
        if fault.evidence:
            told = " | ".join(
                f"{a['reason']} {a['error'] or ''}" for a in self.attempts
            )
            if fault.evidence not in told:
                found.append(f"no {fault.evidence!r} in the attempts: {told!r}")
        if fault.expect == "raised" and len(self.attempts) != 2:
            found.append(f"CascadeError holds {len(self.attempts)} attempts, not 2")
        if fault.disconnect and fault.disconnect not in self.disconnected:
            found.append(f"the server never saw the {fault.disconnect} client leave")
        if self.leaked:
            found.append(f"leaked {self.leaked}")
        if self.loop_errors:
            found.append(f"event loop errors: {self.loop_errors}")
        return found


def cascade_for(fault: Fault, server: OpenAIServer) -> Any:
    """The two-tier cascade of real ``ChatOpenAI`` tiers a fault runs against."""

    def tier(name: str) -> ChatOpenAI:
        return ChatOpenAI(
            model=name,
            base_url=server.base_url,
            api_key="x",
            max_retries=fault.max_retries,
            timeout=fault.client_timeout,
            logprobs=True,
        )

    cascade = CascadingChatModel(
        models=[tier(CHEAP), tier(STRONG)], gates=[fault.gate()], timeout=fault.timeout
    )
    return cascade.bind_tools([WEATHER]) if fault.tools else cascade


def _classify(result: Result, message: AIMessage | BaseMessageChunk) -> None:
    meta = message.response_metadata.get("cascade") or {}
    result.metadata = meta
    result.attempts = list(meta.get("attempts", []))
    result.outcome = "escalated" if meta.get("tier") == 1 else "answered"
    if not meta:
        result.outcome = "unexpected"


def _fail(result: Result, exc: BaseException) -> None:
    result.error = exc
    if isinstance(exc, CascadeError):
        result.outcome, result.attempts = "raised", [dict(a) for a in exc.attempts]
    elif isinstance(exc, TimeoutError | asyncio.CancelledError | GeneratorExit):
        result.outcome = "cancelled"
    else:
        result.outcome = "unexpected"


def _merge(chunks: Sequence[AIMessageChunk]) -> AIMessageChunk:
    return reduce(add, chunks)


def _sync_call(fault: Fault, cascade: Any, mode: Mode, result: Result) -> None:
    question = "What is the capital of France?"
    if mode == "invoke":
        _classify(result, cascade.invoke(question))
        return
    chunks: list[AIMessageChunk] = []
    stream = cascade.stream(question)
    try:
        for chunk in stream:
            chunks.append(chunk)
            content = [c for c in chunks if c.content]
            if fault.cancel_after_chunks and len(content) >= fault.cancel_after_chunks:
                stream.close()
                result.outcome = "cancelled"
                return
    finally:
        stream.close()
    _classify(result, _merge(chunks))


async def _async_call(fault: Fault, cascade: Any, mode: Mode, result: Result) -> None:
    question = "What is the capital of France?"
    if mode == "ainvoke":
        call = cascade.ainvoke(question)
        if fault.expect == "cancelled":
            _classify(result, await asyncio.wait_for(call, CANCEL_AFTER_S))
        else:
            _classify(result, await call)
        return
    chunks: list[AIMessageChunk] = []

    async def consume() -> bool:
        stream = cascade.astream(question)
        try:
            async for chunk in stream:
                chunks.append(chunk)
                content = [c for c in chunks if c.content]
                if (
                    fault.cancel_after_chunks
                    and len(content) >= fault.cancel_after_chunks
                ):
                    return True
        finally:
            await stream.aclose()
        return False

    if fault.cancel_after_chunks:
        if await consume():
            result.outcome = "cancelled"
            return
    elif fault.expect == "cancelled":
        await asyncio.wait_for(consume(), CANCEL_AFTER_S)
    else:
        await consume()
    _classify(result, _merge(chunks))


def run(fault: Fault, mode: Mode, server: OpenAIServer) -> Result:
    """Run one fault in one mode against ``server`` and check for leaks.

    Args:
        fault: The fault.
        mode: How to call the cascade.
        server: A started server (its script is reset first).

    Returns:
        What happened; :meth:`Result.problems` lists what was wrong.
    """
    server.reset_script()
    fault.script(server)
    result = Result(fault=fault, mode=mode)
    cascade = cascade_for(fault, server)
    started = time.perf_counter()
    if mode in ASYNC_MODES:

        async def main() -> None:
            loop = asyncio.get_running_loop()
            loop.set_exception_handler(
                lambda _, context: result.loop_errors.append(
                    str(context.get("message"))
                )
            )
            tasks, in_loop = _other_tasks(), snapshot()
            try:
                await _async_call(fault, cascade, mode, result)
            except BaseException as exc:  # classified, then checked
                _fail(result, exc)
            # An application's loop goes on running: what the call left behind
            # must be gone while it does (not only once asyncio.run() cleans up).
            leaked = await _settle_in_loop(in_loop, tasks, server)
            result.leaked.update(leaked)

        before = snapshot()
        asyncio.run(main())
        # Threads and processes once the loop (and its executor, which owns its
        # worker threads) is closed.
        for key, value in settle(before, server).items():
            result.leaked[key] = max(value, result.leaked.get(key, 0))
    else:
        before = snapshot()
        try:
            _sync_call(fault, cascade, mode, result)
        except BaseException as exc:  # classified, then checked
            _fail(result, exc)
        result.leaked = settle(before, server)
    result.seconds = time.perf_counter() - started
    result.disconnected = sorted({r.model for r in server.disconnects})
    return result
