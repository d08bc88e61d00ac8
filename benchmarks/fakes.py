"""The frame shared by the benchmarks' and the tests' fake chat models.

A fake names itself with class variables and writes one method, ``_reply`` (the
answer to a call's messages); :class:`FakeChatModel` turns that into
``_generate``, ``_llm_type``, ``_identifying_params`` and ``_get_ls_params``.
:class:`ToolFakeChatModel` adds ``bind_tools``; :class:`AsyncFakeChatModel`
answers ``ainvoke`` on the event loop (after an optional ``asyncio.sleep``)
instead of in a worker thread.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar, cast

from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import BaseChatModel, LangSmithParams
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.utils.function_calling import convert_to_openai_tool

__all__ = [
    "AsyncFakeChatModel",
    "FakeChatModel",
    "ToolFakeChatModel",
    "as_result",
    "merged_result",
]


def as_result(message: AIMessage) -> ChatResult:
    """``message`` as the one generation of a chat result."""
    return ChatResult(generations=[ChatGeneration(message=message)])


def merged_result(chunks: Iterable[ChatGenerationChunk]) -> ChatResult:
    """The streamed chunks (at least one) as one message: content, metadata, usage."""
    merged: AIMessageChunk | None = None
    for chunk in chunks:
        part = cast("AIMessageChunk", chunk.message)
        merged = part if merged is None else merged + part
    assert merged is not None  # noqa: S101 - a reply has at least one token
    return as_result(
        AIMessage(
            content=merged.content,
            response_metadata=merged.response_metadata,
            usage_metadata=merged.usage_metadata,
        )
    )


class FakeChatModel(BaseChatModel):
    """A fake chat model whose subclass names itself and writes ``_reply``.

    Class variables (not fields):

    - ``fake_type``: the ``_llm_type``;
    - ``identifying_fields``: the fields of ``_identifying_params`` (none: the
      ``BaseLanguageModel`` default);
    - ``ls_name_field``: the field traced as ``ls_model_name`` (``None``: the
      ``BaseChatModel`` default);
    """

    fake_type: ClassVar[str] = "fake"
    identifying_fields: ClassVar[tuple[str, ...]] = ()
    ls_name_field: ClassVar[str | None] = None

    @property
    def _llm_type(self) -> str:
        return self.fake_type

    @property
    def _identifying_params(self) -> Mapping[str, Any]:
        if not self.identifying_fields:
            return super()._identifying_params
        return {name: getattr(self, name) for name in self.identifying_fields}

    def _get_ls_params(
        self, stop: list[str] | None = None, **kwargs: Any
    ) -> LangSmithParams:
        params = super()._get_ls_params(stop=stop, **kwargs)
        if self.ls_name_field is not None:
            params["ls_model_name"] = getattr(self, self.ls_name_field)
        return params

    def _wait_s(self) -> float | None:
        """Seconds a call sleeps before its answer (``None``: it does not sleep)."""
        return None

    def _reply(
        self, messages: list[BaseMessage], stop: list[str] | None, **kwargs: Any
    ) -> AIMessage:
        """The answer to one call.

        Args:
            messages: The call's messages.
            stop: The call's stop words.
            **kwargs: The call's other arguments (e.g. bound ``tools``).
        """
        raise NotImplementedError

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if (wait := self._wait_s()) is not None:
            time.sleep(wait)
        return as_result(self._reply(messages, stop, **kwargs))


class AsyncFakeChatModel(FakeChatModel):
    """A fake that answers ``ainvoke`` on the event loop, not in a worker thread.

    ``_async_wait_s`` is how long it awaits ``asyncio.sleep`` first (``None``: it
    does not); the sync wait (``_wait_s``) is not taken there.
    """

    def _async_wait_s(self) -> float | None:
        """Seconds an async call sleeps before its answer (``None``: none)."""
        return None

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if (wait := self._async_wait_s()) is not None:
            await asyncio.sleep(wait)
        return as_result(self._reply(messages, stop, **kwargs))


class ToolFakeChatModel(FakeChatModel):
    """A fake that accepts tools: ``bind_tools`` binds them in OpenAI format.

    ``forwards_tool_choice`` (a class variable): whether it binds a ``tool_choice``
    too.
    """

    forwards_tool_choice: ClassVar[bool] = True

    def bind_tools(
        self,
        tools: Sequence[Any],
        *,
        tool_choice: Any = None,
        **kwargs: Any,
    ) -> Runnable[Any, AIMessage]:
        """Bind the tools in OpenAI format (the fake's ``_reply`` sees them)."""
        formatted = [convert_to_openai_tool(t) for t in tools]
        choice = (
            {"tool_choice": tool_choice}
            if self.forwards_tool_choice and tool_choice is not None
            else {}
        )
        return self.bind(tools=formatted, **choice, **kwargs)
