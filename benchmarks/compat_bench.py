"""compat vs the native primitive vs anyio, on asyncio (``asyncio.run``) and trio (``trio.run``).

For each primitive three implementations of the same operation run interleaved in one process (see
:mod:`benchmarks._timing`): the backend's own primitive ("native"), :mod:`compat`, and the anyio equivalent.
Time is the process's CPU time (``time.process_time_ns``, all threads): on a machine shared with other jobs the
wall clock also counts the time the process waits for a core, which lands on whichever implementation ran then.
Reported: ns/op (median of the rounds), ``compat/native`` (the overhead compat adds; target <= 1.25) and
``anyio/compat`` (how much faster compat is than anyio; target >= 3 for lock, event and limiter on asyncio).
Ratios are the median of the per-round ratios (each round's implementations ran back to back), so they may
differ slightly from the ratio of the ns/op medians.

What "native" is for each row:

==================  ==================================================  ===============================================
row                 asyncio                                             trio
==================  ==================================================  ===============================================
lock                ``asyncio.Lock`` uncontended ``async with``         ``trio.Lock``
event wait (set)    ``await event.wait()`` on an already-set event      same, ``trio.Event``
event fresh         new event, ``set()``, ``await wait()``              same
limiter             ``asyncio.Semaphore(10)`` ``async with``            ``trio.CapacityLimiter(10)``
semaphore           ``asyncio.BoundedSemaphore(10)``: ``await           ``trio.Semaphore(10, max_value=10)``
                    acquire()`` + ``release()``
sleep(0)            ``asyncio.sleep(0)``                                ``trio.sleep(0)``
fail_after          ``async with asyncio.timeout(1000)``                ``with trio.fail_after(1000)``
move_on_after       ``async with asyncio.timeout(1000)``                ``with trio.move_on_after(1000)``
shield              ``await asyncio.shield(ensure_future(coro))``       ``with trio.CancelScope(shield=True)``
shielded()          ``await asyncio.shield(ensure_future(coro))`` (no   ``with trio.CancelScope(shield=True)``
                    sync shield scope exists on asyncio; diagnostic
                    row "vs bare await": the block without any shield)
spawn + wait        ``create_task`` + ``await asyncio.shield(task)``    ``spawn_system_task`` of a body in its own
                                                                        ``CancelScope`` + ``trio.Event``
task group (1)      ``asyncio.TaskGroup`` with one child                ``trio.open_nursery`` with one child
run_sync            ``asyncio.to_thread(int)``                          ``trio.to_thread.run_sync(int)``
queue put + get     ``asyncio.Queue(10)``: ``await put(i)`` + ``await   ``trio.open_memory_channel(10)``: ``await
                    get()``                                             send(i)`` + ``await receive()``
condition           ``async with cond: cond.notify()`` (no waiter),     same, ``trio.Condition``
                    ``asyncio.Condition``
task group + start  ``asyncio.TaskGroup``, a child that sets a future   ``trio.open_nursery`` + ``await
                    the body awaits (asyncio has no ``start``)          nursery.start(child)``
task group + cancel ``asyncio.TaskGroup`` with one sleeping child in an   ``trio.open_nursery`` with one sleeping child,
                    ``asyncio.timeout`` expired on purpose (the native  ``nursery.cancel_scope.cancel()``
                    way to cancel body and children before 3.15);
                    ``tg.cancel()`` on 3.15
spawn + aclose      ``create_task(sleep)``, ``task.cancel()``, ``await  ``spawn_system_task`` in its own ``CancelScope``,
                    asyncio.wait((task,))``                             cancel it, shielded wait for its ``trio.Event``
==================  ==================================================  ===============================================

anyio: ``anyio.Lock()``, ``anyio.Event()``, ``anyio.CapacityLimiter(10)``, ``anyio.sleep(0)``, ``anyio.fail_after``,
``anyio.Semaphore(10, max_value=10)``, ``anyio.move_on_after``, ``anyio.CancelScope(shield=True)``, ``start_soon`` into a task group kept open for the
round + ``anyio.Event`` (spawn + wait: anyio has no detached spawn), ``anyio.create_task_group`` with one child,
``anyio.to_thread.run_sync``, ``anyio.create_memory_object_stream(10)``, ``anyio.Condition``, anyio's ``start`` and
``cancel_scope.cancel()``, and for spawn + aclose a task in its own scope in a group kept open for the round.

anyio is imported by this benchmark, and on asyncio ``compat.shield`` / ``compat.run_sync`` enter an anyio shield
scope when anyio is imported (SPEC §3). The plain ``compat`` column is therefore measured with anyio hidden from
``sys.modules`` (the situation of an application that does not use anyio); the rows marked "(anyio loaded)"
measure the same compat calls with anyio visible.

Why spawn + wait compares with those: it is the native code with the semantics ``spawn_detached`` promises, as
the shield row compares with ``create_task`` + ``asyncio.shield``. A cancelled *waiter* must not cancel the task,
which plain ``await task`` does (so asyncio's baseline waits through ``asyncio.shield``), and the task must be
cancellable from any task, which a bare trio system task is not (so trio's baseline gives it a ``CancelScope``).
The cheaper baselines without those guarantees are shown as diagnostic rows: "spawn + wait (vs await task)" on
asyncio and "spawn + wait (vs uncancellable)" on trio.

Diagnostic rows are not counted for the targets; the others are "(anyio loaded)" above.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import anyio.to_thread
import trio

import compat

from ._report import Table, ratio, run_meta, write_results
from ._timing import Impl, interleave

perf_ns = time.process_time_ns  # CPU time: on a shared machine wall time charges waits for a core to whoever ran
LONG = 1000.0  # a deadline that never fires
LIMITER_TOKENS = 10
QUEUE_SIZE = 10
SUITE = "compat"

# Targets from the issue.
MAX_COMPAT_OVER_NATIVE = 1.25
MIN_ANYIO_OVER_COMPAT = 3.0
ANYIO_TARGET_ROWS = ("lock", "event wait (set)", "event fresh", "limiter")


async def _noop() -> None:
    return None


@contextlib.contextmanager
def anyio_hidden() -> Iterator[None]:
    """Make ``sys.modules.get("anyio")`` return None for the duration (compat then behaves as without anyio)."""
    module = sys.modules.pop("anyio", None)
    try:
        yield
    finally:
        if module is not None:
            sys.modules["anyio"] = module


def without_anyio(impl: Impl) -> Impl:
    async def run(n: int) -> int:
        with anyio_hidden():
            return await impl(n)

    return run


# ------------------------------------------------------------------------------------------------------- lock
def lock_impl(factory: Callable[[], Any]) -> Impl:
    async def run(n: int) -> int:
        lock = factory()
        t0 = perf_ns()
        for _ in range(n):
            async with lock:
                pass
        return perf_ns() - t0

    return run


# ------------------------------------------------------------------------------------------------------ event
def event_set_impl(factory: Callable[[], Any]) -> Impl:
    async def run(n: int) -> int:
        event = factory()
        event.set()
        await event.wait()  # bind outside the timed part
        t0 = perf_ns()
        for _ in range(n):
            await event.wait()
        return perf_ns() - t0

    return run


def event_fresh_impl(factory: Callable[[], Any]) -> Impl:
    async def run(n: int) -> int:
        t0 = perf_ns()
        for _ in range(n):
            event = factory()
            event.set()
            await event.wait()
        return perf_ns() - t0

    return run


# ---------------------------------------------------------------------------------------------------- limiter
def limiter_impl(factory: Callable[[], Any]) -> Impl:
    async def run(n: int) -> int:
        limiter = factory()
        t0 = perf_ns()
        for _ in range(n):
            async with limiter:
                pass
        return perf_ns() - t0

    return run


def semaphore_impl(factory: Callable[[], Any]) -> Impl:
    async def run(n: int) -> int:
        semaphore = factory()
        t0 = perf_ns()
        for _ in range(n):
            await semaphore.acquire()
            semaphore.release()
        return perf_ns() - t0

    return run


# ------------------------------------------------------------------------------------------------------ sleep
def sleep_impl(sleep: Callable[[float], Any]) -> Impl:
    async def run(n: int) -> int:
        t0 = perf_ns()
        for _ in range(n):
            await sleep(0)
        return perf_ns() - t0

    return run


# ---------------------------------------------------------------------------------------------------- timeouts
def sync_scope_impl(factory: Callable[[float], Any]) -> Impl:
    async def run(n: int) -> int:
        t0 = perf_ns()
        for _ in range(n):
            with factory(LONG):
                pass
        return perf_ns() - t0

    return run


async def asyncio_timeout(n: int) -> int:
    t0 = perf_ns()
    for _ in range(n):
        async with asyncio.timeout(LONG):  # noqa: ASYNC100 - the empty body is what is measured
            pass
    return perf_ns() - t0


# ----------------------------------------------------------------------------------------------------- shield
async def asyncio_shield(n: int) -> int:
    shield, ensure_future = asyncio.shield, asyncio.ensure_future
    t0 = perf_ns()
    for _ in range(n):
        await shield(ensure_future(_noop()))
    return perf_ns() - t0


async def compat_shield(n: int) -> int:
    shield = compat.shield
    t0 = perf_ns()
    for _ in range(n):
        await shield(_noop)
    return perf_ns() - t0


def scope_shield_impl(factory: Callable[..., Any]) -> Impl:
    async def run(n: int) -> int:
        t0 = perf_ns()
        for _ in range(n):
            with factory(shield=True):
                await _noop()
        return perf_ns() - t0

    return run


def shielded_impl(factory: Callable[[], Any]) -> Impl:
    async def run(n: int) -> int:
        t0 = perf_ns()
        for _ in range(n):
            with factory():
                await _noop()
        return perf_ns() - t0

    return run


def anyio_shield_scope() -> Any:
    return anyio.CancelScope(shield=True)


# ----------------------------------------------------------------------------------------------- spawn + wait
async def asyncio_spawn(n: int) -> int:
    loop = asyncio.get_running_loop()
    t0 = perf_ns()
    for _ in range(n):
        await loop.create_task(_noop())
    return perf_ns() - t0


async def asyncio_spawn_shielded(n: int) -> int:
    """create_task + ``await asyncio.shield(task)``: the native spelling of compat's wait() semantics (a cancelled
    waiter does not cancel the task)."""
    loop, shield = asyncio.get_running_loop(), asyncio.shield
    t0 = perf_ns()
    for _ in range(n):
        await shield(loop.create_task(_noop()))
    return perf_ns() - t0


async def compat_spawn(n: int) -> int:
    spawn = compat.spawn_detached
    t0 = perf_ns()
    for _ in range(n):
        await spawn(_noop()).wait()
    return perf_ns() - t0


async def _set_when_done(event: Any) -> None:
    event.set()


async def trio_spawn(n: int) -> int:
    spawn, Event = trio.lowlevel.spawn_system_task, trio.Event
    t0 = perf_ns()
    for _ in range(n):
        done = Event()
        spawn(_set_when_done, done)
        await done.wait()
    return perf_ns() - t0


async def _set_after_scope(event: Any, scope: Any) -> None:
    with scope:
        await _noop()
    event.set()


async def trio_spawn_cancellable(n: int) -> int:
    """spawn_system_task of a body inside its own CancelScope + Event: the native spelling of a detached task
    that can be cancelled (what ``TaskHandle.cancel()`` needs)."""
    spawn, Event, CancelScope = trio.lowlevel.spawn_system_task, trio.Event, trio.CancelScope
    t0 = perf_ns()
    for _ in range(n):
        done = Event()
        spawn(_set_after_scope, done, CancelScope())
        await done.wait()
    return perf_ns() - t0


async def anyio_spawn(n: int) -> int:
    async with anyio.create_task_group() as tg:
        t0 = perf_ns()
        for _ in range(n):
            done = anyio.Event()
            tg.start_soon(_set_when_done, done)
            await done.wait()
        return perf_ns() - t0


# ------------------------------------------------------------------------------------------------- task group
async def asyncio_taskgroup(n: int) -> int:
    t0 = perf_ns()
    for _ in range(n):
        async with asyncio.TaskGroup() as tg:
            tg.create_task(_noop())
    return perf_ns() - t0


def start_soon_group_impl(factory: Callable[[], Any]) -> Impl:
    async def run(n: int) -> int:
        t0 = perf_ns()
        for _ in range(n):
            async with factory() as tg:
                tg.start_soon(_noop)
        return perf_ns() - t0

    return run


# ------------------------------------------------------------------------------------------------------ queue
def queue_impl(factory: Callable[[], Any]) -> Impl:
    """``await put(i)`` + ``await get()`` on a queue with room (asyncio.Queue / compat.Queue)."""

    async def run(n: int) -> int:
        queue = factory()
        t0 = perf_ns()
        for i in range(n):
            await queue.put(i)
            await queue.get()
        return perf_ns() - t0

    return run


def channel_impl(open_channel: Callable[[int], Any]) -> Impl:
    """``await send(i)`` + ``await receive()`` on a memory channel pair (trio / anyio)."""

    async def run(n: int) -> int:
        send, receive = open_channel(QUEUE_SIZE)
        t0 = perf_ns()
        for i in range(n):
            await send.send(i)
            await receive.receive()
        return perf_ns() - t0

    return run


# -------------------------------------------------------------------------------------------------- condition
def condition_impl(factory: Callable[[], Any]) -> Impl:
    """``async with cond: cond.notify()`` (no waiter): what a producer pays per item."""

    async def run(n: int) -> int:
        cond = factory()
        t0 = perf_ns()
        for _ in range(n):
            async with cond:
                cond.notify()
        return perf_ns() - t0

    return run


# -------------------------------------------------------------------------------------- task group start/cancel
async def _started(*, task_status: Any) -> None:
    task_status.started(1)


async def _started_native(future: asyncio.Future[int]) -> None:
    future.set_result(1)


async def asyncio_taskgroup_start(n: int) -> int:
    """asyncio has no ``start``: a child that hands a value back through a future is the native spelling."""
    loop = asyncio.get_running_loop()
    t0 = perf_ns()
    for _ in range(n):
        async with asyncio.TaskGroup() as tg:
            future = loop.create_future()
            tg.create_task(_started_native(future))
            await future
    return perf_ns() - t0


def start_group_impl(factory: Callable[[], Any]) -> Impl:
    async def run(n: int) -> int:
        t0 = perf_ns()
        for _ in range(n):
            async with factory() as tg:
                await tg.start(_started)
        return perf_ns() - t0

    return run


async def asyncio_taskgroup_cancel(n: int) -> int:
    """The native spelling of ``cancel()`` (body and children cancelled, the group exits quietly): before Python
    3.15 an ``asyncio.timeout`` around the group, expired on purpose (3.15: the native ``tg.cancel()``)."""
    sleep, timeout, loop = asyncio.sleep, asyncio.timeout, asyncio.get_running_loop()
    t0 = perf_ns()
    for _ in range(n):
        if hasattr(asyncio.TaskGroup, "cancel"):
            async with asyncio.TaskGroup() as tg:
                tg.create_task(sleep(LONG))
                tg.cancel()
            continue
        try:
            async with timeout(None) as scope, asyncio.TaskGroup() as tg:
                tg.create_task(sleep(LONG))
                scope.reschedule(loop.time())
                await sleep(0)
        except TimeoutError:
            pass
    return perf_ns() - t0


async def asyncio_taskgroup_cancel_child(n: int) -> int:
    """Diagnostic: cancelling the one child only (the body is not cancelled)."""
    sleep = asyncio.sleep
    t0 = perf_ns()
    for _ in range(n):
        async with asyncio.TaskGroup() as tg:
            tg.create_task(sleep(LONG)).cancel()
    return perf_ns() - t0


def cancel_group_impl(factory: Callable[[], Any], sleep: Callable[[float], Any], cancel: Callable[[Any], None]) -> Impl:
    async def run(n: int) -> int:
        t0 = perf_ns()
        for _ in range(n):
            async with factory() as tg:
                tg.start_soon(sleep, LONG)
                cancel(tg)
        return perf_ns() - t0

    return run


# ---------------------------------------------------------------------------------------------------- aclose
async def asyncio_spawn_cancel(n: int) -> int:
    """create_task, cancel, ``await asyncio.wait((task,))``: the native cancel-and-wait that, like ``aclose()``,
    never raises the task's own cancellation and does not cancel the task with a cancelled waiter."""
    loop, sleep, wait = asyncio.get_running_loop(), asyncio.sleep, asyncio.wait
    t0 = perf_ns()
    for _ in range(n):
        task = loop.create_task(sleep(LONG))
        task.cancel()
        await wait((task,))
    return perf_ns() - t0


