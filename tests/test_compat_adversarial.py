"""Adversarial tests of compat 2.0 (task groups, scopes, Queue, Condition, TaskHandle), written as a library
author vendoring compat would use it. Each test asserts behaviour that failed, or could fail, on one backend."""

from __future__ import annotations

import asyncio
import gc
import logging
import math
import warnings

import pytest

import compat


async def _no_pending_cancellation() -> bool:
    """True if two checkpoints pass without a cancellation (nothing was left pending on the task)."""
    try:
        await compat.checkpoint()
        await compat.checkpoint()
    except compat.get_cancelled_exc_class():
        return False
    return True


def _cancelling(backend: str) -> int:
    """``Task.cancelling()`` of the current asyncio task (0 under trio)."""
    task = asyncio.current_task() if backend == "asyncio" else None
    return task.cancelling() if task is not None else 0


# ---------------------------------------------------------------------------------------------- task groups


async def test_cancel_then_a_body_error_with_no_children_leaves_no_cancellation_pending() -> None:
    # asyncio emulation: cancel() cancels the host task; the body raised before any await, the group had no child
    # to wait for, so the cancellation stayed pending and hit the caller's next await after the ExceptionGroup.
    with pytest.raises(ExceptionGroup) as caught:
        async with compat.create_task_group() as tg:
            tg.cancel()
            raise ValueError("body failed")
    assert caught.group_contains(ValueError, match="body failed")
    assert await _no_pending_cancellation()


async def test_cancel_then_a_body_error_with_a_child_keeps_the_error_and_leaves_nothing_pending() -> None:
    async def child() -> None:
        await compat.sleep(10)

    with pytest.raises(ExceptionGroup) as caught:
        async with compat.create_task_group() as tg:
            tg.start_soon(child)
            await compat.checkpoint()
            tg.cancel()
            raise ValueError("body failed")
    assert caught.group_contains(ValueError)
    assert await _no_pending_cancellation()


async def test_a_child_whose_cleanup_fails_during_cancel_keeps_its_error() -> None:
    async def child() -> None:
        try:
            await compat.sleep(10)
        finally:
            raise KeyError("cleanup failed")

    with pytest.raises(ExceptionGroup) as caught:
        async with compat.create_task_group() as tg:
            tg.start_soon(child)
            await compat.sleep(0.01)
            tg.cancel()
    assert caught.group_contains(KeyError, match="cleanup failed")
    assert await _no_pending_cancellation()


async def test_start_soon_from_a_cancelled_childs_cleanup_does_not_crash_or_leak() -> None:
    # trio: the late child runs up to its first checkpoint and is cancelled. asyncio (documented: "cancelled
    # before it starts: never runs"): it used to raise RuntimeError("TaskGroup ... is shutting down") and leave
    # a "coroutine ... was never awaited" RuntimeWarning behind.
    finished: list[str] = []

    async def late() -> None:
        await compat.sleep(5)
        finished.append("late child ran to its end")

    async def child(tg: compat.TaskGroup) -> None:
        try:
            await compat.sleep(10)
        except compat.get_cancelled_exc_class():
            tg.start_soon(late)
            raise

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with compat.fail_after(2):
            async with compat.create_task_group() as tg:
                tg.start_soon(child, tg)
                await compat.sleep(0.01)
                tg.cancel()
                await compat.sleep(10)
    assert finished == []


async def test_start_soon_on_a_finished_group_raises_without_a_never_awaited_warning() -> None:
    async def child() -> None:
        await compat.checkpoint()

    async with compat.create_task_group() as tg:
        pass
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(RuntimeError):
            tg.start_soon(child)
        with pytest.raises(RuntimeError):
            tg.start_soon(compat.Queue(1).put, "an awaitable that is no coroutine on asyncio")


async def test_cancel_twice_from_two_places_and_after_exit_is_harmless() -> None:
    async def sleeper() -> None:
        await compat.sleep(10)

    async with compat.create_task_group() as tg:
        tg.start_soon(sleeper)

        async def canceller() -> None:
            await compat.sleep(0.01)
            tg.cancel()

        tg.start_soon(canceller)
        tg.start_soon(canceller)
        await compat.sleep(10)
        pytest.fail("the body was not cancelled")
    tg.cancel()
    assert await _no_pending_cancellation()


