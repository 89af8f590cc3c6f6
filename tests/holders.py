"""How many tasks hold a compat primitive at once: the bound check shared by the Lock, CapacityLimiter and
Semaphore tests (tests/test_compat_sync.py, tests/test_compat_semaphore.py)."""

from __future__ import annotations

from collections.abc import Callable

import compat


async def peak_holders(
    primitive: compat.Lock | compat.CapacityLimiter | compat.Semaphore,
    tasks: int,
    *,
    hold_s: float = 0.0,
    while_held: Callable[[], object] | None = None,
) -> int:
    """Start ``tasks`` tasks that each hold ``primitive`` (``async with``) across ``compat.sleep(hold_s)``; return
    the most that were inside at once. ``while_held``, if given, runs in each task as soon as it is inside."""
    inside = peak = 0

    async def hold() -> None:
        nonlocal inside, peak
        async with primitive:
            inside += 1
            peak = max(peak, inside)
            if while_held is not None:
                while_held()
            await compat.sleep(hold_s)
            inside -= 1

    async with compat.create_task_group() as tg:
        for _ in range(tasks):
            tg.start_soon(hold)
    return peak
