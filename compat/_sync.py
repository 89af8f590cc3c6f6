"""Lock, Event, CapacityLimiter and Semaphore: native objects, bound on first use, rebound when idle.

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
import math
from collections.abc import Awaitable, Generator
from types import TracebackType
from typing import Any

from ._backend import _thread_local, current_backend, trio_module

_UNBOUND = object()


class _Completed:
    """An awaitable that finishes at once without yielding: what a sync ``release()`` hands to ``async with``."""

    __slots__ = ()

    def __await__(self) -> Generator[Any, None, None]:
        return _EXHAUSTED  # an exhausted iterator: ``await`` sees StopIteration(None) immediately


_EXHAUSTED: Generator[Any, None, None] = (_ for _ in ())
next(_EXHAUSTED, None)
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
