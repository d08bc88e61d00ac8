"""Run a coroutine from sync code, with a timeout, and leave nothing running.

Used by the sync driver for tier timeouts and by async gates called from sync
code. The coroutine runs on a worker thread that owns a fresh event loop, so
it works from inside a running loop too (a sync ``invoke`` in Jupyter). Past the
timeout the task is cancelled on its own loop; the loop's executor is shut
down without waiting, and the thread is joined before returning.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

__all__ = ["run_coroutine"]

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
