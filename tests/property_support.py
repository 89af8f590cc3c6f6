"""Hypothesis settings and a backend runner for property tests of async code, on asyncio and trio alike.

``@given`` does not compose with this project's harness: it turns an ``async def`` test into a plain function,
so ``tests/conftest.py`` no longer parametrizes it over the backends. Property tests are therefore sync
``@given`` tests, parametrized with :data:`BACKEND_PARAMS` (ids ``[asyncio]`` / ``[trio]``, honouring
``COMPAT_TEST_BACKENDS``), that run the async body of each example with :func:`run_on` (a fresh
``asyncio.run`` / ``trio.run`` per example).

:func:`property_settings` sizes a test with :func:`soak.scaled`: few examples in the default run, many under
``nox -s soak``. ``deadline=None`` because the shared 2-core machine is noisy, ``database=None`` so no
``.hypothesis/`` folder is written into the working tree (a failure prints its reproduction blob instead).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio
from hypothesis import HealthCheck, settings
from soak import scaled

BACKENDS = ("asyncio", "trio")


def _selected() -> tuple[str, ...]:
    chosen = os.environ.get("COMPAT_TEST_BACKENDS")
    if not chosen:
        return BACKENDS
    return tuple(name.strip() for name in chosen.split(",") if name.strip() in BACKENDS)


BACKEND_PARAMS = pytest.mark.parametrize("backend", [pytest.param(name, id=name) for name in _selected()])
"""Parametrizes a sync property test over the selected backends (the argument overrides the harness fixture)."""


def run_on(backend: str, fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
    """Run ``fn(*args)`` to completion under ``backend`` in a fresh event loop and return its result."""
    if backend == "trio":
        return trio.run(fn, *args)

    async def main() -> Any:
        return await fn(*args)

    return asyncio.run(main())


def property_settings(default_run: int, soak: int) -> settings:
    """Hypothesis settings with ``max_examples`` from :func:`soak.scaled` (see the module docstring)."""
    return settings(
        max_examples=scaled(default_run, soak),
        deadline=None,
        database=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
