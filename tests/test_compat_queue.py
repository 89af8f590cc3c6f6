"""compat.Queue: FIFO, bounds, close, async for, cancellation, rebinding, on both backends and under anyio."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest
import trio

import compat


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, None, "3", math.nan, -math.inf])
def test_maxsize_must_be_an_int_of_at_least_one_or_inf(bad: Any) -> None:
    with pytest.raises(ValueError, match=r"maxsize must be an int >= 1 or math.inf, got"):
        compat.Queue(bad)


def test_maxsize_zero_names_both_meanings() -> None:
    with pytest.raises(ValueError) as info:
        compat.Queue(0)
    message = str(info.value)
    assert "unbounded" in message and "rendezvous" in message and "math.inf" in message


def test_maxsize_and_qsize_before_binding() -> None:
    queue: compat.Queue[int] = compat.Queue(math.inf)
    assert queue.maxsize == math.inf
    queue.put_nowait(1)
    assert queue.qsize() == 1
    assert compat.Queue(3).maxsize == 3


async def test_fifo_order_and_nowait_errors() -> None:
    queue: compat.Queue[str] = compat.Queue(2)
    await queue.put("a")
    queue.put_nowait("b")
    assert queue.qsize() == 2
    with pytest.raises(compat.QueueFull, match="maxsize=2"):
        queue.put_nowait("c")
    assert await queue.get() == "a"
    assert queue.get_nowait() == "b"
    with pytest.raises(compat.QueueEmpty, match="empty"):
        queue.get_nowait()
    assert queue.qsize() == 0


async def test_unbounded_queue_takes_many_items() -> None:
    queue: compat.Queue[int] = compat.Queue(math.inf)
    for i in range(1000):
        queue.put_nowait(i)
    assert queue.qsize() == 1000
    assert [queue.get_nowait() for _ in range(1000)] == list(range(1000))


async def test_put_waits_for_room_and_get_waits_for_an_item() -> None:
    queue: compat.Queue[int] = compat.Queue(1)
    order: list[str] = []

    async def producer() -> None:
        for i in range(3):
            await queue.put(i)
            order.append(f"put {i}")

    async def consumer() -> None:
        for i in range(3):
            await compat.sleep(0.002)
            order.append(f"get {i}")
            order.append(f"got {await queue.get()}")

    with compat.fail_after(2):
        async with compat.create_task_group() as tg:
            tg.start_soon(consumer)
            tg.start_soon(producer)
    assert [line for line in order if line.startswith("got")] == ["got 0", "got 1", "got 2"]
    assert order.index("put 1") > order.index("get 0")  # the second put waited for the first get
    assert order.index("put 2") > order.index("get 1")


async def test_close_refuses_puts_and_drains_then_raises() -> None:
    queue: compat.Queue[int] = compat.Queue(5)
    queue.put_nowait(1)
    await queue.put(2)
    queue.close()
    queue.close()  # idempotent
    with pytest.raises(compat.QueueClosed, match=r"closed compat\.Queue"):
        await queue.put(3)
    with pytest.raises(compat.QueueClosed):
        queue.put_nowait(3)
    assert await queue.get() == 1
    assert queue.get_nowait() == 2
    with pytest.raises(compat.QueueClosed):
        queue.get_nowait()
    with pytest.raises(compat.QueueClosed):
        await queue.get()


async def test_close_wakes_a_waiting_get_and_a_waiting_put() -> None:
    empty: compat.Queue[int] = compat.Queue(1)
    full: compat.Queue[int] = compat.Queue(1)
    full.put_nowait(0)
    outcomes: list[str] = []

    async def getter() -> None:
        try:
            await empty.get()
        except compat.QueueClosed:
            outcomes.append("get closed")

    async def putter() -> None:
        try:
            await full.put(1)
        except compat.QueueClosed:
            outcomes.append("put closed")

    with compat.fail_after(2):
        async with compat.create_task_group() as tg:
            tg.start_soon(getter)
            tg.start_soon(putter)
            await compat.sleep(0.01)
            empty.close()
            full.close()
    assert sorted(outcomes) == ["get closed", "put closed"]
    assert full.get_nowait() == 0  # the waiting put added nothing


async def test_async_for_ends_when_closed_and_drained() -> None:
    queue: compat.Queue[int] = compat.Queue(2)
    received: list[int] = []

    async def consume() -> None:
        async for item in queue:
            received.append(item)

    async with compat.create_task_group() as tg:
        tg.start_soon(consume)
        for i in range(5):
            await queue.put(i)
        queue.close()
    assert received == [0, 1, 2, 3, 4]


async def test_a_cancelled_get_takes_nothing() -> None:
    queue: compat.Queue[str] = compat.Queue(1)
    with compat.move_on_after(0.005) as scope:
        await queue.get()
    assert scope.cancelled_caught
    queue.put_nowait("kept")
    assert queue.get_nowait() == "kept"


async def test_a_get_cancelled_as_the_item_arrives_loses_nothing() -> None:
    queue: compat.Queue[str] = compat.Queue(1)
    received: list[str] = []
    waiting = compat.Event()

    async def getter() -> None:
        waiting.set()
        received.append(await queue.get())

    for _ in range(20):
        handle = compat.spawn_detached(getter())
        await waiting.wait()
        await compat.sleep(0.001)
        queue.put_nowait("item")  # wakes the getter ...
        handle.cancel()  # ... which is cancelled before it runs again
        await handle.wait()
        left = [queue.get_nowait()] if queue.qsize() else []
        assert received + left == ["item"], "the item was lost or duplicated"
        received.clear()
        waiting = compat.Event()


async def test_a_cancelled_put_adds_nothing_and_a_woken_one_adds_once() -> None:
    queue: compat.Queue[str] = compat.Queue(1)
    queue.put_nowait("first")
    with compat.move_on_after(0.005) as scope:
        await queue.put("never")
    assert scope.cancelled_caught
    assert queue.qsize() == 1
    put_done: list[str] = []

    async def putter() -> None:
        await queue.put("second")
        put_done.append("done")

    handle = compat.spawn_detached(putter())
    await compat.sleep(0.005)
    assert queue.get_nowait() == "first"  # wakes the putter ...
    handle.cancel()  # ... which is cancelled before it runs again
    await handle.wait()
    items = [queue.get_nowait() for _ in range(queue.qsize())]
    assert items == (["second"] if put_done else [])


async def test_put_nowait_before_first_use_is_kept(backend: str) -> None:
    queue: compat.Queue[int] = compat.Queue(2)
    queue.put_nowait(1)
    with pytest.raises(compat.QueueEmpty):
        compat.Queue(1).get_nowait()
    assert await queue.get() == 1


QUEUE_AT_MODULE_LEVEL: compat.Queue[str] = compat.Queue(1)


def test_a_queue_moves_between_loops_and_backends_with_its_items() -> None:
    queue: compat.Queue[str] = compat.Queue(1)

    async def contend_then_leave_one(tag: str) -> list[str]:
        got: list[str] = []

        async def late_put() -> None:
            await compat.sleep(0.002)
            await queue.put(tag)

        async with compat.create_task_group() as tg:
            tg.start_soon(late_put)
            got.append(await queue.get())  # waits: binds a waiter to this loop
        await queue.put(tag + " left")  # stays in the queue for the next run
        return got

    assert asyncio.run(contend_then_leave_one("a1")) == ["a1"]
    assert queue.qsize() == 1
    assert asyncio.run(_get_one(queue)) == "a1 left"
    queue.put_nowait("from sync code")
    assert trio.run(_get_one, queue) == "from sync code"
    assert trio.run(contend_then_leave_one, "t1") == ["t1"]
    assert asyncio.run(_get_one(queue)) == "t1 left"  # the item moved from the trio channel to asyncio
    queue.put_nowait("last")
    queue.close()
    assert trio.run(_drain, queue) == ["last"]
    assert asyncio.run(_drain(queue)) == []


async def _get_one(queue: compat.Queue[str]) -> str:
    return await queue.get()


async def _drain(queue: compat.Queue[str]) -> list[str]:
    return [item async for item in queue]


def test_a_module_level_queue_works_in_two_runs() -> None:
    async def roundtrip(value: str) -> str:
        async def put_later() -> None:
            await compat.sleep(0.001)
            await QUEUE_AT_MODULE_LEVEL.put(value)

        async with compat.create_task_group() as tg:
            tg.start_soon(put_later)
            got = await QUEUE_AT_MODULE_LEVEL.get()
        return got

    assert asyncio.run(roundtrip("one")) == "one"
    assert asyncio.run(roundtrip("two")) == "two"
    assert trio.run(roundtrip, "three") == "three"


@pytest.mark.parametrize("anyio_backend_name", ["asyncio", "trio"])
def test_queue_under_anyio(anyio_backend_name: str) -> None:
    import anyio

    async def main() -> list[Any]:
        queue: compat.Queue[int] = compat.Queue(1)
        seen: list[Any] = []

        async def produce() -> None:
            for i in range(3):
                await queue.put(i)
            queue.close()

        async with anyio.create_task_group() as tg:
            tg.start_soon(produce)
            async for item in queue:
                seen.append(item)
        with anyio.move_on_after(0.005) as scope:
            await compat.Queue(1).get()
        seen.append(scope.cancelled_caught)
        return seen

    assert anyio.run(main, backend=anyio_backend_name) == [0, 1, 2, True]


async def test_backend_exceptions_are_the_asyncio_classes(backend: str) -> None:
    assert compat.QueueFull is asyncio.QueueFull
    assert compat.QueueEmpty is asyncio.QueueEmpty
    if hasattr(asyncio, "QueueShutDown"):
        assert compat.QueueClosed is asyncio.QueueShutDown
