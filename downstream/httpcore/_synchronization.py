"""httpcore's synchronization layer on ``compat`` (vendored as ``httpcore._vendored_compat``); replaces ``_synchronization.py``.

Same names and behaviour as httpcore 1.0.9's module, for the async classes the connection pool and the HTTP/1.1,
HTTP/2 and proxy connections use, and the thread-based twins that ``unasync`` maps them to in ``httpcore._sync``:

* ``AsyncLock``: :class:`compat.Lock` (native ``asyncio.Lock`` / ``trio.Lock``);
* ``AsyncEvent``: :class:`compat.Event`; ``wait(timeout)`` uses ``compat.fail_after(timeout)``, where ``None``
  means no deadline, and raises httpcore's ``PoolTimeout``;
* ``AsyncSemaphore``: :class:`compat.Semaphore` with ``max_value``: HTTP/2 takes stream slots in one task and
  gives them back from others;
* ``AsyncShieldCancellation``: :func:`compat.shielded`, the synchronous shield scope httpcore wraps its cleanup
  ``await`` in (inside ``except`` handlers and async generators, where a callable-taking shield does not fit).

No anyio import is needed for these (the network backend chosen in ``_backends/auto.py`` is untouched).
"""

from __future__ import annotations

import threading
import types

from ._exceptions import ExceptionMapping, PoolTimeout, map_exceptions
from ._vendored_compat import Event as _CompatEvent
from ._vendored_compat import Lock as _CompatLock
from ._vendored_compat import Semaphore as _CompatSemaphore
from ._vendored_compat import current_backend, fail_after, shielded

_POOL_TIMEOUT: ExceptionMapping = {TimeoutError: PoolTimeout}


def current_async_library() -> str:
    """``"asyncio"`` or ``"trio"``; a ``RuntimeError`` (``compat.UnsupportedBackendError``) for anything else."""
    return current_backend()


class AsyncLock(_CompatLock):
    """An async lock: ``async with lock:`` (the native lock of the running library, bound on first use)."""

    __slots__ = ()


class AsyncThreadLock:
    """The async twin of :class:`ThreadLock`: async code runs in one thread, so there is nothing to lock."""

    def __enter__(self) -> AsyncThreadLock:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: types.TracebackType | None = None,
    ) -> None:
        return None


class AsyncEvent:
    """A one-shot flag whose ``wait(timeout)`` raises ``PoolTimeout`` when ``timeout`` seconds pass first."""

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event = _CompatEvent()

    def set(self) -> None:
        self._event.set()

    async def wait(self, timeout: float | None = None) -> None:  # noqa: ASYNC109 - httpcore's own signature
        with map_exceptions(_POOL_TIMEOUT), fail_after(timeout):
            await self._event.wait()


class AsyncSemaphore:
    """``bound`` slots; ``await acquire()`` in one task, ``await release()`` in any; releasing past ``bound`` fails."""

    __slots__ = ("_semaphore",)

    def __init__(self, bound: int) -> None:
        self._semaphore = _CompatSemaphore(bound, max_value=bound)

    async def acquire(self) -> None:
        await self._semaphore.acquire()

    async def release(self) -> None:
        self._semaphore.release()


class AsyncShieldCancellation:
    """``with AsyncShieldCancellation(): await cleanup()``: :func:`compat.shielded` (see its backend notes)."""

    __slots__ = ("_scope",)

    def __init__(self) -> None:
        self._scope = shielded()

    def __enter__(self) -> AsyncShieldCancellation:
        self._scope.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: types.TracebackType | None = None,
    ) -> None:
        self._scope.__exit__(exc_type, exc_value, traceback)


# The thread-based twins, used by httpcore's generated synchronous code.


class Lock:
    """A thread lock: ``with lock:``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def __enter__(self) -> Lock:
        self._lock.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: types.TracebackType | None = None,
    ) -> None:
        self._lock.release()


class ThreadLock(Lock):
    """A thread lock for state changes without I/O (a no-op in the async twin)."""


class Event:
    """A thread event whose ``wait(timeout)`` raises ``PoolTimeout`` when ``timeout`` seconds pass first."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def wait(self, timeout: float | None = None) -> None:
        if timeout == float("inf"):
            timeout = None
        if not self._event.wait(timeout=timeout):
            raise PoolTimeout()


class Semaphore:
    """A thread semaphore with ``bound`` slots."""

    def __init__(self, bound: int) -> None:
        self._semaphore = threading.Semaphore(value=bound)

    def acquire(self) -> None:
        self._semaphore.acquire()

    def release(self) -> None:
        self._semaphore.release()


class ShieldCancellation:
    """Threads have no cancellation: the sync twin of :class:`AsyncShieldCancellation` does nothing."""

    def __enter__(self) -> ShieldCancellation:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: types.TracebackType | None = None,
    ) -> None:
        return None
