"""Shield, task groups and detached tasks.

``shield(fn, *args)`` takes a callable because asyncio cannot shield a ``with`` block: a ``task.cancel()`` reaches
any ``await`` in the task. So on asyncio the work runs in a task of its own, the caller keeps waiting for it through
every cancellation, and re-raises the first cancellation afterwards. If anyio is imported the wait also sits in an
``anyio.CancelScope(shield=True)``: a cancelled anyio scope re-cancels its task on every await, and without the
shield that wait would spin.

``spawn_detached`` starts a task that outlives its caller: ``loop.create_task`` with a strong reference on
asyncio; a trio system task with its own cancel scope and the caller's contextvars on trio.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import Awaitable, Callable, Coroutine
from types import TracebackType
from typing import Any, TypeVar

from ._backend import anyio_if_imported, current_backend, is_trio, trio_module

T = TypeVar("T")
logger = logging.getLogger(__name__.rpartition(".")[0] or __name__)


async def _await_through_cancellation(future: asyncio.Future[T]) -> T:
    """Wait for ``future`` even while being cancelled; afterwards re-raise the first cancellation, if any.

    The common case is one ``asyncio.shield``. Once cancelled, the wait goes on with ``asyncio.wait``, which never
    raises the future's own exception (so the cancellation cannot be lost) and never cancels the future.
    """
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError as exc:
        cancelled = exc
    anyio = anyio_if_imported()
    scope: contextlib.AbstractContextManager[Any] = (
        anyio.CancelScope(shield=True) if anyio is not None else contextlib.nullcontext()
    )
    with scope:
        while not future.done():
            try:
                await asyncio.wait((future,))
            except asyncio.CancelledError:
                pass  # the first cancellation is the one re-raised below
    if not future.cancelled() and future.exception() is not None:
        cancelled.__context__ = future.exception()
    raise cancelled


async def shield(fn: Callable[..., Awaitable[T]], *args: Any) -> T:
    """Run ``await fn(*args)`` to completion even if the caller is cancelled meanwhile.

    Returns its result or raises its exception. If the caller was cancelled (or timed out) before or during the
    call, the call still runs to the end and the cancellation is raised when it returns. If the call raised while
    the caller was cancelled: on asyncio the cancellation wins (the call's error is its ``__context__``); on trio
    the call's error propagates and the cancellation arrives at the next checkpoint.
    """
    if is_trio():
        trio = trio_module()
        with trio.CancelScope(shield=True):
            result = await fn(*args)
        await trio.lowlevel.checkpoint_if_cancelled()  # deliver a cancellation that arrived meanwhile, as asyncio does
        return result
    inner = asyncio.ensure_future(fn(*args))
    return await _await_through_cancellation(inner)


class _AsyncioTaskGroup:
    """``asyncio.TaskGroup`` with trio's ``start_soon(fn, *args)`` spelling."""

    __slots__ = ("_group",)

    def __init__(self) -> None:
        self._group = asyncio.TaskGroup()

    async def __aenter__(self) -> _AsyncioTaskGroup:
        await self._group.__aenter__()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._group.__aexit__(exc_type, exc, tb)

    def start_soon(self, fn: Callable[..., Coroutine[Any, Any, Any]], *args: Any, name: str | None = None) -> None:
        """Start ``fn(*args)`` as a child task."""
        self._group.create_task(fn(*args), name=name)


def create_task_group() -> Any:
    """``async with create_task_group() as tg: tg.start_soon(fn, *args)``.

    The block waits for every child. If a child fails, the others are cancelled and the failures surface as an
    ``ExceptionGroup`` on both backends (``asyncio.TaskGroup`` / a strict trio nursery).
    """
    if is_trio():
        return trio_module().open_nursery(strict_exception_groups=True)
    return _AsyncioTaskGroup()


DoneCallback = Callable[["TaskHandle"], object]


class TaskHandle:
    """A handle on a detached task: ``cancel()``, ``done()``, ``add_done_callback(cb)``, ``await wait()``.

    ``cancel()`` may be called from any task. ``wait()`` returns once the task has finished; it returns quietly
    if the task was cancelled, re-raises the task's exception otherwise, and cancelling the *waiter* never
    cancels the task. ``cb(handle)`` runs exactly once per callback, after completion.
    """

    __slots__ = ()

    def cancel(self) -> None:
        raise NotImplementedError

    def done(self) -> bool:
        raise NotImplementedError

    def add_done_callback(self, callback: DoneCallback) -> None:
        raise NotImplementedError

    async def wait(self) -> None:
        raise NotImplementedError


_running_tasks: set[asyncio.Task[Any]] = set()  # asyncio only keeps weak references to tasks


class _AsyncioTaskHandle(TaskHandle):
    """``wait()`` waits on futures of its own: awaiting the task itself would cancel it with a cancelled waiter.

    One done-callback per task (``_finished``) drops the strong reference and wakes the waiters.
    """

    __slots__ = ("_task", "_waiters")

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self._task = task
        self._waiters: list[asyncio.Future[None]] | None = None
        _running_tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        _running_tasks.discard(task)
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def cancel(self) -> None:
        self._task.cancel()

    def done(self) -> bool:
        return self._task.done()

    def add_done_callback(self, callback: DoneCallback) -> None:
        self._task.add_done_callback(lambda _task: callback(self))

    async def wait(self) -> None:
        task = self._task
        if not task.done():
            waiter: asyncio.Future[None] = task.get_loop().create_future()
            if self._waiters is None:
                self._waiters = [waiter]
            else:
                self._waiters.append(waiter)
            try:
                await waiter
            finally:
                waiters = self._waiters
                if waiters is not None and waiter in waiters:  # this waiter was cancelled: forget it
                    waiters.remove(waiter)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            raise exc


class _TrioTaskHandle(TaskHandle):
    __slots__ = ("_scope", "_finished", "_callbacks", "_exception")

    def __init__(self) -> None:
        trio = trio_module()
        self._scope = trio.CancelScope()
        self._finished = trio.Event()
        self._callbacks: list[DoneCallback] | None = []
        self._exception: BaseException | None = None

    async def _run(self, coro: Coroutine[Any, Any, Any]) -> None:
        trio = trio_module()
        outcome: BaseException | None = None
        try:
            with self._scope:
                await coro
        except trio.Cancelled:
            pass  # cancelled from outside (end of run): the task ends quietly
        except BaseExceptionGroup as group:  # e.g. a nursery inside the task, cancelled at the end of the run
            _cancelled, outcome = group.split(trio.Cancelled)
        except BaseException as exc:  # a system task must not raise: that would crash the whole run
            outcome = exc
        self._exception = outcome
        if outcome is not None:
            logger.warning("unhandled exception in a detached trio task", exc_info=outcome)
        self._finished.set()
        callbacks, self._callbacks = self._callbacks or [], None
        for callback in callbacks:
            self._call(callback)

    def _call(self, callback: DoneCallback) -> None:
        try:
            callback(self)
        except Exception:
            logger.exception("done callback %r of a detached task raised", callback)

    def cancel(self) -> None:
        self._scope.cancel()

    def done(self) -> bool:
        return bool(self._finished.is_set())

    def add_done_callback(self, callback: DoneCallback) -> None:
        if self._callbacks is None:
            self._call(callback)
        else:
            self._callbacks.append(callback)

    async def wait(self) -> None:
        await self._finished.wait()
        if self._exception is not None:
            raise self._exception


def spawn_detached(coro: Coroutine[Any, Any, Any]) -> TaskHandle:
    """Start ``coro`` as a task that is not bound to the caller's lifetime, and return its :class:`TaskHandle`.

    The caller's contextvars are copied into the task on both backends. An exception nobody waits for is
    logged (asyncio: "Task exception was never retrieved"; trio: a warning on the ``compat`` logger). Under an
    unsupported backend (no running loop) the coroutine is closed and :class:`UnsupportedBackendError` raised.
    """
    try:
        backend = current_backend()
    except BaseException:
        coro.close()
        raise
    if backend == "trio":
        handle = _TrioTaskHandle()
        trio_module().lowlevel.spawn_system_task(
            handle._run, coro, name=getattr(coro, "__qualname__", None), context=contextvars.copy_context()
        )
        return handle
    return _AsyncioTaskHandle(asyncio.get_running_loop().create_task(coro))
