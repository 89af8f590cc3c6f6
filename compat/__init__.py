"""compat: native asyncio / trio primitives behind one small API, chosen by asking which library is running.

Why it exists: code that must run under asyncio *and* trio breaks as soon as one module uses a raw
``asyncio.Lock`` or ``asyncio.wait_for`` (under trio: ``trio.run received unrecognized yield message``). anyio fixes
that at a cost of 2-19x per primitive on asyncio and task-affine cancel scopes. ``compat`` instead hands back the
*native* primitive of the running library, detected once per object (``sniffio``), so the overhead is close to
zero. It depends on the standard library and ``sniffio`` only, imports ``trio`` only once trio is running, and
never imports anyio. The folder is vendorable: copy it into your package under any name (all its imports are
relative); pick one your package does not use already (``yourpkg/_compat`` would shadow a ``_compat.py`` of
your own). Supported: asyncio on CPython 3.11+, trio >= 0.23.

API: ``current_backend``, ``UnsupportedBackendError``, ``get_cancelled_exc_class``, ``sleep``, ``sleep_until``,
``checkpoint``, ``current_time``, ``fail_after``, ``move_on_after``, ``fail_at``, ``move_on_at`` (scopes with
``cancel()``, ``cancel_called``, ``cancelled_caught``, ``deadline``), ``shield``, ``shielded``, ``Lock``,
``Event``, ``CapacityLimiter``, ``Semaphore``, ``Condition``, ``Queue`` (``QueueFull``, ``QueueEmpty``,
``QueueClosed``), ``create_task_group`` / ``TaskGroup`` (``start_soon``, ``start``, ``cancel``),
``spawn_detached``, ``TaskHandle`` (``cancel``, ``done``, ``add_done_callback``, ``wait``, ``result``,
``exception``, ``aclose``), ``run_sync``.

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
``Condition``                  ``asyncio.Condition``: acquire as ``Lock``;     ``trio.Condition``: acquire as ``Lock``
                               ``wait()`` returns True                         (owner-checked); ``wait()`` returns None
``Queue`` put / get            a put with room and a get with an item do not   every put and get is a checkpoint
                               yield                                           (memory channel ``send``/``receive``)
``QueueClosed``                3.13+: ``asyncio.QueueShutDown`` (``close()``   compat's class (3.11/3.12) or
                               is ``shutdown()``); 3.11/3.12: compat's class;  ``asyncio.QueueShutDown`` (3.13+); a put
                               a put already woken for a free slot when        waiting at ``close()`` raises it
                               ``close()`` runs still adds its item on
                               3.11/3.12 (raises on 3.13+)
``TaskGroup.cancel()``         3.15+: ``asyncio.TaskGroup.cancel()`` (an       ``nursery.cancel_scope.cancel()``
                               outer cancellation it swallowed, CPython
                               gh-155433, is raised on exit); before: the
                               body's task is cancelled (``uncancel()``
                               bookkeeping: an outer cancellation still
                               wins), or, once the body is done, the children
child started after the        cancelled before it starts: never runs (no      runs up to its first checkpoint, then
group was cancelled            ``finally``); after a *failed* child,           ``Cancelled``
                               ``start_soon`` raises ``RuntimeError``
                               (``asyncio.TaskGroup`` is shutting down)
``TaskGroup.start()``          the child is a task of the group from the       the child runs under the caller of ``start``
                               start; its error before ``started()`` goes to   until ``started()`` (``nursery.start``); its
                               the caller of ``start`` (the group never sees   error before that goes to the caller
                               it); if the *group* is cancelled first, a
                               caller not cancelled itself gets
                               ``RuntimeError``
scope ``cancel_called`` after  True if ``cancel()`` was called or the         stays True once the deadline passed
the block                      deadline was delivered; a deadline that passed  inside the block
                               in a block with no ``await`` reads False after
                               it
``shielded()`` block           holds off compat timeouts and scope             ``CancelScope(shield=True)``: holds off
                               ``cancel()`` (delivered after the block) and,   every enclosing cancellation
                               if anyio is imported, enclosing anyio scopes;
                               a native ``task.cancel()``, ``asyncio.timeout``
                               or ``TaskGroup`` cancel still reaches its next
                               ``await`` (use ``shield(fn)`` for the full
                               guarantee)
``shield(fn)``                 ``fn`` runs in a new task (task-affine things   ``fn`` runs in the caller's task inside
                               such as trio-style owner checks see another     ``CancelScope(shield=True)``; its
                               task) with a copy of the caller's contextvars   contextvar writes are the caller's
``shield`` / ``run_sync`` /    the cancellation wins; the call's (task's)      the call's (task's) error propagates; the
``aclose`` error while the     error is its ``__context__`` (``aclose`` also   cancellation comes at the next checkpoint
caller was cancelled           logs it, so a scope that swallows the
                               cancellation cannot lose it)
``shield`` at the end of the   ``asyncio.run`` cancels every task on           the shielded work completes
run                            shutdown, the shielded one included
``KeyboardInterrupt`` or       raised out of the event loop, as from any       reaches the caller of ``shield`` /
``SystemExit`` from the work   asyncio task (``asyncio.run`` re-raises it);    ``TaskHandle.wait()``
of ``shield`` or               the awaiting caller never sees it: catch them
``spawn_detached``             inside the work to hand them over
``fail_after(0)`` /            cancels at the next ``await`` that yields; a    cancels at the next checkpoint (trio
``move_on_after(0)``           body that never yields completes normally       checkpoints always check)
detached task error nobody     "Task exception was never retrieved" on the     logged once as an error on the ``compat``
retrieves (``wait``,           ``asyncio`` logger, when the task is garbage-   logger, when the handle is garbage-collected
``result``, ``exception``,     collected (the handle holds it: when the        (or when the task ends, if the handle is
``aclose``)                    handle is dropped)                              already gone)
detached task at end of run    cancelled by ``asyncio.run`` on shutdown        cancelled when the main task exits
detached task cancelled        its coroutine never runs (no ``finally``)       runs up to its first checkpoint
before it starts
done-callback timing           one loop tick after completion (``call_soon``)  synchronously at completion (or at once if done)
``run_sync`` default bound     the loop's default executor                     ``trio.to_thread``'s default limiter (40)
``Event`` after rebinding      keeps its flag                                  keeps its flag; an Event set outside trio
                                                                               waits without a checkpoint
=============================  ==============================================  ===============================================

Same on both: timeouts are *sync* context managers (``with fail_after(s):``) whose relative deadline is fixed on
entry, ``move_on_at``/``fail_at`` take one on ``current_time()``'s clock; ``fail_*`` raise builtin
``TimeoutError`` only when the deadline cut the block short (never for ``scope.cancel()``, never for an outer
cancellation); ``scope.cancel()`` works from any task and before entry, takes effect at the next checkpoint, and a
block that ends without one is not cut short; negative or NaN seconds and NaN deadlines raise ``ValueError``;
``None`` seconds mean no deadline (still a scope); ``Semaphore`` slots may be released by any task, FIFO,
``ValueError`` beyond ``max_value``; task groups raise ``ExceptionGroup``, ``__aenter__`` returns the
:class:`TaskGroup` itself and ``cancel()`` ends the group without raising that cancellation; ``Lock`` is
FIFO-fair; ``Queue`` is FIFO, ``QueueFull``/``QueueEmpty`` are ``asyncio.QueueFull``/``asyncio.QueueEmpty``, a
cancelled ``get``/``put`` loses or duplicates nothing; primitives can be built anywhere (module level, dataclass
defaults) and bind on first use, and an *idle* primitive is rebound when it is used under a new asyncio loop or
the other backend (a ``Queue`` keeps its items); ``TaskHandle.result()``/``exception()`` raise
``asyncio.InvalidStateError`` before the task is done and give None for a cancelled task, ``aclose()`` never
raises the task's cancellation; an error retrieved by ``wait``/``result``/``exception``/``aclose`` is never logged;
``run_sync`` is not cancellable unless ``abandon_on_cancel=True`` and hides sniffio's context variable from the
worker thread.

Not supported: trio before 0.23 (it sets only sniffio's context variable; compat's entry points raise
:class:`UnsupportedBackendError` naming trio and its version, except ``sleep``/``checkpoint``, which trio itself
rejects with "unrecognized yield message"); trio guest mode sharing one primitive between the guest and its
asyncio host (detection there is per tick); other libraries (curio), which raise :class:`UnsupportedBackendError`.
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
