"""Interleaved timing: run every implementation of one operation in turn, round after round, take medians.

An implementation is ``async def impl(n) -> int``: it sets up what it needs, performs the operation ``n`` times
and returns the elapsed nanoseconds of the ``n`` operations only (setup excluded). :func:`interleave` calibrates
``n`` per implementation so one round lasts about ``target_ms``, runs one discarded warm-up round, then ``rounds``
rounds in the order (a, b, c, a, b, c, ...), and reports the median ns/op of each. Interleaving spreads slow
periods of a shared machine over all implementations instead of charging them to whichever ran then.
"""

from __future__ import annotations

import gc
import statistics
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

Impl = Callable[[int], Awaitable[int]]

MIN_OPS = 16
MAX_OPS = 2_000_000


@dataclass
class Measurement:
    """ns/op samples of one implementation (one per round) and the op count per round."""

    ops_per_round: int
    samples: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def spread(self) -> float:
        """(max - min) / median of the samples: how noisy the rounds were."""
        return (max(self.samples) - min(self.samples)) / self.median if self.samples else 0.0


async def calibrate(impl: Impl, target_ns: float) -> int:
    """The op count that makes one round of ``impl`` last about ``target_ns``.

    A first small run is discarded: it pays one-time costs (lazy imports, thread start-up, free lists) that
    would otherwise make the operation look slow and the rounds far too short.
    """
    await impl(MIN_OPS)
    n = MIN_OPS
    while True:
        elapsed = await impl(n)
        if elapsed >= target_ns / 8 or n >= MAX_OPS:
            break
        n *= 4
    estimate = int(n * target_ns / max(elapsed, 1))
    return max(MIN_OPS, min(MAX_OPS, estimate))


async def interleave(impls: dict[str, Impl], *, rounds: int, target_ms: float) -> dict[str, Measurement]:
    """Measure every implementation ``rounds`` times, interleaved; see the module docstring."""
    target_ns = target_ms * 1e6
    results = {name: Measurement(await calibrate(impl, target_ns)) for name, impl in impls.items()}
    for round_index in range(rounds + 1):
        for name, impl in impls.items():
            measurement = results[name]
            gc.collect()
            elapsed = await impl(measurement.ops_per_round)
            if round_index > 0:  # round 0 warms caches, thread pools and free lists
                measurement.samples.append(elapsed / measurement.ops_per_round)
    return results
