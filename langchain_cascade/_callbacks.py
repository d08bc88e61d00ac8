"""Run a child model or a gate as a nested run of the cascade's run.

All the LangChain plumbing of nesting sits here: building a child callback manager
from the cascade's run (``CallbackManagerForLLMRun`` has no ``get_child``), and
calling the child inside ``set_config_context`` so that a child reached through a
``RunnableBinding`` (``bind_tools``) is not re-parented to the ambient run.
"""

from __future__ import annotations

from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Generator,
    Iterator,
    Sequence,
)
from dataclasses import dataclass
from typing import Any, cast
from uuid import UUID

from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    BaseCallbackHandler,
    CallbackManager,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.runnables.config import set_config_context
from langchain_core.runnables.utils import coro_with_context

__all__ = [
    "ParentRun",
    "ainvoke_nested",
    "astream_nested",
    "invoke_nested",
    "stream_nested",
]


@dataclass(frozen=True)
class ParentRun:
    """What children of the cascade's run inherit: its id, handlers, tags, metadata."""

    run_id: UUID
    handlers: Sequence[BaseCallbackHandler]
    tags: Sequence[str]
    metadata: dict[str, Any]

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
        manager.set_handlers(list(self.handlers))
        manager.add_tags(list(self.tags))
        manager.add_metadata(self.metadata)
        for handler in handlers:
            manager.add_handler(handler, inherit=True)
        config = RunnableConfig(callbacks=manager, tags=list(tags))
        if run_name is not None:
            config["run_name"] = run_name
        if metadata:
            config["metadata"] = metadata
        return config


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
