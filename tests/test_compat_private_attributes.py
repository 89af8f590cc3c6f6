"""Every private asyncio attribute compat relies on still exists, and means what compat takes it to mean.

The list comes from one declared place, ``compat._private_attributes.ASYNCIO_PRIVATE_ATTRIBUTES``; a scan of
compat's source makes sure nothing compat reads is missing from it. A future CPython that renames one of these
fails here, naming the attribute and the Python version, instead of compat silently taking a slow or wrong path.
"""

from __future__ import annotations

import asyncio
import platform
import re
from pathlib import Path
from typing import Any

import pytest

from compat._private_attributes import ASYNCIO_PRIVATE_ATTRIBUTES, PrivateAttribute

COMPAT = Path(__file__).resolve().parent.parent / "compat"
PYTHON = (
    f"CPython {platform.python_version()}"
    if platform.python_implementation() == "CPython"
    else platform.python_implementation()
)

# private attributes read off asyncio objects in compat's source: ``native._x``, ``task._x``,
# ``self._native._x``, ``asyncio._x`` and ``getattr(task, "_x", ...)``
ACCESS = re.compile(
    r"\b(?:native|task|group|self\._native|self\._task|self\._group|asyncio)\.(_[a-z]\w*)|getattr\(\w+, \"(_[a-z]\w*)\""
)


def broken(attribute: PrivateAttribute, what: str) -> str:
    return (
        f"compat relies on asyncio.{attribute.owner}.{attribute.name} ({attribute.used_by}), but on {PYTHON} "
        f"{what}; update compat (and compat/_private_attributes.py) for this Python"
    )


async def instances() -> dict[str, Any]:
    """One fresh instance of every owner class, made under a running loop as compat makes them."""

    async def idle() -> None:
        await asyncio.sleep(0)

    task = asyncio.get_running_loop().create_task(idle())
    await task
    return {
        "Lock": asyncio.Lock(),
        "Event": asyncio.Event(),
        "Semaphore": asyncio.Semaphore(2),
        "BoundedSemaphore": asyncio.BoundedSemaphore(2),
        "Queue": asyncio.Queue(1),
        "Condition": asyncio.Condition(),
        "TaskGroup": asyncio.TaskGroup(),
        "Task": task,
    }


@pytest.mark.parametrize("attribute", ASYNCIO_PRIVATE_ATTRIBUTES, ids=lambda a: f"{a.owner}.{a.name}")
def test_the_private_attribute_exists(attribute: PrivateAttribute) -> None:
    owner = asyncio if attribute.owner == "asyncio" else asyncio.run(instances())[attribute.owner]
    assert hasattr(owner, attribute.name), broken(attribute, "it does not exist")


def test_every_private_asyncio_attribute_compat_uses_is_declared() -> None:
    declared = {attribute.name for attribute in ASYNCIO_PRIVATE_ATTRIBUTES}
    used = {
        name
        for path in COMPAT.glob("*.py")
        for match in ACCESS.finditer(path.read_text("utf-8"))
        for name in match.groups()
        if name
    }
    compat_own = {"_native", "_fire", "_handle", "_deferred", "_run"}  # compat's own objects' attributes
    assert used - compat_own - declared == set(), "declare these in compat/_private_attributes.py"
    assert {"_waiters", "_loop", "_value", "_must_cancel"} <= used  # the scan sees what is known to be there


def test_the_declared_list_names_real_owners() -> None:
    owners = {"asyncio", *asyncio.run(instances())}
    assert {attribute.owner for attribute in ASYNCIO_PRIVATE_ATTRIBUTES} <= owners


def by_name(owner: str, name: str) -> PrivateAttribute:
    return next(a for a in ASYNCIO_PRIVATE_ATTRIBUTES if (a.owner, a.name) == (owner, name))


def test_get_running_loop_answers_none_outside_a_loop_and_the_loop_inside() -> None:
    attribute = by_name("asyncio", "_get_running_loop")
    assert asyncio._get_running_loop() is None, broken(attribute, "it does not return None outside a loop")

    async def inside() -> bool:
        return asyncio._get_running_loop() is asyncio.get_running_loop()

    assert asyncio.run(inside()), broken(attribute, "it does not return the running loop")


def test_lock_locked_waiters_and_loop_mean_what_compat_reads() -> None:
    async def check() -> None:
        lock = asyncio.Lock()
        assert lock._locked is False, broken(by_name("Lock", "_locked"), "a new Lock is not _locked=False")
        await lock.acquire()
        assert lock._locked is True, broken(by_name("Lock", "_locked"), "a held Lock is not _locked=True")
        waiter = asyncio.get_running_loop().create_task(lock.acquire())
        await asyncio.sleep(0)
        assert any(not w.done() for w in lock._waiters or ()), broken(
            by_name("Lock", "_waiters"), "a task waiting for the Lock is not in _waiters"
        )
        assert lock._loop is asyncio.get_running_loop(), broken(
            by_name("Lock", "_loop"), "a contended Lock is not bound to the running loop"
        )
        lock.release()
        await waiter
        lock.release()

    asyncio.run(check())


