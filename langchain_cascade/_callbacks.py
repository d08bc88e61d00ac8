"""Run a child model or a gate as a nested run of the cascade's run.

All the LangChain plumbing of nesting sits here: building a child callback manager
from the cascade's run (``CallbackManagerForLLMRun`` has no ``get_child``), and
calling the child inside ``set_config_context`` so that a child reached through a
``RunnableBinding`` (``bind_tools``) is not re-parented to the ambient run.

Tokens: every child run of the cascade (tiers, gates, formatter) reaches the
caller's handlers with its token events withheld (:func:`withhold_tokens`), so a
handler printing ``on_llm_new_token`` or an ``astream_events`` consumer reading
``on_chat_model_stream`` never sees a draft a gate may reject, nor the final
tier's tokens twice: the answer is streamed once, by the cascade's own run.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Generator,
    Iterator,
    Sequence,
)
from dataclasses import dataclass, field
from typing import Any, cast
from uuid import UUID

from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    BaseCallbackHandler,
    CallbackManager,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models._utils import _normalize_messages
from langchain_core.messages import BaseMessage
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.runnables.config import set_config_context
from langchain_core.runnables.utils import coro_with_context

__all__ = [
    "ParentRun",
    "agenerate_unobserved",
    "ainvoke_nested",
    "astream_nested",
    "generate_unobserved",
    "invoke_nested",
    "stream_nested",
]


@dataclass(frozen=True)
class ParentRun:
    """What children of the cascade's run inherit: its id, handlers, tags, metadata.

    ``configurable`` is the call's ``config["configurable"]``, passed on to the
    tiers (a ``configurable_fields`` tier reads it).
    """

    run_id: UUID
    handlers: Sequence[BaseCallbackHandler]
    tags: Sequence[str]
    metadata: dict[str, Any]
    configurable: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_run_manager(
        cls, run_manager: CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun
    ) -> ParentRun:
        """The parent for a call that has its run manager (invoke, ainvoke, batch)."""
        return cls(
            run_id=run_manager.run_id,
            handlers=list(run_manager.inheritable_handlers),
            tags=list(run_manager.inheritable_tags),
            metadata=dict(run_manager.inheritable_metadata),
        )

    @classmethod
    def from_config(
        cls, run_id: UUID, config: RunnableConfig, model: BaseChatModel
    ) -> ParentRun:
        """The parent for a streamed call, which gets no run manager.

        ``BaseChatModel.stream`` configures callbacks from the config and the
        model's own callbacks, tags and metadata; this does the same, with the run
        id that the cascade gave the base class before it started the run.
        """
        manager = CallbackManager.configure(
            config.get("callbacks"),
            model.callbacks,
            model.verbose,
            config.get("tags"),
            model.tags,
            config.get("metadata"),
            model.metadata,
        )
        return cls(
            run_id=run_id,
            handlers=list(manager.inheritable_handlers),
            tags=list(manager.inheritable_tags),
            metadata=dict(manager.inheritable_metadata),
            configurable=dict(config.get("configurable") or {}),
        )

    def child_config(
        self,
        *,
        run_name: str | None = None,
        tags: Sequence[str] = (),
        metadata: dict[str, Any] | None = None,
        handlers: Sequence[BaseCallbackHandler] = (),
    ) -> RunnableConfig:
        """A config whose runs are children of the cascade's run.

        Args:
            run_name: The child run's name.
            tags: Tags for the child run (and its own children).
            metadata: Metadata for the child run.
            handlers: Extra handlers for the child run and everything under it.

        Returns:
            The config to invoke the child with.
        """
        manager = CallbackManager(handlers=[], parent_run_id=self.run_id)
        manager.set_handlers([withhold_tokens(h) for h in self.handlers])
        manager.add_tags(list(self.tags))
        manager.add_metadata(self.metadata)
        for handler in handlers:
            manager.add_handler(handler, inherit=True)
        config = RunnableConfig(callbacks=manager, tags=list(tags))
        if run_name is not None:
            config["run_name"] = run_name
        if metadata:
            config["metadata"] = metadata
        if self.configurable:
            config["configurable"] = dict(self.configurable)
        return config


def withhold_tokens(handler: BaseCallbackHandler) -> BaseCallbackHandler:
    """``handler`` as seen by the cascade's child runs: the same, minus tokens.

    A view of the same object (it shares the handler's attributes and state, is an
    instance of its class, and compares equal to it) whose ``on_llm_new_token``
    does nothing. A handler whose state cannot be shared (``__slots__``) is
    returned as it is.

    Args:
        handler: One of the caller's handlers.

    Returns:
        The view.
    """
    if isinstance(handler, _Withheld) or not hasattr(handler, "__dict__"):
        return handler
    view_class = _withheld_class(cast("type", type(handler)))
    if view_class is None:
        return handler
    view: object = object.__new__(view_class)
    try:
        object.__setattr__(view, "__dict__", handler.__dict__)
    except (AttributeError, TypeError):
        return handler
    return cast("BaseCallbackHandler", view)


class _Withheld:
    """Marker base of the token-withholding views."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        return other is self or getattr(other, "__dict__", None) is self.__dict__

    def __hash__(self) -> int:
        return id(self.__dict__)


