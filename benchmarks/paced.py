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
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any, cast

from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import Field, PrivateAttr

__all__ = ["PacedChatModel", "split_tokens"]


def split_tokens(text: str) -> list[str]:
    """Words with their trailing spaces: the fake's tokens.

    >>> split_tokens("I am  sure.")
    ['I ', 'am  ', 'sure.']
    """
    return re.findall(r"\S+\s*", text)


class PacedChatModel(BaseChatModel):
    """Streams ``reply`` one token every ``token_s`` after ``first_token_s``.

    ``logprobs`` gives each token's logprob (cycled when shorter than the reply);
    the last chunk carries the usage, as OpenAI-style servers send it.
    """

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

    @property
    def _llm_type(self) -> str:
        return "paced"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model": self.model, "reply": self.reply}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> Any:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_model_name"] = self.model
        return params

    @property
    def open_streams(self) -> int:
        """Streams started and not yet finished or closed."""
        with self._lock:
            return self._open

    @property
    def stopped_early(self) -> int:
        """Streams closed or cancelled before their last token."""
        with self._lock:
            return self._stopped_early

    @property
    def started(self) -> int:
        """Streams started."""
        with self._lock:
            return self._started

    @property
    def tokens_sent(self) -> int:
        """Tokens written, over all streams."""
        with self._lock:
            return self._tokens_sent

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
        merged: AIMessageChunk | None = None
        for chunk in self._stream(messages, stop, run_manager, **kwargs):
            part = cast("AIMessageChunk", chunk.message)
            merged = part if merged is None else merged + part
        assert merged is not None  # noqa: S101 - a reply has at least one token
        message = AIMessage(
            content=merged.content,
            response_metadata=merged.response_metadata,
            usage_metadata=merged.usage_metadata,
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        merged: AIMessageChunk | None = None
        async for chunk in self._astream(messages, stop, run_manager, **kwargs):
            part = cast("AIMessageChunk", chunk.message)
            merged = part if merged is None else merged + part
        assert merged is not None  # noqa: S101 - a reply has at least one token
        message = AIMessage(
            content=merged.content,
            response_metadata=merged.response_metadata,
            usage_metadata=merged.usage_metadata,
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def bind_tools(
        self,
        tools: Sequence[Any],
        *,
        tool_choice: Any = None,
        **kwargs: Any,
    ) -> Runnable[Any, AIMessage]:
        """Accept tools (the fake never calls them)."""
        formatted = [convert_to_openai_tool(t) for t in tools]
        return self.bind(tools=formatted, **kwargs)
