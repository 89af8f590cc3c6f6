"""compat.Condition: wait / notify / notify_all, a shared Lock, cancellation, rebinding, both backends, anyio."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import trio

import compat


async def test_wait_returns_after_notify_and_holds_the_lock() -> None:
    cond = compat.Condition()
    items: list[int] = []
    got: list[int] = []

    async def consumer() -> None:
        async with cond:
            while not items:
                await cond.wait()
            assert cond.locked()
            got.append(items.pop())

    async with compat.create_task_group() as tg:
        tg.start_soon(consumer)
        await compat.sleep(0.005)
        async with cond:
            items.append(7)
            cond.notify()
    assert got == [7]


async def test_notify_n_and_notify_all_wake_that_many() -> None:
    cond = compat.Condition()
    waiting = 0
    woken: list[int] = []

    async def waiter(i: int) -> None:
        nonlocal waiting
        async with cond:
            waiting += 1  # under the lock: once we hold it, every counted waiter sits in wait()
            await cond.wait()
            woken.append(i)

    async def until(condition: Any) -> None:
        with compat.fail_after(5):
            while not condition():
                await compat.sleep(0.001)

    async with compat.create_task_group() as tg:
        for i in range(4):
            tg.start_soon(waiter, i)
        await until(lambda: waiting == 4)
        async with cond:
            cond.notify(2)
        await until(lambda: len(woken) == 2)
        await compat.sleep(0.005)
        assert len(woken) == 2  # not more
        async with cond:
            cond.notify_all()
    assert sorted(woken) == [0, 1, 2, 3]


async def test_notify_and_wait_without_the_lock_raise() -> None:
    cond = compat.Condition()
    with pytest.raises(RuntimeError):
        cond.notify()
    async with cond:
        pass
    with pytest.raises(RuntimeError):
        cond.notify_all()
    with pytest.raises(RuntimeError):
        await cond.wait()


async def test_a_shared_lock_is_the_condition_lock() -> None:
    lock = compat.Lock()
    cond = compat.Condition(lock)
    async with cond:
        assert lock.locked()
    assert not lock.locked()
    async with lock:
        assert cond.locked()


def test_the_lock_must_be_a_compat_lock() -> None:
    with pytest.raises(TypeError, match=r"compat\.Lock or None, got Lock"):
        compat.Condition(asyncio.Lock())  # type: ignore[arg-type]


async def test_a_cancelled_wait_reacquires_the_lock_before_raising() -> None:
    cond = compat.Condition()
    async with cond:
        with compat.move_on_after(0.005) as scope:
            await cond.wait()
        assert scope.cancelled_caught
        assert cond.locked()  # re-acquired before the cancellation came out of wait()
        cond.notify()  # still allowed: the lock is held
    assert not cond.locked()


async def test_a_cancelled_acquire_leaves_the_lock_to_its_holder() -> None:
    cond = compat.Condition()
    async with cond:

        async def try_acquire() -> None:
            with compat.move_on_after(0.005):
                async with cond:
                    raise AssertionError("acquired a held lock")

        async with compat.create_task_group() as tg:
            tg.start_soon(try_acquire)
        assert cond.locked()
    assert not cond.locked()


CONDITION_AT_MODULE_LEVEL = compat.Condition()


async def _notify_roundtrip() -> str:
    cond = CONDITION_AT_MODULE_LEVEL
    flag: list[str] = []

    async def notifier() -> None:
        await compat.sleep(0.002)
        async with cond:
            flag.append("set")
            cond.notify_all()

    async with compat.create_task_group() as tg:
        tg.start_soon(notifier)
        async with cond:
            while not flag:
                await cond.wait()  # waits: binds to this loop / backend
    return flag[0]


def test_a_module_level_condition_moves_between_loops_and_backends() -> None:
    assert asyncio.run(_notify_roundtrip()) == "set"
    assert asyncio.run(_notify_roundtrip()) == "set"
    assert trio.run(_notify_roundtrip) == "set"
    assert asyncio.run(_notify_roundtrip()) == "set"


def test_a_condition_follows_its_lock_to_another_backend() -> None:
    lock = compat.Lock()
    cond = compat.Condition(lock)

    async def use_lock_alone() -> None:
        async with lock:
            await compat.sleep(0)

    async def cond_excludes_lock() -> bool:
        async with cond:
            return lock.locked()

    asyncio.run(use_lock_alone())
    trio.run(use_lock_alone)  # the lock moved to trio on its own
    assert trio.run(cond_excludes_lock)
    asyncio.run(use_lock_alone())  # and back to asyncio (a new asyncio.Lock)
    assert asyncio.run(cond_excludes_lock())  # the condition uses the lock's new native object


@pytest.mark.parametrize("anyio_backend_name", ["asyncio", "trio"])
def test_condition_under_anyio(anyio_backend_name: str) -> None:
    import anyio

    async def main() -> list[Any]:
        cond = compat.Condition()
        seen: list[Any] = []

        async def waiter() -> None:
            async with cond:
                await cond.wait()
                seen.append("woken")

        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter)
            await anyio.sleep(0.005)
            async with cond:
                cond.notify()
        async with cond:
            with anyio.move_on_after(0.005) as scope:
                await cond.wait()
            seen.append(cond.locked())
        seen.append(scope.cancelled_caught)
        return seen

    assert anyio.run(main, backend=anyio_backend_name) == ["woken", True, True]