async def asyncio_spawn_cancel_await(n: int) -> int:
    """Diagnostic: create_task, cancel, ``await task`` catching its CancelledError (the common idiom, which
    cannot tell the task's cancellation from the caller's)."""
    loop, sleep, cancelled_error = asyncio.get_running_loop(), asyncio.sleep, asyncio.CancelledError
    t0 = perf_ns()
    for _ in range(n):
        task = loop.create_task(sleep(LONG))
        task.cancel()
        try:
            await task
        except cancelled_error:
            pass
    return perf_ns() - t0


async def _sleep_in_scope(event: Any, scope: Any) -> None:
    with scope:
        await trio.sleep(LONG)
    event.set()


async def trio_spawn_cancel(n: int) -> int:
    """A system task in its own CancelScope: cancel the scope, wait (shielded) for the task's Event."""
    spawn, Event, CancelScope = trio.lowlevel.spawn_system_task, trio.Event, trio.CancelScope
    t0 = perf_ns()
    for _ in range(n):
        done, scope = Event(), CancelScope()
        spawn(_sleep_in_scope, done, scope)
        scope.cancel()
        with CancelScope(shield=True):
            await done.wait()
    return perf_ns() - t0


async def compat_aclose(n: int) -> int:
    spawn, sleep = compat.spawn_detached, compat.sleep
    t0 = perf_ns()
    for _ in range(n):
        await spawn(sleep(LONG)).aclose()
    return perf_ns() - t0


