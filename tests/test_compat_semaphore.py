"""compat.Semaphore (slots released by any task, optional max_value) and CapacityLimiter.acquire()/release()."""

from __future__ import annotations

import asyncio
import dataclasses

import anyio
import pytest
import trio
from holders import peak_holders

import compat

MODULE_SEMAPHORE = compat.Semaphore(2, max_value=2)


@dataclasses.dataclass
class Pool:
    slots: compat.Semaphore = dataclasses.field(default_factory=lambda: compat.Semaphore(1))


async def _queue_waiters(semaphore: compat.Semaphore, count: int, order: list[int], tg: object) -> None:
    """Start ``count`` tasks that each acquire ``semaphore`` once, one after the other, so they queue in order."""
    for i in range(count):

        async def wait(i: int = i) -> None:
            await semaphore.acquire()
            order.append(i)

        tg.start_soon(wait)  # type: ignore[attr-defined]  # a compat task group
        await compat.sleep(0.001)


# --- construction --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("initial", "maximum", "named"),
    [(-1, None, "initial_value"), (1.5, None, "initial_value"), (True, None, "initial_value"), (3, 2, "max_value")],
)
def test_bad_values_are_refused_by_name(initial: object, maximum: object, named: str) -> None:
    with pytest.raises(ValueError, match=named):
        compat.Semaphore(initial, max_value=maximum)  # type: ignore[arg-type]  # the bad values under test


def test_release_beyond_max_value_before_first_use_names_the_value() -> None:
    semaphore = compat.Semaphore(1, max_value=2)
    semaphore.release()
    assert semaphore.value == 2
    with pytest.raises(ValueError, match="max_value=2"):
        semaphore.release()
    assert semaphore.value == 2


# --- behaviour on both backends ------------------------------------------------------------------------------


async def test_acquire_and_release_count_slots() -> None:
    semaphore = compat.Semaphore(2)
    await semaphore.acquire()
    assert semaphore.value == 1
    async with semaphore:
        assert semaphore.value == 0
    assert semaphore.value == 1
    semaphore.release()
    semaphore.release()  # no max_value: the count may grow past its start
    assert semaphore.value == 3
    assert semaphore.max_value is None


async def test_release_beyond_max_value_raises_value_error_naming_it() -> None:
    semaphore = compat.Semaphore(1, max_value=1)
    async with semaphore:
        pass
    with pytest.raises(ValueError, match=r"max_value=1.*once per acquire"):
        semaphore.release()
    assert semaphore.value == 1


async def test_a_slot_taken_in_one_task_is_released_from_another() -> None:
    semaphore = compat.Semaphore(1, max_value=1)
    order: list[str] = []

    async def second_taker() -> None:
        await semaphore.acquire()
        order.append("second took it")
        semaphore.release()

    async def releaser() -> None:
        order.append("released by another task")
        semaphore.release()

    await semaphore.acquire()
    async with compat.create_task_group() as tg:
        tg.start_soon(second_taker)
        await compat.sleep(0.001)
        assert order == []
        tg.start_soon(releaser)
    assert order == ["released by another task", "second took it"]
    assert semaphore.value == 1


async def test_waiters_are_served_first_come_first_served() -> None:
    semaphore = compat.Semaphore(0, max_value=5)
    order: list[int] = []
    async with compat.create_task_group() as tg:
        await _queue_waiters(semaphore, 5, order, tg)
        for _ in range(5):
            semaphore.release()
            await compat.sleep(0.001)
    assert order == [0, 1, 2, 3, 4]


async def test_semaphore_bounds_concurrency_exactly() -> None:
    semaphore = compat.Semaphore(3, max_value=3)
    assert await peak_holders(semaphore, 10, hold_s=0.002) == 3
    assert semaphore.value == 3


async def test_module_level_and_dataclass_semaphores_work_on_first_use() -> None:
    async with MODULE_SEMAPHORE:
        assert MODULE_SEMAPHORE.value == 1
    pool = Pool()
    async with pool.slots:
        assert pool.slots.value == 0
    assert MODULE_SEMAPHORE.value == 2
    assert pool.slots.value == 1


async def test_released_before_first_use_is_counted() -> None:
    semaphore = compat.Semaphore(0)
    semaphore.release()
    with compat.fail_after(1):
        await semaphore.acquire()
    assert semaphore.value == 0


# --- cancellation at each await ------------------------------------------------------------------------------


async def test_cancelled_waiter_takes_no_slot_and_the_next_waiter_gets_it() -> None:
    semaphore = compat.Semaphore(1, max_value=1)
    await semaphore.acquire()
    with compat.move_on_after(0.005) as scope:
        await semaphore.acquire()
    assert scope.cancelled_caught
    assert semaphore.value == 0
    order: list[int] = []
    async with compat.create_task_group() as tg:
        await _queue_waiters(semaphore, 1, order, tg)
        semaphore.release()
    assert order == [0]
    semaphore.release()
    assert semaphore.value == 1


async def test_waiter_cancelled_from_outside_takes_no_slot() -> None:
    semaphore = compat.Semaphore(0, max_value=1)
    waiting = compat.Event()

    async def waiter() -> None:
        waiting.set()
        await semaphore.acquire()

    handle = compat.spawn_detached(waiter())
    await waiting.wait()
    await compat.sleep(0.001)
    handle.cancel()
    await handle.wait()
    semaphore.release()
    assert semaphore.value == 1


