"""asgi-lifespan's concurrency backend on ``compat`` (vendored as ``asgi_lifespan._vendored_compat``).

asgi-lifespan 2.1.0 runs an ASGI app's lifespan protocol next to the caller's ``async with LifespanManager(app)``
block, and for that dispatches asyncio/trio itself in ``_concurrency/``: a backend per library (chosen with
sniffio) that makes events, bounded queues, a "fail after N seconds" wrapper and an async context manager that
runs the app in the background for the duration of the block. This package replaces that folder; everything here
comes from ``compat``, with nothing chosen per library except the one case at the end:

* ``create_event()``: :class:`compat.Event` (native ``asyncio.Event`` / ``trio.Event``);
* ``create_queue(capacity)``: :class:`compat.Queue` (``asyncio.Queue`` / a trio memory channel pair);
* ``run_and_fail_after(seconds, fn)``: ``await fn()`` inside :func:`compat.fail_after` (``None``: no deadline),
  which raises the builtin ``TimeoutError`` on both backends as the library's own code did;
* ``run_in_background(fn)``: :class:`Background`, a :class:`compat.TaskGroup` entered for the block, with the app
  as its only child and ``cancel()`` when the block exits, so an app still running then is cancelled (as the
  library's asyncio backend did; its trio backend waited for it).

Errors out of the block are the library's: the block's own exception propagates unchanged, the app's error alone
is raised as itself (not in a group), and when both failed, asgi-lifespan's two backends disagree and its suite
checks both ways: its asyncio backend raised the app's error (the block's is its ``__context__``), its trio
backend an ``ExceptionGroup`` of both. :meth:`Background.__aexit__` keeps that difference on purpose, with the
one ``current_backend()`` test in this package, so that no user of the library sees another exception.

``BaseEvent`` / ``BaseQueue`` keep the names of the interfaces this module used to define.
"""

from __future__ import annotations

import types
import typing

from .._vendored_compat import Event, Queue, TaskGroup, create_task_group, current_backend, fail_after

BaseEvent = Event
BaseQueue = Queue


class ConcurrencyBackend:
    """Events, queues, a deadline and a background task for the running library, all from ``compat``."""

    __slots__ = ()

    def create_event(self) -> Event:
        return Event()

    def create_queue(self, capacity: int) -> Queue[typing.Any]:
        return Queue(capacity)

    async def run_and_fail_after(
        self, seconds: float | None, coroutine: typing.Callable[[], typing.Awaitable[None]]
    ) -> None:
        """``await coroutine()``; ``TimeoutError`` if it takes more than ``seconds`` (``None``: no limit)."""
        with fail_after(seconds):
            await coroutine()

    def run_in_background(self, coroutine: typing.Callable[[], typing.Awaitable[None]]) -> Background:
        return Background(coroutine)


class Background:
    """``async with Background(fn):`` runs ``fn()`` in a task group for the block; cancels it if still running."""

    __slots__ = ("_coroutine", "_group", "_running")

    def __init__(self, coroutine: typing.Callable[[], typing.Awaitable[None]]) -> None:
        self._coroutine = coroutine
        self._group: TaskGroup | None = None
        self._running = False  # from start_soon until fn() has returned or raised

    async def _run(self) -> None:
        try:
            await self._coroutine()
        finally:
            self._running = False

    async def __aenter__(self) -> None:
        group = create_task_group()
        await group.__aenter__()
        self._group = group
        group.start_soon(self._run)
        self._running = True

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: types.TracebackType | None = None,
    ) -> bool:
        group, self._group = self._group, None
        assert group is not None, "Background exited without being entered"
        if exc_type is None and self._running:
            group.cancel()  # an app still running now is cancelled (a failing block cancels it anyway)
        try:
            await group.__aexit__(exc_type, exc_value, traceback)
            return False
        except BaseExceptionGroup as failures:
            block_failed = any(error is exc_value for error in failures.exceptions)  # not a cancellation it caused
            app_errors = [error for error in failures.exceptions if error is not exc_value]
            if not app_errors:
                return False  # only the block failed: its exception goes on as it is
            if block_failed and current_backend() == "trio":
                raise  # the block and the app both failed: both, in a group (the library's trio behaviour)
            (app_error,) = app_errors  # the app is the group's only child
        raise app_error  # alone, or replacing the block's error (the library's asyncio behaviour)
