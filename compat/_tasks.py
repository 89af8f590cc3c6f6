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
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from types import CoroutineType, TracebackType
from typing import Any, NoReturn, TypeVar

from ._backend import (
    _get_running_loop,
    _library_cvar,
    _thread_local,
    anyio_if_imported,
    current_backend,
    is_trio,
    no_loop_error,
    trio_module,
)

T = TypeVar("T")
logger = logging.getLogger(__name__.rpartition(".")[0] or __name__)


async def _await_through_cancellation(future: asyncio.Future[T]) -> T:
    """Wait for ``future`` even while being cancelled; afterwards re-raise the first cancellation, if any.

    The common case is one ``asyncio.shield``; once cancelled, :func:`_wait_out` takes over.
    """
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError as cancelled:
        await _wait_out(future, cancelled)


async def _wait_out(future: asyncio.Future[Any], cancelled: asyncio.CancelledError) -> NoReturn:
    """The caller was cancelled while waiting for ``future``: wait on until it is done, then raise ``cancelled``.

    ``asyncio.wait`` never raises the future's own exception (so the cancellation cannot be lost) and never
    cancels the future. If anyio is imported the wait sits in an anyio shield, so a cancelled anyio scope does
    not re-cancel it on every await (a spin).
    """
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
    if _thread_local.name == "trio":
        trio = trio_module()
        with trio.CancelScope(shield=True):
            result = await fn(*args)
        await trio.lowlevel.checkpoint_if_cancelled()  # deliver a cancellation that arrived meanwhile, as asyncio does
        return result
    loop = _get_running_loop()
    if loop is None:
        raise no_loop_error()
    inner = asyncio.ensure_future(fn(*args), loop=loop)
    try:  # _await_through_cancellation written out: one coroutine frame less on every call
        return await asyncio.shield(inner)
    except asyncio.CancelledError as cancelled:
        await _wait_out(inner, cancelled)


class TaskGroup:
    """``async with create_task_group() as tg:`` (``tg`` is this object on both backends).

    ``start_soon(fn, *args, name=None)`` starts a child; ``await start(fn, *args, name=None)`` starts one and
    waits until it calls ``task_status.started(value)``, returning ``value`` (an error the child raises before
    that goes to the caller of ``start``, not to the group); ``cancel()`` cancels every child and the body, and
    the group then exits without raising that cancellation. The block waits for every child; failures surface
    as an ``ExceptionGroup`` on both backends.
    """

    __slots__ = ()

    async def __aenter__(self) -> TaskGroup:
        raise NotImplementedError

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        raise NotImplementedError

    def start_soon(self, fn: Callable[..., Awaitable[Any]], *args: Any, name: str | None = None) -> None:
        raise NotImplementedError

    async def start(self, fn: Callable[..., Awaitable[Any]], *args: Any, name: str | None = None) -> Any:
        raise NotImplementedError

    def cancel(self) -> None:
        raise NotImplementedError


