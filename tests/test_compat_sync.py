"""compat Lock, Event, CapacityLimiter: native objects bound on first use, rebound when idle."""

from __future__ import annotations

import asyncio
import dataclasses
import math

import pytest
import trio
from holders import peak_holders

import compat

MODULE_LOCK = compat.Lock()
MODULE_EVENT = compat.Event()
MODULE_LIMITER = compat.CapacityLimiter(2)


@dataclasses.dataclass
class Holder:
    lock: compat.Lock = dataclasses.field(default_factory=compat.Lock)
    event: compat.Event = dataclasses.field(default_factory=compat.Event)
    limiter: compat.CapacityLimiter = dataclasses.field(default_factory=lambda: compat.CapacityLimiter(1))


async def _contend(lock: compat.Lock, workers: int = 3) -> list[int]:
    """Make ``workers`` tasks queue on ``lock`` (forcing a waiter future); return who got it, sorted."""
    order: list[int] = []

    async def worker(i: int) -> None:
        async with lock:
            order.append(i)
            await compat.sleep(0.001)

    async with compat.create_task_group() as tg:
        for i in range(workers):
            tg.start_soon(worker, i)
    return sorted(order)


async def test_module_level_primitives_work_on_first_use() -> None:
    async with MODULE_LOCK:
        assert MODULE_LOCK.locked()
    assert not MODULE_LOCK.locked()
    async with MODULE_LIMITER:
        assert MODULE_LIMITER.borrowed_tokens == 1
    assert await _contend(MODULE_LOCK) == [0, 1, 2]


async def test_dataclass_default_factory_primitives_work() -> None:
    holder = Holder()
    async with holder.lock, holder.limiter:
        holder.event.set()
    await holder.event.wait()
    assert holder.event.is_set()


def test_idle_primitives_survive_two_asyncio_runs() -> None:
    lock, event, limiter = compat.Lock(), compat.Event(), compat.CapacityLimiter(1)

    async def use() -> list[int]:
        waiter_done = compat.Event()

        async def wait_for_event() -> None:
            await event.wait()
            waiter_done.set()

        async def hold_limiter() -> None:
            async with limiter:
                await compat.sleep(0.001)

        async with compat.create_task_group() as tg:
            tg.start_soon(wait_for_event)
            tg.start_soon(hold_limiter)
            tg.start_soon(hold_limiter)
            await compat.sleep(0.001)
            event.set()
        assert waiter_done.is_set()
        return await _contend(lock)

    assert asyncio.run(use()) == [0, 1, 2]
    event = compat.Event()  # fresh flag; lock and limiter keep their binding to the finished loop
    assert asyncio.run(use()) == [0, 1, 2]


def test_idle_primitives_move_from_asyncio_to_trio_and_back() -> None:
    lock, limiter, event = compat.Lock(), compat.CapacityLimiter(1), compat.Event()

    async def use() -> list[int]:
        async with limiter:
            pass
        await event.wait()
        return await _contend(lock)

    event.set()
    assert asyncio.run(use()) == [0, 1, 2]
    assert trio.run(use) == [0, 1, 2]  # Event keeps its flag across the rebinding
    assert asyncio.run(use()) == [0, 1, 2]


def test_busy_lock_cannot_move_to_another_backend() -> None:
    lock = compat.Lock()

    async def hold_and_leak() -> None:
        await lock.acquire()  # never released: the lock stays busy after the run

    asyncio.run(hold_and_leak())

    async def use_under_trio() -> None:
        async with lock:
            pass

    with pytest.raises(RuntimeError, match="in use under asyncio"):
        trio.run(use_under_trio)


async def test_lock_is_fifo_fair() -> None:
    lock = compat.Lock()
    order: list[int] = []
    started = compat.Event()

    async def worker(i: int) -> None:
        async with lock:
            order.append(i)
            await compat.sleep(0)

    async with compat.create_task_group() as tg:
        async with lock:
            for i in range(10):
                tg.start_soon(worker, i)
                await compat.sleep(0.002)  # let worker i queue on the lock before i + 1 starts
            started.set()
    assert started.is_set()
    assert order == list(range(10))


