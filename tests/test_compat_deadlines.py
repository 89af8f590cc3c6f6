"""Scope cancel() / cancel_called, absolute deadlines (move_on_at, fail_at) and sleep_until, on both backends."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import pytest

import compat

SCOPES = [compat.move_on_after, compat.fail_after]


@pytest.mark.parametrize("make", [compat.move_on_at, compat.fail_at, compat.sleep_until])
def test_a_nan_deadline_is_a_value_error(make: Callable[[float], Any]) -> None:
    with pytest.raises(ValueError, match="NaN"):
        make(math.nan)


async def test_move_on_at_moves_on_at_the_deadline() -> None:
    deadline = compat.current_time() + 0.01
    with compat.move_on_at(deadline) as scope:
        assert scope.deadline == deadline
        await compat.sleep(1)
    assert scope.cancelled_caught
    assert compat.current_time() >= deadline


async def test_fail_at_raises_timeout_error_naming_the_deadline() -> None:
    with pytest.raises(TimeoutError, match="deadline"), compat.fail_at(compat.current_time() + 0.005):
        await compat.sleep(1)


async def test_a_deadline_in_the_past_cancels_at_the_next_checkpoint() -> None:
    reached: list[str] = []
    with compat.move_on_at(compat.current_time() - 10) as scope:
        reached.append("body starts")
        await compat.checkpoint()
        reached.append("not reached")
    assert scope.cancelled_caught
    assert reached == ["body starts"]


async def test_an_infinite_deadline_never_fires() -> None:
    with compat.fail_at(math.inf) as scope:
        await compat.sleep(0.001)
    assert not scope.cancelled_caught
    assert not scope.cancel_called


async def test_sleep_until_sleeps_until_the_deadline() -> None:
    deadline = compat.current_time() + 0.02
    await compat.sleep_until(deadline)
    assert compat.current_time() >= deadline - 0.002  # the loop clock's resolution


async def test_sleep_until_a_past_deadline_is_a_checkpoint() -> None:
    with compat.move_on_after(0) as scope:
        await compat.sleep_until(compat.current_time() - 1)
    assert scope.cancelled_caught


async def test_sleep_until_can_be_cancelled() -> None:
    with compat.move_on_after(0.005) as scope:
        await compat.sleep_until(compat.current_time() + 5)
    assert scope.cancelled_caught


# --- cancel() and cancel_called -----------------------------------------------------------------------------------


@pytest.mark.parametrize("make", SCOPES, ids=["move_on_after", "fail_after"])
async def test_cancel_from_the_body_cancels_the_next_await_and_moves_on(make: Callable[[float | None], Any]) -> None:
    reached: list[str] = []
    with make(None) as scope:
        assert not scope.cancel_called
        scope.cancel()
        assert scope.cancel_called
        reached.append("cancel() itself returns")
        await compat.sleep(1)
        reached.append("not reached")
    assert scope.cancelled_caught  # fail_after too: cancel() is not a timeout, no TimeoutError
    assert reached == ["cancel() itself returns"]


async def test_cancel_as_the_last_thing_in_the_block_leaves_nothing_pending() -> None:
    with compat.move_on_after(None) as scope:
        scope.cancel()
    assert scope.cancel_called
    assert not scope.cancelled_caught  # no checkpoint came, so nothing was cancelled
    await compat.sleep(0)  # a cancellation left pending by the scope would hit here
    await compat.checkpoint()


async def test_cancel_from_another_task_cancels_the_block() -> None:
    async def cancel_later(scope: Any) -> None:
        await compat.sleep(0.005)
        scope.cancel()

    async with compat.create_task_group() as tg:
        with compat.fail_after(5) as scope:
            tg.start_soon(cancel_later, scope)
            await compat.sleep(1)
    assert scope.cancelled_caught
    assert scope.cancel_called


async def test_cancel_before_entering_cancels_at_the_first_checkpoint() -> None:
    scope = compat.move_on_after(5)
    scope.cancel()
    with scope:
        await compat.sleep(1)
    assert scope.cancelled_caught


async def test_cancel_after_exit_does_nothing() -> None:
    with compat.move_on_after(5) as scope:
        await compat.sleep(0)
    scope.cancel()
    await compat.sleep(0)
    assert not scope.cancelled_caught
    assert scope.cancel_called


async def test_cancel_called_turns_true_once_the_deadline_has_passed() -> None:
    with compat.move_on_after(0.001) as scope:
        assert not scope.cancel_called
        time.sleep(0.005)  # blocking: no checkpoint, the deadline passes meanwhile
        assert scope.cancel_called
        assert not scope.cancelled_caught
        await compat.sleep(1)
    assert scope.cancelled_caught


async def test_the_outer_cancelled_scope_catches_when_both_are_cancelled() -> None:
    with compat.move_on_after(None) as outer:
        with compat.move_on_after(None) as inner:
            inner.cancel()
            outer.cancel()
            await compat.sleep(1)
        await compat.sleep(1)  # not reached: the outer cancellation goes on
    assert outer.cancelled_caught
    assert not inner.cancelled_caught


async def test_shielded_holds_off_cancel_until_the_block_exits() -> None:
    reached: list[str] = []
    with compat.move_on_after(None) as scope:
        with compat.shielded():
            scope.cancel()
            await compat.sleep(0.005)
            reached.append("shielded work finished")
        await compat.sleep(1)
        reached.append("not reached")
    assert scope.cancelled_caught
    assert reached == ["shielded work finished"]


@pytest.mark.parametrize("anyio_backend_name", ["asyncio", "trio"])
def test_deadlines_and_cancel_under_anyio(anyio_backend_name: str) -> None:
    import anyio

    async def main() -> list[bool]:
        with compat.move_on_at(compat.current_time() + 0.005) as at:
            await anyio.sleep(1)
        with compat.fail_after(5) as cancelled:
            cancelled.cancel()
            await anyio.sleep(1)
        with anyio.move_on_after(0.005) as anyio_scope:  # an anyio scope around a compat one still wins
            with compat.move_on_at(math.inf):
                await compat.sleep_until(compat.current_time() + 1)
        return [at.cancelled_caught, cancelled.cancelled_caught, anyio_scope.cancelled_caught]

    assert anyio.run(main, backend=anyio_backend_name) == [True, True, True]
