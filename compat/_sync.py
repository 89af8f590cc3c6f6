"""Lock, Event, CapacityLimiter, Semaphore, Condition and Queue: native objects, bound on first use, rebound when idle.

Each wrapper holds one native object (``asyncio.Lock`` / ``trio.Lock``, ...) and delegates to it; the backend is
decided once, when the object is first used, and cached. Two cheap guards keep the rebinding promise of SPEC §3
without asking sniffio on every call:

* **backend switch** — every operation compares ``sniffio.thread_local.name`` (``"trio"`` while ``trio.run`` runs,
  ``None`` otherwise) with its value at binding time: one attribute read. On a change an *idle* object is rebound
  to the new backend (keeping an Event's flag); a busy one raises ``RuntimeError``.
* **new asyncio loop** — asyncio's primitives only need a loop to create a waiter future, so the check runs only on
  the contended path: if the native object is bound to a loop other than the running one and has no pending
  waiters, its stale binding is dropped (``_loop = None``) and asyncio binds it to the running loop.

``__aenter__``/``__aexit__`` return the native awaitables directly, so a wrapper adds no coroutine frame.
"""

from __future__ import annotations

import asyncio
import collections
import math
from collections.abc import Awaitable, Generator
from types import TracebackType
from typing import Any, Generic, TypeVar

from ._backend import _thread_local, current_backend, trio_module

_UNBOUND = object()
_CLOSED = object()  # the _bound_under of a closed Queue: its puts and gets take the checked path
T = TypeVar("T")


_EXHAUSTED: Generator[Any, None, None] = (_ for _ in ())
next(_EXHAUSTED, None)


class _Completed:
    """An awaitable that finishes at once without yielding: what a sync ``release()`` hands to ``async with``."""

    __slots__ = ()
    # ``await`` calls this with no arguments (a builtin bound method is no descriptor): it returns the exhausted
    # generator, whose first step is StopIteration(None). Being C code, it adds no Python frame to the await.
    __await__ = _EXHAUSTED.__iter__


_COMPLETED = _Completed()

_ASYNCIO_SEMAPHORE_RELEASE = asyncio.Semaphore.release
"""The unbounded release, called on a ``BoundedSemaphore`` once compat has checked the bound itself."""


def _drop_stale_loop(native: Any) -> None:
    """Let an idle asyncio primitive bound to a finished loop bind to the running one (contended path only)."""
    loop = native._loop
    if loop is None or loop is asyncio.get_running_loop():
        return
    waiters = native._waiters or ()
    if all(waiter.done() for waiter in waiters):
        native._loop = None


class _Bound:
    """Shared binding logic: ``_native`` plus the ``thread_local.name`` it was bound under."""

    __slots__ = ("_native", "_bound_under", "_backend", "_asyncio")

    def __init__(self) -> None:
        self._native: Any = None
        self._bound_under: object = _UNBOUND
        self._backend = ""
        self._asyncio = False

    def _bind(self) -> Any:
        backend = current_backend()
        if self._native is None or backend != self._backend:
            if self._native is not None and not self._idle():
                raise RuntimeError(
                    f"this compat.{type(self).__name__} is in use under {self._backend}; "
                    f"it can only move to {backend} once it is idle (released, no waiters)"
                )
            self._native = self._make(backend)
        self._backend = backend
        self._asyncio = backend == "asyncio"
        self._bound_under = _thread_local.name
        return self._native

    def _make(self, backend: str) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def _idle(self) -> bool:
        """No task waits on the native object (Event, Semaphore); Lock and CapacityLimiter also check holders."""
        if self._backend == "trio":
            return not self._native.statistics().tasks_waiting
        return all(waiter.done() for waiter in self._native._waiters or ())


def _release_on_exit(
    self: _Bound, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
) -> Awaitable[None]:
    """``__aexit__`` of Lock and CapacityLimiter: release the native object; there is nothing to await."""
    self._native.release()
    return _COMPLETED