async def test_nested_groups_both_cancelled_end_quietly_with_nothing_pending() -> None:
    reached: list[str] = []
    async with compat.create_task_group() as outer:
        async with compat.create_task_group() as inner:
            inner.cancel()
            outer.cancel()
            await compat.sleep(10)
            reached.append("inner body went on")
        reached.append("after inner")
        await compat.sleep(10)
        reached.append("outer body went on")
    assert "inner body went on" not in reached
    assert "outer body went on" not in reached
    assert await _no_pending_cancellation()


async def test_an_enclosing_scope_cancelled_while_the_cancelled_group_waits_for_a_slow_child_propagates() -> None:
    async def slow_cleanup() -> None:
        try:
            await compat.sleep(10)
        finally:
            with compat.shielded():
                await compat.sleep(0.05)

    after: list[str] = []
    with compat.move_on_after(5) as outer:
        async with compat.create_task_group() as tg:
            tg.start_soon(slow_cleanup)
            await compat.sleep(0.01)
            tg.cancel()
            outer.cancel()
        after.append("the outer cancellation was lost")
        await compat.sleep(1)
    assert outer.cancelled_caught
    assert after == []


async def test_start_whose_function_never_calls_started_while_the_group_is_cancelled() -> None:
    async def never_starts(*, task_status: object) -> None:
        await compat.sleep(10)

    seen: list[str] = []
    async with compat.create_task_group() as tg:

        async def canceller() -> None:
            await compat.sleep(0.01)
            tg.cancel()

        tg.start_soon(canceller)
        try:
            await tg.start(never_starts)
        except compat.get_cancelled_exc_class():
            seen.append("start() was cancelled")
            raise
        seen.append("start() returned")
    assert seen == ["start() was cancelled"]
    assert await _no_pending_cancellation()


# --------------------------------------------------------------------------------------------------- Queue


async def test_a_get_woken_for_an_item_that_another_get_took_then_close_does_not_hang() -> None:
    # asyncio 3.11/3.12 emulation of close(): a get() already woken by a put (its waiter done) was not told about
    # close(); when another get took the item first, it went back to waiting forever.
    queue: compat.Queue[int] = compat.Queue(math.inf)
    outcome: list[object] = []

    async def consumer() -> None:
        try:
            outcome.append(await queue.get())
        except compat.QueueClosed:
            outcome.append("closed")

    with compat.fail_after(2):
        async with compat.create_task_group() as tg:
            tg.start_soon(consumer)
            await compat.sleep(0.01)
            queue.put_nowait(1)
            stolen: list[int] = []
            try:
                stolen.append(queue.get_nowait())
            except compat.QueueEmpty:
                pass  # trio hands the item straight to the waiting receiver
            queue.close()
    assert sorted(stolen + outcome, key=str) in ([1, "closed"], [1])
    assert (stolen + outcome).count(1) == 1


async def test_a_put_woken_for_a_slot_that_put_nowait_took_then_close_does_not_hang() -> None:
    queue: compat.Queue[str] = compat.Queue(1)
    queue.put_nowait("first")
    outcome: list[str] = []

    async def putter() -> None:
        try:
            await queue.put("waiting")
            outcome.append("put")
        except compat.QueueClosed:
            outcome.append("closed")

    with compat.fail_after(2):
        async with compat.create_task_group() as tg:
            tg.start_soon(putter)
            await compat.sleep(0.01)
            assert queue.get_nowait() == "first"  # asyncio wakes the putter; trio hands nothing over yet
            try:
                queue.put_nowait("jumped the line")
            except compat.QueueFull:
                pass
            queue.close()
    left: list[str] = []
    with pytest.raises(compat.QueueClosed):
        while True:
            left.append(queue.get_nowait())
    assert len(left) == 1
    assert outcome in (["closed"], ["put"])
    assert (outcome == ["put"]) == (left == ["waiting"])