async def _anyio_sleep_in_scope(event: Any, scope: Any) -> None:
    with scope:
        await anyio.sleep(LONG)
    event.set()


async def anyio_spawn_cancel(n: int) -> int:
    """anyio has no detached spawn: a task in a group kept open for the round, in its own scope, cancelled."""
    async with anyio.create_task_group() as tg:
        t0 = perf_ns()
        for _ in range(n):
            done, scope = anyio.Event(), anyio.CancelScope()
            tg.start_soon(_anyio_sleep_in_scope, done, scope)
            scope.cancel()
            with anyio.CancelScope(shield=True):
                await done.wait()
        return perf_ns() - t0


def _cancel_scope_of(tg: Any) -> None:
    tg.cancel_scope.cancel()


def _cancel(tg: Any) -> None:
    tg.cancel()


# --------------------------------------------------------------------------------------------------- run_sync
def to_thread_impl(call: Callable[..., Any]) -> Impl:
    async def run(n: int) -> int:
        t0 = perf_ns()
        for _ in range(n):
            await call(int)
        return perf_ns() - t0

    return run


# ------------------------------------------------------------------------------------------------------ cases
Case = tuple[str, Impl, Impl, Impl]  # (row, native, compat, anyio)


def asyncio_cases() -> list[Case]:
    return [
        ("lock", lock_impl(asyncio.Lock), lock_impl(compat.Lock), lock_impl(anyio.Lock)),
        ("event wait (set)", event_set_impl(asyncio.Event), event_set_impl(compat.Event), event_set_impl(anyio.Event)),
        ("event fresh", event_fresh_impl(asyncio.Event), event_fresh_impl(compat.Event), event_fresh_impl(anyio.Event)),
        (
            "limiter",
            limiter_impl(lambda: asyncio.Semaphore(LIMITER_TOKENS)),
            limiter_impl(lambda: compat.CapacityLimiter(LIMITER_TOKENS)),
            limiter_impl(lambda: anyio.CapacityLimiter(LIMITER_TOKENS)),
        ),
        (
            "semaphore",
            semaphore_impl(lambda: asyncio.BoundedSemaphore(LIMITER_TOKENS)),
            semaphore_impl(lambda: compat.Semaphore(LIMITER_TOKENS, max_value=LIMITER_TOKENS)),
            semaphore_impl(lambda: anyio.Semaphore(LIMITER_TOKENS, max_value=LIMITER_TOKENS)),
        ),
        ("sleep(0)", sleep_impl(asyncio.sleep), sleep_impl(compat.sleep), sleep_impl(anyio.sleep)),
        ("fail_after", asyncio_timeout, sync_scope_impl(compat.fail_after), sync_scope_impl(anyio.fail_after)),
        (
            "move_on_after",
            asyncio_timeout,
            sync_scope_impl(compat.move_on_after),
            sync_scope_impl(anyio.move_on_after),
        ),
        ("shield", asyncio_shield, compat_shield, scope_shield_impl(anyio.CancelScope)),
        ("shielded()", asyncio_shield, shielded_impl(compat.shielded), shielded_impl(anyio_shield_scope)),
        ("spawn + wait", asyncio_spawn_shielded, compat_spawn, anyio_spawn),
        (
            "task group (1 child)",
            asyncio_taskgroup,
            start_soon_group_impl(compat.create_task_group),
            start_soon_group_impl(anyio.create_task_group),
        ),
        (
            "run_sync",
            to_thread_impl(asyncio.to_thread),
            to_thread_impl(compat.run_sync),
            to_thread_impl(anyio.to_thread.run_sync),
        ),
        (
            "queue put + get",
            queue_impl(lambda: asyncio.Queue(QUEUE_SIZE)),
            queue_impl(lambda: compat.Queue(QUEUE_SIZE)),
            channel_impl(anyio.create_memory_object_stream),
        ),
        (
            "condition",
            condition_impl(asyncio.Condition),
            condition_impl(compat.Condition),
            condition_impl(anyio.Condition),
        ),
        (
            "task group + start",
            asyncio_taskgroup_start,
            start_group_impl(compat.create_task_group),
            start_group_impl(anyio.create_task_group),
        ),
        (
            "task group + cancel",
            asyncio_taskgroup_cancel,
            cancel_group_impl(compat.create_task_group, compat.sleep, _cancel),
            cancel_group_impl(anyio.create_task_group, anyio.sleep, _cancel_scope_of),
        ),
        ("spawn + aclose", asyncio_spawn_cancel, compat_aclose, anyio_spawn_cancel),
    ]