async def test_lock_excludes() -> None:
    assert await peak_holders(compat.Lock(), 20) == 1


def test_trio_lock_is_owner_checked() -> None:
    async def main() -> None:
        lock = compat.Lock()
        await lock.acquire()

        async def release_elsewhere() -> None:
            lock.release()

        with pytest.raises(ExceptionGroup) as info:
            async with trio.open_nursery(strict_exception_groups=True) as nursery:
                nursery.start_soon(release_elsewhere)
        assert info.group_contains(RuntimeError, match="don't own")
        lock.release()

    trio.run(main)


async def test_event_set_before_first_use_is_seen() -> None:
    event = compat.Event()
    event.set()
    assert event.is_set()
    with compat.fail_after(1):
        await event.wait()


async def test_event_wakes_every_waiter() -> None:
    event = compat.Event()
    woken: list[int] = []

    async def waiter(i: int) -> None:
        await event.wait()
        woken.append(i)

    async with compat.create_task_group() as tg:
        for i in range(5):
            tg.start_soon(waiter, i)
        await compat.sleep(0.01)
        assert woken == []
        event.set()
    assert sorted(woken) == list(range(5))


async def test_capacity_limiter_bounds_concurrency_exactly() -> None:
    limiter = compat.CapacityLimiter(4)
    borrowed: list[int] = []
    peak = await peak_holders(limiter, 30, hold_s=0.002, while_held=lambda: borrowed.append(limiter.borrowed_tokens))
    assert peak == 4
    assert max(borrowed) == 4
    assert limiter.borrowed_tokens == 0
    assert limiter.available_tokens == 4
    assert limiter.total_tokens == 4


async def test_capacity_limiter_with_infinite_tokens() -> None:
    limiter = compat.CapacityLimiter(math.inf)
    async with limiter:
        assert limiter.borrowed_tokens == 1
        assert limiter.available_tokens == math.inf


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "3"])
def test_capacity_limiter_rejects_bad_totals(bad: object) -> None:
    with pytest.raises(ValueError, match="total_tokens"):
        compat.CapacityLimiter(bad)  # type: ignore[arg-type]  # deliberately wrong type


async def test_cancelled_lock_waiter_does_not_take_the_lock() -> None:
    lock = compat.Lock()
    got_it: list[str] = []

    async def impatient() -> None:
        with compat.move_on_after(0.01):
            async with lock:
                got_it.append("impatient")

    async with compat.create_task_group() as tg:
        async with lock:
            tg.start_soon(impatient)
            await compat.sleep(0.05)
    assert got_it == []
    assert not lock.locked()


def test_an_event_set_under_asyncio_can_be_waited_on_under_trio_and_another_loop() -> None:
    event = compat.Event()

    async def set_and_wait() -> None:
        await compat.sleep(0)  # bind to this loop first
        event.set()
        await event.wait()

    async def wait_only() -> bool:
        with compat.fail_after(1):
            await event.wait()
        return event.is_set()

    asyncio.run(set_and_wait())
    assert asyncio.run(wait_only())
    assert trio.run(wait_only)


def test_waiting_on_an_event_set_under_trio_is_still_a_checkpoint() -> None:
    async def main() -> None:
        event = compat.Event()
        event.set()
        with trio.CancelScope() as scope:
            scope.cancel()
            await event.wait()
            pytest.fail("waiting on a set event under trio must be a checkpoint")
        assert scope.cancelled_caught

    trio.run(main)


async def test_a_set_event_can_be_waited_on_from_a_new_task() -> None:
    event = compat.Event()
    event.set()
    await compat.spawn_detached(event.wait()).wait()  # a real coroutine, not a future
    async with compat.create_task_group() as tg:
        tg.start_soon(event.wait)
    assert event.is_set()