async def test_every_item_is_got_exactly_once_under_random_cancellation() -> None:
    import random

    rng = random.Random(15)
    queue: compat.Queue[int] = compat.Queue(3)
    got: list[int] = []
    count = 200

    async def producer(item: int) -> None:
        while True:
            with compat.move_on_after(rng.choice([0, 0.0005, 0.001])):
                await queue.put(item)
                return

    async def consumer() -> None:
        while True:
            with compat.move_on_after(rng.choice([0, 0.0005, 0.002])):
                try:
                    item = await queue.get()
                except compat.QueueClosed:
                    return
                got.append(item)

    with compat.fail_after(30):
        async with compat.create_task_group() as tg:
            for _ in range(4):
                tg.start_soon(consumer)
            async with compat.create_task_group() as producers:
                for item in range(count):
                    producers.start_soon(producer, item)
            queue.close()
    assert sorted(got) == list(range(count))


# ----------------------------------------------------------------------------------------------- Condition


async def test_notify_while_holding_the_shared_lock_before_the_condition_was_used() -> None:
    # The condition is bound lazily; notify() on an unbound one said "needs the lock held" though it was held.
    lock = compat.Lock()
    condition = compat.Condition(lock)
    async with lock:
        condition.notify()
        condition.notify_all()
    with pytest.raises(RuntimeError):
        condition.notify()  # not held: still refused


async def test_a_waiter_is_woken_by_notify_under_the_shared_lock() -> None:
    lock = compat.Lock()
    condition = compat.Condition(lock)
    woken: list[bool] = []

    async def waiter() -> None:
        async with condition:
            await condition.wait()
            woken.append(lock.locked())

    with compat.fail_after(2):
        async with compat.create_task_group() as tg:
            tg.start_soon(waiter)
            await compat.sleep(0.01)
            async with lock:
                condition.notify()
    assert woken == [True]


@pytest.mark.parametrize("anyio_backend_name", ["asyncio", "trio"])
@pytest.mark.parametrize("who", ["body", "child"])
def test_an_anyio_scope_cancelled_after_cancel_catches_its_cancellation(anyio_backend_name: str, who: str) -> None:
    # asyncio: the group re-raised compat's own CancelledError("compat.TaskGroup.cancel()") for the outer
    # cancellation; anyio swallows only a CancelledError carrying its own message, so it escaped the anyio scope.
    import anyio

    async def main() -> tuple[list[str], bool, int]:
        entry = _cancelling(anyio_backend_name)
        after: list[str] = []
        with anyio.CancelScope() as outer:
            async with compat.create_task_group() as tg:

                async def child() -> None:
                    await compat.sleep(0.01)
                    if who == "child":
                        tg.cancel()
                        outer.cancel()
                    await compat.sleep(10)

                tg.start_soon(child)
                if who == "body":
                    await compat.sleep(0.005)
                    tg.cancel()
                    outer.cancel()
                    await compat.sleep(10)
            after.append("after the group")
            await compat.sleep(1)
            after.append("the outer cancellation was lost")
        left = _cancelling(anyio_backend_name) - entry
        return after, outer.cancelled_caught, left

    after, caught, left = anyio.run(main, backend=anyio_backend_name)
    assert "the outer cancellation was lost" not in after
    assert caught is True
    assert left == 0


def test_notify_under_the_held_shared_lock_after_the_condition_moved_to_trio() -> None:
    import trio

    lock = compat.Lock()
    condition = compat.Condition(lock)

    async def first() -> None:
        async with condition:
            condition.notify()

    async def second() -> str:
        async with lock:  # the lock moves to trio; the condition still wraps the asyncio lock until used
            condition.notify_all()
        return compat.current_backend()

    asyncio.run(first())
    assert trio.run(second) == "trio"
    assert asyncio.run(second()) == "asyncio"


# --------------------------------------------------------------------------------------------- TaskHandle


