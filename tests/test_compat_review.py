"""Review of compat's cancellation paths: races between timeouts, outer cancellation, shield and detached tasks.

Several tests reproduced bugs found in review (now fixed); the others pin
behaviour the other compat test files do not cover yet. Scenarios that need asyncio's or anyio's own APIs run
on that backend directly, from a sync test.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import logging
import threading
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import trio

import compat

Body = Callable[[list[str]], Coroutine[Any, Any, None]]


class Boom(Exception):
    pass


async def _yield_times(count: int) -> None:
    for _ in range(count):
        await asyncio.sleep(0)


async def _work(log: list[str], steps: int = 3) -> str:
    for _ in range(steps):
        await compat.checkpoint()
    log.append("work finished")
    return "result"


async def _scenario_task(body: Body, log: list[str]) -> None:
    """Run ``body``; if it returns, log ``Task.cancelling()`` (a swallowed timeout must leave it at 0), then wait."""
    task = asyncio.current_task()
    assert task is not None
    await body(log)
    log.append(f"cancelling={task.cancelling()}")
    await asyncio.sleep(5)


def _cancel_after_steps(body: Body, steps: int) -> tuple[bool, str, list[str]]:
    """Run ``body`` in a task, cancel it after ``steps`` loop iterations; return (cancel issued, outcome, log)."""

    async def main() -> tuple[bool, str, list[str]]:
        log: list[str] = []
        task = asyncio.create_task(_scenario_task(body, log))
        await _yield_times(steps)
        issued = task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            return issued, "cancelled", log
        except TimeoutError:
            return issued, "TimeoutError", log
        return issued, "returned", log

    return asyncio.run(main())


# --- asyncio timeouts vs an outer task.cancel() landing at every loop iteration ---------------------------------
# Each scenario is the body of a task: _scenario_task logs Task.cancelling() after it, then waits to be cancelled.


async def _fail_after_zero(log: list[str]) -> None:
    with compat.fail_after(0):
        await _yield_times(3)


async def _move_on_after_zero(log: list[str]) -> None:
    with compat.move_on_after(0):
        await _yield_times(3)


async def _nested_scopes_expiring_together(log: list[str]) -> None:
    with compat.move_on_after(0):
        await _yield_times(1)
        with compat.fail_after(0):
            await _yield_times(3)


async def _shield_inside_expired_scope(log: list[str]) -> None:
    with compat.move_on_after(0):
        await compat.shield(_work, log)


async def _task_group_inside_expired_scope(log: list[str]) -> None:
    with compat.move_on_after(0):
        async with compat.create_task_group() as tg:
            tg.start_soon(_yield_times, 3)
            await _yield_times(1)


async def _asyncio_timeout_inside_expired_scope(log: list[str]) -> None:
    with compat.move_on_after(0):
        await _yield_times(1)
        try:
            async with asyncio.timeout(0):
                await _yield_times(3)
        except TimeoutError:
            log.append("asyncio.timeout fired")


@pytest.mark.parametrize(
    "body",
    [
        _fail_after_zero,
        _move_on_after_zero,
        _nested_scopes_expiring_together,
        _shield_inside_expired_scope,
        _task_group_inside_expired_scope,
        _asyncio_timeout_inside_expired_scope,
    ],
)
def test_outer_cancel_at_any_loop_iteration_wins_over_compat_timeouts(body: Body) -> None:
    for steps in range(9):
        issued, outcome, log = _cancel_after_steps(body, steps)
        # the cancel misses only a task that already finished with its own TimeoutError
        expected = "cancelled" if issued else "TimeoutError"
        assert outcome == expected, f"cancel after {steps} loop iterations ended as {outcome}: {log}"
        # a scope that swallowed its own timeout left Task.cancelling() at its entry value
        assert all(entry == "cancelling=0" for entry in log if entry.startswith("cancelling")), (steps, log)


async def test_nested_scopes_expiring_together_are_caught_by_the_outermost() -> None:
    log: list[str] = []
    with compat.move_on_after(0) as outer:
        with compat.fail_after(0) as inner:
            await compat.shield(_work, log)
    assert log == ["work finished"]
    assert outer.cancelled_caught
    assert not inner.cancelled_caught


# --- asyncio timeout scope objects: reuse -----------------------------------------------------------------------


def test_reused_timeout_scope_does_not_swallow_an_outer_cancel() -> None:
    async def main() -> None:
        scope = compat.move_on_after(0.001)
        with scope:
            await asyncio.sleep(5)
        assert scope.cancelled_caught
        entered = asyncio.Event()

        async def victim() -> str:
            with compat.fail_after(5) as fresh_scope:
                pass
            with scope:  # deadline is computed on enter, so reusing the object looks legitimate
                entered.set()
                await asyncio.sleep(5)
            return f"moved on (fresh {fresh_scope.cancelled_caught}, reused {scope.cancelled_caught})"

        task = asyncio.create_task(victim())
        await entered.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task  # the outer cancel must win; the stale scope eats it and the task "moves on"

    asyncio.run(main())


def test_reused_timeout_scope_on_trio_starts_fresh() -> None:
    async def main() -> None:
        scope = compat.move_on_after(0.001)
        with scope:
            await trio.sleep(5)
        assert scope.cancelled_caught
        with trio.move_on_after(0.001) as outer:
            with scope:
                await trio.sleep(5)
        assert outer.cancelled_caught
        assert not scope.cancelled_caught

    trio.run(main)


# --- asyncio timeouts inside anyio cancel scopes ----------------------------------------------------------------


def test_anyio_scope_cancelled_in_the_same_tick_as_a_compat_timeout_catches_its_cancellation() -> None:
    import anyio

    async def main() -> str:
        with anyio.CancelScope() as outer:
            outer.cancel()  # anyio delivers this with task.cancel(<its message>) on the next loop iteration
            with compat.move_on_after(0):  # fires in that same iteration, after anyio
                await asyncio.sleep(0)
        assert outer.cancelled_caught
        return "anyio scope caught its cancellation"

    assert anyio.run(main, backend="asyncio") == "anyio scope caught its cancellation"


def test_compat_timeout_firing_just_before_an_anyio_cancel_claims_only_its_own() -> None:
    import anyio

    async def main() -> tuple[bool, bool]:
        with anyio.CancelScope() as outer:
            with compat.move_on_after(0) as inner:  # fires first
                outer.cancel()  # anyio delivers one callback later and sees a cancel already pending
                await asyncio.sleep(0)
            await anyio.sleep(1)  # level-triggered: anyio cancels again here
        return outer.cancelled_caught, inner.cancelled_caught

    assert anyio.run(main, backend="asyncio") == (True, True)


# --- asyncio: shield ----------------------------------------------------------------------------------------------


def test_shield_survives_repeated_cancels_and_raises_once() -> None:
    async def main() -> None:
        log: list[str] = []
        started = asyncio.Event()

        async def slow_work() -> str:
            started.set()
            await asyncio.sleep(0.03)
            log.append("work finished")
            return "result"

        async def caller() -> None:
            await compat.shield(slow_work)
            log.append("caller went on")

        task = asyncio.create_task(caller())
        await started.wait()
        for _ in range(5):
            task.cancel()
            await asyncio.sleep(0.001)
        with pytest.raises(asyncio.CancelledError):
            await task
        assert task.cancelling() == 5
        assert log == ["work finished"]

    asyncio.run(main())


def test_asyncio_timeout_around_shield_raises_timeout_after_the_work() -> None:
    async def main() -> None:
        log: list[str] = []
        task = asyncio.current_task()
        assert task is not None
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.001):
                await compat.shield(_slow_log, log)
        assert log == ["work finished"]
        assert task.cancelling() == 0

    asyncio.run(main())


async def _slow_log(log: list[str]) -> None:
    await compat.sleep(0.02)
    log.append("work finished")


def test_shield_error_during_cancellation_is_not_reported_as_never_retrieved(caplog: pytest.LogCaptureFixture) -> None:
    async def fail_later() -> None:
        await asyncio.sleep(0.01)
        raise Boom("failed while the caller was cancelled")

    async def main() -> None:
        with compat.move_on_after(0) as scope:
            await compat.shield(fail_later)
        assert scope.cancelled_caught
        gc.collect()

    with caplog.at_level(logging.ERROR, logger="asyncio"):
        asyncio.run(main())
        gc.collect()
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]


# --- detached tasks -----------------------------------------------------------------------------------------------


async def test_detached_task_cancelled_before_it_started_finishes_quietly() -> None:
    calls: list[compat.TaskHandle] = []
    handle = compat.spawn_detached(_work([], 1))
    handle.add_done_callback(calls.append)
    handle.cancel()
    with compat.fail_after(1):
        await handle.wait()
    assert handle.done()
    await handle.wait()  # again, after completion
    for _ in range(3):
        await compat.checkpoint()  # asyncio runs done callbacks a tick later
    assert calls == [handle]


async def test_wait_after_completion_re_raises_the_same_error() -> None:
    async def fail() -> None:
        raise Boom("detached failure")

    logger = logging.getLogger("compat")
    logger.disabled = True  # trio logs the unobserved error at once; that is tested elsewhere
    try:
        handle = compat.spawn_detached(fail())
        with pytest.raises(Boom) as first:
            await handle.wait()
        with compat.fail_after(1), pytest.raises(Boom) as again:
            await handle.wait()
        assert again.value is first.value
    finally:
        logger.disabled = False


def test_observed_detached_failure_is_not_logged_as_never_retrieved(caplog: pytest.LogCaptureFixture) -> None:
    async def fail() -> None:
        await asyncio.sleep(0)
        raise Boom("observed")

    async def main() -> None:
        handle = compat.spawn_detached(fail())
        with pytest.raises(Boom):
            await handle.wait()
        del handle
        gc.collect()

    with caplog.at_level(logging.ERROR, logger="asyncio"):
        asyncio.run(main())
        gc.collect()
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]


def test_trio_detached_task_cancelled_at_end_of_run_calls_back_once() -> None:
    calls: list[bool] = []

    async def main() -> compat.TaskHandle:
        handle = compat.spawn_detached(_work([], 10**6))
        handle.add_done_callback(lambda h: calls.append(h.done()))
        await trio.sleep(0.001)
        return handle

    handle = trio.run(main)
    assert handle.done()
    assert calls == [True]


def test_trio_detached_task_with_a_nursery_ends_quietly_at_end_of_run(caplog: pytest.LogCaptureFixture) -> None:
    async def worker() -> None:
        async with compat.create_task_group() as tg:
            tg.start_soon(trio.sleep, 10)
            await trio.sleep(10)

    async def main() -> compat.TaskHandle:
        handle = compat.spawn_detached(worker())
        await trio.sleep(0.001)
        return handle

    with caplog.at_level(logging.WARNING, logger="compat"):
        handle = trio.run(main)
    assert handle.done()
    assert [r.getMessage() for r in caplog.records if r.name == "compat"] == []


# --- Event / Lock / CapacityLimiter across loops and backends ---------------------------------------------------


def test_waiting_on_a_set_event_in_a_task_works_on_asyncio() -> None:
    event = compat.Event()
    event.set()

    async def main() -> None:
        async with compat.create_task_group() as tg:
            tg.start_soon(event.wait)  # trio's idiom; works while the event is unset
        await compat.spawn_detached(event.wait()).wait()  # type: ignore[arg-type]  # typed Awaitable: part of the bug

    asyncio.run(main())


async def test_waiting_on_a_set_event_in_a_task_group() -> None:
    event = compat.Event()
    woken: list[str] = []

    async def wait_then_log() -> None:
        await event.wait()
        woken.append("woken")

    async with compat.create_task_group() as tg:
        tg.start_soon(wait_then_log)
        await compat.sleep(0.001)
        event.set()
        tg.start_soon(wait_then_log)  # already set: returns at once
    assert woken == ["woken", "woken"]


def test_event_and_lock_contended_in_one_loop_work_in_the_next() -> None:
    event, lock, limiter = compat.Event(), compat.Lock(), compat.CapacityLimiter(1)

    async def first_loop() -> None:
        async def wait_forever() -> None:
            await event.wait()  # cancelled by asyncio.run at shutdown: the waiter goes away

        compat.spawn_detached(wait_forever())
        async with compat.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(_hold, lock, limiter)
        await asyncio.sleep(0.001)

    async def second_loop() -> list[str]:
        order: list[str] = []

        async def wait_then_log() -> None:
            await event.wait()
            order.append("event")

        async with lock:  # uncontended: no loop needed yet
            pass
        async with compat.create_task_group() as tg:
            tg.start_soon(wait_then_log)
            for _ in range(3):
                tg.start_soon(_hold, lock, limiter)
            await compat.sleep(0.001)
            event.set()
        order.append(f"borrowed {limiter.borrowed_tokens}")
        return order

    asyncio.run(first_loop())
    assert asyncio.run(second_loop()) == ["event", "borrowed 0"]
    assert trio.run(second_loop) == ["event", "borrowed 0"]  # the set flag moved with the Event


async def _hold(lock: compat.Lock, limiter: compat.CapacityLimiter) -> None:
    async with lock, limiter:
        await compat.sleep(0.001)


# --- run_sync -----------------------------------------------------------------------------------------------------


async def test_run_sync_cancelled_while_waiting_for_a_token_never_runs() -> None:
    limiter = compat.CapacityLimiter(1)
    release = threading.Event()
    ran: list[str] = []

    def blocked() -> None:
        release.wait(5)

    def should_not_run() -> None:
        ran.append("ran")

    async with compat.create_task_group() as tg:
        tg.start_soon(lambda: compat.run_sync(blocked, limiter=limiter))
        await compat.sleep(0.005)
        with compat.move_on_after(0.005) as scope:
            await compat.run_sync(should_not_run, limiter=limiter)
        release.set()
    assert scope.cancelled_caught
    assert ran == []
    assert limiter.borrowed_tokens == 0


async def test_run_sync_sees_the_callers_contextvars_on_a_copy() -> None:
    request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="unset")
    request_id.set("req-7")

    def read_and_write() -> str:
        seen = request_id.get()
        request_id.set("changed in thread")
        return seen

    assert await compat.run_sync(read_and_write) == "req-7"
    assert request_id.get() == "req-7"


# --- current_backend ----------------------------------------------------------------------------------------------


def test_current_backend_in_loop_callbacks_is_asyncio() -> None:
    import anyio

    async def main() -> str:
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[str] = loop.create_future()
        loop.call_soon(lambda: answer.set_result(compat.current_backend()))
        return await answer

    assert asyncio.run(main()) == "asyncio"
    assert anyio.run(main, backend="asyncio") == "asyncio"


def test_current_backend_in_a_plain_thread_started_under_anyio_trio_is_unsupported() -> None:
    import anyio

    answers: list[str] = []

    def probe() -> None:
        try:
            answers.append(compat.current_backend())
        except compat.UnsupportedBackendError:
            answers.append("unsupported")

    async def main() -> None:
        context = contextvars.copy_context()  # what a thread pool with context propagation does
        thread = threading.Thread(target=context.run, args=(probe,))
        thread.start()
        while thread.is_alive():
            await anyio.sleep(0.001)

    anyio.run(main, backend="trio")
    assert answers == ["unsupported"]
