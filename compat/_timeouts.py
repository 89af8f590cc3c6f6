"""Timeouts and the shield scope as *sync* context managers on both backends, plus sleep, checkpoint and the clock.

Built bottom-up, as trio's ``_timeouts.py``: ``move_on_at(deadline)`` is the scope; ``fail_at`` is the same scope
plus one check that turns a caught deadline into builtin :class:`TimeoutError`; ``move_on_after`` / ``fail_after``
are the same with a deadline relative to the moment the block is entered; ``sleep_until`` is ``sleep`` of the time
left. Every scope has ``cancel()`` and ``cancel_called``.

On asyncio the scope does what ``asyncio.timeout`` does, without being an async context manager: at the deadline
it calls ``task.cancel()``; on exit it calls ``task.uncancel()`` once and swallows the ``CancelledError`` only if
the count is back at its entry value (so the cancellation was ours). An outer ``task.cancel()``, an enclosing
``asyncio.timeout``/``TaskGroup`` or an anyio cancel scope that cancelled too therefore always wins, and
``Task.cancelling()`` is back at its entry value after every compat scope.

On trio the scope is a native ``trio.CancelScope`` with an absolute deadline; ``trio.TooSlowError`` never appears.

``shielded()`` is ``trio.CancelScope(shield=True)`` on trio. On asyncio nothing can stop a ``task.cancel()`` from
reaching the next ``await``, so the shield works where compat itself decides when to cancel: a compat timeout whose
deadline passes while a ``shielded()`` block entered *inside* it is active does not cancel; it is re-armed for the
next loop iteration after the block exits (``_fire`` checks ``_active_shields``, which only ``shielded()`` writes;
a timeout pays one global read at enter). If anyio is already imported the block is also an
``anyio.CancelScope(shield=True)``, which holds off enclosing anyio scopes.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable
from types import TracebackType
from typing import Any

from ._backend import _thread_local, anyio_if_imported, is_trio, no_loop_error, trio_module

_asyncio_sleep = asyncio.sleep
_shield_epoch = 0  # counts shielded() entries; a timeout is held off by a shield entered after it (larger epoch)
_active_shields: dict[asyncio.Task[Any], list[_AsyncioShielded]] = {}  # per task, outermost first


def _current_task() -> asyncio.Task[Any] | None:
    try:
        return asyncio.current_task()
    except RuntimeError:  # no running loop: say why (no loop at all, a worker thread, a too old trio)
        raise no_loop_error() from None


def _check_seconds(seconds: float, what: str) -> None:
    if math.isnan(seconds):
        raise ValueError(f"{what} must be a number of seconds, got NaN; pass math.inf for 'no limit'")
    if seconds < 0:
        raise ValueError(f"{what} must be >= 0 seconds, got {seconds!r}; use 0 to act at the next checkpoint")


def current_time() -> float:
    """The running library's clock in seconds (``loop.time()`` / ``trio.current_time()``)."""
    if is_trio():
        return trio_module().current_time()  # type: ignore[no-any-return]  # trio is untyped via ModuleType
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:
        raise no_loop_error() from None


def sleep(seconds: float) -> Awaitable[None]:
    """Sleep for ``seconds`` (>= 0; ``ValueError`` for negative or NaN). ``sleep(0)`` is a checkpoint.

    Returns the native coroutine itself (``trio.sleep(0)`` is ``trio.lowlevel.checkpoint()``, which compat calls
    directly), so the call costs what the native one costs.
    """
    if not seconds >= 0:  # one comparison for the checks below: False for negative numbers and NaN
        _check_seconds(seconds, "sleep()")
    if _thread_local.name == "trio":  # is_trio() written out: this is the hottest call of all
        trio = trio_module()
        return trio.lowlevel.checkpoint() if seconds == 0 else trio.sleep(seconds)  # type: ignore[no-any-return]
    return _asyncio_sleep(seconds)


def checkpoint() -> Awaitable[None]:
    """Let other tasks run and deliver a pending cancellation (``asyncio.sleep(0)`` / ``trio.lowlevel.checkpoint()``)."""
    if _thread_local.name == "trio":
        return trio_module().lowlevel.checkpoint()  # type: ignore[no-any-return]  # ModuleType attribute
    return _asyncio_sleep(0)


def _check_deadline(deadline: float, what: str) -> None:
    if math.isnan(deadline):
        raise ValueError(f"{what} needs a deadline on current_time()'s clock, got NaN; pass math.inf for 'never'")