def test_a_lock_unbound_by_clearing_loop_binds_to_the_next_loop() -> None:
    """compat's stale-loop repair: ``_loop = None`` lets an idle Lock made under one loop work under another."""
    lock = asyncio.Lock()

    async def contend() -> None:
        await lock.acquire()
        waiter = asyncio.get_running_loop().create_task(lock.acquire())
        await asyncio.sleep(0)
        lock.release()
        await waiter
        lock.release()

    asyncio.run(contend())
    lock._loop = None
    asyncio.run(contend())  # without the reset: RuntimeError "is bound to a different event loop"


def test_event_and_semaphore_values_are_what_compat_reads() -> None:
    async def check() -> None:
        event = asyncio.Event()
        assert event._value is False, broken(by_name("Event", "_value"), "an unset Event is not _value=False")
        event.set()
        assert event._value is True, broken(by_name("Event", "_value"), "a set Event is not _value=True")
        semaphore = asyncio.Semaphore(2)
        await semaphore.acquire()
        assert semaphore._value == 1, broken(by_name("Semaphore", "_value"), "_value is not the free slots")
        bounded = asyncio.BoundedSemaphore(3)
        bounded._value = 1  # how compat starts a bounded Semaphore below its bound
        bounded.release()
        assert bounded._value == 2, broken(by_name("BoundedSemaphore", "_value"), "release() ignores _value")

    asyncio.run(check())


def test_task_must_cancel_and_cancel_message_show_a_pending_cancel() -> None:
    async def check() -> None:
        task = asyncio.get_running_loop().create_task(asyncio.sleep(10))
        assert task._must_cancel is False, broken(by_name("Task", "_must_cancel"), "a new task has it set")
        task.cancel("first")  # before the task ran: the cancellation waits to be delivered
        assert task._must_cancel is True, broken(by_name("Task", "_must_cancel"), "a pending cancel() is not shown")
        assert task._cancel_message == "first", broken(by_name("Task", "_cancel_message"), "it lost the message")
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(check())


def test_queue_getters_putters_and_loop_mean_what_compat_reads() -> None:
    """compat.Queue's idleness check, its close() on 3.11/3.12 (fail the waiting futures) and stale-loop repair."""

    async def check() -> None:
        queue: asyncio.Queue[int] = asyncio.Queue(1)
        getter = asyncio.get_running_loop().create_task(queue.get())
        await asyncio.sleep(0)
        assert any(not w.done() for w in queue._getters), broken(
            by_name("Queue", "_getters"), "a task waiting in get() is not in _getters"
        )
        assert queue._loop is asyncio.get_running_loop(), broken(
            by_name("Queue", "_loop"), "a Queue with a waiting get() is not bound to the running loop"
        )
        for waiter in queue._getters:
            waiter.set_exception(LookupError("closed"))
        with pytest.raises(LookupError):  # get() re-raises the exception set on its waiter
            await getter
        queue.put_nowait(1)
        assert list(queue._queue) == [1], broken(by_name("Queue", "_queue"), "it is not the items in FIFO order")
        putter = asyncio.get_running_loop().create_task(queue.put(2))
        await asyncio.sleep(0)
        assert any(not w.done() for w in queue._putters), broken(
            by_name("Queue", "_putters"), "a task waiting in put() is not in _putters"
        )
        for waiter in queue._putters:
            waiter.set_exception(LookupError("closed"))
        with pytest.raises(LookupError):
            await putter
        assert queue.qsize() == 1

    asyncio.run(check())
    queue: asyncio.Queue[int] = asyncio.Queue(1)

    async def wait_for_one() -> None:
        task = asyncio.get_running_loop().create_task(queue.get())
        await asyncio.sleep(0)
        queue.put_nowait(1)
        await task

    asyncio.run(wait_for_one())
    queue._loop = None
    asyncio.run(wait_for_one())  # without the reset: RuntimeError "is bound to a different event loop"


def test_condition_waiters_and_loop_mean_what_compat_reads() -> None:
    async def check() -> None:
        cond = asyncio.Condition()

        async def wait() -> None:
            async with cond:
                await cond.wait()

        waiter = asyncio.get_running_loop().create_task(wait())
        await asyncio.sleep(0)
        assert any(not w.done() for w in cond._waiters), broken(
            by_name("Condition", "_waiters"), "a task in wait() is not in _waiters"
        )
        assert cond._loop is asyncio.get_running_loop(), broken(
            by_name("Condition", "_loop"), "a Condition with a waiter is not bound to the running loop"
        )
        async with cond:
            cond.notify()
        await waiter

    asyncio.run(check())


def test_task_group_parent_task_tasks_and_loop_mean_what_compat_reads() -> None:
    async def check() -> None:
        group = asyncio.TaskGroup()
        async with group:
            assert group._parent_task is asyncio.current_task(), broken(
                by_name("TaskGroup", "_parent_task"), "it is not the task that entered the group"
            )
            child = group.create_task(asyncio.sleep(5))
            assert child in group._tasks, broken(by_name("TaskGroup", "_tasks"), "a running child is not in it")
            child.cancel()

    asyncio.run(check())