class _CountingBound(_Bound):
    """CapacityLimiter and Semaphore: both wrap an ``asyncio.Semaphore`` on asyncio, so one ``acquire`` serves."""

    __slots__ = ()

    def acquire(self) -> Awaitable[Any]:
        """Take a token / slot, waiting (FIFO) while none is free (prefer ``async with``)."""
        # the guard of CapacityLimiter.native() written out: calling it would add a frame to every acquire
        native = self._native
        if _thread_local.name is not self._bound_under:
            native = self._bind()
        elif self._asyncio and native._value <= 0:
            _drop_stale_loop(native)
        return native.acquire()  # type: ignore[no-any-return]

    __aenter__ = acquire


class Lock(_Bound):
    """A mutual-exclusion lock: ``async with lock:``. FIFO-fair on both backends.

    Native semantics are kept (see the table in ``compat``): on trio acquiring is always a checkpoint and only
    the owner may release; on asyncio an uncontended acquire does not yield and no owner is checked.
    """

    __slots__ = ()

    def _make(self, backend: str) -> Any:
        return trio_module().Lock() if backend == "trio" else asyncio.Lock()

    def _idle(self) -> bool:
        return not self._native.locked() and super()._idle()

    def acquire(self) -> Awaitable[Any]:
        """Acquire the lock (prefer ``async with``)."""
        native = self._native
        if _thread_local.name is not self._bound_under:
            native = self._bind()
        elif self._asyncio and native._locked:
            _drop_stale_loop(native)
        return native.acquire()  # type: ignore[no-any-return]

    __aenter__ = acquire

    __aexit__ = _release_on_exit

    def release(self) -> None:
        """Release the lock (trio: only from the owning task)."""
        if self._native is None:
            raise RuntimeError("release() of a compat.Lock that was never acquired")
        self._native.release()

    def locked(self) -> bool:
        """True while some task holds the lock."""
        return self._native is not None and bool(self._native.locked())


class Event(_Bound):
    """A one-shot flag: ``set()``, ``is_set()``, ``await wait()``. ``set()`` works before first use.

    Once the flag is set outside trio (under asyncio, or before any loop runs), the object becomes a
    :class:`_SetEvent`, whose ``wait`` is a plain coroutine function returning True: waiting on a set event then
    costs what asyncio's own does, needs no binding and is valid under any later loop. Under trio such an
    event's ``wait()`` returns without a checkpoint; an event set under trio keeps trio's checkpoint.
    """

    __slots__ = ("_flag",)

    def __init__(self) -> None:
        # _Bound.__init__ spelled out: an Event is often made per use, so this is a hot path
        self._native = None
        self._bound_under = _UNBOUND
        self._backend = ""
        self._asyncio = False
        self._flag = False

    def _make(self, backend: str) -> Any:
        native = trio_module().Event() if backend == "trio" else asyncio.Event()
        if self._flag:  # set() sets the flag first, so it also covers a set previous native event
            native.set()
        return native

    def set(self) -> None:
        """Set the flag and wake every waiter (sync; safe before the event was ever awaited)."""
        self._flag = True
        native = self._native
        if native is not None:
            native.set()
        if _thread_local.name is None and (native is None or self._asyncio):  # not set under trio
            self.__class__ = _SetEvent

    def is_set(self) -> bool:
        """True once :meth:`set` was called."""
        return self._flag

    def wait(self) -> Awaitable[Any]:
        """Wait until the flag is set (returns at once if it already is; on trio that is still a checkpoint)."""
        if self._flag and _thread_local.name is None:  # set under trio, now waited on under asyncio
            self.__class__ = _SetEvent
            return _already_set()
        native = self._native
        if _thread_local.name is not self._bound_under:
            if self._flag:  # set before its first wait under trio: trio's wait() of a set Event is a checkpoint
                return trio_module().lowlevel.checkpoint()  # type: ignore[no-any-return]
            native = self._bind()
        elif self._asyncio and not native._value:
            _drop_stale_loop(native)
        return native.wait()  # type: ignore[no-any-return]


