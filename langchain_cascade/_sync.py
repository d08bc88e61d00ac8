"""Run a coroutine from sync code, with a timeout, and leave nothing running.

Used by the sync driver for tier timeouts and by async gates called from sync
code. The coroutine runs on a worker thread that owns a fresh event loop, so
it works from inside a running loop too (a sync ``invoke`` in Jupyter). Past the
timeout the task is cancelled on its own loop; the loop's executor is shut
down without waiting, and the thread is joined before returning.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

__all__ = ["iterate_async", "run_coroutine"]

T = TypeVar("T")


def run_coroutine(
    make: Callable[[], Coroutine[Any, Any, T]],
    *,
    timeout: float | None = None,
    on_timeout: Callable[[], BaseException] | None = None,
) -> T:
    """Run ``make()`` to completion on a worker thread's own event loop.

    Args:
        make: Builds the coroutine (called on the worker thread, in a copy of the
            caller's context, so context variables and tracing carry over).
        timeout: Seconds before the coroutine is cancelled; ``None``: no limit.
        on_timeout: Builds the exception to raise past ``timeout`` (default
            ``TimeoutError``).

    Returns:
        The coroutine's result.

    Raises:
        BaseException: What the coroutine raised, or ``on_timeout()``.
    """
    context = contextvars.copy_context()
    outcome: dict[str, Any] = {}

    async def main() -> None:
        loop = asyncio.get_running_loop()
        executor = ThreadPoolExecutor(thread_name_prefix="cascade-worker")
        loop.set_default_executor(executor)
        deadline = asyncio.timeout(timeout)
        try:
            async with deadline:
                outcome["value"] = await make()
        except TimeoutError as exc:
            if not deadline.expired():
                raise  # the coroutine's own TimeoutError
            outcome["timeout"] = exc
        finally:
            executor.shutdown(wait=False, cancel_futures=True)

    def work() -> None:
        loop = asyncio.new_event_loop()
        try:
            context.run(loop.run_until_complete, main())
        except BaseException as exc:  # noqa: BLE001 - re-raised on the caller's thread
            outcome["error"] = exc
        finally:
            _close(loop)

    thread = threading.Thread(target=work, name="cascade-sync", daemon=True)
    thread.start()
    thread.join()
    if "timeout" in outcome:
        raise (on_timeout() if on_timeout else TimeoutError()) from outcome["timeout"]
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]  # type: ignore[no-any-return]


def _close(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what is left on ``loop``, finish async generators, close it."""
    try:
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        loop.close()


_DONE = object()


def iterate_async(
    make: Callable[[], AsyncIterator[T]],
    *,
    timeout: float | None,
    on_timeout: Callable[[], BaseException],
) -> Iterator[T]:
    """Iterate ``make()`` from sync code, on a worker thread's own event loop.

    Items are handed over as they come. Past ``timeout`` seconds in all, or when
    the caller stops iterating, the iteration is cancelled on its loop and the
    worker thread is joined before this generator returns or raises.

    Args:
        make: Builds the async iterator (on the worker thread, in a copy of the
            caller's context).
        timeout: Seconds the whole iteration may take; ``None``: no limit.
        on_timeout: Builds the exception raised past ``timeout``.

    Yields:
        The iterator's items.

    Raises:
        BaseException: What the iterator raised, or ``on_timeout()``.
    """
    context = contextvars.copy_context()
    items: queue.Queue[tuple[object, BaseException | None]] = queue.Queue()
    ready = threading.Event()
    state: dict[str, Any] = {}

    async def drain() -> None:
        state["task"] = asyncio.current_task()
        ready.set()
        try:
            async for item in make():
                items.put((item, None))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            items.put((_DONE, exc))
            return
        items.put((_DONE, None))

    def work() -> None:
        state["loop"] = asyncio.new_event_loop()
        try:
            _run_owned(state["loop"], context, drain())
        finally:
            ready.set()

    thread = threading.Thread(target=work, name="cascade-sync-stream", daemon=True)
    thread.start()
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            try:
                if remaining is not None and remaining <= 0:
                    raise queue.Empty
                item, error = items.get(timeout=remaining)
            except queue.Empty:
                raise on_timeout() from None
            if item is _DONE:
                if error is not None:
                    raise error
                return
            yield item  # type: ignore[misc]
    finally:
        ready.wait()
        loop, task = state.get("loop"), state.get("task")
        if loop is not None and task is not None and not loop.is_closed():
            # The loop may close meanwhile: then there is nothing to cancel.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(task.cancel)
        thread.join()


def _run_owned(
    loop: asyncio.AbstractEventLoop,
    context: contextvars.Context,
    coro: Coroutine[Any, Any, None],
) -> None:
    """Run ``coro`` on ``loop`` with an executor of its own, then close both."""
    executor = ThreadPoolExecutor(thread_name_prefix="cascade-worker")
    loop.set_default_executor(executor)
    try:
        context.run(loop.run_until_complete, coro)
    finally:
        executor.shutdown(wait=False, cancel_futures=True)
        _close(loop)