def trio_cases() -> list[Case]:
    return [
        ("lock", lock_impl(trio.Lock), lock_impl(compat.Lock), lock_impl(anyio.Lock)),
        ("event wait (set)", event_set_impl(trio.Event), event_set_impl(compat.Event), event_set_impl(anyio.Event)),
        ("event fresh", event_fresh_impl(trio.Event), event_fresh_impl(compat.Event), event_fresh_impl(anyio.Event)),
        (
            "limiter",
            limiter_impl(lambda: trio.CapacityLimiter(LIMITER_TOKENS)),
            limiter_impl(lambda: compat.CapacityLimiter(LIMITER_TOKENS)),
            limiter_impl(lambda: anyio.CapacityLimiter(LIMITER_TOKENS)),
        ),
        (
            "semaphore",
            semaphore_impl(lambda: trio.Semaphore(LIMITER_TOKENS, max_value=LIMITER_TOKENS)),
            semaphore_impl(lambda: compat.Semaphore(LIMITER_TOKENS, max_value=LIMITER_TOKENS)),
            semaphore_impl(lambda: anyio.Semaphore(LIMITER_TOKENS, max_value=LIMITER_TOKENS)),
        ),
        ("sleep(0)", sleep_impl(trio.sleep), sleep_impl(compat.sleep), sleep_impl(anyio.sleep)),
        (
            "fail_after",
            sync_scope_impl(trio.fail_after),
            sync_scope_impl(compat.fail_after),
            sync_scope_impl(anyio.fail_after),
        ),
        (
            "move_on_after",
            sync_scope_impl(trio.move_on_after),
            sync_scope_impl(compat.move_on_after),
            sync_scope_impl(anyio.move_on_after),
        ),
        ("shield", scope_shield_impl(trio.CancelScope), compat_shield, scope_shield_impl(anyio.CancelScope)),
        (
            "shielded()",
            shielded_impl(lambda: trio.CancelScope(shield=True)),
            shielded_impl(compat.shielded),
            shielded_impl(anyio_shield_scope),
        ),
        ("spawn + wait", trio_spawn_cancellable, compat_spawn, anyio_spawn),
        (
            "task group (1 child)",
            start_soon_group_impl(trio.open_nursery),
            start_soon_group_impl(compat.create_task_group),
            start_soon_group_impl(anyio.create_task_group),
        ),
        (
            "run_sync",
            to_thread_impl(trio.to_thread.run_sync),
            to_thread_impl(compat.run_sync),
            to_thread_impl(anyio.to_thread.run_sync),
        ),
        (
            "queue put + get",
            channel_impl(trio.open_memory_channel),
            queue_impl(lambda: compat.Queue(QUEUE_SIZE)),
            channel_impl(anyio.create_memory_object_stream),
        ),
        (
            "condition",
            condition_impl(trio.Condition),
            condition_impl(compat.Condition),
            condition_impl(anyio.Condition),
        ),
        (
            "task group + start",
            start_group_impl(trio.open_nursery),
            start_group_impl(compat.create_task_group),
            start_group_impl(anyio.create_task_group),
        ),
        (
            "task group + cancel",
            cancel_group_impl(trio.open_nursery, trio.sleep, _cancel_scope_of),
            cancel_group_impl(compat.create_task_group, compat.sleep, _cancel),
            cancel_group_impl(anyio.create_task_group, anyio.sleep, _cancel_scope_of),
        ),
        ("spawn + aclose", trio_spawn_cancel, compat_aclose, anyio_spawn_cancel),
    ]


