"""compat.shielded(): a synchronous shield scope; and timeouts with ``None`` seconds (no deadline, still a scope)."""

from __future__ import annotations

import asyncio
import math
import sys
from collections.abc import Callable
from typing import Any

import anyio
import pytest
import trio

import compat


async def _cleanup(done: list[str], seconds: float = 0.02) -> None:
    """A cleanup with two awaits that must both complete."""
    await compat.sleep(seconds / 2)
    await compat.sleep(seconds / 2)
    done.append("cleaned up")


# --- timeouts with None --------------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [compat.fail_after, compat.move_on_after])
async def test_none_seconds_mean_no_deadline_but_still_a_scope(make: Callable[[float | None], Any]) -> None:
    with make(None) as scope:
        await compat.sleep(0.001)
    assert scope.deadline == math.inf
    assert scope.cancelled_caught is False


async def test_none_scope_lets_an_outer_deadline_through() -> None:
    with compat.move_on_after(0.005) as outer:
        with compat.fail_after(None) as inner:
            await compat.sleep(1)
    assert outer.cancelled_caught
    assert not inner.cancelled_caught


# --- shielded(): compat timeouts are held off until the block exits ------------------------------------------


async def test_deadline_passing_inside_the_block_is_delivered_after_it() -> None:
    done: list[str] = []
    with compat.move_on_after(0.005) as scope:
        with compat.shielded():
            await _cleanup(done)
        done.append("after the block, before the next await")
        await compat.sleep(1)
        done.append("not reached")
    assert done == ["cleaned up", "after the block, before the next await"]
    assert scope.cancelled_caught


async def test_fail_after_still_raises_timeout_error_after_the_block() -> None:
    done: list[str] = []
    with pytest.raises(TimeoutError), compat.fail_after(0.005):
        with compat.shielded():
            await _cleanup(done)
        await compat.sleep(1)
    assert done == ["cleaned up"]


async def test_a_scope_that_ends_right_after_the_block_is_not_cut() -> None:
    done: list[str] = []
    with compat.move_on_after(0.005) as scope:
        with compat.shielded():
            await _cleanup(done)
    await compat.sleep(0.01)  # the held-off deadline does not leak out of its scope
    assert done == ["cleaned up"]
    assert not scope.cancelled_caught


async def test_a_timeout_inside_the_block_still_fires() -> None:
    with compat.shielded():
        with compat.move_on_after(0.005) as inner:
            await compat.sleep(1)
    assert inner.cancelled_caught


async def test_nested_blocks_hold_the_deadline_until_the_outermost_exits() -> None:
    done: list[str] = []
    with compat.move_on_after(0.005) as scope:
        with compat.shielded():
            with compat.shielded():
                await _cleanup(done, 0.01)
            await _cleanup(done, 0.01)
        await compat.sleep(1)
    assert done == ["cleaned up", "cleaned up"]
    assert scope.cancelled_caught


async def test_an_error_in_the_block_propagates_and_the_deadline_is_not_claimed() -> None:
    with pytest.raises(KeyError, match="inside"):
        with compat.move_on_after(0.005) as scope:
            with compat.shielded():
                await compat.sleep(0.01)
                raise KeyError("inside")
    assert not scope.cancelled_caught
    await compat.sleep(0.01)  # and no cancellation is left pending


async def test_cancelled_after_the_deadline_at_each_await_of_the_block() -> None:
    """The deadline passes at the first, second or third await of the block: the block always completes."""
    for delay in (0.0, 0.006, 0.012):
        steps: list[int] = []
        with compat.move_on_after(delay) as scope:
            with compat.shielded():
                for step in range(3):
                    await compat.sleep(0.005)
                    steps.append(step)
            await compat.sleep(1)
        assert steps == [0, 1, 2], f"deadline after {delay} s cut the block at step {len(steps)}"
        assert scope.cancelled_caught