class _TrioTaskGroup(TaskGroup):
    """A strict trio nursery; ``cancel()`` is ``nursery.cancel_scope.cancel()``."""

    __slots__ = ("_manager", "_nursery")

    def __getattr__(self, name: str) -> Any:  # only reached for a slot not set yet: free on the normal path
        if name in _TrioTaskGroup.__slots__:
            raise RuntimeError("a compat.TaskGroup is used inside 'async with' (this one was not entered yet)")
        raise AttributeError(name)

    async def __aenter__(self) -> _TrioTaskGroup:
        self._manager = trio_module().open_nursery(strict_exception_groups=True)
        self._nursery = await self._manager.__aenter__()
        return self

    def __aexit__(  # type: ignore[override]  # returns the nursery's own awaitable: no extra coroutine frame
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> Awaitable[bool]:
        return self._manager.__aexit__(exc_type, exc, tb)  # type: ignore[no-any-return]

    def start_soon(self, fn: Callable[..., Awaitable[Any]], *args: Any, name: str | None = None) -> None:
        self._nursery.start_soon(fn, *args, name=name)

    def start(self, fn: Callable[..., Awaitable[Any]], *args: Any, name: str | None = None) -> Any:
        return self._nursery.start(fn, *args, name=name)

    def cancel(self) -> None:
        self._nursery.cancel_scope.cancel()


_NATIVE_CANCEL = hasattr(asyncio.TaskGroup, "cancel")  # Python 3.15+


class _TaskStatus:
    """What ``start()`` passes as ``task_status=``: ``started(value)`` hands ``value`` to the caller of start."""

    __slots__ = ("_future",)

    def __init__(self, future: asyncio.Future[Any]) -> None:
        self._future = future

    def started(self, value: Any = None) -> None:
        if self._future.done():
            if self._future.cancelled():
                return  # the caller of start() was cancelled meanwhile; the child runs on in the group
            raise RuntimeError("task_status.started() was already called")
        self._future.set_result(value)


async def _run_until_started(fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...], status: _TaskStatus) -> None:
    """The child of ``start()``: until it has started, its outcome goes to the caller of start, not to the group."""
    future = status._future
    try:
        await fn(*args, task_status=status)
    except asyncio.CancelledError:
        if not future.done():
            future.set_exception(
                RuntimeError(f"the task group was cancelled before {fn!r} called task_status.started()")
            )
        raise
    except Exception as exc:
        if future.done():
            raise
        future.set_exception(exc)  # the caller of start() raises it; the group never sees it
        return
    if not future.done():
        future.set_exception(RuntimeError(f"{fn!r} returned without calling task_status.started()"))


_CANCEL_MESSAGE = "compat.TaskGroup.cancel()"


async def _awaiting(awaitable: Awaitable[T]) -> T:
    """A coroutine for an awaitable that is none (asyncio tasks take coroutines only)."""
    return await awaitable


_BODY, _BODY_CANCELLED, _EXITING, _EXITING_CANCELLED, _DONE = range(5)  # states of an asyncio group