def asyncio_diagnostic_cases() -> list[Case]:
    """asyncio only, not target rows: compat's shield and run_sync while anyio is in ``sys.modules`` (an
    anyio-using app), and spawn + wait against plain ``await task`` (which cancels the task with its waiter)."""
    return [
        ("spawn + wait (vs await task)", asyncio_spawn, without_anyio(compat_spawn), anyio_spawn),
        (
            "spawn + aclose (vs await task)",
            asyncio_spawn_cancel_await,
            without_anyio(compat_aclose),
            anyio_spawn_cancel,
        ),
        (
            "task group + cancel (vs child.cancel())",
            asyncio_taskgroup_cancel_child,
            without_anyio(cancel_group_impl(compat.create_task_group, compat.sleep, _cancel)),
            cancel_group_impl(anyio.create_task_group, anyio.sleep, _cancel_scope_of),
        ),
        ("shield (anyio loaded)", asyncio_shield, compat_shield, scope_shield_impl(anyio.CancelScope)),
        (
            "shielded() (vs bare await)",
            shielded_impl(contextlib.nullcontext),
            without_anyio(shielded_impl(compat.shielded)),
            shielded_impl(anyio_shield_scope),
        ),
        (
            "shielded() (anyio loaded)",
            asyncio_shield,
            shielded_impl(compat.shielded),
            shielded_impl(anyio_shield_scope),
        ),
        (
            "run_sync (anyio loaded)",
            to_thread_impl(asyncio.to_thread),
            to_thread_impl(compat.run_sync),
            to_thread_impl(anyio.to_thread.run_sync),
        ),
    ]