async def test_block_protects_from_an_enclosing_cancelled_task_group_on_trio_only(backend: str) -> None:
    done: list[str] = []

    async def cleanup_while_cancelled() -> None:
        try:
            await compat.sleep(1)
        finally:
            with compat.shielded():
                await _cleanup(done)

    with pytest.raises(ExceptionGroup):
        async with compat.create_task_group() as tg:
            tg.start_soon(cleanup_while_cancelled)
            await compat.sleep(0.001)
            raise KeyError("sibling failed")  # cancels the group
    # asyncio: the cancellation was delivered once, at ``sleep(1)``; the cleanup's awaits are not re-cancelled
    assert done == ["cleaned up"]


def test_native_task_cancel_reaches_the_block_on_asyncio_as_documented() -> None:
    done: list[str] = []

    async def main() -> None:
        async def body() -> None:
            with compat.shielded():
                await _cleanup(done)

        task = asyncio.create_task(body())
        await asyncio.sleep(0.001)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert done == []  # use compat.shield(fn) when the work must complete


def test_native_cancel_is_held_off_on_trio() -> None:
    done: list[str] = []

    async def main() -> None:
        with trio.CancelScope() as scope:
            scope.cancel()
            with compat.shielded():
                await _cleanup(done)
            await trio.sleep(1)
        assert scope.cancelled_caught

    trio.run(main)
    assert done == ["cleaned up"]


def test_works_without_anyio_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "anyio")
    done: list[str] = []

    async def main() -> bool:
        with compat.move_on_after(0.005) as scope:
            with compat.shielded():
                await _cleanup(done)
            await asyncio.sleep(1)
        return scope.cancelled_caught

    assert asyncio.run(main()) is True
    assert done == ["cleaned up"]
    assert "anyio" not in sys.modules


def test_outside_a_task_is_an_error() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()

        def in_callback() -> None:
            try:
                with compat.shielded():
                    pass
            except RuntimeError as exc:
                future.set_exception(exc)

        loop.call_soon(in_callback)
        with pytest.raises(RuntimeError, match="inside an asyncio task"):
            await future

    asyncio.run(main())


# --- under anyio: an enclosing anyio scope is held off, without spinning ------------------------------------


@pytest.mark.parametrize("runner", ["asyncio", "trio"])
def test_enclosing_cancelled_anyio_scope_is_held_off_under_anyio_run(runner: str) -> None:
    done: list[str] = []

    async def main() -> bool:
        with anyio.CancelScope() as scope:
            scope.cancel()
            with compat.shielded():
                await _cleanup(done)
            await anyio.sleep(1)
        return scope.cancelled_caught

    assert anyio.run(main, backend=runner) is True
    assert done == ["cleaned up"]


def test_no_spin_under_a_cancelled_anyio_scope_on_asyncio() -> None:
    iterations = 0
    done: list[str] = []

    async def main() -> None:
        nonlocal iterations
        loop: Any = asyncio.get_running_loop()
        real_run_once = loop._run_once

        def counting_run_once() -> None:
            nonlocal iterations
            iterations += 1
            real_run_once()

        with anyio.CancelScope() as scope:
            scope.cancel()
            loop._run_once = counting_run_once
            try:
                with compat.shielded():
                    await asyncio.sleep(0.05)  # one wait: a spinning canceller would wake the loop thousands of times
                    done.append("slept")
            finally:
                loop._run_once = real_run_once
            await anyio.sleep(1)
        assert scope.cancelled_caught

    anyio.run(main, backend="asyncio")
    assert done == ["slept"]
    assert iterations <= 10, f"the loop ran {iterations} times during one 50 ms sleep: something spun"


def test_compat_timeout_and_anyio_scope_together_under_anyio_run() -> None:
    done: list[str] = []

    async def main() -> tuple[bool, bool]:
        with anyio.move_on_after(0.005) as outer:
            with compat.move_on_after(0.005) as inner:
                with compat.shielded():
                    await _cleanup(done)
                await anyio.sleep(1)
        return outer.cancelled_caught, inner.cancelled_caught

    caught = anyio.run(main, backend="asyncio")
    assert done == ["cleaned up"]
    assert any(caught), f"neither scope caught the cancellation after the block: {caught}"
