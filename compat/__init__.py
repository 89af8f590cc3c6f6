"""compat: native asyncio / trio primitives behind one small API, chosen by asking which library is running.

Why it exists: code that must run under asyncio *and* trio breaks as soon as one module uses a raw
``asyncio.Lock`` or ``asyncio.wait_for`` (under trio: ``trio.run received unrecognized yield message``). anyio fixes
that at a cost of 2-19x per primitive on asyncio and task-affine cancel scopes. ``compat`` instead hands back the
*native* primitive of the running library, detected once per object (``sniffio``), so the overhead is close to
zero. It depends on the standard library and ``sniffio`` only, imports ``trio`` only once trio is running, and
never imports anyio. The folder is vendorable: copy it into your package (e.g. as ``yourpkg/_compat``); all its
imports are relative.

API: ``current_backend``, ``UnsupportedBackendError``, ``get_cancelled_exc_class``, ``sleep``, ``checkpoint``,
``current_time``, ``fail_after``, ``move_on_after``, ``shield``, ``shielded``, ``Lock``, ``Event``,
``CapacityLimiter``, ``Semaphore``, ``create_task_group``, ``spawn_detached``, ``TaskHandle``, ``run_sync``.

Differences between the backends that remain (``compat`` gives each library's native behaviour):

=============================  ==============================================  ===============================================
what                           asyncio                                         trio
=============================  ==============================================  ===============================================
cancellation                   edge-triggered: delivered once; a body that     level-triggered: every checkpoint inside a
                               swallows ``CancelledError`` goes on normally    cancelled scope raises ``Cancelled`` again
cleanup ``await`` after a      runs (the cancellation was already delivered)   is cancelled again unless inside ``shield()``
timeout or cancel                                                              or ``shielded()``
``Lock`` acquire               uncontended acquire does not yield              always a checkpoint (yields, may be cancelled)
``Lock`` release               any task may release                            only the owner; re-acquire by owner raises
``CapacityLimiter``            ``asyncio.Semaphore``: a task may hold several  one token per task (borrower-checked);
``acquire``/``release``        tokens; release from any task                   release by the borrower only
``Semaphore`` acquire          uncontended acquire does not yield              always a checkpoint
``shielded()`` block           holds off compat timeouts (delivered after the  ``CancelScope(shield=True)``: holds off
                               block) and, if anyio is imported, enclosing     every enclosing cancellation
                               anyio scopes; a native ``task.cancel()``,
                               ``asyncio.timeout`` or ``TaskGroup`` cancel
                               still reaches its next ``await`` (use
                               ``shield(fn)`` for the full guarantee)
``shield(fn)``                 ``fn`` runs in a new task (task-affine things   ``fn`` runs in the caller's task inside
                               such as trio-style owner checks see another     ``CancelScope(shield=True)``; its
                               task) with a copy of the caller's contextvars   contextvar writes are the caller's
``shield`` / ``run_sync``      the cancellation wins; the call's error is      the call's error propagates; the
error while the caller was     its ``__context__``                             cancellation comes at the next checkpoint
cancelled
``shield`` at the end of the   ``asyncio.run`` cancels every task on           the shielded work completes
run                            shutdown, the shielded one included
``KeyboardInterrupt`` or       raised out of the event loop, as from any       reaches the caller of ``shield`` /
``SystemExit`` from the work   asyncio task (``asyncio.run`` re-raises it);    ``TaskHandle.wait()`` (a detached task
of ``shield`` or               the awaiting caller never sees it: catch them   also logs it)
``spawn_detached``             inside the work to hand them over
``fail_after(0)`` /            cancels at the next ``await`` that yields; a    cancels at the next checkpoint (trio
``move_on_after(0)``           body that never yields completes normally       checkpoints always check)
``spawn_detached`` errors      "Task exception was never retrieved" logged by  logged at once as a warning on the ``compat``
nobody waits for               asyncio when the task is garbage-collected      logger; the run goes on
detached task at end of run    cancelled by ``asyncio.run`` on shutdown        cancelled when the main task exits
detached task cancelled        its coroutine never runs (no ``finally``)       runs up to its first checkpoint
before it starts
done-callback timing           one loop tick after completion (``call_soon``)  synchronously at completion (or at once if done)
``run_sync`` default bound     the loop's default executor                     ``trio.to_thread``'s default limiter (40)
``Event`` after rebinding      keeps its flag                                  keeps its flag; an Event set outside trio
                                                                               waits without a checkpoint
=============================  ==============================================  ===============================================

Same on both: timeouts are *sync* context managers (``with fail_after(s):``) whose deadline is fixed on entry;
``fail_after`` raises builtin ``TimeoutError``; an outer cancellation is never turned into ``TimeoutError``; negative
or NaN seconds raise ``ValueError``; ``None`` seconds mean no deadline (still a scope); ``Semaphore`` slots may be
released by any task, FIFO, ``ValueError`` beyond ``max_value``; task groups raise ``ExceptionGroup``; ``Lock`` is FIFO-fair; primitives can be
built anywhere (module level, dataclass defaults) and bind on first use, and an *idle* primitive is rebound when it
is used under a new asyncio loop or the other backend; ``run_sync`` is not cancellable unless
``abandon_on_cancel=True`` and hides sniffio's context variable from the worker thread.

Not supported: trio guest mode sharing one primitive between the guest and its asyncio host (detection there is
per tick); other libraries (curio), which raise :class:`UnsupportedBackendError`.
"""

from __future__ import annotations

import asyncio

from ._backend import Backend, UnsupportedBackendError, current_backend, is_trio, trio_module
from ._sync import CapacityLimiter, Condition, Event, Lock, Queue, QueueClosed, QueueEmpty, QueueFull, Semaphore
from ._tasks import TaskGroup, TaskHandle, create_task_group, shield, spawn_detached
from ._threads import run_sync
from ._timeouts import (
    TimeoutScope,
    checkpoint,
    current_time,
    fail_after,
    fail_at,
    move_on_after,
    move_on_at,
    shielded,
    sleep,
    sleep_until,
)


def get_cancelled_exc_class() -> type[BaseException]:
    """The exception the running library uses for cancellation: ``asyncio.CancelledError`` or ``trio.Cancelled``.

    Catch it only to clean up, and always re-raise it.
    """
    if is_trio():
        return trio_module().Cancelled  # type: ignore[no-any-return]  # ModuleType attribute
    return asyncio.CancelledError


__all__ = [
    "Backend",
    "CapacityLimiter",
    "Condition",
    "Event",
    "Lock",
    "Queue",
    "QueueClosed",
    "QueueEmpty",
    "QueueFull",
    "Semaphore",
    "TaskGroup",
    "TaskHandle",
    "TimeoutScope",
    "UnsupportedBackendError",
    "checkpoint",
    "create_task_group",
    "current_backend",
    "current_time",
    "fail_after",
    "fail_at",
    "get_cancelled_exc_class",
    "move_on_after",
    "move_on_at",
    "run_sync",
    "shield",
    "shielded",
    "sleep",
    "sleep_until",
    "spawn_detached",
]