def paired_ratio(numerators: list[float], denominators: list[float]) -> float:
    """Median of the per-round ratios: rounds are interleaved, so each pair ran under the same machine state
    (thread wake-up latency in particular drifts between modes over seconds, which skews a ratio of medians)."""
    return statistics.median(a / b for a, b in zip(numerators, denominators, strict=True))


def trio_diagnostic_cases() -> list[Case]:
    """trio only, not a target row: spawn + wait against a bare system task, which nothing can cancel."""
    return [("spawn + wait (vs uncancellable)", trio_spawn, without_anyio(compat_spawn), anyio_spawn)]


async def measure_backend(backend: str, rounds: int, target_ms: float, progress: bool) -> list[dict[str, Any]]:
    cases = asyncio_cases() if backend == "asyncio" else trio_cases()
    plain = [(row, native, without_anyio(compat_impl), anyio_impl) for row, native, compat_impl, anyio_impl in cases]
    diagnostic = asyncio_diagnostic_cases() if backend == "asyncio" else trio_diagnostic_cases()
    diagnostic_rows = {case[0] for case in diagnostic}
    plain += diagnostic
    rows: list[dict[str, Any]] = []
    for row, native, compat_impl, anyio_impl in plain:
        if progress:
            print(f"  {backend}: {row} ...", file=sys.stderr, flush=True)
        measured = await interleave(
            {"native": native, "compat": compat_impl, "anyio": anyio_impl}, rounds=rounds, target_ms=target_ms
        )
        rows.append(
            {
                "primitive": row,
                "diagnostic": row in diagnostic_rows,
                "native_ns": measured["native"].median,
                "compat_ns": measured["compat"].median,
                "anyio_ns": measured["anyio"].median,
                "compat_over_native": paired_ratio(measured["compat"].samples, measured["native"].samples),
                "anyio_over_compat": paired_ratio(measured["anyio"].samples, measured["compat"].samples),
                "ops_per_round": {name: m.ops_per_round for name, m in measured.items()},
                "spread": {name: round(m.spread, 3) for name, m in measured.items()},
                "samples_ns": {name: [round(s, 1) for s in m.samples] for name, m in measured.items()},
            }
        )
    return rows


