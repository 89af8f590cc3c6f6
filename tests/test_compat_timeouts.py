"""compat timeouts, sleep and clock: the same semantics on asyncio and trio, composing with native scopes."""

from __future__ import annotations

import asyncio
import math

import pytest
import trio

import compat


async def test_fail_after_raises_builtin_timeout_error() -> None:
    with pytest.raises(TimeoutError), compat.fail_after(0.01):
        await compat.sleep(5)


async def test_fail_after_lets_a_fast_body_finish() -> None:
    with compat.fail_after(5) as scope:
        await compat.sleep(0)
    assert not scope.cancelled_caught


async def test_move_on_after_sets_cancelled_caught_and_continues() -> None:
    reached = []
    with compat.move_on_after(0.01) as scope:
        await compat.sleep(5)
        reached.append("after sleep")
    assert scope.cancelled_caught
    assert reached == []


async def test_deadline_is_computed_on_enter() -> None:
    scope = compat.move_on_after(10)
    await compat.sleep(0.05)
    before = compat.current_time()
    with scope:
        assert before + 10 <= scope.deadline <= compat.current_time() + 10


async def test_infinite_timeout_has_no_deadline() -> None:
    with compat.fail_after(math.inf) as scope:
        await compat.sleep(0)
    assert scope.deadline == math.inf
    assert not scope.cancelled_caught


@pytest.mark.parametrize("bad", [-1, -0.001, math.nan])
async def test_bad_seconds_are_value_errors(bad: float) -> None:
    with pytest.raises(ValueError, match="seconds"):
        compat.fail_after(bad)
    with pytest.raises(ValueError, match="seconds"):
        compat.move_on_after(bad)
    with pytest.raises(ValueError, match="seconds"):
        compat.sleep(bad)


async def test_nested_inner_timeout_fires_first() -> None:
    with compat.move_on_after(5) as outer:
        with compat.move_on_after(0.01) as inner:
            await compat.sleep(5)
        await compat.sleep(0)
    assert inner.cancelled_caught
    assert not outer.cancelled_caught


async def test_nested_outer_timeout_fires_first_and_inner_does_not_claim_it() -> None:
    with compat.move_on_after(0.01) as outer:
        with compat.fail_after(5) as inner:
            await compat.sleep(5)
    assert outer.cancelled_caught
    assert not inner.cancelled_caught


async def test_outer_fail_after_is_not_absorbed_by_inner_move_on_after() -> None:
    with pytest.raises(TimeoutError), compat.fail_after(0.01):
        with compat.move_on_after(5) as inner:
            await compat.sleep(5)
    assert not inner.cancelled_caught


async def test_zero_timeout_cancels_at_next_checkpoint() -> None:
    with compat.move_on_after(0) as scope:
        await compat.checkpoint()
        pytest.fail("the checkpoint should have been cancelled")
    assert scope.cancelled_caught


async def test_sleep_and_clock_advance_together() -> None:
    start = compat.current_time()
    await compat.sleep(0.02)
    assert compat.current_time() - start >= 0.015


# --- asyncio composition: these need asyncio's own APIs, so they run on asyncio directly ---------------------------


def test_task_cancel_during_fail_after_wins_over_timeout() -> None:
    async def main() -> None:
        entered = asyncio.Event()

        async def victim() -> None:
            with compat.fail_after(5):
                entered.set()
                await asyncio.sleep(5)

        task = asyncio.create_task(victim())
        await entered.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert task.cancelled()

    asyncio.run(main())


def test_task_cancel_after_timeout_fired_still_wins() -> None:
    async def main() -> None:
        async def victim() -> None:
            with compat.fail_after(0.01):
                try:
                    await asyncio.sleep(5)
                finally:
                    # the timeout has fired; now an outer cancel arrives before the scope exits
                    current = asyncio.current_task()
                    assert current is not None
                    current.cancel()
                    await asyncio.sleep(0)

        task = asyncio.create_task(victim())
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())


def test_body_that_swallows_the_cancellation_finishes_normally_on_asyncio() -> None:
    async def main() -> None:
        task = asyncio.current_task()
        assert task is not None
        with compat.fail_after(0.01) as scope:
            try:
                await asyncio.sleep(5)
            except asyncio.CancelledError:
                pass
        assert not scope.cancelled_caught
        assert task.cancelling() == 0

    asyncio.run(main())


def test_body_that_swallows_the_cancellation_is_cancelled_again_on_trio() -> None:
    async def main() -> None:
        with compat.move_on_after(0.01) as scope:
            try:
                await trio.sleep(5)
            except trio.Cancelled:
                pass
            await trio.sleep(5)  # level-triggered: cancelled again
        assert scope.cancelled_caught

    trio.run(main)


def test_cancelling_count_is_restored_after_every_compat_timeout() -> None:
    async def main() -> None:
        task = asyncio.current_task()
        assert task is not None
        with compat.move_on_after(0.01):
            await asyncio.sleep(5)
        assert task.cancelling() == 0
        with pytest.raises(TimeoutError), compat.fail_after(0.01):
            await asyncio.sleep(5)
        assert task.cancelling() == 0
        with compat.fail_after(5):
            await asyncio.sleep(0)
        assert task.cancelling() == 0

    asyncio.run(main())


def test_asyncio_timeout_outside_compat_scope_fires_as_asyncio_timeout() -> None:
    async def main() -> None:
        with compat.move_on_after(5) as inner:
            pass
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.01):
                with compat.move_on_after(5) as inner:
                    await asyncio.sleep(5)
        assert not inner.cancelled_caught

    asyncio.run(main())


def test_compat_timeout_inside_asyncio_timeout_fires_first() -> None:
    async def main() -> None:
        async with asyncio.timeout(5) as outer:
            with compat.move_on_after(0.01) as inner:
                await asyncio.sleep(5)
        assert inner.cancelled_caught
        assert not outer.expired()

    asyncio.run(main())


def test_asyncio_timeout_inside_compat_scope() -> None:
    async def main() -> None:
        with compat.fail_after(5) as outer:
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.01):
                    await asyncio.sleep(5)
        assert not outer.cancelled_caught
        with pytest.raises(TimeoutError), compat.fail_after(0.01):
            async with asyncio.timeout(5):
                await asyncio.sleep(5)

    asyncio.run(main())


def test_compat_timeout_inside_task_group_child_and_around_task_group() -> None:
    async def main() -> None:
        results: list[bool] = []

        async def child() -> None:
            with compat.move_on_after(0.01) as scope:
                await asyncio.sleep(5)
            results.append(scope.cancelled_caught)

        async with asyncio.TaskGroup() as tg:
            tg.create_task(child())
            tg.create_task(child())
        assert results == [True, True]

        with compat.move_on_after(0.01) as scope:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(asyncio.sleep(5))
        assert scope.cancelled_caught

    asyncio.run(main())


def test_trio_cancel_scope_outside_compat_timeout_wins() -> None:
    async def main() -> None:
        with trio.move_on_after(0.01) as outer:
            with compat.fail_after(5) as inner:
                await trio.sleep(5)
        assert outer.cancelled_caught
        assert not inner.cancelled_caught

    trio.run(main)


def test_a_timeout_scope_cannot_be_entered_twice_at_once() -> None:
    async def main() -> None:
        scope = compat.move_on_after(5)
        with scope:
            with pytest.raises(RuntimeError, match="already active"):
                scope.__enter__()
        with scope:  # reuse after exit is fine, and starts fresh
            await asyncio.sleep(0)
        assert not scope.cancelled_caught

    asyncio.run(main())