async def test_aclose_from_two_tasks_at_once_waits_for_the_task_and_raises_its_error_in_both() -> None:
    async def work() -> None:
        try:
            await compat.sleep(10)
        finally:
            with compat.shielded():
                await compat.sleep(0.02)
            raise ValueError("cleanup failed")

    handle = compat.spawn_detached(work())
    await compat.sleep(0.01)
    outcomes: list[tuple[str, bool]] = []

    async def closer() -> None:
        try:
            await handle.aclose()
            outcomes.append(("returned", handle.done()))
        except ValueError:
            outcomes.append(("ValueError", handle.done()))

    async with compat.create_task_group() as tg:
        tg.start_soon(closer)
        tg.start_soon(closer)
    assert outcomes == [("ValueError", True), ("ValueError", True)]


async def test_aclose_waits_for_a_task_that_swallows_its_cancellation_and_goes_on() -> None:
    async def stubborn() -> int:
        try:
            await compat.sleep(10)
        except compat.get_cancelled_exc_class():
            pass  # the point of the test: it goes on after being cancelled
        with compat.shielded():
            await compat.sleep(0.05)
        return 42

    handle = compat.spawn_detached(stubborn())
    await compat.sleep(0.01)
    start = compat.current_time()
    await handle.aclose()
    assert handle.done()
    assert compat.current_time() - start >= 0.04
    assert handle.result() == 42


async def test_aclose_under_an_expiring_deadline_still_waits_for_the_task() -> None:
    async def slow_cleanup() -> None:
        try:
            await compat.sleep(10)
        finally:
            with compat.shielded():
                await compat.sleep(0.1)

    handle = compat.spawn_detached(slow_cleanup())
    await compat.sleep(0.01)
    with compat.move_on_after(0.02) as scope:
        await handle.aclose()
    assert handle.done()
    assert scope.cancelled_caught
    assert handle.result() is None
    assert await _no_pending_cancellation()


@pytest.mark.parametrize("runner", ["asyncio", "trio"])
def test_an_error_retrieved_in_a_done_callback_is_not_logged(caplog: pytest.LogCaptureFixture, runner: str) -> None:
    import gc
    import logging

    import trio

    seen: list[BaseException | None] = []

    async def fail() -> None:
        await compat.checkpoint()
        raise ValueError("seen by the callback")

    async def main() -> None:
        handle = compat.spawn_detached(fail())
        handle.add_done_callback(lambda h: seen.append(h.exception()))
        while not seen:
            await compat.sleep(0.001)
        del handle
        gc.collect()

    with caplog.at_level(logging.ERROR):
        asyncio.run(main()) if runner == "asyncio" else trio.run(main)
        gc.collect()
    assert [type(error) for error in seen] == [ValueError]
    assert [r for r in caplog.records if "never retrieved" in r.getMessage()] == []


# ------------------------------------------------------------------------------------------------- scopes


async def test_cancel_twice_before_entry_cancels_once_and_the_block_moves_on() -> None:
    scope = compat.move_on_after(5)
    scope.cancel()
    scope.cancel()
    assert scope.cancel_called
    with scope:
        await compat.sleep(1)
        pytest.fail("the scope cancelled before entry did not cancel the block")
    assert scope.cancelled_caught
    assert await _no_pending_cancellation()


@pytest.mark.parametrize("deadline", [-math.inf, -1e9])
async def test_a_deadline_far_in_the_past_is_a_checkpoint_that_moves_on(deadline: float) -> None:
    with compat.move_on_at(deadline) as scope:
        await compat.checkpoint()
        pytest.fail("a past deadline did not cancel at the checkpoint")
    assert scope.cancelled_caught
    with pytest.raises(TimeoutError):
        with compat.fail_at(deadline):
            await compat.checkpoint()


async def test_sleep_until_the_past_is_a_checkpoint_and_until_inf_is_cancellable() -> None:
    with compat.move_on_after(None) as scope:
        scope.cancel()
        await compat.sleep_until(-math.inf)
        pytest.fail("sleep_until(a past deadline) was not a checkpoint")
    assert scope.cancelled_caught
    with compat.move_on_after(0.01) as scope:
        await compat.sleep_until(math.inf)
    assert scope.cancelled_caught