def run_backend(backend: str, rounds: int, target_ms: float, progress: bool) -> list[dict[str, Any]]:
    if backend == "asyncio":
        return asyncio.run(measure_backend(backend, rounds, target_ms, progress))
    return trio.run(measure_backend, backend, rounds, target_ms, progress)  # type: ignore[no-any-return]


def targets(results: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = []
    for backend, rows in results.items():
        for row in rows:
            if row["diagnostic"]:
                continue  # extra rows that explain a number; the targets are about the rows the issue names
            value = row["compat_over_native"]
            lines.append(
                {
                    "target": f"{backend}: {row['primitive']}: compat/native <= {MAX_COMPAT_OVER_NATIVE}",
                    "value": value,
                    "status": "PASS" if value <= MAX_COMPAT_OVER_NATIVE else "MISS",
                }
            )
    for row in results.get("asyncio", []):
        if row["primitive"] in ANYIO_TARGET_ROWS:
            value = row["anyio_over_compat"]
            lines.append(
                {
                    "target": f"asyncio: {row['primitive']}: anyio/compat >= {MIN_ANYIO_OVER_COMPAT}",
                    "value": value,
                    "status": "PASS" if value >= MIN_ANYIO_OVER_COMPAT else "MISS",
                }
            )
    return lines


def main(*, quick: bool = False, backends: tuple[str, ...] = ("asyncio", "trio"), out_dir: str | None = None) -> int:
    rounds, target_ms = (3, 4.0) if quick else (9, 25.0)
    started = time.perf_counter()
    results = {backend: run_backend(backend, rounds, target_ms, progress=not quick) for backend in backends}
    tables = [
        Table(
            title=f"compat suite, {backend} backend (ns/op, median of {rounds} interleaved rounds)",
            columns=["primitive", "native ns/op", "compat ns/op", "anyio ns/op", "compat/native", "anyio/compat"],
            rows=[
                [
                    row["primitive"] + (" *" if row["diagnostic"] else ""),
                    row["native_ns"],
                    row["compat_ns"],
                    row["anyio_ns"],
                    row["compat_over_native"],
                    row["anyio_over_compat"],
                ]
                for row in rows
            ],
        )
        for backend, rows in results.items()
    ]
    chart = {
        backend: {
            row["primitive"]: {"compat": row["compat_over_native"], "anyio": ratio(row["anyio_ns"], row["native_ns"])}
            for row in rows
        }
        for backend, rows in results.items()
    }
    write_results(
        SUITE,
        meta=run_meta(started, quick, trio=trio.__version__, rounds=rounds, target_ms_per_round=target_ms),
        data={"backends": results},
        tables=tables,
        targets=targets(results),
        chart=chart,
        chart_title="time per op relative to the native primitive (1.0 = native)",
        notes=[
            "rows marked * are diagnostic (not counted for the targets); see benchmarks/compat_bench.py",
            "compat column measured with anyio hidden from sys.modules; '(anyio loaded)' rows with anyio visible",
        ],
        out_dir=out_dir,
    )
    return 0