async def _already_set() -> bool:
    """What ``asyncio.Event.wait()`` does once the event is set: return True without yielding."""
    return True


class _SetEvent(Event):
    """An :class:`Event` that is set and was used under asyncio: ``wait`` needs no checks any more."""

    __slots__ = ()
    wait = staticmethod(_already_set)


class CapacityLimiter(_CountingBound):
    """At most ``total_tokens`` holders at once: ``async with limiter:``.

    asyncio: an ``asyncio.Semaphore`` (FIFO; a task may hold several tokens and any task may release one).
    trio: ``trio.CapacityLimiter`` (one token per task: acquiring twice in one task raises ``RuntimeError``, and
    only the borrowing task may ``release()``). For slots taken in one task and given back by another, use
    :class:`Semaphore`.
    """

    __slots__ = ("_total",)

    def __init__(self, total_tokens: int | float) -> None:
        valid_int = isinstance(total_tokens, int) and not isinstance(total_tokens, bool) and total_tokens >= 1
        if not valid_int and total_tokens != math.inf:
            raise ValueError(f"CapacityLimiter total_tokens must be an int >= 1 (or math.inf), got {total_tokens!r}")
        super().__init__()
        self._total = total_tokens

    def _make(self, backend: str) -> Any:
        if backend == "trio":
            return trio_module().CapacityLimiter(self._total)
        return asyncio.Semaphore(self._semaphore_size())

    def _semaphore_size(self) -> int:
        return 2**62 if self._total == math.inf else int(self._total)

    def _idle(self) -> bool:
        return self.borrowed_tokens == 0

    def native(self) -> Any:
        """The bound native object (``asyncio.Semaphore`` / ``trio.CapacityLimiter``), binding it if needed."""
        native = self._native
        if _thread_local.name is not self._bound_under:
            native = self._bind()
        elif self._asyncio and native._value <= 0:
            _drop_stale_loop(native)
        return native

    __aexit__ = _release_on_exit

    def release(self) -> None:
        """Give a token back (trio: only the task that borrowed it; asyncio: any task)."""
        if self._native is None:
            raise RuntimeError("release() of a compat.CapacityLimiter that was never acquired")
        self._native.release()

    @property
    def total_tokens(self) -> int | float:
        """How many holders are allowed at once."""
        return self._total

    @property
    def borrowed_tokens(self) -> int:
        """How many tokens are held right now."""
        native = self._native
        if native is None:
            return 0
        if self._backend == "trio":
            return int(native.borrowed_tokens)
        return int(self._semaphore_size() - native._value)

    @property
    def available_tokens(self) -> int | float:
        """``total_tokens - borrowed_tokens``."""
        return self._total - self.borrowed_tokens