def test_cancelling_is_back_at_entry_after_a_cancelled_group_inside_asyncio_timeout() -> None:
    async def main() -> tuple[bool, int, int]:
        task = asyncio.current_task()
        assert task is not None
        entry = task.cancelling()
        async with asyncio.timeout(5):
            async with compat.create_task_group() as tg:
                tg.start_soon(compat.sleep, 10)
                await compat.checkpoint()
                tg.cancel()
                await compat.sleep(10)
            with compat.move_on_after(0) as scope:
                await compat.sleep(10)
        return scope.cancelled_caught, task.cancelling(), entry

    caught, cancelling, entry = asyncio.run(main())
    assert caught
    assert cancelling == entry


async def test_start_soon_takes_queue_put_whether_or_not_the_queue_has_room() -> None:
    # asyncio: Queue.put with room does its work at once and returns an awaitable that is no coroutine; start_soon
    # handed it to asyncio.TaskGroup.create_task, which raised TypeError ("a coroutine was expected") after the
    # item was already in the queue.
    queue: compat.Queue[str] = compat.Queue(1)
    got: list[str] = []
    with compat.fail_after(2):
        async with compat.create_task_group() as tg:
            tg.start_soon(queue.put, "a")  # room
            tg.start_soon(queue.put, "b")  # full by then on asyncio: waits
            got.append(await queue.get())
            got.append(await queue.get())
    assert sorted(got) == ["a", "b"]
    assert queue.qsize() == 0


async def test_using_a_group_before_entering_it_is_a_runtime_error_on_both_backends() -> None:
    async def child(*, task_status: object = None) -> None:
        await compat.checkpoint()

    tg = compat.create_task_group()
    with pytest.raises(RuntimeError):
        tg.cancel()  # trio: AttributeError '_nursery'
    with pytest.raises(RuntimeError):
        await tg.start(child)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(RuntimeError):
            tg.start_soon(child)


async def test_errors_of_a_child_and_of_the_body_during_cancel_both_surface() -> None:
    async def child() -> None:
        try:
            await compat.sleep(10)
        finally:
            raise KeyError("child cleanup")

    with pytest.raises(ExceptionGroup) as caught:
        async with compat.create_task_group() as tg:
            tg.start_soon(child)
            await compat.sleep(0.01)
            tg.cancel()
            try:
                await compat.sleep(10)
            except compat.get_cancelled_exc_class():
                raise ValueError("body cleanup") from None
    assert sorted(type(error).__name__ for error in caught.value.exceptions) == ["KeyError", "ValueError"]
    assert await _no_pending_cancellation()


async def test_close_with_waiting_getters_and_putters_loses_and_duplicates_nothing() -> None:
    queue: compat.Queue[int] = compat.Queue(2)
    queue.put_nowait(0)
    queue.put_nowait(1)
    put: list[int] = [0, 1]
    refused: list[int] = []

    async def putter(item: int) -> None:
        try:
            await queue.put(item)
            put.append(item)
        except compat.QueueClosed:
            refused.append(item)

    with compat.fail_after(2):
        async with compat.create_task_group() as tg:
            for item in range(2, 6):
                tg.start_soon(putter, item)
            await compat.sleep(0.01)
            got = [queue.get_nowait()]  # one slot frees: one waiting put may get in before close()
            queue.close()
    async for item in queue:
        got.append(item)
    assert sorted(got) == sorted(put)
    assert sorted(put + refused) == list(range(6))
    with pytest.raises(compat.QueueClosed):
        await queue.put(9)


async def test_an_aclose_error_is_not_lost_when_the_callers_cancellation_is_swallowed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def work() -> None:
        try:
            await compat.sleep(10)
        finally:
            with compat.shielded():
                await compat.sleep(0.05)
            raise ValueError("cleanup failed")

    handle = compat.spawn_detached(work())
    await compat.sleep(0.01)
    raised: list[type[BaseException]] = []
    with caplog.at_level(logging.ERROR):
        try:
            with compat.move_on_after(0.01):
                await handle.aclose()
        except ValueError:
            raised.append(ValueError)
        del handle
        gc.collect()
    logged = [r for r in caplog.records if r.exc_info and isinstance(r.exc_info[1], ValueError)]
    assert raised or logged
    assert len(raised) + len(logged) == 1  # reported once, never twice