class _AsyncioTaskGroup(TaskGroup):
    """``asyncio.TaskGroup`` with trio's spelling.

    ``cancel()`` is the native one on Python 3.15+ (plus a check for CPython gh-155433 on exit). Before 3.15: while the body runs, it cancels the body's task
    (the host); the TaskGroup then cancels the children as for any cancelled body, and on exit the one
    cancellation compat requested is taken back (``uncancel()``) and swallowed only if no other was requested
    meanwhile (the bookkeeping of ``asyncio.timeout``), so an outer cancellation that arrives after ``cancel()``
    still propagates. Once the body is done and the group only waits for its children, it cancels the children
    (and any child started afterwards); the host is not touched. A group never cancelled exits through the
    native ``__aexit__`` itself.
    """

    __slots__ = ("_group", "_host", "_entry_cancelling", "_state")

    def __init__(self) -> None:
        self._group = asyncio.TaskGroup()
        self._host: asyncio.Task[Any] | None = None
        self._state = _BODY

    async def __aenter__(self) -> _AsyncioTaskGroup:
        group = self._group
        try:
            await group.__aenter__()
        except RuntimeError:
            if _get_running_loop() is None:
                raise no_loop_error() from None
            raise
        host = self._host = group._parent_task  # type: ignore[attr-defined]  # the task running the body
        self._entry_cancelling = host.cancelling()
        return self

    def __aexit__(  # type: ignore[override]  # the native awaitable when not cancelled: no coroutine of ours
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> Awaitable[bool | None]:
        if self._state == _BODY_CANCELLED:
            if _NATIVE_CANCEL:
                return self._exit_natively_cancelled(exc_type, exc, tb)
            return self._exit_cancelled(exc_type, exc, tb)
        self._state = _EXITING
        return self._group.__aexit__(exc_type, exc, tb)

    async def _exit_cancelled(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        host = self._host
        assert host is not None
        self._state = _DONE
        caught = exc if isinstance(exc, asyncio.CancelledError) else None
        try:
            await self._group.__aexit__(exc_type, exc, tb)
        except asyncio.CancelledError as cancelled:
            caught = cancelled
        except BaseException:
            if host.uncancel() <= self._entry_cancelling and getattr(host, "_must_cancel", False):
                # cancel() came after the body's last await and no child was left to wait for: compat's own
                # cancellation is still pending on the task; take it here, not at the caller's next await
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.sleep(0)
            raise  # the children's (or the body's) errors win; compat's own cancellation is taken back
        if caught is None and getattr(host, "_must_cancel", False):
            try:  # cancel() came after the body's last await: the cancellation is still pending, take it here
                await asyncio.sleep(0)
            except asyncio.CancelledError as cancelled:
                caught = cancelled
        if host.uncancel() > self._entry_cancelling and caught is not None:
            # somebody else cancelled too (an outer scope, task.cancel()): that cancellation wins
            if caught.args == (_CANCEL_MESSAGE,) and anyio_if_imported() is not None:
                # The group caught compat's own CancelledError; an anyio scope only swallows a CancelledError
                # carrying its own message, and re-delivers it at every await while it is cancelled: take that one.
                try:
                    await asyncio.sleep(0)
                except asyncio.CancelledError as cancelled:
                    caught = cancelled
            raise caught
        return True

    async def _exit_natively_cancelled(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        """Python 3.15's own ``cancel()``, with a guard for CPython gh-155433: a release without its fix swallows
        a cancellation from outside that arrives after ``cancel()``; one still counted on the task is raised."""
        self._state = _DONE
        swallowed = await self._group.__aexit__(exc_type, exc, tb)  # type: ignore[func-returns-value]
        host = self._host
        assert host is not None
        if host.cancelling() > self._entry_cancelling:
            raise asyncio.CancelledError("a cancellation from outside the task group arrived after its cancel()")
        return swallowed

    def start_soon(self, fn: Callable[..., Awaitable[Any]], *args: Any, name: str | None = None) -> None:
        coro: Any = fn(*args)
        if type(coro) is not CoroutineType:  # an awaitable that is no coroutine (compat's Queue.put with room)
            coro = _awaiting(coro)
        try:
            task: asyncio.Task[Any] = self._group.create_task(coro, name=name)
        except RuntimeError:
            coro.close()  # no "coroutine ... was never awaited" warning (3.13+ closes it too: harmless)
            if self._state == _DONE and self._group._tasks:
                return  # cancelled by cancel() and shutting down: the child never runs, as documented
            raise
        if self._state == _EXITING_CANCELLED:
            task.cancel()

    async def start(self, fn: Callable[..., Awaitable[Any]], *args: Any, name: str | None = None) -> Any:
        if self._host is None:
            raise RuntimeError("start() on a compat.TaskGroup that was not entered yet")
        future: asyncio.Future[Any] = self._host.get_loop().create_future()
        coro = _run_until_started(fn, args, _TaskStatus(future))
        try:
            task = self._group.create_task(coro, name=name)
        except RuntimeError:
            coro.close()  # no "coroutine ... was never awaited" warning
            raise
        if self._state == _EXITING_CANCELLED:
            task.cancel()
        try:
            return await future
        except asyncio.CancelledError:
            if not future.done() or future.cancelled():
                task.cancel()  # the caller gave up before the child started: as on trio, the child is cancelled
            raise

    def cancel(self) -> None:
        if _NATIVE_CANCEL:
            self._group.cancel()  # type: ignore[attr-defined]  # Python 3.15+
            if self._state == _BODY:
                self._state = _BODY_CANCELLED
            return
        state = self._state
        if state == _BODY:
            if self._host is None:
                raise RuntimeError("cancel() of a compat.TaskGroup that was not entered yet")
            self._state = _BODY_CANCELLED
            self._host.cancel(_CANCEL_MESSAGE)
        elif state == _EXITING:
            self._state = _EXITING_CANCELLED
            for task in self._group._tasks:  # the children still running
                task.cancel()


def create_task_group() -> TaskGroup:
    """``async with create_task_group() as tg: tg.start_soon(fn, *args)``: a :class:`TaskGroup`.

    The block waits for every child. If a child fails, the others are cancelled and the failures surface as an
    ``ExceptionGroup`` on both backends (``asyncio.TaskGroup`` / a strict trio nursery).
    """
    if is_trio():
        return _TrioTaskGroup()
    return _AsyncioTaskGroup()


DoneCallback = Callable[["TaskHandle"], object]


class TaskHandle:
    """A handle on a detached task: ``cancel()``, ``done()``, ``add_done_callback(cb)``, ``await wait()``,
    ``result()``, ``exception()``, ``await aclose()``.

    ``cancel()`` may be called from any task. ``wait()`` returns once the task has finished; it returns quietly
    if the task was cancelled, re-raises the task's exception otherwise, and cancelling the *waiter* never
    cancels the task. ``result()`` / ``exception()`` work like ``asyncio.Future``'s on a finished task
    (``asyncio.InvalidStateError`` before that), except that a cancelled task's result and exception are None.
    ``aclose()`` cancels the task and waits until it has finished, even if the caller is cancelled meanwhile
    (that cancellation is delivered afterwards); it re-raises the task's exception but never its cancellation.
    An exception retrieved by ``wait()``, ``result()``, ``exception()`` or ``aclose()`` is never logged; one
    nobody retrieves is logged once, when the handle (asyncio: the task) is garbage-collected.
    ``cb(handle)`` runs exactly once per callback, after completion.
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

    def result(self) -> Any:
        raise NotImplementedError

    def exception(self) -> BaseException | None:
        raise NotImplementedError

    async def aclose(self) -> None:
        raise NotImplementedError


def _not_done() -> asyncio.InvalidStateError:
    return asyncio.InvalidStateError("the detached task has not finished yet; await handle.wait() first")


_running_tasks: set[asyncio.Task[Any]] = set()  # asyncio only keeps weak references to tasks


class _AsyncioTaskHandle(TaskHandle):
    """``wait()`` waits on futures of its own: awaiting the task itself would cancel it with a cancelled waiter.

    One done-callback per task (``_finished``) drops the strong reference and wakes the waiters. The task's
    exception is left for asyncio to report ("Task exception was never retrieved") unless one of the methods
    retrieves it (``task.exception()`` marks it retrieved).
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

    def _new_waiter(self) -> asyncio.Future[None]:
        waiter: asyncio.Future[None] = self._task.get_loop().create_future()
        if self._waiters is None:
            self._waiters = [waiter]
        else:
            self._waiters.append(waiter)
        return waiter

    async def _until_done(self) -> None:
        waiter = self._new_waiter()
        try:
            await waiter
        finally:
            waiters = self._waiters
            if waiters is not None and waiter in waiters:  # this waiter was cancelled: forget it
                waiters.remove(waiter)

    async def wait(self) -> None:
        if not self._task.done():
            await self._until_done()
        self.result()

    def result(self) -> Any:
        task = self._task
        if not task.done():
            raise _not_done()
        if task.cancelled():
            return None
        return task.result()

    def exception(self) -> BaseException | None:
        task = self._task
        if not task.done():
            raise _not_done()
        if task.cancelled():
            return None
        return task.exception()

    async def aclose(self) -> None:
        task = self._task
        if not task.done():
            task.cancel()
            try:
                await self._until_done()
            except asyncio.CancelledError as cancelled:  # the caller is cancelled too: the task finishes first
                with contextlib.suppress(asyncio.CancelledError):
                    await _await_through_cancellation(self._new_waiter())
                error = self.exception()
                if error is not None:
                    # The caller gets its cancellation, which a scope may swallow: report the task's error now
                    # so that it is never lost (trio raises it instead).
                    cancelled.__context__ = error
                    asyncio.get_running_loop().call_exception_handler(
                        {
                            "message": "detached task failed while aclose() was cancelled",
                            "exception": error,
                            "task": task,
                        }
                    )
                raise cancelled
        self.result()


class _TrioTaskHandle(TaskHandle):
    """A system task in its own cancel scope; the outcome is kept on the handle, which logs an exception nobody
    retrieved when it is garbage-collected (as asyncio does for a task)."""

    __slots__ = ("_scope", "_finished", "_callbacks", "_exception", "_result", "_retrieved", "__weakref__")

    def __init__(self) -> None:
        trio = trio_module()
        self._scope = trio.CancelScope()
        self._finished = trio.Event()
        self._callbacks: list[DoneCallback] | None = []
        self._exception: BaseException | None = None
        self._result: Any = None
        self._retrieved = False

    def _finish(self, result: Any, exception: BaseException | None) -> None:
        self._result, self._exception = result, exception
        self._finished.set()
        callbacks, self._callbacks = self._callbacks or [], None
        for callback in callbacks:
            self._call(callback)

    def __del__(self) -> None:
        if self._exception is not None and not self._retrieved:
            _log_unretrieved(self._exception)

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
        self.result()

    def result(self) -> Any:
        if self._exception is not None:
            self._retrieved = True
            raise self._exception
        if not self._finished.is_set():
            raise _not_done()
        return self._result

    def exception(self) -> BaseException | None:
        if not self._finished.is_set():
            raise _not_done()
        self._retrieved = True
        return self._exception

    async def aclose(self) -> None:
        trio = trio_module()
        self._scope.cancel()
        with trio.CancelScope(shield=True):
            await self._finished.wait()
        self.result()
        await trio.lowlevel.checkpoint_if_cancelled()  # the caller's own cancellation, now that the task is gone


def _log_unretrieved(exception: BaseException) -> None:
    logger.error(
        "exception of a detached trio task was never retrieved (wait(), result(), exception() or aclose())",
        exc_info=exception,
    )


async def _run_detached(handle_ref: weakref.ref[_TrioTaskHandle], scope: Any, coro: Coroutine[Any, Any, Any]) -> None:
    """The body of a detached trio task. It holds its handle only weakly, and only at the end: the traceback of
    an exception keeps this frame alive, and a handle held by it could not be freed (and log) when dropped."""
    trio = trio_module()
    result: Any = None
    outcome: BaseException | None = None
    try:
        with scope:
            result = await coro
    except trio.Cancelled:
        pass  # cancelled from outside (end of run): the task ends quietly
    except BaseExceptionGroup as group:  # e.g. a nursery inside the task, cancelled at the end of the run
        _cancelled, outcome = group.split(trio.Cancelled)
    except BaseException as exc:  # a system task must not raise: that would crash the whole run
        outcome = exc
    handle = handle_ref()
    if handle is None:  # nobody holds the handle any more, so nobody can retrieve the exception
        if outcome is not None:
            _log_unretrieved(outcome)
        return
    handle._finish(result, outcome)
    del handle


def spawn_detached(coro: Coroutine[Any, Any, Any]) -> TaskHandle:
    """Start ``coro`` as a task that is not bound to the caller's lifetime, and return its :class:`TaskHandle`.

    The caller's contextvars are copied into the task on both backends. An exception nobody retrieves is logged
    once the handle is garbage-collected (asyncio: "Task exception was never retrieved" on the ``asyncio``
    logger; trio: an error on the ``compat`` logger). Under an unsupported backend (no running loop) the
    coroutine is closed and :class:`UnsupportedBackendError` raised.
    """
    if _thread_local.name is None and _library_cvar.get() is None:  # plain asyncio: current_backend() inlined
        loop = _get_running_loop()
        if loop is not None:
            return _AsyncioTaskHandle(loop.create_task(coro))
    try:
        backend = current_backend()
    except BaseException:
        coro.close()
        raise
    if backend == "trio":
        handle = _TrioTaskHandle()
        trio_module().lowlevel.spawn_system_task(
            _run_detached,
            weakref.ref(handle),
            handle._scope,
            coro,
            name=getattr(coro, "__qualname__", None),
            context=contextvars.copy_context(),
        )
        return handle
    return _AsyncioTaskHandle(asyncio.get_running_loop().create_task(coro))