class _AsyncioTimeoutScope:
    """A cancel-at-deadline scope for the current asyncio task (see the module docstring)."""

    __slots__ = (
        "_raise",
        "_value",
        "_relative",
        "_task",
        "_entry_cancelling",
        "_handle",
        "_fired",
        "_active",
        "_cancel_requested",
        "_epoch",
        "deadline",
        "cancelled_caught",
    )

    def __init__(self, value: float, relative: bool, raise_timeout: bool) -> None:
        self._value = value  # seconds (relative) or the deadline itself
        self._relative = relative
        self._raise = raise_timeout
        self._handle: asyncio.TimerHandle | asyncio.Handle | None = None
        self._fired = False
        self._active = False
        self._cancel_requested = False
        self.deadline = math.inf if relative else value
        self.cancelled_caught = False

    def __enter__(self) -> _AsyncioTimeoutScope:
        task = _current_task()
        if task is None:
            raise RuntimeError("compat timeouts must be entered inside an asyncio task, not a loop callback")
        if self._active:
            raise RuntimeError("this compat timeout scope is already active; use a new one for a nested block")
        self._task = task
        self._fired = False
        self._active = True
        self.cancelled_caught = False
        self._entry_cancelling = task.cancelling()
        self._epoch = _shield_epoch
        loop = task.get_loop()
        if self._relative:
            seconds = self._value
            if seconds != math.inf:
                self.deadline = loop.time() + seconds
            fire_now = seconds <= 0
        else:
            fire_now = self.deadline <= loop.time()
        if fire_now or self._cancel_requested:
            self._handle = loop.call_soon(self._fire)
        elif self.deadline != math.inf:
            self._handle = loop.call_at(self.deadline, self._fire)
        return self

    def _fire(self) -> None:
        self._handle = None
        if self._fired or not self._active:
            return
        task = self._task
        shields = _active_shields.get(task)
        if shields is not None:
            for shield in shields:
                if shield._epoch > self._epoch:  # entered inside this scope: hold the deadline until it exits
                    if self not in shield._deferred:
                        shield._deferred.append(self)
                    return
        if not task.done():
            self._fired = True
            if getattr(task, "_must_cancel", False):
                # A cancellation is already waiting to be delivered: asyncio folds both into one CancelledError
                # carrying the last message, and anyio recognises its own cancellations by their message.
                task.cancel(getattr(task, "_cancel_message", None))
            else:
                task.cancel(
                    "compat scope cancelled"
                    if self._cancel_requested
                    else f"compat timeout of {self._value} {'s' if self._relative else '(deadline)'} expired"
                )

    def cancel(self) -> None:
        """Cancel the block now (from any task of this loop); before entry: as soon as it is entered."""
        if self._cancel_requested:
            return
        self._cancel_requested = True
        if self._active and not self._fired:
            if self._handle is not None:
                self._handle.cancel()
            # From the loop, not right here: a body that calls cancel() and ends without another await must not
            # leave a pending cancellation behind (trio: nothing is raised without a checkpoint either).
            self._handle = self._task.get_loop().call_soon(self._fire)

    @property
    def cancel_called(self) -> bool:
        """True once :meth:`cancel` was called or the deadline passed."""
        if self._cancel_requested or self._fired:
            return True
        return self._active and self._task.get_loop().time() >= self.deadline

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        self._active = False
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if not self._fired:
            return False
        # Undo our own cancel() exactly once; only if nobody else cancelled is the CancelledError ours to eat.
        if (
            self._task.uncancel() <= self._entry_cancelling
            and exc_type is not None
            and issubclass(exc_type, asyncio.CancelledError)
        ):
            self.cancelled_caught = True
            if self._raise and not self._cancel_requested:
                raise _timeout_error(self._value, self._relative) from exc
            return True
        return False


def _timeout_error(value: float, relative: bool) -> TimeoutError:
    if relative:
        return TimeoutError(f"operation timed out after {value} s")
    return TimeoutError(f"operation timed out: deadline {value} on current_time()'s clock passed")


class _TrioTimeoutScope:
    """A native ``trio.CancelScope`` whose deadline is fixed at enter; ``fail_*`` maps to ``TimeoutError``."""

    __slots__ = ("_raise", "_value", "_relative", "_scope", "_cancel_requested", "deadline", "cancelled_caught")

    def __init__(self, value: float, relative: bool, raise_timeout: bool) -> None:
        self._value = value
        self._relative = relative
        self._raise = raise_timeout
        self._scope: Any = None
        self._cancel_requested = False
        self.deadline = math.inf if relative else value
        self.cancelled_caught = False

    def __enter__(self) -> _TrioTimeoutScope:
        trio = trio_module()
        if self._relative:
            self.deadline = trio.current_time() + self._value
        self._scope = trio.CancelScope(deadline=self.deadline)
        if self._cancel_requested:
            self._scope.cancel()
        self._scope.__enter__()
        return self

    def cancel(self) -> None:
        """Cancel the block now (from any task); before entry: as soon as it is entered."""
        self._cancel_requested = True
        if self._scope is not None:
            self._scope.cancel()

    @property
    def cancel_called(self) -> bool:
        """True once :meth:`cancel` was called or the deadline passed."""
        return self._cancel_requested or (self._scope is not None and bool(self._scope.cancel_called))

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        swallowed: bool = self._scope.__exit__(exc_type, exc, tb)
        self.cancelled_caught = self._scope.cancelled_caught
        if self.cancelled_caught and self._raise and not self._cancel_requested:
            raise _timeout_error(self._value, self._relative)
        return swallowed


TimeoutScope = _AsyncioTimeoutScope | _TrioTimeoutScope


def _scope(value: float, relative: bool, raise_timeout: bool) -> Any:
    if is_trio():
        return _TrioTimeoutScope(value, relative, raise_timeout)
    return _AsyncioTimeoutScope(value, relative, raise_timeout)


