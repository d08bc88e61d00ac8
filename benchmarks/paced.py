"""A fake chat model that writes its reply token by token at a controlled pace.

Used by the latency benchmark and the latency-mode tests: ``first_token_s`` is
the time to the first token (the prompt's processing), ``token_s`` the time of
each further token. It counts its open streams, so a test can see that a
cancelled tier really stopped.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    CallbackManagerForLLMRun,
)
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from pydantic import Field, PrivateAttr

from benchmarks.fakes import ToolFakeChatModel, merged_result

__all__ = ["PacedChatModel", "split_tokens"]


def split_tokens(text: str) -> list[str]:
    """Words with their trailing spaces: the fake's tokens.

    >>> split_tokens("I am  sure.")
    ['I ', 'am  ', 'sure.']
    """
    return re.findall(r"\S+\s*", text)


class PacedChatModel(ToolFakeChatModel):
    """Streams ``reply`` one token every ``token_s`` after ``first_token_s``.

    ``logprobs`` gives each token's logprob (cycled when shorter than the reply);
    the last chunk carries the usage, as OpenAI-style servers send it. Tools
    can be bound (the fake never calls them).
    """

    fake_type = "paced"
    identifying_fields = ("model", "reply")
    ls_name_field = "model"
    forwards_tool_choice = False

    model: str = "paced"
    reply: str = "OK."
    first_token_s: float = 0.0
    token_s: float = 0.0
    logprobs: list[float] = Field(default_factory=lambda: [-0.01])
    max_tokens: int = 64
    _lock: Any = PrivateAttr(default_factory=threading.Lock)
    _open: int = PrivateAttr(default=0)
    _started: int = PrivateAttr(default=0)
    _stopped_early: int = PrivateAttr(default=0)
    _tokens_sent: int = PrivateAttr(default=0)
    _start_times: list[float] = PrivateAttr(default_factory=list)

    def _count(self, name: str) -> int:
        with self._lock:
            return int(getattr(self, name))

    @property
    def open_streams(self) -> int:
        """Streams started and not yet finished or closed."""
        return self._count("_open")

    @property
    def stopped_early(self) -> int:
        """Streams closed or cancelled before their last token."""
        return self._count("_stopped_early")

    @property
    def started(self) -> int:
        """Streams started."""
        return self._count("_started")

    @property
    def tokens_sent(self) -> int:
        """Tokens written, over all streams."""
        return self._count("_tokens_sent")

    @property
    def start_times(self) -> list[float]:
        """``time.perf_counter()`` at each stream's start."""
        with self._lock:
            return list(self._start_times)

    def reset_counters(self) -> None:
        """Forget the counts."""
        with self._lock:
            self._started = self._stopped_early = self._tokens_sent = 0
            self._start_times.clear()

    def _chunk(
        self, i: int, token: str, tokens: list[str], messages: list[BaseMessage]
    ) -> ChatGenerationChunk:
        logprob = self.logprobs[i % len(self.logprobs)]
        last = i == len(tokens) - 1
        prompt = sum(len(split_tokens(m.text)) for m in messages)
        return ChatGenerationChunk(
            message=AIMessageChunk(
                content=token,
                response_metadata={
                    "logprobs": {
                        "content": [
                            {"token": token, "logprob": logprob, "top_logprobs": []}
                        ]
                    },
                    **({"model_name": self.model} if last else {}),
                },
                usage_metadata=(
                    {
                        "input_tokens": prompt,
                        "output_tokens": len(tokens),
                        "total_tokens": prompt + len(tokens),
                    }
                    if last
                    else None
                ),
            )
        )

    def _begin(self) -> list[str]:
        with self._lock:
            self._open += 1
            self._started += 1
            self._start_times.append(time.perf_counter())
        return split_tokens(self.reply)[: self.max_tokens]

    def _end(self, *, sent: int, total: int) -> None:
        with self._lock:
            self._open -= 1
            self._tokens_sent += sent
            if sent < total:
                self._stopped_early += 1

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        tokens = self._begin()
        sent = 0
        try:
            time.sleep(self.first_token_s)
            for i, token in enumerate(tokens):
                if i:
                    time.sleep(self.token_s)
                chunk = self._chunk(i, token, tokens, messages)
                sent += 1
                if run_manager:
                    run_manager.on_llm_new_token(token, chunk=chunk)
                yield chunk
        finally:
            self._end(sent=sent, total=len(tokens))

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        tokens = self._begin()
        sent = 0
        try:
            await asyncio.sleep(self.first_token_s)
            for i, token in enumerate(tokens):
                if i:
                    await asyncio.sleep(self.token_s)
                chunk = self._chunk(i, token, tokens, messages)
                sent += 1
                if run_manager:
                    await run_manager.on_llm_new_token(token, chunk=chunk)
                yield chunk
        finally:
            self._end(sent=sent, total=len(tokens))

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return merged_result(self._stream(messages, stop, run_manager, **kwargs))

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        stream = self._astream(messages, stop, run_manager, **kwargs)
        return merged_result([chunk async for chunk in stream])
