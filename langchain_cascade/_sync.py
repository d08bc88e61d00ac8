"""Run coroutines from sync code, with a timeout, on one event loop the package owns.

Used by the sync driver for tier timeouts (a tier's async path can be cancelled,
its sync path cannot) and by async gates called from sync code (also from inside
a running loop, as in Jupyter). Every such coroutine runs on one worker thread's
event loop, started on first use and stopped at interpreter exit (or by
:func:`shutdown`): one loop, so clients that pool connections per loop (httpx,
behind ``ChatOpenAI``) keep working from call to call. Past its timeout a
coroutine is cancelled on that loop, and the caller waits until it has finished
cancelling: nothing of the call is left running.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextvars
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any, TypeVar

__all__ = [
    "WORKER_THREAD_PREFIXES",
    "ensure_running",
    "in_thread",
    "iterate_async",
    "pending_tasks",
    "run_coroutine",
    "shutdown",
]

WORKER_THREAD_PREFIXES = ("cascade-loop", "cascade-worker")
"""Names of the threads of the package's worker loop (long-lived, like a pool)."""

T = TypeVar("T")

_lock = threading.Lock()
_runner: _Runner | None = None


class _Runner:
    """A daemon thread running one event loop forever."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.executor = concurrent.futures.ThreadPoolExecutor(
            thread_name_prefix="cascade-worker"
        )
        self.loop.set_default_executor(self.executor)
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="cascade-loop", daemon=True
        )
        self.thread.start()

    def submit(
        self, coro: Coroutine[Any, Any, T], context: contextvars.Context
    ) -> concurrent.futures.Future[T]:
        async def in_context() -> T:
            task = asyncio.get_running_loop().create_task(coro, context=context)
            return await task

        return asyncio.run_coroutine_threadsafe(in_context(), self.loop)

    def stop(self) -> None:
        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.loop.shutdown_asyncgens()

        if self.loop.is_running():
            asyncio.run_coroutine_threadsafe(cancel_all(), self.loop).result(5)
            self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.executor.shutdown(wait=False, cancel_futures=True)
        if not self.loop.is_running():
            self.loop.close()


def _get_runner() -> _Runner:
    global _runner  # noqa: PLW0603 - one loop per process, made on first use
    with _lock:
        if _runner is None:
            _runner = _Runner()
        return _runner


def ensure_running() -> None:
    """Start the worker loop now (it starts on first use otherwise).

    For resource checks that compare a process before and after a call: the loop,
    its thread and its descriptors then belong to the "before".
    """
    _get_runner()


def shutdown() -> None:
    """Stop the worker loop (run at interpreter exit); the next use starts a new one."""
    global _runner
    with _lock:
        runner, _runner = _runner, None
    if runner is not None:
        runner.stop()


atexit.register(shutdown)


def pending_tasks() -> int:
    """Tasks alive on the worker loop (0 when idle or not started); for tests."""
    runner = _runner
    if runner is None:
        return 0

    async def count() -> int:
        return len(asyncio.all_tasks()) - 1

    return asyncio.run_coroutine_threadsafe(count(), runner.loop).result(5)


def run_coroutine(
    make: Callable[[], Coroutine[Any, Any, T]],
    *,
    timeout: float | None = None,
    on_timeout: Callable[[], BaseException] | None = None,
) -> T:
    """Run ``make()`` on the worker loop and wait for its result.

    Args:
        make: Builds the coroutine (in a copy of the caller's context, so context
            variables and tracing carry over).
        timeout: Seconds before the coroutine is cancelled; ``None``: no limit.
        on_timeout: Builds the exception raised past ``timeout`` (default
            ``TimeoutError``).

    Returns:
        The coroutine's result.

    Raises:
        BaseException: What the coroutine raised, or ``on_timeout()``.
    """
    context = contextvars.copy_context()

    async def bounded() -> tuple[bool, Any]:
        deadline = asyncio.timeout(timeout)
        try:
            async with deadline:
                return True, await make()
        except TimeoutError:
            if deadline.expired():
                return False, None
            raise  # the coroutine's own TimeoutError

    future = _get_runner().submit(bounded(), context)
    try:
        finished, value = future.result()
    except BaseException:
        future.cancel()  # the caller was interrupted: stop the coroutine too
        raise
    if not finished:
        raise on_timeout() if on_timeout else TimeoutError()
    return value  # type: ignore[no-any-return]


async def in_thread(func: Callable[..., T], *args: Any) -> T:
    """Await ``func(*args)`` run on the worker loop's thread pool, in a context copy.

    Like ``asyncio.to_thread``, but on the package's pool, from any event loop:
    a thread that cannot be interrupted (a blocked sync gate past its timeout)
    then holds up neither the caller's loop nor its shutdown (``asyncio.run``
    waits for its own default executor's threads).

    Args:
        func: The blocking function.
        *args: Its arguments.

    Returns:
        What ``func`` returned.
    """
    context = contextvars.copy_context()
    future = _get_runner().executor.submit(context.run, func, *args)
    return await asyncio.wrap_future(future)


_DONE = object()


def iterate_async(
    make: Callable[[], AsyncIterator[T]],
    *,
    timeout: float | None,
    on_timeout: Callable[[], BaseException],
) -> Iterator[T]:
    """Iterate ``make()`` from sync code, on the worker loop.

    Items are handed over as they come. Past ``timeout`` seconds in all, or when
    the caller stops iterating, the iteration is cancelled on the loop, and this
    generator returns or raises only once it has stopped.

    Args:
        make: Builds the async iterator (in a copy of the caller's context).
        timeout: Seconds the whole iteration may take; ``None``: no limit.
        on_timeout: Builds the exception raised past ``timeout``.

    Yields:
        The iterator's items.

    Raises:
        BaseException: What the iterator raised, or ``on_timeout()``.
    """
    context = contextvars.copy_context()
    items: queue.Queue[tuple[object, BaseException | None]] = queue.Queue()

    started, stopped = threading.Event(), threading.Event()

    async def drain() -> None:
        started.set()
        try:
            async for item in make():
                items.put((item, None))
        except Exception as exc:  # noqa: BLE001 - handed to the caller
            items.put((_DONE, exc))
            return
        finally:
            stopped.set()
        items.put((_DONE, None))

    future = _get_runner().submit(drain(), context)
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
        future.cancel()
        # Wait until the iteration has stopped (its finally blocks have run); a
        # drain cancelled before it started has nothing to stop.
        while not stopped.wait(0.01):
            if not started.is_set():
                break