def move_on_at(deadline: float) -> TimeoutScope:
    """``with move_on_at(deadline) as scope:`` cancel the block at ``deadline`` (on :func:`current_time`'s clock)
    and carry on after it.

    ``scope.cancelled_caught`` tells whether the block was cut short; ``scope.cancel()`` cuts it short now (from
    any task; before entry it takes effect on entry) and ``scope.cancel_called`` tells whether that happened or
    the deadline passed. ``math.inf`` means no deadline; a deadline already past cancels at the next checkpoint;
    NaN raises ``ValueError``. A body that catches and swallows the cancellation simply finishes (asyncio) or is
    cancelled again at its next checkpoint (trio): the native semantics.
    """
    _check_deadline(deadline, "move_on_at()")
    return _scope(deadline, False, False)  # type: ignore[no-any-return]


def fail_at(deadline: float) -> TimeoutScope:
    """``with fail_at(deadline):`` like :func:`move_on_at`, but raise builtin ``TimeoutError`` if the deadline
    cuts the block short.

    A cancellation that came from outside (``task.cancel()``, an enclosing scope or timeout) is never turned
    into ``TimeoutError``: it propagates as the backend's cancellation. ``scope.cancel()`` ends the block
    quietly (``cancelled_caught``), without ``TimeoutError``.
    """
    _check_deadline(deadline, "fail_at()")
    return _scope(deadline, False, True)  # type: ignore[no-any-return]


def move_on_after(seconds: float | None) -> TimeoutScope:
    """:func:`move_on_at` with the deadline ``seconds`` after the block is *entered*.

    ``scope.deadline`` is that absolute deadline (``math.inf`` for no limit). ``None`` (or ``math.inf``) means no
    deadline: still a scope, which only ``cancel()`` can cut short. ``ValueError`` for negative or NaN seconds; 0
    cancels at the next checkpoint.
    """
    if seconds is None:
        seconds = math.inf
    _check_seconds(seconds, "move_on_after()")
    return _scope(seconds, True, False)  # type: ignore[no-any-return]


def fail_after(seconds: float | None) -> TimeoutScope:
    """:func:`fail_at` with the deadline ``seconds`` after the block is *entered*; see :func:`move_on_after`."""
    if seconds is None:
        seconds = math.inf
    _check_seconds(seconds, "fail_after()")
    return _scope(seconds, True, True)  # type: ignore[no-any-return]


def sleep_until(deadline: float) -> Awaitable[None]:
    """Sleep until :func:`current_time` reaches ``deadline`` (a deadline already past is a checkpoint; NaN raises
    ``ValueError``): :func:`sleep` of the time left."""
    _check_deadline(deadline, "sleep_until()")
    return sleep(max(0.0, deadline - current_time()))


class _AsyncioShielded:
    """``shielded()`` on asyncio (see the module docstring)."""

    __slots__ = ("_task", "_epoch", "_deferred", "_anyio_scope")

    def __enter__(self) -> _AsyncioShielded:
        global _shield_epoch
        task = _current_task()
        if task is None:
            raise RuntimeError("compat.shielded() must be entered inside an asyncio task, not a loop callback")
        _shield_epoch += 1
        self._epoch = _shield_epoch
        self._task = task
        self._deferred: list[_AsyncioTimeoutScope] = []
        shields = _active_shields.get(task)
        if shields is None:
            _active_shields[task] = [self]
        else:
            shields.append(self)
        anyio = anyio_if_imported()
        self._anyio_scope = anyio.CancelScope(shield=True) if anyio is not None else None
        if self._anyio_scope is not None:
            self._anyio_scope.__enter__()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if self._anyio_scope is not None:
                self._anyio_scope.__exit__(exc_type, exc, tb)
        finally:
            shields = _active_shields[self._task]
            shields.remove(self)
            if not shields:
                del _active_shields[self._task]
            if self._deferred:
                loop = self._task.get_loop()
                for scope in self._deferred:  # delivered at the next await (a body that ends first is not cut)
                    scope._handle = loop.call_soon(scope._fire)
                self._deferred = []


def shielded() -> Any:
    """``with shielded(): await cleanup()``: protect a block from the enclosing scopes' cancellation.

    trio: ``trio.CancelScope(shield=True)``: nothing outside the block cancels it; a cancellation that arrives
    meanwhile comes at the first checkpoint after it. asyncio: a compat timeout (``fail_after``/``move_on_after``)
    whose deadline passes during the block waits until the block exits and then cancels at the next ``await``
    (so its outcome, ``cancelled_caught`` or ``TimeoutError``, is unchanged); an enclosing anyio cancel scope is
    held off too when anyio is imported. A plain ``task.cancel()``, ``asyncio.timeout`` or ``TaskGroup``
    cancellation still reaches the block's next ``await`` on asyncio: when the work must finish whatever happens,
    use :func:`shield` (``await shield(fn, *args)``), which runs it in its own task.
    """
    if is_trio():
        return trio_module().CancelScope(shield=True)
    return _AsyncioShielded()