class Semaphore(_CountingBound):
    """A counter of free slots: ``async with sem:``, ``await sem.acquire()``, ``sem.release()``, ``sem.value``.

    Unlike :class:`CapacityLimiter`, a slot is not tied to a task on either backend: any task (or sync code) may
    ``release()``. With ``max_value``, a ``release()`` that would push ``value`` above it raises ``ValueError``.
    Waiters are served first come, first served. asyncio: ``asyncio.Semaphore`` / ``asyncio.BoundedSemaphore``
    (an uncontended acquire does not yield); trio: ``trio.Semaphore(max_value=...)`` (acquire is a checkpoint).
    ``value`` carries over when an idle semaphore (no waiters) is rebound to a new loop or backend.
    """

    __slots__ = ("_value", "_max")

    def __init__(self, initial_value: int, *, max_value: int | None = None) -> None:
        if not isinstance(initial_value, int) or isinstance(initial_value, bool) or initial_value < 0:
            raise ValueError(f"Semaphore initial_value must be an int >= 0, got {initial_value!r}")
        if max_value is not None and (
            not isinstance(max_value, int) or isinstance(max_value, bool) or max_value < initial_value
        ):
            raise ValueError(
                f"Semaphore max_value must be None or an int >= initial_value ({initial_value}), got {max_value!r}"
            )
        super().__init__()
        self._value = initial_value  # the count while unbound; afterwards the native object keeps it
        self._max = max_value

    def _make(self, backend: str) -> Any:
        value = self.value  # of the previous native object, if any: the count survives rebinding
        if backend == "trio":
            return trio_module().Semaphore(value, max_value=self._max)
        if self._max is None:
            return asyncio.Semaphore(value)
        native = asyncio.BoundedSemaphore(self._max)
        native._value = value
        return native

    def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> Awaitable[None]:
        try:
            self._native.release()
        except ValueError:
            raise self._too_many() from None
        return _COMPLETED

    def release(self) -> None:
        """Give a slot back (from any task, or sync code); ``ValueError`` if that would exceed ``max_value``."""
        native = self._native
        if native is None:
            if self._max is not None and self._value >= self._max:
                raise self._too_many()
            self._value += 1
            return
        if self._asyncio:
            # BoundedSemaphore.release is this bound check and then Semaphore.release: checking here and calling
            # the base method directly saves the frame a wrapper would otherwise add (same state changes).
            if self._max is not None and native._value >= self._max:
                raise self._too_many()
            _ASYNCIO_SEMAPHORE_RELEASE(native)
            return
        try:
            native.release()
        except ValueError:  # trio.Semaphore: "semaphore released too many times"
            raise self._too_many() from None

    def _too_many(self) -> ValueError:
        return ValueError(
            f"compat.Semaphore released too many times: value is already max_value={self._max}; "
            "call release() once per acquire()"
        )

    @property
    def value(self) -> int:
        """How many slots are free right now."""
        native = self._native
        if native is None:
            return self._value
        if self._backend == "trio":
            return int(native.value)
        return int(native._value)

    @property
    def max_value(self) -> int | None:
        """The bound given at construction (``None``: unbounded)."""
        return self._max


class Condition(_Bound):
    """A condition variable: ``async with cond:``, ``await cond.wait()``, ``cond.notify(n=1)``, ``notify_all()``.

    ``lock`` is a :class:`Lock` to share (a new one by default). asyncio: ``asyncio.Condition`` around the lock's
    ``asyncio.Lock``; trio: ``trio.Condition`` around its ``trio.Lock`` (owner-checked, acquire is a
    checkpoint). ``wait()`` and ``notify()`` need the lock held (``RuntimeError`` otherwise, on both); a
    cancelled ``wait()`` re-acquires the lock before the cancellation propagates. Bound on first use and
    rebound with its lock when idle.
    """

    __slots__ = ("_lock", "_native_lock")

    def __init__(self, lock: Lock | None = None) -> None:
        if lock is not None and not isinstance(lock, Lock):
            raise TypeError(f"Condition lock must be a compat.Lock or None, got {type(lock).__name__}")
        super().__init__()
        self._lock = lock if lock is not None else Lock()
        self._native_lock: Any = None

    def _bind(self) -> Any:
        native_lock = self._lock._bind()
        if self._native is None or native_lock is not self._native_lock:
            if self._native is not None and not self._idle():
                raise RuntimeError(
                    f"this compat.Condition has waiters under {self._backend}; "
                    "it can only move to another loop or backend once it is idle"
                )
            self._native_lock = native_lock
            condition = trio_module().Condition if self._lock._backend == "trio" else asyncio.Condition
            self._native = condition(native_lock)
        self._backend = self._lock._backend
        self._asyncio = self._lock._asyncio
        self._bound_under = _thread_local.name
        return self._native

    def _idle(self) -> bool:
        return not self._lock.locked() and super()._idle()

    def acquire(self) -> Awaitable[Any]:
        """Acquire the underlying lock (prefer ``async with``)."""
        if _thread_local.name is not self._bound_under or self._native_lock is not self._lock._native:
            self._bind()
        native_lock = self._native_lock
        if self._asyncio and native_lock._locked:
            _drop_stale_loop(native_lock)
        return native_lock.acquire()  # type: ignore[no-any-return]

    __aenter__ = acquire

    def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> Awaitable[None]:
        self._native_lock.release()
        return _COMPLETED

    def release(self) -> None:
        """Release the underlying lock."""
        self._lock.release()

    def locked(self) -> bool:
        """True while some task holds the underlying lock."""
        return self._lock.locked()

    def wait(self) -> Awaitable[Any]:
        """Release the lock, wait for a notify, re-acquire the lock (also when cancelled, before raising)."""
        native = self._native
        if _thread_local.name is not self._bound_under or self._native_lock is not self._lock._native:
            native = self._bind()
        if self._asyncio:
            _drop_stale_loop(native)
            _drop_stale_loop(self._native_lock)
        return native.wait()  # type: ignore[no-any-return]

    def notify(self, n: int = 1) -> None:
        """Wake up to ``n`` waiting tasks (the lock must be held)."""
        self._held().notify(n)

    def notify_all(self) -> None:
        """Wake every waiting task (the lock must be held)."""
        self._held().notify_all()

    def _held(self) -> Any:
        """The native condition; its notify() checks that the lock is held (RuntimeError) on both backends."""
        if self._native is None or self._native_lock is not self._lock._native:  # unbound, or its lock moved
            if not self._lock.locked():
                raise RuntimeError("notify() needs the condition's lock held: call it inside 'async with condition:'")
            # the shared Lock is held (async with lock:), but the condition is unbound or bound to the lock's old
            # native object: build it around the held one (Condition._idle() would refuse: the lock is held)
            if self._native is not None and not _Bound._idle(self):
                raise RuntimeError(f"this compat.Condition has waiters under {self._backend}; it cannot move yet")
            self._native = None
            return self._bind()
        return self._native


