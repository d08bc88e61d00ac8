"""Fast fake chat models for the cascade's logic tests."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, TypeVar

from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    CallbackManagerForLLMRun,
)
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk
from langchain_core.runnables import RunnableConfig
from pydantic import Field

from benchmarks.fakes import AsyncFakeChatModel, ToolFakeChatModel
from langchain_cascade._sync import pending_tasks

Responder = Callable[[list[BaseMessage]], AIMessage]
T = TypeVar("T")


def logprob_meta(*logprobs: float) -> dict[str, Any]:
    return {
        "logprobs": {
            "content": [
                {"token": f"t{i}", "logprob": lp, "top_logprobs": []}
                for i, lp in enumerate(logprobs)
            ]
        }
    }


class ScriptedChatModel(ToolFakeChatModel, AsyncFakeChatModel):
    """Answers from a script, a fixed reply or a function of the messages.

    ``script`` items may be exceptions, which are raised. The model records the
    kwargs (e.g. tools) of every call.
    """

    fake_type = "scripted"
    identifying_fields = ("model", "reply")

    model: str = "scripted"
    reply: str | None = None
    script: list[Any] = Field(default_factory=list)  # AIMessage or Exception
    responder: Responder | None = None
    delay_s: float = 0.0
    calls: list[dict[str, Any]] = Field(default_factory=list)
    lock: Any = Field(default_factory=threading.Lock, exclude=True)

    def _reply(
        self, messages: list[BaseMessage], stop: list[str] | None, **kwargs: Any
    ) -> AIMessage:
        with self.lock:
            self.calls.append({"messages": messages, **kwargs})
            if self.script:
                item = self.script.pop(0)
                if isinstance(item, Exception):
                    raise item
                return item  # type: ignore[no-any-return]
        if self.responder is not None:
            return self.responder(messages)
        return AIMessage(
            self.reply or "",
            usage_metadata={"input_tokens": 3, "output_tokens": 2, "total_tokens": 5},
            response_metadata={"model_name": self.model},
        )

    def _async_wait_s(self) -> float | None:
        return self.delay_s or None

    def _chunks(self, message: AIMessage) -> Iterator[ChatGenerationChunk]:
        text = message.text
        for i, piece in enumerate([text[:1], text[1:]] if len(text) > 1 else [text]):
            yield ChatGenerationChunk(
                message=AIMessageChunk(
                    content=piece,
                    tool_call_chunks=[
                        {
                            "name": tc["name"],
                            "args": str(tc["args"]).replace("'", '"'),
                            "id": tc["id"],
                            "index": j,
                            "type": "tool_call_chunk",
                        }
                        for j, tc in enumerate(message.tool_calls)
                    ]
                    if i == 0
                    else [],
                    response_metadata=message.response_metadata if i == 0 else {},
                    usage_metadata=message.usage_metadata if i == 0 else None,
                )
            )

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        for chunk in self._chunks(self._reply(messages, stop, **kwargs)):
            if run_manager:
                run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        for chunk in self._chunks(self._reply(messages, stop, **kwargs)):
            if run_manager:
                await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk


# --- driving a model through each entry point ------------------------------------

MODES = ["invoke", "ainvoke", "stream", "astream"]
"""The four entry points; the ``mode`` fixture (``conftest.py``) runs a test in each."""


def call(
    model: Any, mode: str, value: Any, config: RunnableConfig | None = None
) -> Any:
    """Run one call in ``mode`` and return the final message."""
    if mode == "invoke":
        return model.invoke(value, config)
    if mode == "ainvoke":
        return asyncio.run(model.ainvoke(value, config))
    if mode == "stream":
        chunks = list(model.stream(value, config))
        return merge_chunks(chunks)

    async def collect() -> list[Any]:
        return [c async for c in model.astream(value, config)]

    return merge_chunks(asyncio.run(collect()))


def merge_chunks(chunks: list[AIMessageChunk]) -> AIMessageChunk:
    assert chunks, "no chunks streamed"
    merged = chunks[0]
    for chunk in chunks[1:]:
        merged = merged + chunk
    return merged


def tiers(*replies: str) -> list[ScriptedChatModel]:
    return [ScriptedChatModel(model=f"m{i}", reply=r) for i, r in enumerate(replies)]


def stray_threads() -> int:
    """Threads running but the package's loop and workers and asyncio's own.

    A call that leaves none behind leaves this count as it found it.
    """
    return sum(
        not t.name.startswith(("cascade-loop", "cascade-worker", "asyncio_"))
        for t in threading.enumerate()
    )


def in_threads(
    function: Callable[[], T], count: int
) -> tuple[list[T], list[BaseException]]:
    """Call ``function`` in ``count`` threads at once: what they returned and raised.

    The threads wait for each other at a barrier before calling; each is waited
    for up to 30 s.
    """
    barrier = threading.Barrier(count)
    results: list[T] = []
    errors: list[BaseException] = []

    def worker() -> None:
        barrier.wait()
        try:
            results.append(function())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results, errors


def call_cleanly(model: Any, mode: str, value: Any) -> Any:
    """:func:`call`, checked to end within 5 s and to leave nothing running.

    No thread left but the package's loop and workers, no task pending on that
    loop: what timed out during the call was cancelled for real.
    """
    threads = stray_threads()
    started = time.perf_counter()
    answer = call(model, mode, value)
    assert time.perf_counter() - started < 5
    assert stray_threads() == threads
    assert pending_tasks() == 0
    return answer


def cascade_meta(message: BaseMessage) -> dict[str, Any]:
    meta: dict[str, Any] = message.response_metadata["cascade"]
    return meta
