"""compat.TaskGroup: ``__aenter__`` returns the group, ``start`` (trio's protocol) and ``cancel()``, both backends."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
import trio

import compat

EMULATED_CANCEL = not hasattr(asyncio.TaskGroup, "cancel")


class Boom(Exception):
    pass


async def test_aenter_returns_the_group_itself() -> None:
    group = compat.create_task_group()
    assert isinstance(group, compat.TaskGroup)
    async with group as entered:
        assert entered is group


async def test_the_group_can_be_entered_through_an_exit_stack() -> None:
    done: list[str] = []

    async def child() -> None:
        await compat.sleep(0)
        done.append("child")

    async with contextlib.AsyncExitStack() as stack:
        tg = await stack.enter_async_context(compat.create_task_group())
        tg.start_soon(child)
    assert done == ["child"]


async def test_start_soon_takes_a_name() -> None:
    names: list[str] = []

    async def child() -> None:
        if compat.current_backend() == "trio":
            names.append(trio.lowlevel.current_task().name)
        else:
            task = asyncio.current_task()
            assert task is not None
            names.append(task.get_name())

    async with compat.create_task_group() as tg:
        tg.start_soon(child, name="the-child")
    assert names == ["the-child"]


async def _serve(ready: list[str], value: Any, *, task_status: Any) -> None:
    await compat.sleep(0)
    ready.append("started")
    task_status.started(value)
    await compat.sleep(0.01)
    ready.append("finished")


async def test_start_returns_the_started_value_and_the_child_keeps_running() -> None:
    ready: list[str] = []
    async with compat.create_task_group() as tg:
        value = await tg.start(_serve, ready, "port 8080")
        assert value == "port 8080"
        assert ready == ["started"]
    assert ready == ["started", "finished"]


async def test_started_without_a_value_gives_none() -> None:
    async def child(*, task_status: Any) -> None:
        task_status.started()

    async with compat.create_task_group() as tg:
        assert await tg.start(child) is None


async def test_an_error_before_started_goes_to_the_caller_of_start_not_the_group() -> None:
    sibling: list[str] = []

    async def fail(*, task_status: Any) -> None:
        await compat.sleep(0)
        raise Boom("could not bind")

    async def other() -> None:
        await compat.sleep(0.01)
        sibling.append("ran to the end")

    async with compat.create_task_group() as tg:
        tg.start_soon(other)
        with pytest.raises(Boom, match="could not bind"):
            await tg.start(fail)
    assert sibling == ["ran to the end"]  # the group was not cancelled by the start() failure


async def test_an_error_after_started_goes_to_the_group() -> None:
    async def fail_later(*, task_status: Any) -> None:
        task_status.started("up")
        await compat.sleep(0)
        raise Boom("after start")

    with pytest.raises(ExceptionGroup) as info:
        async with compat.create_task_group() as tg:
            assert await tg.start(fail_later) == "up"
    assert info.group_contains(Boom, match="after start")


async def test_a_child_that_returns_without_started_is_an_error_for_start() -> None:
    async def forgetful(*, task_status: Any) -> None:
        await compat.sleep(0)

    async with compat.create_task_group() as tg:
        with pytest.raises(RuntimeError, match="started"):
            await tg.start(forgetful)


async def test_started_twice_raises() -> None:
    errors: list[BaseException] = []

    async def twice(*, task_status: Any) -> None:
        task_status.started(1)
        try:
            task_status.started(2)
        except RuntimeError as exc:
            errors.append(exc)

    async with compat.create_task_group() as tg:
        assert await tg.start(twice) == 1
    assert len(errors) == 1


async def test_cancelling_the_caller_of_start_cancels_the_child_that_has_not_started() -> None:
    reached: list[str] = []

    async def slow_start(*, task_status: Any) -> None:
        try:
            await compat.sleep(5)
        finally:
            reached.append("child ended")
        task_status.started()

    async with compat.create_task_group() as tg:
        with compat.move_on_after(0.01) as scope:
            await tg.start(slow_start)
    assert scope.cancelled_caught
    assert reached == ["child ended"]


# --- cancel() ----------------------------------------------------------------------------------------------------


async def test_cancel_from_a_child_cancels_siblings_and_body_and_exits_quietly() -> None:
    seen: list[str] = []

    async def sleeper(i: int) -> None:
        try:
            await compat.sleep(5)
        except compat.get_cancelled_exc_class():
            seen.append(f"sleeper {i} cancelled")
            raise

    async def canceller(tg: compat.TaskGroup) -> None:
        await compat.sleep(0.005)
        tg.cancel()

    with compat.fail_after(2):
        async with compat.create_task_group() as tg:
            tg.start_soon(sleeper, 1)
            tg.start_soon(sleeper, 2)
            tg.start_soon(canceller, tg)
            try:
                await compat.sleep(5)
            except compat.get_cancelled_exc_class():
                seen.append("body cancelled")
                raise
        seen.append("after the group")
    assert sorted(seen) == ["after the group", "body cancelled", "sleeper 1 cancelled", "sleeper 2 cancelled"]


async def test_cancel_from_the_body_after_its_last_await_does_not_leak_out() -> None:
    async with compat.create_task_group() as tg:
        tg.start_soon(compat.sleep, 5)
        tg.cancel()
    await compat.sleep(0)  # a cancellation left pending by the group would hit here
    await compat.checkpoint()


async def test_cancel_when_there_is_nothing_left_to_cancel_is_harmless() -> None:
    async with compat.create_task_group() as tg:
        tg.cancel()
        tg.cancel()  # twice: still one cancellation, taken back on exit
    tg.cancel()  # after exit: nothing happens
    await compat.sleep(0)


async def test_cancel_while_the_group_waits_for_children_at_the_end() -> None:
    seen: list[str] = []

    async def sleeper() -> None:
        try:
            await compat.sleep(5)
        finally:
            seen.append("child ended")

    async def cancel_soon(tg: compat.TaskGroup) -> None:
        await compat.sleep(0.01)
        tg.cancel()

    with compat.fail_after(2):
        async with compat.create_task_group() as tg:
            tg.start_soon(sleeper)
            tg.start_soon(cancel_soon, tg)
        seen.append("after")
    assert seen == ["child ended", "after"]


async def test_child_error_and_cancel_still_raise_the_error() -> None:
    async def fail() -> None:
        await compat.sleep(0)
        raise Boom("child failed")

    with pytest.raises(ExceptionGroup) as info:
        async with compat.create_task_group() as tg:
            tg.start_soon(fail)
            await compat.sleep(0.01)
            tg.cancel()
            await compat.sleep(1)
    assert info.group_contains(Boom)
    await compat.sleep(0)  # nothing pending afterwards


async def test_an_outer_cancellation_after_cancel_still_propagates() -> None:
    """The case of CPython gh-155433: cancel(), then the task around the group is cancelled before the group exits."""
    after: list[str] = []
    box: list[compat.TaskGroup] = []
    entered = compat.Event()

    async def run_group() -> None:
        async with compat.create_task_group() as tg:
            box.append(tg)
            tg.start_soon(compat.sleep, 5)
            entered.set()
            await compat.sleep(1)
        after.append("the group swallowed the outer cancellation")
        await compat.sleep(1)

    with compat.fail_after(2):
        handle = compat.spawn_detached(run_group())
        await entered.wait()
        box[0].cancel()
        handle.cancel()
        await handle.wait()
    assert after == []


async def test_an_outer_cancellation_after_cancel_from_a_child_still_propagates() -> None:
    after: list[str] = []
    box: list[compat.TaskHandle] = []

    async def cancel_both(tg: compat.TaskGroup) -> None:
        await compat.sleep(0)
        tg.cancel()
        box[0].cancel()

    async def run_group() -> None:
        async with compat.create_task_group() as tg:
            tg.start_soon(cancel_both, tg)
            await compat.sleep(1)
        after.append("the group swallowed the outer cancellation")
        await compat.sleep(1)

    with compat.fail_after(2):
        box.append(compat.spawn_detached(run_group()))
        await box[0].wait()
    assert after == []


def test_an_outer_task_cancel_after_cancel_propagates_on_asyncio() -> None:
    """gh-155433 with a native ``task.cancel()``: counted by ``Task.cancelling()``, never swallowed."""

    async def body(started: asyncio.Event, tg_box: list[compat.TaskGroup]) -> str:
        async with compat.create_task_group() as tg:
            tg_box.append(tg)
            tg.start_soon(compat.sleep, 5)
            started.set()
            await asyncio.sleep(5)
        return "exited normally"

    async def main() -> tuple[bool, int]:
        started, box = asyncio.Event(), []
        task = asyncio.get_running_loop().create_task(body(started, box))
        await started.wait()
        box[0].cancel()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return task.cancelled(), task.cancelling()

    assert asyncio.run(main()) == (True, 1)


def test_cancelling_is_back_at_its_entry_value_after_a_cancelled_group() -> None:
    async def main() -> list[int]:
        task = asyncio.current_task()
        assert task is not None
        counts = [task.cancelling()]
        async with compat.create_task_group() as tg:
            tg.start_soon(asyncio.sleep, 5)
            await asyncio.sleep(0)
            tg.cancel()
            await asyncio.sleep(1)
        counts.append(task.cancelling())
        async with asyncio.timeout(1):  # an asyncio.timeout after it still works
            await asyncio.sleep(0)
        return counts

    assert asyncio.run(main()) == [0, 0]


@pytest.mark.parametrize("anyio_backend_name", ["asyncio", "trio"])
def test_task_group_under_anyio(anyio_backend_name: str) -> None:
    import anyio

    async def main() -> list[Any]:
        seen: list[Any] = []
        async with compat.create_task_group() as tg:
            seen.append(await tg.start(_serve, [], "value"))
            tg.start_soon(anyio.sleep, 5)
            tg.cancel()
        with anyio.move_on_after(0.01) as scope:  # an anyio scope around a cancelled group
            async with compat.create_task_group() as tg:
                tg.start_soon(anyio.sleep, 5)
                await anyio.sleep(0)
                tg.cancel()
                await anyio.sleep(5)
            seen.append("group exited")
        seen.append(scope.cancelled_caught)
        return seen

    assert anyio.run(main, backend=anyio_backend_name) == ["value", "group exited", False]


@pytest.mark.skipif(not EMULATED_CANCEL, reason="Python 3.15+ has a native TaskGroup.cancel()")
def test_the_emulation_is_what_runs_here() -> None:
    assert compat._tasks._NATIVE_CANCEL is False


async def test_an_enclosing_scope_cancelled_after_cancel_still_propagates() -> None:
    """gh-155433 with a compat scope around the group: its cancellation is not swallowed by the group."""
    after: list[str] = []
    with compat.move_on_after(None) as outer:
        async with compat.create_task_group() as tg:
            tg.start_soon(compat.sleep, 5)
            tg.cancel()
            outer.cancel()
            await compat.sleep(1)
        after.append("the group swallowed the outer cancellation")
    assert outer.cancelled_caught
    assert after == []


async def test_an_enclosing_scope_cancelled_by_a_child_after_cancel_still_propagates() -> None:
    after: list[str] = []

    async def cancel_both(tg: compat.TaskGroup, outer: Any) -> None:
        await compat.sleep(0)
        tg.cancel()
        outer.cancel()

    with compat.move_on_after(None) as outer:
        async with compat.create_task_group() as tg:
            tg.start_soon(cancel_both, tg, outer)
            await compat.sleep(1)
        after.append("the group swallowed the outer cancellation")
    assert outer.cancelled_caught
    assert after == []


async def test_a_child_started_after_cancel_while_exiting_is_cancelled_too() -> None:
    seen: list[str] = []

    async def late_child() -> None:
        await compat.sleep(5)
        seen.append("late child finished")

    async def parent(tg: compat.TaskGroup) -> None:
        try:
            await compat.sleep(5)
        finally:
            tg.start_soon(late_child)  # started while the group is being cancelled

    async def cancel_soon(tg: compat.TaskGroup) -> None:
        await compat.sleep(0.01)
        tg.cancel()

    with compat.fail_after(2):
        async with compat.create_task_group() as tg:
            tg.start_soon(parent, tg)
            tg.start_soon(cancel_soon, tg)
        seen.append("group exited")  # at once: fail_after(2) did not fire
    assert seen == ["group exited"]  # asyncio: the late child never ran; trio: it was cancelled in its sleep


class _NativeCancelWithGh155433(asyncio.TaskGroup):
    """A TaskGroup with a ``cancel()`` like Python 3.15's before the fix of CPython gh-155433: on exit it takes
    back its own cancellation and swallows the CancelledError even when an outer cancellation is pending."""

    def cancel(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._parent_task.cancel()  # type: ignore[union-attr]

    async def __aexit__(self, *exc_info: Any) -> bool:  # type: ignore[override]
        try:
            await super().__aexit__(*exc_info)
        except asyncio.CancelledError:
            self._parent_task.uncancel()  # type: ignore[union-attr]
            return True  # swallowed: the bug when another cancellation is still pending
        return False


def test_the_native_cancel_path_keeps_an_outer_cancellation_of_gh_155433(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compat._tasks, "_NATIVE_CANCEL", True)
    monkeypatch.setattr(asyncio, "TaskGroup", _NativeCancelWithGh155433)

    async def body(started: asyncio.Event, box: list[compat.TaskGroup], after: list[str]) -> None:
        async with compat.create_task_group() as tg:
            box.append(tg)
            tg.start_soon(asyncio.sleep, 5)
            started.set()
            await asyncio.sleep(5)
        after.append("the group swallowed the outer cancellation")

    async def main(outer: bool) -> tuple[bool, list[str]]:
        started, box, after = asyncio.Event(), [], []
        task = asyncio.get_running_loop().create_task(body(started, box, after))
        await started.wait()
        box[0].cancel()
        if outer:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return task.cancelled(), after

    assert asyncio.run(main(outer=True)) == (True, [])
    assert asyncio.run(main(outer=False)) == (False, ["the group swallowed the outer cancellation"])
