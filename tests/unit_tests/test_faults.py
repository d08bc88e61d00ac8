"""Fault injection: real ``ChatOpenAI`` tiers against a misbehaving local server.

Every fault of :data:`tests.fault_matrix.FAULTS` (HTTP errors, resets, hangs, bad
logprobs, broken tool calls, broken gates, the caller giving up) in every mode it
applies to (invoke, ainvoke, stream, astream). Each must end in an answer whose
``response_metadata["cascade"]`` tells what happened, or ``CascadeError`` with
every attempt, or the caller's own cancellation; and leave no asyncio task,
thread, file descriptor, socket or process behind.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.fault_matrix import (
    CHEAP,
    FAULTS,
    Fault,
    Mode,
    Result,
    run,
    snapshot,
)
from tests.openai_server import OpenAIServer, answer, hang, reset, status

CASES = [
    pytest.param(fault, mode, id=f"{fault.name}-{mode}")
    for fault in FAULTS
    for mode in fault.modes
]


@pytest.fixture(scope="module")
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer() as started:
        yield started


@pytest.mark.parametrize(("fault", "mode"), CASES)
def test_fault(server: OpenAIServer, fault: Fault, mode: Mode) -> None:
    result = run(fault, mode, server)
    assert result.problems() == [], _story(result)


def _story(result: Result) -> str:
    return (
        f"{result.fault.name} / {result.mode}: outcome {result.outcome}, "
        f"attempts {result.attempts}, error {result.error!r}"
    )


def test_every_fault_of_the_issue_is_in_the_matrix() -> None:
    names = " ".join(f.name for f in FAULTS)
    for fault in (
        "429",
        "500",
        "reset",
        "hang",
        "empty",
        "malformed logprobs",
        "missing logprobs",
        "not JSON",
        "unknown tool",
        "gate raises",
        "garbage",
        "cancels mid-tier",
        "cancels mid-gate",
        "closes the stream",
    ):
        assert fault in names


def test_the_escalation_says_which_fault_and_what_the_strong_tier_did(
    server: OpenAIServer,
) -> None:
    fault = next(f for f in FAULTS if f.name == "500")
    result = run(fault, "invoke", server)
    first, second = result.attempts
    assert first["tier"] == 0
    assert not first["accepted"]
    assert "500" in first["error"]
    assert first["reason"].startswith("tier raised")
    assert second["accepted"]
    assert result.metadata["escalated"] is True
    assert result.metadata["model"] == "strong"


def test_retry_after_is_honoured_by_the_client(server: OpenAIServer) -> None:
    fault = next(f for f in FAULTS if f.name == "429 Retry-After, 1 retry")
    result = run(fault, "invoke", server)
    assert result.problems() == []
    first, second = server.requests_for(CHEAP)
    assert first.behaviour.status == 429
    assert second.started - first.started >= 0.2


def test_a_hung_tier_is_abandoned_by_the_client(server: OpenAIServer) -> None:
    fault = next(f for f in FAULTS if f.name == "hang (client timeout)")
    result = run(fault, "ainvoke", server)
    assert result.problems() == []
    (hung,) = server.requests_for(CHEAP)
    assert hung.disconnected
    assert not hung.completed
    assert hung.ended is not None


# --- the server itself ---------------------------------------------------------------


def test_server_records_open_requests_and_disconnects() -> None:
    with OpenAIServer() as server:
        server.behave("m", hang())
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}

        def call() -> None:
            with pytest.raises(httpx.ReadTimeout):
                httpx.post(
                    f"{server.base_url}/chat/completions", json=body, timeout=0.3
                )

        thread = threading.Thread(target=call)
        thread.start()
        deadline = time.monotonic() + 2
        while not server.open_requests() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [r.model for r in server.open_requests()] == ["m"]
        thread.join()
        assert server.wait_idle(2.0)
        assert server.open_requests() == []
        (gone,) = server.disconnects
        assert gone.model == "m"
        assert not gone.completed


def test_server_scripts_in_order_then_falls_back_to_the_default() -> None:
    with OpenAIServer() as server:
        server.behave("m", answer("default"))
        server.script("m", status(500), answer("second"))
        url = f"{server.base_url}/chat/completions"
        body = {"model": "m", "messages": []}
        codes = [httpx.post(url, json=body).status_code for _ in range(3)]
        texts = [r.behaviour.text for r in server.requests[1:]]
    assert codes == [500, 200, 200]
    assert texts == ["second", "default"]


def test_server_reset_is_a_connection_error_for_the_client() -> None:
    with OpenAIServer() as server:
        server.behave("m", reset(after_tokens=1))
        body = {"model": "m", "messages": [], "stream": True}
        url = f"{server.base_url}/chat/completions"

        def read() -> None:
            with httpx.stream("POST", url, json=body) as response:
                for _ in response.iter_bytes():
                    pass

        with pytest.raises(httpx.TransportError):
            read()


def test_server_stop_joins_its_threads_and_ends_hanging_handlers() -> None:
    before = snapshot()
    server = OpenAIServer().start()
    server.behave("m", hang())
    body = {"model": "m", "messages": []}
    errors: list[BaseException] = []

    def call() -> None:
        try:
            httpx.post(f"{server.base_url}/chat/completions", json=body, timeout=5)
        except httpx.HTTPError as exc:
            errors.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    while not server.open_requests():
        time.sleep(0.01)
    started = time.monotonic()
    server.stop()
    thread.join()
    assert time.monotonic() - started < 2.0  # the hang ended with the server
    assert len(errors) == 1
    after = snapshot()
    assert after.threads == before.threads
    assert after.sockets == before.sockets