# ------------------------------------------------------------------------------------------------------- Queue

QueueFull = asyncio.QueueFull
QueueEmpty = asyncio.QueueEmpty
_NATIVE_SHUTDOWN = hasattr(asyncio.Queue, "shutdown")  # Python 3.13+

if _NATIVE_SHUTDOWN:
    QueueClosed: type[Exception] = asyncio.QueueShutDown  # type: ignore[attr-defined,unused-ignore]  # 3.13+
else:

    class QueueClosed(Exception):  # type: ignore[no-redef]  # asyncio.QueueShutDown before Python 3.13
        """Raised by a put on a closed :class:`Queue`, and by a get once a closed queue is drained."""


def _closed_error(what: str) -> Exception:
    return QueueClosed(f"{what} on a closed compat.Queue; close() was called (async for ends at that point)")


class _ClosedWaiters(collections.deque):  # type: ignore[type-arg]
    """The getters/putters of a closed ``asyncio.Queue`` on 3.11/3.12: a waiter added after ``close()`` fails at
    once. asyncio's ``get()``/``put()`` loop: one woken for an item (a slot) that another task took first waits
    again, and would wait forever, since ``close()`` only fails the waiters present when it runs."""

    def append(self, waiter: asyncio.Future[Any]) -> None:
        super().append(waiter)
        waiter.set_exception(_closed_error("a waiting get() or put()"))


def _fail_waiters(native: asyncio.Queue[Any]) -> None:
    """``close()`` on Python 3.11/3.12: wake every waiter with QueueClosed, now and later. asyncio's get()/put()
    drop a failed waiter and re-raise its exception. (A put already woken for a free slot still adds its item.)"""
    for name in ("_getters", "_putters"):
        waiters = getattr(native, name)
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(_closed_error("a waiting get() or put()"))
        setattr(native, name, _ClosedWaiters(waiters))


def _drop_stale_queue_loop(native: asyncio.Queue[Any]) -> None:
    """``_drop_stale_loop`` for an ``asyncio.Queue``, whose waiters are its getters and putters."""
    loop = native._loop  # type: ignore[attr-defined]  # asyncio's _LoopBoundMixin
    if loop is None or loop is asyncio.get_running_loop():
        return
    if all(waiter.done() for waiter in (*native._getters, *native._putters)):  # type: ignore[attr-defined]
        native._loop = None  # type: ignore[attr-defined]


