"""Where a ``KeyboardInterrupt`` raised by shielded or detached work goes (a row of compat's backend table).

Sync tests: each runs a whole event loop, because on asyncio the interrupt leaves the loop itself.
"""

from __future__ import annotations

import asyncio
import gc
import logging

import pytest
import trio

import compat


async def _interrupted_work() -> None:
    await compat.checkpoint()
    raise KeyboardInterrupt("from the work")


async def _shielded_caller() -> str:
    try:
        await compat.shield(_interrupted_work)
    except KeyboardInterrupt:
        return "caller caught it"
    return "returned"


async def _detached_waiter() -> str:
    handle = compat.spawn_detached(_interrupted_work())
    try:
        await handle.wait()
    except KeyboardInterrupt:
        return "wait caught it"
    return "returned"


@pytest.mark.parametrize("caller", [_shielded_caller, _detached_waiter], ids=["shield", "spawn_detached"])
def test_asyncio_interrupt_from_the_work_leaves_the_loop(caller: object, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.CRITICAL, logger="asyncio"), pytest.raises(KeyboardInterrupt, match="from the work"):
        asyncio.run(caller())  # type: ignore[operator]  # parametrized coroutine function


def test_trio_interrupt_from_shielded_work_reaches_the_caller() -> None:
    assert trio.run(_shielded_caller) == "caller caught it"


def test_trio_interrupt_from_detached_work_reaches_wait_and_is_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="compat"):
        assert trio.run(_detached_waiter) == "wait caught it"
    gc.collect()
    assert [record for record in caplog.records if record.name == "compat"] == []  # wait() retrieved it
