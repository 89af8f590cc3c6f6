"""compat shield, task groups, detached tasks and run_sync, on both backends."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
import time
import warnings
from typing import Any

import pytest
import sniffio
import trio

import compat

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("REQUEST_ID", default="unset")


class Boom(Exception):
    pass


async def _finish_later(done: list[str], seconds: float = 0.03) -> str:
    await compat.sleep(seconds)
    done.append("finished")
    return "result"


# --- shield ------------------------------------------------------------------------------------------------------


async def test_shield_returns_the_result() -> None:
    assert await compat.shield(_finish_later, [], 0) == "result"


async def test_shield_passes_the_exception_through() -> None:
    async def fail() -> None:
        await compat.sleep(0)
        raise Boom("inside")

    with pytest.raises(Boom, match="inside"):
        await compat.shield(fail)


async def test_shield_completes_when_timeout_fires_during_and_then_delivers_it() -> None:
    done: list[str] = []
    after: list[str] = []
    with compat.move_on_after(0.005) as scope:
        await compat.shield(_finish_later, done)
        after.append("not reached")
    assert done == ["finished"]
    assert after == []
    assert scope.cancelled_caught


async def test_shield_completes_when_caller_was_cancelled_before() -> None:
    done: list[str] = []
    with compat.move_on_after(0) as scope:
        await compat.shield(_finish_later, done)
    assert done == ["finished"]
    assert scope.cancelled_caught


async def test_shield_completes_when_the_calling_task_is_cancelled_from_outside() -> None:
    done: list[str] = []
    entered = compat.Event()

    async def caller() -> None:
        entered.set()
        await compat.shield(_finish_later, done, 0.05)
        done.append("caller continued")

    with compat.fail_after(1):
        handle = compat.spawn_detached(caller())
        await entered.wait()
        handle.cancel()
        await handle.wait()
    assert done == ["finished"]
    assert handle.done()


async def test_fail_after_around_shield_raises_timeout_after_the_work() -> None:
    done: list[str] = []
    with pytest.raises(TimeoutError), compat.fail_after(0.005):
        await compat.shield(_finish_later, done)
    assert done == ["finished"]


def test_shield_does_not_spin_in_a_cancelled_anyio_scope_on_asyncio(monkeypatch: pytest.MonkeyPatch) -> None:
    import anyio

    import compat._tasks as tasks_module

    waits = 0
    real_shield, real_wait = asyncio.shield, asyncio.wait

    def counting_shield(fut: asyncio.Future[str]) -> asyncio.Future[str]:
        nonlocal waits
        waits += 1
        return real_shield(fut)

    def counting_wait(futures: Any) -> Any:
        nonlocal waits
        waits += 1
        return real_wait(futures)

    monkeypatch.setattr(tasks_module.asyncio, "shield", counting_shield)
    monkeypatch.setattr(tasks_module.asyncio, "wait", counting_wait)
    done: list[str] = []

    async def main() -> None:
        with anyio.CancelScope() as scope:
            scope.cancel()
            await compat.shield(_finish_later, done, 0.05)
            await anyio.sleep(1)
        assert scope.cancelled_caught

    anyio.run(main, backend="asyncio")
    assert done == ["finished"]
    assert waits <= 3, f"shield re-awaited {waits} times: it spun under the cancelled anyio scope"


async def test_cancellation_is_not_lost_when_the_shielded_call_fails() -> None:
    async def fail_later() -> None:
        await compat.sleep(0.01)
        raise Boom("failed while the caller was cancelled")

    with compat.move_on_after(0) as scope:
        try:
            await compat.shield(fail_later)
        except Boom:
            pass  # trio: the call's error comes first, the cancellation at the next checkpoint
        await compat.sleep(1)
    assert scope.cancelled_caught


async def test_cancellation_is_not_lost_when_the_thread_fails() -> None:
    def fail_later() -> None:
        time.sleep(0.01)
        raise Boom("thread failed while the caller was cancelled")

    with compat.move_on_after(0) as scope:
        try:
            await compat.run_sync(fail_later)
        except Boom:
            pass
        await compat.sleep(1)
    assert scope.cancelled_caught


# --- task groups -------------------------------------------------------------------------------------------------


async def test_task_group_waits_for_children() -> None:
    done: list[str] = []
    async with compat.create_task_group() as tg:
        tg.start_soon(_finish_later, done, 0.01)
        tg.start_soon(_finish_later, done, 0.02)
    assert done == ["finished", "finished"]


async def test_task_group_errors_surface_as_exception_group_and_cancel_siblings() -> None:
    sibling: list[str] = []

    async def fail() -> None:
        await compat.sleep(0.001)
        raise Boom("child failed")

    with pytest.raises(ExceptionGroup) as info:
        async with compat.create_task_group() as tg:
            tg.start_soon(fail)
            tg.start_soon(_finish_later, sibling, 5)
    assert info.group_contains(Boom, match="child failed")
    assert sibling == []


# --- spawn_detached ----------------------------------------------------------------------------------------------


async def test_spawn_detached_runs_and_wait_returns() -> None:
    done: list[str] = []
    handle = compat.spawn_detached(_finish_later(done, 0.001))
    assert not handle.done()
    await handle.wait()
    assert handle.done()
    assert done == ["finished"]


async def test_detached_task_can_be_cancelled_from_another_task() -> None:
    done: list[str] = []
    handle = compat.spawn_detached(_finish_later(done, 5))

    async def canceller() -> None:
        handle.cancel()

    async with compat.create_task_group() as tg:
        tg.start_soon(canceller)
    with compat.fail_after(1):
        await handle.wait()  # a cancelled task's wait() returns quietly
    assert handle.done()
    assert done == []


async def test_cancelled_waiter_leaves_the_task_running() -> None:
    done: list[str] = []
    handle = compat.spawn_detached(_finish_later(done, 0.05))
    with compat.move_on_after(0.005) as scope:
        await handle.wait()
    assert scope.cancelled_caught
    assert not handle.done()
    await handle.wait()
    assert done == ["finished"]


async def test_wait_re_raises_the_task_exception_every_time() -> None:
    async def fail() -> None:
        await compat.sleep(0)
        raise Boom("detached failure")

    with warnings.catch_warnings(), _quiet_compat_logger():
        handle = compat.spawn_detached(fail())
        with pytest.raises(Boom) as first:
            await handle.wait()
        with pytest.raises(Boom) as second:
            await handle.wait()
    assert first.value is second.value


class _quiet_compat_logger:
    def __enter__(self) -> None:
        logging.getLogger("compat").disabled = True

    def __exit__(self, *exc: object) -> None:
        logging.getLogger("compat").disabled = False


def test_unobserved_exception_is_logged_on_trio(caplog: pytest.LogCaptureFixture) -> None:
    async def fail() -> None:
        raise Boom("nobody waits for me")

    async def main() -> None:
        handle = compat.spawn_detached(fail())
        while not handle.done():
            await trio.sleep(0)

    with caplog.at_level(logging.WARNING, logger="compat"):
        trio.run(main)
    records = [r for r in caplog.records if r.name == "compat"]
    assert len(records) == 1
    assert records[0].exc_info is not None
    assert isinstance(records[0].exc_info[1], Boom)


def test_unobserved_exception_is_logged_on_asyncio(caplog: pytest.LogCaptureFixture) -> None:
    async def fail() -> None:
        raise Boom("nobody waits for me")

    async def main() -> None:
        handle = compat.spawn_detached(fail())
        while not handle.done():
            await asyncio.sleep(0)
        del handle

    with caplog.at_level(logging.ERROR, logger="asyncio"):
        asyncio.run(main())
    assert any("never retrieved" in r.getMessage() for r in caplog.records)


async def test_contextvars_propagate_into_detached_tasks() -> None:
    REQUEST_ID.set("req-42")
    seen: list[str] = []

    async def read_var() -> None:
        seen.append(REQUEST_ID.get())
        REQUEST_ID.set("changed inside")

    await compat.spawn_detached(read_var()).wait()
    assert seen == ["req-42"]
    assert REQUEST_ID.get() == "req-42"  # the task works on a copy


async def test_done_callbacks_fire_once_with_the_handle() -> None:
    calls: list[compat.TaskHandle] = []
    handle = compat.spawn_detached(_finish_later([], 0.001))
    handle.add_done_callback(calls.append)
    await handle.wait()
    await compat.sleep(0.001)  # asyncio runs done callbacks one loop tick later
    handle.add_done_callback(calls.append)  # registered after completion: still called once
    await compat.sleep(0.001)
    await compat.sleep(0.001)
    assert calls == [handle, handle]


def test_spawn_detached_without_a_loop_closes_the_coroutine_and_raises() -> None:
    started: list[str] = []

    async def never() -> None:
        started.append("ran")

    coro = never()
    with pytest.raises(compat.UnsupportedBackendError, match="asyncio or trio"):
        compat.spawn_detached(coro)
    assert coro.cr_frame is None  # closed: no "never awaited" warning (warnings are errors here)
    assert started == []


def test_spawn_detached_from_a_worker_thread_raises_unsupported() -> None:
    errors: list[BaseException] = []

    async def never() -> None:
        pass

    async def main() -> None:
        def in_thread() -> None:
            try:
                compat.spawn_detached(never())
            except compat.UnsupportedBackendError as exc:
                errors.append(exc)

        await compat.run_sync(in_thread)

    asyncio.run(main())
    assert len(errors) == 1


# --- run_sync ----------------------------------------------------------------------------------------------------


async def test_run_sync_returns_the_result_from_another_thread() -> None:
    main_thread = threading.get_ident()
    result = await compat.run_sync(lambda a, b: (a + b, threading.get_ident()), 2, 3)
    assert result[0] == 5
    assert result[1] != main_thread


async def test_run_sync_passes_the_exception_through() -> None:
    def fail() -> None:
        raise Boom("in thread")

    with pytest.raises(Boom, match="in thread"):
        await compat.run_sync(fail)


async def test_sniffio_in_the_worker_finds_no_async_library() -> None:
    def detect() -> str:
        try:
            return sniffio.current_async_library()
        except sniffio.AsyncLibraryNotFoundError:
            return "none"

    assert await compat.run_sync(detect) == "none"


def test_sniffio_in_the_worker_finds_nothing_under_anyio_either() -> None:
    import anyio

    def detect() -> str:
        try:
            return sniffio.current_async_library()
        except sniffio.AsyncLibraryNotFoundError:
            return "none"

    async def main() -> str:
        return await compat.run_sync(detect)

    assert anyio.run(main, backend="asyncio") == "none"
    assert anyio.run(main, backend="trio") == "none"


async def test_run_sync_is_not_cancellable_by_default() -> None:
    finished: list[str] = []

    def slow() -> None:
        time.sleep(0.05)
        finished.append("thread done")

    with compat.move_on_after(0.005) as scope:
        await compat.run_sync(slow)
    assert scope.cancelled_caught
    assert finished == ["thread done"]  # the caller waited for the thread before seeing the cancellation


async def test_run_sync_can_be_abandoned_on_cancel() -> None:
    release = threading.Event()
    finished: list[str] = []

    def blocked() -> None:
        release.wait(5)
        finished.append("thread done")

    with compat.move_on_after(0.005) as scope:
        await compat.run_sync(blocked, abandon_on_cancel=True)
    assert scope.cancelled_caught
    assert finished == []
    release.set()
    for _ in range(200):
        if finished:
            break
        await compat.sleep(0.005)
    assert finished == ["thread done"]


async def test_run_sync_respects_the_limiter() -> None:
    limiter = compat.CapacityLimiter(2)
    lock = threading.Lock()
    active = 0
    peak = 0

    def work() -> None:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        time.sleep(0.01)
        with lock:
            active -= 1

    async with compat.create_task_group() as tg:
        for _ in range(8):
            tg.start_soon(lambda: compat.run_sync(work, limiter=limiter))
    assert peak == 2


# --- detection and cancellation class ----------------------------------------------------------------------------


async def test_current_backend_and_cancelled_class(backend: str) -> None:
    assert compat.current_backend() == backend
    expected = asyncio.CancelledError if backend == "asyncio" else trio.Cancelled
    assert compat.get_cancelled_exc_class() is expected


def test_current_backend_outside_a_loop_names_the_problem() -> None:
    with pytest.raises(compat.UnsupportedBackendError, match="none is running"):
        compat.current_backend()


def test_current_backend_under_another_library_names_it() -> None:
    token = sniffio.current_async_library_cvar.set("curio")
    try:
        with pytest.raises(compat.UnsupportedBackendError, match="'curio'"):
            compat.current_backend()
    finally:
        sniffio.current_async_library_cvar.reset(token)


@pytest.mark.parametrize("anyio_backend_name", ["asyncio", "trio"])
def test_compat_runs_under_anyio(anyio_backend_name: str) -> None:
    import anyio

    async def main() -> list[str]:
        seen: list[str] = [compat.current_backend()]
        lock, limiter = compat.Lock(), compat.CapacityLimiter(1)
        async with lock, limiter:
            seen.append("locked")
        with compat.move_on_after(0.005) as scope:
            await anyio.sleep(1)
        seen.append(f"moved on {scope.cancelled_caught}")
        with anyio.move_on_after(0.005) as anyio_scope:
            with compat.fail_after(5):
                await compat.sleep(1)
        seen.append(f"anyio scope won {anyio_scope.cancelled_caught}")
        seen.append(await compat.shield(_finish_later, [], 0))
        await compat.spawn_detached(compat.sleep(0)).wait()
        seen.append(str(await compat.run_sync(lambda: 7)))
        return seen

    assert anyio.run(main, backend=anyio_backend_name) == [
        anyio_backend_name,
        "locked",
        "moved on True",
        "anyio scope won True",
        "result",
        "7",
    ]


@pytest.mark.skipif(not hasattr(asyncio, "eager_task_factory"), reason="eager task factory is new in Python 3.12")
def test_tasks_work_under_the_eager_task_factory() -> None:
    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        loop.set_task_factory(asyncio.eager_task_factory)  # type: ignore[attr-defined]  # 3.12+ only
        done: list[str] = []
        handle = compat.spawn_detached(_finish_later(done, 0))
        await handle.wait()
        assert await compat.shield(_finish_later, done, 0) == "result"
        async with compat.create_task_group() as tg:
            tg.start_soon(_finish_later, done, 0)
        with compat.move_on_after(0.005) as scope:
            await compat.shield(_finish_later, done, 0.02)
        assert scope.cancelled_caught
        return done

    assert asyncio.run(main()) == ["finished"] * 4


async def test_an_abandoned_thread_keeps_its_limiter_token_until_it_returns() -> None:
    limiter = compat.CapacityLimiter(1)
    release = threading.Event()
    order: list[str] = []

    def blocked() -> None:
        release.wait(5)
        order.append("abandoned thread done")

    def next_call() -> None:
        order.append("next call ran")

    with compat.move_on_after(0.005):
        await compat.run_sync(blocked, limiter=limiter, abandon_on_cancel=True)
    assert limiter.borrowed_tokens == 1  # the abandoned thread still runs
    async with compat.create_task_group() as tg:
        tg.start_soon(lambda: compat.run_sync(next_call, limiter=limiter))
        await compat.sleep(0.02)
        assert order == []  # waits for the token
        release.set()
    assert order == ["abandoned thread done", "next call ran"]
    assert limiter.borrowed_tokens == 0


async def test_many_waiters_all_wake_and_a_cancelled_one_leaves_the_rest_waiting() -> None:
    done: list[str] = []
    handle = compat.spawn_detached(_finish_later(done, 0.03))
    woken: list[int] = []

    async def waiter(i: int) -> None:
        await handle.wait()
        woken.append(i)

    async with compat.create_task_group() as tg:
        tg.start_soon(waiter, 1)
        with compat.move_on_after(0.005) as impatient:
            await handle.wait()
        tg.start_soon(waiter, 2)
    assert impatient.cancelled_caught
    assert sorted(woken) == [1, 2]
    assert done == ["finished"]