async def test_uncontended_acquire_in_a_cancelled_scope(backend: str) -> None:
    semaphore = compat.Semaphore(1, max_value=1)
    with compat.move_on_after(0) as scope:
        await semaphore.acquire()  # trio: a checkpoint, so cancelled; asyncio: does not yield, so acquired
        await compat.sleep(1)
    assert scope.cancelled_caught
    assert semaphore.value == (1 if backend == "trio" else 0)


# --- rebinding across loops and backends ---------------------------------------------------------------------


async def _contend(semaphore: compat.Semaphore) -> list[int]:
    order: list[int] = []
    taken = semaphore.value
    for _ in range(taken):
        await semaphore.acquire()
    async with compat.create_task_group() as tg:
        await _queue_waiters(semaphore, 2, order, tg)
        for _ in range(2):
            semaphore.release()
            await compat.sleep(0.001)  # trio runs the tasks woken in one batch in any order
    for _ in range(taken):
        semaphore.release()
    return order


def test_idle_semaphore_survives_two_asyncio_runs_and_keeps_its_value() -> None:
    semaphore = compat.Semaphore(2, max_value=3)
    assert asyncio.run(_contend(semaphore)) == [0, 1]
    assert asyncio.run(_contend(semaphore)) == [0, 1]
    asyncio.run(semaphore.acquire())  # type: ignore[arg-type]  # a native awaitable that is a coroutine
    assert semaphore.value == 1
    assert asyncio.run(_contend(semaphore)) == [0, 1]
    assert semaphore.value == 1


def test_idle_semaphore_moves_between_backends_with_its_value() -> None:
    semaphore = compat.Semaphore(1, max_value=2)
    assert asyncio.run(_contend(semaphore)) == [0, 1]
    assert trio.run(_contend, semaphore) == [0, 1]
    semaphore.release()  # outside any loop: counted on the trio object, carried to the next binding
    assert asyncio.run(_contend(semaphore)) == [0, 1]
    assert semaphore.value == 2
    with pytest.raises(ValueError, match="max_value=2"):
        semaphore.release()


def test_semaphore_with_a_waiter_cannot_move_to_another_backend() -> None:
    semaphore = compat.Semaphore(0)

    async def main() -> None:
        async def try_trio() -> None:
            with pytest.raises(RuntimeError, match="idle"):
                await semaphore.acquire()

        async with compat.create_task_group() as tg:
            tg.start_soon(semaphore.acquire)
            await compat.sleep(0.001)
            await compat.run_sync(trio.run, try_trio)
            semaphore.release()

    asyncio.run(main())


@pytest.mark.parametrize("runner", ["asyncio", "trio"])
def test_semaphore_under_anyio_run(runner: str) -> None:
    semaphore = compat.Semaphore(0, max_value=1)

    async def main() -> list[int]:
        order: list[int] = []
        async with anyio.create_task_group() as tg:

            async def wait(i: int) -> None:
                async with semaphore:
                    order.append(i)

            for i in range(3):
                tg.start_soon(wait, i)
                await anyio.sleep(0.001)
            semaphore.release()
        with anyio.move_on_after(0.005) as scope:
            async with semaphore:
                await anyio.sleep(0)
            await semaphore.acquire()
            await semaphore.acquire()  # the only slot is taken: waits until the anyio scope cancels
        assert scope.cancelled_caught
        semaphore.release()
        return order

    assert anyio.run(main, backend=runner) == [0, 1, 2]
    assert semaphore.value == 1


# --- CapacityLimiter.acquire() / release() -------------------------------------------------------------------


async def test_capacity_limiter_acquire_and_release_are_public() -> None:
    limiter = compat.CapacityLimiter(1)
    await limiter.acquire()
    assert limiter.borrowed_tokens == 1
    caught: list[bool] = []

    async def contend() -> None:
        with compat.move_on_after(0.005) as scope:
            await limiter.acquire()
        caught.append(scope.cancelled_caught)

    async with compat.create_task_group() as tg:
        tg.start_soon(contend)
    assert caught == [True]
    assert limiter.borrowed_tokens == 1
    limiter.release()
    assert limiter.available_tokens == 1


def test_capacity_limiter_release_before_any_acquire_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="never acquired"):
        compat.CapacityLimiter(1).release()


async def test_capacity_limiter_release_from_another_task(backend: str) -> None:
    limiter = compat.CapacityLimiter(1)
    await limiter.acquire()
    errors: list[BaseException] = []

    async def release_elsewhere() -> None:
        try:
            limiter.release()
        except RuntimeError as exc:  # trio: only the borrower may release
            errors.append(exc)

    async with compat.create_task_group() as tg:
        tg.start_soon(release_elsewhere)
    if backend == "trio":
        assert len(errors) == 1
        assert limiter.borrowed_tokens == 1
        limiter.release()
    else:
        assert errors == []
    assert limiter.borrowed_tokens == 0


def test_capacity_limiter_acquire_rebinds_across_runs() -> None:
    limiter = compat.CapacityLimiter(1)

    async def take_and_give() -> int:
        await limiter.acquire()
        borrowed = limiter.borrowed_tokens
        limiter.release()
        return borrowed

    assert asyncio.run(take_and_give()) == 1
    assert trio.run(take_and_give) == 1
    assert asyncio.run(take_and_give()) == 1