def _drop_token(*args: Any, **kwargs: Any) -> None:
    """A token event, withheld."""


async def _adrop_token(*args: Any, **kwargs: Any) -> None:
    """A token event, withheld."""


@functools.cache
def _withheld_class(cls: type) -> type | None:
    slots = {
        name
        for klass in cls.__mro__
        for name in getattr(klass, "__slots__", ())
        if name not in ("__dict__", "__weakref__")
    }
    if slots:  # state outside ``__dict__`` (e.g. a pydantic handler): not shareable
        return None
    try:
        original = getattr(cls, "on_llm_new_token", None)
        drop = _adrop_token if inspect.iscoroutinefunction(original) else _drop_token
        return type(
            f"TokensWithheld{cls.__name__}",
            (_Withheld, cls),
            {"on_llm_new_token": drop, "__module__": cls.__module__},
        )
    except Exception:  # noqa: BLE001 - an unsubclassable class: leave it as it is
        return None


def generate_unobserved(
    model: BaseChatModel, messages: list[BaseMessage], **kwargs: Any
) -> BaseMessage:
    """``model.invoke(messages, **kwargs)`` for a call no handler listens to.

    The model's own generation (its cache, rate limiter, ``output_version``,
    response metadata) without the run machinery around it: no callback manager,
    no run, no traced params, which nobody would see. Only for unwrapped chat
    models called when no handler listens (the cascade's quiet path).

    Args:
        model: The chat model.
        messages: The conversation.
        **kwargs: Call arguments (``stop`` among them).

    Returns:
        The answer.
    """
    stop = kwargs.pop("stop", None)
    result = model._generate_with_cache(
        _normalize_messages(messages), stop=stop, run_manager=None, **kwargs
    )
    return result.generations[0].message


async def agenerate_unobserved(
    model: BaseChatModel, messages: list[BaseMessage], **kwargs: Any
) -> BaseMessage:
    """The async :func:`generate_unobserved`.

    Args:
        model: The chat model.
        messages: The conversation.
        **kwargs: Call arguments (``stop`` among them).

    Returns:
        The answer.
    """
    stop = kwargs.pop("stop", None)
    result = await model._agenerate_with_cache(
        _normalize_messages(messages), stop=stop, run_manager=None, **kwargs
    )
    return result.generations[0].message


def invoke_nested(
    runnable: Runnable[Any, Any], value: Any, config: RunnableConfig, **kwargs: Any
) -> Any:
    """Invoke ``runnable`` as a child run described by ``config``."""
    with set_config_context(config) as context:
        return context.run(runnable.invoke, value, config, **kwargs)


async def ainvoke_nested(
    runnable: Runnable[Any, Any], value: Any, config: RunnableConfig, **kwargs: Any
) -> Any:
    """Await ``runnable`` as a child run described by ``config``."""
    with set_config_context(config) as context:
        return await coro_with_context(
            runnable.ainvoke(value, config, **kwargs), context
        )


def stream_nested(
    runnable: Runnable[Any, Any], value: Any, config: RunnableConfig, **kwargs: Any
) -> Iterator[Any]:
    """Stream ``runnable`` as a child run described by ``config``."""
    with set_config_context(config) as context:
        iterator = cast(
            "Generator[Any, None, None]",
            context.run(runnable.stream, value, config, **kwargs),
        )
        try:
            while True:
                try:
                    chunk = context.run(next, iterator)
                except StopIteration:
                    return
                yield chunk
        finally:
            context.run(iterator.close)


async def astream_nested(
    runnable: Runnable[Any, Any], value: Any, config: RunnableConfig, **kwargs: Any
) -> AsyncIterator[Any]:
    """Stream ``runnable`` asynchronously as a child run described by ``config``."""
    with set_config_context(config) as context:
        iterator = cast(
            "AsyncGenerator[Any, None]",
            context.run(runnable.astream, value, config, **kwargs),
        )
        try:
            while True:
                try:
                    chunk = await coro_with_context(anext(iterator), context)
                except StopAsyncIteration:
                    return
                yield chunk
        finally:
            await coro_with_context(iterator.aclose(), context)
