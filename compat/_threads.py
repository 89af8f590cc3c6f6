"""``run_sync``: call a blocking function in a worker thread, the same way on both backends.

The worker runs in a copy of the caller's context with sniffio's context variable reset, so library detection in
the thread says "no async library" instead of a leaked ``"asyncio"`` (anyio.run sets that variable). The call is
not cancellable unless ``abandon_on_cancel=True`` (trio's and anyio's default): a cancelled caller waits for the
thread to finish and then sees the cancellation.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from typing import Any, TypeVar

import sniffio

from ._backend import _get_running_loop, is_trio, no_loop_error, trio_module
from ._sync import CapacityLimiter
from ._tasks import _await_through_cancellation

T = TypeVar("T")


def _call_without_async_library(fn: Callable[..., T], *args: Any) -> T:
    sniffio.current_async_library_cvar.set(None)
    return fn(*args)


async def _run_in_executor(
    fn: Callable[..., T], args: tuple[Any, ...], abandon_on_cancel: bool, limiter: CapacityLimiter | None
) -> T:
    loop = _get_running_loop()
    if loop is None:
        raise no_loop_error()
    context = contextvars.copy_context()
    call = functools.partial(context.run, _call_without_async_library, fn, *args)
    if limiter is None:
        future = loop.run_in_executor(None, call)
    else:
        # The token is held until the thread is done, even when the caller abandons it (as trio does), so the
        # limiter bounds the threads that really run, not just the callers still waiting.
        semaphore = limiter.native()
        await semaphore.acquire()
        try:
            future = loop.run_in_executor(None, call)
        except BaseException:
            semaphore.release()
            raise
        future.add_done_callback(functools.partial(_release_when_done, semaphore))
        if abandon_on_cancel:
            return await asyncio.shield(future)  # a cancelled caller must not cancel ``future``: it holds the token
    if abandon_on_cancel:
        return await future
    return await _await_through_cancellation(future)


def _release_when_done(semaphore: asyncio.Semaphore, future: asyncio.Future[Any]) -> None:
    semaphore.release()
    if not future.cancelled():
        future.exception()  # an abandoned call's error has nobody to go to: don't log it as "never retrieved"


async def run_sync(
    fn: Callable[..., T],
    *args: Any,
    limiter: CapacityLimiter | None = None,
    abandon_on_cancel: bool = False,
) -> T:
    """Run ``fn(*args)`` in a worker thread and return its result (or raise its exception).

    Not cancellable by default: a cancelled caller waits for the thread to finish, then gets the cancellation
    instead of the result (on trio an error raised by the thread comes first, the cancellation at the next
    checkpoint). ``limiter`` bounds how many threads run at once; a thread keeps its token until it returns, abandoned or
    not (trio's default limiter allows 40; asyncio's default executor ``min(32, cpus + 4)``). With
    ``abandon_on_cancel=True`` a cancelled caller returns at once and the thread is left to finish on its own;
    its result is discarded.
    """
    if is_trio():
        trio = trio_module()
        result: T = await trio.to_thread.run_sync(
            functools.partial(_call_without_async_library, fn, *args),
            abandon_on_cancel=abandon_on_cancel,
            limiter=limiter.native() if limiter is not None else None,
        )
        await trio.lowlevel.checkpoint_if_cancelled()  # a cancellation that waited for the thread, as on asyncio
        return result
    return await _run_in_executor(fn, args, abandon_on_cancel, limiter)
