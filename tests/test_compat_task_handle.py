"""TaskHandle.result() / exception() / aclose(), and when an unretrieved error is logged, on both backends."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import trio

import compat


class Boom(Exception):
    pass


async def _value_later(value: Any, seconds: float = 0.001) -> Any:
    await compat.sleep(seconds)
    return value


async def _fail_later(seconds: float = 0.001) -> None:
    await compat.sleep(seconds)
    raise Boom("detached failure")


async def test_result_and_exception_before_done_raise_invalid_state() -> None:
    handle = compat.spawn_detached(_value_later(1, 0.01))
    with pytest.raises(asyncio.InvalidStateError, match="not finished"):
        handle.result()
    with pytest.raises(asyncio.InvalidStateError, match="not finished"):
        handle.exception()
    await handle.wait()
    assert handle.result() == 1
    assert handle.exception() is None


async def test_result_raises_and_exception_returns_the_error() -> None:
    handle = compat.spawn_detached(_fail_later())
    while not handle.done():
        await compat.sleep(0.001)
    error = handle.exception()
    assert isinstance(error, Boom)
    with pytest.raises(Boom) as info:
        handle.result()
    assert info.value is error


async def test_a_cancelled_task_has_no_result_and_no_exception() -> None:
    handle = compat.spawn_detached(_value_later(1, 5))
    await compat.sleep(0)
    handle.cancel()
    await handle.wait()
    assert handle.result() is None
    assert handle.exception() is None


# --- aclose ------------------------------------------------------------------------------------------------------


async def _record_cleanup(log: list[str], seconds: float = 5) -> None:
    try:
        await compat.sleep(seconds)
    finally:
        log.append("task cleanup ran")


async def test_aclose_cancels_and_waits_for_the_task() -> None:
    log: list[str] = []
    handle = compat.spawn_detached(_record_cleanup(log))
    await compat.sleep(0.001)
    await handle.aclose()
    assert handle.done()
    assert log == ["task cleanup ran"]
    assert handle.result() is None  # its cancellation is not raised, not by aclose and not by result()


async def test_aclose_of_a_finished_task_returns_its_outcome() -> None:
    handle = compat.spawn_detached(_value_later(3, 0))
    await handle.wait()
    await handle.aclose()
    failed = compat.spawn_detached(_fail_later(0))
    await compat.sleep(0.01)
    with pytest.raises(Boom):
        await failed.aclose()


async def test_aclose_re_raises_the_task_error() -> None:
    async def fail_on_cancel() -> None:
        try:
            await compat.sleep(5)
        finally:
            raise Boom("cleanup failed")

    handle = compat.spawn_detached(fail_on_cancel())
    await compat.sleep(0.001)
    with pytest.raises(Boom, match="cleanup failed"):
        await handle.aclose()


async def test_aclose_in_a_cancelled_scope_finishes_the_task_then_delivers_the_cancellation() -> None:
    """The issue's case: cleanup code runs because the caller's scope was cancelled; on trio the cleanup await
    would be cancelled at once, so aclose() must complete anyway."""
    log: list[str] = []

    async def slow_cleanup() -> None:
        try:
            await compat.sleep(5)
        finally:
            with compat.shielded():
                await compat.sleep(0.01)  # the task's own cleanup takes a while
            log.append("task finished")

    handle = compat.spawn_detached(slow_cleanup())
    await compat.sleep(0.001)
    with compat.move_on_after(0) as scope:
        try:
            await compat.sleep(1)  # cancelled here: the block is being left because of the scope
        finally:
            await handle.aclose()  # trio: the caller's scope is still cancelled (asyncio: delivered already)
        log.append("not reached")
    assert scope.cancelled_caught
    assert log == ["task finished"]
    assert handle.done()


async def test_aclose_cancelled_while_it_waits_still_waits_for_the_task() -> None:
    log: list[str] = []

    async def slow_cleanup() -> None:
        try:
            await compat.sleep(5)
        finally:
            with compat.shielded():
                await compat.sleep(0.03)
            log.append("task finished")

    handle = compat.spawn_detached(slow_cleanup())
    await compat.sleep(0.001)
    with compat.move_on_after(0.005) as scope:
        await handle.aclose()
        log.append("not reached")
    assert scope.cancelled_caught
    assert log == ["task finished"]


async def test_aclose_error_while_the_caller_is_cancelled_is_not_lost(backend: str) -> None:
    async def fail_on_cancel() -> None:
        try:
            await compat.sleep(5)
        finally:
            with compat.shielded():
                await compat.sleep(0.005)
            raise Boom("cleanup failed")

    handle = compat.spawn_detached(fail_on_cancel())
    await compat.sleep(0.001)
    seen: list[BaseException | None] = []
    with compat.move_on_after(0) as scope:
        try:
            await handle.aclose()
        except Boom as exc:  # trio: the error first, the cancellation at the next checkpoint (like shield)
            seen.append(exc)
        except compat.get_cancelled_exc_class() as exc:  # asyncio: the cancellation, the error its context
            seen.append(exc.__context__)
            raise
        await compat.sleep(1)
    assert scope.cancelled_caught
    assert len(seen) == 1 and isinstance(seen[0], Boom)


@pytest.mark.parametrize("anyio_backend_name", ["asyncio", "trio"])
def test_aclose_and_result_under_anyio(anyio_backend_name: str) -> None:
    import anyio

    async def main() -> list[Any]:
        log: list[str] = []
        handle = compat.spawn_detached(_record_cleanup(log))
        await anyio.sleep(0.001)
        with anyio.CancelScope() as scope:
            scope.cancel()
            await handle.aclose()  # completes inside a cancelled anyio scope
        done = compat.spawn_detached(_value_later("v"))
        await done.wait()
        return [log, scope.cancelled_caught, done.result()]

    assert anyio.run(main, backend=anyio_backend_name) == [["task cleanup ran"], True, "v"]


# --- logging of unretrieved errors -------------------------------------------------------------------------------


def _run(runner: str, main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    if runner == "asyncio":
        asyncio.run(main())
    else:
        trio.run(main)
    gc.collect()


def _unretrieved_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        record
        for record in caplog.records
        if "never retrieved" in record.getMessage() and record.name in ("asyncio", "compat")
    ]


RETRIEVALS: dict[str, Callable[[compat.TaskHandle], Coroutine[Any, Any, None]]] = {}


async def _by_wait(handle: compat.TaskHandle) -> None:
    with pytest.raises(Boom):
        await handle.wait()


async def _by_result(handle: compat.TaskHandle) -> None:
    while not handle.done():
        await compat.sleep(0.001)
    with pytest.raises(Boom):
        handle.result()


async def _by_exception(handle: compat.TaskHandle) -> None:
    while not handle.done():
        await compat.sleep(0.001)
    assert isinstance(handle.exception(), Boom)


async def _by_aclose(handle: compat.TaskHandle) -> None:
    while not handle.done():
        await compat.sleep(0.001)
    with pytest.raises(Boom):
        await handle.aclose()


async def _not_retrieved(handle: compat.TaskHandle) -> None:
    while not handle.done():
        await compat.sleep(0.001)


@pytest.mark.parametrize("runner", ["asyncio", "trio"])
@pytest.mark.parametrize(
    ("how", "logged"),
    [(_by_wait, 0), (_by_result, 0), (_by_exception, 0), (_by_aclose, 0), (_not_retrieved, 1)],
    ids=["wait", "result", "exception", "aclose", "nobody"],
)
def test_an_error_is_logged_once_only_when_nobody_retrieves_it(
    caplog: pytest.LogCaptureFixture,
    runner: str,
    how: Callable[[compat.TaskHandle], Coroutine[Any, Any, None]],
    logged: int,
) -> None:
    async def main() -> None:
        for _ in range(2):  # two failures: two records when unretrieved, none otherwise
            handle = compat.spawn_detached(_fail_later(0))
            await how(handle)
            del handle
            gc.collect()

    with caplog.at_level(logging.ERROR):
        _run(runner, main)
    records = _unretrieved_records(caplog)
    assert len(records) == 2 * logged, [r.getMessage() for r in records]


@pytest.mark.parametrize("runner", ["asyncio", "trio"])
def test_the_unretrieved_error_is_logged_when_the_handle_goes_away(
    caplog: pytest.LogCaptureFixture, runner: str
) -> None:
    counts: list[int] = []

    async def main() -> None:
        handle = compat.spawn_detached(_fail_later(0))
        while not handle.done():
            await compat.sleep(0.001)
        gc.collect()
        counts.append(len(_unretrieved_records(caplog)))  # still held: not yet
        del handle
        gc.collect()
        counts.append(len(_unretrieved_records(caplog)))

    with caplog.at_level(logging.ERROR):
        _run(runner, main)
    assert counts == [0, 1]


@pytest.mark.parametrize("runner", ["asyncio", "trio"])
def test_a_dropped_handle_logs_the_error_once_when_the_task_ends(caplog: pytest.LogCaptureFixture, runner: str) -> None:
    async def main() -> None:
        compat.spawn_detached(_fail_later(0.005))  # the handle is dropped at once
        await compat.sleep(0.05)
        gc.collect()

    with caplog.at_level(logging.ERROR):
        _run(runner, main)
    assert len(_unretrieved_records(caplog)) == 1
