"""Real local models: download, serve, answer, and leave nothing running."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from langchain_cascade.local_models import (
    DEFAULT_MODEL_NAMES,
    LocalModels,
    ensure_model,
)

pytestmark = pytest.mark.real_models

QUESTION = "What is 2+3? Answer with a number only."


def _pid_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie awaiting its reaper counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state not in {"Z", "X"}


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _wait_gone(pid: int, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and (_pid_alive(pid) or _listening(port)):
        time.sleep(0.05)


def test_models_are_cached_and_verified() -> None:
    for name in DEFAULT_MODEL_NAMES:
        path = ensure_model(name)
        assert path.is_file()
        assert path.with_name(path.name + ".sha256").is_file()


def test_all_servers_are_healthy(local_models: LocalModels) -> None:
    assert local_models.names == DEFAULT_MODEL_NAMES
    for name in local_models.names:
        server = local_models.server(name)
        assert server.is_running()
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        try:
            connection.request("GET", "/health")
            assert connection.getresponse().status == 200
        finally:
            connection.close()
        assert local_models.base_url(name) == f"http://127.0.0.1:{server.port}/v1"


def test_qwen_answers_with_logprobs(local_models: LocalModels) -> None:
    chat = local_models.chat_model(
        "qwen2.5-coder-0.5b", temperature=0, max_tokens=16, logprobs=True
    )
    response = chat.invoke(QUESTION)
    assert isinstance(response.content, str)
    assert "5" in response.content
    content = response.response_metadata["logprobs"]["content"]
    assert isinstance(content, list)
    assert content
    assert all("logprob" in entry for entry in content)


def test_context_exit_stops_server_and_frees_port() -> None:
    with LocalModels(["qwen2.5-coder-0.5b"]) as models:
        server = models.server("qwen2.5-coder-0.5b")
        pid, port = server.pid, server.port
        assert pid is not None
        answer = models.chat_model(
            "qwen2.5-coder-0.5b", temperature=0, max_tokens=16, logprobs=True
        ).invoke(QUESTION)
        assert "5" in str(answer.content)
        assert answer.response_metadata["logprobs"]["content"]
        assert _listening(port)
    # stop() waits for the process, so both are gone at once.
    assert not _pid_alive(pid)
    assert not _listening(port)
    assert server.pid is None


def _serve_then_fail(seen: list[tuple[int | None, int]]) -> None:
    with LocalModels(["smollm2-135m"]) as models:
        server = models.server("smollm2-135m")
        seen.append((server.pid, server.port))
        assert _listening(server.port)
        message = "boom"
        raise RuntimeError(message)


def test_exception_in_block_stops_server() -> None:
    seen: list[tuple[int | None, int]] = []
    with pytest.raises(RuntimeError, match="boom"):
        _serve_then_fail(seen)
    ((pid, port),) = seen
    assert pid is not None
    assert not _pid_alive(pid)
    assert not _listening(port)


PARENT_SCRIPT = textwrap.dedent(
    """
    import signal, time
    from langchain_cascade.local_models import LocalModels

    # Ctrl-C behaviour even when this test run was started with SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)

    models = LocalModels(["smollm2-135m"]).start()
    server = models.server("smollm2-135m")
    print(server.pid, server.port, flush=True)
    time.sleep(600)
    """
)


@pytest.mark.parametrize(
    "signum",
    [signal.SIGKILL, signal.SIGTERM, signal.SIGINT],
    ids=["SIGKILL", "SIGTERM", "SIGINT"],
)
def test_server_dies_with_its_parent(signum: signal.Signals) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT_SCRIPT], stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout is not None
        line = parent.stdout.readline()
        assert line, "the parent process did not start its server"
        pid, port = (int(field) for field in line.split())
        assert _pid_alive(pid)
        assert _listening(port)
        parent.send_signal(signum)
        parent.wait(timeout=30)
        _wait_gone(pid, port)
        assert not _pid_alive(pid)
        assert not _listening(port)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def _prompt_timings(base_url: str, prompt: str, slot: int) -> tuple[int, int]:
    """(prompt tokens computed, prompt tokens read from the cache) of one request."""
    body = {
        "model": "smollm2-135m",
        "messages": [
            {"role": "system", "content": "Classify the headline: up, down or none."},
            {"role": "user", "content": prompt},
        ],
        "max_tokens": 1,
        "id_slot": slot,
    }
    timings = httpx.post(f"{base_url}/chat/completions", json=body, timeout=60).json()[
        "timings"
    ]
    return int(timings["prompt_n"]), int(timings["cache_n"])


@pytest.mark.parametrize("kv_unified", [False, True])
def test_split_kv_cache_keeps_a_prompt_cache_per_slot(kv_unified: bool) -> None:
    """The demo's fair comparison: two callers pinned to their own slots each
    reuse their own cached prefix only when the KV cache is split by slot."""
    with LocalModels(["smollm2-135m"], n_threads=1, kv_unified=kv_unified) as models:
        base = models.server("smollm2-135m").base_url
        for slot in (0, 1):  # each slot computes the shared prefix once
            _prompt_timings(base, "Gold rises as the dollar falls", slot)
        cached = [
            _prompt_timings(base, "Gold slips on a firmer dollar", slot)[1]
            for slot in (0, 1)
        ]
    if kv_unified:
        assert cached == [0, 0]  # pinned slots on one shared cache reuse nothing
    else:
        assert all(n > 0 for n in cached)