async def _trio_put(send: Any, item: Any) -> None:
    try:
        await send.send(item)
    except trio_module().ClosedResourceError:  # close() while this put waited for room
        raise _closed_error("put()") from None


async def _trio_get(receive: Any) -> Any:
    try:
        return await receive.receive()
    except trio_module().EndOfChannel:
        raise _closed_error("get()") from None


class Queue(_Bound, Generic[T]):
    """A FIFO queue: ``await put(item)``, ``await get()``, ``put_nowait``/``get_nowait``, ``close()``, ``async for``.

    ``maxsize`` is an int >= 1 or ``math.inf`` (unbounded). ``put_nowait`` raises :data:`QueueFull` and
    ``get_nowait`` :data:`QueueEmpty` (they are ``asyncio.QueueFull`` / ``asyncio.QueueEmpty`` on both backends).
    After ``close()`` every put raises :class:`QueueClosed`; gets return what is left, then raise it (a get
    that waits wakes with it), and ``async for`` ends. A cancelled ``get`` or ``put`` loses nothing.

    asyncio: an ``asyncio.Queue`` (``close()`` is its ``shutdown()`` on 3.13+; ``QueueClosed`` is then
    ``asyncio.QueueShutDown``); a put on a queue with room and a get on a non-empty queue do not yield.
    trio: a memory channel pair (``open_memory_channel(maxsize)``; ``close()`` closes the send side); every put
    and get is a checkpoint. Items and the closed state carry over when an idle queue is rebound.
    """

    __slots__ = ("_maxsize", "_closed", "_receive", "_items")

    def __init__(self, maxsize: int | float) -> None:
        valid_int = isinstance(maxsize, int) and not isinstance(maxsize, bool) and maxsize >= 1
        if not valid_int and maxsize != math.inf:
            hint = (
                " (asyncio.Queue reads 0 as unbounded, a trio memory channel as a rendezvous without a buffer: "
                "pass math.inf for unbounded, 1 for the smallest buffer)"
                if maxsize == 0
                else ""
            )
            raise ValueError(f"Queue maxsize must be an int >= 1 or math.inf, got {maxsize!r}{hint}")
        super().__init__()
        self._maxsize = maxsize
        self._closed = False
        self._receive: Any = None
        self._items: list[Any] = []  # what put_nowait added before the queue was bound

    def _make(self, backend: str) -> Any:
        items = self._take_all()
        if backend == "trio":
            send, self._receive = trio_module().open_memory_channel(self._maxsize)
            for item in items:
                send.send_nowait(item)
            if self._closed:
                send.close()
            return send
        native: asyncio.Queue[Any] = asyncio.Queue(0 if self._maxsize == math.inf else int(self._maxsize))
        for item in items:
            native.put_nowait(item)
        if self._closed:
            if _NATIVE_SHUTDOWN:
                native.shutdown()  # type: ignore[attr-defined,unused-ignore]  # 3.13+
            else:
                _fail_waiters(native)
        return native

    def _take_all(self) -> list[Any]:
        """Empty the current native queue (or the pre-binding buffer) and return its items in order."""
        items, self._items = self._items, []
        native = self._native
        if native is None:
            return items
        if self._backend == "trio":
            receive = self._receive
            trio = trio_module()
            while True:
                try:
                    items.append(receive.receive_nowait())
                except (trio.WouldBlock, trio.EndOfChannel):
                    return items
        while not native.empty():
            items.append(native.get_nowait())
        return items

    def _idle(self) -> bool:
        native = self._native
        if self._backend == "trio":
            return not (native.statistics().tasks_waiting_send or self._receive.statistics().tasks_waiting_receive)
        return all(waiter.done() for waiter in (*native._getters, *native._putters))

    @property
    def maxsize(self) -> int | float:
        """The bound given at construction (``math.inf``: unbounded)."""
        return self._maxsize

    def qsize(self) -> int:
        """How many items wait in the queue."""
        native = self._native
        if native is None:
            return len(self._items)
        if self._backend == "trio":
            return int(native.statistics().current_buffer_used)
        return native.qsize()  # type: ignore[no-any-return]

    def put(self, item: T) -> Awaitable[None]:
        """Put ``item`` at the end, waiting while the queue is full; :class:`QueueClosed` once closed."""
        native = self._native
        if _thread_local.name is not self._bound_under:  # first use, a new backend, or closed
            native = self._checked("put()", putting=True)
        if self._asyncio:
            if len(native._queue) < self._maxsize:
                native.put_nowait(item)  # what asyncio's put() does when there is room, minus its coroutine
                return _COMPLETED
            _drop_stale_queue_loop(native)
            return native.put(item)  # type: ignore[no-any-return]
        return _trio_put(native, item)

    def put_nowait(self, item: T) -> None:
        """Put ``item`` at the end or raise :data:`QueueFull` at once; :class:`QueueClosed` once closed."""
        if self._closed:
            raise _closed_error("put_nowait()")
        native = self._native
        if native is None:
            if len(self._items) >= self._maxsize:
                raise QueueFull(f"compat.Queue is full (maxsize={self._maxsize})")
            self._items.append(item)
        elif self._asyncio:
            try:
                native.put_nowait(item)
            except QueueFull:
                raise QueueFull(f"compat.Queue is full (maxsize={self._maxsize})") from None
        else:
            try:
                native.send_nowait(item)
            except trio_module().WouldBlock:
                raise QueueFull(f"compat.Queue is full (maxsize={self._maxsize})") from None

    def get(self) -> Awaitable[T]:
        """Remove and return the first item, waiting while the queue is empty; :class:`QueueClosed` once closed
        and drained."""
        native = self._native
        if _thread_local.name is not self._bound_under:  # first use, a new backend, or closed
            native = self._checked("get()", putting=False)
        if self._asyncio:
            if not native._queue:
                _drop_stale_queue_loop(native)
            return native.get()  # type: ignore[no-any-return]
        return _trio_get(self._receive)

    def _checked(self, what: str, putting: bool) -> Any:
        """The slow path of put/get: bind (or rebind), and refuse what a closed queue no longer does.

        A closed queue keeps ``_bound_under`` at ``_CLOSED``, so its puts and gets always come here and the fast
        path needs no closed check of its own.
        """
        if putting and self._closed:
            raise _closed_error(what)
        native = self._bind()
        if self._closed:
            self._bound_under = _CLOSED
            if self._asyncio and not native._queue:
                raise _closed_error(what)
        return native

    def get_nowait(self) -> T:
        """Remove and return the first item or raise :data:`QueueEmpty` at once (:class:`QueueClosed` once closed
        and drained)."""
        native = self._native
        if native is None:
            if self._items:
                return self._items.pop(0)  # type: ignore[no-any-return]
        elif self._asyncio:
            if not native.empty():
                return native.get_nowait()  # type: ignore[no-any-return]
        else:
            trio = trio_module()
            try:
                return self._receive.receive_nowait()  # type: ignore[no-any-return]
            except trio.WouldBlock:
                pass
            except trio.EndOfChannel:
                raise _closed_error("get_nowait()") from None
        if self._closed:
            raise _closed_error("get_nowait()")
        raise QueueEmpty("compat.Queue is empty")

    def close(self) -> None:
        """No more puts: they raise :class:`QueueClosed`; gets drain what is left, then raise it. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._bound_under = _CLOSED
        native = self._native
        if native is None:
            return
        if not self._asyncio:
            native.close()  # the send side: a waiting put raises ClosedResourceError, a waiting get EndOfChannel
        elif _NATIVE_SHUTDOWN:
            native.shutdown()
        else:
            _fail_waiters(native)

    def __aiter__(self) -> Queue[T]:
        return self

    async def __anext__(self) -> T:
        try:
            return await self.get()
        except QueueClosed:
            raise StopAsyncIteration from None
